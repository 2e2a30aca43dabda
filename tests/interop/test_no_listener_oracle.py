"""A configuration with nothing to listen on, as HAProxy 2.6 takes it: `-c`
says it "will not start (no listener)" and exits 2, and running it stops at
once with an alert and exit status 1. A stats socket or a peers section
naming the local peer is a listener; a frontend without bind, or disabled,
is not; supervised programs are a job of their own (haply's master runs
them without a listener)."""

from __future__ import annotations

import subprocess

import pytest

from tests.support.haply_process import PROXIES
from tests.support.haproxy_oracle import free_port, haproxy_available

pytestmark = pytest.mark.skipif(not haproxy_available(), reason="HAProxy oracle not installed")

TIMEOUTS = "defaults\n    mode http\n    timeout connect 1s\n    timeout client 1s\n    timeout server 1s\n"

CASES = {
    "empty": "",
    "backend only": TIMEOUTS + "backend be\n    server s 127.0.0.1:1\n",
    "frontend without bind": TIMEOUTS + "frontend fe\n    default_backend be\nbackend be\n",
    "disabled frontend": TIMEOUTS + "frontend fe\n    bind 127.0.0.1:{port}\n    disabled\n",
    "peers without the local peer": "peers lbs\n    peer other 127.0.0.1:{port}\n",
    "peers with the local peer": "peers lbs\n    peer here 127.0.0.1:{port}\n",
    "stats socket": "global\n    stats socket ipv4@127.0.0.1:{port}\n",
    "a frontend": TIMEOUTS + "frontend fe\n    bind 127.0.0.1:{port}\n",
}
LISTENS = {"peers with the local peer", "stats socket", "a frontend"}


def check(binary: str, text: str, tmp_path) -> tuple[int, str]:
    path = tmp_path / "haproxy.cfg"
    path.write_text(text.format(port=free_port()))
    done = subprocess.run([binary, "-c", "-L", "here", "-f", str(path)], capture_output=True,
                          text=True, timeout=30)
    return done.returncode, done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""


@pytest.mark.parametrize("case", sorted(CASES))
def test_check_says_what_haproxy_says(case, tmp_path):
    theirs = check(PROXIES["haproxy"], CASES[case], tmp_path)
    ours = check(PROXIES["haply"], CASES[case], tmp_path)
    assert ours == theirs
    if case in LISTENS:
        assert theirs == (0, "Configuration file is valid")
    else:
        assert theirs == (2, "Configuration file has no error but will not start (no listener) => exit(2).")


@pytest.mark.parametrize("binary", ["haproxy", "haply"])
def test_running_it_stops_with_an_alert(binary, tmp_path):
    path = tmp_path / "haproxy.cfg"
    path.write_text(CASES["backend only"])
    done = subprocess.run([PROXIES[binary], "-db", "-f", str(path)], capture_output=True,
                          text=True, timeout=30)
    assert done.returncode == 1
    assert "No enabled listener found (check for 'bind' directives) ! Exiting." in done.stderr
