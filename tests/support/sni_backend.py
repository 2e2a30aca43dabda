"""A TLS backend that reports the SNI it received, and clients for SNI tests.

The backend is nginx (tests.support.nginx.nginx_tls): each
answer is "sni=NAME conn=SERIAL proto=...", so a test sees the name sent and
which requests shared a server connection.
"""

from __future__ import annotations

import contextlib
import re
import socket
import ssl
from pathlib import Path
from typing import Iterator

from tests.support.nginx import NGINX, nginx_tls
from tests.support.certs import TlsFiles, make_tls_files
from tests.support.haproxy_oracle import free_port

__all__ = ["NGINX", "Answer", "ask", "ask_tls", "reuse_pattern", "sni_backend"]

NAMES = ("a.example", "b.example", "localhost")
TIMEOUT = 5.0


@contextlib.contextmanager
def sni_backend(directory: Path) -> Iterator[tuple[int, TlsFiles]]:
    """nginx with a certificate for a.example, b.example and localhost: (port, files)."""
    files = make_tls_files(directory, NAMES)
    port = free_port()
    with nginx_tls(directory, files.pem, port):
        yield port, files


class Answer:
    def __init__(self, status: int, body: str):
        self.status = status
        self.body = body
        match = re.match(r"sni=(\S*) conn=(\d+)", body)
        self.sni = match.group(1) if match else None
        self.conn = int(match.group(2)) if match else None

    def __repr__(self) -> str:
        return f"Answer({self.status}, sni={self.sni!r}, conn={self.conn})"


def _read_response(sock) -> Answer:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed after {data!r}")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = re.search(rb"(?im)^content-length:\s*(\d+)", head)
    if length:
        while len(body) < int(length.group(1)):
            chunk = sock.recv(65536)
            if not chunk:
                break
            body += chunk
        body = body[:int(length.group(1))]
    return Answer(status, body.decode("latin-1"))


def ask(sock, host: str | None) -> Answer:
    """One request on a kept-alive connection; host None sends HTTP/1.0 without Host."""
    if host is None:
        sock.sendall(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
    else:
        sock.sendall(f"GET / HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
    return _read_response(sock)


@contextlib.contextmanager
def client(port: int) -> Iterator[socket.socket]:
    sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
    try:
        yield sock
    finally:
        sock.close()


def ask_tls(port: int, server_name: str | None, host: str = "front.example") -> Answer:
    """One request over TLS to the proxy, sending server_name as SNI."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as raw:
        with context.wrap_socket(raw, server_hostname=server_name) as sock:
            sock.sendall(f"GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
            return _read_response(sock)


def reuse_pattern(answers: list[Answer]) -> list[int | None]:
    """Server connections numbered in order of first use: [0, 1, 0] means the
    third request reused the first one's connection."""
    seen: dict[int, int] = {}
    return [None if a.conn is None else seen.setdefault(a.conn, len(seen)) for a in answers]
