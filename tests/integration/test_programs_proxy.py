"""Programs behind a real proxy Engine in the same process (the single-process
host, haply.programs.host): a client loop through haply sees no failed
request during a rolling restart of 4 instances; an instance failing its
health checks is restarted; the runtime API and `haply ctl` drive it all."""

from __future__ import annotations

import asyncio
import time

import uvloop

from haply import ctl
from haply.config import load
from haply.programs.host import start_programs
from haply.proxy.engine import Engine
from tests.support.programs import ClientLoop, app_command, free_ports

def config_text(tmp_path, front: int, first: int, instances: int = 4, app_options: str = "") -> str:
    return f"""
global
    stats socket {tmp_path}/admin.sock level admin

program api
    command {app_command()} {app_options}
    instances {instances}
    port {first}
    timeout stop 2s
    restart-backoff 100ms 1s

defaults
    mode http
    timeout connect 1s
    timeout client 5s
    timeout server 5s
    retries 3

frontend fe
    bind 127.0.0.1:{front}
    default_backend be

backend be
    option httpchk GET /
    default-server check inter 100ms fall 2 rise 1
    program-servers api
"""


def run_with_proxy(tmp_path, text: str, test, timeout: float = 60.0):
    path = tmp_path / "haproxy.cfg"
    path.write_text(text)
    config = load([str(path)]).config

    async def main():
        loop = asyncio.get_running_loop()
        engine = Engine(config, loop)
        await engine.start()
        supervisor = start_programs(config, engine, loop)
        try:
            async with asyncio.timeout(timeout):
                return await test(engine, supervisor)
        finally:
            await supervisor.stop()
            await engine.stop()
            engine.close_all()
    return uvloop.run(main())


async def all_up(engine, names, timeout=15.0):
    deadline = time.monotonic() + timeout
    while not all(engine.registry.get("be", n).operational == "UP" and
                  engine.registry.get("be", n).check_status.startswith("L7OK") for n in names):
        assert time.monotonic() < deadline, [engine.registry.get("be", n) for n in names]
        await asyncio.sleep(0.05)


def test_rolling_restart_of_four_instances_loses_no_request(tmp_path):
    front = free_ports(1)
    first = free_ports(4)
    names = [f"api-{n}" for n in range(1, 5)]

    async def test(engine, supervisor):
        await all_up(engine, names)
        before = {r.instance.number: r.instance.pid for r in supervisor.runners["api"]}
        clients = [ClientLoop(front), ClientLoop(front, keep_alive=True)]
        for client in clients:
            client.start()
        try:
            await asyncio.sleep(0.3)
            # through the stats socket, as `haply ctl rolling-restart program api` does
            answer = await asyncio.to_thread(ctl.send, str(tmp_path / "admin.sock"),
                                             "rolling-restart program api", 120.0)
            await asyncio.sleep(0.3)
        finally:
            for client in clients:
                client.stop.set()
            for client in clients:
                await asyncio.to_thread(client.join, 10)
        after = {r.instance.number: r.instance.pid for r in supervisor.runners["api"]}
        return answer, before, after, clients

    answer, before, after, clients = run_with_proxy(tmp_path, config_text(tmp_path, front, first), test)
    lines = answer.strip().splitlines()
    assert lines[-1] == "rolling restart done: 4 instance(s)", answer
    for n in range(1, 5):
        assert f"program api:{n}: restarted, pid {before[n]} -> {after[n]} in " in answer
    assert all(before[n] != after[n] for n in range(1, 5))
    for client in clients:
        assert client.failures == [], client.failures[:5]
        assert client.ok > 20
    # requests reached old and new processes of every instance
    pids = clients[0].pids | clients[1].pids
    assert {str(p) for p in after.values()} <= pids
    assert len(pids & {str(p) for p in before.values()}) >= 1


