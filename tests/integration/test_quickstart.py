"""`haply quickstart --check`: the README's first command, end to end.

The quickstart starts three real HTTP backends, runs a proxy on
examples/quickstart.cfg and sends requests through it. The same run with HAProxy
2.6 as the proxy checks the quickstart's own parts (backends, config, check)
against the oracle, so a failure of the haply run points at haply.
"""

import base64
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from tests.support.ports import free_port

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "quickstart.cfg"
HAPROXY = "/usr/sbin/haproxy"
RUN_TIMEOUT = 90


def run(args, **kwargs):
    return subprocess.run(args, cwd=ROOT, stdin=subprocess.DEVNULL, capture_output=True,
                          text=True, timeout=RUN_TIMEOUT, **kwargs)


def assert_check_passed(result):
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    answers = re.findall(r"^request \d: HTTP 200 from (web\d) answered GET /quickstart/\d "
                         r"\(X-Forwarded-For: 127\.0\.0\.1\)$", result.stdout, re.M)
    assert len(answers) == 6, output
    # round robin over three servers: six requests reach each one twice
    assert sorted(answers) == ["web1", "web1", "web2", "web2", "web3", "web3"], output
    assert re.search(r"^stats page: web1 UP[ 0-9/]*, web2 UP[ 0-9/]*, web3 UP[ 0-9/]*$",
                     result.stdout, re.M), output
    assert "quickstart check: OK" in result.stdout


def test_quickstart_check_through_haply():
    assert_check_passed(run([sys.executable, "-m", "haply", "quickstart", "--check"]))


@pytest.mark.oracle
def test_quickstart_check_through_haproxy():
    assert shutil.which(HAPROXY), "HAProxy 2.6 is installed by scripts/install-test-deps"
    assert_check_passed(run([sys.executable, "-m", "haply.quickstart", "--check",
                             "--proxy", HAPROXY]))


@pytest.mark.oracle
def test_example_config_is_valid_for_haproxy():
    env = dict(os.environ, QS_PORT="8080", QS_STATS_PORT="8404", QS_PORT1="9001",
               QS_PORT2="9002", QS_PORT3="9003")
    result = run([HAPROXY, "-c", "-f", str(EXAMPLE)], env=env)
    assert result.returncode == 0, result.stdout + result.stderr


def test_example_config_is_valid_for_haply():
    env = dict(os.environ, QS_PORT="8080", QS_STATS_PORT="8404", QS_PORT1="9001",
               QS_PORT2="9002", QS_PORT3="9003")
    result = run([sys.executable, "-m", "haply", "-c", "-f", str(EXAMPLE)], env=env)
    assert result.returncode == 0, result.stdout + result.stderr


def test_quickstart_refuses_a_busy_port():
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = run([sys.executable, "-m", "haply.quickstart", "--check",
                      "--port", str(port), "--proxy", HAPROXY])
    assert result.returncode == 2
    assert f"127.0.0.1:{port} is already in use" in result.stderr


def port_refuses(port):
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


@pytest.mark.parametrize("proxy", [
    pytest.param([], id="haply"),
    pytest.param(["--proxy", HAPROXY], marks=pytest.mark.oracle, id="haproxy"),
])
def test_interactive_quickstart_serves_then_stops_on_sigterm(proxy):
    port = free_port()
    stats_port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "haply.quickstart", "--port", str(port),
                             "--stats-port", str(stats_port)] + proxy,
                            cwd=ROOT, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        lines = []
        for line in proc.stdout:  # bounded: the quickstart gives up after 30 s
            lines.append(line)
            if line.startswith("Press Ctrl-C"):
                break
        assert f"  curl http://127.0.0.1:{port}/\n" in lines, "".join(lines)
        backend_ports = [int(p) for p in re.findall(r"web\d 127\.0\.0\.1:(\d+)", lines[1])]
        assert len(backend_ports) == 3, lines[1]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/hello", timeout=10) as r:
            assert re.fullmatch(r"web\d answered GET /hello \(X-Forwarded-For: 127\.0\.0\.1\)\n",
                                r.read().decode())
        stats = urllib.request.Request(f"http://127.0.0.1:{stats_port}/stats;csv", headers={
            "Authorization": "Basic " + base64.b64encode(b"admin:quickstart").decode()})
        with urllib.request.urlopen(stats, timeout=10) as r:
            assert "web,web1," in r.read().decode()
        proc.send_signal(signal.SIGTERM)
        rest, _ = proc.communicate(timeout=30)
        assert proc.returncode == 0, "".join(lines) + rest
        assert "stopping" in rest
        # the proxy and the three backends are gone
        assert port_refuses(port) and port_refuses(stats_port)
        assert all(port_refuses(p) for p in backend_ports)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
