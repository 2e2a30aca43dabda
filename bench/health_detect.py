"""Health checks, haply beside HAProxy 2.6: detection and recovery time, and the
CPU that many checked servers cost.

    python bench/health_detect.py [--runs 20] [--inter-ms 100] [--rise 2] [--fall 3]
                                  [--servers 1000] [--cpu-inter-ms 2000] [--cpu-seconds 5]

Part 1 runs HAProxy and haply's HealthChecker on the same configuration against
one clustercheck-style HTTP responder, flips it to 503 and back `--runs` times,
and reports how long each took to mark the server DOWN and UP again (median and
worst). The bound HAProxy's manual implies is fall*inter (+ one inter for
where in its cycle the flip landed) and rise*inter.

Part 2 checks `--servers` servers every `--cpu-inter-ms` with plain TCP checks
(backends in a separate process) and reports each program's CPU over a window
after the first checks have spread out.

Not a test: it prints figures. Everything listens on 127.0.0.1 and stops by
itself.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import uvloop  # noqa: E402

from haply.config import load  # noqa: E402
from haply.health import HealthChecker  # noqa: E402
from haply.runtime.registry import DOWN, UP, Registry  # noqa: E402
from tests.support.health_backends import Backend, BackendThread, ClusterCheck  # noqa: E402
from tests.support.health_oracle import HAProxyOracle, process_cpu_seconds  # noqa: E402

ACCEPTOR = r"""
import asyncio
async def main():
    async def handle(reader, writer):
        writer.close()
    servers = [await asyncio.start_server(handle, "127.0.0.1", 0, backlog=1024) for _ in range(8)]
    print(" ".join(str(s.sockets[0].getsockname()[1]) for s in servers), flush=True)
    await asyncio.sleep(120)