def test_failing_health_checks_restart_the_instance(tmp_path):
    front = free_ports(1)
    first = free_ports(2)
    names = ["api-1", "api-2"]
    text = config_text(tmp_path, front, first, instances=2, app_options=f"--sick-dir {tmp_path}")

    async def test(engine, supervisor):
        await all_up(engine, names)
        second = supervisor.runners["api"][1].instance
        old = second.pid
        (tmp_path / f"sick-{first + 1}").write_text("")  # api-2 answers 503 from now on
        deadline = time.monotonic() + 10
        while not (second.pid != old and second.pid is not None):
            assert time.monotonic() < deadline, supervisor.show()
            await asyncio.sleep(0.05)
        assert second.restarts == 1 and supervisor.runners["api"][0].instance.restarts == 0
        await all_up(engine, names)  # the new process removed the flag: healthy again
        assert not (tmp_path / f"sick-{first + 1}").exists()
        # the runtime API through the socket
        sock = str(tmp_path / "admin.sock")
        table = await asyncio.to_thread(ctl.send, sock, "show programs")
        assert [line.split()[:3] for line in table.splitlines()[1:3]] == [
            ["api:1", "RUNNING", str(supervisor.runners["api"][0].instance.pid)],
            ["api:2", "RUNNING", str(second.pid)]]
        answer = await asyncio.to_thread(ctl.send, sock, "stop program api:2; show programs", 30.0)
        assert answer.startswith("program api:2: STOPPED\n\n#<program>")
        assert await asyncio.to_thread(ctl.send, sock, "start program api:2", 30.0) == \
            f"program api:2: RUNNING pid {second.pid}\n\n"
        assert (await asyncio.to_thread(ctl.send, sock, "restart program")).startswith("Require 'program")
        return True

    assert run_with_proxy(tmp_path, text, test)


def test_ctl_programs_table(tmp_path, capsys):
    front = free_ports(1)
    first = free_ports(1)

    async def test(engine, supervisor):
        await all_up(engine, ["api-1"])
        code = await asyncio.to_thread(ctl.main, ["-S", str(tmp_path / "admin.sock"), "programs"])
        code2 = await asyncio.to_thread(ctl.main, ["-S", str(tmp_path / "admin.sock"), "restart", "program", "api"])
        return code, code2, supervisor.runners["api"][0].instance.pid

    code, code2, pid = run_with_proxy(tmp_path, config_text(tmp_path, front, first, instances=1), test)
    out = capsys.readouterr().out
    assert code == 0 and code2 == 0
    assert out.splitlines()[0].split() == ["INSTANCE", "STATE", "PID", "PORT", "UPTIME", "RESTARTS", "LAST", "EXIT"]
    assert out.splitlines()[2].split()[:2] == ["api:1", "RUNNING"]
    assert f"program api:1: RUNNING pid {pid}" in out


def test_rolling_restart_leaves_maintenance_alone(tmp_path):
    front, first = free_ports(1), free_ports(2)

    async def test(engine, supervisor):
        await all_up(engine, ["api-1", "api-2"])
        await supervisor.proxy.set_server_state("be", "api-2", "maint")
        answer = await supervisor.command(["rolling-restart", "program", "api"])
        return answer, engine.registry.get("be", "api-1").admin, engine.registry.get("be", "api-2").admin

    answer, first_admin, second_admin = run_with_proxy(
        tmp_path, config_text(tmp_path, front, first, instances=2), test)
    assert answer.endswith("rolling restart done: 2 instance(s)\n"), answer
    assert (first_admin, second_admin) == ("READY", "MAINT")


def test_rolling_restart_stops_at_an_instance_that_does_not_come_back(tmp_path):
    """The new process of api-1 cannot start (its command fails once a flag
    file exists): the run ends there, api-1 stays drained, api-2 is untouched."""
    front, first = free_ports(1), free_ports(2)
    flag = tmp_path / "broken"
    text = config_text(tmp_path, front, first, instances=2).replace(
        f"    command {app_command()} \n",
        f"    command /bin/sh -c 'test -e {flag} && exit 1; exec {app_command().replace('%p', '$HAPLY_PORT')}'\n"
        "    crash-limit 2 60s\n")
    assert "crash-limit 2" in text

    async def test(engine, supervisor):
        await all_up(engine, ["api-1", "api-2"])
        second = supervisor.runners["api"][1].instance.pid
        flag.write_text("")
        answer = await supervisor.command(["rolling-restart", "program", "api"])
        return answer, engine.registry.get("be", "api-1").admin, engine.registry.get("be", "api-2").admin, \
            second, supervisor.runners["api"][1].instance.pid

    answer, first_admin, second_admin, second_before, second_after = run_with_proxy(tmp_path, text, test)
    assert answer.splitlines() == [
        "program api:1: did not come back (FATAL, exit 1); left drained", "rolling restart aborted"], answer
    assert (first_admin, second_admin) == ("DRAIN", "READY")
    assert second_before == second_after
