"""Dynamic server limits (`minconn`, `maxconn`, `fullconn`) against HAProxy 2.6.

Both proxies run the same configuration over two slow servers (each request is
held HOLD seconds). N clients come GAP apart and stay; once the last is in, each
proxy's `show stat` must show the same sessions, limits and queues per server
and for the backend (scur, slim, qcur). When every client has its answer, the
maxima (smax, qmax) and totals must match too: they record how the queue was
served as the first requests ended, on which server and up to which limit.
"""

from __future__ import annotations

import socket
import threading
import time

import pytest

from tests.interop.test_proxy_oracle import PRELUDE
from tests.support.admin_cli import stat_counts, wait_socket
from tests.support.haply_process import PROXIES
from tests.support.haproxy_oracle import free_port, haproxy_available, run_haproxy, with_stats_socket
from tests.support.scripted_backend import scripted_backend

pytestmark = pytest.mark.skipif(not haproxy_available(), reason="HAProxy oracle not installed")

HOLD = 2.0  # seconds a server takes to answer
GAP = 0.05  # seconds between two clients
SETTLE = 0.4  # after the last client, before reading the statistics
CLIENT_TIMEOUT = 20.0  # a client's whole exchange, queueing included

WHILE_HELD = ("scur", "slim", "qcur")
AFTERWARDS = ("smax", "qmax", "stot", "scur", "qcur")


def slow(conn):
    while (request := conn.read_request()) is not None:
        time.sleep(HOLD)
        conn.respond(200, b"ok")
        if ("Connection", "close") in request.headers:
            return


def fetch(port: int, statuses: list) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=CLIENT_TIMEOUT) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
    statuses.append(reply.split(b" ", 2)[1].decode() if reply else "")


def exercise(port: int, stats: str, clients: int) -> dict:
    statuses: list = []
    threads = [threading.Thread(target=fetch, args=(port, statuses)) for _ in range(clients)]
    for thread in threads:
        thread.start()
        time.sleep(GAP)
    time.sleep(SETTLE)
    held = stat_counts(stats, ("app", "be"), WHILE_HELD)
    for thread in threads:
        thread.join(CLIENT_TIMEOUT)
    time.sleep(SETTLE)  # the last sessions are released after the last answer
    after = stat_counts(stats, ("app", "be"), AFTERWARDS)
    return {"held": held, "after": after, "statuses": sorted(statuses)}


CASES = {
    # roundrobin keeps the backend queue's order: 2 + 2 served, 8 queued;
    # the first to end lets its server take 5 more (limit 6 at a load of 12)
    "roundrobin-fullconn": (12, "listen app\n    bind 127.0.0.1:@PORT@\n    fullconn 20\n",
                            "minconn 2 maxconn 10"),
    # leastconn takes the slots a higher limit opens; fullconn from the global
    # maxconn 1000 would be 100: a frontend's maxconn 200 makes it 20
    "leastconn-derived-fullconn": (10, "listen app\n    bind 127.0.0.1:@PORT@\n    maxconn 200\n"
                                   "    balance leastconn\n", "minconn 1 maxconn 8"),
    # a backend reached by one frontend (maxconn 150: fullconn 15), balance first
    "first-backend": (9, "frontend app\n    bind 127.0.0.1:@PORT@\n    maxconn 150\n"
                      "    default_backend be\nbackend be\n    balance first\n",
                      "minconn 1 maxconn 6"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_sessions_limits_and_queues_match_haproxy(case, tmp_path):
    clients, sections, limits = CASES[case]
    results = {}
    with scripted_backend(slow) as s1, scripted_backend(slow) as s2:
        for name, binary in PROXIES.items():
            stats = str(tmp_path / f"{name}.sock")
            port = free_port()
            config = (with_stats_socket(PRELUDE, stats) + "\n" + sections.replace("@PORT@", str(port))
                      + f"    timeout queue 15s\n    server s1 {s1.address} {limits}\n"
                      f"    server s2 {s2.address} {limits}\n")
            with run_haproxy(config, binary=binary):
                wait_socket(stats)
                results[name] = exercise(port, stats, clients)
    assert results["haply"]["statuses"] == ["200"] * clients
    assert results["haply"]["held"] == results["haproxy"]["held"]
    # The frontend's peak depends on when the oracle's readiness probe
    # overlaps the clients; the backend and server rows are what is compared.
    for name in results:
        results[name]["after"].pop("app/FRONTEND", None)
    assert results["haply"]["after"] == results["haproxy"]["after"]
    # the limits moved: some request waited although a server was below its maxconn
    held = results["haply"]["held"]
    backend = held.get("app/BACKEND") or held["be/BACKEND"]
    assert int(backend["qcur"]) > 0
