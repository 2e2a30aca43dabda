"""Exchanges that end before their answer did, and what the proxy counts,
against HAProxy 2.6:

- a server that closes in the middle of its body is logged SD-- and counted
  in the server's srv_abrt and eresp;
- a client that resets its connection in the middle of a download, or in the
  middle of its upload, is logged CD-- (with the server's status once its
  head came, -1 before) and counted in the server's cli_abrt;
- a backend counts every answer to a request routed to it, its servers' and
  the proxy's own (deny, redirect, return, 503 without server, 502/504 after
  a server failed), in req_tot and hrsp_*; a server counts the answers it
  sent, 1xx included;
- in mode tcp, a session a side resets is logged CD or SD, one that goes
  quiet past its timeout cD or sD, and counted the same way.
"""

from __future__ import annotations

import socket
import struct
import time

import pytest

from tests.support.admin_cli import stat_counts, wait_no_sessions
from tests.support.haply_process import PROXIES
from tests.support.haproxy_oracle import free_port, haproxy_available, haproxy_config, with_stats_socket
from tests.support.observed import httplog_fields, observed_proxy, scripted

pytestmark = pytest.mark.skipif(not haproxy_available(), reason="HAProxy oracle not installed")

BIG = 16 << 20  # more than the kernel buffers between the server and a client that stops reading
COUNTED = ("req_tot", "hrsp_1xx", "hrsp_2xx", "hrsp_3xx", "hrsp_4xx", "hrsp_5xx",
           "eresp", "srv_abrt", "cli_abrt", "dreq")


def server(conn) -> None:
    while (request := conn.read_request()) is not None:
        if request.url == "/short":  # 5 bytes of the 1000 announced
            conn.send(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\nhello")
            return
        if request.url == "/big":
            conn.respond(200, b"x" * BIG)
        elif request.url == "/continue":
            conn.send(b"HTTP/1.1 100 Continue\r\n\r\n")
            conn.respond(200, b"after 100")
        elif request.url == "/close":
            return
        elif request.url.startswith("/bad-chunk"):
            head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
            if request.url == "/bad-chunk-later":  # the head and a chunk go out first
                conn.send(head + b"5\r\nhello\r\n")
                time.sleep(0.2)
                head = b""
            conn.send(head + b"1\r\nxy\r\n0\r\n\r\n")  # more data than the size said
            return
        elif request.url == "/silent":
            time.sleep(1.3)  # past timeout server
            return
        else:
            conn.respond(200, b"ok")


def config(port: int, log_port: int, socket_path: str, address: str, dead: int) -> str:
    return with_stats_socket(haproxy_config(f"""
frontend fe
    bind 127.0.0.1:{port}
    log 127.0.0.1:{log_port} local2 info
    option httplog
    use_backend empty if {{ path /empty }}
    use_backend dead if {{ path /dead }}
    default_backend be
backend be
    retry-on conn-failure
    http-request deny if {{ path /deny }}
    http-request redirect location /x if {{ path /redirect }}
    http-request return status 200 content-type text/plain string hi if {{ path /return }}
    server s1 {address}
backend empty
    server s2 {address} disabled
backend dead
    retries 0
    server s3 127.0.0.1:{dead}
"""), socket_path).replace("timeout server 5s", "timeout server 1s")


def reset(sock: socket.socket) -> None:
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def ask(port: int, request: bytes) -> None:
    """A whole exchange on its own connection."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(request)
        while sock.recv(65536):
            pass


def counters(socket_path: str) -> dict[str, dict[str, str]]:
    return stat_counts(socket_path, ("be", "empty", "dead"), COUNTED)


def exercise(port: int) -> None:
    close = b"Connection: close\r\n"
    for path in ("/ok", "/short", "/continue", "/deny", "/redirect", "/return", "/empty",
                 "/dead", "/close", "/silent", "/bad-chunk", "/bad-chunk-later"):
        ask(port, b"GET %s HTTP/1.1\r\nHost: h\r\n%s\r\n" % (path.encode(), close))
    # a client that resets its connection in the middle of a download
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    sock.sendall(b"GET /big HTTP/1.1\r\nHost: h\r\n\r\n")
    sock.recv(1000)
    time.sleep(0.1)
    reset(sock)
    time.sleep(0.2)
    # ... and one in the middle of its upload
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.sendall(b"POST /upload HTTP/1.1\r\nHost: h\r\nContent-Length: 100000\r\n\r\nabc")
    time.sleep(0.2)
    reset(sock)


def test_broken_exchanges_logged_and_counted_as_haproxy():
    seen = {}
    dead = free_port()
    for name, binary in PROXIES.items():
        with observed_proxy(binary, lambda port, log_port, path, address:
                            config(port, log_port, path, address, dead), scripted(server)) as (port, receiver, path):
            exercise(port)
            wait_no_sessions(path)
            lines = sorted(httplog_fields(message) for message in receiver.messages(14, timeout=3))
            seen[name] = lines, counters(path)
    lines, counts = seen["haproxy"]
    assert ("be/s1", "200", "SD--", '"GET /short HTTP/1.1"') in lines
    assert ("be/s1", "200", "CD--", '"GET /big HTTP/1.1"') in lines
    assert ("be/s1", "-1", "CD--", '"POST /upload HTTP/1.1"') in lines
    assert ("be/s1", "502", "PH--", '"GET /bad-chunk HTTP/1.1"') in lines
    assert ("be/s1", "200", "SD--", '"GET /bad-chunk-later HTTP/1.1"') in lines
    assert seen["haply"][0] == lines
    for row, theirs in counts.items():
        assert seen["haply"][1][row] == theirs, row


def tcp_server(conn) -> None:
    what = conn.sock.recv(100)
    if what == b"big":
        conn.sock.sendall(b"x" * BIG)
    elif what == b"reset":
        reset(conn.sock)
    elif what == b"silent":
        time.sleep(1.5)  # past timeout server
    else:
        conn.sock.sendall(b"hello")


def tcp_config(port: int, log_port: int, socket_path: str, address: str) -> str:
    return with_stats_socket(haproxy_config(f"""
listen be
    mode tcp
    bind 127.0.0.1:{port}
    log 127.0.0.1:{log_port} local2 info
    option tcplog
    server s1 {address}
"""), socket_path).replace("timeout server 5s", "timeout server 1s")


def test_tcp_sessions_broken_off_as_haproxy():
    seen = {}
    for name, binary in PROXIES.items():
        with observed_proxy(binary, tcp_config, scripted(tcp_server)) as (port, receiver, path):
            endings = []
            for what in (b"hello", b"reset", b"big", b"silent"):
                sock = socket.socket()
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
                sock.connect(("127.0.0.1", port))
                sock.settimeout(3)
                sock.sendall(what)
                try:
                    sock.recv(1000)
                    if what == b"silent":
                        sock.recv(1000)  # until the proxy gives up on the server
                except OSError:
                    pass
                if what == b"big":
                    reset(sock)  # in the middle of the download
                else:
                    sock.close()
                endings.append(receiver.messages(1, timeout=3)[0].split()[6])
            wait_no_sessions(path)
            seen[name] = endings, counters(path)
    assert seen["haproxy"][0] == ["--", "SD", "CD", "sD"]
    assert seen["haply"] == seen["haproxy"]
