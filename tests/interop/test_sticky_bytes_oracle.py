"""Byte and failure counters of stick tables (`bytes_in_cnt`, `bytes_out_cnt`,
their rates, `http_fail_cnt`, `http_fail_rate`) against HAProxy 2.6 on the
same configuration and traffic.

bytes_in counts what a tracked client sent, heads included, bytes_out what it
was sent; http_fail counts the failures servers cause (a 5xx other than 501
and 505, a response that never comes or breaks off). Operators use them to
spot clients that upload or download too much and paths that make servers
fail. Counted per session (`tcp-request connection track-sc0`) and per
request (`http-request track-sc0`), in mode http and mode tcp.

In mode tcp both proxies count the bytes on the wire and must agree to the
byte. In mode http HAProxy counts a message as its internal representation
holds it (a few bytes more per head than were sent: 39 for a 28-byte GET),
haply counts the connection's bytes, as its logs' %U and %B do: there the
test checks haply's counts against what the client sent and received, and
compares every other counter with HAProxy's.
"""

from __future__ import annotations

import os
import re
import socket
import tempfile
import time

import pytest

from tests.interop.test_proxy_oracle import run_both
from tests.interop.test_stick_oracle import entries
from tests.interop.test_sticky_counters_oracle import connect, read_answer, settle
from tests.support.admin_cli import cli, wait_socket
from tests.support.haproxy_oracle import free_port, haproxy_available, haproxy_config, with_stats_socket
from tests.support.scripted_backend import Conn, scripted_backend

pytestmark = pytest.mark.skipif(not haproxy_available(), reason="HAProxy oracle not installed")

BODY = b"b" * 100
STORE = ("bytes_in_cnt,bytes_in_rate(1h),bytes_out_cnt,bytes_out_rate(1h),"
         "http_fail_cnt,http_fail_rate(1h),http_err_cnt")


def app(conn: Conn) -> None:
    """/sNNN answers status NNN, /close closes without an answer, /slow
    answers after `timeout server`; anything else 200. Bodies are BODY."""
    while True:
        request = conn.read_request()
        if request is None:
            return
        path = request.url
        if path == "/close":
            return
        if path == "/slow":
            time.sleep(0.6)
        status = int(path[2:]) if path[2:].isdigit() else 200
        conn.respond(status, BODY, reason="X")


def echo(conn: Conn) -> None:
    while True:
        data = conn.recv()
        if not data:
            return
        conn.send(data * 2)


class Tally:
    """What one client sent and received, in bytes, across its connections."""

    def __init__(self) -> None:
        self.sent = self.received = 0


def exchange(sock: socket.socket, request: bytes, tally: Tally) -> bytes:
    """Send one request and read its whole answer (which has a length); its
    status line."""
    sock.sendall(request)
    tally.sent += len(request)
    head, body = read_answer(sock)
    if body is None:
        return head
    tally.received += len(head) + 4 + len(body)
    return head.split(b"\r\n")[0]


BYTE_FIELDS = re.compile(r" bytes_(?:in|out)_(?:cnt|rate\(\d+\))=(\d+)")


def split_bytes(lines: list[str]) -> tuple[list[str], list[int]]:
    """`show table` lines without their byte counters, and those counters."""
    counts = [int(value) for line in lines for value in BYTE_FIELDS.findall(line)]
    return [BYTE_FIELDS.sub("", line) for line in lines], counts


