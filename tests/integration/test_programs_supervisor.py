"""ProgramSupervisor with real child processes (tests/support/programs_app.py)
on uvloop, without a proxy: crash and backoff, crash loop, stop then kill,
pidfiles, environment, logs, daemons, control commands, reconfigure."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
import time
import urllib.request

from dataclasses import replace

import pytest
import uvloop

from haply.config.model import Program
from haply.programs.policy import FATAL, RUNNING
from haply.programs.supervisor import ProgramSupervisor
from tests.support.programs import APP, free_ports

LOG = logging.getLogger("test.programs")


def program(name="app", *options, **fields) -> Program:
    port = fields.pop("port", None) or free_ports(fields.get("instances", 1))
    return Program(name, command=(sys.executable, APP, "%p", *options), port=port, **fields)


def run(coroutine_function, *programs: Program, timeout: float = 30.0):
    """Run test(supervisor) with the supervisor started, and always stop it."""
    async def main():
        supervisor = ProgramSupervisor(programs, asyncio.get_running_loop(), log=LOG)
        supervisor.start()
        try:
            async with asyncio.timeout(timeout):
                return await coroutine_function(supervisor)
        finally:
            await supervisor.stop()
            assert all(r.instance.pid is None for rs in supervisor.runners.values() for r in rs)
    return uvloop.run(main())


async def until(predicate, timeout=10.0, what="condition"):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


async def get(port: int, path: str = "/") -> tuple[int, str]:
    def fetch():
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, ""
    return await asyncio.to_thread(fetch)


async def serving(port: int) -> str:
    async def up():
        try:
            return await get(port)
        except OSError:
            return None
    deadline = time.monotonic() + 10
    while (answer := await up()) is None:
        assert time.monotonic() < deadline, f"port {port} never answered"
        await asyncio.sleep(0.05)
    return answer[1]


def alive(pid: int) -> bool:
    """Running (a zombie left to a parent that does not reap it is not)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rpartition(")")[2].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_instances_on_consecutive_ports_with_env_logs_and_pidfiles(tmp_path):
    p = program("api", instances=3, environment=(("APP_NAME", "api-%i"),), stdout=str(tmp_path / "out-%i.log"),
                stderr=str(tmp_path / "err-%i.log"), pidfile=str(tmp_path / "api-%i.pid"), directory=str(tmp_path))

    async def test(supervisor):
        for n in range(1, 4):
            body = await serving(p.port_of(n))
            runner = supervisor.runners["api"][n - 1]
            assert body == f"{p.port_of(n)} {runner.instance.pid}\n"
            assert (tmp_path / f"api-{n}.pid").read_text() == f"{runner.instance.pid}\n"
        await until(lambda: (tmp_path / "err-3.log").exists() and (tmp_path / "err-3.log").read_text())
        out = (tmp_path / "out-2.log").read_text()
        # (the test's own environment passes on too: other HAPLY_ variables may sit between)
        assert {"HAPLY_INSTANCE=2", f"HAPLY_PORT={p.port_of(2)}", "HAPLY_PROGRAM=api",
                "APP_NAME=api-2"} <= set(out.split())
        assert out.rstrip().endswith(f"cwd={tmp_path}")
        assert (tmp_path / "err-3.log").read_text() == f"stderr {p.port_of(3)}\n"
        table = supervisor.show()
        assert table.splitlines()[0].split() == ["#<program>", "<state>", "<pid>", "<port>", "<uptime>",
                                                 "<restarts>", "<last", "exit>"]
        assert [line.split()[:2] for line in table.splitlines()[1:]] == [[f"api:{n}", RUNNING] for n in (1, 2, 3)]
        return [r.instance.pid for r in supervisor.runners["api"]]

    pids = run(test, p)
    assert not any(alive(pid) for pid in pids)
    assert not list(tmp_path.glob("*.pid"))  # removed at exit


