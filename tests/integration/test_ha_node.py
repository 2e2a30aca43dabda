"""Two load-balancer nodes, each one `haply -f haproxy.cfg -f keepalived.conf`.

Each node runs in its own network namespace with an API server behind its proxy; a
client in a third namespace talks to the virtual IP. This is the guides' whole
set-up (HAProxy + keepalived on every controller) with haply in place of both.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from tests.support import netns
from tests.support.haply_process import HAPLY_BIN

pytestmark = pytest.mark.skipif(netns.available() is not None,
                                reason=str(netns.available()))

API_PORT = 8000
VIP_PORT = 8080

API_SERVER = """
import http.server, sys
name = sys.argv[1]
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = name.encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
http.server.ThreadingHTTPServer(("127.0.0.1", %d), H).serve_forever()
""" % API_PORT

HAPROXY_CFG = """
global
    maxconn 100
    stats socket %(socket)s level admin

defaults
    mode http
    timeout connect 1s
    timeout client 5s
    timeout server 5s

listen api
    bind %(vip)s:%(vip_port)d
    server local 127.0.0.1:%(api_port)d check inter 200ms
"""

KEEPALIVED_CONF = """
global_defs {
    router_id %(name)s
    vrrp_version 3
}
vrrp_instance api {
    state BACKUP
    interface eth0
    virtual_router_id 51
    priority %(priority)d
    advert_int 0.1
    virtual_ipaddress {
        %(vip)s/24
    }
}
"""


def ask(net, timeout: float = 0.5) -> str | None:
    result = net.run(net.client, ["curl", "-s", "--max-time", str(timeout),
                                  f"http://{netns.VIP}:{VIP_PORT}/"], timeout=timeout + 5)
    return result.stdout if result.returncode == 0 else None


def stats_socket(net, node) -> str:
    return f"{net.workdir}/{node.name.rsplit('-', 1)[1]}.sock"


def start_node(net, node, priority: int, flags: tuple[str, ...] = ()):
    name = node.name.rsplit("-", 1)[1]
    net.spawn(node, [sys.executable, "-c", API_SERVER, name], log_name=f"{name}-api")
    haproxy = net.write(f"{name}.haproxy.cfg", HAPROXY_CFG % {
        "socket": stats_socket(net, node), "vip": netns.VIP, "vip_port": VIP_PORT,
        "api_port": API_PORT})
    keepalived = net.write(f"{name}.keepalived.conf",
                           KEEPALIVED_CONF % {"name": name, "priority": priority, "vip": netns.VIP})
    return net.spawn(node, [HAPLY_BIN, *flags, "-db", "-f", haproxy, "-f", keepalived],
                     log_name=f"{name}-haply")


def test_proxy_crash_moves_the_vip_to_the_other_node():
    with netns.lab(2) as net:
        first, second = net.nodes
        proxy1 = start_node(net, first, 150)
        start_node(net, second, 100)
        assert netns.wait_for(lambda: ask(net) == "n0", 10), netns.dump_logs(net)
        assert net.holders(netns.VIP) == [first]
        for node, state in ((first, "MASTER"), (second, "BACKUP")):
            shown = subprocess.run([HAPLY_BIN, "ctl", "-S", stats_socket(net, node), "show", "vrrp"],
                                   capture_output=True, text=True, timeout=10)
            assert shown.returncode == 0, shown.stderr
            assert "api" in shown.stdout and state in shown.stdout, shown.stdout

        proxy1.send_signal(signal.SIGKILL)  # the proxy only: its VRRP child lives on
        killed = time.monotonic()
        assert netns.wait_for(lambda: ask(net, 0.2) == "n1", 5), netns.dump_logs(net)
        moved = time.monotonic() - killed
        assert net.holders(netns.VIP) == [second]
        # advert_int 0.1: the orphaned VRRP child sees the proxy die through a
        # pidfd and hands over with priority 0 at once.
        assert moved < 1.0, f"VIP answered from the other node after {moved:.3f}s"


def test_node_stop_hands_over_and_restart_takes_back():
    with netns.lab(2) as net:
        first, second = net.nodes
        proxy1 = start_node(net, first, 150)
        start_node(net, second, 100)
        assert netns.wait_for(lambda: ask(net) == "n0", 10), netns.dump_logs(net)
        net.stop(proxy1)  # SIGTERM: drain, then VRRP hands over (priority 0)
        assert netns.wait_for(lambda: ask(net, 0.2) == "n1", 5), netns.dump_logs(net)
        assert net.holders(netns.VIP) == [second]
        start_node(net, first, 150)
        assert netns.wait_for(lambda: ask(net, 0.2) == "n0", 10), netns.dump_logs(net)
        assert net.holders(netns.VIP) == [first]


def test_master_worker_node_keeps_the_vip_through_worker_crashes_and_reloads():
    """`haply -W`: VRRP is the master's child and tracks the master. A worker
    that dies is replaced and a reload switches workers, both without moving
    the address; the master's death moves it."""
    with netns.lab(2) as net:
        first, second = net.nodes
        master1 = start_node(net, first, 150, ("-W",))
        start_node(net, second, 100, ("-W",))
        assert netns.wait_for(lambda: ask(net) == "n0", 10), netns.dump_logs(net)
        control = stats_socket(net, first) + ".master"

        def workers() -> list[int]:
            shown = subprocess.run([HAPLY_BIN, "ctl", "--master", control, "show", "proc"],
                                   capture_output=True, text=True, timeout=10)
            return [int(l.split()[0]) for l in shown.stdout.splitlines()
                    if len(l.split()) > 1 and l.split()[1] == "worker"]

        assert netns.wait_for(lambda: len(workers()) == 1, 10)
        os.kill(workers()[0], signal.SIGKILL)
        reload = subprocess.run([HAPLY_BIN, "ctl", "--master", control, "reload"],
                                capture_output=True, text=True, timeout=30)
        assert reload.returncode == 0, reload.stderr
        for _ in range(20):
            assert net.holders(netns.VIP) == [first]
            time.sleep(0.05)
        assert netns.wait_for(lambda: ask(net) == "n0", 5), netns.dump_logs(net)
        master1.send_signal(signal.SIGKILL)
        assert netns.wait_for(lambda: ask(net, 0.2) == "n1", 5), netns.dump_logs(net)
        assert net.holders(netns.VIP) == [second]
