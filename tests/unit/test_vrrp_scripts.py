"""Tracking helpers: rise/fall counting, script runs, script security."""

from __future__ import annotations

import asyncio
import os
import time

import pytest

from haply.vrrp import scripts
from haply.vrrp.scripts import RiseFall


def test_rise_fall_needs_consecutive_results():
    h = RiseFall(rise=2, fall=3)
    assert h.healthy
    assert [h.feed(False) for _ in range(3)] == [False, False, True] and not h.healthy
    assert h.feed(True) is False and h.feed(False) is False  # a success streak broken
    assert h.feed(True) is False and h.feed(True) is True and h.healthy


@pytest.mark.parametrize("weight, reverse, healthy, delta", [
    (10, False, True, 10), (10, False, False, 0), (-10, False, True, 0), (-10, False, False, -10),
    (10, True, True, -10), (10, True, False, 0), (-10, True, True, 0), (-10, True, False, 10),
])
def test_priority_delta_follows_keepalived(weight, reverse, healthy, delta):
    assert scripts.priority_delta(weight, reverse, healthy) == delta


def test_weight_zero_faults():
    assert scripts.faulted(False, healthy=False) and not scripts.faulted(False, healthy=True)
    assert scripts.faulted(True, healthy=True) and not scripts.faulted(True, healthy=False)


def run(coro):
    return asyncio.run(coro)


def test_run_command_status_args_and_timeout(tmp_path):
    assert run(scripts.run_command("/bin/true")) == 0
    assert run(scripts.run_command("/bin/false")) == 1
    out = tmp_path / "args"
    assert run(scripts.run_command(f"/bin/sh -c 'echo \"$@\" > {out}' x", ("INSTANCE", "VI 1"))) == 0
    assert out.read_text() == "INSTANCE VI 1\n"
    started = time.monotonic()
    assert run(scripts.run_command("/bin/sleep 5", timeout=0.2)) is None
    assert time.monotonic() - started < 2
    assert run(scripts.run_command("/nonexistent/script")) is None
    assert run(scripts.run_command("unbalanced 'quote")) is None


@pytest.mark.skipif(os.geteuid() != 0, reason="dropping privileges needs root")
def test_run_command_as_user():
    import shutil
    import tempfile
    d = tempfile.mkdtemp()  # pytest's tmp_path is under a 0700 directory nobody cannot enter
    try:
        os.chmod(d, 0o777)
        out = os.path.join(d, "id")
        assert run(scripts.run_command(f"/bin/sh -c 'id -un > {out}'", user="nobody")) == 0
        with open(out) as f:
            assert f.read().strip() == "nobody"
    finally:
        shutil.rmtree(d)


def test_insecure_script_detection(tmp_path):
    script = tmp_path / "check.sh"
    script.write_text("#!/bin/sh\nexit 0\n")
    script.chmod(0o755)
    os.chmod(tmp_path, 0o755)
    if os.geteuid() == 0:
        assert scripts.insecure_reason("/bin/true") is None
        script.chmod(0o777)
        assert "writable by a non-root user" in scripts.insecure_reason(str(script))
    assert scripts.insecure_reason("no-such-program-here") == "no-such-program-here: not found"


def test_interface_up():
    assert scripts.interface_up("lo")
    assert not scripts.interface_up("no-such-if0")


def test_track_proxy_socket_and_callable(tmp_path):
    path = str(tmp_path / "proxy.sock")

    async def scenario():
        changes: list[tuple[float, bool]] = []
        loop = asyncio.get_running_loop()
        server = await asyncio.start_unix_server(lambda r, w: w.close(), path)
        task = loop.create_task(scripts.track_proxy(f"socket:{path}", 0.05, 1, 2,
                                                    lambda _n, ok: changes.append((loop.time(), ok))))
        await asyncio.sleep(0.2)
        assert changes == []  # healthy from the start, nothing to report
        server.close()
        await server.wait_closed()
        os.unlink(path)
        closed = loop.time()
        await asyncio.sleep(0.3)
        assert [ok for _, ok in changes] == [False]
        assert changes[0][0] - closed < 0.2  # fall 2 at 0.05 s
        server = await asyncio.start_unix_server(lambda r, w: w.close(), path)
        await asyncio.sleep(0.2)
        assert [ok for _, ok in changes] == [False, True]
        task.cancel()
        server.close()
        # a callable from the master process
        state = {"ok": True}
        seen: list[bool] = []
        task = loop.create_task(scripts.track_proxy("callable:", 0.02, 1, 1,
                                                    lambda _n, ok: seen.append(ok), lambda: state["ok"]))
        await asyncio.sleep(0.05)
        state["ok"] = False
        await asyncio.sleep(0.1)
        task.cancel()
        assert seen == [False]

    asyncio.run(scenario())
