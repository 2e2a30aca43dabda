"""contrib/systemd/haply.service.

What these tests prove, and what they do not: `systemd-analyze verify` checks
the unit's syntax, that every key is known to the installed systemd (252 here)
and that the commands exist; the commands themselves are then run as systemd
would run them (ExecStartPre's check, ExecStart under a NOTIFY_SOCKET the test
binds, ExecReload's signal, the stop signal), checking the Type=notify exchange
that systemd relies on. No systemd runs as the service manager here, so the
sandboxing options are checked for presence, not enforced: that VRRP works
under them is argued in the unit's comments, not tested.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from haply.cli import parse_args
from tests.support.haply_process import HAPLY_BIN, REPO_ROOT
from tests.support.haproxy_oracle import echo_backends, free_port, http_get

UNIT = REPO_ROOT / "contrib" / "systemd" / "haply.service"
INSTALLED_BINARY = "/usr/local/bin/haply"
INSTALLED_CONFIG = "/etc/haply/haply.cfg"
INSTALLED_PIDFILE = "/run/haply.pid"
# Bounds on every wait: start, a notification, a stop.
WAIT = 20.0

CONFIG = """\
global
    maxconn 100

defaults
    mode http
    timeout connect 2s
    timeout client 5s
    timeout server 5s

listen web
    bind 127.0.0.1:{port}
    server app {backend}
