"""What a keep-alive connection carries over from one exchange to the next,
compared with HAProxy 2.6 on the same exchanges:

- a server that answers before it has read the request's body (an early 401
  or 413, or a server that ignores the body): the client goes on sending it,
  then asks again on the same connection, and gets its second answer;
- a request pipelined behind one whose server is slower than `timeout
  http-request`: its head came whole and in time, so it is answered, not
  refused with a 408;
- a server connection that was paused because its client read slowly goes
  back to the pool able to read: the next client that gets it is answered.
"""

from __future__ import annotations

import re
import socket
import time

import pytest

from tests.support.haply_process import PROXIES
from tests.support.haproxy_oracle import free_port, haproxy_available, haproxy_config, run_haproxy
from tests.support.scripted_backend import keepalive_echo, scripted_backend

pytestmark = pytest.mark.skipif(not haproxy_available(), reason="HAProxy oracle not installed")

STATUS_OR_BODY = re.compile(rb"HTTP/1\.1 \d+|(?:early|echo|big) [A-Z]+ /\w+")


def answers_before_body(conn) -> None:
    """Answer each request from its head, then read the rest of its body."""
    while True:
        request = conn.read_request(until_head_only=True)
        if request is None:
            return
        conn.respond(200, f"early {request.method} {request.url}\n".encode())
        if request.method == "POST" and conn.read_request() is None:
            return


def slow_path(conn) -> None:
    """/slow waits 1.5 s for its answer."""
    while (request := conn.read_request()) is not None:
        if request.url == "/slow":
            time.sleep(1.5)
        conn.respond(200, f"echo {request.method} {request.url}\n".encode())


def receive(sock: socket.socket, answers: int, timeout: float = 4.0) -> list[bytes]:
    """The status lines and bodies of `answers` answers framed by
    Content-Length (fewer if the connection closed or went quiet)."""
    sock.settimeout(timeout)
    received, wanted = b"", 0
    for _ in range(answers):
        while True:
            head_end = received.find(b"\r\n\r\n", wanted)
            if head_end >= 0:
                length = re.search(rb"(?i)content-length: *(\d+)", received[wanted:head_end])
                end = head_end + 4 + (int(length.group(1)) if length else 0)
                if len(received) >= end:
                    wanted = end
                    break
            try:
                chunk = sock.recv(65536)
            except socket.timeout:
                chunk = b""
            if not chunk:
                return STATUS_OR_BODY.findall(received)
            received += chunk
    return STATUS_OR_BODY.findall(received)


def proxy_config(port: int, server: str, extra: str = "") -> str:
    return haproxy_config(f"""
frontend fe
    bind 127.0.0.1:{port}
    {extra}
    default_backend be
backend be
    server s1 {server}
""")


def test_answer_before_the_body_then_the_next_request_as_haproxy():
    body = b"x" * 300_000
    seen = {}
    for name, binary in PROXIES.items():
        with scripted_backend(answers_before_body) as server:
            port = free_port()
            with run_haproxy(proxy_config(port, server.address), binary):
                with socket.create_connection(("127.0.0.1", port), timeout=4) as sock:
                    sock.sendall(b"POST /upload HTTP/1.1\r\nHost: h\r\nContent-Length: %d\r\n\r\n" % len(body))
                    answers = receive(sock, 1)  # the answer comes before the body is sent
                    sock.sendall(body)
                    sock.sendall(b"GET /next HTTP/1.1\r\nHost: h\r\n\r\n")
                    seen[name] = answers + receive(sock, 1)
    assert seen["haproxy"] == [b"HTTP/1.1 200", b"early POST /upload", b"HTTP/1.1 200", b"early GET /next"]
    assert seen["haply"] == seen["haproxy"]


def test_pipelined_request_behind_a_slow_answer_is_not_timed_out_as_haproxy():
    seen = {}
    for name, binary in PROXIES.items():
        with scripted_backend(slow_path) as server:
            port = free_port()
            with run_haproxy(proxy_config(port, server.address, "timeout http-request 1s"), binary):
                with socket.create_connection(("127.0.0.1", port), timeout=4) as sock:
                    # a first exchange leaves a server connection ready for the next
                    sock.sendall(b"GET /first HTTP/1.1\r\nHost: h\r\n\r\n")
                    answers = receive(sock, 1)
                    sock.sendall(b"GET /slow HTTP/1.1\r\nHost: h\r\n\r\nGET /second HTTP/1.1\r\nHost: h\r\n\r\n")
                    seen[name] = answers + receive(sock, 2)
    assert seen["haproxy"] == [b"HTTP/1.1 200", b"echo GET /first", b"HTTP/1.1 200", b"echo GET /slow",
                               b"HTTP/1.1 200", b"echo GET /second"]
    assert seen["haply"] == seen["haproxy"]


BIG = 4 << 20  # more than the kernel holds for a client that reads in small bites
ROUNDS = 3


def big_then_echo(conn) -> None:
    """/big: an answer sent in one write; anything else: an echo."""
    while (request := conn.read_request()) is not None:
        if request.url == "/big":
            conn.respond(200, b"big GET /big\n".rjust(BIG, b"."))
        else:
            conn.respond(200, f"echo {request.method} {request.url}\n".encode())


def read_slowly(sock: socket.socket, size: int) -> bytes:
    """A whole answer of at least size bytes, read in small bites with pauses,
    so that the proxy's buffer to this client fills up again and again."""
    sock.settimeout(4)
    received = b""
    while not received.endswith(b"big GET /big\n") and len(received) < size + 1000:
        chunk = sock.recv(16384)
        if not chunk:
            break
        received += chunk
        time.sleep(0.001)
    return received


def test_server_connection_paused_for_a_slow_reader_is_pooled_reading_as_haproxy():
    seen = {}
    for name, binary in PROXIES.items():
        with scripted_backend(big_then_echo) as server:
            port = free_port()
            config = proxy_config(port, server.address).replace(
                "timeout server 5s", "timeout server 2s")
            with run_haproxy(config, binary):
                seen[name] = []
                # whether the last read of an answer finds the client's buffer
                # full depends on timing: several rounds make it likely
                for _ in range(ROUNDS):
                    with socket.socket() as slow:
                        slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
                        slow.connect(("127.0.0.1", port))
                        slow.sendall(b"GET /big HTTP/1.1\r\nHost: h\r\n\r\n")
                        answer = read_slowly(slow, BIG)
                    with socket.create_connection(("127.0.0.1", port), timeout=4) as other:
                        other.sendall(b"GET /other HTTP/1.1\r\nHost: h\r\n\r\n")
                        seen[name] += STATUS_OR_BODY.findall(answer) + receive(other, 1)
    assert seen["haproxy"] == [b"HTTP/1.1 200", b"big GET /big", b"HTTP/1.1 200", b"echo GET /other"] * ROUNDS
    assert seen["haply"] == seen["haproxy"]
