"""TLS benchmark: haply beside HAProxy 2.6 (nbthread 1), same certificate, same
nginx backend, wrk over https. A measurement tool, not a test.

    python bench/tls.py                          # both scenarios, 1 round of 3 s
    python bench/tls.py --rounds 3 --duration 5 --scenario tls_keepalive
    python bench/tls.py --key rsa                # RSA-2048 instead of ECDSA P-256
    python bench/tls.py --floor                  # bench/http_floor.py in haply's place

Scenarios:
  tls_handshake  wrk sends `Connection: close`: a new TCP connection and a full
                 TLS handshake per request (wrk resumes no session), so the
                 handshake's public-key cost dominates.
  tls_keepalive  many requests per TLS connection: record encryption, HTTP
                 parsing and forwarding.

Figures: requests/s (wrk), CPU microseconds per request of the proxy's process
tree (utime+stime from /proc, as bench/run.py measures), and haply/HAProxy
ratios. Targets: tls_handshake >= 0.9x HAProxy, tls_keepalive >= 0.7x.
The harness (process start/stop, CPU accounting, nginx) is bench/run.py's.
--floor measures the least a Python relay on the same TLS stack pays (uvloop's
TLS transport over Python's ssl module, httptools; bench/http_floor.py).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shlex
import subprocess
import sys
import tempfile
import textwrap
import time
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
_spec = importlib.util.spec_from_file_location("bench_run", HERE / "run.py")
base = importlib.util.module_from_spec(_spec)
sys.modules["bench_run"] = base
_spec.loader.exec_module(base)

SCENARIOS = {
    # name: (wrk connections, extra wrk headers)
    "tls_handshake": (20, ["Connection: close"]),
    "tls_keepalive": (50, []),
}
TARGETS = {"tls_handshake": 0.9, "tls_keepalive": 0.7}


@dataclass
class Measure:
    rps: list[float] = field(default_factory=list)
    cpu_us: list[float] = field(default_factory=list)
    errors: int = 0


def make_certificate(directory: Path, key: str) -> Path:
    """One PEM (certificate + key) both proxies load."""
    crt, keyfile = directory / "cert.pem", directory / "key.pem"
    newkey = ["-newkey", "rsa:2048"] if key == "rsa" else \
        ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"]
    subprocess.run(["openssl", "req", "-x509", *newkey, "-nodes", "-days", "2", "-subj", "/CN=localhost",
                    "-keyout", str(keyfile), "-out", str(crt)], check=True, capture_output=True, timeout=60)
    pem = directory / "bench.pem"
    pem.write_bytes(crt.read_bytes() + keyfile.read_bytes())
    pem.chmod(0o600)
    return pem


def proxy_config(port: int, pem: Path, server_port: int) -> str:
    return textwrap.dedent(f"""\
        # written by bench/tls.py: the same file runs under HAProxy and haply
        global
            maxconn 4000
            nbthread 1
        defaults
            mode http
            timeout connect 5s
            timeout client 30s
            timeout server 30s
        frontend bench
            bind 127.0.0.1:{port} ssl crt {pem}
            option forwardfor
            http-request set-header X-Forwarded-Proto https if {{ ssl_fc }}
            default_backend servers
        backend servers
            server nginx1 127.0.0.1:{server_port}
        """)


def https_ready(proc, port: int, log: Path) -> None:
    deadline = time.monotonic() + base.READY_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"proxy exited ({proc.returncode}):\n{base.tail(log)}")
        result = subprocess.run(["curl", "-sk", "-o", "/dev/null", "-w", "%{http_code}",
                                 f"https://127.0.0.1:{port}{base.SMALL_PATH}"],
                                capture_output=True, text=True, timeout=10)
        if result.stdout == "200":
            return
        time.sleep(0.1)
    raise RuntimeError(f"proxy not answering https on {port}:\n{base.tail(log)}")


def wrk(port: int, scenario: str, duration: float, log: Path) -> base.Run:
    connections, headers = SCENARIOS[scenario]
    command = [base.WRK, "-t1", f"-c{connections}", f"-d{duration:g}s"]
    for header in headers:
        command += ["-H", header]
    command.append(f"https://127.0.0.1:{port}{base.SMALL_PATH}")
    out = subprocess.run(command, capture_output=True, text=True, timeout=duration + 60, stdin=subprocess.DEVNULL)
    with open(log, "a") as f:
        f.write(f"$ {shlex.join(command)}\n{out.stdout}{out.stderr}\n")
    run = base.Run(proxy="", round=0)
    if out.returncode != 0 or not base.parse_wrk(out.stdout, run):
        raise RuntimeError(f"wrk failed:\n{out.stdout}{out.stderr}")
    return run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenario", action="append", choices=sorted(SCENARIOS))
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--duration", type=float, default=3.0)
    parser.add_argument("--key", choices=("ec", "rsa"), default="ec")
    parser.add_argument("--haproxy", default=base.HAPROXY)
    parser.add_argument("--floor", action="store_true",
                        help="run bench/http_floor.py in haply's place")
    args = parser.parse_args(argv)
    scenarios = args.scenario or list(SCENARIOS)
    print("$ python bench/tls.py " + shlex.join(argv if argv is not None else sys.argv[1:]))
    base.raise_nofile_limit()
    results: dict[tuple[str, str], Measure] = {}
    with tempfile.TemporaryDirectory(prefix="haply-bench-tls-") as tmp:
        workdir = Path(tmp)
        nginx_port, listen_port = base.free_ports(2)
        conf = base.write_backend_files(workdir, [nginx_port])
        log = workdir / "bench.log"
        nginx = base.start([base.NGINX, "-c", str(conf), "-p", str(workdir)], workdir / "nginx.log")
        try:
            base.wait_http(nginx, nginx_port, base.SMALL_PATH, "nginx", workdir / "nginx.log")
            pem = make_certificate(workdir, args.key)
            cfg = workdir / "tls.cfg"
            cfg.write_text(proxy_config(listen_port, pem, nginx_port))
            for rnd in range(args.rounds):
                order = base.PROXIES if rnd % 2 == 0 else tuple(reversed(base.PROXIES))
                for scenario in scenarios:
                    for proxy in order:
                        proc = base.start(base.proxy_command(proxy, cfg, args.haproxy, args.floor), log)
                        try:
                            https_ready(proc, listen_port, log)
                            before = base.cpu_ticks(proc.pid)
                            run = wrk(listen_port, scenario, args.duration, log)
                            ticks = base.cpu_ticks(proc.pid) - before
                        finally:
                            base.stop(proc)
                        measure = results.setdefault((scenario, proxy), Measure())
                        measure.rps.append(run.rps)
                        measure.cpu_us.append(ticks / base.CLK_TCK * 1e6 / max(run.requests, 1))
                        measure.errors += run.errors + run.non_2xx
        finally:
            base.stop(nginx)
    print(f"key: {args.key}, rounds: {args.rounds}, duration: {args.duration:g}s, "
          f"nproc: {os.cpu_count()}")
    name = "floor relay" if args.floor else "haply"
    print(f"| scenario | HAProxy req/s | {name} req/s | ratio (target) | HAProxy CPU µs/req | {name} CPU µs/req | errors |")
    print("|---|---|---|---|---|---|---|")
    for scenario in scenarios:
        h, y = results[(scenario, "haproxy")], results[(scenario, "haply")]
        hr, yr = base.mean(h.rps), base.mean(y.rps)
        ratio = yr / hr if hr else 0.0
        print(f"| {scenario} | {hr:.0f} | {yr:.0f} | {ratio:.2f}x (>= {TARGETS[scenario]}x) | "
              f"{base.mean(h.cpu_us):.0f} | {base.mean(y.cpu_us):.0f} | {h.errors}/{y.errors} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
