"""contrib/ocf/haply, the Pacemaker resource agent, driven as Pacemaker drives it:
the agent run with OCF_ROOT and OCF_RESKEY_* in its environment, against a real
haply serving on 127.0.0.1 in front of a real HTTP backend. Once with the
resource-agents package's ocf-shellfuncs, once with the agent's own fallback.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import pytest

from tests.support.haply_process import HAPLY_BIN, REPO_ROOT
from tests.support.haproxy_oracle import echo_backends, free_port, http_get
from tests.support.programs import readable_by_anyone

AGENT = REPO_ROOT / "contrib" / "ocf" / "haply"
OCF_ROOT = Path("/usr/lib/ocf")
SHELLFUNCS = OCF_ROOT / "lib" / "heartbeat" / "ocf-shellfuncs"
DTD = Path("/usr/share/resource-agents/ra-api-1.dtd")

OCF_SUCCESS, OCF_ERR_GENERIC, OCF_ERR_INSTALLED, OCF_ERR_CONFIGURED, OCF_NOT_RUNNING = 0, 1, 5, 6, 7
# Every agent call is bounded: start/stop wait at most the Pacemaker timeout we pass.
CALL_TIMEOUT = 30
PACEMAKER_TIMEOUT_MS = "15000"

CONFIG = """\
global
    maxconn 100
    stats socket {socket} level admin

defaults
    mode http
    timeout connect 2s
    timeout client 5s
    timeout server 5s

listen web
    bind 127.0.0.1:{port}
    server app {backend}
"""


def exited(pid: int) -> bool:
    """Gone, or a zombie that its new parent (init) has not reaped yet."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(") ", 1)[1][0] in "ZX"
    except FileNotFoundError:
        return True


def write_pidfile(env: dict[str, str], pid: int) -> None:
    path = Path(env["OCF_RESKEY_pidfile"])
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"{pid}\n")


def agent(action: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(["/bin/sh", str(AGENT), action], env=env, capture_output=True,
                          text=True, timeout=CALL_TIMEOUT, stdin=subprocess.DEVNULL)


def _kill_from_pidfile(pidfile: Path) -> None:
    """Leave nothing behind, even when a test failed between start and stop."""
    with contextlib.suppress(OSError, ValueError):
        pid = int(pidfile.read_text().split()[0])
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            os.kill(pid, 0)
            time.sleep(0.1)
        os.kill(pid, signal.SIGKILL)


@pytest.fixture(params=["ocf-shellfuncs", "standalone"])
def resource(request, tmp_path):
    if request.param == "ocf-shellfuncs" and not SHELLFUNCS.exists():
        pytest.skip("resource-agents is not installed (Debian package resource-agents)")
    with echo_backends(["app"]) as (backend,):
        port = free_port()
        # In directories that do not exist yet, as under /run after a reboot.
        socket_path = tmp_path / "run" / "haply" / "admin.sock"
        config = tmp_path / "haply.cfg"
        config.write_text(CONFIG.format(socket=socket_path, port=port, backend=backend.address))
        pidfile = tmp_path / "run" / "haply.pid"
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "OCF_ROOT": str(OCF_ROOT) if request.param == "ocf-shellfuncs" else str(tmp_path / "no-ocf"),
            "OCF_RESOURCE_INSTANCE": "lb-haply",
            "OCF_RESKEY_CRM_meta_timeout": PACEMAKER_TIMEOUT_MS,
            "OCF_RESKEY_CRM_meta_interval": "5000",
            "OCF_RESKEY_binary": HAPLY_BIN,
            "OCF_RESKEY_config": str(config),
            "OCF_RESKEY_pidfile": str(pidfile),
            "OCF_RESKEY_stats_socket": str(socket_path),
            "HA_LOGFILE": str(tmp_path / "ha.log"),
        }
        try:
            yield env, port, backend
        finally:
            _kill_from_pidfile(pidfile)


