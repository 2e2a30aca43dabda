"""Health checks steering real traffic through the haply process."""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from tests.support.haply_process import run_haply
from tests.support.haproxy_oracle import EchoBackend, echo_backends, free_port, http_get
from tests.support.scripted_backend import Conn, scripted_backend

PRELUDE = """\
global
    maxconn 1000

defaults
    mode http
    timeout connect 1s
    timeout client 5s
    timeout server 5s
    timeout check 500ms
"""


class Switch:
    """A clustercheck-style responder: 200 while `healthy`, else 503."""

    def __init__(self):
        self.healthy = True
        switch = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                self.send_response(200 if switch.healthy else 503)
                self.send_header("Content-Length", "0")
                self.end_headers()
            do_OPTIONS = do_GET

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def wait_until(predicate, timeout: float) -> float:
    started = time.monotonic()
    while not predicate():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(0.02)
    return time.monotonic() - started


def test_dead_server_leaves_rotation_without_a_failed_request_and_returns():
    with echo_backends(["a", "b"]) as (a, b):
        port = free_port()
        cfg = (PRELUDE + f"\nlisten app\n    bind 127.0.0.1:{port}\n    option redispatch\n"
               f"    server a {a.address} check inter 100ms fall 2 rise 2\n"
               f"    server b {b.address} check inter 100ms fall 2 rise 2\n")
        with run_haply(cfg):
            assert {http_get(port).backend for _ in range(4)} == {"a", "b"}
            a.stop()
            statuses = []
            started = time.monotonic()
            while time.monotonic() - started < 1.0:
                reply = http_get(port)
                statuses.append((reply.status, reply.backend))
            # Retries with redispatch save every request while checks catch up.
            assert all(status == 200 for status, _ in statuses)
            assert statuses[-1][1] == "b"
            revived = EchoBackend("a", port=a.port)
            revived.start()
            try:
                # rise 2 x inter 100ms, plus one interval of slack and a margin
                # for a loaded machine.
                wait_until(lambda: http_get(port).backend == "a", 2.0)
            finally:
                revived.stop()


def test_galera_pattern_active_and_backups_with_check_port():
    """openstack-ha-guide.haproxy.cfg's galera_cluster on loopback: one active,
    two backups, checked on a clustercheck port, traffic in mode tcp."""
    def named(name):
        def handler(conn: Conn) -> None:
            conn.send(name.encode())
            conn.sock.recv(10)
        return handler

    checks = [Switch(), Switch(), Switch()]
    try:
        with scripted_backend(named("c1")) as c1, scripted_backend(named("c2")) as c2, \
                scripted_backend(named("c3")) as c3:
            port = free_port()
            opts = "inter 100ms rise 2 fall 3"
            cfg = (PRELUDE.replace("mode http", "mode tcp") +
                   f"\nlisten galera_cluster\n    bind 127.0.0.1:{port}\n    balance source\n"
                   f"    option httpchk\n"
                   f"    server controller1 {c1.address} check port {checks[0].port} {opts}\n"
                   f"    server controller2 {c2.address} backup check port {checks[1].port} {opts}\n"
                   f"    server controller3 {c3.address} backup check port {checks[2].port} {opts}\n")

            def who() -> str:
                import socket
                with socket.create_connection(("127.0.0.1", port), timeout=3) as sock:
                    return sock.recv(10).decode()

            with run_haply(cfg):
                assert {who() for _ in range(5)} == {"c1"}
                checks[0].healthy = False
                moved = wait_until(lambda: who() == "c2", 3.0)
                assert moved < 0.1 * 3 + 0.1 + 0.5  # fall x inter + one inter + margin
                assert {who() for _ in range(5)} == {"c2"}  # the first backup only
                checks[0].healthy = True
                wait_until(lambda: who() == "c1", 3.0)
    finally:
        for check in checks:
            check.close()


def test_all_servers_down_by_checks_answers_503_at_once():
    check = Switch()
    check.healthy = False
    try:
        with echo_backends(["a"]) as (a,):
            port = free_port()
            cfg = (PRELUDE.replace("timeout connect 1s", "timeout connect 5s") +
                   f"\nlisten app\n    bind 127.0.0.1:{port}\n    option httpchk\n"
                   f"    server a {a.address} check port {check.port} inter 100ms fall 1\n")
            with run_haply(cfg):
                wait_until(lambda: http_get(port).status == 503, 2.0)
                a.clear()  # requests served before the first check marked it DOWN
                started = time.monotonic()
                assert http_get(port).status == 503
                assert time.monotonic() - started < 1.0  # no 5 s connect timeout waited
                assert a.requests == []
    finally:
        check.close()


def test_on_marked_down_shutdown_sessions_cuts_established_tcp_sessions():
    import socket

    check = Switch()

    def chatty(conn: Conn) -> None:
        conn.send(b"hi")
        conn.sock.recv(10)  # holds the session open until the proxy closes it
    try:
        with scripted_backend(chatty) as backend:
            port = free_port()
            cfg = (PRELUDE.replace("mode http", "mode tcp")
                   + f"\nlisten db\n    bind 127.0.0.1:{port}\n    option httpchk\n"
                   f"    server a {backend.address} check port {check.port} inter 100ms "
                   f"fall 1 on-marked-down shutdown-sessions\n")
            with run_haply(cfg):
                with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
                    assert sock.recv(2) == b"hi"
                    check.healthy = False
                    started = time.monotonic()
                    assert sock.recv(10) == b""  # closed by haply, not by a timeout
                    assert time.monotonic() - started < 2.0
    finally:
        check.close()


def test_observe_layer7_marks_a_failing_server_down():
    def broken(conn: Conn) -> None:
        while conn.read_request() is not None:
            conn.respond(500, b"broken")
    with scripted_backend(broken, "broken") as bad, echo_backends(["good"]) as (good,):
        port = free_port()
        cfg = (PRELUDE + f"\nlisten app\n    bind 127.0.0.1:{port}\n"
               f"    server bad {bad.address} check inter 10s observe layer7 error-limit 2 "
               f"on-error mark-down\n    server good {good.address}\n")
        with run_haply(cfg):
            statuses = [http_get(port).status for _ in range(6)]
            assert statuses.count(500) == 2  # error-limit 2: then marked down
            assert {http_get(port).backend for _ in range(6)} == {"good"}
