"""haply and the real keepalived 2.2 in one VRRP group.

Both nodes read the same keepalived.conf text (only priority and router_id
differ). For VRRPv2 (advert_int 1) and VRRPv3 (advert_int 0.1, multicast and unicast),
in both directions, and for VRRPv3 over IPv6 (multicast to ff02::12 from the
link-local addresses, and unicast): the higher-priority node wins the election, the other takes over
when it crashes, and the first takes the address back when it returns. At every
sample the VIP is on at most one live node.
"""

from __future__ import annotations

import os
import signal
import sys
import time

import pytest

from tests.integration.test_vrrp_netns import ENV, Sampler, holder, snapshot
from tests.support.netns import (KEEPALIVED, VIP, VIP6, Keepalived, available, dump_logs, lab,
                                 wait_for)

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(available() is not None, reason=str(available())),
    pytest.mark.skipif(not os.path.exists(KEEPALIVED), reason="needs keepalived (Debian package)"),
]

CONF = """global_defs {{
    router_id {router_id}
    vrrp_garp_master_delay 1
}}
vrrp_instance VI_1 {{
    state BACKUP
    interface eth0
    virtual_router_id 61
    priority {priority}
    version {version}
    advert_int {advert}
{auth}{unicast}    virtual_ipaddress {{
        {vip}
    }}
}}
"""


def conf(router_id: str, priority: int, version: int, advert: float,
         unicast: tuple[str, str] | None = None, ipv6: bool = False) -> str:
    auth = "    authentication {\n        auth_type PASS\n        auth_pass haply1\n    }\n" \
        if version == 2 else ""
    uni = ""
    if unicast:
        uni = f"    unicast_src_ip {unicast[0]}\n    unicast_peer {{\n        {unicast[1]}\n    }}\n"
    return CONF.format(router_id=router_id, priority=priority, version=version, advert=advert,
                       vip=f"{VIP6}/64" if ipv6 else f"{VIP}/24", auth=auth, unicast=uni)


COMPLAINT_WORDS = ("invalid", "mismatch", "not present", "wrong", "bad ", "error", "discard")


def complaints(log: str) -> list[str]:
    """keepalived's log lines about packets it refused (a lower-priority advert
    it ignores is not a complaint: that is the RFC's preemption rule)."""
    return [line for line in log.splitlines()
            if any(w in line.lower() for w in COMPLAINT_WORDS) and "lower priority" not in line]


class HaplyNode:
    def __init__(self, net, index: int, text: str, name: str):
        self.net, self.index, self.name = net, index, name
        path = net.write(f"{name}.conf", text)
        self.control = os.path.join(net.workdir, f"{name}.sock")
        self.proc = net.spawn(net.nodes[index], [sys.executable, "-m", "haply.vrrp", "-f", path,
                                                 "--control", self.control], log_name=name, env=ENV)
        self.proc.control = self.control

    def ready(self) -> bool:
        return os.path.exists(self.control)

    def crash(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(5)

    def snapshot(self) -> dict:
        return snapshot(self.net, self.index, self.proc)


def start_node(kind: str, net, index: int, priority: int, version: int, advert: float, name: str,
               unicast: bool = False, ipv6: bool = False):
    me, other = net.nodes[index], net.nodes[1 - index]
    pair = (me.address6, other.address6) if ipv6 else (me.address, other.address)
    text = conf(name, priority, version, advert, pair if unicast else None, ipv6)
    if kind == "haply":
        return HaplyNode(net, index, text, name)
    return Keepalived(net, net.nodes[index], text, name)


CASES = [
    pytest.param(2, 1.0, "haply", "keepalived", False, False, id="v2-haply-master"),
    pytest.param(2, 1.0, "keepalived", "haply", False, False, id="v2-keepalived-master"),
    pytest.param(3, 0.1, "haply", "keepalived", False, False, id="v3-haply-master"),
    pytest.param(3, 0.1, "keepalived", "haply", False, False, id="v3-keepalived-master"),
    pytest.param(3, 0.1, "haply", "keepalived", True, False, id="v3-unicast-haply-master"),
    pytest.param(3, 0.1, "keepalived", "haply", True, False, id="v3-unicast-keepalived-master"),
    pytest.param(3, 0.1, "haply", "keepalived", False, True, id="v3-ipv6-haply-master"),
    pytest.param(3, 0.1, "keepalived", "haply", False, True, id="v3-ipv6-keepalived-master"),
    pytest.param(3, 0.1, "haply", "keepalived", True, True, id="v3-ipv6-unicast-haply-master"),
    pytest.param(3, 0.1, "keepalived", "haply", True, True,
                 id="v3-ipv6-unicast-keepalived-master"),
]


@pytest.mark.parametrize("version, advert, high_kind, low_kind, unicast, ipv6", CASES)
def test_mixed_pair_elects_fails_over_and_fails_back(version, advert, high_kind, low_kind, unicast,
                                                     ipv6):
    down = 3 * advert + advert  # Master_Down_Interval plus slack (skew < one interval)
    vip = VIP6 if ipv6 else VIP
    with lab(2) as net:
        try:
            high_node, low_node = net.nodes
            high = start_node(high_kind, net, 0, 200, version, advert, "high", unicast, ipv6)
            low = start_node(low_kind, net, 1, 100, version, advert, "low", unicast, ipv6)
            assert wait_for(lambda: high.ready() and low.ready(), 15), dump_logs(net)
            with Sampler(net, address=vip) as sampler:
                # election: the higher priority wins whoever started first
                assert wait_for(lambda: holder(net, vip) == high_node, down + 3), dump_logs(net)
                time.sleep(3 * advert)
                assert holder(net, vip) == high_node
                if low_kind == "haply":
                    snap = low.snapshot()
                    # IPv6 multicast advertisements come from the link-local address.
                    source = (high_node.address if not ipv6 else
                              high_node.address6 if unicast else high_node.link_local)
                    assert snap["state"] == "BACKUP" and snap["master"] == source, snap
                    assert snap["received"] >= 2 and not snap["dropped"], snap
                else:
                    # "Entering BACKUP STATE (init)" when it never was master
                    # (it heard us within its first Master_Down_Interval), else
                    # "Entering BACKUP STATE" after it gave way
                    states = [ln for ln in low.log().splitlines() if "Entering" in ln]
                    assert "Entering BACKUP STATE" in states[-1], low.log()[-2000:]
                # failover: the master crashes
                high.crash()
                sampler.excluded.add(high_node.name)  # a dead node's stale address is not a vote
                crashed = time.monotonic()
                assert wait_for(lambda: net.has_address(low_node, vip), down + 2), dump_logs(net)
                took = time.monotonic() - crashed
                assert took <= down + 0.5, took
                # failback: the high-priority node returns and preempts
                # a crashed keepalived leaves its VIP behind; the node "reboots" without it
                net.run(high_node, ["ip", "addr", "del", f"{VIP6}/64" if ipv6 else f"{VIP}/24",
                                    "dev", "eth0"])
                sampler.excluded.discard(high_node.name)
                high = start_node(high_kind, net, 0, 200, version, advert, "high-again", unicast,
                                  ipv6)
                assert wait_for(lambda: holder(net, vip) == high_node, down + 8), dump_logs(net)
                time.sleep(3 * advert)
                assert holder(net, vip) == high_node, dump_logs(net)
            doubles = sampler.double_masters()
            assert doubles == [], doubles[:5]
            for node in (high, low):
                if isinstance(node, Keepalived):
                    # keepalived accepted every advertisement haply sent
                    assert complaints(node.log()) == [], node.log()[-3000:]
        finally:
            print(dump_logs(net))
