#!/usr/bin/env python3
"""Observability costs, haply beside HAProxy 2.6 on the same haproxy.cfg.

1. httplog: the l7_keepalive scenario of bench/run.py (wrk, 50 keep-alive
   clients, 2 nginx servers, option forwardfor) with `option httplog` and
   `log 127.0.0.1:PORT local0` to a UDP syslog sink run by this script. Reported:
   requests/s and CPU microseconds per request of each proxy (the figure to
   compare on a shared machine), the ratios haply/HAProxy, and the log lines
   received (a sink that cannot keep up makes haply drop lines, never slow down).
2. stats page: one backend of 500 servers; the time to fetch the HTML page and
   `;csv` (median of N fetches over keep-alive-free connections), both proxies.

Not a test: prints figures and the commands. Keep runs short on a shared machine:
    python bench/stats.py --duration 3 --pin
"""

from __future__ import annotations

import argparse
import http.client
import importlib.util
import os
import shlex
import socket
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
_spec = importlib.util.spec_from_file_location("bench_run", HERE / "run.py")
base = importlib.util.module_from_spec(_spec)
sys.modules["bench_run"] = base
_spec.loader.exec_module(base)

STATS_SERVERS = 500
STATS_TARGET_MS = 200.0  # the goal for the HTML page with 500 servers
LOG_TARGET_RATIO = 0.8


class UdpSink:
    """A syslog receiver: counts datagrams in a thread until stopped."""

    def __init__(self, cpu: int | None = None) -> None:
        # cpu: the sink's thread runs there (with wrk, off the proxy's CPU:
        # sharing the proxy's CPU would charge it a context switch per line).
        self.cpu = cpu
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * 1024 * 1024)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.count = 0
        self.sample = b""
        self.running = True
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        if self.cpu is not None:
            os.sched_setaffinity(0, {self.cpu})  # this thread only (Linux)
        while self.running:
            try:
                data = self.sock.recv(65535)
            except socket.timeout:
                continue
            self.count += 1
            if not self.sample:
                self.sample = data

    def close(self) -> None:
        self.running = False
        self.thread.join(timeout=2)
        self.sock.close()


def httplog_config(listen_port: int, server_ports: list[int], log_port: int) -> str:
    scenario = base.SCENARIOS["l7_keepalive"]
    text = base.proxy_config(scenario, listen_port, server_ports)
    text = text.replace("    nbthread 1\n", f"    nbthread 1\n    log 127.0.0.1:{log_port} local0\n")
    return text.replace("    option forwardfor\n",
                        "    option forwardfor\n    log global\n    option httplog\n")


def run_httplog(proxy: str, args, workdir: Path, server_ports: list[int],
                logging: bool = True) -> dict:
    sink = UdpSink(1 if args.pin else None)
    listen_port = base.free_ports(1)[0]
    config = workdir / f"httplog.{proxy}.cfg"
    if logging:
        config.write_text(httplog_config(listen_port, server_ports, sink.port))
    else:
        config.write_text(base.proxy_config(base.SCENARIOS["l7_keepalive"], listen_port,
                                            server_ports))
    log = workdir / f"httplog.{proxy}.log"
    proc = base.start(base.proxy_command(proxy, config, args.haproxy), log,
                      cpu=0 if args.pin else None)
    run = base.Run(proxy=proxy, round=0)
    try:
        base.wait_http(proc, listen_port, base.SMALL_PATH, proxy, log)
        started = sink.count
        before = base.cpu_ticks(proc.pid)
        base.run_wrk(base.SCENARIOS["l7_keepalive"], listen_port, args.duration,
                     1 if args.pin else None, run, log)
        used = base.cpu_ticks(proc.pid) - before
        time.sleep(0.3)
        lines = sink.count - started
    finally:
        base.stop(proc)
        sink.close()
    cpu = used / base.CLK_TCK * 1e6 / run.requests if run.requests else 0.0
    return {"rps": run.rps, "requests": run.requests, "lines": lines, "cpu_us": cpu,
            "sample": sink.sample[:160].decode(errors="replace")}


def stats_config(listen_port: int, stats_port: int, server_port: int) -> str:
    lines = ["global", "    maxconn 4000", "    nbthread 1", "", "defaults", "    mode http",
             "    timeout connect 5s", "    timeout client 30s", "    timeout server 30s", "",
             "frontend fe", f"    bind 127.0.0.1:{listen_port}", "    default_backend big", "",
             "listen stats", f"    bind 127.0.0.1:{stats_port}", "    stats enable",
             "    stats uri /stats", "", "backend big"]
    lines += [f"    server s{i} 127.0.0.1:{server_port} weight {1 + i % 7}"
              for i in range(STATS_SERVERS)]
    return "\n".join(lines) + "\n"


