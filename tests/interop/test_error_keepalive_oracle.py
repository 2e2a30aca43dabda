"""After an error it answers itself (502 for a server that closed or sent
junk, 503 when no server could be reached, 504 for a server that did not
answer in time), HAProxy 2.6 keeps a keep-alive client's connection and
answers the next request on it: a pipelined request behind the failed one
is not lost. haply is compared with it on the same exchanges."""

from __future__ import annotations

import re
import socket
import time

import pytest

from tests.support.haply_process import PROXIES
from tests.support.haproxy_oracle import free_port, haproxy_available, haproxy_config, run_haproxy
from tests.support.scripted_backend import close_without_answer, keepalive_echo, scripted_backend

pytestmark = pytest.mark.skipif(not haproxy_available(), reason="HAProxy oracle not installed")


def junk(conn) -> None:
    conn.read_request()
    conn.send(b"garbage\r\n\r\n")


def silent(conn) -> None:
    conn.read_request()
    time.sleep(2)  # past `timeout server` (1 s)


CASES = {
    "empty-502": (close_without_answer, b"GET / HTTP/1.1\r\nHost: h\r\n\r\n"),
    "junk-502": (junk, b"GET / HTTP/1.1\r\nHost: h\r\n\r\n"),
    "timeout-504": (silent, b"GET / HTTP/1.1\r\nHost: h\r\n\r\n"),
    "post-502": (close_without_answer, b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc"),
    "no-server-503": (None, b"GET / HTTP/1.1\r\nHost: h\r\n\r\n"),
    # an HTTP/1.0 client that keeps its connection is told so
    "no-server-503-http1.0": (None, b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"),
}
NEXT = b"GET /good HTTP/1.1\r\nHost: h\r\n\r\n"
WHAT = re.compile(rb"HTTP/1\.1 \d+[^\r]*|connection: \w+|good GET /good|<closed>|<open>", re.I)


def exchange(port: int, data: bytes) -> list[bytes]:
    with socket.create_connection(("127.0.0.1", port), timeout=1.6) as sock:
        sock.sendall(data)
        received = b""
        try:
            while chunk := sock.recv(65536):
                received += chunk
            received += b"<closed>"
        except socket.timeout:
            received += b"<open>"
    return [item.lower() for item in WHAT.findall(received)]


@pytest.mark.parametrize("case", sorted(CASES))
def test_connection_kept_after_an_error_as_haproxy(case):
    handler, request = CASES[case]
    seen = {}
    for name, binary in PROXIES.items():
        with scripted_backend(handler or keepalive_echo, "bad") as bad, \
                scripted_backend(keepalive_echo, "good") as good:
            port = free_port()
            server = bad.address if handler is not None else f"127.0.0.1:{free_port()}"
            config = haproxy_config("").replace("timeout server 5s", "timeout server 1s") + f"""
frontend fe
    bind 127.0.0.1:{port}
    use_backend good if {{ path /good }}
    default_backend be
backend be
    retries 0
    server bad {server}
backend good
    server good {good.address}
"""
            with run_haproxy(config, binary):
                seen[name] = exchange(port, request + NEXT)
    assert seen["haply"] == seen["haproxy"]
    assert seen["haply"][-3:] == [b"http/1.1 200 ok", b"good get /good", b"<open>"]


def test_errorloc_redirects_as_haproxy():
    """errorloc, errorloc302 and errorloc303 answer an error with a redirect
    that keeps the connection, byte for byte as HAProxy writes it."""
    seen = {}
    for name, binary in PROXIES.items():
        with scripted_backend(keepalive_echo, "good") as good:
            port = free_port()
            config = haproxy_config("") + f"""
frontend fe
    bind 127.0.0.1:{port}
    errorloc 503 http://example.com/down
    errorloc303 403 /forbidden
    errorloc302 404 /nf
    http-request deny if {{ path /d }}
    http-request deny deny_status 404 if {{ path /n }}
    use_backend good if {{ path /good }}
    default_backend be
backend be
    retries 0
    server gone 127.0.0.1:{free_port()}
backend good
    server good {good.address}
"""
            with run_haproxy(config, binary):
                answers = []
                for path in ("/", "/d", "/n"):
                    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
                        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: h\r\n\r\n".encode() + NEXT
                                     + b"GET /good HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
                        received = b""
                        while chunk := sock.recv(65536):
                            received += chunk
                    answers.append(received.split(b"HTTP/1.1 200", 1)[0])
                seen[name] = answers
    assert seen["haply"] == seen["haproxy"]
    assert seen["haply"][1] == (b"HTTP/1.1 303 See Other\r\ncache-control: no-cache\r\n"
                                b"content-length: 0\r\nlocation: /forbidden\r\n\r\n")
