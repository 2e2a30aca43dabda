"""Trailer fields (after the last chunk of a chunked body), through haply and
HAProxy 2.6 on the same configuration.

Requests: crafted chunked requests go through both proxies to a server that
records what it receives, the trailer section included (the helpers of
test_request_differential_oracle.py). Responses: a scripted server answers
with crafted chunked bodies and trailers, and what the client gets is
compared (the helpers of test_response_differential_oracle.py), plain, with
http-response rules, compressed and from the cache.

What HAProxy does, and haply with it, is described in haply/http/trailers.py.
Where haply differs on purpose (obs-fold and control characters refused in a
trailer as in a head, a Transfer-Encoding trailer in a request refused) the
cases are left out; test_the_oracle_still_does_what_the_cases_expect pins
HAProxy's side of the points the comparisons rely on.
"""

from __future__ import annotations

import contextlib
import time
import zlib

import pytest

from tests.interop.test_request_differential_oracle import run_cases, server_view
from tests.interop.test_response_differential_oracle import CONFIG, exchange, through_both
from tests.support.haply_process import PROXIES
from tests.support.haproxy_oracle import free_port, haproxy_available, run_haproxy
from tests.support.scripted_backend import scripted_backend

pytestmark = pytest.mark.skipif(not haproxy_available(), reason="HAProxy oracle not installed")

# ------------------------------------------------------------------ requests

POST = b"POST /a HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n"
GET = b"GET /b HTTP/1.1\r\nHost: h\r\n\r\n"


def fields(count: int) -> bytes:
    return b"".join(b"X-%d: v\r\n" % i for i in range(count))


REQUESTS: dict[str, bytes | list[bytes]] = {
    "no trailers": POST + b"\r\n" + GET,
    "one trailer": POST + b"X-Trail: one\r\n\r\n" + GET,
    "names and spaces": POST + b"X-Up: A\r\nx-sp:  a b  \r\nX-Empty:\r\nx-tight:v\r\n\r\n" + GET,
    # hop-by-hop and framing names in a trailer section act on nothing
    "hop-by-hop names": POST + (b"Connection: x-trail\r\nKeep-Alive: 5\r\nTE: trailers\r\n"
                                b"Proxy-Connection: close\r\nUpgrade: h2c\r\nTrailer: x\r\n"
                                b"Content-Length: 5\r\nHost: other\r\n\r\n") + GET,
    "Connection close then a request": POST + b"Connection: close\r\n\r\n" + GET,
    "Connection close, a request later": [POST + b"Connection: close\r\n\r\n", GET],
    "section over two writes": [POST + b"X-A: 1\r\n", b"X-B: 2\r\n\r\n", GET],
    "last chunk alone, then the section": [POST, b"X-A: 1\r\n\r\n", GET],
    "100 fields": POST + fields(100) + b"\r\n" + GET,
    "101 fields": POST + fields(101) + b"\r\n" + GET,
    "15000 bytes": POST + b"X-Big: " + b"a" * 15000 + b"\r\n\r\n" + GET,
    "17000 bytes": POST + b"X-Big: " + b"a" * 17000 + b"\r\n\r\n" + GET,
    "no colon": POST + b"X-A 1\r\n\r\n" + GET,
    "empty name": POST + b": v\r\n\r\n" + GET,
    "Transfer-Encoding other than chunked": POST + b"Transfer-Encoding: foo\r\n\r\n" + GET,
}

RULES = ("    http-request del-header x-trail\n    http-request set-header x-keep new\n"
         "    http-request add-header x-added 1\n")
WITH_RULES = {"rules leave the trailers": POST + b"X-Trail: one\r\nX-Keep: k\r\n\r\n" + GET}
BUFFERED = {
    "buffered body and trailers": POST + b"X-Trail: one\r\n\r\n" + GET,
    "buffered, section later": [POST, b"X-Trail: one\r\n\r\n", GET],
}


@pytest.fixture(scope="module")
def request_results():
    return {**run_cases(REQUESTS), "rules": run_cases(WITH_RULES, RULES),
            "buffered": run_cases(BUFFERED, "    option http-buffer-request\n")}


def _compare(results, case):
    haply, haproxy = results["haply"][case], results["haproxy"][case]
    assert haply[0] == haproxy[0]
    assert server_view(haply[1]) == server_view(haproxy[1])


