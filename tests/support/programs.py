"""Helpers for the program-supervision tests: free ports, the worker script,
a supervisor run in the test's own event loop."""

from __future__ import annotations

import atexit
import http.client
import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

from tests.support.ports import free_ports  # noqa: F401 (re-exported)

_READABLE_DIR: str | None = None


def readable_by_anyone(path: Path) -> str:
    """A copy of path (mode 755) in a directory any user may enter: a program
    started as nobody cannot reach the checkout when a directory above it is
    private (a clone in a `mktemp -d` directory, or under /root)."""
    global _READABLE_DIR
    if _READABLE_DIR is None:
        _READABLE_DIR = tempfile.mkdtemp(prefix="haply-test-files-")
        os.chmod(_READABLE_DIR, 0o755)
        atexit.register(shutil.rmtree, _READABLE_DIR, True)
    copy = os.path.join(_READABLE_DIR, path.name)
    if not os.path.exists(copy):
        shutil.copyfile(path, copy)
        os.chmod(copy, 0o755)
    return copy


APP = readable_by_anyone(Path(__file__).with_name("programs_app.py"))
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
