"""Run the real HAProxy 2.6 as an oracle, and small named HTTP backends behind it.

Interop tests compare haply with HAProxy by running both on the same
configuration and the same traffic. This module holds the reusable parts:

- `EchoBackend` / `echo_backends()`: N plain HTTP/1.1 servers on 127.0.0.1:0,
  each answering every request with its own name (body first line, and the
  `X-Backend` header) followed by the request head it received, and keeping
  that head in `requests` so a test can look at what the proxy forwarded.
- `HAProxy` / `run_haproxy()`: start `/usr/sbin/haproxy` in the foreground on a
  configuration *text*, wait until every `bind` port accepts connections, and
  stop it (SIGTERM, then SIGKILL after a grace period) however the test ends.
- `http_get()`: one request on a fresh connection (optionally from a given
  127.x.y.z source address, for `balance source`), returning the status,
  headers and body.
- `free_port()`: a port on 127.0.0.1 that was free a moment ago.

Everything listens on 127.0.0.1 only, every wait is bounded, and the context
managers clean up in `finally`, so a failing test leaves no process behind.

Typical use::

    with echo_backends(["s1", "s2"]) as backends:
        port = free_port()
        servers = "\\n".join(f"    server {b.name} {b.address}" for b in backends)
        cfg = haproxy_config(f"listen app\\n    bind 127.0.0.1:{port}\\n"
                             f"    balance roundrobin\\n{servers}\\n")
        with run_haproxy(cfg) as proxy:
            names = [http_get(port).backend for _ in range(6)]
"""

from __future__ import annotations

import contextlib
import http.client
import os
import re
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Iterator

from tests.support import processes
from tests.support.ports import free_port  # noqa: F401 (re-exported)

HAPROXY_BIN = os.environ.get("HAPLY_HAPROXY", "/usr/sbin/haproxy")

# How long HAProxy may take to parse its configuration and bind: it starts in
# well under 100 ms here; the margin covers a loaded CI machine.
STARTUP_TIMEOUT = 10.0
# SIGTERM makes HAProxy close its listeners and exit at once ("hard stop").
STOP_GRACE = 5.0
# Per-request socket timeout of the test client.
CLIENT_TIMEOUT = 5.0

# A global/defaults prelude that keeps HAProxy quiet, unprivileged-safe and
# fast to start in tests: no daemon, no master, no logs, short timeouts.
DEFAULT_PRELUDE = """\
global
    maxconn 1000
    nbthread 1

defaults
    mode http
    timeout connect 2s
    timeout client 5s
    timeout server 5s
"""


def haproxy_available() -> bool:
    """True if the HAProxy binary used as the oracle is installed."""
    return shutil.which(HAPROXY_BIN) is not None or os.access(HAPROXY_BIN, os.X_OK)


def haproxy_config(sections: str, prelude: str = DEFAULT_PRELUDE) -> str:
    """A full configuration: the test prelude followed by the given sections."""
    return prelude + "\n" + sections


def with_stats_socket(config: str, socket_path: str) -> str:
    """config with an admin-level stats socket at socket_path in its global section."""
    return config.replace("global\n", f"global\n    stats socket {socket_path} level admin\n", 1)


# --------------------------------------------------------------------- backends


@dataclass
class ReceivedRequest:
    """One request head as an echo backend saw it."""

    method: str
    path: str
    version: str
    headers: list[tuple[str, str]]
    client: tuple[str, int]
    raw_head: bytes

    def header(self, name: str) -> str | None:
        """The first value of header `name` (case-insensitive), or None."""
        lname = name.lower()
        for key, value in self.headers:
            if key.lower() == lname:
                return value
        return None


class _QuietHTTPServer(ThreadingHTTPServer):
    """A threading HTTP server that does not print a traceback when a peer
    resets the connection: HAProxy closes idle server connections with a
    reset, which is normal and not a test failure."""

    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        import sys

        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, TimeoutError)):
            return
        super().handle_error(request, client_address)


@dataclass
class EchoBackend:
    """A named HTTP server on 127.0.0.1 that answers with its name."""

    name: str
    host: str = "127.0.0.1"
    port: int = 0
    requests: list[ReceivedRequest] = field(default_factory=list, repr=False)
    _server: ThreadingHTTPServer | None = field(default=None, repr=False)
    _thread: threading.Thread | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def address(self) -> str:
        """host:port, as written on a `server` line."""
        return f"{self.host}:{self.port}"

    def start(self) -> None:
        backend = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                head = (self.requestline + "\r\n" + str(self.headers)).encode("latin-1")
                received = ReceivedRequest(
                    method=self.command,
                    path=self.path,
                    version=self.request_version,
                    headers=list(self.headers.items()),
                    client=self.client_address[:2],
                    raw_head=head,
                )
                with backend._lock:
                    backend.requests.append(received)
                body = backend.name.encode() + b"\n" + head
                self.send_response(200)
                self.send_header("X-Backend", backend.name)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_OPTIONS = _answer

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002
                pass  # keep test output clean

        server = _QuietHTTPServer((self.host, self.port), Handler)
        self.port = server.server_address[1]
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05},
            name=f"echo-{self.name}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=STOP_GRACE)
            self._thread = None

    def clear(self) -> None:
        with self._lock:
            self.requests.clear()