asyncio.run(main())
"""


def registry_for(config) -> Registry:
    registry = Registry()
    for proxy in config.backends:
        registry.add_backend(proxy)
    return registry


def load_text(text: str):
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "haproxy.cfg")
        with open(path, "w") as f:
            f.write(text)
        return load([path]).config


async def _until(oracle, state, want_up: bool, timeout: float) -> tuple[float, float]:
    loop = asyncio.get_running_loop()
    start = loop.time()
    ours = theirs = None
    want = UP if want_up else DOWN
    while ours is None or theirs is None:
        if loop.time() - start > timeout:
            raise RuntimeError(f"not {want} within {timeout}s")
        if ours is None and state.operational == want:
            ours = loop.time() - start
        if theirs is None:
            up = await loop.run_in_executor(None, oracle.is_up, "b", "s1")
            if up == want_up:
                theirs = loop.time() - start
        await asyncio.sleep(0.003)
    return ours, theirs


def detection(runs: int, inter_ms: int, rise: int, fall: int) -> None:
    thread = BackendThread()
    responder = ClusterCheck(synced=True)
    backend = Backend(thread, responder).start()
    text = (f"global\n    maxconn 100\n\ndefaults\n    mode http\n    timeout connect 1s\n"
            f"    timeout check 500ms\n\nbackend b\n    option httpchk\n"
            f"    server s1 127.0.0.1:{backend.port} check inter {inter_ms} rise {rise} fall {fall}\n")
    config = load_text(text)
    registry = registry_for(config)
    state = registry.get("b", "s1")
    oracle = HAProxyOracle(text).start()
    inter = inter_ms / 1000
    results = {"haply": ([], []), "HAProxy": ([], [])}

    async def main():
        checker = HealthChecker(registry, config, asyncio.get_running_loop())
        checker.start()
        try:
            await asyncio.sleep(max(1.0, (rise + fall) * inter * 2))
            rng = random.Random(runs)
            for _ in range(runs):
                # flip at a random point of both programs' check cycles, or
                # each run would start right after the previous transition's
                # check and measure the phase, not the detection
                await asyncio.sleep(rng.uniform(0, inter))
                responder.synced = False
                ours, theirs = await _until(oracle, state, False, fall * inter * 4 + 2)
                results["haply"][0].append(ours)
                results["HAProxy"][0].append(theirs)
                await asyncio.sleep(rng.uniform(0, inter))
                responder.synced = True
                ours, theirs = await _until(oracle, state, True, rise * inter * 4 + 2)
                results["haply"][1].append(ours)
                results["HAProxy"][1].append(theirs)
                # let both reach full health again (UP sets it to the top)
                await asyncio.sleep(inter)
        finally:
            await checker.stop()

    try:
        uvloop.run(main())
    finally:
        oracle.stop()
        thread.close()
    print(f"detection and recovery, inter {inter_ms}ms rise {rise} fall {fall}, {runs} runs "
          f"(bounds: down <= {(fall + 1) * inter_ms}ms, up <= {(rise + 1) * inter_ms}ms)")
    for name, (downs, ups) in results.items():
        print(f"  {name:8s} down median {statistics.median(downs)*1000:6.0f}ms "
              f"worst {max(downs)*1000:6.0f}ms | up median {statistics.median(ups)*1000:6.0f}ms "
              f"worst {max(ups)*1000:6.0f}ms")


def cpu(servers: int, inter_ms: int, seconds: float) -> None:
    proc = subprocess.Popen([sys.executable, "-c", ACCEPTOR], stdout=subprocess.PIPE,
                            stdin=subprocess.DEVNULL, text=True)
    try:
        ports = [int(p) for p in proc.stdout.readline().split()]
        lines = [f"    server s{i} 127.0.0.1:{ports[i % len(ports)]} check inter {inter_ms}"
                 for i in range(servers)]
        text = ("global\n    maxconn 100\n\ndefaults\n    timeout connect 1s\n"
                "    timeout check 1s\n\nbackend big\n" + "\n".join(lines) + "\n")
        config = load_text(text)
        registry = registry_for(config)
        oracle = HAProxyOracle(text).start()
        try:
            async def main():
                loop = asyncio.get_running_loop()
                checker = HealthChecker(registry, config, loop)
                checker.start()
                lags = []
                try:
                    await asyncio.sleep(inter_ms / 1000 + 0.5)  # first checks spread out
                    ours0, theirs0 = time.process_time(), process_cpu_seconds(oracle.pid())
                    start = loop.time()
                    while loop.time() - start < seconds:
                        before = loop.time()
                        await asyncio.sleep(0.02)
                        lags.append(loop.time() - before - 0.02)
                    wall = loop.time() - start
                    ours = time.process_time() - ours0
                    theirs = process_cpu_seconds(oracle.pid()) - theirs0
                    return ours / wall, theirs / wall, lags
                finally:
                    await checker.stop()

            ours, theirs, lags = uvloop.run(main())
        finally:
            oracle.stop()
    finally:
        proc.kill()
        proc.wait(5)
    lags.sort()
    checked = sum(1 for s in registry.servers("big") if s.check_status == "L4OK")
    print(f"CPU for {servers} servers checked every {inter_ms}ms ({checked} passing), "
          f"{seconds:.0f}s window:")
    print(f"  haply    {ours*100:5.1f}% of one core, loop lag p50 "
          f"{statistics.median(lags)*1000:.1f}ms p99 {lags[int(len(lags)*0.99)-1]*1000:.1f}ms "
          f"max {lags[-1]*1000:.1f}ms")
    print(f"  HAProxy  {theirs*100:5.1f}% of one core")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--inter-ms", type=int, default=100)
    parser.add_argument("--rise", type=int, default=2)
    parser.add_argument("--fall", type=int, default=3)
    parser.add_argument("--servers", type=int, default=1000)
    parser.add_argument("--cpu-inter-ms", type=int, default=2000)
    parser.add_argument("--cpu-seconds", type=float, default=5.0)
    args = parser.parse_args()
    detection(args.runs, args.inter_ms, args.rise, args.fall)
    cpu(args.servers, args.cpu_inter_ms, args.cpu_seconds)


if __name__ == "__main__":
    main()
