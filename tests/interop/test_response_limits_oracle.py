"""Response heads past HAProxy's limits, against HAProxy 2.6: a 502, and the
server's connection dropped before the head can grow without bound.

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
