"""`http-request tarpit` against HAProxy 2.6: the request is held for the
rule's proxy's `timeout tarpit` (its `timeout connect` when unset), then
answered with an error (500 unless `deny_status` says otherwise), the
connection kept; it is counted as denied and logged PT--, with no TR and its
time in the tarpit as Tw. A client that half-closes while held is still
answered, logged and counted as HAProxy does it; one that resets its
connection is logged and counted as answered, and as a client abort in the
backend, as HAProxy does when the answer it sends at the tarpit's end fails.
"""

from __future__ import annotations

import socket
import struct
import time

import pytest

from tests.support.admin_cli import stat_counts, wait_no_sessions
from tests.support.haply_process import PROXIES
from tests.support.haproxy_oracle import haproxy_available, haproxy_config, with_stats_socket
from tests.support.observed import httplog_fields, observed_proxy, scripted

pytestmark = pytest.mark.skipif(not haproxy_available(), reason="HAProxy oracle not installed")

COUNTED = ("req_tot", "dreq", "hrsp_2xx", "hrsp_4xx", "hrsp_5xx", "cli_abrt", "ereq")


def server(conn) -> None:
    while conn.read_request() is not None:
        conn.respond(200, b"ok")


def config(port: int, log_port: int, socket_path: str, address: str) -> str:
    return with_stats_socket(haproxy_config(f"""
frontend fe
    bind 127.0.0.1:{port}
    log 127.0.0.1:{log_port} local2 info
    option httplog
    timeout tarpit 400ms
    http-request tarpit if {{ path /front }}
    default_backend be
backend be
    timeout connect 300ms
    http-request tarpit deny_status 403 if {{ path /back }}
    server s1 {address}
"""), socket_path)


def held(port: int, path: str, leave: str | None = None) -> tuple:
    """(status line, whether the proxy closed, seconds until the answer) of a
    keep-alive request for path; None for the status of a client that leaves
    (closes, or resets) while held."""
    with socket.create_connection(("127.0.0.1", port), timeout=3) as sock:
        start = time.monotonic()
        sock.sendall(b"GET %s HTTP/1.1\r\nHost: h\r\n\r\n" % path.encode())
        if leave is not None:
            time.sleep(0.1)
            if leave == "reset":
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            return None, True, None
        answer = b""
        took = None
        try:
            while chunk := sock.recv(65536):
                answer += chunk
                if took is None and b"\r\n\r\n" in answer:
                    took = time.monotonic() - start
                    sock.settimeout(0.3)  # the close, if it comes
            closed = True
        except socket.timeout:
            closed = False
        return answer.split(b"\r\n", 1)[0], closed, took


def timers_of(message: str) -> tuple[int, ...]:
    """TR/Tw/Tc/Tr/Ta of an httplog line."""
    return tuple(int(t) for t in message.split("] ", 1)[1].split(" ")[2].split("/"))


def test_tarpit_as_haproxy():
    seen = {}
    timers = {}
    for name, binary in PROXIES.items():
        with observed_proxy(binary, config, scripted(server)) as (port, receiver, path):
            outcomes = [held(port, "/front"), held(port, "/back"), held(port, "/front", leave="close"),
                        held(port, "/back", leave="reset")]
            time.sleep(0.5)  # past the left clients' tarpits
            messages = receiver.messages(4, timeout=3) + receiver.messages(1, timeout=0.3)
            wait_no_sessions(path)
            seen[name] = (outcomes, sorted(httplog_fields(message) for message in messages),
                          stat_counts(path, ("fe", "be"), COUNTED))
            timers[name] = sorted(timers_of(message) for message in messages
                                  if " PT-- " in message and "/back" in message)
    # answered after the tarpit of the rule's proxy (0.4 s, 0.3 s), not much later
    for name, (outcomes, _, _) in seen.items():
        front, back = outcomes[0][2], outcomes[1][2]
        assert 0.4 <= front < 0.8 and 0.3 <= back < 0.7, (name, outcomes)
        outcomes[:] = [outcome[:2] for outcome in outcomes]
    outcomes, lines, counts = seen["haproxy"]
    assert outcomes[:2] == [(b"HTTP/1.1 500 Internal Server Error", False),
                            (b"HTTP/1.1 403 Forbidden", False)]
    assert ("fe/<NOSRV>", "500", "PT--", '"GET /front HTTP/1.1"') in lines
    assert counts["fe/FRONTEND"]["dreq"] == "4" and counts["be/BACKEND"]["dreq"] == "2"
    assert counts["be/BACKEND"]["cli_abrt"] == "1"  # the reset client
    assert seen["haply"] == seen["haproxy"]
    # No TR, the time in the tarpit as Tw, no connect or response time. A
    # client that resets is logged by haply when it leaves (0.1 s), by
    # HAProxy when the tarpit ends (0.3 s).
    for name, both in timers.items():
        assert all(TR == Tc == Tr == -1 for TR, _, Tc, Tr, _ in both), (name, both)
        (_, reset, *_), (_, answered, *_) = both  # sorted: the shorter one first
        assert (90 if name == "haply" else 300) <= reset and 300 <= answered < 600, (name, both)
