"""HAProxy 2.6 as a health-check oracle: run it on a config, read its server states.

`HAProxyOracle` writes the config to a temporary directory, adds a stats socket
there, runs `haproxy -db` (foreground, so the test owns the process) and reads
`show servers state` through the socket. `stop()` always ends the process.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time

from tests.support import processes
from tests.support.admin_cli import ask

HAPROXY = shutil.which("haproxy", path="/usr/sbin:/usr/bin:" + os.environ.get("PATH", ""))

# `show servers state` column srv_op_state (HAProxy management guide, 9.3):
# 0 = stopped (DOWN), 1 = starting, 2 = running (UP), 3 = stopping.
SRV_ST_RUNNING = 2


class HAProxyOracle:
    def __init__(self, config_text: str) -> None:
        self.dir = tempfile.mkdtemp(prefix="haply-oracle-")
        self.socket_path = os.path.join(self.dir, "stats.sock")
        self.config_path = os.path.join(self.dir, "haproxy.cfg")
        self.log_path = os.path.join(self.dir, "haproxy.log")
        lines = config_text.splitlines()
        index = lines.index("global") + 1 if "global" in lines else 0
        if index == 0:
            lines[:0] = ["global"]
            index = 1
        lines.insert(index, f"    stats socket {self.socket_path} level admin")
        with open(self.config_path, "w") as f:
            f.write("\n".join(lines) + "\n")
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 10.0) -> "HAProxyOracle":
        log = open(self.log_path, "w")
        self.process = subprocess.Popen([HAPROXY, "-db", "-f", self.config_path],
                                        stdin=subprocess.DEVNULL, stdout=log,
                                        stderr=subprocess.STDOUT)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"haproxy exited: {self.log()[-4000:]}")
            try:
                self.command("show info")
                return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"haproxy did not start: {self.log()[-4000:]}")

    def command(self, line: str) -> str:
        return ask(self.socket_path, line, timeout=2.0)

    def servers_state(self, backend: str) -> dict[str, dict[str, str]]:
        """server name -> columns of `show servers state BACKEND`."""
        text = self.command(f"show servers state {backend}")
        rows = [line for line in text.splitlines() if line and not line.startswith("1")]
        header = next(line for line in rows if line.startswith("#")).lstrip("# ").split()
        out = {}
        for line in rows:
            if line.startswith("#"):
                continue
            values = dict(zip(header, line.split()))
            out[values["srv_name"]] = values
        return out

    def is_up(self, backend: str, server: str) -> bool:
        return int(self.servers_state(backend)[server]["srv_op_state"]) == SRV_ST_RUNNING

    def check_status(self, backend: str, server: str) -> str:
        """check_status (L4CON, L7STS, ...) of `show stat` for one server."""
        text = self.command("show stat")
        lines = text.splitlines()
        header = lines[0].lstrip("# ").split(",")
        for line in lines[1:]:
            row = dict(zip(header, line.split(",")))
            if row.get("pxname") == backend and row.get("svname") == server:
                # "* " marks a check in progress (management guide, show stat)
                return row.get("check_status", "").removeprefix("* ")
        raise KeyError(f"{backend}/{server}")

    def pid(self) -> int:
        return self.process.pid

    def log(self) -> str:
        try:
            with open(self.log_path) as f:
                return f.read()
        except OSError:
            return ""

    def stop(self) -> None:
        try:
            processes.end(self.process)
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)


def process_cpu_seconds(pid: int) -> float:
    """utime + stime of a process, from /proc/PID/stat."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks
