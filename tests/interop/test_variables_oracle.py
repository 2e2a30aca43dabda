"""Variables and sample expressions, against HAProxy 2.6: `http-request
set-var|set-var-fmt|unset-var` with their conditions, the converters haply
evaluates (haply.proxy.samples), `var()` read back in header values, in acls
and in a log line, `http-response set-var`, and sess. variables kept across
the requests of one connection.

Compared: the fields the server received and the fields of the answer the
client received (each value printed in its own field), the status a `var()`
acl gives, and the log line's variable.
"""

from __future__ import annotations

import pytest

from tests.interop.test_proxy_oracle import PRELUDE, raw_exchange
from tests.interop.test_rewrite_oracle import run_both, seen
from tests.support.haply_process import PROXIES
from tests.support.haproxy_oracle import echo_backends, free_port, haproxy_available, run_haproxy
from tests.support.syslog_receiver import Receiver

pytestmark = pytest.mark.skipif(not haproxy_available(), reason="HAProxy oracle not installed")

# (variable, expression): each is set by an http-request rule, then printed
# in a request field X-<variable> the echo server shows back.
EXPRESSIONS = [
    ("host", "req.hdr(host),lower"),
    ("n", "str(42)"),
    ("i", "int(42)"),
    ("neg", "int(-7)"),
    ("b", "bool(1)"),
    ("ua", "req.fhdr(user-agent)"),
    ("empty", "str()"),
    ("cookie", "req.cook(c)"),
    ("param", "urlp(p)"),
    ("first", "req.hdr(m,1)"),
    ("last", "req.hdr(m)"),
    ("whole", "req.fhdr(m,1)"),
    ("count", "req.hdr_cnt(m)"),
    ("decoded", "path,url_dec"),
    ("query", "query"),
    ("method", "method"),
    ("tls", "ssl_fc"),
    ("masked", "src,ipmask(24)"),
    ("srchex", "src,hex"),
    ("field_last", "req.hdr(f),field(-1,.)"),
    ("field_two", "req.hdr(f),field(2,.,2)"),
    ("field_rest", "req.hdr(f),field(2,.,0)"),
    ("field_far", "req.hdr(f),field(9,.)"),
    ("word_last", "req.hdr(f),word(-1,.)"),
    ("word_two", "req.hdr(f),word(1,.,2)"),
    ("word_back", "req.hdr(f),word(-2,.,2)"),
    ("regsub", "req.hdr(f),regsub(B,x,ig)"),
    # a ')' ends the arguments: a regular expression with groups is quoted
    # (the backslashes keep the quotes from the configuration's own reading)
    ("regsub_one", r'req.hdr(f),regsub(\"([bc])\",<\\1>)'),
    ("regsub_group", r'req.hdr(host),regsub(\"^([^:]*):(.*)$\",\\2-\\1)'),
    ("regsub_quoted", r"req.hdr(host),regsub(\'(e)\',x,g)"),
    ("length_int", "int(12345),length"),
    ("lower_int", "int(12345),lower"),
    ("hex_int", "int(10),hex"),
    ("hex_text", "req.hdr(host),hex"),
    ("base64", "req.hdr(host),base64"),
    ("b64dec", "str(aGVsbG8=),b64dec"),
    ("bytes", "req.hdr(f),bytes(3)"),
    ("bytes_len", "req.hdr(f),bytes(2,3)"),
    ("rtrim", "req.hdr(f),rtrim(.Cc)"),
    ("ltrim", "req.fhdr(user-agent),ltrim(cu)"),
    ("concat", "str(42),concat(<,txn.host,>)"),
    ("add", "str(42),add(1)"),
    ("add_text", "req.hdr(host),add(1)"),
    ("add_signed", "str(-12abc),add(0)"),
    ("add_space", "str(' 12'),add(0)"),
    ("sub", "int(42),sub(50)"),
    ("mul", "int(-7),mul(3)"),
    ("div", "int(42),div(5)"),
    ("div_negative", "int(-42),div(5)"),
    ("div_zero", "int(42),div(0)"),
    ("mod", "int(-7),mod(5)"),
    ("mod_zero", "int(10),mod(0)"),
    ("and", "int(42),and(15)"),
    ("or", "int(12),or(3)"),
    ("xor", "int(12),xor(10)"),
    ("neg_op", "int(-7),neg"),
    ("cpl", "int(0),cpl"),
    ("not", "bool(1),not"),
    ("bool_int", "int(42),bool"),
    ("odd", "int(42),odd"),
    ("even", "int(3),even"),
    ("djb2", "req.hdr(host),lower,djb2"),
    ("sdbm", "req.hdr(host),lower,sdbm(1)"),
    ("crc32", "req.hdr(host),lower,crc32"),
    ("json", "req.fhdr(user-agent),json"),
    ("json_utf8", "req.hdr(j),json(utf8s)"),
    ("host_only", "req.hdr(host),host_only"),
    ("port_only", "req.hdr(host),port_only"),
    ("iif", "bool(1),iif(yes,no)"),
    ("strcmp", "str(42),strcmp(txn.n)"),
    ("upper", "req.fhdr(user-agent),upper"),
    ("chained", "req.hdr(host),lower,field(1,:),word(1,.),upper,length,mul(2)"),
]

