"""Head size limits against HAProxy 2.6: a response head past them is a 502
(the server's connection dropped before the head can grow without bound), and
tune.bufsize / tune.http.maxhdr move them for requests and responses alike.

HAProxy holds a response head in one buffer (tune.bufsize less tune.maxrewrite)
and counts at most tune.http.maxhdr lines; a head over either is answered 502.
haply keeps the same budgets, counted in the bytes the server sent (HAProxy's
exact byte limit also depends on its internal representation, about 90 bytes
lower, so the cases stay clear of the boundary).
"""

from __future__ import annotations

import pytest

from tests.interop.test_proxy_oracle import PRELUDE, raw_exchange, run_both
from tests.support.haproxy_oracle import haproxy_available
from tests.support.scripted_backend import Conn, scripted_backend

pytestmark = pytest.mark.skipif(not haproxy_available(), reason="HAProxy oracle not installed")

ENDLESS_LINES = 2000  # 2 MB of header lines, if nobody stops the server


def fields(count: int) -> bytes:
    return b"".join(b"X-F%03d: v\r\n" % i for i in range(count))


HEADS = {
    # path: (head fields after the status line, expected status)
    "/large-field": (b"X-Big: " + b"a" * 20000 + b"\r\n", 502),
    "/101-fields": (fields(100), 502),  # plus Content-Length: 101 fields
    "/150-fields": (fields(150), 502),
    "/100-fields": (fields(99), 200),
    "/15000-bytes": (b"X-Big: " + b"a" * 14950 + b"\r\n", 200),
}


def answer(conn: Conn) -> None:
    while (request := conn.read_request()) is not None:
        try:
            if request.url == "/endless":
                conn.send(b"HTTP/1.1 200 OK\r\n")
                for _ in range(ENDLESS_LINES):
                    conn.send(b"X-F: " + b"b" * 1000 + b"\r\n")
                return
            extra, _ = HEADS[request.url]
            conn.send(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n" + extra + b"\r\nok")
        except OSError:
            return  # the proxy gave up on this connection


def status_and_body(reply: bytes) -> tuple[bytes, bytes]:
    head, _, body = reply.partition(b"\r\n\r\n")
    return head.split(b" ")[1], body if head.startswith(b"HTTP/1.1 200") else b""


@pytest.mark.parametrize("path", sorted(HEADS) + ["/endless"])
def test_oversized_response_head_is_a_502(path):
    # haply retries a junk response by default (HAProxy does not): one attempt each.
    with scripted_backend(answer) as backend:
        cfg = (PRELUDE + "\nlisten app\n    bind 127.0.0.1:@PORT@\n    retries 0\n"
               f"    server s {backend.address}\n")
        results = run_both(cfg, lambda port: status_and_body(raw_exchange(
            port, f"GET {path} HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n".encode())))
    expected = HEADS[path][1] if path in HEADS else 502
    assert results["haply"] == results["haproxy"]
    assert results["haply"][0] == str(expected).encode()
    if expected == 200:
        assert results["haply"][1] == b"ok"


TUNED = PRELUDE.replace("    maxconn 1000\n", "    maxconn 1000\n    tune.bufsize 32768\n    tune.http.maxhdr 150\n")


def large_answer(conn: Conn) -> None:
    """Answers with as many fields as the request had, and one as large."""
    while (request := conn.read_request()) is not None:
        big = dict((k.lower(), v) for k, v in request.headers).get("x-big", "")
        extra = fields(len(request.headers) - 2) + b"X-Big: " + big.encode() + b"\r\n"
        conn.send(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n" + extra + b"\r\nok")


@pytest.mark.parametrize("case", ["20000-bytes", "140-fields", "40000-bytes", "160-fields"])
def test_tune_bufsize_and_maxhdr_move_the_limits(case):
    """With tune.bufsize 32768 and tune.http.maxhdr 150, heads of 20 KB and of
    140 fields pass both ways; 40 KB and 160 fields are still refused."""
    size, unit = case.split("-")
    if unit == "bytes":
        request = b"GET / HTTP/1.1\r\nHost: h\r\nX-Big: " + b"a" * int(size) + b"\r\n"
    else:
        request = b"GET / HTTP/1.1\r\nHost: h\r\n" + fields(int(size) - 2) + b"X-Big: a\r\n"
    request += b"Connection: close\r\n\r\n"
    with scripted_backend(large_answer) as backend:
        cfg = TUNED + f"\nlisten app\n    bind 127.0.0.1:@PORT@\n    server s {backend.address}\n"
        results = run_both(cfg, lambda port: raw_exchange(port, request))
        reached = len(backend.requests)
    statuses = {name: status_and_body(reply)[0] for name, reply in results.items()}
    if size in ("20000", "140"):
        assert statuses == {"haply": b"200", "haproxy": b"200"}
        assert reached == 2
        assert all(reply.endswith(b"ok") for reply in results.values())
    else:
        # HAProxy answers 400; haply names the fault (431), as for the defaults.
        assert statuses == {"haply": b"431", "haproxy": b"400"}
        assert reached == 0