def fetch_ms(port: int, path: str) -> tuple[float, int]:
    started = time.perf_counter()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("GET", path)
        body = conn.getresponse().read()
    finally:
        conn.close()
    return (time.perf_counter() - started) * 1000, len(body)


def run_stats(proxy: str, args, workdir: Path, server_port: int) -> dict:
    listen_port, stats_port = base.free_ports(2)
    config = workdir / f"stats.{proxy}.cfg"
    config.write_text(stats_config(listen_port, stats_port, server_port))
    log = workdir / f"stats.{proxy}.log"
    proc = base.start(base.proxy_command(proxy, config, args.haproxy), log)
    try:
        base.wait_http(proc, listen_port, base.SMALL_PATH, proxy, log)
        result = {}
        for name, path in (("html", "/stats"), ("csv", "/stats;csv")):
            fetch_ms(stats_port, path)  # warm-up
            times, size = [], 0
            for _ in range(args.fetches):
                ms, size = fetch_ms(stats_port, path)
                times.append(ms)
            result[name] = {"median_ms": statistics.median(times), "max_ms": max(times),
                            "bytes": size}
    finally:
        base.stop(proc)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=float, default=3.0, help="wrk seconds per run")
    parser.add_argument("--fetches", type=int, default=20, help="stats page fetches")
    parser.add_argument("--haproxy", default=base.HAPROXY)
    parser.add_argument("--skip-httplog", action="store_true")
    parser.add_argument("--skip-stats", action="store_true", help="httplog only")
    parser.add_argument("--pin", action="store_true",
                        help="pin the proxy to CPU 0 and wrk to CPU 1 (httplog)")
    args = parser.parse_args(argv)
    base.raise_nofile_limit()
    print(f"$ {shlex.join([sys.executable, *sys.argv])}")
    with tempfile.TemporaryDirectory(prefix="haply-bench-stats-") as tmp:
        workdir = Path(tmp)
        server_ports = base.free_ports(2)
        conf = base.write_backend_files(workdir, server_ports)
        nginx = base.start([base.NGINX, "-c", str(conf)], workdir / "nginx.log")
        try:
            for port in server_ports:
                base.wait_http(nginx, port, base.SMALL_PATH, "nginx", workdir / "nginx.log")
            if not args.skip_httplog:
                print(f"\n## l7_keepalive + option httplog to a UDP syslog sink "
                      f"({args.duration:g} s, wrk -t1 -c{base.REQUEST_CONNECTIONS})")
                found = {}
                for proxy in ("haproxy", "haply"):
                    found[proxy] = run_httplog(proxy, args, workdir, server_ports)
                    r = found[proxy]
                    print(f"{proxy:8} {r['rps']:10.0f} req/s  {r['cpu_us']:6.1f} CPU us/req  "
                          f"{r['requests']:8d} requests  {r['lines']:8d} log lines received")
                ratio = found["haply"]["rps"] / found["haproxy"]["rps"] if found["haproxy"]["rps"] else 0
                cpu_ratio = (found["haproxy"]["cpu_us"] / found["haply"]["cpu_us"]
                             if found["haply"]["cpu_us"] else 0)
                print(f"ratio haply/haproxy: {ratio:.2f} req/s, {cpu_ratio:.2f} by CPU per "
                      f"request (goal >= {LOG_TARGET_RATIO})")
                print("same scenario without logs (what logging costs each proxy):")
                for proxy in ("haproxy", "haply"):
                    plain = run_httplog(proxy, args, workdir, server_ports, logging=False)
                    cost = 1 - found[proxy]["rps"] / plain["rps"] if plain["rps"] else 0
                    print(f"{proxy:8} {plain['rps']:10.0f} req/s {plain['cpu_us']:6.1f} CPU "
                          f"us/req without logs; httplog costs {cost:.0%} of throughput, "
                          f"{found[proxy]['cpu_us'] - plain['cpu_us']:+.1f} us/req")
                print(f"haply line: {found['haply']['sample'].strip()}")
                print(f"haproxy line: {found['haproxy']['sample'].strip()}")
            if args.skip_stats:
                return 0
            print(f"\n## stats page, one backend of {STATS_SERVERS} servers "
                  f"(median of {args.fetches} fetches)")
            for proxy in ("haproxy", "haply"):
                r = run_stats(proxy, args, workdir, server_ports[0])
                for kind in ("html", "csv"):
                    print(f"{proxy:8} {kind:4} {r[kind]['median_ms']:8.1f} ms median  "
                          f"{r[kind]['max_ms']:8.1f} ms max  {r[kind]['bytes']:8d} bytes")
            print(f"goal: haply's HTML page in < {STATS_TARGET_MS:.0f} ms")
        finally:
            base.stop(nginx)
    return 0


if __name__ == "__main__":
    sys.exit(main())
