"""Cookie persistence (`cookie NAME insert|rewrite|prefix ...`, `server ... cookie
VALUE`) against HAProxy 2.6 on the same configuration.

Each request goes on a new connection with a chosen Cookie field and path; the
servers answer with their name and the Cookie field they received, and set a
cookie of their own when the path asks for it. Both proxies must pick the same
server, forward the same Cookie field, and answer with the same Set-Cookie and
Cache-Control fields, in every mode and for every kind of client cookie: none,
valid, unknown, naming a server that is down, among other cookies. The httplog
lines must carry the same persistence flags (termination state, characters 3-4).
"""

from __future__ import annotations

import os
import re
import socket
import tempfile
import time

import pytest

from tests.interop.test_proxy_oracle import PRELUDE, raw_exchange, run_both, split_head
from tests.support.admin_cli import cli, wait_socket
from tests.support.haproxy_oracle import haproxy_available
from tests.support.scripted_backend import Conn, scripted_backend

pytestmark = pytest.mark.skipif(not haproxy_available(), reason="HAProxy oracle not installed")


def cookie_server(conn: Conn) -> None:
    """Answers with its name and the Cookie field it got; /set?VALUE makes it
    set a cookie named by the path's first segment after /set."""
    while True:
        request = conn.read_request()
        if request is None:
            return
        headers = [("X-Server", conn.server.name),
                   ("X-Cookie", " | ".join(request.headers_named("Cookie")) or "-")]
        path, _, query = request.url.partition("?")
        if path.startswith("/set/"):
            headers.append(("Set-Cookie", f"{path[5:]}={query}; path=/"))
        headers += CACHING.get(path, [("X-Plain", "1")])
        conn.respond(200, b"ok\n", headers)
        if (request.header("Connection") or "").lower() == "close":
            return


# Answers a cache may or may not store: `nocache` marks the first kind private
# when it inserts a cookie.
CACHING = {
    "/cacheable": [("Cache-Control", "public, max-age=60")],
    "/etag": [("ETag", '"v1"')],
    "/nostore": [("Cache-Control", "no-store"), ("ETag", '"v1"')],
    "/expires": [("Expires", "Thu, 01 Dec 2039 16:00:00 GMT")],
    "/pragma": [("Pragma", "no-cache"), ("Last-Modified", "Thu, 01 Dec 2022 16:00:00 GMT")],
}


def servers_config(mode_line: str, backends, sock: str, log_port: int) -> str:
    servers = "".join(f"    server {b.name} {b.address} cookie {b.name}\n" for b in backends)
    return PRELUDE.replace("    maxconn 1000\n", f"    maxconn 1000\n    stats socket {sock} level admin\n") + f"""
listen app
    bind 127.0.0.1:@PORT@
    balance roundrobin
    log 127.0.0.1:{log_port} local0
    option httplog
    capture request header X-Seq len 4
    {mode_line}
{servers}    server nocookie 127.0.0.1:1 disabled
"""


# httplog: ... status bytes captured-cookies termination-state conn-counts
# queues {X-Seq} ...: a proxy logs a request when its stream ends, which is not
# always in the order the requests were sent, so each carries its number.
TERMINATION = re.compile(rb' 200 \d+ \S+ \S+ (\S{4}) \d+/\d+/\d+/\d+/\d+ \d+/\d+ \{(\d+)\} ')


def drain(receiver: socket.socket) -> None:
    """Forget the lines of earlier connections (the start-up probes)."""
    while True:
        try:
            receiver.recv(65536)
        except socket.timeout:
            return


def termination_states(receiver: socket.socket, count: int) -> list[bytes]:
    """The termination state of requests 0..count-1, in request order."""
    found: dict[int, bytes] = {}
    deadline = time.monotonic() + 5
    while len(found) < count and time.monotonic() < deadline:
        try:
            line = receiver.recv(65536)
        except socket.timeout:
            continue
        match = TERMINATION.search(line)
        if match:
            found[int(match.group(2))] = match.group(1)
    return [found.get(i, b"") for i in range(count)]


