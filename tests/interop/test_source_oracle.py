"""`source` against HAProxy 2.6: the address (and port range) connections to
servers leave from, for the traffic and the health checks alike, a server's
own `source` over its backend's. The backend records the peer address of
every connection it gets, and the same requests go through each proxy.
"""

from __future__ import annotations

import threading
import time

import pytest

from tests.interop.test_proxy_oracle import PRELUDE, raw_exchange, run_both
from tests.support.haproxy_oracle import haproxy_available
from tests.support.scripted_backend import Conn, scripted_backend

pytestmark = pytest.mark.skipif(not haproxy_available(), reason="HAProxy oracle not installed")

RANGE = range(21400, 21404)  # s2's source ports: fewer than its connections, so reused


class Peers:
    """(peer address, peer port, request path) of each request the backend reads."""

    def __init__(self):
        self.seen: list[tuple[str, int, str]] = []
        self.lock = threading.Lock()

    def answer(self, conn: Conn) -> None:
        host, port = conn.sock.getpeername()[:2]
        while (request := conn.read_request()) is not None:
            with self.lock:
                self.seen.append((host, port, request.url))
            conn.send(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
            return

    def take(self) -> list[tuple[str, int, str]]:
        with self.lock:
            seen, self.seen = self.seen, []
        return seen


def test_traffic_and_checks_leave_from_the_source_addresses():
    peers = Peers()
    with scripted_backend(peers.answer) as backend:
        cfg = (PRELUDE + "\nlisten app\n    bind 127.0.0.1:@PORT@\n    balance roundrobin\n"
               "    source 127.0.0.2\n    option httpchk GET /check\n"
               f"    server s1 {backend.address} check inter 200ms\n"
               f"    server s2 {backend.address} check inter 200ms "
               f"source 127.0.0.3:{RANGE[0]}-{RANGE[-1]}\n")

        def exercise(port: int) -> dict:
            peers.take()
            statuses = [raw_exchange(port, f"GET /req{i} HTTP/1.1\r\nHost: h\r\n"
                                           "Connection: close\r\n\r\n".encode()).split(b" ")[1]
                        for i in range(8)]
            time.sleep(0.5)  # two more rounds of checks
            seen = peers.take()
            requests = sorted((host, path) for host, _, path in seen if path != "/check")
            checkers = {host for host, _, path in seen if path == "/check"}
            ranged = {port for host, port, _ in seen if host == "127.0.0.3"}
            return {"statuses": statuses, "requests": requests, "checkers": checkers,
                    "ports in range": ranged <= set(RANGE), "ports reused": len(ranged) <= len(RANGE)}

        results = run_both(cfg, exercise)
    assert results["haply"] == results["haproxy"]
    found = results["haply"]
    assert found["statuses"] == [b"200"] * 8
    assert found["requests"] == sorted([("127.0.0.2", f"/req{i}") for i in range(0, 8, 2)]
                                       + [("127.0.0.3", f"/req{i}") for i in range(1, 8, 2)])
    assert found["checkers"] == {"127.0.0.2", "127.0.0.3"}
    assert found["ports in range"]
