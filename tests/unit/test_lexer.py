"""The haproxy.cfg lexer: words, quotes, escapes, variables, file:line."""

import re

import pytest
from hypothesis import given, strategies as st

from haply.config.diagnostics import Diagnostics, Location
from haply.config.lexer import LexError, quote, split_lines, split_words

HERE = Location("test.cfg", 7)


def words(line, environ=None):
    return [w.text for w in split_words(line, HERE, environ or {})]


@pytest.mark.parametrize(
    "line, expected",
    [
        ("  bind   *:80\tssl ", ["bind", "*:80", "ssl"]),
        ("stats realm HAProxy\\ Statistics", ["stats", "realm", "HAProxy Statistics"]),
        ("log-format %{+Q}o\\ %t\\ %s", ["log-format", "%{+Q}o %t %s"]),
        ('log-format "%{+Q}o %t %s"', ["log-format", "%{+Q}o %t %s"]),
        ("log-format '%{+Q}o %t %s'", ["log-format", "%{+Q}o %t %s"]),
        ("log-format \"%{+Q}o %t\"' %s'\\ %{-Q}r", ["log-format", "%{+Q}o %t %s %{-Q}r"]),
        ("a\\#b # comment", ["a#b"]),
        ("a#b", ["a"]),
        ('"a#b"', ["a#b"]),
        ("daemon#daemonize", ["daemon"]),
        ("\\\\ \\' \\\"", ["\\", "'", '"']),
        ("\\t\\r\\n", ["\t\r\n"]),
        ("\\x41\\x7a", ["Az"]),
        ('"\\x41\\t"', ["A\t"]),
        ("x\\qy", ["x\\qy"]),  # unknown escapes stay, as in HAProxy
        ("x\\", ["x\\"]),  # no line continuation
        ("'a\\b'", ["a\\b"]),
        ('"a\\\\b"', ["a\\b"]),
        ('x "" y', ["x", "", "y"]),
        ("'$HOME'", ["$HOME"]),
        ("cost $5", ["cost", "$5"]),
        ('"\\$x"', ["$x"]),
        ("a\\$b", ["a\\$b"]),  # HAProxy 2.6 keeps \$ outside quotes
        ("# only a comment", []),
        ("", []),
    ],
)
def test_words(line, expected):
    assert words(line) == expected


@pytest.mark.parametrize(
    "line, expected",
    [
        ('user "${USERX}"', ["user", "uu"]),
        ('user "$USERX"', ["user", "uu"]),
        ('user "x$USERX-y"', ["user", "xuu-y"]),
        ('user "${UNSET}"', ["user", ""]),
        ('log "${UNSET-127.0.0.1}:514"', ["log", "127.0.0.1:514"]),
        ('x "${EMPTY-default}"', ["x", ""]),  # the default replaces unset, not empty
        ('x "${LIST[*]}"', ["x", "p", "q"]),
        ('x "a${LIST[*]}b"', ["x", "ap", "qb"]),
        ("x ${USERX}", ["x", "${USERX}"]),  # not expanded outside quotes (HAProxy 2.6)
        ('x "${.LINE}" "${.FILE}"', ["x", "7", "test.cfg"]),
    ],
)
def test_environment(line, expected):
    assert words(line, {"USERX": "uu", "LIST": "p q", "EMPTY": ""}) == expected


@pytest.mark.parametrize(
    "line, message",
    [
        ('log "unterminated', "unterminated double quote starting at column 5"),
        ("log 'unterminated", "unterminated single quote starting at column 5"),
        ("user x\\xZZ", "invalid hexadecimal escape '\\xZZ' at column 7"),
        ("user x\\x4", "invalid hexadecimal escape '\\x4' at column 7"),
        ('user "$"', "invalid environment variable name at column 7"),
        ('user "${1X}"', "invalid environment variable name at column 7"),
        ('user "${NOPE"', "unterminated '${' at column 7"),
        ('user "${.SECTION}"', "unknown pseudo-variable '.SECTION'"),
    ],
)
def test_errors_say_where(line, message):
    with pytest.raises(LexError) as error:
        split_words(line, HERE, {})
    assert message in str(error.value)


def test_every_word_keeps_file_and_line():
    diagnostics = Diagnostics()
    lines = split_lines("global\n\n  # c\n    daemon\r\n  user \"a b\"\n", "x.cfg", {}, diagnostics)
    assert [(l.location.line, l.texts) for l in lines] == [(1, ("global",)), (4, ("daemon",)), (5, ("user", "a b"))]
    assert all(w.location == Location("x.cfg", 5) for w in lines[2].words)
    assert not diagnostics.items


def test_byte_order_mark_is_not_part_of_the_first_word():
    lines = split_lines("\ufeffglobal\n", "x.cfg", {}, Diagnostics())
    assert lines[0].texts == ("global",)


def test_bad_line_is_reported_and_the_rest_is_read():
    diagnostics = Diagnostics()
    lines = split_lines('a "x\nb\n', "x.cfg", {}, diagnostics)
    assert [l.texts for l in lines] == [("b",)]
    assert [str(d) for d in diagnostics.errors] == [
        "x.cfg:1: error: unterminated double quote starting at column 3"
    ]


