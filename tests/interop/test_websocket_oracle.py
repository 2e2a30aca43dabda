"""WebSocket through the proxy (noVNC, Horizon's consoles), against HAProxy 2.6:

- a websocket upgrade request without Sec-WebSocket-Key is refused (400, a
  malformed request), and a 101 without Sec-WebSocket-Accept is a bad answer
  (502) after which the connection goes on in HTTP;
- an upgrade the server refuses (401) leaves the connection in HTTP: the
  requests after it are answered;
- a tunnel is logged when it ends, with the 101 and the whole session's time,
  whichever side closes it.
"""

from __future__ import annotations

import re
import socket
import time

import pytest

from tests.support.haply_process import PROXIES
from tests.support.haproxy_oracle import haproxy_available, haproxy_config
from tests.support.observed import observed_proxy, scripted

pytestmark = pytest.mark.skipif(not haproxy_available(), reason="HAProxy oracle not installed")

KEY = b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
ACCEPT = b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"


def upgrade(path: str, fields: bytes = KEY, version: bytes = b"1.1", method: bytes = b"GET") -> bytes:
    return (b"%s %s HTTP/%s\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n%s\r\n"
            % (method, path.encode(), version, fields))


def server(conn) -> None:
    """/refused: 401; /noaccept: a 101 without its accept; /tunnel: a 101,
    then an echo until "bye" (after which the server closes); else 200."""
    while (request := conn.read_request()) is not None:
        if request.url == "/refused":
            conn.respond(401, b"no")
            conn.http_again()
        elif request.url == "/noaccept":
            conn.send(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
        elif request.url == "/tunnel":
            conn.send(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                      b"Connection: Upgrade\r\n" + ACCEPT + b"\r\n")
            while (data := conn.recv(100)) and data != b"bye":
                conn.send(data)
            return
        else:
            conn.respond(200, f"plain {request.url}".encode())


def config(port: int, log_port: int, socket_path: str, address: str) -> str:
    return haproxy_config(f"""
frontend fe
    bind 127.0.0.1:{port}
    log 127.0.0.1:{log_port} local2 info
    option httplog
    default_backend be
backend be
    retry-on conn-failure
    server s1 {address}
""")


def run_both(exercise) -> dict[str, object]:
    seen = {}
    for name, binary in PROXIES.items():
        with observed_proxy(binary, config, scripted(server)) as (port, receiver, _):
            seen[name] = exercise(port, receiver)
    return seen


def talk(port: int, data: bytes, then: bytes = b"") -> list[bytes]:
    """Status lines and bodies seen after sending data (and `then` once the
    first answer came), and whether the connection was left open."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.settimeout(1)
        sock.sendall(data)
        received = b""
        try:
            while chunk := sock.recv(65536):
                received += chunk
                if then and b"\r\n\r\n" in received:
                    sock.sendall(then)
                    then = b""
            received += b"<<closed>>"
        except socket.timeout:
            received += b"<<open>>"
    return re.findall(rb"HTTP/1\.1 \d+|plain /\w+|<<\w+>>", received)


def logged(message: str) -> tuple[str, ...]:
    words = message.split("] ", 1)[1].split(" ", 10)
    return words[1], words[3], words[7], words[10]


def test_handshake_checks_as_haproxy():
    def exercise(port, receiver):
        answers = [talk(port, request) for request in (
            upgrade("/a", b""),                                 # no key
            upgrade("/b", b"", version=b"1.0"),
            upgrade("/c", b"Content-Length: 0\r\n", method=b"POST"),
            b"GET /d HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n\r\n",  # not an upgrade
            upgrade("/noaccept"),
            upgrade("/noaccept") + b"GET /after HTTP/1.1\r\nHost: h\r\n\r\n")]
        return answers, [logged(message) for message in receiver.messages(7, timeout=2)]

    seen = run_both(exercise)
    answers, lines = seen["haproxy"]
    assert answers[0] == [b"HTTP/1.1 400", b"<<closed>>"]
    assert answers[5] == [b"HTTP/1.1 502", b"HTTP/1.1 200", b"plain /after", b"<<open>>"]
    assert ("fe/<NOSRV>", "400", "PR--", '"<BADREQ>"') in lines
    assert seen["haply"] == seen["haproxy"]


def test_refused_upgrade_leaves_the_connection_in_http_as_haproxy():
    def exercise(port, receiver):
        return [talk(port, upgrade("/refused") + b"GET /pipelined HTTP/1.1\r\nHost: h\r\n\r\n"),
                talk(port, upgrade("/refused"), then=b"GET /later HTTP/1.1\r\nHost: h\r\n\r\n")]

    seen = run_both(exercise)
    assert seen["haproxy"] == [[b"HTTP/1.1 401", b"HTTP/1.1 200", b"plain /pipelined", b"<<open>>"],
                               [b"HTTP/1.1 401", b"HTTP/1.1 200", b"plain /later", b"<<open>>"]]
    assert seen["haply"] == seen["haproxy"]


def test_tunnel_logged_at_its_end_as_haproxy():
    def exercise(port, receiver):
        lines = []
        for closing in ("client", "server"):
            with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
                sock.sendall(upgrade("/tunnel"))
                assert sock.recv(1000).startswith(b"HTTP/1.1 101")
                sock.sendall(b"ping")
                assert sock.recv(100) == b"ping"
                time.sleep(0.2)
                if closing == "server":
                    sock.sendall(b"bye")
                    assert sock.recv(100) == b""
            messages = receiver.messages(1, timeout=3)
            lines.append(logged(messages[0]) if messages else None)
            duration = int(messages[0].split()[4].split("/")[-1]) if messages else 0
            lines.append(duration >= 200)  # the whole session's time
        return lines

    seen = run_both(exercise)
    assert seen["haproxy"] == [("be/s1", "101", "----", '"GET /tunnel HTTP/1.1"'), True] * 2
    assert seen["haply"] == seen["haproxy"]
