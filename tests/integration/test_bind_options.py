"""What a bind line's options do to its listening socket and its connections:
socket options read back from the kernel, and a listener's own `maxconn`."""

from __future__ import annotations

import os
import socket
import tempfile

import pytest

from haply.config.model import Bind
from haply.proxy.listeners import open_listener
from tests.support.admin_cli import stat_rows, wait_socket
from tests.support.haply_process import run_haply
from tests.support.haproxy_oracle import echo_backends, free_port

TCP_USER_TIMEOUT, TCP_FASTOPEN, SO_BINDTODEVICE, IP_TRANSPARENT = 18, 23, 25, 19


def test_socket_options_reach_the_kernel():
    options = (("mss", "1200"), ("defer-accept", ""), ("tcp-ut", "5s"), ("backlog", "77"), ("tfo", ""),
               ("interface", "lo"), ("transparent", ""))
    with open_listener(Bind("127.0.0.1", 0, options=options)) as sock:
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG) == 1200
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_DEFER_ACCEPT) == 1
        assert sock.getsockopt(socket.IPPROTO_TCP, TCP_USER_TIMEOUT) == 5000
        assert sock.getsockopt(socket.IPPROTO_TCP, TCP_FASTOPEN) == 77  # queue: the backlog
        assert sock.getsockopt(socket.SOL_SOCKET, SO_BINDTODEVICE, 16).rstrip(b"\0") == b"lo"
        assert sock.getsockopt(socket.IPPROTO_IP, IP_TRANSPARENT) == 1
    with open_listener(Bind("127.0.0.1", 0)) as plain:
        assert plain.getsockopt(socket.IPPROTO_TCP, socket.TCP_DEFER_ACCEPT) == 0
        assert plain.getsockopt(socket.IPPROTO_TCP, TCP_USER_TIMEOUT) == 0
    # "::" takes IPv4 too, unless v6only
    for options, v6only in (((), 0), ((("v6only", ""),), 1), ((("v4v6", ""),), 0)):
        with open_listener(Bind("::", 0, options=options)) as sock:
            assert sock.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY) == v6only, options


def answered(sock: socket.socket, timeout: float) -> bytes:
    sock.settimeout(timeout)
    try:
        return sock.recv(65536)
    except socket.timeout:
        return b""


def test_a_listeners_maxconn_holds_its_connections_back_alone():
    """Over a bind line's maxconn a connection waits, unread, until one of that
    listener's ends; the frontend's other listeners go on serving."""
    with echo_backends(["a"]) as (backend,):
        limited, other = free_port(), free_port()
        sock_path = os.path.join(tempfile.mkdtemp(prefix="bind-"), "admin.sock")
        cfg = f"""global
    nbthread 1
    stats socket {sock_path} level admin
defaults
    mode http
    timeout connect 2s
    timeout client 5s
    timeout server 5s
frontend fe
    bind 127.0.0.1:{limited} maxconn 1 name limited
    bind 127.0.0.1:{other}
    option socket-stats
    default_backend be
backend be
    server a {backend.address}
"""
        request = b"GET / HTTP/1.1\r\nHost: h\r\n\r\n"
        with run_haply(cfg):
            wait_socket(sock_path)
            first = socket.create_connection(("127.0.0.1", limited))
            first.sendall(request)
            assert answered(first, 5).startswith(b"HTTP/1.1 200")
            second = socket.create_connection(("127.0.0.1", limited))
            second.sendall(request)
            assert answered(second, 0.3) == b""  # held back while the first is open
            with socket.create_connection(("127.0.0.1", other)) as third:
                third.sendall(request)
                assert answered(third, 5).startswith(b"HTTP/1.1 200")
            row = next(r for r in stat_rows(sock_path) if r["svname"] == "limited")
            assert (row["scur"], row["slim"], row["status"]) == ("1", "1", "FULL")
            first.close()
            assert answered(second, 5).startswith(b"HTTP/1.1 200")
            second.close()


@pytest.mark.parametrize("mode", ["http", "tcp"])
def test_a_connection_over_the_frontends_maxconn_waits_unread(mode):
    """Over maxconn a connection is accepted by the kernel but nothing it sends
    is read (uvloop reads once connection_made returns, even when it paused
    reading there: the session holds that first read) until a slot frees."""
    with echo_backends(["a"]) as (backend,):
        port = free_port()
        cfg = f"""global
    nbthread 1
defaults
    mode {mode}
    timeout connect 2s
    timeout client 5s
    timeout server 5s
frontend fe
    bind 127.0.0.1:{port}
    maxconn 1
    default_backend be
backend be
    server a {backend.address}
"""
        request = b"GET / HTTP/1.1\r\nHost: h\r\n\r\n"
        with run_haply(cfg):
            first = socket.create_connection(("127.0.0.1", port))
            first.sendall(request)
            assert answered(first, 5).startswith(b"HTTP/1.1 200")
            second = socket.create_connection(("127.0.0.1", port))
            second.sendall(request)
            assert answered(second, 0.3) == b""
            first.close()
            assert answered(second, 5).startswith(b"HTTP/1.1 200")
            second.close()
