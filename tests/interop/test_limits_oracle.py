"""haply.limits against HAProxy 2.6's own count (`show info` Maxsock) on the same
configurations: the terms that grow with the configuration (2 per connection,
listeners, checked servers) must grow the same way, and haply must never ask
for fewer descriptors than HAProxy would."""

from __future__ import annotations

import re
import resource
import shutil
import socket
import subprocess
import sys
import textwrap
import time

import pytest

from haply.config import load
from haply.limits import descriptors_needed
from tests.support.haply_process import REPO_ROOT
from tests.support.haproxy_oracle import HAPROXY_BIN, free_port, haproxy_available, run_haproxy

pytestmark = pytest.mark.skipif(not haproxy_available(), reason="HAProxy 2.6 not installed")


def configuration(sock: str, maxconn: int, binds: int, checked: int) -> str:
    ports = [free_port() for _ in range(binds)]
    bind_lines = "\n".join(f"    bind 127.0.0.1:{port}" for port in ports)
    servers = "\n".join(f"    server s{i} 127.0.0.1:{free_port()}" + (" check inter 60s" if i < checked else "")
                        for i in range(3))
    return textwrap.dedent(f"""\
        global
            maxconn {maxconn}
            stats socket {sock} level admin
        defaults
            mode tcp
            timeout connect 1s
            timeout client 5s
            timeout server 5s
        """) + f"listen app\n{bind_lines}\n{servers}\n"


def maxsock(sock: str) -> int:
    deadline = time.monotonic() + 10
    while True:
        try:
            with socket.socket(socket.AF_UNIX) as client:
                client.settimeout(5)
                client.connect(sock)
                client.sendall(b"show info\n")
                data = b""
                while chunk := client.recv(65536):
                    data += chunk
            break
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    for line in data.decode().splitlines():
        if line.startswith("Maxsock:"):
            return int(line.split(":", 1)[1])
    raise AssertionError(f"no Maxsock in {data!r}")


def counts(directory, maxconn: int, binds: int, checked: int) -> tuple[int, int]:
    """(haply's need, HAProxy's Maxsock) for one configuration."""
    directory.mkdir()
    sock = str(directory / "admin.sock")
    text = configuration(sock, maxconn, binds, checked)
    with run_haproxy(text):
        theirs = maxsock(sock)
    path = directory / "haproxy.cfg"
    path.write_text(text)
    return descriptors_needed(load([str(path)], {}).config).total, theirs


@pytest.mark.parametrize("maxconn, binds, checked", [
    (5000, 1, 0), (1000, 3, 0), (1000, 1, 2), (4000, 4, 3),
])
def test_count_grows_like_haproxys(tmp_path, maxconn, binds, checked):
    base_ours, base_theirs = counts(tmp_path / "base", 1000, 1, 0)
    ours, theirs = counts(tmp_path / "case", maxconn, binds, checked)
    assert ours >= theirs and base_ours >= base_theirs
    # What does not depend on the configuration differs (HAProxy's fixed part
    # depends on its thread count, haply's is RESERVED_DESCRIPTORS and the stats
    # socket's connections); what grows with it grows the same.
    assert ours - theirs == base_ours - base_theirs


def _lowered(limit: int):
    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))
    return apply


def without_sys_resource(command: str) -> list[str]:
    """Run a shell command as an unprivileged service or a container's root
    would: CAP_SYS_RESOURCE dropped, so the hard limit cannot be raised."""
    return ["capsh", "--drop=cap_sys_resource", "--", "-c", command]


@pytest.mark.skipif(not shutil.which("capsh"), reason="capsh (Debian package libcap2-bin) is not installed")
def test_both_refuse_to_start_below_the_need(tmp_path):
    """With a hard limit below what maxconn needs and no capability to raise it,
    HAProxy refuses to start, and so does haply, with the number and the remedy."""
    if resource.getrlimit(resource.RLIMIT_NOFILE)[1] < 1024:
        pytest.skip("hard open-file limit below 1024 already")
    path = tmp_path / "haproxy.cfg"
    path.write_text(configuration(str(tmp_path / "admin.sock"), 1000, 1, 0))
    try:
        theirs = subprocess.run(without_sys_resource(f"exec {HAPROXY_BIN} -db -f {path}"),
                                capture_output=True, text=True, timeout=20, stdin=subprocess.DEVNULL,
                                preexec_fn=_lowered(1024))
    except subprocess.TimeoutExpired:
        pytest.fail("HAProxy started although its hard limit was below its need")
    assert theirs.returncode != 0 and re.search(r"Cannot raise FD limit to \d+, limit is 1024", theirs.stderr)
    script = ("import sys\nfrom haply.config import load\nfrom haply.limits import LimitError, ensure_nofile\n"
              "try:\n    ensure_nofile(load([sys.argv[1]], {}).config)\n"
              "except LimitError as exc:\n    print(exc)\n    sys.exit(1)\n")
    ours = subprocess.run(without_sys_resource(f"exec {sys.executable} -c '{script}' {path}"),
                          capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL,
                          preexec_fn=_lowered(1024), cwd=REPO_ROOT)
    assert ours.returncode == 1, ours.stdout + ours.stderr
    assert "2044 open files are needed" in ours.stdout and "hard limit is 1024" in ours.stdout
    assert "LimitNOFILE=2044" in ours.stdout
