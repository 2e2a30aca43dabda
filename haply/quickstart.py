"""`haply quickstart`: a working load balancer on this machine in one command.

Starts three small HTTP backends on free 127.0.0.1 ports, runs haply in the
foreground on examples/quickstart.cfg (a round-robin HTTP frontend over them) and
says where to send requests. Each backend answers with its name, the path it was
asked for and the X-Forwarded-For header it received, so round robin and
`option forwardfor` can be seen with curl. Ctrl-C or SIGTERM stops haply and the
backends.

`--check` does the same unattended: it sends a few requests through the proxy,
prints which backend answered each and exits 0 only if all of them were answered
by the backends, each backend at least once, with the client address forwarded.

The example file takes its ports from the environment (`"${QS_PORT1}"`, expanded
by the config language as HAProxy does), so the file written for the run is the
example itself, byte for byte, and the same file runs under HAProxy 2.6.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import csv
import http.client
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

DEFAULT_PORT = 8080
DEFAULT_STATS_PORT = 8404  # HAProxy's documented example port for the stats page
STATS_PATH = "/stats"
STATS_AUTH = ("admin", "quickstart")  # as in examples/quickstart.cfg
BACKEND_NAMES = ("web1", "web2", "web3")
# 6 requests over 3 round-robin servers: each server should answer twice.
CHECK_REQUESTS = 6
HEALTH_PATH = "/healthz"
# Asked through the proxy until it answers: each backend answers with its name only,
# and does not print it, so waiting stays out of the request log.
READY_PATH = "/ready"
# Long enough for the interpreter to start, the config to load and the first
# health checks (`inter 2s`) to pass on a loaded machine; bounded so a proxy that
# never answers fails the check instead of hanging it.
READY_TIMEOUT = 30.0
READY_POLL_INTERVAL = 0.2
REQUEST_TIMEOUT = 5.0
# After SIGTERM the proxy gets this long to close its listeners and exit.
STOP_TIMEOUT = 5.0
TEMPLATE_NAME = "quickstart.cfg"


# ------------------------------------------------------------------ backends

class _BackendHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "haply-quickstart-backend"

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        if self.path == HEALTH_PATH:
            body = b"ok\n"
        elif self.path == READY_PATH:
            body = f"{self.server.name}\n".encode()
        else:
            xff = self.headers.get("X-Forwarded-For", "-")
            body = (f"{self.server.name} answered {self.command} {self.path}"
                    f" (X-Forwarded-For: {xff})\n").encode()
            if self.server.verbose:
                print(f"  {self.server.name}: {self.command} {self.path}"
                      f" from {self.client_address[0]}, X-Forwarded-For {xff}", flush=True)
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args) -> None:  # noqa: A002
        pass  # requests are reported by do_GET, health checks stay quiet


class Backend(ThreadingHTTPServer):
    """One named HTTP backend on 127.0.0.1, served from its own thread."""

    daemon_threads = True

    def __init__(self, name: str, verbose: bool = False):
        super().__init__(("127.0.0.1", 0), _BackendHandler)
        self.name = name
        self.verbose = verbose
        self.port = self.server_address[1]
        self._thread = threading.Thread(target=self.serve_forever, name=f"backend-{name}",
                                        daemon=True)

    def start(self) -> None:
        self._thread.start()

    def handle_error(self, request, client_address) -> None:
        # Health checkers commonly close with a reset once they have their answer.
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)

    def stop(self) -> None:
        self.shutdown()
        self.server_close()
        self._thread.join(timeout=STOP_TIMEOUT)


# ------------------------------------------------------------------ helpers

def find_template(explicit: str | None) -> Path:
    """The example config: given, beside the source tree, or under ./examples."""
    if explicit:
        return Path(explicit)
    candidates = [
        Path(__file__).resolve().parent.parent / "examples" / TEMPLATE_NAME,
        Path.cwd() / "examples" / TEMPLATE_NAME,
    ]
    for path in candidates:
        if path.is_file():
            return path
    raise FileNotFoundError(
        f"cannot find examples/{TEMPLATE_NAME} (looked in "
        + ", ".join(str(p.parent) for p in candidates)
        + "); run from a haply checkout or pass --config")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_in_use(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def http_get(port: int, path: str, auth: tuple[str, str] | None = None) -> tuple[int, str]:
    """One GET on a new connection, so that each request is balanced on its own."""
    headers = {"Connection": "close"}
    if auth:
        token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
        headers["Authorization"] = f"Basic {token}"
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=REQUEST_TIMEOUT)
    try:
        conn.request("GET", path, headers=headers)
        response = conn.getresponse()
        return response.status, response.read().decode(errors="replace")
    finally:
        conn.close()


def wait_ready(proc: subprocess.Popen, port: int, stop: threading.Event,
               expect: tuple[str, ...] = ()) -> str | None:
    """Waits until the proxy answers 200 (and, if `expect` is given, until each of
    those backends has answered once); returns None when ready, else why not."""
    deadline = time.monotonic() + READY_TIMEOUT
    last = "no answer yet"
    seen: set[str] = set()
    while time.monotonic() < deadline and not stop.is_set():
        if proc.poll() is not None:
            return f"the proxy exited with status {proc.returncode} before answering"
        try:
            status, body = http_get(port, READY_PATH)
            if status == 200:
                seen.add(body.strip())
                if all(name in seen for name in expect):
                    return None
                last = "answers so far from " + ", ".join(sorted(seen))
            else:
                last = f"last answer was HTTP {status}"
        except OSError as exc:
            last = f"last attempt: {exc}"
        stop.wait(READY_POLL_INTERVAL)
    if stop.is_set():
        return "stopped"
    return f"the proxy did not answer 200 within {READY_TIMEOUT:.0f}s ({last})"


def stop_process(proc: subprocess.Popen) -> None:
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@contextlib.contextmanager
def stop_on_signals(stop: threading.Event):
    """SIGINT and SIGTERM set `stop` instead of raising, while inside the block."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {}
    for signum in (signal.SIGINT, signal.SIGTERM):
        previous[signum] = signal.signal(signum, lambda *_: stop.set())
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def run_check(port: int, names: tuple[str, ...]) -> bool:
    """Sends CHECK_REQUESTS requests; True if every one came back from a backend."""
    seen: dict[str, int] = {}
    ok = True
    for i in range(1, CHECK_REQUESTS + 1):
        path = f"/quickstart/{i}"
        try:
            status, body = http_get(port, path)
        except OSError as exc:
            print(f"request {i}: GET {path} failed: {exc}")
            ok = False
            continue
        body = body.strip()
        name = body.split(" ", 1)[0] if body else ""
        if status != 200 or name not in names:
            print(f"request {i}: GET {path} -> HTTP {status}: {body[:200]!r}")
            ok = False
            continue
        print(f"request {i}: HTTP {status} from {body}")
        seen[name] = seen.get(name, 0) + 1
        if f"GET {path} " not in body:
            print(f"  the backend saw another path than {path}")
            ok = False
        if "(X-Forwarded-For: 127.0.0.1)" not in body:
            print("  the backend did not get X-Forwarded-For: 127.0.0.1 (option forwardfor)")
            ok = False
    summary = ", ".join(f"{n} {seen.get(n, 0)}" for n in names)
    print(f"answers per backend: {summary}")
    missing = [n for n in names if n not in seen]
    if missing:
        print(f"no answer from {', '.join(missing)}: round robin should reach every backend")
        ok = False
    return ok


