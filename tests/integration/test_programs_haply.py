"""Programs in a running haply (`haply -f`, which supervises them from its
master process), driven by the real `haply ctl`: a client loop through haply
sees no failed request during `rolling-restart program` of 4 instances; a
killed instance comes back; stopping haply stops every instance."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from tests.support.haply_process import REPO_ROOT, run_haply
from tests.support.haproxy_oracle import http_get
from tests.support.programs import ClientLoop, app_command, free_ports


def ctl(sock: str, *words: str, timeout: float = 120.0) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    return subprocess.run([sys.executable, "-m", "haply", "ctl", "-S", sock, *words], capture_output=True,
                          text=True, timeout=timeout, env=env, stdin=subprocess.DEVNULL)


def table(sock: str) -> dict[str, list[str]]:
    result = ctl(sock, "--raw", "programs", timeout=20)
    assert result.returncode == 0, result.stderr
    return {line.split()[0]: line.split() for line in result.stdout.splitlines()[1:]}


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rpartition(")")[2].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_rolling_restart_and_crash_through_haply(tmp_path):
    front, first = free_ports(1), free_ports(4)
    sock = str(tmp_path / "admin.sock")
    config = f"""
global
    stats socket {sock} level admin

program api
    command {app_command()}
    instances 4
    port {first}
    timeout stop 2s
    restart-backoff 100ms 1s

defaults
    mode http
    timeout connect 1s
    timeout client 5s
    timeout server 5s

frontend fe
    bind 127.0.0.1:{front}
    default_backend be

backend be
    option httpchk GET /
    default-server check inter 100ms fall 2 rise 1
    program-servers api
"""
    pids: list[int] = []
    try:
        with run_haply(config) as haply:
            deadline = time.monotonic() + 20
            seen = set()
            while len(seen) < 4:  # every instance answers through the proxy
                assert time.monotonic() < deadline, haply.output()
                try:
                    response = http_get(front, "/")
                    if response.status == 200:
                        seen.add(response.body.split()[1])
                except OSError:
                    time.sleep(0.05)
            before = table(sock)
            pids = [int(before[f"api:{n}"][2]) for n in range(1, 5)]
            assert {str(p) for p in pids} == {s.decode() for s in seen}

            client = ClientLoop(front)
            client.start()
            try:
                time.sleep(0.3)
                rolled = ctl(sock, "rolling-restart", "program", "api")
                time.sleep(0.3)
            finally:
                client.stop.set()
                client.join(10)
            assert rolled.returncode == 0, rolled.stdout + rolled.stderr
            assert rolled.stdout.strip().splitlines()[-1] == "rolling restart done: 4 instance(s)"
            assert client.failures == [], client.failures[:5]
            assert client.ok > 20
            after = table(sock)
            pids += [int(after[f"api:{n}"][2]) for n in range(1, 5)]
            assert all(after[f"api:{n}"][2] != before[f"api:{n}"][2] for n in range(1, 5))

            victim = int(after["api:3"][2])
            os.kill(victim, signal.SIGKILL)
            deadline = time.monotonic() + 10
            while (row := table(sock)["api:3"])[2] in ("-", str(victim)) or row[1] != "RUNNING":
                assert time.monotonic() < deadline, row
                time.sleep(0.1)
            assert row[5] == "2" and row[6:] == ["signal", "SIGKILL"]
            pids.append(int(row[2]))
            friendly = ctl(sock, "programs", timeout=20)
            assert friendly.returncode == 0 and friendly.stdout.splitlines()[0].split() == [
                "INSTANCE", "STATE", "PID", "PORT", "UPTIME", "RESTARTS", "LAST", "EXIT"]
            assert friendly.stdout.splitlines()[4].split()[:3] == ["api:3", "RUNNING", row[2]]
        deadline = time.monotonic() + 10
        while any(alive(pid) for pid in pids):
            assert time.monotonic() < deadline, [pid for pid in pids if alive(pid)]
            time.sleep(0.05)
    finally:
        for pid in pids:  # never leave a worker behind, whatever failed
            if alive(pid):
                os.kill(pid, signal.SIGKILL)


def test_reload_keeps_unchanged_programs_and_applies_changes(tmp_path):
    """`haply ctl reload`: an unchanged program keeps its processes (no API
    capacity lost), a new one starts, a removed one stops; under `no option
    start-on-reload` a grown program keeps its processes, starts the added
    instance, and the backend's program-servers follow the new count."""
    front, first, side_port, fresh_port = free_ports(1), free_ports(3), free_ports(1), free_ports(1)
    sock = str(tmp_path / "admin.sock")

    def text(instances: int, extra: str, option: str = "") -> str:
        return f"""
global
    stats socket {sock} level admin

program api
    command {app_command()}
    instances {instances}
    port {first}
    timeout stop 2s
{option}
{extra}
defaults
    mode http
    timeout connect 1s
    timeout client 5s
    timeout server 5s

frontend fe
    bind 127.0.0.1:{front}
    default_backend be

backend be
    option httpchk GET /
    default-server check inter 100ms fall 2 rise 1
    program-servers api
"""

    def running(expected: set[str], haply) -> dict[str, list[str]]:
        deadline = time.monotonic() + 20
        while True:
            rows = table(sock)
            if set(rows) == expected and all(row[1] == "RUNNING" for row in rows.values()):
                return rows
            assert time.monotonic() < deadline, (rows, haply.output())
            time.sleep(0.1)

    def reload(haply, new_text: str) -> None:
        with open(haply.config_path, "w") as handle:
            handle.write(new_text)
        result = ctl(sock, "reload", timeout=60)
        assert result.returncode == 0, result.stdout + result.stderr + haply.output()

    side = f"program side\n    command {app_command()}\n    port {side_port}\n"
    fresh = f"program fresh\n    command {app_command()}\n    port {fresh_port}\n"
    pids: list[int] = []
    try:
        with run_haply(text(2, side)) as haply:
            before = running({"api:1", "api:2", "side:1"}, haply)
            pids += [int(row[2]) for row in before.values()]

            reload(haply, text(2, fresh))
            after = running({"api:1", "api:2", "fresh:1"}, haply)
            pids.append(int(after["fresh:1"][2]))
            assert [after[f"api:{n}"][2] for n in (1, 2)] == [before[f"api:{n}"][2] for n in (1, 2)]
            deadline = time.monotonic() + 10
            while alive(int(before["side:1"][2])):
                assert time.monotonic() < deadline, "the removed program is still running"
                time.sleep(0.05)

            reload(haply, text(3, fresh, "    no option start-on-reload"))
            grown = running({"api:1", "api:2", "api:3", "fresh:1"}, haply)
            pids.append(int(grown["api:3"][2]))
            assert [grown[f"api:{n}"][2] for n in (1, 2)] == [before[f"api:{n}"][2] for n in (1, 2)]
            seen = set()
            deadline = time.monotonic() + 20
            while len(seen) < 3:  # the added instance is a server of the backend
                assert time.monotonic() < deadline, (seen, haply.output())
                response = http_get(front, "/")
                if response.status == 200:
                    seen.add(int(response.body.split()[0]))
            assert seen == {first, first + 1, first + 2}
    finally:
        for pid in pids:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
