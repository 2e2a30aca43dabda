"""`track`: two listens, the second's servers following the first's, in
haply and in HAProxy 2.6 on the same file.

The OpenStack pattern: one API checked once, its health shared by a second
`listen` (another port, another address family) with `track`. We stop one
backend and start it again, and put one tracked server in maintenance and
back; at each step both programs must show every server in the same state
("DOWN", "UP", "MAINT (via l1/s1)", ...), the tracking servers with the
tracked server's name and no check of their own, and log the same changes.
"""

from __future__ import annotations

import asyncio
import re

import pytest

from haply.admin.snapshot import server_row
from haply.runtime.registry import MAINT, READY
from tests.interop.test_health_oracle import run_both
from tests.support.haproxy_oracle import haproxy_available
from tests.support.health_backends import Backend, BackendThread, HttpHealth, closed_port

pytestmark = [pytest.mark.oracle,
              pytest.mark.skipif(not haproxy_available(), reason="HAProxy oracle not installed")]

SERVERS = [("l1", "s1"), ("l1", "s2"), ("l2", "s1"), ("l2", "s2"), ("l2", "s3")]
# the columns of a server row compared (status is HAProxy's words)
COLUMNS = ("status", "check_status", "tracked")


def theirs(oracle) -> dict:
    stat = oracle.command("show stat").splitlines()
    header = stat[0].lstrip("# ").split(",")
    rows = {(r["pxname"], r["svname"]): r
            for r in (dict(zip(header, line.split(","))) for line in stat[1:] if line)}
    return {key: tuple(rows[key][c].removeprefix("* ") for c in COLUMNS) for key in SERVERS}


def ours(registry, checker) -> dict:
    """The same columns of haply's rows, as its stats build them."""
    now = asyncio.get_running_loop().time()
    out = {}
    for backend, name in SERVERS:
        row = server_row(registry.get(backend, name), checker, 0, 1, "http", now)
        out[(backend, name)] = tuple(row.get(c) or "" for c in COLUMNS)
    return out


async def agreed(oracle, registry, checker, until=lambda rows: True, timeout: float = 3.0) -> dict:
    """Both programs' rows once they agree and show what `until` waits for
    (checks run at different instants in each), at most `timeout` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        mine = ours(registry, checker)
        haproxy = theirs(oracle)
        if (mine == haproxy and until(mine)) or loop.time() > deadline:
            assert mine == haproxy, "\n".join(f"{k}: haply {mine[k]} haproxy {haproxy[k]}"
                                              for k in SERVERS if mine[k] != haproxy[k])
            return mine
        await asyncio.sleep(0.05)


def test_tracking_servers_follow_like_haproxy(tmp_path, caplog):
    thread = BackendThread()
    try:
        web1 = Backend(thread, HttpHealth(200)).start()
        web2 = Backend(thread, HttpHealth(200)).start()
        text = f"""global
    log stdout format raw local0

defaults
    log global
    mode http
    timeout connect 1s
    timeout client 5s
    timeout server 5s
    timeout check 300ms

listen l1
    bind 127.0.0.1:{closed_port()}
    option httpchk GET /healthcheck
    server s1 127.0.0.1:{web1.port} check inter 100 rise 2 fall 2
    server s2 127.0.0.1:{web2.port} check inter 100 rise 2 fall 2

listen l2
    bind 127.0.0.1:{closed_port()}
    server s1 127.0.0.1:{web1.port} track l1/s1
    server s2 127.0.0.1:{web2.port} track l1/s2
    server s3 127.0.0.1:{web1.port} track s1
"""

        async def scenario(oracle, registry, checker):
            loop = asyncio.get_running_loop()
            steps = {"start": await agreed(oracle, registry, checker)}
            await loop.run_in_executor(None, web1.stop)
            steps["stopped"] = await agreed(oracle, registry, checker,
                                            lambda rows: rows[("l2", "s3")][0] == "DOWN")
            await loop.run_in_executor(None, web1.start)
            steps["restarted"] = await agreed(oracle, registry, checker,
                                              lambda rows: rows[("l2", "s3")][0] == "UP")
            oracle.command("set server l1/s2 state maint")
            registry.set_admin(registry.get("l1", "s2"), MAINT, loop.time())
            steps["maint"] = await agreed(oracle, registry, checker,
                                          lambda rows: rows[("l2", "s2")][0] != "UP")
            oracle.command("set server l1/s2 state ready")
            registry.set_admin(registry.get("l1", "s2"), READY, loop.time())
            steps["ready"] = await agreed(oracle, registry, checker,
                                          lambda rows: rows[("l2", "s2")][0] == "UP")
            return steps, oracle.log()

        with caplog.at_level("INFO", logger="haply.health"):
            steps, log = run_both(text, tmp_path, scenario)
    finally:
        thread.close()
    # what both showed, spelled out
    assert steps["start"][("l2", "s3")] == ("UP", "", "l2/s1")
    assert [steps["stopped"][k][0] for k in SERVERS] == ["DOWN", "UP", "DOWN", "UP", "DOWN"]
    assert steps["stopped"][("l1", "s1")][1] == "L4CON"
    assert [steps["restarted"][k][0] for k in SERVERS] == ["UP"] * 5
    assert steps["maint"][("l2", "s2")] == ("MAINT (via l1/s2)", "", "l1/s2")
    assert steps["ready"][("l2", "s2")][0] == "UP"
    # the tracking servers' changes, logged in the same words
    wanted = re.compile(r"^Server l2/s\d is (?:DOWN|UP) via l[12]/s\d\.")
    theirs_lines = [line for line in log.splitlines() if wanted.match(line)]
    ours_lines = [r.getMessage() for r in caplog.records if wanted.match(r.getMessage())]
    assert theirs_lines and ours_lines == theirs_lines