@pytest.mark.parametrize("case", list(REQUESTS))
def test_request_trailers_as_haproxy_forwards_them(request_results, case):
    _compare(request_results, case)


@pytest.mark.parametrize("case", list(WITH_RULES))
def test_request_rules_do_not_touch_trailers(request_results, case):
    _compare(request_results["rules"], case)


@pytest.mark.parametrize("case", list(BUFFERED))
def test_buffered_request_keeps_its_trailers(request_results, case):
    _compare(request_results["buffered"], case)


# ----------------------------------------------------------------- responses

CHUNKED_HEAD = (b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nCache-Control: max-age=60\r\n"
                b"Transfer-Encoding: chunked\r\n\r\n")
BODY = b"5\r\nhello\r\n"
BIG_BODY = b"".join(b"1000\r\n" + bytes([97 + i % 26]) * 4096 + b"\r\n" for i in range(40))

# path: the parts the server sends, a pause between them
ANSWERS = {
    "plain": [CHUNKED_HEAD + BODY + b"0\r\n\r\n"],
    "trailers": [CHUNKED_HEAD + BODY + b"0\r\nX-Trail: one\r\nX-Two: 2\r\n\r\n"],
    "names-and-spaces": [CHUNKED_HEAD + BODY + b"0\r\nX-Up: A\r\nx-sp:  a b  \r\nX:\r\n\r\n"],
    "hop-by-hop": [CHUNKED_HEAD + BODY + (b"0\r\nConnection: close\r\nKeep-Alive: x\r\n"
                                          b"Content-Length: 9\r\nTE: trailers\r\nUpgrade: h2c\r\n"
                                          b"Transfer-Encoding: chunked\r\nSet-Cookie: a=b\r\n\r\n")],
    "no-body": [CHUNKED_HEAD + b"0\r\nX-Trail: one\r\n\r\n"],
    "extension": [CHUNKED_HEAD + BODY + b"0;name=\"a:b\"\r\nX-Trail: one\r\n\r\n"],
    "section-later": [CHUNKED_HEAD + BODY + b"0\r\n", b"X-Trail: one\r\n", b"\r\n"],
    "byte-by-byte": [CHUNKED_HEAD + BODY] + [bytes([byte]) for byte in b"0\r\nX-T: 1\r\n\r\n"],
    "large-body": [CHUNKED_HEAD, BIG_BODY[:70000], BIG_BODY[70000:] + b"0\r\nX-Trail: big\r\n\r\n"],
    "100-fields": [CHUNKED_HEAD + BODY + b"0\r\n" + fields(100) + b"\r\n"],
    "101-fields": [CHUNKED_HEAD + BODY + b"0\r\n" + fields(101) + b"\r\n"],
    "no-colon": [CHUNKED_HEAD + BODY + b"0\r\nX-A 1\r\n\r\n"],
    "15000-bytes": [CHUNKED_HEAD + BODY + b"0\r\nX-Big: " + b"a" * 15000 + b"\r\n\r\n"],
    "17000-bytes": [CHUNKED_HEAD + BODY + b"0\r\nX-Big: " + b"a" * 17000 + b"\r\n\r\n"],
}
LIMITS = {"100-fields", "101-fields", "no-colon", "15000-bytes", "17000-bytes"}
SECOND = b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nsecond"
CLIENTS = {
    "GET": b"GET /%s HTTP/1.1\r\nHost: h\r\nAccept-Encoding: gzip\r\n\r\n",
    "GET 1.0": b"GET /%s HTTP/1.0\r\n\r\n",
    "HEAD": b"HEAD /%s HTTP/1.1\r\nHost: h\r\n\r\n",
}
SETTINGS = {
    "rules": "    http-response del-header x-trail\n    http-response set-header x-new 1\n",
    "compression": "    compression algo gzip\n    compression type text/plain\n",
}


def answering(conn) -> None:
    while (request := conn.read_request()) is not None:
        name = request.url.lstrip("/").split("?")[0]
        if name == "second":
            conn.send(SECOND)
            continue
        parts = ANSWERS[name]
        for number, part in enumerate(parts):
            if number:
                time.sleep(0.02)
            conn.send(part)


