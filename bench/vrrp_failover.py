"""VRRP failover and failback times, haply against keepalived 2.2 (not a test).

Two nodes and a client in network namespaces on one bridge. Each node runs a
tiny TCP server that answers with its name on every address, so a client
connection to the VIP says which node holds it. A prober in the client
namespace connects to VIP:8080 every millisecond or two and reports each change.

failover: the master is crashed (haply: SIGKILL; keepalived: its VRRP child and
          parent SIGKILLed, so no priority-0 advertisement is sent) -> the
          client's first answer from the new master. The crash is not at a
          random moment: a sniffer in the client namespace kills the master the
          moment one of its advertisements is on the wire, so every run measures
          the backup's full Master_Down_Interval (3 x advert_int + Skew_Time,
          RFC 3768 6.1 / RFC 5798 6.1) plus the reaction, and a worst case says
          something about the implementation rather than about the phase.
takeover: crash -> the new master's first advertisement on the wire; minus the
          Master_Down_Interval this is how late the backup's timer fired.
reaction: the new master's first advertisement or gratuitous ARP, whichever
          is first on the wire -> the client's first answer from it (addresses
          up, ARP, the prober's own ~1-3 ms sampling included).
failback: the crashed node's VRRP process is started again, and is ready
          (control socket / "Entering BACKUP STATE") -> the client's first
          answer from it. Start-up time is printed apart.
two masters: runs in which the VIP was seen on both live nodes at one sample.

    python bench/vrrp_failover.py [--runs 10] [--only haply|keepalived] [--case v2|v3]
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from tests.support.netns import VIP, Keepalived, Lab, _read_int, lab, wait_for  # noqa: E402

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

SNIFFER = r"""
import os, select, signal, socket, struct, sys, time
ETH_P_ALL, IPPROTO_VRRP = 3, 112
SO_TIMESTAMPNS = 35  # <asm-generic/socket.h>: the kernel's receive time, in a cmsg
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
s.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
s.bind(("eth0", 0))
vip, end = socket.inet_aton(sys.argv[1]), time.monotonic() + float(sys.argv[2])
armed, pending = None, b""
print(f"{time.monotonic():.6f} ready", flush=True)
while time.monotonic() < end:
    ready, _, _ = select.select([s, 0], [], [], 0.5)
    if 0 in ready:  # "arm PID SRC": SIGKILL PID right after SRC's next advertisement
        data = os.read(0, 256)
        if not data:
            break
        pending += data
        while b"\n" in pending:
            line, pending = pending.split(b"\n", 1)
            _, pid, src = line.split()
            armed = (int(pid), socket.inet_aton(src.decode()))
    if s in ready:
        frame, ancillary, _, _ = s.recvmsg(2048, 64)
        # the kernel's arrival time (wall clock) moved to the monotonic clock,
        # so a sniffer scheduled late does not make the packet late
        t = time.monotonic()
        for level, kind, data in ancillary:
            if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS:
                sec, nsec = struct.unpack("qq", data[:16])
                t -= time.time() - (sec + nsec / 1e9)
        if frame[12:14] == b"\x08\x00" and frame[23] == IPPROTO_VRRP:
            src = frame[26:30]
            if armed and src == armed[1]:
                os.kill(armed[0], signal.SIGKILL)
                print(f"{time.monotonic():.6f} killed {armed[0]}", flush=True)
                armed = None
            priority = frame[14 + (frame[14] & 15) * 4 + 2]
            print(f"{t:.6f} adv {socket.inet_ntoa(src)} {priority}", flush=True)
        elif frame[12:14] == b"\x08\x06" and frame[28:32] == vip and frame[38:42] == vip:
            print(f"{t:.6f} garp {frame[22:28].hex()}", flush=True)
"""

PROBER = """
import socket, sys, time
last, end = None, time.monotonic() + float(sys.argv[2])
while time.monotonic() < end:
    try:
        with socket.create_connection((sys.argv[1], %d), timeout=0.002) as s:
            name = s.recv(64).decode().strip() or "-"
    except OSError:
        name = "-"
    if name != last:
        print(f"{time.monotonic():.4f} {name}", flush=True)
        last = name
    time.sleep(0.001)
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


