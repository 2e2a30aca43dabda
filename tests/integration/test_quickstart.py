"""`haply quickstart --check`: the README's first command, end to end.

The quickstart starts three real HTTP backends, runs a proxy on
examples/quickstart.cfg and sends requests through it. The same run with HAProxy
2.6 as the proxy checks the quickstart's own parts (backends, config, check)
against the oracle, so a failure of the haply run points at haply.
"""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

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
    env = dict(os.environ, QS_PORT="8080", QS_PORT1="9001", QS_PORT2="9002", QS_PORT3="9003")
    result = run([HAPROXY, "-c", "-f", str(EXAMPLE)], env=env)
    assert result.returncode == 0, result.stdout + result.stderr


def test_example_config_is_valid_for_haply():
    env = dict(os.environ, QS_PORT="8080", QS_PORT1="9001", QS_PORT2="9002", QS_PORT3="9003")
    result = run([sys.executable, "-m", "haply", "-c", "-f", str(EXAMPLE)], env=env)
    assert result.returncode == 0, result.stdout + result.stderr


def test_quickstart_refuses_a_busy_port():
    import socket
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = run([sys.executable, "-m", "haply.quickstart", "--check",
                      "--port", str(port), "--proxy", HAPROXY])
    assert result.returncode == 2
    assert f"127.0.0.1:{port} is already in use" in result.stderr
