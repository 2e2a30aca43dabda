"""ACL declarations and if/unless conditions."""

import pytest

from haply.config.acl import AclError, AclTable, parse_acl, parse_condition, split_condition
from haply.config.diagnostics import Location
from haply.config.lexer import split_words

HERE = Location("t.cfg", 3)


def cond(text, table=None):
    words = split_words(text, HERE, {})
    before, keyword, after = split_condition(words)
    assert keyword is not None
    return parse_condition(keyword, after, table or AclTable())


def shape(condition):
    """Readable form: [[('!'?)name-or-fetch, ...], ...]."""
    return [
        [("!" if t.negated else "") + (t.acl.name or t.acl.fetch) for t in group] for group in condition.any_of
    ]


def table(*lines):
    t = AclTable()
    for line in lines:
        name, *rest = line.split()
        t.add(parse_acl(name, rest, HERE))
    return t


def test_acl_fields():
    acl = parse_acl("host", ["hdr(host)", "-i", "api.example.com", "www.example.com"], HERE)
    assert (acl.fetch, acl.arg, acl.flags, acl.patterns) == ("hdr", "host", frozenset({"-i"}), ("api.example.com", "www.example.com"))
    assert acl.location == HERE


@pytest.mark.parametrize(
    "words, fetch, arg",
    [
        (["path", "-m", "beg", "/a"], "path_beg", None),
        (["hdr(host)", "-m", "dom", "x.org"], "hdr_dom", "host"),
        (["url", "-m", "reg", "^/x"], "url_reg", None),
        (["path", "-m", "str", "/a"], "path", None),
        (["path_beg", "--", "-dash"], "path_beg", None),
    ],
)
def test_match_method_folds_into_fetch(words, fetch, arg):
    acl = parse_acl("a", words, HERE)
    assert (acl.fetch, acl.arg) == (fetch, arg)


