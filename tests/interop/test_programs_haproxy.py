"""HAProxy 2.6 as the oracle for `program` sections written with HAProxy's
own keywords: both accept and refuse the same sections, and both start the
command with the same arguments, user, group and supplementary groups."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
import uvloop

from haply.config import ConfigError, load
from haply.programs.supervisor import ProgramSupervisor
from tests.support.programs import readable_by_anyone

HAPROXY = shutil.which("haproxy") or "/usr/sbin/haproxy"
RECORDER = readable_by_anyone(Path(__file__).resolve().parents[1] / "support" / "programs_argv.py")
SYSTEM_PYTHON = "/usr/bin/python3"  # readable by the unprivileged user, unlike a home-dir interpreter

pytestmark = pytest.mark.skipif(not os.access(HAPROXY, os.X_OK), reason="HAProxy 2.6 is not installed")


def haproxy_accepts(path: Path) -> bool:
    result = subprocess.run([HAPROXY, "-c", "-f", str(path)], capture_output=True, timeout=30)
    return result.returncode == 0


def haply_accepts(path: Path) -> bool:
    try:
        load([str(path)], {})
    except ConfigError:
        return False
    return True


@pytest.mark.parametrize("body", [
    "program p\n    command /bin/true\n",
    "program p\n    command /bin/sleep 100\n    user nobody\n    group nogroup\n    no option start-on-reload\n",
    "program p\n    command /bin/true\n    option start-on-reload\n",
    "program p\n    user nobody\n",
    "program\n    command /bin/true\n",
    "program p\n    command\n",
    "program p\n    command /bin/true\nprogram p\n    command /bin/true\n",
    "program p\n    command /bin/true\n    option start-on-reload x\n",
    "program p\n    command /bin/true\n    bind :80\n",
    "program p\n    command /bin/true\n    no user nobody\n",
    "program p\n    command /bin/true\n    user no-such-user-here\n",
    "program p\n    command /bin/true\n    group no-such-group-here\n",
])
def test_same_verdict_as_haproxy(tmp_path, body):
    path = tmp_path / "haproxy.cfg"
    path.write_text("global\n    master-worker\n\n" + body)
    assert haply_accepts(path) == haproxy_accepts(path), body


def _config(out: str) -> str:
    return (f"global\n    master-worker\n\nprogram rec\n"
            f"    command {SYSTEM_PYTHON} {RECORDER} {out} \"two words\" 'single $HOME' plain\\ escaped "
            f"\"${{HOME}}x\"\n    user nobody\n    group nogroup\n")


def _wait_file(path: str, timeout: float = 10.0) -> dict:
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        assert time.monotonic() < deadline, f"{path} never written"
        time.sleep(0.05)
    with open(path) as handle:
        return json.load(handle)


def test_same_command_line_and_credentials_as_haproxy():
    if os.getuid() != 0 or not os.access(SYSTEM_PYTHON, os.X_OK):
        pytest.skip("needs root and /usr/bin/python3 to start a program as nobody")
    shared = tempfile.mkdtemp(prefix="haply-programs-")
    try:
        os.chmod(shared, 0o777)  # the recorder runs as nobody
        cfg = Path(shared) / "haproxy.cfg"
        cfg.write_text(_config(f"{shared}/haproxy.json"))
        haproxy = subprocess.Popen([HAPROXY, "-W", "-db", "-f", str(cfg)], stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL, start_new_session=True)
        try:
            theirs = _wait_file(f"{shared}/haproxy.json")
        finally:
            os.killpg(haproxy.pid, signal.SIGKILL)
            haproxy.wait(10)
        cfg.write_text(_config(f"{shared}/haply.json"))
        programs = load([str(cfg)], {"HOME": os.environ.get("HOME", "/root")}).config.programs

        async def run() -> dict:
            supervisor = ProgramSupervisor(programs, asyncio.get_running_loop())
            supervisor.start()
            try:
                return await asyncio.to_thread(_wait_file, f"{shared}/haply.json")
            finally:
                await supervisor.stop()

        ours = uvloop.run(run())
    finally:
        shutil.rmtree(shared, ignore_errors=True)
    assert ours["argv"] == theirs["argv"] == ["two words", "single $HOME", "plain escaped",
                                              os.environ.get("HOME", "/root") + "x"]
    assert (ours["uid"], ours["gid"], ours["groups"]) == (theirs["uid"], theirs["gid"], theirs["groups"])
    # haply's own additions: a process group of its own, the instance in the environment
    assert ours["pgid_is_pid"] and ours["env"]["HAPLY_INSTANCE"] == "1"
