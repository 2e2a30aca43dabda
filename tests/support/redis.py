"""A throwaway redis-server on a loopback port, for redis-check tests.

Runs Debian's redis-server in the foreground with no persistence and its
working directory in a temporary one; `password` makes it answer PING with
"-NOAUTH" until a client authenticates (what a check sees from a server
configured with `requirepass`). `stop()` always ends it and removes the
directory. Nothing here touches a system Redis service.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time

from tests.support import processes
from tests.support.ports import free_port

SERVER = shutil.which("redis-server", path="/usr/bin:/usr/sbin:" + os.environ.get("PATH", ""))
START_TIMEOUT = 10.0


def available() -> bool:
    return SERVER is not None


class Redis:
    def __init__(self, password: str | None = None) -> None:
        self.dir = tempfile.mkdtemp(prefix="haply-redis-")
        self.port = free_port()
        self.password = password
        self.process: subprocess.Popen | None = None

    def start(self) -> "Redis":
        args = [SERVER, "--bind", "127.0.0.1", "--port", str(self.port), "--dir", self.dir,
                "--save", "", "--appendonly", "no", "--daemonize", "no",
                "--logfile", os.path.join(self.dir, "redis.log")]
        if self.password:
            args += ["--requirepass", self.password]
        self.process = subprocess.Popen(args, stdin=subprocess.DEVNULL,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self.process.returncode}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), 0.2) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(64):
                        return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        try:
            processes.end(self.process)
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)
