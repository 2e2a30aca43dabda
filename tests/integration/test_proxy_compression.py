"""`compression` end to end with a real client library: requests (urllib3)
asks for gzip and deflate and decodes what haply sends, over keep-alive, and
streams a body too large to be buffered whole. The comparison with HAProxy is
tests/interop/test_compression_oracle.py."""

from __future__ import annotations

import hashlib

import pytest
import requests

from tests.support.haply_process import rss_kib, run_haply
from tests.support.haproxy_oracle import free_port
from tests.support.scripted_backend import Conn, scripted_backend

PRELUDE = """\
global
    maxconn 1000

defaults
    mode http
    timeout connect 2s
    timeout client 5s
    timeout server 10s
"""
LINE = b'{"id": "%08d", "name": "volume-%08d", "status": "available", "size": 10},\n'
LISTING = b"[\n" + b"".join(LINE % (i, i) for i in range(2000)) + b"]\n"
PAGE = b"<html><body>" + b"<p>Horizon dashboard</p>" * 500 + b"</body></html>"
STYLE = b"body { color: black; }\n" * 300
# what /stream sends: 64 MiB of text, 1 MiB per write
STREAM_BLOCK = b"".join(LINE % (i, i) for i in range(13800))[:1 << 20]
STREAM_BLOCKS = 64


def api(conn: Conn) -> None:
    """A keep-alive API server: a JSON listing with a Content-Length, an HTML
    page in chunks, a stylesheet (a type not in the list), a large stream."""
    while True:
        request = conn.read_request()
        if request is None:
            return
        if request.url == "/volumes":
            conn.respond(200, LISTING, [("Content-Type", "application/json"), ("ETag", '"v7"')])
        elif request.url == "/dashboard":
            conn.send(b"HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\n"
                      b"Transfer-Encoding: chunked\r\n\r\n")
            for i in range(0, len(PAGE), 1000):
                piece = PAGE[i:i + 1000]
                conn.send(b"%x\r\n%s\r\n" % (len(piece), piece))
            conn.send(b"0\r\n\r\n")
        elif request.url == "/style.css":
            conn.respond(200, STYLE, [("Content-Type", "text/css")])
        elif request.url == "/stream":
            conn.send(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                      b"Content-Length: %d\r\n\r\n" % (len(STREAM_BLOCK) * STREAM_BLOCKS))
            for _ in range(STREAM_BLOCKS):
                conn.send(STREAM_BLOCK)


def config(port: int, server: str) -> str:
    return (PRELUDE + f"listen horizon\n    bind 127.0.0.1:{port}\n"
            "    compression algo gzip\n"
            "    compression type text/html text/plain application/json\n"
            f"    server s {server}\n")


def test_requests_decodes_what_haply_compresses_over_keep_alive():
    with scripted_backend(api) as backend:
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        with run_haply(config(port, backend.address)), requests.Session() as session:
            for _ in range(3):  # keep-alive: compressed and plain answers in turn
                reply = session.get(f"{base}/volumes", timeout=5)
                assert reply.headers["Content-Encoding"] == "gzip"
                assert reply.headers["Vary"] == "Accept-Encoding"
                assert reply.headers["ETag"] == 'W/"v7"'
                assert "Content-Length" not in reply.headers
                assert reply.content == LISTING
                reply = session.get(f"{base}/dashboard", timeout=5)
                assert reply.headers["Content-Encoding"] == "gzip"
                assert reply.text == PAGE.decode()
                reply = session.get(f"{base}/style.css", timeout=5)
                assert "Content-Encoding" not in reply.headers  # text/css is not listed
                assert reply.headers["Content-Length"] == str(len(STYLE))
                assert reply.content == STYLE
            reply = session.get(f"{base}/volumes", headers={"Accept-Encoding": "identity"},
                                timeout=5)
            assert "Content-Encoding" not in reply.headers and reply.content == LISTING
        assert backend.connections == 1  # every exchange kept both connections


def test_requests_reads_the_compressed_bytes_it_was_sent():
    """The gzip stream itself, as requests' urllib3 receives it."""
    with scripted_backend(api) as backend:
        port = free_port()
        with run_haply(config(port, backend.address)):
            reply = requests.get(f"http://127.0.0.1:{port}/volumes", stream=True, timeout=5)
            compressed = reply.raw.read(decode_content=False)
            reply.close()
            assert compressed[:3] == b"\x1f\x8b\x08"
            assert len(compressed) < len(LISTING) // 5


@pytest.mark.parametrize("accept", ["gzip", "deflate"])
def test_large_body_streams_compressed_without_growing_memory(accept):
    """64 MiB compressed as it flows: haply never holds the body."""
    with scripted_backend(api) as backend:
        port = free_port()
        cfg = config(port, backend.address).replace("algo gzip", "algo gzip deflate")
        with run_haply(cfg) as proxy:
            pid = proxy.process.pid
            before = rss_kib(pid)
            with requests.get(f"http://127.0.0.1:{port}/stream", stream=True, timeout=30,
                              headers={"Accept-Encoding": accept}) as reply:
                assert reply.headers["Content-Encoding"] == accept
                received = hashlib.sha256()
                for piece in reply.iter_content(1 << 20):
                    received.update(piece)
            expected = hashlib.sha256()
            for _ in range(STREAM_BLOCKS):
                expected.update(STREAM_BLOCK)
            assert received.digest() == expected.digest()
            grown = rss_kib(pid) - before
            assert grown < 24 * 1024, f"haply grew by {grown} KiB compressing 64 MiB"
