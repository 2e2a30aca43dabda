"""How answers that come from the proxy itself are logged, against HAProxy 2.6:
`http-request deny|return|redirect|auth` in a frontend and in a backend (the
backend's name, the cookie's server for a deny, the termination state with
the cookie flags), a backend without server, and a malformed request
pipelined behind a good one (the good one is answered first, and the bad one
is logged as <BADREQ>)."""

from __future__ import annotations

import re
import socket
import time

import pytest

from tests.interop.test_proxy_oracle import PRELUDE, raw_exchange
from tests.support.admin_cli import cli, stat_counts, wait_no_sessions
from tests.support.haply_process import PROXIES
from tests.support.haproxy_oracle import haproxy_available
from tests.support.observed import echoing, observed_proxy

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


def logged(message: str) -> tuple[str, ...]:
    """An httplog line without its times and byte count (HAProxy counts its
    internal representation of the answer, haply the bytes sent)."""
    words = message.split("] ", 1)[1].split(" ", 10)
    return words[1], words[3], words[7], words[8], words[10]


def error_counters(sock: str) -> list[int]:
    """The frontend's req_tot, hrsp_4xx and ereq."""
    lines = cli(sock, "show stat").split("\n")
    header = lines[0][2:].split(",")
    for line in lines[1:]:
        row = dict(zip(header, line.split(",")))
        if row.get("pxname") == "fe" and row.get("svname") == "FRONTEND":
            return [int(row[k] or 0) for k in ("req_tot", "hrsp_4xx", "ereq")]
    raise AssertionError("no frontend row")


def frontend_sessions(sock: str) -> int:
    return int(stat_counts(sock, ("fe",), ("stot",))["fe/FRONTEND"]["stot"])


def wait_accepted(sock: str, count: int, timeout: float = 5.0) -> None:
    """Until the proxy has accepted count connections in all (a client that
    closes at once may still wait in the kernel's queue)."""
    deadline = time.monotonic() + timeout
    while frontend_sessions(sock) < count:
        assert time.monotonic() < deadline, f"fewer than {count} connections accepted"
        time.sleep(0.01)


def counted_proxy(binary: str, frontend_extra: str = ""):
    """The proxy on `config` with a stats socket (and frontend_extra after
    `option httplog`), its start-up probe gone and logged: (port, receiver, socket)."""
    def make_config(port, log_port, sock, address):
        return config(port, log_port, address).replace(
            "    maxconn 1000\n", f"    maxconn 1000\n    stats socket {sock} level admin\n"
        ).replace("    option httplog\n", f"    option httplog\n{frontend_extra}")
    return observed_proxy(binary, make_config, echoing("live"))


def run_each(exercise) -> dict[str, object]:
    seen = {}
    for name, binary in PROXIES.items():
        with observed_proxy(binary, lambda port, log_port, _, address: config(port, log_port, address),
                            echoing("live")) as (port, receiver, _):
            seen[name] = exercise(port, receiver)
    return seen


def test_local_answers_logged_as_haproxy():
    def exercise(port, receiver):
        lines = []
        for path in PATHS:
            status = raw_exchange(port, f"GET {path} HTTP/1.0\r\nCookie: SRV=l\r\n\r\n".encode())[:12]
            messages = receiver.messages(1)
            lines.append((path, status, logged(messages[0]) if messages else None))
        return lines

    seen = run_each(exercise)
    assert seen["haply"] == seen["haproxy"]
    assert ("/bdeny", b"HTTP/1.1 403", ("be/live", "403", "PRVN", "1/1/0/0/0", '"GET /bdeny HTTP/1.0"')
            ) in seen["haply"]


def test_bad_request_pipelined_behind_a_good_one():
    def exercise(port, receiver):
        answer = raw_exchange(port, b"GET /ok HTTP/1.1\r\nHost: a\r\n\r\nXYZ\r\n\r\n")
        statuses = re.findall(rb"HTTP/1\.1 \d{3} [^\r\n]*", answer)
        return statuses, [logged(message) for message in receiver.messages(2)]

    seen = run_each(exercise)
    assert seen["haply"] == seen["haproxy"]
    assert seen["haply"] == ([b"HTTP/1.1 200 OK", b"HTTP/1.1 400 Bad request"], [
        ("be/live", "200", "--NI", "1/1/0/0/0", '"GET /ok HTTP/1.1"'),
        ("fe/<NOSRV>", "400", "PR--", "1/1/0/0/0", '"<BADREQ>"')])


def test_client_leaving_before_a_whole_request_as_haproxy():
    """A client that closes having sent nothing, part of a first request, or
    part of a second one after an answer: logged <BADREQ> CR-- 400 and counted
    as a request answered 400 and a request error, as HAProxy does."""
    seen = {}
    for name, binary in PROXIES.items():
        with counted_proxy(binary) as (port, receiver, sock):
            before = error_counters(sock)
            lines = []
            for data in (b"", b"GET / HT", b"GET / HTTP/1.1\r\nHost: h\r\n",
                         b"GET /ok HTTP/1.1\r\nHost: h\r\n\r\nGET /ok HTTP/1.1\r\nHo"):
                client = socket.create_connection(("127.0.0.1", port), timeout=5)
                client.sendall(data)
                time.sleep(0.1)
                client.close()
                lines.append([logged(message) for message in receiver.messages(1 + data.count(b"\r\n\r\n"))])
            wait_no_sessions(sock)
            seen[name] = lines, [a - b for a, b in zip(error_counters(sock), before)]
    assert seen["haply"] == seen["haproxy"]
    assert seen["haply"][1] == [5, 4, 4]  # the /ok exchange counts one more request


@pytest.mark.parametrize("option", ["", "option http-ignore-probes"])
def test_silent_connections_as_haproxy(option):
    """Past `timeout http-request`, a connection that sent nothing gets a 408
    as one that sent part of a head does, and both are logged and counted
    (req_tot, hrsp_4xx, ereq) with a malformed request; under `option
    http-ignore-probes` a connection that sends nothing (a browser's
    pre-connect) is closed quietly, neither logged nor counted."""
    seen = {}
    for name, binary in PROXIES.items():
        with counted_proxy(binary, f"    timeout http-request 500ms\n    {option}\n") as (port, receiver, sock):
            before = error_counters(sock)
            accepted = frontend_sessions(sock)
            answers = []
            for data in (b"", b"GET / HT", None, b"GET / HTTP/1.1\r\nbad header\r\n\r\n"):
                with socket.create_connection(("127.0.0.1", port), timeout=3) as client:
                    if data is None:  # closed at once, having sent nothing
                        answers.append(b"closed")
                        client.close()
                        wait_accepted(sock, accepted + 3)
                        wait_no_sessions(sock)  # gone before the next one comes
                        continue
                    client.sendall(data)
                    received = b""
                    while chunk := client.recv(65536):
                        received += chunk
                    answers.append(received.split(b"\r\n", 1)[0])
            time.sleep(0.2)
            wait_no_sessions(sock)
            lines = [logged(message) for message in receiver.messages(4, timeout=1)]
            seen[name] = answers, lines, [a - b for a, b in zip(error_counters(sock), before)]
    assert seen["haply"] == seen["haproxy"]
