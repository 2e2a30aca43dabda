"""What health checks cost the traffic: p99 latency with and without 1,000 checked
servers, haply beside HAProxy 2.6 (not a test).

The same generated haproxy.cfg serves l7 keep-alive traffic over two nginx servers;
the "with checks" variant adds a backend of `--servers` servers checked every
`--inter-ms` (TCP checks against one more nginx port). wrk measures the latency
distribution; runs alternate without/with, `--rounds` times, and the table gives
the mean p99 of each and the ratio (target: checks add less than 5%).

    python bench/health_latency.py [--servers 1000] [--inter-ms 2000] [--rounds 3]
                                   [--duration 8] [--only haply|haproxy]
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from run import (SMALL_PATH, WRK, free_ports, proxy_command, raise_nofile_limit,  # noqa: E402
                 start, stop, wait_http, write_backend_files)

P99 = re.compile(r"^\s*99%\s+([\d.]+)(us|ms|s)", re.M)
UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0}


def config(listen: int, traffic: list[int], check_port: int, servers: int, inter_ms: int) -> str:
    text = f"""global
    maxconn 4000
    nbthread 1

defaults
    mode http
    timeout connect 5s
    timeout client 60s
    timeout server 60s

frontend bench
    bind 127.0.0.1:{listen}
    option forwardfor
    default_backend servers

backend servers
    balance roundrobin
""" + "".join(f"    server nginx{i} 127.0.0.1:{port}\n" for i, port in enumerate(traffic))
    if servers:
        text += "\nbackend checked\n" + "".join(
            f"    server s{i} 127.0.0.1:{check_port} check inter {inter_ms}ms\n"
            for i in range(servers))
    return text


def p99_ms(port: int, duration: float) -> float:
    out = subprocess.run([WRK, "-t1", "-c20", f"-d{duration:g}s", "--latency",
                          f"http://127.0.0.1:{port}{SMALL_PATH}"], capture_output=True,
                         text=True, timeout=duration + 60, stdin=subprocess.DEVNULL).stdout
    match = P99.search(out)
    if match is None:
        raise RuntimeError(f"no p99 in wrk output:\n{out}")
    return float(match.group(1)) * UNITS[match.group(2)]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--servers", type=int, default=1000)
    ap.add_argument("--inter-ms", type=int, default=2000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--duration", type=float, default=8.0)
    ap.add_argument("--only", choices=("haply", "haproxy"))
    ap.add_argument("--haproxy", default="/usr/sbin/haproxy")
    args = ap.parse_args()
    raise_nofile_limit()
    workdir = Path(tempfile.mkdtemp(prefix="health-latency-"))
    listen, *backend_ports = free_ports(4)
    traffic, check_port = backend_ports[:2], backend_ports[2]
    nginx_conf = write_backend_files(workdir, backend_ports)
    nginx = start(["nginx", "-c", str(nginx_conf)], workdir / "nginx.log")
    results: dict[tuple[str, bool], list[float]] = {}
    try:
        time.sleep(0.5)
        for proxy in [args.only] if args.only else ["haply", "haproxy"]:
            for _ in range(args.rounds):
                for checks in (False, True):
                    cfg = workdir / f"{proxy}-{checks}.cfg"
                    cfg.write_text(config(listen, traffic, check_port,
                                          args.servers if checks else 0, args.inter_ms))
                    log = workdir / f"{proxy}.log"
                    proc = start(proxy_command(proxy, cfg, args.haproxy), log)
                    try:
                        wait_http(proc, listen, SMALL_PATH, proxy, log)
                        # let the first checks spread over one interval
                        time.sleep(args.inter_ms / 1000 + 0.5 if checks else 0.5)
                        results.setdefault((proxy, checks), []).append(
                            p99_ms(listen, args.duration))
                    finally:
                        stop(proc)
    finally:
        stop(nginx)
    print(f"Command: `python bench/health_latency.py --servers {args.servers} "
          f"--inter-ms {args.inter_ms} --rounds {args.rounds} --duration {args.duration:g}`\n")
    print("| proxy | p99 without checks (ms) | p99 with checks (ms) | with/without |")
    print("|---|---:|---:|---:|")
    for proxy in [args.only] if args.only else ["haply", "haproxy"]:
        without = statistics.mean(results[(proxy, False)])
        with_checks = statistics.mean(results[(proxy, True)])
        print(f"| {proxy} | {without:.2f} | {with_checks:.2f} | {with_checks / without:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
