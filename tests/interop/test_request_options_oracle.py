"""Four request-side options against HAProxy 2.6: `option originalto`,
`option prefer-last-server`, `option abortonclose` and `option
http-buffer-request`. The same configuration runs through both proxies and
what the servers saw (fields, which server, how many connections, when they
opened) is compared.
"""

from __future__ import annotations

import socket

import pytest

from tests.interop.test_proxy_oracle import PRELUDE, run_both
from tests.support.haproxy_oracle import haproxy_available
from tests.support.scripted_backend import keepalive_echo, scripted_backend

pytestmark = pytest.mark.skipif(not haproxy_available(), reason="HAProxy oracle not installed")


def exchange(sock: socket.socket, request: bytes) -> bytes:
    """Send one request and read its answer (a keepalive_echo body ends in LF)."""
    sock.sendall(request)
    reply = b""
    while b"\r\n\r\n" not in reply or not reply.endswith(b"\n"):
        chunk = sock.recv(65536)
        assert chunk, reply
        reply += chunk
    return reply


# ------------------------------------------------------------------ originalto

# (frontend lines, backend lines): what each proxy says about originalto.
ORIGINALTO_CASES = {
    "frontend": ("option originalto", ""),
    "backend-header": ("", "option originalto header X-Client-Dst"),
    "both-backend-name-wins": ("option originalto header X-Fe", "option originalto header X-Be"),
    "after-forwardfor-and-rules": ("option originalto\n    http-request set-header X-A 1",
                                   "option forwardfor\n    http-request set-header X-B 1"),
    "except-matches": ("option originalto except 127.0.0.0/8", ""),
    "except-other": ("option originalto except 10.0.0.0/8", ""),
    "frontend-except-wins": ("option originalto except 127.0.0.1", "option originalto"),
    "backend-except-wins": ("option originalto except 10.0.0.0/8",
                            "option originalto except 127.0.0.0/8"),
    # forwardfor merges its `except` the same way
    "forwardfor-frontend-except-wins": ("option forwardfor except 127.0.0.1", "option forwardfor"),
    "forwardfor-backend-except-wins": ("option forwardfor", "option forwardfor except 127.0.0.0/8"),
}


def _fields_seen(cfg: str, host: str) -> dict:
    request = (b"GET / HTTP/1.1\r\nHost: h\r\nX-Original-To: 9.9.9.9\r\n\r\n"
               b"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
    with scripted_backend(keepalive_echo) as backend:
        def exercise(port):
            before = len(backend.requests)
            with socket.create_connection((host, port), timeout=5) as sock:
                sock.sendall(request)
                while sock.recv(65536):
                    pass
            return [[(k.lower(), v) for k, v in r.headers]
                    for r in backend.requests[before:]]

        return run_both(cfg.replace("@BACKEND@", backend.address), exercise)


@pytest.mark.parametrize("case", sorted(ORIGINALTO_CASES))
def test_originalto_fields_as_haproxy(case):
    frontend, backend = ORIGINALTO_CASES[case]
    cfg = PRELUDE + f"""
frontend fe
    bind 127.0.0.1:@PORT@
    {frontend}
    default_backend be
backend be
    {backend}
    server s @BACKEND@
"""
    seen = _fields_seen(cfg, "127.0.0.1")
    assert seen["haply"] == seen["haproxy"], seen
    assert ("x-original-to", "9.9.9.9") in seen["haproxy"][0]  # the client's own is kept


@pytest.mark.parametrize("options", ["option originalto", "option originalto except ::1/128"])
def test_originalto_ipv6_as_haproxy(options):
    probe = socket.socket(socket.AF_INET6)
    try:
        probe.bind(("::1", 0))
    except OSError:
        pytest.skip("no IPv6 loopback")
    finally:
        probe.close()
    cfg = PRELUDE + f"""
listen app
    bind ::1:@PORT@
    {options}
    server s @BACKEND@
"""
    seen = _fields_seen(cfg, "::1")
    assert seen["haply"] == seen["haproxy"], seen
