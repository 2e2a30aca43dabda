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
            time.sleep(0.5)
        elif request.url == "/hang":
            time.sleep(1.5)  # past timeout server
        conn.respond(200, b"x" * 10)


def make_config(option: str):
    def config(port: int, log_port: int, socket_path: str, address: str) -> str:
        return with_stats_socket(haproxy_config(f"""
frontend fe
    bind 127.0.0.1:{port}
    log 127.0.0.1:{log_port} local2 info
    option httplog
    default_backend be
backend be
    {option}
    timeout server 1s
    timeout queue 3s
    server s1 {address} maxconn 1
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
        with observed_proxy(binary, make_config(option), scripted(server)) as (port, receiver, path):
            first = threading.Thread(target=fetch, args=(port, b"/slow"))
            first.start()
            time.sleep(0.1)
            # waits in the queue behind /slow (maxconn 1) when its client leaves
            reset_after(port, b"GET /queued HTTP/1.1\r\nHost: h\r\n\r\n")
            first.join()
            reset_after(port, b"GET /slow HTTP/1.1\r\nHost: h\r\n\r\n")
            time.sleep(0.6)
            reset_after(port, b"GET /hang HTTP/1.1\r\nHost: h\r\n\r\n")
            reset_after(port, b"POST /slow HTTP/1.1\r\nHost: h\r\nContent-Length: 9\r\n\r\nabc")
            time.sleep(1.6)  # past the 504
            lines = sorted(httplog_fields(message) for message in receiver.messages(6, timeout=1.5))
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
