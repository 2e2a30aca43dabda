"""Requests that persistence ties to a full server wait for that server, as in
HAProxy 2.6: in the server's own queue, bounded by its `maxqueue`; past it they
are refused (503), or balanced with `option redispatch`.

Server s1 and s2 take one connection each (`maxconn 1`). Client A holds s1 with a
slow request; clients B, C and D then come one after the other, each tied to s1
(by its cookie in mode http, by the stick table in mode tcp).
"""

from __future__ import annotations

import socket
import threading
import time

import pytest

from tests.interop.test_proxy_oracle import PRELUDE, run_both
from tests.support.haproxy_oracle import haproxy_available
from tests.support.scripted_backend import scripted_backend

pytestmark = pytest.mark.skipif(not haproxy_available(), reason="HAProxy oracle not installed")

SLOW = 1.0  # seconds s1 takes to answer A
WAITED = 0.4  # a client that took this long waited for A's slot


def answering_as(name: str):
    def handler(conn):
        while (request := conn.read_request()) is not None:
            if request.url == "/slow":
                time.sleep(SLOW)
            conn.respond(200, name.encode())
            if ("Connection", "close") in request.headers:
                return  # (mode tcp relays until the server closes)
    return handler


def fetch(port: int, path: str, results: dict, key: str) -> None:
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: h\r\nCookie: SRV=s1\r\n"
                     "Connection: close\r\n\r\n".encode())
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
    status = reply.split(b" ", 2)[1].decode()
    body = reply.partition(b"\r\n\r\n")[2].decode() if status == "200" else ""
    results[key] = (status, body, time.monotonic() - started >= WAITED)


def exercise(port: int) -> dict:
    results: dict = {}
    threads = [threading.Thread(target=fetch, args=(port, "/slow", results, "A"))]
    threads[0].start()
    time.sleep(0.2)  # A holds s1
    for key in "BCD":
        thread = threading.Thread(target=fetch, args=(port, "/fast", results, key))
        thread.start()
        threads.append(thread)
        time.sleep(0.05)
    for thread in threads:
        thread.join()
    return dict(sorted(results.items()))


CASES = {
    # name: (mode lines, s1 options, backend options, expected B, C, D); in mode
    # tcp s2 is a backup, so that A (the first, balanced) surely goes to s1.
    "cookie-queues": ("    cookie SRV insert indirect nocache\n", "", "",
                      [("200", "s1", True)] * 3),
    "cookie-maxqueue": ("    cookie SRV insert indirect nocache\n", " maxqueue 1", "",
                        [("200", "s1", True), ("503", "", False), ("503", "", False)]),
    "cookie-maxqueue-redispatch": ("    cookie SRV insert indirect nocache\n", " maxqueue 1",
                                   "    option redispatch\n",
                                   [("200", "s1", True), ("200", "s2", False), ("200", "s2", False)]),
    "stick-tcp-queues": ("    mode tcp\n    stick-table type ip size 10\n    stick on src\n", "", "",
                         [("200", "s1", True)] * 3),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_persistent_request_waits_for_its_server(case):
    mode, s1_options, options, expected = CASES[case]
    with scripted_backend(answering_as("s1")) as s1, scripted_backend(answering_as("s2")) as s2:
        cfg = PRELUDE + f"""
listen app
    bind 127.0.0.1:@PORT@
    timeout queue 3s
{mode}{options}    server s1 {s1.address} maxconn 1 cookie s1{s1_options}
    server s2 {s2.address} maxconn 1 cookie s2{" backup" if "tcp" in case else ""}
"""
        results = run_both(cfg, exercise)
    assert results["haply"] == results["haproxy"]
    assert results["haply"]["A"] == ("200", "s1", True)
    assert [results["haply"][key] for key in "BCD"] == expected
