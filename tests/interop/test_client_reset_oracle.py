"""A client that resets its connection (RST) once its request is whole,
against HAProxy 2.6: the request goes on to its server, from the queue too,
with or without `option abortonclose` (which acts on a client's end of
sending, not on a reset that the proxy only sees when it writes). The
server's answer is counted and the exchange logged with its status and CD--;
an answer the proxy makes itself (a 504 at `timeout server`) is logged as
such; each counts a client abort. A request not yet whole is broken off at
once (-1, CD--).
"""

from __future__ import annotations

import socket
import struct
import threading
import time

import pytest

from tests.support.admin_cli import stat_counts, wait_no_sessions
from tests.support.haply_process import PROXIES
from tests.support.haproxy_oracle import haproxy_available, haproxy_config, with_stats_socket
from tests.support.observed import httplog_fields, observed_proxy, scripted

pytestmark = pytest.mark.skipif(not haproxy_available(), reason="HAProxy oracle not installed")

COUNTED = ("req_tot", "hrsp_2xx", "hrsp_5xx", "cli_abrt", "srv_abrt", "eresp", "stot")


def server(conn) -> None:
    while (request := conn.read_request()) is not None:
        if request.url == "/slow":
            time.sleep(0.3)
        elif request.url == "/hang":
            time.sleep(0.8)  # past timeout server
        conn.respond(200, b"x" * 10)


def make_config(backend: str):
    """A frontend logging httplog, in front of s1 with the backend's lines."""
    def config(port: int, log_port: int, socket_path: str, address: str) -> str:
        return with_stats_socket(haproxy_config(f"""
frontend fe
    bind 127.0.0.1:{port}
    log 127.0.0.1:{log_port} local2 info
    option httplog
    default_backend be
backend be
    {backend}
    server s1 {address}
"""), socket_path)
    return config


def reset_after(port: int, request: bytes, wait: float = 0.1) -> None:
    sock = socket.create_connection(("127.0.0.1", port))
    sock.sendall(request)
    time.sleep(wait)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def fetch(port: int, path: bytes) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b"GET %s HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n" % path)
        while sock.recv(65536):
            pass


@pytest.mark.parametrize("option", ["", "option abortonclose"])
def test_client_reset_as_haproxy(option):
    seen = {}
    for name, binary in PROXIES.items():
        config = make_config(f"{option}\n    timeout server 500ms\n    timeout queue 3s\n"
                             "    default-server maxconn 1")
        with observed_proxy(binary, config, scripted(server)) as (port, receiver, path):
            first = threading.Thread(target=fetch, args=(port, b"/slow"))
            first.start()
            time.sleep(0.1)
            # waits in the queue behind /slow (maxconn 1) when its client leaves
            reset_after(port, b"GET /queued HTTP/1.1\r\nHost: h\r\n\r\n")
            first.join()
            reset_after(port, b"GET /slow HTTP/1.1\r\nHost: h\r\n\r\n")
            time.sleep(0.4)
            reset_after(port, b"GET /hang HTTP/1.1\r\nHost: h\r\n\r\n")
            reset_after(port, b"POST /slow HTTP/1.1\r\nHost: h\r\nContent-Length: 9\r\n\r\nabc")
            time.sleep(0.9)  # past the 504
            messages = receiver.messages(5, timeout=3) + receiver.messages(1, timeout=0.3)
            lines = sorted(httplog_fields(message) for message in messages)
            wait_no_sessions(path)
            seen[name] = lines, stat_counts(path, ("fe", "be"), COUNTED)
    lines, counts = seen["haproxy"]
    assert lines == sorted([
        ("be/s1", "200", "----", '"GET /slow HTTP/1.1"'),
        ("be/s1", "200", "CD--", '"GET /queued HTTP/1.1"'),
        ("be/s1", "200", "CD--", '"GET /slow HTTP/1.1"'),
        ("be/s1", "504", "sH--", '"GET /hang HTTP/1.1"'),
        # behind /hang in the queue, its body unfinished: dropped from the queue
        ("be/<NOSRV>", "-1", "CQ--", '"POST /slow HTTP/1.1"'),
    ])
    assert counts["be/s1"]["cli_abrt"] == "3"
    assert seen["haply"] == seen["haproxy"]


def big_answers(conn) -> None:
    while conn.read_request() is not None:
        conn.respond(200, b"y" * (1 << 20))


def test_reset_behind_an_unread_answer_leaves_nothing_held():
    """A client pipelines downloads, reads nothing (the proxy stops
    reading the server for it), then resets: the second request, whole at
    its server, goes on, and its answer is read and the session ended at
    once, not after `timeout server` (haply only: what HAProxy does with a
    pipelined request behind an unread answer is its own)."""
    with observed_proxy(PROXIES["haply"], make_config("timeout server 30s"), scripted(big_answers)) as (
            port, receiver, path):
        sock = socket.create_connection(("127.0.0.1", port))
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.sendall(b"".join(b"GET /%d HTTP/1.1\r\nHost: h\r\n\r\n" % n for n in range(10)))
        time.sleep(0.5)  # the first answers fill the buffers; the proxy pauses
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()
        started = time.monotonic()
        wait_no_sessions(path, timeout=10)
        assert time.monotonic() - started < 5
        lines = [httplog_fields(message) for message in receiver.messages(10, timeout=2)]
    # answered into the buffers, then the one the reset cut short
    assert lines[-1][1:3] == ("200", "CD--") and all(line[2] == "----" for line in lines[:-1]), lines