def test_unquoted_variable_warns():
    diagnostics = Diagnostics()
    split_lines("pidfile ${RUN}/x.pid\nuser \"${U}\"\n", "x.cfg", {}, diagnostics)
    assert [d.location.line for d in diagnostics.warnings] == [1]
    assert "only expanded inside double quotes" in diagnostics.warnings[0].message


def test_quoted_words_are_marked():
    marked = [(w.text, w.quoted) for w in split_words('if "{" { x } "!y"', HERE, {})]
    assert marked == [("if", False), ("{", True), ("{", False), ("x", False), ("}", False), ("!y", True)]


@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00\n")))
def test_quote_round_trips(text):
    assert words(quote(text)) == [text]


@given(st.lists(st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\n")), max_size=5))
def test_quoted_lines_round_trip(texts):
    assert words(" ".join(quote(t) for t in texts)) == texts


@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\n"), max_size=60))
def test_any_line_lexes_or_fails_cleanly(line):
    try:
        split_words(line, HERE, {"A": "1"})
    except LexError as error:
        assert "column" in str(error) or "pseudo-variable" in str(error)


# ------------------------------------------------------------- conditional blocks

from haply.config.lexer import apply_conditions, evaluate_condition  # noqa: E402


def kept(text, environ=None):
    diagnostics = Diagnostics()
    environ = environ or {}
    lines = apply_conditions(split_lines(text, "c.cfg", environ, diagnostics), environ, diagnostics)
    return [" ".join(l.texts) for l in lines], [str(d) for d in diagnostics.items]


@pytest.mark.parametrize(
    "condition, expected",
    [
        ("", False), ("0", False), ("1", True), ("!0", True), ("defined(HOME)", True), ("defined(NOPE)", False),
        ("streq(a,a)", True), ("strneq(a,a)", False), ("feature(OPENSSL)", True), ("feature(QUIC)", False),
        ("version_atleast(2.4-dev19)", True), ("version_atleast(2.7)", False), ("version_before(2.7)", True),
        ("1 && 0 || 1", True), ("0 || 1 && 0", False), ("!(0 || 0) && 1", True), ("( 1 )", True),
    ],
)
def test_conditions(condition, expected):
    assert evaluate_condition(condition.split(), {"HOME": "/root"}) is expected


@pytest.mark.parametrize(
    "condition, message",
    [("nope", "unknown term 'nope'"), ("1 &&", "condition ends too early"), ("(1", "missing ')'"),
     ("streq(a)", "streq() takes two arguments"), ("frob(x)", "unknown predicate 'frob()'"), ("1 1", "unexpected '1'")],
)
def test_bad_conditions(condition, message):
    with pytest.raises(LexError, match=re.escape(message)):
        evaluate_condition(condition.split(), {})


def test_blocks_keep_the_right_lines():
    text = """\
.if streq("$MODE",tls)
  a
.elif defined(ALT)
  b
  .if 0
    c
  .else
    d
  .endif
.else
  e
.endif
f
"""
    assert kept(text, {"MODE": "tls"})[0] == ["a", "f"]
    assert kept(text, {"ALT": ""})[0] == ["b", "d", "f"]
    assert kept(text)[0] == ["e", "f"]


def test_messages_and_block_errors():
    lines, found = kept('.warning "careful"\n.notice hi\n.diag x\n.if 0\n.alert "not shown"\n.endif\n.alert "stop"\n.endif\n.if 1\n')
    assert lines == []
    assert found == [
        "c.cfg:1: warning: warning: careful",
        "c.cfg:2: warning: notice: hi",
        "c.cfg:7: error: alert: stop",
        "c.cfg:8: error: '.endif' without a matching '.if'",
        "c.cfg:9: error: '.if' without a matching '.endif'",
    ]
    assert kept(".if 1\n.else\n.else\n.endif\n")[1] == [
        "c.cfg:3: error: '.else' after '.else' in the block opened at c.cfg:1"
    ]


# ---------------------------------------------------------------------- oracle
# HAProxy names the user it cannot find, which shows how it read the word:
# `user WORD` in a global section is a window on HAProxy's own lexer.

import shutil  # noqa: E402
import subprocess  # noqa: E402

HAPROXY = shutil.which("haproxy") or "/usr/sbin/haproxy"
ORACLE_WORDS = [
    r"x\qy", r"a\$b", r'"a\$b"', r'"a\db"', r'"a\ b"', r"a\ b", r'"a#b"', r"a\#b", r'"a"b' + "'c'",
    r"'a\b'", r'"a\\b"', r'"\x41\x42"', r"\x41", r'"${HAPLY_ORACLE}"', r'"x$HAPLY_ORACLE-y"',
    r'"${HAPLY_UNSET-dflt}"', r"${HAPLY_ORACLE}", r"x\\", r'"it\'s"', r"'\"q\"'",
]


@pytest.mark.oracle
@pytest.mark.parametrize("word", ORACLE_WORDS)
def test_words_read_like_haproxy(tmp_path, word):
    path = tmp_path / "lex.cfg"
    path.write_text(f"global\n    user {word}\n")
    environ = {"HAPLY_ORACLE": "val", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
    result = subprocess.run([HAPROXY, "-c", "-f", str(path)], capture_output=True, text=True, timeout=30,
                            env=environ, stdin=subprocess.DEVNULL)
    match = re.search(r"cannot find user id for '(.*)' \(", result.stderr, re.S)
    assert match, result.stderr
    assert words(f"user {word}", environ) == ["user", match.group(1)]