def test_crash_restarts_with_backoff_then_fatal():
    p = program("crashy", "--exit-after", "0.1", backoff=0.2, backoff_max=5.0, crash_limit=3, crash_window=30.0)
    events: list[tuple[float, str]] = []

    class Recorder(logging.Handler):
        def emit(self, record):
            events.append((record.created, record.getMessage()))

    recorder = Recorder()
    LOG.addHandler(recorder)
    level = LOG.level
    LOG.setLevel(logging.INFO)

    async def test(supervisor):
        instance = supervisor.runners["crashy"][0].instance
        await until(lambda: instance.state == FATAL, what="FATAL")
        assert instance.restarts == 2 and instance.last_exit == "exit 3"
        assert "FATAL" in supervisor.show()
        # the delay from each exit to the next start is the backoff: 0.2 s, then 0.4 s
        exits = [t for t, message in events if "exited unexpectedly" in message]
        starts = [t for t, message in events if ": started pid" in message]
        assert len(exits) == 3 and len(starts) == 3
        delays = [start - exit for exit, start in zip(exits, starts[1:])]
        assert 0.19 < delays[0] < 0.35 and 0.39 < delays[1] < 0.55, delays
        assert any("giving up (FATAL)" in message for _, message in events)
        # an operator start tries again
        answer = await supervisor.command(["start", "program", "crashy"])
        assert answer.startswith("program crashy:1: RUNNING pid ")

    try:
        run(test, p)
    finally:
        LOG.removeHandler(recorder)
        LOG.setLevel(level)


def test_sigterm_then_sigkill_after_stop_timeout():
    p = program("stubborn", "--ignore-term", stop_timeout=0.5)

    async def test(supervisor):
        await serving(p.port)
        instance = supervisor.runners["stubborn"][0].instance
        pid = instance.pid
        started = time.monotonic()
        answer = await supervisor.command(["stop", "program", "stubborn"])
        elapsed = time.monotonic() - started
        assert answer == "program stubborn:1: STOPPED\n"
        assert instance.last_exit == "signal SIGKILL" and not alive(pid)
        assert 0.45 < elapsed < 3.0, elapsed

    run(test, p)


def test_polite_child_stops_on_sigterm():
    p = program("polite", stop_timeout=5.0)

    async def test(supervisor):
        await serving(p.port)
        started = time.monotonic()
        assert await supervisor.command(["stop", "program", "polite:1"]) == "program polite:1: STOPPED\n"
        assert time.monotonic() - started < 2.0
        assert supervisor.runners["polite"][0].instance.last_exit == "signal SIGTERM"

    run(test, p)


def test_killed_child_is_restarted_and_commands():
    p = program("api", instances=2, backoff=0.1)

    async def test(supervisor):
        await serving(p.port_of(2))
        second = supervisor.runners["api"][1].instance
        old = second.pid
        os.kill(old, signal.SIGKILL)
        await until(lambda: second.state == RUNNING and second.pid != old, what="restart")
        assert second.restarts == 1 and second.last_exit == "signal SIGKILL"
        body = await serving(p.port_of(2))
        assert body.split()[1] == str(second.pid)
        answer = await supervisor.command(["restart", "program", "api:1"])
        assert answer.startswith("program api:1: RUNNING pid")
        assert await supervisor.command(["stop", "program", "nope"]) == "No such program 'nope'.\n"
        assert await supervisor.command(["stop", "program", "api:3"]) == "No such program 'api:3'.\n"
        assert (await supervisor.command(["frob"])).startswith("usage:")

    run(test, p)


def test_spawn_failure_backs_off():
    p = Program("missing", command=("/nonexistent/binary",), backoff=0.05, crash_limit=3)

    async def test(supervisor):
        instance = supervisor.runners["missing"][0].instance
        await until(lambda: instance.state == FATAL, what="FATAL")
        assert instance.last_exit == "spawn failed: cannot run /nonexistent/binary: no such file"

    run(test, p)


def test_log_file_that_cannot_be_opened():
    p = Program("nolog", command=("/bin/true",), stdout="/nonexistent/dir/out.log", backoff=0.05, crash_limit=2)

    async def test(supervisor):
        instance = supervisor.runners["nolog"][0].instance
        await until(lambda: instance.state == FATAL, what="FATAL")
        assert instance.last_exit == "spawn failed: cannot open log file /nonexistent/dir/out.log: " \
                                     "No such file or directory"

    run(test, p)


