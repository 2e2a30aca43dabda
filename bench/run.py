#!/usr/bin/env python3
"""Side-by-side benchmark: haply and HAProxy 2.6 on the same haproxy.cfg.

For each scenario this script writes one haproxy.cfg, then runs HAProxy
(`haproxy -f cfg -db`, `nbthread 1`) and haply (`python -m haply -f cfg -db`) on it
in turn, each time a fresh process, in front of the same real nginx backends, and
loads it with wrk for a fixed duration. Rounds alternate the order (HAProxy first,
then haply first, ...) so that drift on a shared machine hits both alike.

Reported per scenario and proxy: requests/s, the ratio haply/HAProxy, and CPU
microseconds per request (utime+stime of the proxy's process tree from
/proc/PID/stat before and after the run, divided by the requests wrk completed).
The idle scenario instead opens thousands of idle TCP connections through the proxy
and reports resident memory per connection (VmRSS from /proc/PID/status).

This is a measurement tool, not a test: nothing here passes or fails on a number.
See bench/README.md for what each scenario measures.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import re
import resource
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HAPROXY = "/usr/sbin/haproxy"
NGINX = "/usr/sbin/nginx"
WRK = "/usr/bin/wrk"
PROXIES = ("haproxy", "haply")

SMALL_PATH = "/small.txt"
BIG_PATH = "/big.bin"
SMALL_BODY = b"haply benchmark: a small response body, like a short JSON API answer.\n"
BIG_SIZE = 10 * 1024 * 1024  # 10 MiB: a large API response or an image download

# wrk connections: 50 concurrent clients for request-bound runs; bulk transfers
# saturate loopback with far fewer, and 50 x 10 MiB in flight only adds memory.
REQUEST_CONNECTIONS = 50
BULK_CONNECTIONS = 8
# Idle connections for the memory scenario. Each costs the proxy two sockets (client
# and server side); with the 20,000 open-file limit here that leaves room for the
# listener, the checks and stdio.
IDLE_CONNECTIONS = 9000
IDLE_SETTLE_TIMEOUT = 60.0  # seconds for the proxy to accept and connect them all
IDLE_SETTLE_QUIET = 1.0  # the fd count must stay unchanged this long
READY_TIMEOUT = 30.0  # a proxy or nginx must answer within this after starting
STOP_TIMEOUT = 5.0
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


@dataclass(frozen=True)
class Scenario:
    name: str
    mode: str  # "tcp" or "http"
    servers: int  # nginx ports behind the backend
    path: str
    connections: int
    wrk_headers: tuple[str, ...] = ()
    idle: bool = False
    what: str = ""
    frontend: tuple[str, ...] = ()  # more lines for the frontend section


SCENARIOS = {s.name: s for s in (
    Scenario("l4_small", "tcp", 1, SMALL_PATH, REQUEST_CONNECTIONS,
             what="TCP relay, small keep-alive requests: per-read overhead"),
    Scenario("l4_bulk", "tcp", 1, BIG_PATH, BULK_CONNECTIONS,
             what="TCP relay, 10 MiB responses: copy throughput and backpressure"),
    Scenario("l7_keepalive", "http", 2, SMALL_PATH, REQUEST_CONNECTIONS,
             what="HTTP parsing, forwardfor, roundrobin over 2 servers, keep-alive"),
    Scenario("l7_close", "http", 2, SMALL_PATH, REQUEST_CONNECTIONS,
             wrk_headers=("Connection: close",),
             what="HTTP with a new client connection per request: accept/close cost"),
    Scenario("l7_ratelimit", "http", 2, SMALL_PATH, REQUEST_CONNECTIONS,
             what="l7_keepalive with a request rate limit per client address (track-sc0, never reached)",
             frontend=("    stick-table type ip size 100k expire 30s store http_req_rate(10s)",
                       "    http-request track-sc0 src",
                       "    http-request deny deny_status 429 if { sc_http_req_rate(0) gt 1000000000 }")),
    Scenario("idle", "tcp", 1, SMALL_PATH, 0, idle=True,
             what=f"{IDLE_CONNECTIONS} idle TCP connections: memory per connection"),
)}


@dataclass
class Run:
    proxy: str
    round: int
    requests: int = 0
    seconds: float = 0.0
    rps: float = 0.0
    mbytes_per_s: float = 0.0
    errors: int = 0
    non_2xx: int = 0
    cpu_us_per_req: float = 0.0
    # idle scenario
    connections: int = 0
    rss_before: int = 0
    rss_after: int = 0
    bytes_per_conn: float = 0.0
    fds_added: int = 0
    note: str = ""


@dataclass
class Result:
    scenario: str
    runs: list[Run] = field(default_factory=list)


# ------------------------------------------------------------------ processes

def raise_nofile_limit() -> None:
    """Soft open-file limit up to the hard one; children inherit it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def free_ports(n: int) -> list[int]:
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def start(command: list[str], log: Path, cpu: int | None = None) -> subprocess.Popen:
    def setup() -> None:
        raise_nofile_limit()
        if cpu is not None:
            os.sched_setaffinity(0, {cpu})
    out = open(log, "ab")
    try:
        return subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                                preexec_fn=setup, start_new_session=True, cwd=ROOT)
    finally:
        out.close()


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def process_tree(pid: int) -> list[int]:
    """pid and all its descendants (haply may run a master and workers)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    tree, todo = [], [pid]
    while todo:
        p = todo.pop()
        tree.append(p)
        todo.extend(children.get(p, ()))
    return tree


def cpu_ticks(pid: int) -> int:
    total = 0
    for p in process_tree(pid):
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        # fields[0] is field 3 (state): utime is field 14, stime field 15 (proc(5))
        total += int(fields[11]) + int(fields[12])
    return total


def rss_bytes(pid: int) -> int:
    total = 0
    for p in process_tree(pid):
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
        except OSError:
            continue
    return total


def fd_count(pid: int) -> int:
    total = 0
    for p in process_tree(pid):
        try:
            total += len(os.listdir(f"/proc/{p}/fd"))
        except OSError:
            continue
    return total


def http_ok(port: int, path: str) -> bool:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        response.read()
        return response.status == 200
    except (OSError, http.client.HTTPException):
        return False
    finally:
        conn.close()


def wait_http(proc: subprocess.Popen, port: int, path: str, what: str, log: Path) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with status {proc.returncode}; see {log}:\n"
                               + tail(log))
        if http_ok(port, path):
            return
        time.sleep(0.1)
    raise RuntimeError(f"{what} did not answer on 127.0.0.1:{port} within "
                       f"{READY_TIMEOUT:.0f}s; see {log}:\n" + tail(log))


def tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


# ------------------------------------------------------------------ configs

def write_backend_files(workdir: Path, ports: list[int]) -> Path:
    www = workdir / "www"
    www.mkdir()
    (www / SMALL_PATH.lstrip("/")).write_bytes(SMALL_BODY)
    with open(www / BIG_PATH.lstrip("/"), "wb") as f:
        block = bytes(range(256)) * 4096  # 1 MiB, not all zeros
        for _ in range(BIG_SIZE // len(block)):
            f.write(block)
    # nginx workers run as nobody when started by root: let them read the files
    for path in (workdir, www, *www.iterdir()):
        path.chmod(0o755 if path.is_dir() else 0o644)
    servers = "\n".join(textwrap.dedent(f"""\
        server {{
            listen 127.0.0.1:{port} backlog=4096;
            root {www};
        }}""") for port in ports)
    conf = workdir / "nginx.conf"
    conf.write_text(textwrap.dedent("""\
        # written by bench/run.py
        daemon off;
        master_process on;
        worker_processes 1;
        worker_rlimit_nofile 20000;
        pid {dir}/nginx.pid;
        error_log {dir}/nginx.error.log warn;
        events {{
            worker_connections 20000;
        }}
        http {{
            access_log off;
            default_type application/octet-stream;
            sendfile on;
            tcp_nopush on;
            keepalive_requests 1000000;
            keepalive_timeout 300s;
            # the idle scenario keeps connections open without a request
            client_header_timeout 300s;
            client_body_temp_path {dir}/tmp-body;
            proxy_temp_path {dir}/tmp-proxy;
            fastcgi_temp_path {dir}/tmp-fastcgi;
            uwsgi_temp_path {dir}/tmp-uwsgi;
            scgi_temp_path {dir}/tmp-scgi;
        """).format(dir=workdir) + textwrap.indent(servers, "    ") + "\n}\n")
    return conf


def proxy_config(scenario: Scenario, listen_port: int, server_ports: list[int],
                 workers: int = 1) -> str:
    maxconn = IDLE_CONNECTIONS + 500 if scenario.idle else 4000
    lines = [
        "# written by bench/run.py: the same file runs under HAProxy and haply",
        "global",
        f"    maxconn {maxconn}",
        "    # HAProxy threads, haply worker processes (under its master when > 1)",
        f"    nbthread {workers}",
        "",
        "defaults",
        f"    mode {scenario.mode}",
        "    timeout connect 5s",
        "    timeout client 300s",
        "    timeout server 300s",
        f"    maxconn {maxconn}",
        "",
        "frontend bench",
        f"    bind 127.0.0.1:{listen_port}",
    ]
    if scenario.mode == "http":
        lines.append("    option forwardfor")
    lines += scenario.frontend
    lines += [
        "    default_backend servers",
        "",
        "backend servers",
        "    balance roundrobin",
    ]
    lines += [f"    server nginx{i} 127.0.0.1:{port}"
              for i, port in enumerate(server_ports[:scenario.servers], start=1)]
    return "\n".join(lines) + "\n"


FLOOR_RELAY = Path(__file__).resolve().parent / "http_floor.py"


def proxy_command(proxy: str, config: Path, haproxy: str, floor: bool = False) -> list[str]:
    if proxy == "haproxy":
        return [haproxy, "-f", str(config), "-db"]
    if floor:  # the minimal relay in haply's place (bench/http_floor.py)
        return [sys.executable, str(FLOOR_RELAY), str(config)]
    return [sys.executable, "-m", "haply", "-f", str(config), "-db"]


# ------------------------------------------------------------------ measuring

WRK_REQUESTS = re.compile(r"^\s*(\d+) requests in ([\d.]+)(us|ms|s|m)", re.M)
WRK_TRANSFER = re.compile(r"^Transfer/sec:\s*([\d.]+)([KMG]?B)", re.M)
WRK_ERRORS = re.compile(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)")
WRK_NON2XX = re.compile(r"Non-2xx or 3xx responses: (\d+)")
UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}
SIZES = {"B": 1, "KB": 1024, "MB": 1024 ** 2, "GB": 1024 ** 3}


def run_wrk(scenario: Scenario, port: int, duration: float, cpu: int | None,
            run: Run, log: Path) -> None:
    command = [WRK, "-t1", f"-c{scenario.connections}", f"-d{duration:g}s"]
    for header in scenario.wrk_headers:
        command += ["-H", header]
    command.append(f"http://127.0.0.1:{port}{scenario.path}")
    setup = (lambda: os.sched_setaffinity(0, {cpu})) if cpu is not None else None
    out = subprocess.run(command, capture_output=True, text=True, preexec_fn=setup,
                         timeout=duration + 60, stdin=subprocess.DEVNULL)
    with open(log, "a") as f:
        f.write(f"$ {shlex.join(command)}\n{out.stdout}{out.stderr}\n")
    if out.returncode != 0 or not parse_wrk(out.stdout, run):
        raise RuntimeError(f"wrk failed (status {out.returncode}):\n{out.stdout}{out.stderr}")


def parse_wrk(text: str, run: Run) -> bool:
    """Fills run from wrk's report; False if the report has no request count."""
    m = WRK_REQUESTS.search(text)
    if not m:
        return False
    run.requests = int(m.group(1))
    run.seconds = float(m.group(2)) * UNITS[m.group(3)]
    run.rps = run.requests / run.seconds if run.seconds else 0.0
    if t := WRK_TRANSFER.search(text):
        run.mbytes_per_s = float(t.group(1)) * SIZES[t.group(2)] / 1e6
    if e := WRK_ERRORS.search(text):
        run.errors = sum(int(x) for x in e.groups())
    if n := WRK_NON2XX.search(text):
        run.non_2xx = int(n.group(1))
    return True


# The client side of the idle scenario, in its own process so that its sockets
# count against its own open-file limit, not this script's.
IDLE_CLIENT = textwrap.dedent("""\
    import resource, socket, sys, time
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    port, count, deadline = int(sys.argv[1]), int(sys.argv[2]), time.monotonic() + float(sys.argv[3])
    socks = []
    try:
        while len(socks) < count and time.monotonic() < deadline:
            s = socket.create_connection(("127.0.0.1", port), timeout=10)
            socks.append(s)
    except OSError as exc:
        print(f"error after {len(socks)} connections: {exc}", flush=True)
    print(f"connected {len(socks)}", flush=True)
    sys.stdin.readline()  # hold them until told to close
    for s in socks:
        s.close()
    """)


def run_idle(pid: int, port: int, count: int, run: Run) -> None:
    time.sleep(0.5)  # let the first health of the start settle
    fds_before = fd_count(pid)
    run.rss_before = rss_bytes(pid)
    client = subprocess.Popen([sys.executable, "-c", IDLE_CLIENT, str(port), str(count),
                               str(IDLE_SETTLE_TIMEOUT)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                              preexec_fn=raise_nofile_limit)
    try:
        lines = []
        while True:
            line = client.stdout.readline()
            if not line:
                raise RuntimeError("idle client exited: " + " ".join(lines))
            lines.append(line.strip())
            if line.startswith("connected "):
                run.connections = int(line.split()[1])
                break
        if run.connections < count:
            run.note = "; ".join(lines)
        # the kernel completes connects before the proxy accepts them: wait until the
        # proxy holds its sockets (fd count stops changing), bounded in time
        deadline = time.monotonic() + IDLE_SETTLE_TIMEOUT
        last, last_change = fd_count(pid), time.monotonic()
        while time.monotonic() < deadline:
            time.sleep(0.2)
            now = fd_count(pid)
            if now != last:
                last, last_change = now, time.monotonic()
            elif time.monotonic() - last_change >= IDLE_SETTLE_QUIET:
                break
        run.fds_added = last - fds_before
        run.rss_after = rss_bytes(pid)
        if run.connections:
            run.bytes_per_conn = (run.rss_after - run.rss_before) / run.connections
    finally:
        try:
            client.stdin.write("\n")
            client.stdin.flush()
        except OSError:
            pass
        try:
            client.wait(timeout=STOP_TIMEOUT * 4)
        except subprocess.TimeoutExpired:
            client.kill()
            client.wait()


def run_once(scenario: Scenario, proxy: str, rnd: int, args, workdir: Path,
             server_ports: list[int]) -> Run:
    run = Run(proxy=proxy, round=rnd)
    listen_port = free_ports(1)[0]
    config = workdir / f"{scenario.name}.cfg"
    config.write_text(proxy_config(scenario, listen_port, server_ports, args.workers))
    log = workdir / f"{scenario.name}.{proxy}.log"
    proc = start(proxy_command(proxy, config, args.haproxy, args.floor), log,
                 cpu=0 if args.pin else None)
    try:
        wait_http(proc, listen_port, SMALL_PATH, proxy, log)
        if scenario.idle:
            run_idle(proc.pid, listen_port, args.idle_connections, run)
        else:
            before = cpu_ticks(proc.pid)
            run_wrk(scenario, listen_port, args.duration, 1 if args.pin else None, run, log)
            used = cpu_ticks(proc.pid) - before
            if run.requests:
                run.cpu_us_per_req = used / CLK_TCK * 1e6 / run.requests
        if proc.poll() is not None:
            run.note = (run.note + f" proxy exited with status {proc.returncode}").strip()
    finally:
        stop(proc)
    return run


# ------------------------------------------------------------------ report

def mean(values: list[float]) -> float:
    return statistics.fmean(values) if values else 0.0


def summarise(result: Result, proxies: tuple[str, ...]) -> dict:
    out: dict = {}
    for proxy in proxies:
        runs = [r for r in result.runs if r.proxy == proxy]
        out[proxy] = {
            "rps": mean([r.rps for r in runs]),
            "rps_stdev": statistics.stdev([r.rps for r in runs]) if len(runs) > 1 else 0.0,
            "mbytes_per_s": mean([r.mbytes_per_s for r in runs]),
            "cpu_us_per_req": mean([r.cpu_us_per_req for r in runs]),
            "errors": sum(r.errors + r.non_2xx for r in runs),
            "bytes_per_conn": mean([r.bytes_per_conn for r in runs]),
            "connections": min((r.connections for r in runs), default=0),
            "notes": [r.note for r in runs if r.note],
        }
    return out


def ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}" if a and b else "-"


def fmt(value: float, digits: int = 0) -> str:
    return f"{value:,.{digits}f}" if value else "-"


def markdown(results: list[Result], proxies: tuple[str, ...]) -> str:
    summaries = {r.scenario: summarise(r, proxies) for r in results}
    lines = []
    load = [r for r in results if not SCENARIOS[r.scenario].idle]
    if load:
        lines += ["| scenario | HAProxy req/s | haply req/s | haply/HAProxy "
                  "| HAProxy CPU µs/req | haply CPU µs/req | errors (HAProxy / haply) |",
                  "|---|---:|---:|---:|---:|---:|---:|"]
        for r in load:
            s = summaries[r.scenario]
            h, y = s.get("haproxy", {}), s.get("haply", {})
            rps_h, rps_y = h.get("rps", 0.0), y.get("rps", 0.0)
            if SCENARIOS[r.scenario].path == BIG_PATH:
                extra = (f" ({fmt(h.get('mbytes_per_s', 0))} / "
                         f"{fmt(y.get('mbytes_per_s', 0))} MB/s)")
            else:
                extra = ""
            lines.append(
                f"| {r.scenario}{extra} | {fmt(rps_h)} | {fmt(rps_y)} | {ratio(rps_y, rps_h)} "
                f"| {fmt(h.get('cpu_us_per_req', 0), 1)} | {fmt(y.get('cpu_us_per_req', 0), 1)} "
                f"| {h.get('errors', '-')} / {y.get('errors', '-')} |")
    idle = [r for r in results if SCENARIOS[r.scenario].idle]
    if idle:
        if lines:
            lines.append("")
        lines += ["| scenario | connections | HAProxy bytes/conn | haply bytes/conn "
                  "| haply/HAProxy |",
                  "|---|---:|---:|---:|---:|"]
        for r in idle:
            s = summaries[r.scenario]
            h, y = s.get("haproxy", {}), s.get("haply", {})
            conns = min(x.get("connections", 0) for x in s.values())
            lines.append(f"| {r.scenario} | {conns:,} | {fmt(h.get('bytes_per_conn', 0))} "
                         f"| {fmt(y.get('bytes_per_conn', 0))} "
                         f"| {ratio(y.get('bytes_per_conn', 0), h.get('bytes_per_conn', 0))} |")
    notes = [f"{name} {proxy}: {note}" for name, s in summaries.items()
             for proxy, v in s.items() for note in v["notes"]]
    if notes:
        lines += ["", "Notes:"] + [f"- {n}" for n in notes]
    return "\n".join(lines)


def haply_build() -> str:
    """Which haply the runs started (`python -m haply` in this tree): its
    request path compiled (setup.py) or pure Python."""
    out = subprocess.run([sys.executable, "-c", "import haply.proxy.http as m; print(m.__file__)"],
                         capture_output=True, text=True, cwd=ROOT, timeout=30)
    return "haply compiled" if out.stdout.strip().endswith(".so") else "haply pure Python"


def environment(args) -> dict:
    def version(cmd: list[str]) -> str:
        try:
            out = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
            first = (out.stdout + out.stderr).strip().splitlines()[0]
            # "HAProxy version 2.6.12 2023/.. - https://..", "wrk 4.1.0 [epoll] Copyright.."
            return re.split(r" - https?://| \[| Copyright", first)[0]
        except (OSError, IndexError, subprocess.TimeoutExpired):
            return "not found"
    return {
        "haply_build": haply_build(),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "cpus": os.cpu_count(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "haproxy": version([args.haproxy, "-v"]),
        "nginx": version([NGINX, "-v"]),
        "wrk": version([WRK, "--version"]),
    }


# ------------------------------------------------------------------ main

def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="Benchmark haply against HAProxy 2.6 on the same haproxy.cfg.",
        epilog="scenarios: " + "; ".join(f"{s.name}: {s.what}" for s in SCENARIOS.values()))
    p.add_argument("--scenario", action="append", choices=list(SCENARIOS),
                   help="scenario to run (repeatable; default: all)")
    p.add_argument("--rounds", type=int, default=3,
                   help="alternating rounds per scenario (default 3)")
    p.add_argument("--duration", type=float, default=5.0,
                   help="seconds of load per wrk run (default 5)")
    p.add_argument("--only", choices=PROXIES, help="run one proxy only")
    p.add_argument("--idle-connections", type=int, default=IDLE_CONNECTIONS,
                   help=f"connections held open in the idle scenario (default {IDLE_CONNECTIONS})")
    p.add_argument("--pin", action="store_true",
                   help="pin the proxy to CPU 0 and wrk to CPU 1")
    p.add_argument("--workers", type=int, default=1,
                   help="nbthread for both: HAProxy threads, haply worker processes (default 1)")
    p.add_argument("--haproxy", default=HAPROXY, help=f"HAProxy binary (default {HAPROXY})")
    p.add_argument("--json", action="store_true", help="print JSON instead of markdown")
    p.add_argument("--floor", action="store_true",
                   help="run bench/http_floor.py (a minimal httptools relay) in haply's "
                        "place, to measure what any Python relay pays (http scenarios)")
    p.add_argument("--keep", action="store_true",
                   help="keep the work directory (configs and logs) and print its path")
    args = p.parse_args(argv)
    if args.floor and (args.workers > 1 or any(
            SCENARIOS[name].mode != "http" for name in args.scenario or SCENARIOS)):
        p.error("--floor is for the http scenarios (l7_keepalive, l7_close) with one worker")
    if args.workers > 1 and args.pin:
        p.error("--pin puts the proxy on one CPU: use it with --workers 1")
    if args.rounds < 1 or args.duration <= 0 or args.idle_connections < 1 or args.workers < 1:
        p.error("--rounds, --duration and --idle-connections must be positive")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    names = args.scenario or list(SCENARIOS)
    proxies = (args.only,) if args.only else PROXIES
    tools = [NGINX, WRK] + ([args.haproxy] if "haproxy" in proxies else [])
    for tool in tools:
        if not shutil.which(tool):
            print(f"bench: {tool} is missing (Debian: haproxy nginx-light wrk)",
                  file=sys.stderr)
            return 2
    raise_nofile_limit()
    command_line = "python bench/run.py " + shlex.join(sys.argv[1:] if argv is None else argv)
    workdir = Path(tempfile.mkdtemp(prefix="haply-bench-"))
    server_ports = free_ports(2)
    nginx_log = workdir / "nginx.log"
    nginx = start([NGINX, "-c", str(write_backend_files(workdir, server_ports)),
                   "-p", str(workdir)], nginx_log, cpu=1 if args.pin else None)
    results: list[Result] = []
    interrupted = False
    previous = signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        for port in server_ports:
            wait_http(nginx, port, SMALL_PATH, "nginx", nginx_log)
        for name in names:
            scenario = SCENARIOS[name]
            result = Result(name)
            results.append(result)
            for rnd in range(args.rounds):
                order = proxies if rnd % 2 == 0 else tuple(reversed(proxies))
                for proxy in order:
                    print(f"bench: {name} round {rnd + 1}/{args.rounds}: {proxy}",
                          file=sys.stderr, flush=True)
                    try:
                        run = run_once(scenario, proxy, rnd + 1, args, workdir, server_ports)
                    except RuntimeError as exc:
                        print(f"bench: {name} {proxy}: {exc}", file=sys.stderr)
                        run = Run(proxy=proxy, round=rnd + 1,
                                  note=str(exc).splitlines()[0])
                    result.runs.append(run)
    except KeyboardInterrupt:
        interrupted = True
        print("bench: interrupted; reporting what ran", file=sys.stderr)
    finally:
        signal.signal(signal.SIGTERM, previous)
        stop(nginx)
        if args.keep:
            print(f"bench: work directory kept: {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)

    env = environment(args)
    if args.json:
        print(json.dumps({
            "command": command_line,
            "environment": env,
            "settings": {"rounds": args.rounds, "duration": args.duration,
                         "idle_connections": args.idle_connections, "pin": args.pin},
            "scenarios": {r.scenario: {"summary": summarise(r, proxies),
                                       "runs": [asdict(x) for x in r.runs]}
                          for r in results},
        }, indent=2))
    else:
        print(f"Command: `{command_line}`")
        print()
        print(f"Machine: {env['cpus']} CPUs, Linux {env['kernel']}, Python {env['python']}; "
              f"{env['haproxy']}; {env['nginx']}; {env['wrk']}; {env['date']}; "
              f"{env['haply_build']} (from {ROOT}).")
        print(f"Each figure is the mean of {args.rounds} alternating round(s) of "
              f"{args.duration:g} s.")
        print()
        print(markdown(results, proxies))
    return 130 if interrupted else 0


if __name__ == "__main__":
    raise SystemExit(main())
