"""`http-reuse never|safe|aggressive|always` against HAProxy 2.6: how many server
connections the same sequence of clients opens.

Clients come one after the other on connections of their own, each sending its
requests in turn; the server keeps every connection open. The count of server
connections tells which requests went over an idle connection.
"""

from __future__ import annotations

import socket
import time

import pytest

from tests.interop.test_proxy_oracle import PRELUDE, run_both
from tests.support.haproxy_oracle import haproxy_available
from tests.support.scripted_backend import keepalive_echo, scripted_backend

pytestmark = pytest.mark.skipif(not haproxy_available(), reason="HAProxy oracle not installed")

# (requests on the first client's connection, on the second's, on the third's)
CLIENTS = (1, 2, 1)
EXPECTED = {"never": 3, "safe": 3, "aggressive": 2, "always": 1}


def client(port: int, requests: int) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        for _ in range(requests):
            sock.sendall(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
            reply = b""
            while b"\r\n\r\n" not in reply or not reply.endswith(b"\n"):
                chunk = sock.recv(65536)
                assert chunk, reply
                reply += chunk
            assert reply.startswith(b"HTTP/1.1 200"), reply


@pytest.mark.parametrize("mode", sorted(EXPECTED))
def test_server_connections_as_haproxy(mode):
    counts = {}
    with scripted_backend(keepalive_echo) as backend:
        cfg = PRELUDE + f"""
listen app
    bind 127.0.0.1:@PORT@
    http-reuse {mode}
    server s {backend.address}
"""

        def exercise(port):
            before = backend.connections
            for requests in CLIENTS:
                client(port, requests)
                # the proxy has seen the client leave and made its server
                # connection idle before the next one comes (HAProxy opened a
                # second connection now and then without the pause)
                time.sleep(0.1)
            return backend.connections - before

        counts = run_both(cfg, exercise)
    assert counts["haply"] == counts["haproxy"] == EXPECTED[mode], counts