def test_daemon_with_pidfile_and_stop_command(tmp_path):
    pidfile = str(tmp_path / "d.pid")
    port = free_ports(1)
    stop = tmp_path / "stop.sh"
    stop.write_text(f"#!/bin/sh\necho stopping >> {tmp_path}/stop.log\nkill $(cat {pidfile})\n")
    stop.chmod(0o755)
    p = Program("d", command=(sys.executable, APP, "%p", "--daemon", pidfile), port=port, daemon=True,
                pidfile=pidfile, stop_command=(str(stop),), backoff=0.1)

    async def test(supervisor):
        instance = supervisor.runners["d"][0].instance
        await until(lambda: instance.state == RUNNING, what="daemon running")
        body = await serving(port)
        assert body.split()[1] == str(instance.pid) == open(pidfile).read().strip()
        old = instance.pid
        os.kill(old, signal.SIGKILL)  # watched through a pidfd: not our child
        await until(lambda: instance.state == RUNNING and instance.pid != old, what="daemon restarted")
        assert instance.last_exit == "exited" and instance.restarts == 1
        pid = instance.pid
        assert await supervisor.command(["stop", "program", "d"]) == "program d:1: STOPPED\n"
        assert (tmp_path / "stop.log").read_text() == "stopping\n" and not alive(pid)

    run(test, p)


def test_running_daemon_is_adopted(tmp_path):
    """A daemon left running (haply restarted, not the daemon) is watched, not
    started a second time."""
    import subprocess

    pidfile = str(tmp_path / "d.pid")
    port = free_ports(1)
    subprocess.run([sys.executable, APP, str(port), "--daemon", pidfile], check=True, timeout=10)
    deadline = time.monotonic() + 5
    while not os.path.exists(pidfile):
        assert time.monotonic() < deadline
        time.sleep(0.02)
    existing = int(open(pidfile).read())
    p = Program("d", command=(sys.executable, APP, "%p", "--daemon", pidfile), port=port, daemon=True,
                pidfile=pidfile)

    async def test(supervisor):
        instance = supervisor.runners["d"][0].instance
        await until(lambda: instance.state == RUNNING, what="adopted")
        assert instance.pid == existing and instance.restarts == 0

    try:
        run(test, p)
        assert not alive(existing)  # stopped with the supervisor (SIGTERM, no stop command)
    finally:
        if alive(existing):
            os.kill(existing, signal.SIGKILL)


def test_service_group_and_reconfigure():
    a = program("a", service_group="nova")
    b = program("b", service_group="nova")

    async def test(supervisor):
        await serving(a.port)
        await serving(b.port)
        answer = await supervisor.command(["restart", "program", "nova"])
        assert answer.count("RUNNING") == 2
        a_pid = supervisor.runners["a"][0].instance.pid
        b_pid = supervisor.runners["b"][0].instance.pid
        c = program("c", port=free_ports(2))
        changed = Program(b.name, command=b.command + ("--ignore-term",), port=b.port, stop_timeout=0.3)
        supervisor.reconfigure([a, changed, c])
        await serving(c.port)
        assert supervisor.runners["a"][0].instance.pid == a_pid  # unchanged: kept
        new_b = supervisor.runners["b"][0].instance
        await until(lambda: new_b.state == RUNNING and not alive(b_pid), what="b rolled into its new definition")
        assert new_b.program is changed and new_b.restarts == 2  # the group restart, then the roll
        supervisor.reconfigure([changed, c])
        await until(lambda: not alive(a_pid), what="a stopped")
        assert "a" not in supervisor.runners
        kept = Program(c.name, command=c.command, port=c.port, start_on_reload=False, instances=2)
        c_pid = supervisor.runners["c"][0].instance.pid
        supervisor.reconfigure([changed, kept])
        await serving(c.port + 1)  # the added instance is started
        assert supervisor.runners["c"][0].instance.pid == c_pid  # no-start-on-reload: left running
        assert supervisor.runners["c"][0].instance.program is kept  # for its next start
        fewer = replace(kept, instances=1, stop_timeout=0.5)
        second = supervisor.runners["c"][1].instance.pid
        supervisor.reconfigure([changed, fewer])
        assert len(supervisor.runners["c"]) == 1 and len(supervisor.retired) == 1
        await until(lambda: not alive(second) and not supervisor.retired, what="c:2 stopped")
        assert supervisor.runners["c"][0].instance.pid == c_pid

    run(test, a, b)


