"""Which timeout ends an exchange, and how the log names it, against HAProxy 2.6.

- A client that stops reading its answer holds the transfer up, not the
  server: `timeout client` runs out and the log says cD, in mode http and in
  mode tcp, even where `timeout server` is the shorter.
- A request that waits in the queue past `timeout queue` gets a 503 logged
  sQ (s: a timeout, Q: while queued), in mode http and in mode tcp.
- The head that never ends (cR, 408), a server slow to answer (sH, 504) or
  slow in its body (sD), and an idle mode tcp session (sD) for reference.
"""

from __future__ import annotations

import socket
import threading
import time

import pytest

from tests.support.haply_process import PROXIES
from tests.support.haproxy_oracle import haproxy_available, haproxy_config
from tests.support.observed import httplog_fields, observed_proxy, scripted

pytestmark = pytest.mark.skipif(not haproxy_available(), reason="HAProxy oracle not installed")

BIG = 16 << 20  # more than the kernel buffers between a server and a client that does not read


def http_server(conn) -> None:
    while (request := conn.read_request()) is not None:
        if request.url == "/slow-head":
            time.sleep(0.9)
        elif request.url == "/slow-body":
            conn.send(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhello")
            time.sleep(0.9)
            conn.send(b"world")
            continue
        elif request.url == "/big":
            conn.respond(200, b"x" * BIG)
            continue
        elif request.url == "/held":
            time.sleep(0.5)
        conn.respond(200, b"ok")


def tcp_server(conn) -> None:
    what = conn.sock.recv(100)
    if what.startswith(b"held"):
        time.sleep(0.5)
        conn.sock.sendall(b"held")
    elif what.startswith(b"big"):
        try:
            conn.sock.sendall(b"x" * BIG)
        except OSError:
            pass


def http_config(port: int, log_port: int, socket_path: str, address: str) -> str:
    return haproxy_config(f"""
frontend fe
    bind 127.0.0.1:{port}
    log 127.0.0.1:{log_port} local2 info
    option httplog
    timeout http-request 600ms
    timeout client 1s
    default_backend be
backend be
    timeout server 600ms
    timeout queue 200ms
    server s1 {address} maxconn 1
""")


def tcp_config(port: int, log_port: int, socket_path: str, address: str) -> str:
    return haproxy_config(f"""
listen tl
    mode tcp
    bind 127.0.0.1:{port}
    log 127.0.0.1:{log_port} local2 info
    option tcplog
    timeout client 1s
    timeout server 600ms
    timeout queue 200ms
    server s1 {address} maxconn 1
""")


def exchange(port: int, data: bytes, read: bool = True) -> tuple[bytes, float]:
    """(the first bytes answered, seconds until the proxy closed)."""
    sock = socket.socket()
    if not read:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    with sock:
        sock.settimeout(5)
        sock.connect(("127.0.0.1", port))
        start = time.monotonic()
        sock.sendall(data)
        answer = b""
        if not read:
            time.sleep(1.4)  # past both timeouts
        try:
            while chunk := sock.recv(65536):
                answer += chunk
        except OSError:
            pass
        return answer[:12], time.monotonic() - start


def two_at_once(port: int, data: bytes) -> list[bytes]:
    """Two clients at once for a server that takes one: the second queues."""
    answers: list[bytes] = []
    threads = [threading.Thread(target=lambda: answers.append(exchange(port, data)[0]))
               for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    return sorted(answers)


def tcplog_fields(message: str) -> tuple[str, str]:
    """server and termination of a tcplog line."""
    words = message.split("] ", 1)[1].split()
    return words[1], words[4]


def test_http_timeouts_named_as_haproxy_names_them():
    seen = {}
    for name, binary in PROXIES.items():
        with observed_proxy(binary, http_config, scripted(http_server)) as (port, receiver, _):
            outcomes = {
                "head never ends": exchange(port, b"GET / HTTP/1.1\r\nHost: h\r\n")[0],
                "slow head": exchange(port, b"GET /slow-head HTTP/1.1\r\nHost: h\r\n\r\n")[0],
                "slow body": exchange(port, b"GET /slow-body HTTP/1.1\r\nHost: h\r\n\r\n")[0],
                "client does not read": exchange(port, b"GET /big HTTP/1.1\r\nHost: h\r\n\r\n",
                                                 read=False)[0],
                "queued": two_at_once(port, b"GET /held HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"),
            }
            lines = sorted(httplog_fields(message) for message in receiver.messages(6, timeout=3))
            seen[name] = outcomes, lines
    outcomes, lines = seen["haproxy"]
    assert ("be/s1", "200", "cD--", '"GET /big HTTP/1.1"') in lines
    assert ("be/<NOSRV>", "503", "sQ--", '"GET /held HTTP/1.1"') in lines
    assert outcomes["queued"] == [b"HTTP/1.1 200", b"HTTP/1.1 503"]
    assert seen["haply"] == seen["haproxy"]


def test_tcp_timeouts_named_as_haproxy_names_them():
    seen = {}
    for name, binary in PROXIES.items():
        with observed_proxy(binary, tcp_config, scripted(tcp_server)) as (port, receiver, _):
            _, idle = exchange(port, b"")
            _, not_reading = exchange(port, b"big", read=False)
            queued = two_at_once(port, b"held")
            lines = sorted(tcplog_fields(message) for message in receiver.messages(4, timeout=3))
            seen[name] = lines, queued
            # the idle session ends at timeout server (0.6 s), in both (the
            # log says which timeout it was: the bound only catches none)
            assert 0.55 < idle < 2.0, (name, idle)
    lines, queued = seen["haproxy"]
    assert sorted(lines) == [("tl/<NOSRV>", "sQ"), ("tl/s1", "--"), ("tl/s1", "cD"), ("tl/s1", "sD")]
    assert queued == [b"", b"held"]
    assert seen["haply"] == seen["haproxy"]