def get(path: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: h\r\n\r\n".encode()


def test_byte_and_failure_counters_as_haproxy():
    with scripted_backend(app, "app") as server, scripted_backend(echo, "echo") as echo_server:
        directory = tempfile.mkdtemp(prefix="sticky-bytes-")
        sock_path = os.path.join(directory, "admin.sock")
        per_request, tcp, limits = free_port(), free_port(), free_port()
        cfg = with_stats_socket(haproxy_config(f"""
defaults
    mode http
    timeout connect 2s
    timeout client 5s
    timeout server 300ms

frontend per_session
    bind 127.0.0.1:@PORT@
    stick-table type ip size 100 expire 30s store {STORE}
    tcp-request connection track-sc0 src
    use_backend dead if {{ path /dead }}
    default_backend app

frontend per_request
    bind 127.0.0.1:{per_request}
    # a frontend that logs counts its connections' bytes for its log lines:
    # the same counts serve the table
    log stdout format raw local0
    option httplog
    stick-table type ip size 100 expire 30s store {STORE}
    http-request track-sc0 src
    use_backend dead if {{ path /dead }}
    default_backend app

frontend limits
    bind 127.0.0.1:{limits}
    stick-table type ip size 100 expire 30s store bytes_in_cnt,bytes_out_rate(1h),http_fail_cnt
    tcp-request connection track-sc0 src
    http-request deny deny_status 413 if {{ sc0_kbytes_in gt 0 }}
    http-request deny deny_status 429 if {{ src_http_fail_cnt ge 2 }}
    default_backend app

listen relay
    mode tcp
    bind 127.0.0.1:{tcp}
    stick-table type ip size 100 expire 30s store bytes_in_cnt,bytes_out_cnt,bytes_in_rate(1h)
    tcp-request connection track-sc1 src
    timeout server 5s
    server echo {echo_server.address}

backend app
    server app {server.address}

backend dead
    server gone 127.0.0.1:9
"""), sock_path)

        def exercise(port):
            wait_socket(sock_path)
            settle(sock_path)
            seen = {}
            for name, target in (("per_session", port), ("per_request", per_request)):
                cli(sock_path, f"clear table {name}")
                tally = Tally()

                def table(label: str) -> None:
                    settle(sock_path)
                    lines, counts = split_bytes(entries(cli(sock_path, f"show table {name}")))
                    seen[f"{name} {label}"] = lines
                    # bytes_in_cnt, its rate, bytes_out_cnt, its rate
                    seen[f"{name} {label} bytes"] = (counts, [tally.sent] * 2 + [tally.received] * 2)

                with connect(target) as sock:
                    post = b"POST /a HTTP/1.1\r\nHost: h\r\nContent-Length: 1000\r\n\r\n" + b"p" * 1000
                    seen[name] = [exchange(sock, get("/a"), tally), exchange(sock, post, tally),
                                  exchange(sock, get("/s404"), tally)]
                table("keep-alive")
                for path in ("/s500", "/s501", "/s503", "/s505", "/close", "/slow", "/dead"):
                    with connect(target) as sock:
                        seen[f"{name} {path}"] = exchange(sock, get(path), tally)
                    table(path)
            # the fetches: a failing client is refused, then an uploading one
            tally = Tally()
            cli(sock_path, "clear table limits")
            answers = []
            for path in ("/s500", "/s503", "/a"):
                with connect(limits) as sock:
                    answers.append(exchange(sock, get(path), tally))
                settle(sock_path)
            cli(sock_path, "clear table limits")
            for request in (b"POST /a HTTP/1.1\r\nHost: h\r\nContent-Length: 1000\r\n\r\n" + b"p" * 1000,
                            get("/a")):
                with connect(limits) as sock:
                    answers.append(exchange(sock, request, tally))
                settle(sock_path)
            seen["limits"] = answers
            cli(sock_path, "clear table relay")
            with connect(tcp) as sock:
                sock.sendall(b"x" * 300)
                got = b""
                while len(got) < 600:
                    got += sock.recv(65536)
                sock.sendall(b"y" * 50)
                while len(got) < 700:
                    got += sock.recv(65536)
            settle(sock_path)
            seen["relay"] = entries(cli(sock_path, "show table relay"))
            os.unlink(sock_path)
            return seen

        results = run_both(cfg, exercise)
    theirs, ours = results["haproxy"], results["haply"]
    for key in theirs:
        if key.endswith(" bytes"):
            counted, moved = ours[key]
            assert counted == moved, (key, "haply counted", counted, "the client moved", moved)
            counted, moved = theirs[key]
            assert len(counted) == 4 and all(c >= m for c, m in zip(counted, moved)), (key, counted, moved)
        else:
            assert ours[key] == theirs[key], (key, ours[key], theirs[key])
    # what the comparison is about, so that a change in both cannot pass unseen
    for name in ("per_session", "per_request"):
        assert "http_fail_cnt=4 http_fail_rate(3600000)=4" in ours[f"{name} /dead"][1]
        assert "http_err_cnt=1 " in ours[f"{name} /dead"][1]
    assert "bytes_in_cnt=350 bytes_in_rate(3600000)=350 bytes_out_cnt=700" in ours["relay"][1]
    assert [line.split(b" ")[1] for line in ours["limits"]] == [b"500", b"503", b"429", b"200", b"413"]