def check_stats(port: int, names: tuple[str, ...]) -> bool:
    """Reads the stats page's CSV export: every backend server must be listed UP."""
    try:
        status, body = http_get(port, STATS_PATH + ";csv", auth=STATS_AUTH)
    except OSError as exc:
        print(f"stats page: GET {STATS_PATH};csv failed: {exc}")
        return False
    if status != 200:
        print(f"stats page: GET {STATS_PATH};csv -> HTTP {status}")
        return False
    rows = list(csv.DictReader(body.lstrip("# ").splitlines()))
    states = {row["svname"]: row["status"] for row in rows
              if row.get("pxname") == "web" and row.get("svname") in names}
    print("stats page: " + ", ".join(f"{n} {states.get(n, 'missing')}" for n in names))
    # "UP 1/3" is still UP: HAProxy's way of showing a health that has not yet
    # climbed to its maximum (rise + fall - 1 good checks), as right after start
    return all(states.get(n, "").split(" ")[0] == "UP" for n in names)


# ------------------------------------------------------------------ main

def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="haply quickstart",
        description="Run haply on examples/quickstart.cfg in front of three local "
                    "HTTP backends that it starts itself.")
    parser.add_argument("--port", type=int, default=None,
                        help=f"port the proxy listens on, on 127.0.0.1 (default "
                             f"{DEFAULT_PORT}; with --check, a free port)")
    parser.add_argument("--stats-port", type=int, default=None,
                        help=f"port of the statistics page (default {DEFAULT_STATS_PORT}; "
                             "with --check, a free port)")
    parser.add_argument("--check", action="store_true",
                        help=f"send {CHECK_REQUESTS} requests, print which backend "
                             "answered each, exit 0 if all succeeded")
    parser.add_argument("--config", metavar="FILE",
                        help="config to run instead of examples/quickstart.cfg; it may "
                             "use ${QS_PORT}, ${QS_STATS_PORT} and ${QS_PORT1}..${QS_PORT3}")
    parser.add_argument("--proxy", metavar="PROGRAM",
                        help="run PROGRAM -f CONFIG -db instead of haply, e.g. "
                             "/usr/sbin/haproxy to compare")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        template = find_template(args.config)
        text = template.read_text()
    except OSError as exc:
        print(f"haply quickstart: {exc}", file=sys.stderr)
        return 2

    port = args.port if args.port is not None else (
        free_port() if args.check else DEFAULT_PORT)
    stats_port = args.stats_port if args.stats_port is not None else (
        free_port() if args.check else DEFAULT_STATS_PORT)
    for value, option in ((port, "--port"), (stats_port, "--stats-port")):
        if port_in_use(value):
            print(f"haply quickstart: 127.0.0.1:{value} is already in use; "
                  f"pass {option} with a free port", file=sys.stderr)
            return 2

    stop = threading.Event()
    workdir = Path(tempfile.mkdtemp(prefix="haply-quickstart-"))
    backends = [Backend(name, verbose=not args.check) for name in BACKEND_NAMES]
    proc: subprocess.Popen | None = None
    try:
        for backend in backends:
            backend.start()
        config = workdir / "haproxy.cfg"
        config.write_text(text)
        env = dict(os.environ, QS_PORT=str(port), QS_STATS_PORT=str(stats_port))
        for i, backend in enumerate(backends, start=1):
            env[f"QS_PORT{i}"] = str(backend.port)
        if args.proxy:
            command = [args.proxy, "-f", str(config), "-db"]
        else:
            command = [sys.executable, "-m", "haply", "-f", str(config), "-db"]

        print("haply quickstart")
        print("  backends: " + ", ".join(f"{b.name} 127.0.0.1:{b.port}" for b in backends))
        print(f"  config:   {config} (from {template})")
        print(f"  proxy:    {' '.join(command)}", flush=True)

        with stop_on_signals(stop):
            proc = subprocess.Popen(command, env=env, stdin=subprocess.DEVNULL,
                                    start_new_session=True)
            # --check waits until every server is in rotation, so that the requests
            # it counts show round robin rather than health checks still rising
            problem = wait_ready(proc, port, stop, BACKEND_NAMES if args.check else ())
            if problem == "stopped":
                return 0
            if problem:
                print(f"haply quickstart: {problem}", file=sys.stderr)
                return 1
            if args.check:
                print(f"proxy is up on 127.0.0.1:{port}; sending {CHECK_REQUESTS} requests")
                ok = run_check(port, BACKEND_NAMES)
                ok = check_stats(stats_port, BACKEND_NAMES) and ok
                print("quickstart check: " + ("OK" if ok else "FAILED"))
                return 0 if ok else 1

            print()
            print("haply is balancing over the three backends. Send requests:")
            print(f"  curl http://127.0.0.1:{port}/")
            print("Each answer names the backend that served it; repeat to see round robin.")
            print(f"Statistics: http://127.0.0.1:{stats_port}{STATS_PATH} "
                  f"(user {STATS_AUTH[0]}, password {STATS_AUTH[1]})")
            print("Press Ctrl-C to stop.", flush=True)
            while not stop.is_set() and proc.poll() is None:
                stop.wait(0.5)
            if proc.poll() is not None:
                print(f"haply quickstart: the proxy exited with status {proc.returncode}",
                      file=sys.stderr)
                return proc.returncode or 1
            print("\nstopping", flush=True)
            return 0
    finally:
        if proc is not None:
            stop_process(proc)
        for backend in backends:
            backend.stop()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
