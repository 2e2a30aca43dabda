"""Helpers for the program-supervision tests: free ports, the worker script,
a supervisor run in the test's own event loop."""

from __future__ import annotations

import http.client
import sys
import threading
import time
from pathlib import Path

from tests.support.ports import free_ports  # noqa: F401 (re-exported)

APP = str(Path(__file__).with_name("programs_app.py"))
CLIENT_LIMIT = 4000  # requests; the loop also stops when told or after CLIENT_SECONDS
CLIENT_SECONDS = 60.0


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
