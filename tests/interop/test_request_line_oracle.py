"""The request line's protocol and version against HAProxy 2.6.

llhttp takes `RTSP/1.0` as it takes `HTTP/1.0`, and on its own refuses
HTTP/1.2 to 1.9. HAProxy answers 400 to a protocol other than HTTP, and reads
a higher HTTP/1 minor version as HTTP/1.1 (RFC 9112 §2.6): the server gets
an HTTP/1.1 request, and the client's `Connection: close` still ends its
connection. haply does the same; the other majors (HTTP/2.0 and up in an
HTTP/1 request line), which HAProxy also forwards as HTTP/1.1, haply refuses
with 505 (framing.request_framing).
"""

from __future__ import annotations

import pytest

from tests.interop.test_proxy_oracle import PRELUDE, raw_exchange, run_both
from tests.support.haproxy_oracle import haproxy_available
from tests.support.scripted_backend import Conn, scripted_backend

pytestmark = pytest.mark.skipif(not haproxy_available(), reason="HAProxy oracle not installed")


def answer(conn: Conn) -> None:
    while conn.read_request() is not None:
        conn.send(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")


def exchange(port: int, line: bytes, fields: bytes = b"") -> tuple[bytes, bool]:
    """(status, whether the proxy closed the connection after the answer)."""
    reply = raw_exchange(port, line + b"\r\nHost: h\r\n" + fields + b"\r\n")
    head = reply.partition(b"\r\n\r\n")[0]
    # raw_exchange reads until the proxy closes or 5 s of silence: a kept
    # connection shows as a timeout, told apart by the answer's Connection field
    closes = b"\r\nconnection: close" in head.lower()
    return head.split(b" ")[1] if head else b"", closes


CASES = {
    # line, fields: (status, connection closed)
    (b"GET /rtsp RTSP/1.0", b""): (b"400", True),
    (b"OPTIONS * RTSP/1.0", b""): (b"400", True),
    (b"GET /v12 HTTP/1.2", b""): (b"200", False),
    (b"GET /v19 HTTP/1.9", b"Connection: close\r\n"): (b"200", True),
    (b"GET /v11 HTTP/1.1", b""): (b"200", False),
}


def test_request_line_protocols_and_versions_as_haproxy():
    with scripted_backend(answer) as backend:
        cfg = (PRELUDE + "\nlisten app\n    bind 127.0.0.1:@PORT@\n    timeout client 300ms\n"
               f"    timeout http-keep-alive 300ms\n    server s {backend.address}\n")
        results = run_both(cfg, lambda port: {case: exchange(port, *case) for case in CASES})
        forwarded = [(request.url, request.version) for request in backend.requests]
    assert results["haply"] == results["haproxy"]
    assert results["haply"] == CASES
    # each proxy sent the three HTTP requests on, as HTTP/1.1, and no RTSP one
    expected = [("/v12", "1.1"), ("/v19", "1.1"), ("/v11", "1.1")]
    assert sorted(forwarded) == sorted(expected * 2)