def test_start_monitor_stop_monitor(resource):
    env, port, backend = resource
    assert agent("monitor", env).returncode == OCF_NOT_RUNNING
    started = agent("start", env)
    assert started.returncode == OCF_SUCCESS, started.stderr
    assert agent("monitor", env).returncode == OCF_SUCCESS
    # start returned: the proxy serves at once, no retry needed
    response = http_get(port)
    assert response.status == 200 and response.backend == "app"
    assert agent("start", env).returncode == OCF_SUCCESS  # starting a started resource
    pid = int(Path(env["OCF_RESKEY_pidfile"]).read_text())
    stopped = agent("stop", env)
    assert stopped.returncode == OCF_SUCCESS, stopped.stderr
    assert exited(pid)
    assert agent("monitor", env).returncode == OCF_NOT_RUNNING
    assert agent("stop", env).returncode == OCF_SUCCESS  # stopping a stopped resource
    with pytest.raises(OSError):
        http_get(port, timeout=2)


def test_recovery_after_a_crash(resource):
    """What Pacemaker does when haply dies: monitor says not running, start
    brings it back on the same ports (stale pid file and sockets included)."""
    env, port, backend = resource
    assert agent("start", env).returncode == OCF_SUCCESS
    pid = int(Path(env["OCF_RESKEY_pidfile"]).read_text())
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while agent("monitor", env).returncode != OCF_NOT_RUNNING:
        assert time.monotonic() < deadline, "monitor still reports a killed haply"
        time.sleep(0.1)
    restarted = agent("start", env)
    assert restarted.returncode == OCF_SUCCESS, restarted.stderr
    assert int(Path(env["OCF_RESKEY_pidfile"]).read_text()) != pid
    assert http_get(port).status == 200
    assert agent("stop", env).returncode == OCF_SUCCESS


def test_reload_keeps_serving_and_takes_the_new_configuration(resource):
    env, port, backend = resource
    assert agent("reload", env).returncode == OCF_NOT_RUNNING
    assert agent("start", env).returncode == OCF_SUCCESS
    pid = Path(env["OCF_RESKEY_pidfile"]).read_text()
    config = Path(env["OCF_RESKEY_config"])
    config.write_text(config.read_text().replace(
        "    server app", "    http-response set-header X-Generation two\n    server app"))
    reloaded = agent("reload", env)
    assert reloaded.returncode == OCF_SUCCESS, reloaded.stderr
    assert Path(env["OCF_RESKEY_pidfile"]).read_text() == pid  # the same master
    response = http_get(port)
    assert response.status == 200
    assert ("X-Generation", "two") in response.headers
    assert agent("monitor", env).returncode == OCF_SUCCESS
    assert agent("stop", env).returncode == OCF_SUCCESS


def test_reload_refuses_a_broken_configuration(resource):
    env, port, backend = resource
    assert agent("start", env).returncode == OCF_SUCCESS
    Path(env["OCF_RESKEY_config"]).write_text("listen broken\n    bind 127.0.0.1:notaport\n")
    result = agent("reload", env)
    assert result.returncode == OCF_ERR_CONFIGURED
    assert http_get(port).status == 200  # still the old configuration, still serving
    assert agent("stop", env).returncode == OCF_SUCCESS


def test_monitor_fails_when_the_stats_socket_does_not_answer(resource):
    env, port, backend = resource
    assert agent("start", env).returncode == OCF_SUCCESS
    env = dict(env, OCF_RESKEY_stats_socket=env["OCF_RESKEY_stats_socket"] + ".missing")
    result = agent("monitor", env)
    assert result.returncode == OCF_ERR_GENERIC
    assert "stats socket" in result.stderr
    assert agent("stop", env).returncode == OCF_SUCCESS


def test_stale_pidfile_is_not_running(resource):
    env, port, backend = resource
    # After a crash the pid may belong to another program, which stop must spare.
    other = subprocess.Popen(["sleep", "30"])
    try:
        write_pidfile(env, other.pid)
        assert agent("monitor", env).returncode == OCF_NOT_RUNNING
        assert agent("stop", env).returncode == OCF_SUCCESS
        assert not Path(env["OCF_RESKEY_pidfile"]).exists()
        assert other.poll() is None
    finally:
        other.kill()
        other.wait()


def test_stop_kills_what_ignores_sigterm_before_pacemakers_timeout(resource):
    env, port, backend = resource
    stubborn = subprocess.Popen([sys.executable, "-c", "import signal, time\n"
                                 "signal.signal(signal.SIGTERM, signal.SIG_IGN)\ntime.sleep(60)", "haply"])
    try:
        time.sleep(0.3)  # the interpreter has set its signal handling
        write_pidfile(env, stubborn.pid)
        env = dict(env, OCF_RESKEY_CRM_meta_timeout="6000")
        started = time.monotonic()
        result = agent("stop", env)
        elapsed = time.monotonic() - started
        assert result.returncode == OCF_SUCCESS, result.stderr
        assert stubborn.wait(timeout=5) == -signal.SIGKILL
        assert elapsed < 6.0  # within the operation's timeout
        assert "killing it" in result.stderr or "killing it" in Path(env["HA_LOGFILE"]).read_text()
    finally:
        stubborn.kill()
        stubborn.wait()