"""


def service_section() -> dict[str, list[str]]:
    """Key -> every value in [Service] (Exec* keys repeat)."""
    values: dict[str, list[str]] = {}
    section = None
    for line in UNIT.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line
            continue
        if section == "[Service]":
            key, _, value = line.partition("=")
            values.setdefault(key, []).append(value)
    return values


def command(key: str, index: int = 0) -> list[str]:
    return shlex.split(service_section()[key][index])


def localized(words: list[str], config: Path, pidfile: Path) -> list[str]:
    """The unit's command with the installed paths replaced by this test's."""
    table = {INSTALLED_BINARY: HAPLY_BIN, INSTALLED_CONFIG: str(config), INSTALLED_PIDFILE: str(pidfile)}
    return [table.get(word, word) for word in words]


def test_unit_keys_that_operators_rely_on():
    service = service_section()
    assert service["Type"] == ["notify"]
    assert service["KillMode"] == ["mixed"]
    assert service["Restart"] == ["on-failure"]
    assert int(service["LimitNOFILE"][0]) >= 65536
    assert service["ExecReload"][-1] == "/bin/kill -USR2 $MAINPID"
    capabilities = service["CapabilityBoundingSet"][0].split()
    assert {"CAP_NET_RAW", "CAP_NET_ADMIN", "CAP_NET_BIND_SERVICE", "CAP_SYS_NICE"} <= set(capabilities)
    families = service["RestrictAddressFamilies"][0].split()
    assert {"AF_INET", "AF_INET6", "AF_UNIX", "AF_NETLINK", "AF_PACKET"} <= set(families)
    for breaks_vrrp in ("PrivateNetwork", "RestrictRealtime", "RestrictNamespaces", "ProtectKernelTunables"):
        assert breaks_vrrp not in service
    assert re.search(r"^\[Install\]\nWantedBy=multi-user.target$", UNIT.read_text(), re.M)


def test_command_lines_parse_with_haplys_own_cli():
    start = parse_args(command("ExecStart")[1:])
    assert start.master_worker and start.systemd
    assert start.files == [INSTALLED_CONFIG] and start.pidfile == INSTALLED_PIDFILE
    assert not start.daemon  # Type=notify: the process systemd started is the master
    check = parse_args(command("ExecStartPre")[1:])
    assert check.check and check.quiet and check.files == [INSTALLED_CONFIG]
    assert command("ExecReload", 0) == command("ExecStartPre")  # reload refuses a broken file


@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="systemd-analyze (Debian package systemd) is not installed")
def test_systemd_analyze_verify(tmp_path):
    config = tmp_path / "haply.cfg"
    config.write_text(CONFIG.format(port=1, backend="127.0.0.1:2"))
    unit = tmp_path / "haply.service"
    text = UNIT.read_text().replace(INSTALLED_BINARY, HAPLY_BIN).replace(INSTALLED_CONFIG, str(config))
    unit.write_text(text)
    result = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True,
                            timeout=60, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stderr
    # Unknown or misspelt keys are only warnings: any output is a failure here.
    assert result.stdout + result.stderr == ""
    misspelt = tmp_path / "misspelt.service"
    misspelt.write_text(text.replace("KillMode=", "KilMode="))
    result = subprocess.run(["systemd-analyze", "verify", str(misspelt)], capture_output=True, text=True,
                            timeout=60, stdin=subprocess.DEVNULL)
    assert "KilMode" in result.stderr  # the check above would catch a typo


def test_exec_start_pre_checks_the_configuration(tmp_path):
    config = tmp_path / "haply.cfg"
    config.write_text(CONFIG.format(port=free_port(), backend="127.0.0.1:2"))
    words = localized(command("ExecStartPre"), config, tmp_path / "pid")
    good = subprocess.run(words, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert good.returncode == 0 and good.stdout == ""
    config.write_text("listen web\n    bind 127.0.0.1:notaport\n")
    bad = subprocess.run(words, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert bad.returncode != 0 and "haply.cfg:2" in bad.stderr


class NotifySocket:
    """The datagram socket systemd binds for a Type=notify service. Like
    systemd, it reads the sender's credentials: with the default
    NotifyAccess=main, systemd ignores notifications from any other process."""

    def __init__(self, path: Path):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        self.sock.bind(str(path))
        self.path = str(path)
        self.seen: list[str] = []

    def wait_for(self, state: str, sender: int) -> list[str]:
        """Datagrams until one from pid `sender` holds `state` (a line such as READY=1)."""
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                data, ancillary, _, _ = self.sock.recvmsg(4096, socket.CMSG_SPACE(12))
            except socket.timeout:
                break
            pid = next((int.from_bytes(d[:4], "little") for level, kind, d in ancillary
                        if (level, kind) == (socket.SOL_SOCKET, socket.SCM_CREDENTIALS)), None)
            lines = data.decode().split("\n")
            self.seen.append(f"{pid}: {'|'.join(lines)}")
            if state in lines and pid == sender:
                return lines
        raise AssertionError(f"no {state} from pid {sender} within {WAIT}s; got {self.seen}")

    def close(self) -> None:
        self.sock.close()


def test_exec_start_speaks_type_notify(tmp_path):
    """ExecStart under a NOTIFY_SOCKET: READY=1 only once it serves, RELOADING=1
    with MONOTONIC_USEC then READY=1 around ExecReload's SIGUSR2, STOPPING=1 and
    exit status 0 on systemd's SIGTERM."""
    with echo_backends(["app"]) as (backend,):
        port = free_port()
        config = tmp_path / "haply.cfg"
        config.write_text(CONFIG.format(port=port, backend=backend.address))
        pidfile = tmp_path / "haply.pid"
        notify = NotifySocket(tmp_path / "notify")
        env = dict(os.environ, NOTIFY_SOCKET=notify.path)
        process = subprocess.Popen(localized(command("ExecStart"), config, pidfile), env=env,
                                   stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            notify.wait_for("READY=1", process.pid)
            assert http_get(port).status == 200  # ready means serving
            assert int(pidfile.read_text()) == process.pid  # $MAINPID is the master
            process.send_signal(signal.SIGUSR2)  # ExecReload=/bin/kill -USR2 $MAINPID
            lines = notify.wait_for("RELOADING=1", process.pid)
            assert any(line.startswith("MONOTONIC_USEC=") for line in lines)
            notify.wait_for("READY=1", process.pid)
            assert http_get(port).status == 200
            process.send_signal(signal.SIGTERM)  # KillMode=mixed: the master alone
            notify.wait_for("STOPPING=1", process.pid)
            assert process.wait(timeout=WAIT) == 0
        finally:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            process.wait(timeout=WAIT)
            process.stdout.close()
            process.stderr.close()
            notify.close()
