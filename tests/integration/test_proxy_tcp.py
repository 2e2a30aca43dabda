"""mode tcp through the real haply process: relay, half-close, backpressure, limits."""

from __future__ import annotations

import socket
import time

from tests.support.haply_process import rss_kib, run_haply
from tests.support.haproxy_oracle import free_port
from tests.support.scripted_backend import Conn, scripted_backend

PRELUDE = """\
global
    maxconn 1000

defaults
    mode tcp
    timeout connect 2s
    timeout client 5s
    timeout server 5s
"""


def listen(port: int, server: str, extra: str = "") -> str:
    return f"{PRELUDE}\nlisten app\n    bind 127.0.0.1:{port}\n{extra}    server s {server}\n"


def echo_until_eof_then_report(conn: Conn) -> None:
    total = 0
    while data := conn.sock.recv(65536):
        total += len(data)
        conn.send(data)
    # The client half-closed: the answer must still reach it.
    conn.send(b"total=%d" % total)


def test_relay_and_half_close():
    with scripted_backend(echo_until_eof_then_report) as backend:
        port = free_port()
        with run_haply(listen(port, backend.address)):
            with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
                sock.sendall(b"hello")
                assert sock.recv(100) == b"hello"
                sock.shutdown(socket.SHUT_WR)
                rest = b""
                while data := sock.recv(100):
                    rest += data
                assert rest == b"total=5"


def test_slow_reader_does_not_make_haply_buffer():
    size = 200 * 1024 * 1024

    def firehose(conn: Conn) -> None:
        block = b"z" * 1048576
        for _ in range(size // len(block)):
            conn.send(block)
    with scripted_backend(firehose) as backend:
        port = free_port()
        with run_haply(listen(port, backend.address)) as proxy:
            pid = proxy.process.pid
            with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
                before = rss_kib(pid)
                sock.recv(1000)
                time.sleep(1.0)  # the server could send 200 MB in this time
                stalled = rss_kib(pid) - before
                received = 0
                while received < size - 1000:
                    data = sock.recv(1048576)
                    if not data:
                        break
                    received += len(data)
                assert received >= size - 1000
            assert stalled < 8 * 1024, f"haply buffered {stalled} KiB for a stalled reader"


def test_idle_session_closed_by_timeout():
    def idle(conn: Conn) -> None:
        conn.sock.recv(10)
    with scripted_backend(idle) as backend:
        port = free_port()
        cfg = listen(port, backend.address).replace("timeout client 5s", "timeout client 300ms")
        with run_haply(cfg):
            with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
                started = time.monotonic()
                assert sock.recv(10) == b""
                assert 0.25 < time.monotonic() - started < 2.0


def test_frontend_maxconn_holds_new_connections_until_a_slot_frees():
    def greeter(conn: Conn) -> None:
        conn.send(b"hi")
        conn.sock.recv(10)
    with scripted_backend(greeter) as backend:
        port = free_port()
        with run_haply(listen(port, backend.address, "    maxconn 2\n")):
            first = socket.create_connection(("127.0.0.1", port), timeout=5)
            second = socket.create_connection(("127.0.0.1", port), timeout=5)
            assert first.recv(2) == b"hi" and second.recv(2) == b"hi"
            third = socket.create_connection(("127.0.0.1", port), timeout=0.5)
            try:
                third.recv(2)
                raise AssertionError("a third connection was served beyond maxconn 2")
            except socket.timeout:
                pass
            first.close()
            third.settimeout(5)
            assert third.recv(2) == b"hi"
            assert second.getpeername()  # established ones unharmed
            second.close()
            third.close()


def test_no_server_closes_at_once():
    port = free_port()
    with run_haply(listen(port, f"127.0.0.1:{free_port()}", "    retries 1\n")):
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            started = time.monotonic()
            assert sock.recv(10) == b""
            assert time.monotonic() - started < 2.0