class Sniffer:
    """VRRP advertisements and gratuitous ARPs as the client sees them, and the
    crash of the master timed on its advertisement (see SNIFFER)."""

    def __init__(self, net: Lab, duration: float):
        self.proc = subprocess.Popen(
            ["ip", "netns", "exec", net.client.name, sys.executable, "-c", SNIFFER, VIP,
             str(duration)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.events: list[tuple[float, str, list[str]]] = []
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()
        if wait_for(lambda: self.events, 10) is None:
            raise RuntimeError("sniffer did not start")

    def _read(self) -> None:
        for line in self.proc.stdout:
            t, kind, *rest = line.split()
            self.events.append((float(t), kind, rest))

    def kill_after_advert(self, pid: int, src: str, timeout: float) -> float | None:
        """SIGKILL pid right after src's next advertisement; when it was done."""
        self.proc.stdin.write(f"arm {pid} {src}\n")
        self.proc.stdin.flush()
        return wait_for(lambda: next((t for t, kind, rest in list(self.events)
                                      if kind == "killed" and rest == [str(pid)]), None),
                        timeout, 0.002)

    def first(self, kind: str, after: float, src: str | None = None) -> float | None:
        return next((t for t, k, rest in list(self.events)
                     if k == kind and t >= after and (src is None or rest[0] == src)), None)

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait(5)


def master_down_interval(version: int, advert: float, priority: int) -> float:
    """RFC 3768 6.1 (v2, skew in seconds) and RFC 5798 6.1 (v3, skew scaled by
    the interval): 3 x interval + Skew_Time."""
    skew = (256 - priority) / 256 * (advert if version == 3 else 1.0)
    return 3 * advert + skew


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

        # Keepalived.crash in three steps, so the VRRP child dies on cue: the
        # parent is frozen first (it would respawn the child, and a child whose
        # parent dies shuts down cleanly with a priority-0 advertisement).
        def finish_crash():
            os.kill(k.proc.pid, signal.SIGKILL)
            k.proc.wait(5)
        k.prepare_crash = lambda: os.kill(k.proc.pid, signal.SIGSTOP)
        k.vrrp_pid = lambda: _read_int(k.vrrp_pidfile)
        k.finish_crash = finish_crash
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
    proc.vrrp_pid = lambda: proc.pid  # `ip netns exec` execs: the VRRP process itself
    proc.prepare_crash = lambda: None
    proc.finish_crash = lambda: proc.wait(5)
    return proc


def one_run(kind: str, version: int, advert: float, run: int) -> dict:
    down = 3 * advert + 1
    result: dict = {}
    with lab(2) as net:
        a, b = net.nodes
        for node in net.nodes:
            net.spawn(node, [sys.executable, "-c", SERVER, node.name.rsplit("-", 1)[1]], log_name=f"srv-{node.name}")
        prober = Prober(net, 120)
        sniffer = Sniffer(net, 120)
        watch = Watch(net)
        try:
            high = start(kind, net, 0, 200, version, advert, f"high{run}")
            low = start(kind, net, 1, 100, version, advert, f"low{run}")
            if not wait_for(lambda: high.is_ready() and low.is_ready(), 20):
                raise RuntimeError("nodes not ready")
            if not wait_for(lambda: prober.current() == "n0", down + 10):
                raise RuntimeError("no initial election")
            time.sleep(max(1.0, 3 * advert))
            watch.start()
            # failover: killed the moment its advertisement is on the wire
            watch.excluded.add(a.name)
            high.prepare_crash()
            crashed = sniffer.kill_after_advert(high.vrrp_pid(), a.address, 3 * advert + 5)
            if crashed is None:
                raise RuntimeError("the master was not killed on its advertisement")
            high.finish_crash()
            t = prober.first_answer("n1", crashed, down + 10)
            result["failover"] = None if t is None else t - crashed
            # the sniffer may print a moment after the prober saw the answer
            advert_seen = wait_for(lambda: sniffer.first("adv", crashed, b.address), 2, 0.01)
            garp_seen = wait_for(lambda: sniffer.first("garp", crashed), 2, 0.01)
            if advert_seen is not None:
                result["takeover"] = advert_seen - crashed
                result["late"] = advert_seen - crashed - master_down_interval(version, advert, 100)
            first_sign = min((x for x in (advert_seen, garp_seen) if x is not None), default=None)
            if t is not None and first_sign is not None:
                result["reaction"] = t - first_sign
            if garp_seen is not None and advert_seen is not None:
                result["garp_after_advert"] = garp_seen - advert_seen
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
            sniffer.close()
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
                  f"{summary([r.get('failover') for r in results])}  (Master_Down_Interval "
                  f"{master_down_interval(version, advert, 100) * 1000:.1f} ms)")
            print(f"{label} advert_int {advert:g} {kind:10s} takeover: "
                  f"{summary([r.get('takeover') for r in results])}  (timer late: "
                  f"{summary([r.get('late') for r in results])})")
            print(f"{label} advert_int {advert:g} {kind:10s} reaction: "
                  f"{summary([r.get('reaction') for r in results])}  (GARP after advert: "
                  f"{summary([r.get('garp_after_advert') for r in results])})")
            print(f"{label} advert_int {advert:g} {kind:10s} failback: "
                  f"{summary([r.get('failback') for r in results])}  "
                  f"(start-up {summary([r.get('startup') for r in results])})")
            print(f"{label} advert_int {advert:g} {kind:10s} runs with two masters: "
                  f"{sum(1 for r in results if r['doubles'])} of {len(results)}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
