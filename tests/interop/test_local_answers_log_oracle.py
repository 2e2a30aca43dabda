"""How answers that come from the proxy itself are logged, against HAProxy 2.6:
`http-request deny|return|redirect|auth` in a frontend and in a backend (the
backend's name, the cookie's server for a deny, the termination state with
the cookie flags), a backend without server, and a malformed request
pipelined behind a good one (the good one is answered first, and the bad one
is logged as <BADREQ>)."""

from __future__ import annotations

import re
import socket

import pytest

from tests.interop.test_proxy_oracle import PRELUDE
from tests.support.haply_process import PROXIES
from tests.support.haproxy_oracle import echo_backends, free_port, haproxy_available, run_haproxy
from tests.support.syslog_receiver import Receiver

pytestmark = pytest.mark.skipif(not haproxy_available(), reason="HAProxy oracle not installed")

PATHS = ["/fdeny", "/freturn", "/fredirect", "/fauth", "/f429",
         "/bdeny", "/breturn", "/bredirect", "/bauth", "/nosrv", "/ok"]


def config(port: int, log_port: int, server: str) -> str:
    return PRELUDE + f"""
userlist users
    user admin insecure-password secret

frontend fe
    bind 127.0.0.1:{port}
    log 127.0.0.1:{log_port} local2 info
    option httplog
    http-request deny if {{ path /fdeny }}
    http-request return status 200 content-type text/plain string hi if {{ path /freturn }}
    http-request redirect location /elsewhere if {{ path /fredirect }}
    http-request auth if {{ path /fauth }}
    http-request deny deny_status 429 if {{ path /f429 }}
    use_backend nosrv if {{ path /nosrv }}
    default_backend be

backend be
    cookie SRV insert
    http-request deny if {{ path /bdeny }}
    http-request return status 200 content-type text/plain string hi if {{ path /breturn }}
    http-request redirect location /elsewhere if {{ path /bredirect }}
    http-request auth if {{ path /bauth }}
    server live {server} cookie l

backend nosrv
"""


def exchange(port: int, data: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(data)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
        return received


def logged(message: str) -> tuple[str, ...]:
    """An httplog line without its times and byte count (HAProxy counts its
    internal representation of the answer, haply the bytes sent)."""
    words = message.split("] ", 1)[1].split(" ", 10)
    return words[1], words[3], words[7], words[8], words[10]


def run_each(exercise) -> dict[str, object]:
    seen = {}
    for name, binary in PROXIES.items():
        receiver = Receiver()
        port = free_port()
        try:
            with echo_backends(["live"]) as (live,):
                with run_haproxy(config(port, receiver.port, live.address), binary):
                    receiver.lines(5, timeout=0.3)  # the start-up probe's line
                    seen[name] = exercise(port, receiver)
        finally:
            receiver.close()
    return seen


def test_local_answers_logged_as_haproxy():
    def exercise(port, receiver):
        lines = []
        for path in PATHS:
            status = exchange(port, f"GET {path} HTTP/1.0\r\nCookie: SRV=l\r\n\r\n".encode())[:12]
            messages = receiver.messages(1)
            lines.append((path, status, logged(messages[0]) if messages else None))
        return lines

    seen = run_each(exercise)
    assert seen["haply"] == seen["haproxy"]
    assert ("/bdeny", b"HTTP/1.1 403", ("be/live", "403", "PRVN", "1/1/0/0/0", '"GET /bdeny HTTP/1.0"')
            ) in seen["haply"]


def test_bad_request_pipelined_behind_a_good_one():
    def exercise(port, receiver):
        answer = exchange(port, b"GET /ok HTTP/1.1\r\nHost: a\r\n\r\nXYZ\r\n\r\n")
        statuses = re.findall(rb"HTTP/1\.1 \d{3} [^\r\n]*", answer)
        return statuses, [logged(message) for message in receiver.messages(2)]

    seen = run_each(exercise)
    assert seen["haply"] == seen["haproxy"]
    assert seen["haply"] == ([b"HTTP/1.1 200 OK", b"HTTP/1.1 400 Bad request"], [
        ("be/live", "200", "--NI", "1/1/0/0/0", '"GET /ok HTTP/1.1"'),
        ("fe/<NOSRV>", "400", "PR--", "1/1/0/0/0", '"<BADREQ>"')])
