"""Rewriting requests and responses in place, against HAProxy 2.6:
`replace-header` / `replace-value` on both sides, and the request-line
actions (`set-method`, `set-path`, `set-pathq`, `set-query`, `set-uri`,
`replace-path`, `replace-pathq`, `replace-uri`), for origin-form and
absolute-form targets, with log-format values and back-references; and the
order of the rules: a rewritten path is what `use_backend` and a later
`deny` see.

Compared: the request line and fields the server received (names
lower-cased: HAProxy lower-cases them, haply keeps the client's spelling),
and the status and fields of the answer the client received.
"""

from __future__ import annotations

import re

import pytest

from tests.interop.test_proxy_oracle import PRELUDE, raw_exchange
from tests.support.haply_process import PROXIES
from tests.support.haproxy_oracle import echo_backends, free_port, haproxy_available, run_haproxy
from tests.support.syslog_receiver import Receiver

pytestmark = pytest.mark.skipif(not haproxy_available(), reason="HAProxy oracle not installed")

VOLATILE = {"date", "server", "content-length"}


def lines_of(head: bytes) -> list[bytes]:
    """A head's first line, then its fields with lower-cased names."""
    first, *fields = re.split(rb"\r?\n", head)
    out = [first]
    for field in fields:
        name, _, value = field.partition(b":")
        if name and name.lower() not in {v.encode() for v in VOLATILE}:
            out.append(name.lower() + b":" + value)
    return out


def seen(received: bytes) -> tuple[list[bytes], list[bytes]]:
    """(the answer's status line and fields, the request the server got)."""
    head, _, body = received.partition(b"\r\n\r\n")
    status, *fields = lines_of(head)
    answer = [status, *sorted(fields)]  # haply's error pages order theirs otherwise
    if not body.startswith((b"a\n", b"api\n")):
        return answer, []
    _, _, echoed = body.partition(b"\n")  # the echo server's name, then the request head
    return answer, lines_of(echoed.strip())


def run_both(sections: str, request: bytes) -> dict[str, tuple]:
    results = {}
    for name, binary in PROXIES.items():
        port = free_port()
        with echo_backends(["a", "api"]) as (a, api):
            config = PRELUDE + sections.format(port=port, a=a.address, api=api.address)
            with run_haproxy(config, binary):
                results[name] = seen(raw_exchange(port, request))
    return results


FIELD_RULES = r"""
frontend fe
    bind 127.0.0.1:{port}
    default_backend be
backend be
    http-request replace-header X-A b Z
    http-request replace-value X-C ^b$ B
    http-request replace-header X-D ^$ empty
    http-request replace-value X-E (.*) <\1>-%[src]
    http-request set-header X-B "a b"
    http-request replace-header X-B ^(a)\ (b)$ \2\\\1
    http-request replace-header Host ^(.*)$ \1.example if {{ path_beg /h }}
    http-request replace-header X-Nothing .* never
    http-response replace-header X-Backend (.) <\1>
    http-response replace-value Content-Type ^text/(.*) application/\1
    server a {a}
"""


@pytest.mark.parametrize("path", ["/", "/h"])
def test_field_rewrites_as_haproxy(path):
    request = (f"GET {path} HTTP/1.1\r\nHost: h\r\nX-A: abc\r\nX-A: one, two\r\nX-C: a ,b , c\r\n"
               "X-D:\r\nX-E: \"a,b\", c\r\nConnection: close\r\n\r\n").encode()
    results = run_both(FIELD_RULES, request)
    assert results["haply"] == results["haproxy"]
    answer, server_saw = results["haply"]
    assert b"x-backend: <a>" in answer and b"content-type: application/plain" in answer
    assert b"x-a: Z" in server_saw and b"x-c: a ,B, c" in server_saw


LINE_RULES = [
    "set-path /new%[path]",
    "set-pathq /q?z=2",
    "set-query y=%[query]",
    "set-uri /u?v",
    r"replace-path /a/(.*) /x/\1",
    r"replace-pathq /a/(.*) /x/\1",
    r"replace-uri ^/a(.*) /zz\1",
    r"replace-path ^/nomatch(.*) /x\1",
    "set-method PUT",
    "set-path %[hdr(x-p)]%[path]",
    "set-query m=%[method]&u=%[url]",
]


@pytest.mark.parametrize("target", ["/a/b?x=1", "http://h/a/b?x=1"])
@pytest.mark.parametrize("rule", LINE_RULES)
def test_request_line_rewrites_as_haproxy(rule, target):
    sections = f"""
frontend fe
    bind 127.0.0.1:{{port}}
    default_backend be
backend be
    http-request {rule}
    server a {{a}}
"""
    request = f"GET {target} HTTP/1.1\r\nHost: h\r\nX-P: /p1, /p2\r\nConnection: close\r\n\r\n".encode()
    results = run_both(sections, request)
    assert results["haply"] == results["haproxy"]


ORDER_RULES = r"""
frontend fe
    bind 127.0.0.1:{port}
    http-request deny if {{ path_beg /api/secret }}
    http-request replace-path ^/v1(/.*) /api\1
    http-request deny deny_status 429 if {{ path /api/limited }}
    use_backend api if {{ path_beg /api }}
    default_backend be
backend api
    http-request set-path /inner%[path] if {{ path_beg /api/in }}
    http-request return status 200 content-type text/plain string inner if {{ path_beg /inner }}
    server api {api}
backend be
    server a {a}
"""


@pytest.mark.parametrize("path", ["/v1/secret", "/v1/limited", "/v1/x", "/v1/in", "/other"])
def test_rewritten_request_is_what_later_rules_see(path):
    request = f"GET {path} HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n".encode()
    results = run_both(ORDER_RULES, request)
    assert results["haply"] == results["haproxy"]