# (method, path, Cookie field or None)
REQUESTS = [
    ("GET", "/", None),
    ("GET", "/", "SRV=s2"),
    ("GET", "/", "a=1;SRV=s2;b=2"),
    ("GET", "/", "SRV=s2; b=2"),
    ("GET", "/", "a=1;b=2;SRV=s1"),
    ("GET", "/", "a=1;b=2;SRV=s1;c=3"),
    ("GET", "/", "a=1 ;  SRV=s1  ; c=3"),
    ("GET", "/etag", None),
    ("GET", "/nostore", None),
    ("GET", "/expires", None),
    ("GET", "/pragma", None),
    ("HEAD", "/cacheable", None),
    ("GET", "/", "a=1; SRV=s2; b=2"),
    ("GET", "/", "SRV=s1;other=x"),
    ("GET", "/", "SRV=unknown"),
    ("GET", "/", "SRV="),
    ("GET", "/", "xSRV=s2; SRVx=s1"),
    ("POST", "/", None),
    ("GET", "/cacheable", None),
    ("GET", "/cacheable", "SRV=s2"),
    ("GET", "/set/SRV?app", None),
    ("GET", "/set/SRV?app", "SRV=s2"),
    ("GET", "/set/JSESSIONID?abc", None),
    ("GET", "/", "JSESSIONID=s2~abc"),
    ("GET", "/", "JSESSIONID=abc"),
    ("GET", "/", "JSESSIONID=s9~abc; SRV=s1"),
    ("GET", "/", "SRV=s3"),  # s3 is in maintenance (set below)
]

MODES = {
    "insert-indirect-nocache": "cookie SRV insert indirect nocache",
    "insert": "cookie SRV insert",
    "insert-preserve": "cookie SRV insert preserve indirect",
    "insert-postonly-attrs": "cookie SRV insert indirect postonly httponly secure domain .example.com attr SameSite=Lax",
    "rewrite": "cookie SRV rewrite",
    "prefix": "cookie JSESSIONID prefix",
    "passive": "cookie SRV",
    "passive-indirect": "cookie SRV indirect",
}


def exchange(port: int, method: str, path: str, cookie: str | None, seq: int = 0) -> tuple:
    request = f"{method} {path} HTTP/1.1\r\nHost: h\r\nX-Seq: {seq}\r\n"
    if cookie is not None:
        request += f"Cookie: {cookie}\r\n"
    if method == "POST":
        request += "Content-Length: 0\r\n"
    request += "Connection: close\r\n\r\n"
    line, fields = split_head(raw_exchange(port, request.encode()))
    wanted = (b"x-server", b"x-cookie", b"set-cookie", b"cache-control", b"pragma")
    return line, [(name, value) for name, value in fields if name in wanted]


@pytest.fixture(scope="module")
def backends():
    with scripted_backend(cookie_server, "s1") as s1, scripted_backend(cookie_server, "s2") as s2, \
            scripted_backend(cookie_server, "s3") as s3:
        yield [s1, s2, s3]


@pytest.mark.parametrize("mode", sorted(MODES))
def test_same_persistence_as_haproxy(mode, backends):
    directory = tempfile.mkdtemp(prefix="cookie-")
    sock = os.path.join(directory, "admin.sock")
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind(("127.0.0.1", 0))
    receiver.settimeout(0.2)
    cfg = servers_config(MODES[mode], backends, sock, receiver.getsockname()[1])

    def exercise(port):
        wait_socket(sock)
        cli(sock, "disable server app/s3")
        drain(receiver)
        answers = [exchange(port, *request, seq) for seq, request in enumerate(REQUESTS)]
        flags = termination_states(receiver, len(REQUESTS))
        os.unlink(sock)
        return answers, flags

    with receiver:
        results = run_both(cfg, exercise)
    (theirs, their_flags), (ours, our_flags) = results["haproxy"], results["haply"]
    for request, their_answer, our_answer in zip(REQUESTS, theirs, ours):
        assert our_answer == their_answer, (mode, request)
    assert b"" not in their_flags, their_flags  # every line arrived
    assert list(zip(REQUESTS, our_flags)) == list(zip(REQUESTS, their_flags)), mode


def test_draining_server_keeps_its_persistent_clients(backends):
    """`set server ... state drain`: no new client is balanced to s1, but one
    whose cookie names it still gets there (HAProxy's drain semantics)."""
    directory = tempfile.mkdtemp(prefix="cookie-")
    sock = os.path.join(directory, "admin.sock")
    cfg = servers_config(MODES["insert-indirect-nocache"], backends, sock, 9)
    requests = [("GET", "/", None), ("GET", "/", "SRV=s1"), ("GET", "/", None),
                ("GET", "/", "SRV=s1"), ("GET", "/", "SRV=s2")]

    def exercise(port):
        wait_socket(sock)
        cli(sock, "set server app/s1 state drain")
        cli(sock, "disable server app/s3")
        answers = [exchange(port, *request) for request in requests]
        os.unlink(sock)
        return answers

    results = run_both(cfg, exercise)
    assert results["haply"] == results["haproxy"]
    servers = [dict(fields)[b"x-server"] for _, fields in results["haply"]]
    assert servers == [b"s2", b"s1", b"s2", b"s1", b"s2"]
