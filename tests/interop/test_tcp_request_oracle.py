"""`tcp-request connection|content accept|reject` against HAProxy 2.6: the
same connections are refused (closed before anything is read) and counted in
the same stats columns (dcon for connection rules, dreq for content rules),
in mode tcp and in mode http."""

from __future__ import annotations

import os
import socket
import tempfile

import pytest

from tests.interop.test_proxy_oracle import PRELUDE, run_both
from tests.support.admin_cli import cli, wait_no_sessions, wait_socket
from tests.support.haproxy_oracle import echo_backends, free_port, haproxy_available

pytestmark = pytest.mark.skipif(not haproxy_available(), reason="HAProxy oracle not installed")


def answered(address: str, port: int) -> bool:
    """Whether the proxy answered a request on a new connection from 127.0.0.1."""
    try:  # a refused connection may be reset as soon as it is accepted
        with socket.create_connection((address, port), timeout=5) as sock:
            sock.sendall(b"GET / HTTP/1.0\r\nHost: h\r\n\r\n")
            return sock.recv(65536).startswith(b"HTTP/1.")
    except (ConnectionResetError, BrokenPipeError):
        return False


def frontend_counters(stat: str, name: str) -> tuple[str, str]:
    lines = [line for line in stat.split("\n") if line]
    header = lines[0][2:].split(",")
    for line in lines[1:]:
        row = dict(zip(header, line.split(",")))
        if row["pxname"] == name and row["svname"] == "FRONTEND":
            return row["dcon"], row["dreq"]
    raise AssertionError(f"no frontend {name}")


def answers_and_counts(sock: str, targets: list[tuple[str, int]]) -> tuple[list[bool], tuple]:
    """Whether each target answered, and what that added to the frontend's
    dcon and dreq (the start-up probes count too, as many as readiness took:
    only what this adds is compared)."""
    wait_socket(sock)
    wait_no_sessions(sock)
    before = frontend_counters(cli(sock, "show stat"), "fe")
    seen = [answered(address, port) for address, port in targets]
    wait_no_sessions(sock)
    after = frontend_counters(cli(sock, "show stat"), "fe")
    os.unlink(sock)
    return seen, tuple(int(a) - int(b) for a, b in zip(after, before))


@pytest.mark.parametrize("mode", ["tcp", "http"])
def test_tcp_request_rules_as_haproxy(mode):
    with echo_backends(["a"]) as (a,):
        directory = tempfile.mkdtemp(prefix="tcpreq-")
        sock = os.path.join(directory, "admin.sock")
        second = free_port()
        cfg = PRELUDE.replace("mode http", f"mode {mode}").replace(
            "    maxconn 1000\n", f"    maxconn 1000\n    stats socket {sock} level admin\n") + f"""
frontend fe
    bind 127.0.0.1:@PORT@
    bind 127.0.0.2:@PORT@
    bind 127.0.0.3:{second}
    tcp-request inspect-delay 5s
    tcp-request connection accept if {{ dst 127.0.0.3 }}
    tcp-request connection reject if {{ dst 127.0.0.2 }}
    tcp-request content reject if {{ dst_port {second} }}
    tcp-request connection reject unless {{ src 127.0.0.0/8 }}
    default_backend be

backend be
    server s {a.address}
"""

        results = run_both(cfg, lambda port: answers_and_counts(sock, [
            ("127.0.0.1", port), ("127.0.0.2", port), ("127.0.0.3", second), ("127.0.0.2", port)]))
    assert results["haply"] == results["haproxy"]
    assert results["haply"] == ([True, False, False, False], (2, 1))


@pytest.mark.parametrize("mode", ["tcp", "http"])
def test_a_backends_content_rules_as_haproxy(mode):
    """A backend's own `tcp-request content` rules apply once a connection or
    request reaches it; a refusal ends the connection unanswered and counts
    in the frontend's dreq."""
    with echo_backends(["a"]) as (a,):
        directory = tempfile.mkdtemp(prefix="tcpreq-")
        sock = os.path.join(directory, "admin.sock")
        cfg = PRELUDE.replace("mode http", f"mode {mode}").replace(
            "    maxconn 1000\n", f"    maxconn 1000\n    stats socket {sock} level admin\n") + f"""
frontend fe
    bind 127.0.0.1:@PORT@
    bind 127.0.0.2:@PORT@
    default_backend be

backend be
    tcp-request content accept if {{ dst 127.0.0.1 }}
    tcp-request content reject if {{ dst 127.0.0.0/8 }}
    server s {a.address}
"""

        results = run_both(cfg, lambda port: answers_and_counts(sock, [
            ("127.0.0.1", port), ("127.0.0.2", port), ("127.0.0.2", port)]))
    assert results["haply"] == results["haproxy"]
    assert results["haply"] == ([True, False, False], (0, 2))
