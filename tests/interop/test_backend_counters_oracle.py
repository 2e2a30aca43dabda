"""What a backend's row counts while requests queue, time out in the queue,
find no server or are answered by the backend's own rules, against HAProxy 2.6.

HAProxy counts in a backend every request routed to it, from then until it
ends: scur includes the requests waiting in its queue, stot (and the session
rate) every request routed there, a denied or queued-out one too; lbtot
counts the times a server was chosen; a request that found no server, or
none before `timeout queue`, is a connection error (econ).
"""

from __future__ import annotations

import socket
import threading
import time

import pytest

from tests.support.admin_cli import stat_counts
from tests.support.haply_process import PROXIES
from tests.support.haproxy_oracle import haproxy_available, haproxy_config, with_stats_socket
from tests.support.observed import observed_proxy, scripted

pytestmark = pytest.mark.skipif(not haproxy_available(), reason="HAProxy oracle not installed")

COLUMNS = ("scur", "smax", "stot", "lbtot", "qcur", "econ", "dreq", "req_tot", "hrsp_2xx", "hrsp_5xx")


def slow_server(conn) -> None:
    while conn.read_request() is not None:
        time.sleep(0.6)
        conn.respond(200, b"ok")


def config(port: int, log_port: int, socket_path: str, address: str) -> str:
    return with_stats_socket(haproxy_config(f"""
frontend fe
    bind 127.0.0.1:{port}
    use_backend down if {{ path /down }}
    default_backend be
backend be
    timeout queue @QUEUE@
    http-request deny if {{ path /deny }}
    http-request return status 200 if {{ path /return }}
    server s1 {address} maxconn 1
backend down
    server s2 {address} disabled
"""), socket_path)


def ask(port: int, request: bytes) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(request)
        while sock.recv(65536):
            pass


def get(port: int, path: bytes = b"/", cookie: bytes = b"") -> None:
    ask(port, b"GET %s HTTP/1.1\r\nHost: h\r\n%sConnection: close\r\n\r\n" % (path, cookie))


def three_at_once(port: int, during) -> None:
    """Three requests for a server that takes one at a time; during() runs
    while two of them wait in the queue."""
    threads = [threading.Thread(target=get, args=(port,)) for _ in range(3)]
    for thread in threads:
        thread.start()
    time.sleep(0.2)  # within the shorter timeout queue
    during()
    for thread in threads:
        thread.join(10)


@pytest.mark.parametrize("queue_timeout", ["500ms", "5s"])
def test_backend_row_counts_as_haproxy(queue_timeout):
    seen = {}
    for name, binary in PROXIES.items():
        make = lambda *args: config(*args).replace("@QUEUE@", queue_timeout)  # noqa: E731
        with observed_proxy(binary, make, scripted(slow_server)) as (port, _, path):
            queued = {}
            three_at_once(port, lambda: queued.update(stat_counts(path, ("be",), ("scur", "qcur"))))
            for what in (b"/down", b"/deny", b"/return"):
                get(port, what)
            seen[name] = queued, stat_counts(path, ("be", "down"), COLUMNS)
    queued, after = seen["haproxy"]
    assert queued["be/BACKEND"] == {"scur": "3", "qcur": "2"}
    assert after["be/BACKEND"]["stot"] == "5" and after["down/BACKEND"]["econ"] == "1"
    assert seen["haply"] == seen["haproxy"]


def test_lbtot_counts_the_balancers_choices_only():
    """A request its persistence cookie sends to a server is not a balancing
    choice: lbtot leaves it out; stot counts it."""
    def make(port: int, log_port: int, socket_path: str, address: str) -> str:
        return with_stats_socket(haproxy_config(f"""
frontend fe
    bind 127.0.0.1:{port}
    default_backend be
backend be
    cookie SRV insert indirect nocache
    server s1 {address} cookie a
    server s2 {address} cookie b
"""), socket_path)

    def quick_server(conn) -> None:
        while conn.read_request() is not None:
            conn.respond(200, b"ok")

    seen = {}
    for name, binary in PROXIES.items():
        with observed_proxy(binary, make, scripted(quick_server)) as (port, _, path):
            for cookie in (b"", b"Cookie: SRV=a\r\n", b"Cookie: SRV=a\r\n", b"Cookie: SRV=b\r\n", b""):
                get(port, b"/", cookie)
            seen[name] = stat_counts(path, ("be",), ("stot", "lbtot"))
    assert seen["haproxy"]["be/BACKEND"] == {"stot": "5", "lbtot": "2"}
    assert seen["haply"] == seen["haproxy"]


def test_queue_positions_logged_as_haproxy():
    """%sq and %bq: how many requests left the server's or the backend's queue
    while this one waited there, itself included; 0 for one that never waited.
    A cookie sends a request to its own server's queue, else the backend's."""
    def make(port: int, log_port: int, socket_path: str, address: str) -> str:
        return haproxy_config(f"""
frontend fe
    bind 127.0.0.1:{port}
    log 127.0.0.1:{log_port} local2 info
    log-format "%HU %sq/%bq %bc"
    default_backend be
backend be
    timeout queue 5s
    cookie SRV insert indirect nocache
    server s1 {address} maxconn 1 cookie a
""")

    def slower_server(conn) -> None:
        while conn.read_request() is not None:
            time.sleep(0.3)
            conn.respond(200, b"ok")

    seen = {}
    for name, binary in PROXIES.items():
        with observed_proxy(binary, make, scripted(slower_server)) as (port, receiver, _):
            logged = []
            for cookie in (b"", b"Cookie: SRV=a\r\n"):
                threads = []
                for number in range(4):
                    threads.append(threading.Thread(target=get, args=(port, b"/%d" % number, cookie)))
                    threads[-1].start()
                    time.sleep(0.05)  # in this order
                for thread in threads:
                    thread.join(10)
                logged.append(sorted(" ".join(message.split()[-3:])
                                     for message in receiver.messages(4, timeout=2)))
            seen[name] = logged
    assert seen["haproxy"][0] == ["/0 0/0 3", "/1 0/1 2", "/2 0/2 1", "/3 0/3 0"]
    assert seen["haproxy"][1] == ["/0 0/0 3", "/1 1/0 2", "/2 2/0 1", "/3 3/0 0"]
    assert seen["haply"] == seen["haproxy"]