def test_validate_all(resource):
    env, port, backend = resource
    assert agent("validate-all", env).returncode == OCF_SUCCESS
    Path(env["OCF_RESKEY_config"]).write_text(
        "defaults\n    mode http\nlisten web\n    bind 127.0.0.1:1\n    balance nosuchalgorithm\n")
    result = agent("validate-all", env)
    assert result.returncode == OCF_ERR_CONFIGURED
    assert "invalid" in result.stderr
    missing = dict(env, OCF_RESKEY_config=env["OCF_RESKEY_config"] + ".missing")
    assert agent("validate-all", missing).returncode == OCF_ERR_CONFIGURED
    no_binary = dict(env, OCF_RESKEY_binary="/nonexistent/haply")
    assert agent("validate-all", no_binary).returncode == OCF_ERR_INSTALLED
    assert agent("start", no_binary).returncode == OCF_ERR_INSTALLED
    probe = dict(no_binary, OCF_RESKEY_CRM_meta_interval="0")
    assert agent("monitor", probe).returncode == OCF_NOT_RUNNING


def test_unknown_action(resource):
    env, port, backend = resource
    assert agent("promote", env).returncode == 3  # OCF_ERR_UNIMPLEMENTED


def test_meta_data_is_valid_xml():
    result = agent("meta-data", {"PATH": os.environ.get("PATH", "/bin")})
    assert result.returncode == 0
    root = ElementTree.fromstring(result.stdout)
    assert root.tag == "resource-agent" and root.get("name") == "haply"
    parameters = {p.get("name") for p in root.iter("parameter")}
    assert {"binary", "config", "pidfile", "extra_options", "stats_socket"} <= parameters
    actions = {a.get("name") for a in root.iter("action")}
    assert {"start", "stop", "monitor", "reload", "validate-all", "meta-data"} <= actions


@pytest.mark.skipif(not (DTD.exists() and shutil.which("xmllint")),
                    reason="needs resource-agents (ra-api-1.dtd) and libxml2-utils (xmllint)")
def test_meta_data_follows_the_ocf_dtd():
    meta = agent("meta-data", {"PATH": os.environ.get("PATH", "/bin")}).stdout
    result = subprocess.run(["xmllint", "--noout", "--valid", "-"], input=meta, text=True,
                            capture_output=True, cwd=DTD.parent, timeout=CALL_TIMEOUT)
    assert result.returncode == 0, result.stderr


@pytest.mark.skipif(not shutil.which("ocf-tester"), reason="ocf-tester (Debian package resource-agents) is not installed")
def test_ocf_tester(tmp_path):
    """resource-agents' own conformance run: probes, start twice, stop twice,
    monitor in every state, meta-data against the DTD, permissions as nobody."""
    with echo_backends(["app"]) as (backend,):
        port = free_port()
        socket_path = tmp_path / "admin.sock"
        config = tmp_path / "haply.cfg"
        config.write_text(CONFIG.format(socket=socket_path, port=port, backend=backend.address))
        pidfile = tmp_path / "haply.pid"
        try:
            result = subprocess.run(
                ["ocf-tester", "-n", "lb-haply", "-o", f"binary={HAPLY_BIN}", "-o", f"config={config}",
                 "-o", f"pidfile={pidfile}", "-o", f"stats_socket={socket_path}",
                 readable_by_anyone(AGENT)],
                capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
                env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "OCF_ROOT": str(OCF_ROOT)})
        finally:
            _kill_from_pidfile(pidfile)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "passed all tests" in result.stdout


@pytest.mark.skipif(not shutil.which("shellcheck"), reason="shellcheck (Debian package shellcheck) is not installed")
def test_agent_is_clean_posix_sh():
    result = subprocess.run(["shellcheck", "-s", "sh", str(AGENT)], capture_output=True, text=True,
                            timeout=CALL_TIMEOUT, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stdout
