"""haply's VRRP process in network namespaces joined by a bridge.

Each test builds its own namespaces (tests/support/netns.py), runs
`python -m haply.vrrp` in them, and watches where the VIP is with netlink
queries from outside. Intervals are short (VRRPv3, 0.1 s) to keep the run quick.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time

import pytest

from haply.vrrp import packet
from tests.support.netns import VIP, VIP6, Lab, available, dump_logs, lab, wait_for

pytestmark = [pytest.mark.root, pytest.mark.skipif(available() is not None, reason=str(available()))]

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ENV = {**os.environ, "PYTHONPATH": ROOT}

CONVERGE = 3.0  # seconds: generous bound for start-up election at advert_int 0.1


def config(priority: int, *, version=3, advert=0.1, vrid=51, state="BACKUP", extra="",
           peers: tuple[str, ...] = (), src: str | None = None, scripts: str = "",
           vip: str = f"{VIP}/24") -> str:
    unicast = ""
    if peers:
        unicast = f"    unicast_src_ip {src}\n    unicast_peer {{\n" + "".join(
            f"        {p}\n" for p in peers) + "    }\n"
    return f"""{scripts}
vrrp_instance VI_1 {{
    state {state}
    interface eth0
    virtual_router_id {vrid}
    priority {priority}
    version {version}
    advert_int {advert}
    virtual_ipaddress {{
        {vip}
    }}
{unicast}{extra}
}}
"""


def start(net: Lab, index: int, text: str, name: str | None = None):
    name = name or f"n{index}"
    path = net.write(f"{name}.conf", text)
    control = os.path.join(net.workdir, f"{name}.sock")
    proc = net.spawn(net.nodes[index], [sys.executable, "-m", "haply.vrrp", "-f", path,
                                        "--control", control], log_name=name, env=ENV)
    proc.control = control  # type: ignore[attr-defined]
    return proc


def snapshot(net: Lab, index: int, proc) -> dict:
    out = net.run(net.nodes[index], [sys.executable, "-c",
                                     f"import json; from haply.vrrp.service import query; "
                                     f"print(json.dumps(query({proc.control!r})))"])
    assert out.returncode == 0, out.stderr
    import json
    return json.loads(out.stdout)[0]


class Sampler:
    """Samples which live nodes hold the VIP, in a thread, until stopped."""

    def __init__(self, net: Lab, interval: float = 0.02, address: str = VIP):
        self.net, self.interval, self.address = net, interval, address
        self.samples: list[tuple[float, tuple[str, ...]]] = []
        self.excluded: set[str] = set()
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        deadline = time.monotonic() + 60  # bounded whatever happens
        while not self._stop.is_set() and time.monotonic() < deadline:
            nodes = [n for n in self.net.nodes if n.name not in self.excluded]
            holders = self.net.holders(self.address, nodes)
            self.samples.append((time.monotonic(), tuple(n.name for n in holders)))
            time.sleep(self.interval)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self.thread.join(5)

    def double_masters(self) -> list:
        return [s for s in self.samples if len(s[1]) > 1]


@pytest.fixture
def net2():
    with lab(2) as net:
        yield net
        # printed only when the test failed (pytest shows captured output then)
        print(dump_logs(net))


def holder(net: Lab, address: str = VIP):
    found = net.holders(address)
    return found[0] if len(found) == 1 else None


def test_election_failover_and_failback(net2):
    net = net2
    procs = [start(net, 0, config(150)), start(net, 1, config(100))]
    with Sampler(net) as sampler:
        assert wait_for(lambda: holder(net) == net.nodes[0], CONVERGE), dump_logs(net)
        time.sleep(0.5)
        assert holder(net) == net.nodes[0]
        snap = snapshot(net, 1, procs[1])
        assert snap["state"] == "BACKUP" and snap["master"] == net.nodes[0].address
        assert snap["received"] > 0 and snap["dropped"] == {}
        # SIGKILL the master: the backup takes over; the guard clears the dead node's VIP
        procs[0].send_signal(signal.SIGKILL)
        killed = time.monotonic()
        assert wait_for(lambda: holder(net) == net.nodes[1], 2.0), dump_logs(net)
        failover = time.monotonic() - killed
        assert failover < 1.0, failover
        assert not net.has_address(net.nodes[0], VIP)
        # failback with preempt
        procs[0] = start(net, 0, config(150), name="n0-again")
        assert wait_for(lambda: holder(net) == net.nodes[0], CONVERGE), dump_logs(net)
        time.sleep(0.3)
    assert holder(net) == net.nodes[0]
    assert sampler.double_masters() == [], sampler.double_masters()[:5]
    snap = snapshot(net, 1, procs[1])
    assert snap["state"] == "BACKUP" and "priority 150" in snap["reason"]


def test_nopreempt_keeps_the_current_master(net2):
    net = net2
    # with nopreempt the first node up keeps the role, so start them in turn
    procs = [start(net, 0, config(150, extra="    nopreempt"))]
    assert wait_for(lambda: holder(net) == net.nodes[0], CONVERGE), dump_logs(net)
    procs.append(start(net, 1, config(100, extra="    nopreempt")))
    time.sleep(0.8)
    assert holder(net) == net.nodes[0]
    net.stop(procs[0])  # graceful: priority 0 then the backup takes over at once
    assert wait_for(lambda: holder(net) == net.nodes[1], 1.0), dump_logs(net)
    start(net, 0, config(150, extra="    nopreempt"), name="n0-again")
    time.sleep(1.5)  # well past Master_Down_Interval (0.36 s)
    assert holder(net) == net.nodes[1]


def test_tracked_script_failure_moves_the_vip(net2, tmp_path):
    net = net2
    flag = tmp_path / "healthy"
    flag.write_text("ok")
    notes = tmp_path / "notes"
    scripts = f"""vrrp_script chk {{
    script "/usr/bin/test -e {flag}"
    interval 0.1
    fall 1
    rise 1
    weight -100
}}"""
    extra = f"""    track_script {{
        chk
    }}
    notify "/bin/sh -c 'echo $1 $2 $3 $4 >> {notes}' notify"
