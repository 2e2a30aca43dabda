"""`send-proxy`, `send-proxy-v2` and `check-send-proxy` against HAProxy 2.6:
what a server receives first on a proxied connection (the client's address
and the address it connected to) and on a health check (v1: the check's own
connection; v2: the LOCAL command), in mode http and mode tcp."""

from __future__ import annotations

import socket
import struct
import time

import pytest

from tests.support.haply_process import PROXIES
from tests.support.haproxy_oracle import free_port, haproxy_available, haproxy_config, run_haproxy
from tests.support.proxy_recorder import SIGNATURE, Recorder

pytestmark = pytest.mark.skipif(not haproxy_available(), reason="HAProxy oracle not installed")

def config(port: int, tcp_port: int, v1: Recorder, v2: Recorder, tcp: Recorder) -> str:
    return haproxy_config(f"""
frontend fe
    bind 127.0.0.1:{port}
    use_backend b2 if {{ path_beg /v2 }}
    default_backend b1
backend b1
    option httpchk GET /chk
    server s 127.0.0.1:{v1.port} send-proxy check-send-proxy check inter 300ms
backend b2
    server s 127.0.0.1:{v2.port} send-proxy-v2 check inter 300ms
listen db
    mode tcp
    bind 127.0.0.1:{tcp_port}
    server s 127.0.0.1:{tcp.port} send-proxy-v2
""")


def request(port: int, text: bytes) -> int:
    """Send text and read the answer; the client's port."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(text)
        while sock.recv(65536):
            pass
        return sock.getsockname()[1]


def described(data: bytes, client_port: int, frontend_port: int, server_port: int) -> str:
    """The PROXY header of data in words, the ports named for what they are."""
    if data.startswith(b"PROXY "):
        line = data.split(b"\r\n", 1)[0].decode()
        words = line.split()
        names = {str(client_port): "CLIENT", str(frontend_port): "FRONTEND",
                 str(server_port): "SERVER"}
        return " ".join(names.get(word, "CHECKPORT" if i == 4 else word)
                        for i, word in enumerate(words))
    if data.startswith(SIGNATURE):
        command, family, length = data[12], data[13], struct.unpack("!H", data[14:16])[0]
        if length == 0:
            return f"v2 command={command:#x} family={family:#x} empty"
        src, dst = socket.inet_ntoa(data[16:20]), socket.inet_ntoa(data[20:24])
        sport, dport = struct.unpack("!HH", data[24:28])
        ports = {client_port: "CLIENT", frontend_port: "FRONTEND"}
        return (f"v2 command={command:#x} family={family:#x} length={length} {src} {dst} "
                f"{ports.get(sport, sport)} {ports.get(dport, dport)}")
    return "none"


def test_proxy_headers_as_haproxy():
    seen = {}
    for name, binary in PROXIES.items():
        v1, v2, tcp = Recorder(), Recorder(), Recorder()
        port, tcp_port = free_port(), free_port()
        try:
            with run_haproxy(config(port, tcp_port, v1, v2, tcp), binary=binary):
                time.sleep(0.8)  # a few checks
                first = request(port, b"GET /a HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
                second = request(port, b"GET /v2 HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
                third = request(tcp_port, b"GET /db HTTP/1.0\r\n\r\n")
                time.sleep(0.2)
        finally:
            for recorder in (v1, v2, tcp):
                recorder.close()
        proxied = [described(next(d for d in v1.seen if b"GET /a " in d), first, port, v1.port),
                   described(next(d for d in v2.seen if b"GET /v2 " in d), second, port, v2.port),
                   described(next(d for d in tcp.seen if b"GET /db " in d), third, tcp_port, tcp.port)]
        checks = sorted({described(d, 0, 0, v1.port) for d in v1.seen if b"/chk" in d}
                        | {described(d, 0, 0, v2.port) for d in v2.seen if b"GET" not in d})
        seen[name] = proxied, checks
    assert seen["haply"] == seen["haproxy"]
    assert seen["haproxy"] == (
        ["PROXY TCP4 127.0.0.1 127.0.0.1 CLIENT FRONTEND",
         "v2 command=0x21 family=0x11 length=12 127.0.0.1 127.0.0.1 CLIENT FRONTEND",
         "v2 command=0x21 family=0x11 length=12 127.0.0.1 127.0.0.1 CLIENT FRONTEND"],
        ["PROXY TCP4 127.0.0.1 127.0.0.1 CHECKPORT SERVER", "v2 command=0x20 family=0x0 empty"])
