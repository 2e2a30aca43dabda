"""The proxy dies, VRRP lives: how long until the VIP answers from the other node.

Two load-balancer nodes and a client in network namespaces. On each node an API
server answers with the node's name, behind a proxy bound to the VIP:

- haply:   `haply -f haproxy.cfg -f keepalived.conf` (proxy + its VRRP child, which
           tracks the proxy process through a pidfd);
- classic: HAProxy 2.6 + keepalived 2.2 with the seeds' health script,
           `vrrp_script { script "killall -0 haproxy"; interval 2; weight 10 }`.

The proxy process is SIGKILLed on the master; the time is from the kill to the
client's first answer from the other node. Both use VRRPv3 with advert_int 0.1,
so the difference is how each notices the dead proxy. In a shared PID namespace
`killall -0 haproxy` would find the other node's HAProxy, so each node runs
HAProxy under its own name (a symlink `haproxy-n0`), the seed's check in spirit.

    python bench/proxy_crash.py [--runs 10] [--only haply|classic]
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import statistics
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "bench"))

from tests.support.netns import VIP, Keepalived, lab, wait_for  # noqa: E402
from vrrp_failover import Prober, Watch  # noqa: E402

API_PORT = 8000
VIP_PORT = 8080  # what vrrp_failover's prober connects to
ENV = {**os.environ, "PYTHONPATH": ROOT}

API = """
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", %d)); s.listen(64)
while True:
    c, _ = s.accept()
    try:
        c.sendall(sys.argv[1].encode() + b"\\n")
    finally:
        c.close()
""" % API_PORT

HAPROXY_CFG = f"""global
    maxconn 200
defaults
    mode tcp
    timeout connect 1s
    timeout client 5s
    timeout server 5s
listen api
    bind {VIP}:{VIP_PORT}
    server local 127.0.0.1:{API_PORT}
"""

VRRP = """global_defs {{
    router_id {name}
    vrrp_version 3
}}
{script}
vrrp_instance VI_1 {{
    state BACKUP
    interface eth0
    virtual_router_id 72
    priority {priority}
    advert_int 0.1
    virtual_ipaddress {{
        {vip}/24
    }}
    {track}
}}
"""

SEED_SCRIPT = """vrrp_script haproxy-check {{
    script "/usr/bin/killall -0 {process}"
    interval 2
    weight 10
}}"""


def start_haply(net, index: int, priority: int, name: str):
    node = net.nodes[index]
    cfg = net.write(f"{name}.haproxy.cfg", HAPROXY_CFG)
    conf = net.write(f"{name}.keepalived.conf",
                     VRRP.format(name=name, script="", priority=priority, vip=VIP, track=""))
    proc = net.spawn(node, [sys.executable, "-m", "haply", "-db", "-f", cfg, "-f", conf],
                     log_name=name, env=ENV)
    return lambda: crash(proc)


def start_classic(net, index: int, priority: int, name: str, bindir: str):
    node = net.nodes[index]
    process = f"haproxy-{node.name.rsplit('-', 1)[1]}"
    binary = os.path.join(bindir, process)
    if not os.path.exists(binary):
        os.symlink("/usr/sbin/haproxy", binary)
    # HAProxy binds the VIP before keepalived adds it, as the guides set up.
    net.run(node, ["sysctl", "-qw", "net.ipv4.ip_nonlocal_bind=1"])
    cfg = net.write(f"{name}.haproxy.cfg", HAPROXY_CFG)
    proc = net.spawn(node, [binary, "-db", "-f", cfg], log_name=f"{name}-haproxy")
    Keepalived(net, node, VRRP.format(
        name=name, script=SEED_SCRIPT.format(process=process), priority=priority, vip=VIP,
        track="track_script {\n        haproxy-check\n    }"), name)
    return lambda: crash(proc)


def crash(proc) -> None:
    """SIGKILL, and reap at once as init would: a zombie still answers killall -0."""
    proc.kill()
    proc.wait(5)


def one_run(kind: str, run: int, bindir: str) -> dict:
    with lab(2) as net:
        a, b = net.nodes
        for node in net.nodes:
            net.spawn(node, [sys.executable, "-c", API, node.name.rsplit("-", 1)[1]],
                      log_name=f"api-{node.name}")
        prober = Prober(net, 120)
        watch = Watch(net)
        try:
            if kind == "haply":
                kill = start_haply(net, 0, 150, f"a{run}")
                start_haply(net, 1, 145, f"b{run}")
            else:
                kill = start_classic(net, 0, 150, f"a{run}", bindir)
                start_classic(net, 1, 145, f"b{run}", bindir)
            if not wait_for(lambda: prober.current() == "n0", 30):
                raise RuntimeError(f"no initial answer from n0 ({kind})")
            # the seeds' script runs every 2 s: crash at a random phase of it
            time.sleep(2.5 + random.uniform(0, 2))
            watch.start()
            killed = time.monotonic()
            kill()
            t = prober.first_answer("n1", killed, 15)
            return {"moved": None if t is None else t - killed, "doubles": watch.doubles}
        finally:
            watch.stop.set()
            if watch.is_alive():
                watch.join(5)
            prober.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--only", choices=("haply", "classic"))
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("needs root (network namespaces)", file=sys.stderr)
        return 2
    bindir = tempfile.mkdtemp(prefix="proxy-crash-bin-")
    for kind in [args.only] if args.only else ["haply", "classic"]:
        results = [one_run(kind, i, bindir) for i in range(args.runs)]
        moved = [r["moved"] for r in results if r["moved"] is not None]
        missing = len(results) - len(moved)
        print(f"{kind:8s} proxy SIGKILL -> VIP answers from the other node: "
              f"median {statistics.median(moved) * 1000:7.1f} ms, "
              f"worst {max(moved) * 1000:7.1f} ms over {len(moved)} runs"
              + (f" ({missing} without an answer)" if missing else "")
              + f"; runs with two masters: {sum(1 for r in results if r['doubles'])}",
              flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
