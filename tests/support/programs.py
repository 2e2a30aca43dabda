"""Helpers for the program-supervision tests: free ports, the worker script,
a supervisor run in the test's own event loop."""

from __future__ import annotations

import http.client
import random
import socket
import sys
import threading
import time
from pathlib import Path

APP = str(Path(__file__).with_name("programs_app.py"))
CLIENT_LIMIT = 4000  # requests; the loop also stops when told or after CLIENT_SECONDS
CLIENT_SECONDS = 60.0


def _ephemeral_range() -> tuple[int, int]:
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as handle:
            low, high = (int(x) for x in handle.read().split())
            return low, high
    except (OSError, ValueError):
        return 32768, 60999  # Linux's default


def free_ports(count: int) -> int:
    """The first of `count` consecutive ports free on 127.0.0.1 now, below
    the ephemeral range: a program listens there after a restart, and an
    ephemeral port could meanwhile be the source port of any connection
    (health checks, clients), which makes the program's bind fail."""
    low, _ = _ephemeral_range()
    top = max(low - count, 10000 + count)
    for _ in range(500):
        first = random.randrange(10000, top)
        held = []
        try:
            for port in range(first, first + count):
                sock = socket.socket()
                held.append(sock)
                sock.bind(("127.0.0.1", port))
            return first
        except OSError:
            continue
        finally:
            for sock in held:
                sock.close()
    raise RuntimeError("no run of free ports found")


def app_command(*options: str) -> str:
    """The `command` line running the worker on the instance's port."""
    return " ".join([sys.executable, APP, "%p", *options])


class ClientLoop(threading.Thread):
    """Requests through the proxy one after another until stopped or
    CLIENT_LIMIT: a new connection each time (as many API clients do), or one
    kept-alive connection (a failure then opens a new one)."""

    def __init__(self, port: int, keep_alive: bool = False):
        super().__init__(daemon=True)
        self.port = port
        self.keep_alive = keep_alive
        self.stop = threading.Event()
        self.ok = 0
        self.failures: list[str] = []
        self.pids: set[str] = set()

    def run(self):
        deadline = time.monotonic() + CLIENT_SECONDS
        connection = None
        while not self.stop.is_set() and self.ok + len(self.failures) < CLIENT_LIMIT and time.monotonic() < deadline:
            if connection is None:
                connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
            try:
                connection.request("GET", "/slow?s=0.02")
                response = connection.getresponse()
                body = response.read().decode()
                if response.status == 200:
                    self.ok += 1
                    self.pids.add(body.split()[1])
                else:
                    self.failures.append(f"status {response.status}")
            except (OSError, http.client.HTTPException) as exc:
                self.failures.append(repr(exc))
                connection.close()
                connection = None
            if not self.keep_alive and connection is not None:
                connection.close()
                connection = None
        if connection is not None:
            connection.close()