@pytest.mark.parametrize(
    "words, message",
    [
        (["nosuch", "x"], "fetch 'nosuch' is not supported by haply"),
        (["ssl_fc", "1"], "is a boolean and takes no pattern"),
        (["path_beg"], "needs at least one pattern"),
        (["src", "10.0.0.300"], "invalid address '10.0.0.300'"),
        (["path_reg", "("], "invalid regular expression '('"),
        (["path_beg", "-f", "/etc/x.lst"], "acl flag '-f' is not supported by haply"),
        (["src", "-m", "beg", "1"], "'-m beg' on 'src' is not supported by haply"),
        (["path(x)", "/a"], "fetch 'path' takes no argument"),
        (["dst_port", "80-90"], "invalid port '80-90'"),
    ],
)
def test_bad_acls(words, message):
    with pytest.raises(AclError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_acl("a", words, HERE)


def test_implicit_and_or_and_negation():
    t = table("a path_beg /a", "b src 10.0.0.0/8", "c ssl_fc")
    c = cond("use_backend x if a !b || c or ! a", t)
    assert not c.unless
    assert shape(c) == [["a", "!b"], ["c"], ["!a"]]
    assert c.location == HERE


def test_unless_and_anonymous_acls():
    c = cond("redirect scheme https unless { ssl_fc } || ! { path_beg /x /y }")
    assert c.unless
    assert shape(c) == [["ssl_fc"], ["!path_beg"]]
    assert c.any_of[1][0].acl.patterns == ("/x", "/y")
    assert c.any_of[1][0].acl.name == ""


def test_predefined_acls():
    c = cond("stats admin if LOCALHOST METH_GET TRUE")
    localhost, get, true = c.any_of[0]
    assert (localhost.acl.fetch, localhost.acl.patterns) == ("src", ("127.0.0.1/8", "::1"))
    assert get.acl.patterns == ("GET", "HEAD")
    assert true.acl.fetch == "always_true"


def test_repeated_acl_names_are_ored():
    t = table("api path_beg /api", "api path_beg /v2", "api hdr(host) -i api.example.com")
    term = cond("x if api", t).any_of[0][0]
    assert term.acl.patterns == ("/api", "/v2")  # same fetch: patterns merged
    assert [a.fetch for a in term.acls] == ["path_beg", "hdr"]


@pytest.mark.parametrize(
    "text, message",
    [
        ("x if nope", "no such acl 'nope': declare it with 'acl nope ...' before this line"),
        ("x if", "missing condition after 'if'"),
        ("x if { path_beg /a", "unterminated anonymous acl"),
        ("x if || TRUE", "'||' needs a test on each side"),
        ("x if TRUE ||", "condition ends with an operator"),
        ("x if !", "'!' must be followed by an acl name"),
        ("x if HTTP_1.1", "predefined acl 'HTTP_1.1' is not supported by haply"),
        ("x if }", "'}' without a matching '{'"),
    ],
)
def test_bad_conditions(text, message):
    with pytest.raises(AclError, match=message.replace("{", r"\{").replace("}", r"\}").replace("|", r"\|")):
        cond(text)


def test_quoted_if_is_not_a_keyword():
    words = split_words('http-request set-header X "if" if TRUE', HERE, {})
    before, keyword, after = split_condition(words)
    assert [w.text for w in before] == ["http-request", "set-header", "X", "if"]
    assert [w.text for w in after] == ["TRUE"]


# ------------------------------------------------------- every fetch runs


class View:
    """What the proxy hands a condition, in both modes."""

    method = "GET"
    path = "/v2/images"
    uri = "/v2/images?limit=1"
    client_ip = "10.1.2.3"
    local_ip = "192.0.2.5"
    local_port = 5000
    ssl = False
    status = 200  # the server's answer, for http-response rules
    tracking = None  # no sticky counter tracked

    @staticmethod
    def header(name: str) -> list[str]:
        return {"host": ["api.example.org"]}.get(name, [])


SAMPLE_PATTERNS = {"ip": "0.0.0.0/0", "port": "1:65535", "regex": ".", "string": "x", "integer": "200",
                   "version": "3.1", "hex": "16"}


@pytest.mark.parametrize("fetch", sorted(__import__("haply.config.acl", fromlist=["FETCHES"]).FETCHES))
def test_every_fetch_the_parser_accepts_is_evaluated(fetch):
    """A fetch `haply -c` accepts must work at run time (dst and dst_port were
    accepted once and failed at start)."""
    from haply.config.acl import FETCHES
    from haply.proxy.conditions import compile_acl
    spec = FETCHES[fetch]
    arg = "(0)" if fetch.startswith("sc_") else "(txn.host)" if fetch == "var" else \
        "(0,1)" if fetch == "req.payload" else "(host)" if spec.argument != "none" else ""
    # a variable's match is said, and a binary block's
    method = ["-m", "str"] if fetch == "var" else ["-m", "bin"] if fetch == "req.payload" else []
    words = [fetch + arg, *method] + ([SAMPLE_PATTERNS[spec.patterns]] if spec.patterns != "none" else [])
    test = compile_acl(parse_acl("a", words, Location("t", 1)))
    assert test(View()) in (True, False)


def test_status_patterns():
    from haply.proxy.conditions import compile_acl

    def matches(*words):
        return compile_acl(parse_acl("a", list(words), Location("t", 1)))(View())

    assert matches("status", "200") and matches("status", "404", "200:299")
    assert matches("status", "ge", "200") and matches("status", "lt", "201", "500")
    assert not matches("status", "gt", "200") and not matches("status", "le", "199")
    assert not matches("status", "500:599") and matches("status", "eq", "200")
    with pytest.raises(AclError, match="needs a number after it"):
        parse_acl("a", ["status", "ge"], Location("t", 1))
    with pytest.raises(AclError, match="invalid integer 'ok'"):
        parse_acl("a", ["status", "ok"], Location("t", 1))


def test_dst_and_dst_port():
    from haply.proxy.conditions import compile_acl

    def matches(*words):
        return compile_acl(parse_acl("a", list(words), Location("t", 1)))(View())

    assert matches("dst", "192.0.2.0/24") and not matches("dst", "10.0.0.0/8")
    assert matches("dst", "192.0.2.5/255.255.0.0")  # dotted masks, as the charms write them
    assert matches("dst_port", "5000") and matches("dst_port", "4000:6000")
    assert not matches("dst_port", "5001:6000")