# set-var's conditions, unset-var and set-var-fmt, in order.
MORE_RULES = r"""
    http-request set-var(txn.once,ifnotset) str(one)
    http-request set-var(txn.once,ifnotset) str(two)
    http-request set-var(txn.present,ifexists) str(e1)
    http-request set-var(txn.n,ifexists) str(43)
    http-request set-var(txn.gt) int(5)
    http-request set-var(txn.gt,ifgt) int(3)
    http-request set-var(txn.lt) int(5)
    http-request set-var(txn.lt,iflt) int(3)
    http-request set-var(txn.full,ifnotempty) req.hdr(z)
    http-request set-var(txn.hollow,ifempty) req.hdr(z)
    http-request set-var(txn.gone) str(x)
    http-request unset-var(txn.gone)
    http-request set-var(txn.missing) req.hdr(absent)
    http-request set-var-fmt(txn.fmt) "%[src]:%[ssl_fc]-%[var(txn.n)]"
    http-request set-var(txn.chain) str(abc),set-var(txn.copy),upper
    http-request set-var(txn.when) str(yes) if {{ path_beg /a }}
    http-request set-var(txn.unless) str(yes) unless {{ path_beg /a }}
"""
MORE_NAMES = ["once", "present", "n", "gt", "lt", "full", "hollow", "gone", "missing", "fmt",
              "chain", "copy", "when", "unless", "none_default"]


def _config(direct: bool) -> str:
    """Each expression kept in a variable and printed from it, or (direct)
    printed straight in a field's value (a server takes at most 100 fields:
    two configurations)."""
    rules = [f"    http-request set-var(txn.{name}) {expression}" for name, expression in EXPRESSIONS]
    names = [name for name, _ in EXPRESSIONS] + MORE_NAMES
    shown = [f"    http-request set-header X-{name} %[var(txn.{name})]" for name in names if name != "none_default"]
    shown.append("    http-request set-header X-none_default %[var(txn.nothing,fallback)]")
    if direct:
        shown = [f"    http-request set-header X-direct-{name} %[{expression}]"
                 for name, expression in EXPRESSIONS if "txn." not in expression and "[" not in expression]
    return ("frontend fe\n    bind 127.0.0.1:{port}\n    default_backend be\n"
            + "\n".join(rules) + MORE_RULES + "\n".join(shown) + "\n"
            "backend be\n"
            "    http-response set-var(txn.status) status\n"
            "    http-response set-var(res.twice) status,mul(2)\n"
            "    http-response set-header X-status %[var(txn.status)]\n"
            "    http-response set-header X-twice %[var(res.twice)]\n"
            "    http-response set-header X-host-back %[var(txn.host)]\n"
            "    http-response set-header X-hit yes if {{ var(txn.status) -m int 200 }}\n"
            "    server a {a}\n")


REQUEST = (b"GET /a%20b/c?p=1&p=2 HTTP/1.1\r\nHost: Example.COM:8080\r\n"
           b"User-Agent: curl/8.1 x\r\nCookie: c=1; c=2\r\nm: a, b\r\nm: c\r\n"
           b"f: a.bBc.cC.\r\nj: \xc3\xa9\"x\r\nz:\r\nConnection: close\r\n\r\n")


