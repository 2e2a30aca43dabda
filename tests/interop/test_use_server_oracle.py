"""`use-server` against HAProxy 2.6: the first rule whose condition holds and
whose server can take the request chooses the server, ahead of the cookie (no
cookie is then inserted); a rule naming a server that is in maintenance or
DOWN is passed over, a draining one still takes the request; mode tcp too."""

from __future__ import annotations

import os
import socket
import tempfile

import pytest

from tests.support.admin_cli import cli, wait_socket
from tests.support.haply_process import PROXIES
from tests.support.haproxy_oracle import echo_backends, free_port, haproxy_available, haproxy_config, run_haproxy

pytestmark = pytest.mark.skipif(not haproxy_available(), reason="HAProxy oracle not installed")

# (admin command run first or None, path, extra request fields)
HTTP_STEPS = [
    (None, "/b", ""),
    (None, "/bx", ""),
    (None, "/b", "Cookie: SRV=c\r\n"),
    (None, "/x", "X-A: yes\r\nCookie: SRV=b\r\n"),
    ("disable server be/b", "/b", ""),
    ("set server be/c state drain", "/b", ""),
    ("set server be/c state maint", "/b", ""),
]


def fetch(address: str, port: int, request: bytes) -> bytes:
    with socket.create_connection((address, port), timeout=5) as sock:
        sock.sendall(request)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
        return received


def run_each(mode: str, sections: str, exercise) -> dict[str, object]:
    results = {}
    with echo_backends(["a", "b", "c"]) as (a, b, c):
        for name, binary in PROXIES.items():
            port = free_port()
            sock = os.path.join(tempfile.mkdtemp(prefix="use-server-"), "admin.sock")
            config = haproxy_config("").replace(
                "    nbthread 1\n", f"    nbthread 1\n    stats socket {sock} level admin\n"
            ).replace("mode http", f"mode {mode}") + sections.format(
                port=port, a=a.address, b=b.address, c=c.address)
            with run_haproxy(config, binary):
                wait_socket(sock)
                results[name] = exercise(port, sock)
    return results


def test_use_server_in_http_as_haproxy():
    sections = """
frontend fe
    bind 127.0.0.1:{port}
    default_backend be
backend be
    cookie SRV insert indirect
    use-server b if {{ path /b }}
    use-server c if {{ path_beg /b }}
    use-server a if {{ hdr(x-a) yes }}
    server a {a} cookie a
    server b {b} cookie b
    server c {c} cookie c
"""

    def exercise(port, sock):
        seen = []
        for command, path, extra in HTTP_STEPS:
            if command is not None:
                cli(sock, command)
            answer = fetch("127.0.0.1", port, f"GET {path} HTTP/1.0\r\n{extra}\r\n".encode())
            head, _, body = answer.partition(b"\r\n\r\n")
            cookies = [line.lower() for line in head.split(b"\r\n") if line.lower().startswith(b"set-cookie")]
            seen.append((path, body.split(b"\n")[0], cookies))
        return seen

    results = run_each("http", sections, exercise)
    assert results["haply"] == results["haproxy"]
    assert [server for _, server, _ in results["haply"]] == [b"b", b"c", b"b", b"a", b"c", b"c", b"a"]


def test_use_server_in_tcp_as_haproxy():
    sections = """
frontend fe
    bind 127.0.0.1:{port}
    bind 127.0.0.2:{port}
    default_backend be
backend be
    balance first
    use-server c if {{ dst 127.0.0.2 }}
    server a {a}
    server b {b}
    server c {c}
"""

    def exercise(port, sock):
        seen = []
        for command in (None, "disable server be/c"):
            if command is not None:
                cli(sock, command)
            for address in ("127.0.0.1", "127.0.0.2"):
                answer = fetch(address, port, b"GET / HTTP/1.0\r\n\r\n")
                seen.append((address, answer.partition(b"\r\n\r\n")[2].split(b"\n")[0]))
        return seen

    results = run_each("tcp", sections, exercise)
    assert results["haply"] == results["haproxy"]
    assert results["haply"] == [("127.0.0.1", b"a"), ("127.0.0.2", b"c"),
                                ("127.0.0.1", b"a"), ("127.0.0.2", b"a")]
