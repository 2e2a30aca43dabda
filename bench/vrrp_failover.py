"""VRRP failover and failback times, haply against keepalived 2.2 (not a test).

Two nodes and a client in network namespaces on one bridge. Each node runs a
tiny TCP server that answers with its name on every address, so a client
connection to the VIP says which node holds it. A prober in the client
namespace connects to VIP:8080 every few milliseconds and reports each change.

failover: the master is crashed (haply: SIGKILL; keepalived: its VRRP child and
          parent SIGKILLed, so no priority-0 advertisement is sent) -> the
          client's first answer from the new master.
failback: the crashed node's VRRP process is started again, and is ready
          (control socket / "Entering BACKUP STATE") -> the client's first
          answer from it. Start-up time is printed apart.
two masters: runs in which the VIP was seen on both live nodes at one sample.

    python bench/vrrp_failover.py [--runs 10] [--only haply|keepalived] [--case v2|v3]
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import statistics
import subprocess
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from tests.support.netns import VIP, Keepalived, Lab, lab, wait_for  # noqa: E402

PORT = 8080
ENV = {**os.environ, "PYTHONPATH": ROOT}

SERVER = """
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", %d)); s.listen(64)
while True:
    c, _ = s.accept()
    try:
        c.sendall(sys.argv[1].encode() + b"\\n")
    finally:
        c.close()
""" % PORT

PROBER = """
import socket, sys, time
last, end = None, time.monotonic() + float(sys.argv[2])
while time.monotonic() < end:
    try:
        with socket.create_connection((sys.argv[1], %d), timeout=0.005) as s:
            name = s.recv(64).decode().strip() or "-"
    except OSError:
        name = "-"
    if name != last:
        print(f"{time.monotonic():.4f} {name}", flush=True)
        last = name
    time.sleep(0.003)
""" % PORT

CONF = """global_defs {{
    router_id {name}
    vrrp_garp_master_delay 1
}}
vrrp_instance VI_1 {{
    state BACKUP
    interface eth0
    virtual_router_id 71
    priority {priority}
    version {version}
    advert_int {advert}
    virtual_ipaddress {{
        {vip}/24
    }}
}}
"""


class Prober:
    def __init__(self, net: Lab, duration: float):
        self.proc = subprocess.Popen(
            ["ip", "netns", "exec", net.client.name, sys.executable, "-c", PROBER, VIP, str(duration)],
            stdout=subprocess.PIPE, text=True)
        self.events: list[tuple[float, str]] = []
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            t, name = line.split()
            self.events.append((float(t), name))

    def first_answer(self, name: str, after: float, timeout: float) -> float | None:
        def found():
            return next((t for t, n in list(self.events) if n == name and t >= after), None)
        t = wait_for(found, timeout, 0.005)
        if t is None:
            return None
        # if the node already answered before `after`, the change happened earlier
        return t

    def current(self) -> str | None:
        return self.events[-1][1] if self.events else None

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait(5)


class Watch(threading.Thread):
    """Counts samples where both live nodes hold the VIP."""

    def __init__(self, net: Lab):
        super().__init__(daemon=True)
        self.net, self.excluded, self.doubles = net, set(), 0
        self.stop = threading.Event()

    def run(self) -> None:
        end = time.monotonic() + 3600
        while not self.stop.is_set() and time.monotonic() < end:
            nodes = [n for n in self.net.nodes if n.name not in self.excluded]
            if len(self.net.holders(VIP, nodes)) > 1:
                self.doubles += 1
            time.sleep(0.02)


def start(kind: str, net: Lab, index: int, priority: int, version: int, advert: float, name: str):
    text = CONF.format(name=name, priority=priority, version=version, advert=advert, vip=VIP)
    node = net.nodes[index]
    if kind == "keepalived":
        k = Keepalived(net, node, text, name)
        k.is_ready = k.ready
        return k
    path = net.write(f"{name}.conf", text)
    control = os.path.join(net.workdir, f"{name}.sock")
    proc = net.spawn(node, [sys.executable, "-m", "haply.vrrp", "-f", path, "--control", control],
                     log_name=name, env=ENV)
    proc.is_ready = lambda: os.path.exists(control)

    def crash():
        proc.send_signal(signal.SIGKILL)
        proc.wait(5)
    proc.crash = crash
    proc.proc = proc
    return proc


def one_run(kind: str, version: int, advert: float, run: int) -> dict:
    down = 3 * advert + 1
    result: dict = {}
    with lab(2) as net:
        a, b = net.nodes
        for node in net.nodes:
            net.spawn(node, [sys.executable, "-c", SERVER, node.name.rsplit("-", 1)[1]], log_name=f"srv-{node.name}")
        prober = Prober(net, 120)
        watch = Watch(net)
        try:
            high = start(kind, net, 0, 200, version, advert, f"high{run}")
            low = start(kind, net, 1, 100, version, advert, f"low{run}")
            if not wait_for(lambda: high.is_ready() and low.is_ready(), 20):
                raise RuntimeError("nodes not ready")
            if not wait_for(lambda: prober.current() == "n0", down + 10):
                raise RuntimeError("no initial election")
            # crash at a random phase of the advertisement cycle, as a real crash would
            time.sleep(max(1.0, 3 * advert) + random.uniform(0, advert))
            watch.start()
            # failover
            watch.excluded.add(a.name)
            crashed = time.monotonic()
            high.crash()
            t = prober.first_answer("n1", crashed, down + 10)
            result["failover"] = None if t is None else t - crashed
            time.sleep(max(0.5, 3 * advert))
            # failback
            net.run(a, ["ip", "addr", "del", f"{VIP}/24", "dev", "eth0"])  # a crashed keepalived's leftover
            watch.excluded.discard(a.name)
            spawned = time.monotonic()
            again = start(kind, net, 0, 200, version, advert, f"high{run}b")
            wait_for(again.is_ready, 20, 0.005)
            ready = time.monotonic()
            result["startup"] = ready - spawned
            t = prober.first_answer("n0", ready, down + 10)
            result["failback"] = None if t is None else max(0.0, t - ready)
            time.sleep(max(0.5, 3 * advert))
        finally:
            watch.stop.set()
            if watch.is_alive():
                watch.join(5)
            prober.close()
        result["doubles"] = watch.doubles
    return result


def summary(values: list[float | None]) -> str:
    got = [v for v in values if v is not None]
    missing = len(values) - len(got)
    if not got:
        return "no result"
    text = f"median {statistics.median(got) * 1000:7.1f} ms  worst {max(got) * 1000:7.1f} ms"
    return text + (f"  ({missing} runs without an answer)" if missing else "")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--only", choices=("haply", "keepalived"))
    ap.add_argument("--case", choices=("v2", "v3"))
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("needs root (network namespaces)", file=sys.stderr)
        return 2
    cases = [("v2", 2, 1.0), ("v3", 3, 0.1)]
    kinds = [args.only] if args.only else ["haply", "keepalived"]
    for label, version, advert in cases:
        if args.case and args.case != label:
            continue
        for kind in kinds:
            results = [one_run(kind, version, advert, i) for i in range(args.runs)]
            print(f"{label} advert_int {advert:g} {kind:10s} failover: "
                  f"{summary([r.get('failover') for r in results])}")
            print(f"{label} advert_int {advert:g} {kind:10s} failback: "
                  f"{summary([r.get('failback') for r in results])}  "
                  f"(start-up {summary([r.get('startup') for r in results])})")
            print(f"{label} advert_int {advert:g} {kind:10s} runs with two masters: "
                  f"{sum(1 for r in results if r['doubles'])} of {len(results)}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
