"""Ports for programs that a test starts and that bind them itself.

They are chosen below the kernel's ephemeral range. A port the kernel hands
out for `bind(0)` is ephemeral: between the moment a test learns it and the
moment HAProxy or haply binds it, any outgoing connection (a health check, a
client, a backend pool) may take it as its source port, and the bind fails
with "Address already in use". Below the range only listeners compete.
"""

from __future__ import annotations

import os
import random
import socket

_handed_out: set[int] = set()  # never the same port twice in one test run


def _ephemeral_range() -> tuple[int, int]:
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as handle:
            low, high = (int(x) for x in handle.read().split())
            return low, high
    except (OSError, ValueError):
        return 32768, 60999  # Linux's default


def _slice(low: int, high: int) -> tuple[int, int]:
    """This test process's own share of [low, high): parallel pytest workers
    (pytest-xdist) remember only the ports they handed out themselves, so
    each takes its ports from a slice of its own and none gives another's
    away a second time."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1") or 1)
    if not worker.startswith("gw") or workers < 2:
        return low, high
    index = int(worker[2:]) % workers
    size = (high - low) // workers
    return low + index * size, low + (index + 1) * size


def free_ports(count: int) -> int:
    """The first of `count` consecutive ports free on 127.0.0.1 now, below
    the ephemeral range, none of them handed out before in this run."""
    low, _ = _ephemeral_range()
    bottom, top = _slice(10000, max(low - count, 10000 + count))
    for _ in range(1000):
        first = random.randrange(bottom, max(top - count, bottom + 1))
        ports = range(first, first + count)
        if _handed_out.intersection(ports):
            continue
        held = []
        try:
            for port in ports:
                sock = socket.socket()
                held.append(sock)
                sock.bind(("127.0.0.1", port))
        except OSError:
            continue
        finally:
            for sock in held:
                sock.close()
        _handed_out.update(ports)
        return first
    raise RuntimeError(f"no run of {count} free ports found")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free when this returned."""
    return free_ports(1)
