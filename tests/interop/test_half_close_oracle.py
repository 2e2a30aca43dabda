"""A client that half-closes (shutdown of its sending side, as `nc` does at the
end of its input) once its requests are out, against HAProxy 2.6.

It still gets every answer its requests are owed, then the proxy closes the
connection: no further request can come, so waiting for one (`timeout
http-keep-alive`, `timeout client`) would leave the client hanging. This holds
for a slow server, for pipelined requests, for a request with a body and for
the proxy's own answers; each exchange is logged and counted as it is with
HAProxy.

A client that closes its connection after the proxy's own answer (a deny, an
`http-request return`) left no request behind: nothing more is logged or
counted, as with HAProxy.
"""

from __future__ import annotations

import os
import signal
import socket
import threading
import time

import pytest

from tests.support.admin_cli import stat_counts, wait_no_sessions
from tests.support.haply_process import PROXIES
from tests.support.haproxy_oracle import (
    haproxy_available, haproxy_config, run_haproxy, with_stats_socket)
from tests.support.ports import free_port
from tests.support.scripted_backend import scripted_backend
from tests.support.observed import httplog_fields, observed_proxy, scripted

pytestmark = pytest.mark.skipif(not haproxy_available(), reason="HAProxy oracle not installed")

# Well under the configuration's timeouts (5 s): a proxy that waits for them fails.
PATIENCE = 2.5
COUNTED = ("req_tot", "ereq", "hrsp_2xx", "hrsp_4xx", "dreq", "cli_abrt")


def server(conn) -> None:
    while (request := conn.read_request()) is not None:
        if request.url == "/slow":
            time.sleep(0.3)  # the client's end comes while the server works
        conn.respond(200, b"%s %d" % (request.url.encode(), len(request.body)))


def config(port: int, log_port: int, socket_path: str, address: str) -> str:
    return with_stats_socket(haproxy_config(f"""
frontend fe
    bind 127.0.0.1:{port}
    log 127.0.0.1:{log_port} local2 info
    option httplog
    http-request deny if {{ path /deny }}
    default_backend be
backend be
    http-request return status 200 content-type text/plain string hi if {{ path /return }}
    server s1 {address}
"""), socket_path)


def get(path: str) -> bytes:
    return b"GET %s HTTP/1.1\r\nHost: h\r\n\r\n" % path.encode()


CLIENTS = {
    "slow server": get("/slow"),
    "fast server": get("/fast"),
    "with a body": b"POST /slow HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello",
    "denied": get("/deny"),
    "answered by the proxy": get("/return"),
    "HTTP/1.0": b"GET /slow HTTP/1.0\r\n\r\n",
}


# HAProxy 2.6 answers pipelined requests after a half-close in some runs and
# only the first in others: haply, which answers every one, is checked alone.
PIPELINED = get("/slow") + get("/fast") + get("/return")


def half_closing_client(port: int, requests: bytes) -> tuple[list[bytes], bool]:
    """(the status lines and bodies received, whether the proxy closed the
    connection within PATIENCE)."""
    with socket.create_connection(("127.0.0.1", port), timeout=PATIENCE) as sock:
        sock.sendall(requests)
        sock.shutdown(socket.SHUT_WR)
        received = b""
        closed = False
        deadline = time.monotonic() + PATIENCE
        try:
            while time.monotonic() < deadline:
                chunk = sock.recv(65536)
                if not chunk:
                    closed = True
                    break
                received += chunk
        except socket.timeout:
            pass
    answers = []
    for part in received.split(b"HTTP/1.")[1:]:
        head, _, body = part.partition(b"\r\n\r\n")
        answers.append(head.split(b"\r\n")[0][2:] + b" | " + body[:20])
    return answers, closed


def test_half_closed_client_gets_its_answers_then_the_connection_closes():
    seen = {}
    for name, binary in PROXIES.items():
        with observed_proxy(binary, config, scripted(server)) as (port, receiver, path):
            outcomes = {client: half_closing_client(port, requests)
                        for client, requests in CLIENTS.items()}
            messages = receiver.messages(6, timeout=3) + receiver.messages(1, timeout=0.3)
            lines = sorted(httplog_fields(message) for message in messages)
            wait_no_sessions(path)
            counts = stat_counts(path, ("fe", "be"), COUNTED)
            seen[name] = outcomes, lines, counts, half_closing_client(port, PIPELINED)
    outcomes, lines, counts, pipelined = seen["haproxy"]
    assert outcomes["with a body"] == ([b"200 OK | /slow 5"], True)
    assert all(closed for _, closed in outcomes.values())
    assert len(lines) == 6
    assert pipelined[1]  # closed, after one answer or three
    assert seen["haply"][:3] == (outcomes, lines, counts)
    assert seen["haply"][3] == ([b"200 OK | /slow 0", b"200 OK | /fast 0", b"200 OK | hi"], True)


def test_client_leaving_after_the_proxys_own_answer_leaves_no_request():
    seen = {}
    for name, binary in PROXIES.items():
        with observed_proxy(binary, config, scripted(server)) as (port, receiver, path):
            for request in (get("/deny"), get("/return"), get("/fast")):
                with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
                    sock.sendall(request)
                    received = b""
                    while not received.endswith((b"</html>\n", b"hi", b"/fast 0")):
                        received += sock.recv(65536)
            messages = receiver.messages(3, timeout=3) + receiver.messages(1, timeout=0.3)
            lines = sorted(httplog_fields(message) for message in messages)
            wait_no_sessions(path)
            seen[name] = lines, stat_counts(path, ("fe", "be"), COUNTED)
    lines, counts = seen["haproxy"]
    assert len(lines) == 3
    # the three requests and observed_proxy's start-up probe, a 400 (ereq 1)
    assert counts["fe/FRONTEND"]["req_tot"] == "4" and counts["fe/FRONTEND"]["ereq"] == "1"
    assert seen["haply"] == seen["haproxy"]


def test_answer_read_with_the_clients_half_close_goes_out():
    """The server's answer and the client's half-close reach the proxy while
    it is stopped (SIGSTOP), the answer first: the proxy wakes to both in
    one turn of its loop. The answer is sent before the connection closes
    (haply once closed it with the answer still held for the end of the
    turn)."""
    arrived, release = threading.Event(), threading.Event()

    def held_server(conn) -> None:
        while (request := conn.read_request()) is not None:
            arrived.set()
            release.wait(10)
            conn.respond(200, request.url.encode())

    seen = {}
    for name, binary in PROXIES.items():
        arrived.clear()
        release.clear()
        with scripted_backend(held_server) as backend:
            port = free_port()
            with run_haproxy(haproxy_config(f"""
frontend fe
    bind 127.0.0.1:{port}
    default_backend be
backend be
    server s1 {backend.address}
"""), binary) as proxy, socket.create_connection(("127.0.0.1", port), timeout=PATIENCE) as sock:
                sock.sendall(get("/held"))
                assert arrived.wait(5)
                os.kill(proxy.process.pid, signal.SIGSTOP)
                try:
                    release.set()
                    time.sleep(0.1)  # the answer is in the proxy's socket
                    sock.shutdown(socket.SHUT_WR)
                    time.sleep(0.1)
                finally:
                    os.kill(proxy.process.pid, signal.SIGCONT)
                received = b""
                while chunk := sock.recv(65536):
                    received += chunk
                seen[name] = received.split(b"\r\n")[0], received.endswith(b"/held")
    assert seen["haproxy"] == (b"HTTP/1.1 200 OK", True)
    assert seen["haply"] == seen["haproxy"]
