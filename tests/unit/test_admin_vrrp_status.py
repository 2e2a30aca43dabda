"""The VRRP section of the stats page and haply's VRRP metrics (pure rendering),
and the watcher against a real unix socket that pushes lines as the VRRP
process does (no namespace needed)."""

from __future__ import annotations

import asyncio
import json
import os
import tempfile

from haply.admin import prometheus, vrrp_status
from haply.admin.stats_page import vrrp_table

MASTER = {"name": "VI_1", "state": "MASTER", "priority": 150, "base_priority": 150,
          "master": "192.0.2.10", "source": "192.0.2.10", "last_transition": 1000.0,
          "reason": "no advertisement for 0.3s", "interface": "eth0", "vrid": 51,
          "addresses": ["192.0.2.100"], "transitions": 2}
BACKUP = {**MASTER, "name": "VI_2", "state": "BACKUP", "priority": 90, "base_priority": 100,
          "master": "192.0.2.11", "source": "192.0.2.10", "reason": "higher priority <b>"}


def test_table_rows_say_state_priority_master_and_when():
    page = vrrp_table([MASTER, BACKUP], None, 1065.0)
    assert 'data-instance="VI_1"' in page and 'data-state="MASTER"' in page
    assert "this node (192.0.2.10)" in page and "1m5s ago" in page
    # effective priority first, the configured one when tracking changed it
    assert "90 (configured 100)" in page and 'data-master="192.0.2.11"' in page
    assert "higher priority &lt;b&gt;" in page  # reasons are escaped
    assert "vrrp-problem" not in page


def test_problem_is_shown_and_old_rows_marked_stale():
    page = vrrp_table([MASTER], "the VRRP process has not answered for 5s", 1001.0)
    assert 'id="vrrp-problem"' in page and "last known state below" in page
    assert 'class="status stale"' in page
    empty = vrrp_table([], "no VRRP process answers at /x: No such file", 0.0)
    assert "No such file" in empty and "<table>" not in empty


def test_metrics_one_series_per_state_and_priority():
    text = prometheus.render_vrrp([MASTER, BACKUP], None)
    assert "haply_vrrp_up 1\n" in text
    assert 'haply_vrrp_state{instance="VI_1",state="MASTER"} 1\n' in text
    assert 'haply_vrrp_state{instance="VI_1",state="BACKUP"} 0\n' in text
    assert 'haply_vrrp_state{instance="VI_2",state="BACKUP"} 1\n' in text
    assert 'haply_vrrp_priority{instance="VI_2"} 90\n' in text
    assert 'haply_vrrp_transitions_total{instance="VI_1"} 2\n' in text
    for line in text.splitlines():  # every series is haply's, never haproxy_*
        assert line.startswith(("# HELP haply_", "# TYPE haply_", "haply_"))
    down = prometheus.render_vrrp([MASTER], "gone")
    assert "haply_vrrp_up 0\n" in down and "haply_vrrp_state" not in down


def test_watcher_follows_pushes_staleness_and_a_restart():
    async def scenario():
        loop = asyncio.get_running_loop()
        path = os.path.join(tempfile.mkdtemp(), "vrrp.sock")
        writers = []
        commands = []

        async def serve(reader, writer):
            commands.append(await reader.readline())
            writers.append(writer)
            writer.write(json.dumps([MASTER]).encode() + b"\n")

        status = vrrp_status.VrrpStatus(path, loop)
        status.start()  # nobody there yet
        await asyncio.sleep(0.05)
        instances, problem = status.view(loop.time())
        assert instances == [] and "no VRRP process answers" in problem
        server = await asyncio.start_unix_server(serve, path)
        status._retry.cancel()
        status._retry = None
        status.start()
        for _ in range(100):
            await asyncio.sleep(0.01)
            if status.instances:
                break
        assert commands == [b"watch vrrp\n"]
        instances, problem = status.view(loop.time())
        assert problem is None and instances[0]["state"] == "MASTER"
        # a change pushed in two pieces (lines may arrive split)
        line = json.dumps([{**MASTER, "state": "BACKUP"}]).encode() + b"\n"
        writers[0].write(line[:10])
        await asyncio.sleep(0.02)
        writers[0].write(line[10:])
        await asyncio.sleep(0.05)
        assert status.view(loop.time())[0][0]["state"] == "BACKUP"
        # silence: stale after STALE_AFTER, last state still given
        instances, problem = status.view(loop.time() + vrrp_status.STALE_AFTER + 1)
        assert "has not answered" in problem and instances[0]["state"] == "BACKUP"
        # the process goes away: said at once
        writers[0].close()
        server.close()
        await asyncio.sleep(0.05)
        assert "closed its control connection" in status.view(loop.time())[1]
        status.close()
    asyncio.run(scenario())