@pytest.mark.parametrize("direct", [False, True], ids=["in-variables", "in-values"])
def test_variables_and_converters_match_haproxy(direct):
    results = run_both(_config(direct), REQUEST)
    haproxy, haply = results["haproxy"], results["haply"]
    answer, received = haply
    assert answer[0].startswith(b"HTTP/1.1 200"), answer
    # the values the proxies printed, one field each
    ours = {line for line in received if line.startswith(b"x-")}
    theirs = {line for line in haproxy[1] if line.startswith(b"x-")}
    assert len(theirs) > 60
    assert ours == theirs, (sorted(ours - theirs), sorted(theirs - ours))
    assert [line for line in answer if line.startswith(b"x-")] == \
        [line for line in haproxy[0] if line.startswith(b"x-")]
    assert b"x-status: 200" in answer and b"x-twice: 400" in answer and b"x-hit: yes" in answer


ACL_RULES = r"""
frontend fe
    bind 127.0.0.1:{port}
    acl limited var(txn.n) -m int gt 3
    acl named var(txn.who) -m str admin
    acl prefixed var(txn.who) -m beg ad
    acl known var(txn.who) -m found
    acl spare var(txn.who,guest) -m str guest
    http-request set-var(txn.n) req.hdr(n)
    http-request set-var(txn.who) req.hdr(who),lower
    http-request deny deny_status 429 if limited
    http-request deny deny_status 403 if named
    http-request deny deny_status 404 if prefixed
    http-request return status 200 content-type text/plain string guest if spare !known
    default_backend be
backend be
    server a {a}
"""


@pytest.mark.parametrize("fields", [b"n: 4\r\n", b"n: 3\r\nwho: ADMIN\r\n", b"who: adx\r\n",
                                    b"", b"who: other\r\n"])
def test_var_acls_match_haproxy(fields):
    request = b"GET / HTTP/1.1\r\nHost: h\r\n" + fields + b"Connection: close\r\n\r\n"
    results = run_both(ACL_RULES, request)
    assert results["haply"][0][0] == results["haproxy"][0][0]


SESSION_RULES = r"""
frontend fe
    bind 127.0.0.1:{port}
    http-request set-var(sess.first,ifnotset) path
    http-request set-var(txn.seen,ifnotset) path
    http-request set-header X-first %[var(sess.first)]
    http-request set-header X-seen %[var(txn.seen)]
    default_backend be
backend be
    server a {a}
"""


def test_session_variables_outlive_a_request_and_transaction_ones_do_not():
    request = (b"GET /one HTTP/1.1\r\nHost: h\r\n\r\n"
               b"GET /two HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
    received = {}
    for name, binary in PROXIES.items():
        port = free_port()
        with echo_backends(["a"]) as (a,):
            with run_haproxy(PRELUDE + SESSION_RULES.format(port=port, a=a.address), binary):
                data = raw_exchange(port, request)
        received[name] = sorted(line.strip().lower() for line in data.split(b"\n")
                                if line.lower().startswith((b"x-first", b"x-seen")))
    assert received["haply"] == received["haproxy"]
    assert received["haply"] == [b"x-first: /one", b"x-first: /one", b"x-seen: /one", b"x-seen: /two"]


LOG_RULES = r"""
global
    log 127.0.0.1:{log_port} local0
defaults
    mode http
    log global
    timeout connect 2s
    timeout client 5s
    timeout server 5s
frontend fe
    bind 127.0.0.1:{port}
    log-format "v=%[var(txn.host)] s=%[var(txn.code)] d=%[var(txn.path),upper] m=%[var(txn.none)]"
    http-request set-var(txn.host) req.hdr(host),field(1,:)
    http-request set-var(txn.path) path,url_dec
    http-response set-var(txn.code) status,add(1)
    default_backend be
backend be
    server a {a}
"""


def test_variables_in_a_log_line_match_haproxy():
    lines = {}
    for name, binary in PROXIES.items():
        port = free_port()
        receiver = Receiver()
        try:
            with echo_backends(["a"]) as (a,):
                config = LOG_RULES.format(port=port, a=a.address, log_port=receiver.port)
                with run_haproxy(config, binary):
                    raw_exchange(port, b"GET /x%2fy HTTP/1.1\r\nHost: example.org:81\r\n"
                                 b"Connection: close\r\n\r\n")
                    # (the start-up's probe of the port may have its own line first)
                    messages = [m for m in receiver.messages(2, timeout=2) if "v=" in m][-1:]
        finally:
            receiver.close()
        assert messages, name
        lines[name] = messages[0]
    assert lines["haply"] == lines["haproxy"] == "v=example.org s=201 d=/X/Y m=-"
