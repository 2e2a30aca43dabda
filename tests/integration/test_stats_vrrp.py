"""The stats page and the Prometheus exporter show the VRRP instances.

Two nodes, each one `haply -f haproxy.cfg -f keepalived.conf` in its own network
namespace (tests/support/netns.py). Each node's stats page (fetched inside its
namespace) must say which node is MASTER, with the priorities configured and the
master's address on the BACKUP; a VRRP process that stops answering shows as
such while the page keeps rendering.
"""

from __future__ import annotations

import os
import re
import signal

import pytest

from tests.support import chromium as browser
from tests.support import netns
from tests.support.haply_process import HAPLY_BIN
from tests.support.netns_relay import relay

pytestmark = pytest.mark.skipif(netns.available() is not None,
                                reason=str(netns.available()))

STATS_PORT = 8404

HAPROXY_CFG = """
global
    maxconn 100
    stats socket %(socket)s level admin

defaults
    mode http
    timeout connect 1s
    timeout client 5s
    timeout server 5s

frontend stats
    bind 127.0.0.1:%(stats_port)d
    stats enable
    stats uri /stats
    http-request use-service prometheus-exporter if { path /metrics }
"""

KEEPALIVED_CONF = """
vrrp_instance api {
    state BACKUP
    interface eth0
    virtual_router_id 52
    priority %(priority)d
    version 3
    advert_int 0.1
    virtual_ipaddress {
        %(vip)s/24
    }
}
"""


def start_node(net, node, priority: int):
    name = node.name.rsplit("-", 1)[1]
    haproxy = net.write(f"{name}.haproxy.cfg", HAPROXY_CFG % {
        "socket": f"{net.workdir}/{name}.sock", "stats_port": STATS_PORT})
    keepalived = net.write(f"{name}.keepalived.conf",
                           KEEPALIVED_CONF % {"priority": priority, "vip": netns.VIP})
    return net.spawn(node, [HAPLY_BIN, "-db", "-f", haproxy, "-f", keepalived],
                     log_name=f"{name}-haply")


def fetch(net, node, path: str) -> str | None:
    result = net.run(node, ["curl", "-s", "--max-time", "2",
                            f"http://127.0.0.1:{STATS_PORT}{path}"], timeout=10)
    return result.stdout if result.returncode == 0 else None


def vrrp_row(page: str | None, instance: str) -> dict | None:
    """state, priority and master of one instance row of the page's VRRP table."""
    if not page:
        return None
    match = re.search(r'<tr class="vrrp-instance" data-instance="%s">(.*?)</tr>' % instance, page)
    if not match:
        return None
    row = match.group(1)
    return {"state": re.search(r'data-state="([^"]*)"', row).group(1),
            "priority": re.search(r'data-priority="([^"]*)"', row).group(1),
            "master": re.search(r'data-master="([^"]*)"', row).group(1)}


def vrrp_child(proxy_pid: int) -> int:
    """The VRRP process: the proxy's child (haply.vrrp.child)."""
    with open(f"/proc/{proxy_pid}/task/{proxy_pid}/children") as f:
        children = [int(pid) for pid in f.read().split()]
    assert len(children) == 1, children
    return children[0]


