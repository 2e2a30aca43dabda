"""Helpers for the program-supervision tests: free ports, the worker script,
a supervisor run in the test's own event loop."""

from __future__ import annotations

import socket
import sys
from pathlib import Path

APP = str(Path(__file__).with_name("programs_app.py"))


def free_ports(count: int) -> int:
    """The first of `count` consecutive ports that are free on 127.0.0.1 now."""
    for _ in range(200):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            first = probe.getsockname()[1]
        if first + count > 65535:
            continue
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