"""
    procs = [start(net, 0, config(150, scripts=scripts, extra=extra)), start(net, 1, config(100))]
    assert wait_for(lambda: holder(net) == net.nodes[0], CONVERGE), dump_logs(net)
    flag.unlink()
    assert wait_for(lambda: holder(net) == net.nodes[1], 2.0), dump_logs(net)
    snap = snapshot(net, 0, procs[0])
    assert snap["state"] == "BACKUP" and snap["priority"] == 50
    flag.write_text("ok")
    assert wait_for(lambda: holder(net) == net.nodes[0], 2.0), dump_logs(net)
    assert wait_for(lambda: notes.exists() and notes.read_text().count("MASTER") >= 2, 2.0)
    lines = notes.read_text().split("\n")
    assert "INSTANCE VI_1 MASTER 150" in lines and "INSTANCE VI_1 BACKUP 50" in lines


def test_unicast_peers(net2):
    net = net2
    a, b = net.nodes
    procs = [start(net, 0, config(150, peers=(b.address,), src=a.address)),
             start(net, 1, config(100, peers=(a.address,), src=b.address))]
    assert wait_for(lambda: holder(net) == a, CONVERGE), dump_logs(net)
    time.sleep(0.5)
    assert holder(net) == a
    assert snapshot(net, 1, procs[1])["master"] == a.address
    procs[0].send_signal(signal.SIGKILL)
    assert wait_for(lambda: holder(net) == b, 2.0), dump_logs(net)


def test_bad_packets_are_dropped_and_counted(net2):
    net = net2
    procs = [start(net, 0, config(150)), start(net, 1, config(100))]
    assert wait_for(lambda: holder(net) == net.nodes[0], CONVERGE), dump_logs(net)
    # From the client namespace, send a batch of malformed VRRP packets to the group.
    good = packet.encode(packet.Advertisement(3, 51, 254, 0.1, (VIP,)), net.client.address)
    wrong_list = packet.encode(packet.Advertisement(3, 51, 254, 0.1, ("192.0.2.99",)),
                               net.client.address)
    bad = [b"", b"\x31", good[:-1], good + bytes(100), bytes([0x41]) + good[1:], bytes([0x32]) + good[1:],
           good[:6] + b"\0\0" + good[8:], wrong_list, os.urandom(1500)]
    code = (
        "import socket, sys\n"
        "s = socket.socket(socket.AF_INET, socket.SOCK_RAW, 112)\n"
        "s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, int(sys.argv[1]))\n"
        f"s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton({net.client.address!r}))\n"
        f"for p in {bad!r}:\n"
        "    s.sendto(p, ('224.0.0.18', 0))\n"
    )
    assert net.run(net.client, [sys.executable, "-c", code, "255"]).returncode == 0
    # a perfectly good advertisement but TTL 1 (not from this link): must be dropped too
    ttl_code = code.replace(f"{bad!r}", f"[{good!r}]")
    assert net.run(net.client, [sys.executable, "-c", ttl_code, "1"]).returncode == 0
    time.sleep(0.5)
    assert all(p.poll() is None for p in procs), dump_logs(net)
    assert holder(net) == net.nodes[0]  # a priority-254 forgery with TTL 1 changed nothing
    dropped = snapshot(net, 1, procs[1])["dropped"]
    for reason in ("short", "truncated", "length", "oversized", "version", "type", "checksum",
                   "address-list", "ttl"):
        assert dropped.get(reason, 0) >= 1, dropped


def test_track_proxy_pid_death_is_a_fault(net2, tmp_path):
    net = net2
    proxy = net.spawn(net.nodes[0], ["sleep", "60"], log_name="proxy")
    pidfile = tmp_path / "proxy.pid"
    pidfile.write_text(str(proxy.pid))
    procs = [start(net, 0, config(150, extra=f"    track_proxy pidfile {pidfile} interval 0.1")),
             start(net, 1, config(100))]
    assert wait_for(lambda: holder(net) == net.nodes[0], CONVERGE), dump_logs(net)
    proxy.kill()
    killed = time.monotonic()
    assert wait_for(lambda: holder(net) == net.nodes[1], 1.0), dump_logs(net)
    # FAULT sends priority 0: takeover within Skew_Time, far below Master_Down_Interval
    assert time.monotonic() - killed < 0.3
    assert wait_for(lambda: snapshot(net, 0, procs[0])["state"] == "FAULT", 1.0), dump_logs(net)


def test_graceful_stop_hands_over_and_runs_notify_stop(net2, tmp_path):
    net = net2
    marker = tmp_path / "stopped"
    procs = [start(net, 0, config(150, extra=f"    notify_stop \"/usr/bin/touch {marker}\"")),
             start(net, 1, config(100))]
    assert wait_for(lambda: holder(net) == net.nodes[0], CONVERGE), dump_logs(net)
    stopped = time.monotonic()
    net.stop(procs[0])
    assert procs[0].returncode == 0, dump_logs(net)
    assert wait_for(lambda: holder(net) == net.nodes[1], 1.0)
    assert time.monotonic() - stopped < 0.5
    assert marker.exists()
    assert not net.has_address(net.nodes[0], VIP)


def test_split_brain_heals_at_once_and_reruns_notify(net2, tmp_path):
    net = net2
    a, b = net.nodes
    notes = tmp_path / "a-master"
    net.isolate(a, True)
    net.isolate(b, True)  # a partition: both sides elect themselves
    advert = 0.5  # long enough that healing "at once" is told apart from the next tick
    procs = [start(net, 0, config(150, advert=advert,
                                  extra=f"    notify_master \"/bin/sh -c 'echo x >> {notes}'\"")),
             start(net, 1, config(100, advert=advert))]
    assert wait_for(lambda: len(net.holders(VIP)) == 2, CONVERGE + 3), dump_logs(net)
    assert wait_for(lambda: notes.exists() and notes.read_text().count("x") == 1, 2.0)
    net.isolate(a, False)
    healed = time.monotonic()
    net.isolate(b, False)
    assert wait_for(lambda: holder(net) == a, 2.0), dump_logs(net)
    took = time.monotonic() - healed
    # the first advertisement either side hears ends it: within one interval, plus margin
    assert took < advert + 0.3, took
    # the winner re-announced itself: GARP again and notify_master run again
    assert wait_for(lambda: notes.read_text().count("x") == 2, 2.0), dump_logs(net)
    snap = snapshot(net, 0, procs[0])
    # which of the two heard the other first decides the path; both end here
    assert snap["state"] == "MASTER" and snap["reason"].startswith("answered "), snap["reason"]
    assert snapshot(net, 1, procs[1])["state"] == "BACKUP"


VIP2 = "192.0.2.101"


def two_instances(priority: int, track: str = "") -> str:
    block = ""
    for name, vrid, vip, extra in (("VI_1", 51, VIP, ""), ("VI_2", 52, VIP2, track)):
        block += f"""vrrp_instance {name} {{
    interface eth0
    virtual_router_id {vrid}
    priority {priority}
    version 3
    advert_int 0.1
    virtual_ipaddress {{
        {vip}/24
    }}
{extra}
}}
"""
    return block + "vrrp_sync_group G {\n    group {\n        VI_1\n        VI_2\n    }\n}\n"


def test_track_interface_fault_takes_the_sync_group_along(net2):
    net = net2
    a, b = net.nodes
    # a second link of node a, as a veth pair inside its namespace
    assert net.run(a, ["ip", "link", "add", "uplink", "type", "veth", "peer", "name", "uplink-peer"]
                   ).returncode == 0
    net.run(a, ["ip", "link", "set", "uplink-peer", "up"])
    net.run(a, ["ip", "link", "set", "uplink", "up"])
    track = "    track_interface {\n        uplink\n    }"
    procs = [start(net, 0, two_instances(150, track)), start(net, 1, two_instances(100))]
    assert wait_for(lambda: net.holders(VIP) == [a] and net.holders(VIP2) == [a], CONVERGE), \
        dump_logs(net)
    net.run(a, ["ip", "link", "set", "uplink-peer", "down"])  # uplink loses its carrier
    # VI_2 tracks the link and goes to FAULT; VI_1 follows it through the sync group
    assert wait_for(lambda: net.holders(VIP) == [b] and net.holders(VIP2) == [b], 2.0), dump_logs(net)
    out = net.run(a, [sys.executable, "-c", f"import json; from haply.vrrp.service import query; "
                                            f"print(json.dumps(query({procs[0].control!r})))"])
    import json
    snaps = {s["name"]: s for s in json.loads(out.stdout)}
    assert snaps["VI_2"]["state"] == "FAULT" and snaps["VI_2"]["faults"] == ["interface:uplink"]
    assert snaps["VI_1"]["state"] == "FAULT" and snaps["VI_1"]["faults"] == ["sync_group:G"]
    net.run(a, ["ip", "link", "set", "uplink-peer", "up"])
    assert wait_for(lambda: net.holders(VIP) == [a] and net.holders(VIP2) == [a], 3.0), dump_logs(net)


def mac_of(net: Lab, node) -> str:
    out = net.run(node, ["cat", "/sys/class/net/eth0/address"]).stdout.strip()
    return out.lower()


def neighbour_mac(net: Lab, node, address: str) -> str | None:
    out = net.run(node, ["ip", "neigh", "show", address, "dev", "eth0"]).stdout.split()
    return out[out.index("lladdr") + 1].lower() if "lladdr" in out else None


def test_gratuitous_arp_moves_the_clients_arp_entry(net2):
    net = net2
    a, b = net.nodes
    procs = [start(net, 0, config(150)), start(net, 1, config(100))]
    assert wait_for(lambda: holder(net) == a, CONVERGE), dump_logs(net)
    # one UDP datagram makes the client resolve the VIP (no ping on minimal systems)
    send = f"import socket; socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b'x', ({VIP!r}, 9))"
    assert net.run(net.client, [sys.executable, "-c", send]).returncode == 0
    assert wait_for(lambda: neighbour_mac(net, net.client, VIP) == mac_of(net, a), 2.0)
    procs[0].send_signal(signal.SIGKILL)
    # the client sends nothing: only b's gratuitous ARP can change its cache
    assert wait_for(lambda: neighbour_mac(net, net.client, VIP) == mac_of(net, b), 2.0), \
        (neighbour_mac(net, net.client, VIP), mac_of(net, b), dump_logs(net))


def test_reload_keeps_unchanged_instances_and_starts_new_ones(net2):
    net = net2
    a, b = net.nodes
    procs = [start(net, 0, config(150)), start(net, 1, config(100))]
    assert wait_for(lambda: holder(net) == a, CONVERGE), dump_logs(net)
    before = snapshot(net, 0, procs[0])
    # same VI_1 further down the file, plus a new instance
    net.write("n0.conf", "# reloaded\n\n" + config(150) + config(150, vrid=52).replace(
        "VI_1", "VI_2").replace(VIP, VIP2))
    procs[0].send_signal(signal.SIGHUP)
    assert wait_for(lambda: net.holders(VIP2) == [a], CONVERGE), dump_logs(net)
    out = net.run(a, [sys.executable, "-c", f"import json; from haply.vrrp.service import query; "
                                            f"print(json.dumps(query({procs[0].control!r})))"])
    import json
    snaps = {s["name"]: s for s in json.loads(out.stdout)}
    vi1 = snaps["VI_1"]
    assert vi1["state"] == "MASTER" and vi1["transitions"] == before["transitions"]
    assert vi1["last_transition"] == pytest.approx(before["last_transition"], abs=0.01)
    assert holder(net) == a  # never handed over
    # a broken file is refused and the running configuration stays
    net.write("n0.conf", "vrrp_instance X {\n bogus\n}\n")
    procs[0].send_signal(signal.SIGHUP)
    time.sleep(0.5)
    assert procs[0].poll() is None and net.holders(VIP2) == [a] and holder(net) == a
    # SIGKILL now: the guard learnt the reloaded address list and removes both
    procs[0].send_signal(signal.SIGKILL)
    assert wait_for(lambda: not net.has_address(a, VIP) and not net.has_address(a, VIP2), 2.0)


BURN_SECONDS = 2.5  # bounded: long enough for 25 advertisement intervals


def test_busy_cpus_on_the_master_cause_no_false_failover(net2):
    """A proxy at 100% on every core of the master must not delay its adverts
    (own process, real-time priority): the backup never takes over."""
    net = net2
    a, b = net.nodes
    procs = [start(net, 0, config(150)), start(net, 1, config(100))]
    assert wait_for(lambda: holder(net) == a, CONVERGE), dump_logs(net)
    time.sleep(0.3)
    before = snapshot(net, 1, procs[1])["transitions"]
    burn = f"import time\nend = time.monotonic() + {BURN_SECONDS}\nwhile time.monotonic() < end: pass\n"
    burners = [net.spawn(a, [sys.executable, "-c", burn], log_name=f"burn{i}")
               for i in range(2 * (os.cpu_count() or 2))]
    with Sampler(net) as sampler:
        for p in burners:
            p.wait(BURN_SECONDS + 10)
    assert snapshot(net, 1, procs[1])["transitions"] == before, dump_logs(net)
    assert all(s[1] == (a.name,) for s in sampler.samples), dump_logs(net)


def test_ipv6_vip_elects_fails_over_and_announces_itself(net2):
    """VRRPv3 over IPv6 (RFC 5798 5.1.2): advertisements from the link-local
    address to ff02::12, the VIP added without duplicate address detection, and
    an unsolicited Neighbor Advertisement that moves the client's neighbour
    entry without the client asking."""
    net = net2
    a, b = net.nodes
    ipv6 = f"{VIP6}/64"
    procs = [start(net, 0, config(150, vip=ipv6)), start(net, 1, config(100, vip=ipv6))]
    with Sampler(net, address=VIP6) as sampler:
        assert wait_for(lambda: holder(net, VIP6) == a, CONVERGE), dump_logs(net)
        time.sleep(0.5)
        assert holder(net, VIP6) == a
        snap = snapshot(net, 1, procs[1])
        assert snap["state"] == "BACKUP" and snap["master"] == a.link_local, snap
        assert snap["source"] == b.link_local and snap["version"] == 3
        assert snap["received"] > 0 and snap["dropped"] == {}, snap
        # The VIP answers at once: no tentative phase (a UDP echo would need a
        # server; a TCP connect to a closed port gets its RST from the holder).
        probe = (f"import socket; s = socket.socket(socket.AF_INET6); s.settimeout(2)\n"
                 f"try: s.connect(({VIP6!r}, 9))\nexcept ConnectionRefusedError: print('refused')")
        assert net.run(net.client, [sys.executable, "-c", probe]).stdout.strip() == "refused"
        assert wait_for(lambda: neighbour_mac(net, net.client, VIP6) == mac_of(net, a), 2.0)
        procs[0].send_signal(signal.SIGKILL)
        killed = time.monotonic()
        assert wait_for(lambda: holder(net, VIP6) == b, 2.0), dump_logs(net)
        assert time.monotonic() - killed < 1.0
        # The client sent nothing: only b's Neighbor Advertisement changes its cache.
        assert wait_for(lambda: neighbour_mac(net, net.client, VIP6) == mac_of(net, b), 2.0), \
            (neighbour_mac(net, net.client, VIP6), mac_of(net, b), dump_logs(net))
        procs[0] = start(net, 0, config(150, vip=ipv6), name="n0-again")
        assert wait_for(lambda: holder(net, VIP6) == a, CONVERGE), dump_logs(net)
        time.sleep(0.3)
    assert holder(net, VIP6) == a
    assert sampler.double_masters() == [], sampler.double_masters()[:5]


def test_ipv6_unicast_peers(net2):
    net = net2
    a, b = net.nodes
    ipv6 = f"{VIP6}/64"
    procs = [start(net, 0, config(150, vip=ipv6, peers=(b.address6,), src=a.address6)),
             start(net, 1, config(100, vip=ipv6, peers=(a.address6,), src=b.address6))]
    assert wait_for(lambda: holder(net, VIP6) == a, CONVERGE), dump_logs(net)
    snap = snapshot(net, 1, procs[1])
    assert snap["state"] == "BACKUP" and snap["master"] == a.address6, snap
    procs[0].send_signal(signal.SIGKILL)
    assert wait_for(lambda: holder(net, VIP6) == b, 2.0), dump_logs(net)


def test_bad_ipv6_packets_are_dropped_and_counted(net2):
    net = net2
    ipv6 = f"{VIP6}/64"
    procs = [start(net, 0, config(150, vip=ipv6)), start(net, 1, config(100, vip=ipv6))]
    assert wait_for(lambda: holder(net, VIP6) == net.nodes[0], CONVERGE), dump_logs(net)
    client = net.client.link_local
    good = packet.encode(packet.Advertisement(3, 51, 254, 0.1, (VIP6,)), client)
    wrong_list = packet.encode(packet.Advertisement(3, 51, 254, 0.1, ("2001:db8::99",)), client)
    v2 = packet.encode(packet.Advertisement(2, 51, 254, 1, ("192.0.2.100",)))
    bad = [b"", b"\x31", good[:-1], good + bytes(16), bytes([0x41]) + good[1:], v2,
           good[:6] + b"\0\0" + good[8:], wrong_list, os.urandom(4200)]
    code = (
        "import socket, sys\n"
        "s = socket.socket(socket.AF_INET6, socket.SOCK_RAW, 112)\n"
        "s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, int(sys.argv[1]))\n"
        "index = socket.if_nametoindex('eth0')\n"
        f"for p in {bad!r}:\n"
        "    s.sendto(p, ('ff02::12', 0, 0, index))\n"
    )
    assert net.run(net.client, [sys.executable, "-c", code, "255"]).returncode == 0
    # A good advertisement from off the link (hop limit 1): dropped too.
    hop_code = code.replace(f"{bad!r}", f"[{good!r}]")
    assert net.run(net.client, [sys.executable, "-c", hop_code, "1"]).returncode == 0
    time.sleep(0.5)
    assert all(p.poll() is None for p in procs), dump_logs(net)
    assert holder(net, VIP6) == net.nodes[0]  # the priority-254 forgeries changed nothing
    dropped = snapshot(net, 1, procs[1])["dropped"]
    for reason in ("short", "truncated", "length", "oversized", "version", "checksum",
                   "address-list", "ttl"):
        assert dropped.get(reason, 0) >= 1, dropped