def test_a_changed_program_is_rolled_one_instance_at_a_time():
    """start-on-reload with the same instances and ports: a rolling restart
    into the new definition, so some instance always serves."""
    p = program("api", instances=3)

    async def test(supervisor):
        for n in (1, 2, 3):
            await serving(p.port_of(n))
        before = [r.instance.pid for r in supervisor.runners["api"]]
        changed = replace(p, environment=(("APP_VERSION", "2"),))
        supervisor.reconfigure([changed])
        fewest = 3
        while any(r.instance.pid in before or r.instance.state != RUNNING for r in supervisor.runners["api"]):
            fewest = min(fewest, sum(r.instance.state == RUNNING and r.instance.pid not in (None,)
                                     for r in supervisor.runners["api"]))
            await asyncio.sleep(0.005)
        assert fewest >= 2  # never more than one instance down
        assert all(r.instance.program is changed for r in supervisor.runners["api"])

    run(test, p)


def test_user_switch(tmp_path):
    if os.getuid() != 0:
        pytest.skip("switching users needs root")
    # the system interpreter: the test's own may live where nobody cannot read
    system_python = "/usr/bin/python3"
    if not os.access(system_python, os.X_OK):
        pytest.skip("no /usr/bin/python3 for the unprivileged child")
    port = free_ports(1)
    p = Program("nobody", command=(system_python, APP, "%p"), port=port, user="nobody", directory="/")

    async def test(supervisor):
        await serving(p.port)
        pid = supervisor.runners["nobody"][0].instance.pid
        with open(f"/proc/{pid}/status") as status:
            uids = next(line for line in status if line.startswith("Uid:")).split()[1:]
        import pwd
        assert set(uids) == {str(pwd.getpwnam("nobody").pw_uid)}

    run(test, p)


def test_children_do_not_inherit_the_listening_sockets(tmp_path):
    """The supervising process holds the proxy's listeners (some inheritable,
    for a re-executed master); a program must hold none of them."""
    import socket

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    listener.set_inheritable(True)
    out = tmp_path / "fds.txt"
    p = Program("fds", command=("/bin/sh", "-c", f"ls -l /proc/self/fd > {out}; exec sleep 30"))

    async def test(supervisor):
        await until(lambda: out.exists() and out.read_text().strip(), what="fd listing")
        return out.read_text()

    try:
        listing = run(test, p)
    finally:
        listener.close()
    targets = [line.split("-> ")[1] for line in listing.splitlines() if "->" in line]
    assert not any(target.startswith("socket:") for target in targets), listing
    assert len(targets) <= 4, listing  # stdin, stdout, stderr and ls' own directory handle


SUPERVISOR_SCRIPT = """
import asyncio, sys, uvloop
sys.path.insert(0, {root!r})
from haply.config.model import Program
from haply.programs.supervisor import ProgramSupervisor

async def main():
    supervisor = ProgramSupervisor([Program("p", command={command!r}, port={port}, user={user!r})],
                                   asyncio.get_running_loop())
    supervisor.start()
    await asyncio.sleep(60)

uvloop.run(main())
"""


@pytest.mark.parametrize("user", [None, "nobody"])
def test_a_killed_supervisor_leaves_no_program_behind(user):
    """SIGKILL to the supervising process: its children get SIGTERM from the
    kernel (parent-death signal), also after a user switch."""
    import subprocess
    from pathlib import Path

    python = sys.executable if user is None else "/usr/bin/python3"
    if user is not None and (os.getuid() != 0 or not os.access(python, os.X_OK)):
        pytest.skip("needs root and /usr/bin/python3")
    port = free_ports(1)
    root = str(Path(__file__).resolve().parents[2])
    script = SUPERVISOR_SCRIPT.format(root=root, command=(python, APP, "%p"), port=port, user=user)
    supervisor = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.DEVNULL)
    child = None
    try:
        deadline = time.monotonic() + 15
        while child is None:
            assert time.monotonic() < deadline and supervisor.poll() is None, "no child started"
            try:
                children = Path(f"/proc/{supervisor.pid}/task/{supervisor.pid}/children").read_text().split()
                child = int(children[0]) if children else None
            except OSError:
                pass
            time.sleep(0.05)
        supervisor.kill()
        supervisor.wait(10)
        deadline = time.monotonic() + 5
        while alive(child):
            assert time.monotonic() < deadline, "the program outlived its supervisor"
            time.sleep(0.05)
    finally:
        if supervisor.poll() is None:
            supervisor.kill()
            supervisor.wait(10)
        if child is not None and alive(child):
            os.kill(child, signal.SIGKILL)
