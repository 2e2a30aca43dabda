"""Reloads under load: haply's master (SIGUSR2) against HAProxy 2.6's reloads.

    python bench/reload.py [--reloads 20] [--interval 0.5] [--rounds 2]

wrk drives the l7_keepalive scenario of bench/run.py (50 keep-alive connections,
roundrobin over two nginx ports) for the whole run, once without reloads and
once while the proxy is reloaded every --interval seconds. Reported per set-up:
requests per second in both runs, the dip (how much lower the run with reloads
was), and wrk's errors (connect, read, write, timeout and non-2xx answers) in
the run with reloads. Set-ups:

  haply -W           master-worker; reload = SIGUSR2 to the master
  haproxy -sf        a new haproxy process per reload with -sf OLDPID (the
                     classic init-script reload)
  haproxy -W         HAProxy's own master-worker mode; reload = SIGUSR2

Both proxies run `nbthread 1` (one haply worker, one HAProxy thread).
"""

from __future__ import annotations

import argparse
import os
import shlex
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run as core  # noqa: E402  (bench/run.py: processes, configs, wrk)

SETUPS = ("haply -W", "haproxy -sf", "haproxy -W")


@dataclass
class Outcome:
    setup: str
    steady: list[float] = field(default_factory=list)  # req/s without reloads
    reloading: list[float] = field(default_factory=list)  # req/s with reloads
    errors: list[int] = field(default_factory=list)  # socket errors + non-2xx
    reloads_done: list[int] = field(default_factory=list)


class Proxy:
    """One set-up: start, reload, stop (every process it started)."""

    def __init__(self, setup: str, config: Path, log: Path, haproxy: str) -> None:
        self.setup = setup
        self.config = config
        self.log = log
        self.haproxy = haproxy
        self.procs: list[subprocess.Popen] = []

    def start(self) -> subprocess.Popen:
        if self.setup == "haply -W":
            command = [sys.executable, "-m", "haply", "-W", "-db", "-f", str(self.config)]
        elif self.setup == "haproxy -W":
            command = [self.haproxy, "-W", "-db", "-f", str(self.config)]
        else:
            command = [self.haproxy, "-db", "-f", str(self.config)]
        proc = core.start(command, self.log)
        self.procs.append(proc)
        return proc

    def reload(self) -> None:
        if self.setup == "haproxy -sf":
            old = self.procs[-1]
            proc = core.start([self.haproxy, "-db", "-f", str(self.config), "-sf", str(old.pid)],
                              self.log)
            self.procs.append(proc)
        else:
            self.procs[0].send_signal(signal.SIGUSR2)

    def stop(self) -> None:
        for proc in self.procs:
            core.stop(proc)
        self.procs.clear()


def measure(setup: str, args, workdir: Path, server_ports: list[int], reloads: int) -> tuple[float, int, int]:
    scenario = core.SCENARIOS["l7_keepalive"]
    port = core.free_ports(1)[0]
    config = workdir / "reload.cfg"
    config.write_text(core.proxy_config(scenario, port, server_ports))
    log = workdir / f"{setup.replace(' ', '_')}.log"
    proxy = Proxy(setup, config, log, args.haproxy)
    try:
        first = proxy.start()
        core.wait_http(first, port, core.SMALL_PATH, setup, log)
        time.sleep(0.5)
        run = core.Run(proxy=setup, round=0)
        done = 0
        stop = threading.Event()

        def reloader() -> None:
            nonlocal done
            time.sleep(args.lead)
            for _ in range(reloads):
                if stop.wait(args.interval):
                    return
                proxy.reload()
                done += 1

        thread = threading.Thread(target=reloader, daemon=True)
        thread.start()
        core.run_wrk(scenario, port, args.duration, None, run, log)
        stop.set()
        thread.join()
        return run.rps, run.errors + run.non_2xx, done
    finally:
        proxy.stop()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--reloads", type=int, default=20)
    p.add_argument("--interval", type=float, default=0.5, help="seconds between reloads")
    p.add_argument("--lead", type=float, default=1.0, help="seconds of load before the first")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--setup", action="append", choices=SETUPS)
    p.add_argument("--haproxy", default=core.HAPROXY)
    args = p.parse_args(argv)
    args.duration = args.lead + args.reloads * args.interval + 1.0
    setups = args.setup or list(SETUPS)
    core.raise_nofile_limit()
    workdir = Path(tempfile.mkdtemp(prefix="haply-reload-"))
    server_ports = core.free_ports(2)
    nginx_log = workdir / "nginx.log"
    nginx = core.start([core.NGINX, "-c", str(core.write_backend_files(workdir, server_ports)),
                        "-p", str(workdir)], nginx_log)
    outcomes = {s: Outcome(s) for s in setups}
    try:
        for port in server_ports:
            core.wait_http(nginx, port, core.SMALL_PATH, "nginx", nginx_log)
        for rnd in range(args.rounds):
            for setup in (setups if rnd % 2 == 0 else list(reversed(setups))):
                print(f"bench: round {rnd + 1}: {setup}", file=sys.stderr, flush=True)
                outcome = outcomes[setup]
                rps, _, _ = measure(setup, args, workdir, server_ports, 0)
                outcome.steady.append(rps)
                rps, errors, done = measure(setup, args, workdir, server_ports, args.reloads)
                outcome.reloading.append(rps)
                outcome.errors.append(errors)
                outcome.reloads_done.append(done)
    finally:
        core.stop(nginx)
    command = "python bench/reload.py " + shlex.join(sys.argv[1:] if argv is None else argv)
    print(f"Command: `{command}` ({args.reloads} reloads, one every {args.interval:g} s, "
          f"{args.duration:g} s of wrk per run, {args.rounds} rounds; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())})\n")
    print("| set-up | req/s steady | req/s with reloads | dip | errors per run (all rounds) |")
    print("|---|---:|---:|---:|---|")
    for outcome in outcomes.values():
        steady = core.mean(outcome.steady)
        reloading = core.mean(outcome.reloading)
        dip = (1 - reloading / steady) * 100 if steady else 0.0
        print(f"| {outcome.setup} | {steady:,.0f} | {reloading:,.0f} | {dip:.1f}% | "
              f"{', '.join(map(str, outcome.errors))} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