RESPONSE_CONDITIONS = """
frontend fe
    bind 127.0.0.1:{port}
    default_backend be
backend be
    http-response set-header X-Path yes if {{ path /a }}
    http-response set-header X-Src yes if {{ src 127.0.0.1 }}
    http-response set-header X-Host yes if {{ hdr(host) h }}
    http-response set-header X-Not-Host yes unless {{ hdr(host) h }}
    http-response set-header X-Method yes if {{ method GET }}
    http-response set-header X-Port yes if {{ dst_port {port} }}
    server a {a}
"""


def test_response_rule_conditions_read_what_haproxy_reads():
    """In an http-response rule an acl on the request's target or fields never
    matches (HAProxy warns so); the method and the addresses still do."""
    results = run_both(RESPONSE_CONDITIONS, b"GET /a HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
    assert results["haply"] == results["haproxy"]
    answer, _ = results["haply"]
    assert [field for field in answer if field.startswith(b"x-") and field != b"x-backend: a"] == [
        b"x-method: yes", b"x-not-host: yes", b"x-port: yes", b"x-src: yes"]


SET_STATUS = """
frontend fe
    bind 127.0.0.1:{port}
    http-response set-status 299 reason "Fine Thanks" if {{ method POST }}
    default_backend be
backend be
    http-response set-status 503
    http-response set-status 504 if {{ method PUT }}
    http-response set-status 418 if {{ method DELETE }}
    http-response set-status 207 if {{ method OPTIONS }}
    http-response set-header X-Rule yes
    server a {a}
"""


@pytest.mark.parametrize("method", ["GET", "POST", "PUT", "DELETE", "OPTIONS"])
def test_set_status_as_haproxy(method):
    """The backend's rules, then the frontend's; the last that applies wins;
    the reason is HAProxy's for the status unless one is given."""
    request = f"{method} / HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".encode()
    results = run_both(SET_STATUS, request)
    assert results["haply"] == results["haproxy"]


def test_set_status_is_what_the_log_shows():
    seen = {}
    for name, binary in PROXIES.items():
        receiver = Receiver()
        port = free_port()
        try:
            with echo_backends(["a"]) as (a,):
                config = PRELUDE + f"""
frontend fe
    bind 127.0.0.1:{port}
    log 127.0.0.1:{receiver.port} local2 info
    option httplog
    default_backend be
backend be
    http-response set-status 404 if {{ method GET }}
    server a {a.address}
"""
                with run_haproxy(config, binary):
                    receiver.lines(5, timeout=0.3)  # the start-up probe's line
                    raw_exchange(port, b"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
                    seen[name] = [message.split("] ", 1)[1].split()[3] for message in receiver.messages(1)]
        finally:
            receiver.close()
    assert seen["haply"] == seen["haproxy"] == ["404"]


STATUS_CONDITIONS = """
frontend fe
    bind 127.0.0.1:{port}
    default_backend be
backend be
    acl ok status 200
    acl failed status 500:599
    http-response set-header X-Ok yes if ok
    http-response set-header X-Failed yes if failed
    http-response set-header X-Ge yes if {{ status ge 200 }}
    http-response set-header X-Lt yes if {{ status lt 200 }}
    http-response set-header X-List yes if {{ status 201 204 200 }}
    http-response set-header X-Not-Ok yes unless ok
    http-request set-header X-Never yes if failed
    http-response set-status 299 if {{ status 200 }} {{ method POST }}
    server a {a}
"""


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_status_acls_as_haproxy(method):
    request = f"{method} / HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".encode()
    results = run_both(STATUS_CONDITIONS, request)
    assert results["haply"] == results["haproxy"]
    answer, server_saw = results["haply"]
    assert [f for f in answer if f.startswith(b"x-") and f != b"x-backend: a"] == [
        b"x-ge: yes", b"x-list: yes", b"x-ok: yes"]
    assert not any(f.startswith(b"x-never") for f in server_saw)


COMMA_VALUES = """
frontend fe
    bind 127.0.0.1:{port}
    http-request set-header X-Last %[req.hdr(x-k)]
    http-request set-header X-First %[req.hdr(x-k,1)]
    http-request set-header X-Before-Last %[req.hdr(x-k,-2)]
    http-request set-header X-Whole %[req.fhdr(x-k,1)]
    http-request set-header X-Zero %[req.hdr(x-k,0)]
    http-request return status 201 if {{ hdr(x-k) b }}
    http-request return status 202 if {{ hdr_beg(x-k) q }}
    http-request return status 203 if {{ hdr_sub(x-k) "a, b" }}
    http-request return status 204 if {{ hdr(x-k) "\\"x, y\\"" }}
    http-request return status 205 if {{ hdr_end(x-k) -i A }}
    default_backend be
backend be
    server a {a}
"""


@pytest.mark.parametrize("value", [b"a, b", b"a,b", b"b ,a", b"\"x, y\", z", b"Q1, z", b"zA", b"a", b"\"a, b\""])
def test_header_values_are_comma_separated_as_haproxy_reads_them(value):
    """hdr() acls and req.hdr() samples see each comma-separated value of a
    field apart, except inside double quotes; an occurrence counts from the
    first (1), or from the last (-1, or 0); req.fhdr() counts whole fields."""
    request = b"GET / HTTP/1.1\r\nHost: h\r\nX-K: " + value + b"\r\nConnection: close\r\n\r\n"
    results = run_both(COMMA_VALUES, request)
    assert results["haply"] == results["haproxy"]
