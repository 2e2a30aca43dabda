"""`cpu-map` against HAProxy 2.6: with `nbthread 2`, the CPUs HAProxy's two
threads may run on, and those of haply's two workers, are the same."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from tests.support.haply_process import PROXIES
from tests.support.haproxy_oracle import free_port, haproxy_available, run_haproxy

pytestmark = [
    pytest.mark.skipif(not haproxy_available(), reason="HAProxy oracle not installed"),
    pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2 or not {0, 1} <= os.sched_getaffinity(0),
                       reason="needs CPUs 0 and 1"),
]

CASES = ["auto:1/1-2 0-1", "1/all 0", "1/2 1", "auto:1/1-2 0", "1/odd 1", "1/1-2 0,1", "1/all 1 0", "1 0"]


def allowed(pid: int) -> str:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Cpus_allowed_list:"):
            return line.split(":", 1)[1].strip()
    raise AssertionError(f"no Cpus_allowed_list for {pid}")


def haproxy_threads(pid: int) -> list[str]:
    tids = sorted(int(t) for t in os.listdir(f"/proc/{pid}/task"))
    return [allowed(tid) for tid in tids]


def haply_workers(pid: int, expected: list[str]) -> list[str]:
    """The CPUs of haply's two workers, once they are expected or 10 s have
    passed: each worker binds itself first thing after the fork, which a
    loaded machine may not have run yet."""
    deadline = time.monotonic() + 10
    seen: list[str] = []
    while time.monotonic() < deadline:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        if len(children) == 2:
            seen = [allowed(int(child)) for child in sorted(children, key=int)]
            if seen == expected:
                break
        time.sleep(0.05)
    return seen


@pytest.mark.parametrize("line", CASES)
def test_workers_run_where_haproxy_runs_its_threads(line):
    seen: dict[str, list[str]] = {}
    for name in ("haproxy", "haply"):
        binary = PROXIES[name]
        port = free_port()
        config = f"""global
    nbthread 2
    cpu-map {line}
defaults
    mode http
    timeout connect 1s
    timeout client 1s
    timeout server 1s
listen app
    bind 127.0.0.1:{port}
    http-request return status 200
"""
        with run_haproxy(config, binary=binary) as proxy:
            pid = proxy.process.pid
            seen[name] = haproxy_threads(pid) if name == "haproxy" else haply_workers(pid, seen["haproxy"])
    assert seen["haply"] == seen["haproxy"], seen
