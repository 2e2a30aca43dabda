"""A throwaway MariaDB server on a loopback port, for mysql-check tests.

`MariaDB` initialises a datadir in a temporary directory with mariadb-install-db,
runs mariadbd as the current user (root in CI: `--user=root`), and creates the
check user with no password, as HAProxy's manual asks for `option mysql-check
user`. `stop()` always ends the server and removes the directory. Nothing here
touches a system MariaDB service or /var/lib/mysql.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

from tests.support.ports import free_port

INSTALL_DB = shutil.which("mariadb-install-db") or shutil.which("mysql_install_db")
SERVER = shutil.which("mariadbd", path="/usr/sbin:/usr/bin:" + os.environ.get("PATH", "")) \
    or shutil.which("mysqld", path="/usr/sbin:/usr/bin")
CLIENT = shutil.which("mariadb") or shutil.which("mysql")
START_TIMEOUT = 60.0
STOP_TIMEOUT = 20.0


def available() -> bool:
    return bool(INSTALL_DB and SERVER and CLIENT)


class MariaDB:
    def __init__(self, check_user: str = "haproxy_check") -> None:
        self.check_user = check_user
        self.dir = tempfile.mkdtemp(prefix="haply-mariadb-")
        self.datadir = os.path.join(self.dir, "data")
        self.socket = os.path.join(self.dir, "mysqld.sock")
        self.port = free_port()
        self.process: subprocess.Popen | None = None

    def _user_args(self) -> list[str]:
        return ["--user=root"] if os.geteuid() == 0 else []

    def start(self) -> "MariaDB":
        subprocess.run(
            [INSTALL_DB, "--no-defaults", f"--datadir={self.datadir}",
             "--auth-root-authentication-method=socket", "--skip-test-db",
             *self._user_args()],
            check=True, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, timeout=120)
        self._spawn()
        self.sql(f"CREATE USER '{self.check_user}'@'127.0.0.1';"
                 f" CREATE USER '{self.check_user}'@'localhost'; FLUSH PRIVILEGES;")
        return self

    def _spawn(self) -> None:
        self.process = subprocess.Popen(
            [SERVER, "--no-defaults", f"--datadir={self.datadir}",
             f"--socket={self.socket}", f"--port={self.port}", "--bind-address=127.0.0.1",
             "--skip-name-resolve", f"--pid-file={self.dir}/mariadbd.pid",
             f"--log-error={self.dir}/error.log", "--innodb-buffer-pool-size=16M",
             "--skip-log-bin", "--max-connect-errors=1000000", *self._user_args()],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True)
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"mariadbd exited: {self.error_log()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), 0.2):
                    pass
                if os.path.exists(self.socket):
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"mariadbd did not start in {START_TIMEOUT}s: {self.error_log()}")

    def sql(self, statement: str) -> str:
        out = subprocess.run([CLIENT, "--no-defaults", "-S", self.socket, "-uroot", "-N",
                              "-e", statement], check=True, stdin=subprocess.DEVNULL,
                             capture_output=True, text=True, timeout=30)
        return out.stdout

    def error_log(self) -> str:
        try:
            with open(os.path.join(self.dir, "error.log")) as f:
                return f.read()[-2000:]
        except OSError:
            return ""

    def pause(self) -> None:
        """Stop the server but keep its data, to start it again with resume()."""
        self._terminate()

    def resume(self) -> None:
        self._spawn()

    def _terminate(self) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(5)

    def stop(self) -> None:
        try:
            self._terminate()
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)