@contextlib.contextmanager
def echo_backends(names: list[str]) -> Iterator[list[EchoBackend]]:
    """Start one `EchoBackend` per name on 127.0.0.1:0; stop them all on exit."""
    backends = [EchoBackend(name) for name in names]
    try:
        for backend in backends:
            backend.start()
        yield backends
    finally:
        for backend in backends:
            backend.stop()


# ---------------------------------------------------------------------- haproxy

_BIND_RE = re.compile(r"^\s*bind\s+(\S+)", re.MULTILINE)


def _bind_addresses(config: str) -> list[tuple[str, int]]:
    """The (host, port) of every plain `bind host:port` line, to wait for."""
    found = []
    specs = [item for spec in _BIND_RE.findall(config) for item in spec.split(",")]
    for spec in specs:
        if spec.startswith(("ipv4@", "ipv6@")):
            spec = spec[5:]
        host, _, port = spec.rpartition(":")
        if port.isdigit():
            host = host.strip("[]") or "127.0.0.1"
            if host in ("*", "0.0.0.0"):
                host = "127.0.0.1"
            found.append((host, int(port)))
    return found


class HAProxyError(RuntimeError):
    """HAProxy refused the configuration or did not start in time."""


class HAProxy:
    """One foreground HAProxy process on a configuration text."""

    def __init__(self, config: str, binary: str = HAPROXY_BIN) -> None:
        self.config = config
        self.binary = binary
        self.process: subprocess.Popen[bytes] | None = None
        self._dir: tempfile.TemporaryDirectory[str] | None = None
        self.config_path = ""

    def check(self) -> None:
        """Run `haproxy -c`; raise HAProxyError with its output if it fails."""
        self._write_config()
        result = subprocess.run(
            [self.binary, "-c", "-q", "-f", self.config_path],
            capture_output=True, timeout=STARTUP_TIMEOUT, stdin=subprocess.DEVNULL)
        if result.returncode != 0:
            raise HAProxyError(
                "haproxy rejected the configuration:\n"
                + result.stdout.decode(errors="replace")
                + result.stderr.decode(errors="replace")
                + "\n--- configuration ---\n" + self.config)

    def start(self) -> None:
        self.check()
        # -db: stay in the foreground, no daemon; output goes to a file so a
        # chatty HAProxy can never block on a full pipe.
        log_path = os.path.join(self._dir.name, "haproxy.log")  # type: ignore[union-attr]
        self._log = open(log_path, "wb")
        self.process = subprocess.Popen(
            [self.binary, "-db", "-f", self.config_path],
            stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT)
        self._wait_ready(_bind_addresses(self.config))

    def _write_config(self) -> None:
        if self._dir is None:
            self._dir = tempfile.TemporaryDirectory(prefix="haproxy-oracle-")
            self.config_path = os.path.join(self._dir.name, "haproxy.cfg")
            with open(self.config_path, "w") as f:
                f.write(self.config)

    def _wait_ready(self, addresses: list[tuple[str, int]]) -> None:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        pending = list(addresses)
        while pending:
            if self.process is not None and self.process.poll() is not None:
                raise HAProxyError(f"haproxy exited with {self.process.returncode}:\n{self.output()}")
            host, port = pending[0]
            try:
                # Not listening yet is refused at once; the timeout is for a
                # loaded machine, where a probe given up on and tried again
                # would be counted as two connections.
                with socket.create_connection((host, port), timeout=2):
                    pending.pop(0)
                    continue
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise HAProxyError(f"haproxy not listening on {host}:{port} after "
                                   f"{STARTUP_TIMEOUT}s:\n{self.output()}")
            time.sleep(0.02)

    def output(self) -> str:
        """What HAProxy printed so far (warnings, alerts)."""
        if self._dir is None:
            return ""
        try:
            with open(os.path.join(self._dir.name, "haproxy.log"), "rb") as f:
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    def stop(self) -> None:
        processes.end(self.process, STOP_GRACE)
        self.process = None
        if getattr(self, "_log", None) is not None:
            self._log.close()
            self._log = None
        if self._dir is not None:
            self._dir.cleanup()
            self._dir = None


@contextlib.contextmanager
def run_haproxy(config: str, binary: str = HAPROXY_BIN) -> Iterator[HAProxy]:
    """Start HAProxy on `config` (full text) and stop it on exit."""
    proxy = HAProxy(config, binary)
    try:
        proxy.start()
        yield proxy
    finally:
        proxy.stop()


# ----------------------------------------------------------------------- client


@dataclass
class Response:
    status: int
    headers: list[tuple[str, str]]
    body: bytes

    @property
    def backend(self) -> str | None:
        """The name of the echo backend that answered, if one did."""
        for key, value in self.headers:
            if key.lower() == "x-backend":
                return value
        return None


def http_get(port: int, path: str = "/", *, host: str = "127.0.0.1",
             headers: dict[str, str] | None = None, source: str | None = None,
             method: str = "GET", timeout: float = CLIENT_TIMEOUT) -> Response:
    """One request on a fresh connection, closed afterwards.

    `source` binds the client socket to that local address first (any
    127.x.y.z works on Linux loopback), which is how tests vary the client IP.
    """
    conn = http.client.HTTPConnection(
        host, port, timeout=timeout,
        source_address=(source, 0) if source else None)
    try:
        all_headers = {"Connection": "close"}
        all_headers.update(headers or {})
        conn.request(method, path, headers=all_headers)
        resp = conn.getresponse()
        body = resp.read()
        return Response(resp.status, resp.getheaders(), body)
    finally:
        conn.close()