@contextlib.contextmanager
def both(options: str):
    """Both proxies, on one configuration plus options, in front of one server."""
    with scripted_backend(answering) as server, contextlib.ExitStack() as stack:
        ports = {}
        for name, binary in PROXIES.items():
            port = free_port()
            config = CONFIG.format(port=port, server=server.address) + options
            stack.enter_context(run_haproxy(config, binary=binary))
            ports[name] = port
        yield ports


@pytest.fixture(scope="module")
def plain():
    with both("") as ports:
        yield ports


@pytest.fixture(scope="module", params=["rules", "compression"])
def setting(request):
    with both(SETTINGS[request.param]) as ports:
        yield ports


# The limits and HEAD are compared once, without rules or compression.
BODIES = [answer for answer in ANSWERS if answer not in LIMITS]


def decoded(result):
    """An exchange's result with its chunked body as (content, trailer
    section): where chunks are cut, and where a compressor flushed, depend
    on how the bytes came in, for either proxy."""
    (heads, body), closed, second = result
    fields = dict(heads[-1][1]) if heads else {}
    if fields.get(b"transfer-encoding") != b"chunked" or not body:
        return result
    content, rest = b"", body
    while True:
        size_line, _, rest = rest.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            break
        content, rest = content + rest[:size], rest[size + 2:]
    if fields.get(b"content-encoding") == b"gzip":
        content = zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(content)
    return (heads, content, rest), closed, second


@pytest.mark.parametrize("answer", list(ANSWERS))
@pytest.mark.parametrize("client", list(CLIENTS))
def test_response_trailers_as_haproxy_forwards_them(plain, answer, client):
    results = through_both(plain, CLIENTS[client] % answer.encode())
    assert decoded(results["haply"]) == decoded(results["haproxy"])


@pytest.mark.parametrize("answer", BODIES)
@pytest.mark.parametrize("client", ["GET", "GET 1.0"])
def test_response_rules_and_compression_keep_the_trailers(setting, answer, client):
    results = through_both(setting, CLIENTS[client] % answer.encode())
    assert decoded(results["haply"]) == decoded(results["haproxy"])


CACHE = """\
    http-request cache-use c
    http-response cache-store c

cache c
    total-max-size 4
    max-age 60
"""


def _without_age(result):
    (heads, body), closed, second = result
    heads = [(line, [field for field in fields if field[0] != b"age"]) for line, fields in heads]
    return decoded(((heads, body), closed, second))


@pytest.mark.parametrize("answer", ["trailers", "hop-by-hop", "section-later", "plain"])
def test_a_cached_answer_keeps_its_trailers(answer):
    """The first request fills the cache, the next ones are hits: HAProxy
    sends the stored trailers after each hit's body (not after a HEAD's head)."""
    with both(CACHE) as ports:
        for client in ("GET", "GET", "GET 1.0", "HEAD"):
            results = through_both(ports, CLIENTS[client] % (answer + "?cached").encode())
            assert _without_age(results["haply"]) == _without_age(results["haproxy"])


def test_the_oracle_still_does_what_the_cases_expect():
    """HAProxy's side of the points the comparisons rely on."""
    requests = run_cases({"one": REQUESTS["one trailer"],
                          "close": REQUESTS["Connection close then a request"],
                          "101": REQUESTS["101 fields"]})["haproxy"]
    _, seen = requests["one"]
    assert seen[0][2] == b"abcx-trail: one\r\n"
    _, seen = requests["close"]  # the request after it is read and sent on
    assert seen[0][2] == b"abcconnection: close\r\n" and seen[1][0] == b"GET /b HTTP/1.1"
    (statuses, _, closed), seen = requests["101"]
    assert statuses == [b"400"] and closed and seen == []
    with both("") as ports:
        (_, body), _, second = exchange(ports["haproxy"], CLIENTS["GET"] % b"hop-by-hop")
        assert body.startswith(b"5\r\nhello\r\n0\r\nconnection: close\r\nkeep-alive: x\r\n")
        assert second[1] == b"second"
        (heads, _), _, _ = exchange(ports["haproxy"], CLIENTS["GET"] % b"no-colon")
        assert heads[0][0] == b"HTTP/1.1 502 Bad Gateway"