def test_stats_page_shows_master_and_backup_with_priorities():
    with netns.lab(2, with_client=False) as net:
        first, second = net.nodes
        proxy1 = start_node(net, first, 150)
        start_node(net, second, 100)

        def settled():
            return (vrrp_row(fetch(net, first, "/stats"), "api") or {}).get("state") == "MASTER" \
                and (vrrp_row(fetch(net, second, "/stats"), "api") or {}).get("state") == "BACKUP"
        assert netns.wait_for(settled, 15, 0.2), netns.dump_logs(net)
        assert net.holders(netns.VIP) == [first]
        top = vrrp_row(fetch(net, first, "/stats"), "api")
        assert top == {"state": "MASTER", "priority": "150", "master": first.address}
        low = vrrp_row(fetch(net, second, "/stats"), "api")
        assert low == {"state": "BACKUP", "priority": "100", "master": first.address}

        # Prometheus: haply's own metrics beside HAProxy's
        metrics = fetch(net, second, "/metrics")
        assert 'haply_vrrp_state{instance="api",state="BACKUP"} 1' in metrics
        assert 'haply_vrrp_state{instance="api",state="MASTER"} 0' in metrics
        assert 'haply_vrrp_priority{instance="api"} 100' in metrics
        assert "haply_vrrp_up 1" in metrics
        # ;csv and ;json are HAProxy's, untouched by VRRP
        csv = fetch(net, first, "/stats;csv")
        assert csv.startswith("# pxname,svname,") and "vrrp" not in csv.lower()
        assert "vrrp" not in fetch(net, first, "/stats;json").lower()

        # a VRRP process that stops answering: the page still renders and says so
        child = vrrp_child(proxy1.pid)
        os.kill(child, signal.SIGSTOP)
        try:
            assert netns.wait_for(
                lambda: 'id="vrrp-problem"' in (fetch(net, first, "/stats") or ""), 8, 0.2)
            page = fetch(net, first, "/stats")
            assert "has not answered" in page and 'class="status stale"' in page, page[-3000:]
            assert "haply_vrrp_up 0" in fetch(net, first, "/metrics")
            # meanwhile the other node took over, and its page says so
            assert netns.wait_for(
                lambda: (vrrp_row(fetch(net, second, "/stats"), "api") or {}).get("state")
                == "MASTER", 8, 0.2), netns.dump_logs(net)
        finally:
            os.kill(child, signal.SIGCONT)
        # back: the first node (higher priority, preempt) is master again and fresh
        assert netns.wait_for(
            lambda: (vrrp_row(fetch(net, first, "/stats"), "api") or {}).get("state") == "MASTER"
            and 'id="vrrp-problem"' not in (fetch(net, first, "/stats") or ""), 10, 0.2), \
            netns.dump_logs(net)


def test_stats_page_reports_a_dead_vrrp_process_and_its_restart():
    with netns.lab(1, with_client=False) as net:
        (node,) = net.nodes
        proxy = start_node(net, node, 100)
        assert netns.wait_for(
            lambda: (vrrp_row(fetch(net, node, "/stats"), "api") or {}).get("state") == "MASTER",
            15, 0.2), netns.dump_logs(net)
        child = vrrp_child(proxy.pid)
        os.kill(child, signal.SIGKILL)
        # gone: said at once (the connection closes), the page still renders
        assert netns.wait_for(
            lambda: "closed its control connection" in (fetch(net, node, "/stats") or "")
            or "no VRRP process answers" in (fetch(net, node, "/stats") or ""), 3, 0.05), \
            netns.dump_logs(net)
        # the proxy restarts its VRRP child; the page follows without a reload
        assert netns.wait_for(
            lambda: (vrrp_row(fetch(net, node, "/stats"), "api") or {}).get("state") == "MASTER"
            and 'id="vrrp-problem"' not in (fetch(net, node, "/stats") or ""), 15, 0.2), \
            netns.dump_logs(net)
        assert vrrp_child(proxy.pid) != child


@pytest.mark.skipif(not browser.available(), reason="chromium or websocket-client not installed")
def test_vrrp_table_in_chromium():
    with netns.lab(2, with_client=False) as net:
        first, second = net.nodes
        start_node(net, first, 150)
        start_node(net, second, 100)
        assert netns.wait_for(
            lambda: (vrrp_row(fetch(net, second, "/stats"), "api") or {}).get("state") == "BACKUP"
            and (vrrp_row(fetch(net, first, "/stats"), "api") or {}).get("state") == "MASTER",
            15, 0.2), netns.dump_logs(net)
        with relay(second.name, "127.0.0.1", STATS_PORT) as port, browser.chromium() as page:
            page.call("Page.enable")
            page.call("Page.navigate", url=f"http://127.0.0.1:{port}/stats;norefresh")
            page.wait_event("Page.loadEventFired")
            row = "document.querySelector('tr.vrrp-instance[data-instance=\"api\"]')"
            assert page.evaluate(f"{row}.querySelector('td.status').textContent") == "BACKUP"
            assert page.evaluate(f"{row}.cells[2].textContent") == "100"
            assert page.evaluate(f"{row}.cells[3].textContent") == first.address
            colour = page.evaluate(
                f"getComputedStyle({row}.querySelector('td.status')).backgroundColor")
            assert colour not in ("", "rgba(0, 0, 0, 0)")
            # the VRRP section sits above the proxies' tables
            assert page.evaluate("document.querySelector('section').id") == "vrrp"
