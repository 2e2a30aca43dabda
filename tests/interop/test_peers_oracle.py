"""Stick tables shared over HAProxy's peers protocol, with HAProxy 2.6 as the
other node: what one node learns, the other knows, both ways.

Two nodes, A and B, run the same configuration (each names itself with
`localpeer`): a backend that sticks clients to a server by their address and
counts their connections and request rate. A client stuck to a server through
one node is sent to that server by the other node, whose own balancing would
have chosen another; `show table` prints the same entries on both. A node that
starts after the other learns every entry from it (a resync).
"""

from __future__ import annotations

import os
import tempfile
import time
from contextlib import ExitStack

import pytest

from tests.interop.test_stick_oracle import entries
from tests.support.admin_cli import cli
from tests.support.haply_process import PROXIES
from tests.support.haproxy_oracle import echo_backends, free_port, haproxy_available, http_get, run_haproxy

pytestmark = pytest.mark.skipif(not haproxy_available(), reason="HAProxy oracle not installed")

NODE = """global
    localpeer {name}
    stats socket {socket} level admin
defaults
    mode http
    timeout connect 2s
    timeout client 5s
    timeout server 5s
peers lbs
    peer A 127.0.0.1:{peer_a}
    peer B 127.0.0.1:{peer_b}
frontend fe
    bind 127.0.0.1:{port}
    default_backend be
backend be
    balance roundrobin
    stick-table type ip size 1k expire 60s peers lbs store conn_cnt,http_req_rate(10s),gpc0
    stick on src
    http-request track-sc0 src
    server s1 {s1} id 7
    server s2 {s2} id 9
"""


class Pair:
    """Two nodes of one peers section; binaries: which program runs each."""

    def __init__(self, stack: ExitStack, s1, s2):
        self.stack = stack
        self.directory = tempfile.mkdtemp(prefix="peers-")
        self.ports = {"A": free_port(), "B": free_port()}
        self.peer_ports = {"A": free_port(), "B": free_port()}
        self.servers = (s1.address, s2.address)

    def socket(self, name: str) -> str:
        return os.path.join(self.directory, f"{name}.sock")

    def start(self, name: str, binary: str) -> None:
        config = NODE.format(name=name, socket=self.socket(name), peer_a=self.peer_ports["A"],
                             peer_b=self.peer_ports["B"], port=self.ports[name],
                             s1=self.servers[0], s2=self.servers[1])
        self.stack.enter_context(run_haproxy(config, binary))

    def get(self, name: str, client: str) -> str:
        return http_get(self.ports[name], source=client).backend

    def table(self, name: str) -> list[str]:
        return entries(cli(self.socket(name), "show table be"))

    def same_tables(self, timeout: float = 5.0) -> list[str]:
        """The entries, once both nodes print the same (pushes take a moment)."""
        deadline = time.monotonic() + timeout
        while True:
            a, b = self.table("A"), self.table("B")
            if a == b or time.monotonic() > deadline:
                assert a == b, (a, b)
                return a
            time.sleep(0.1)


@pytest.mark.parametrize("a,b", [("haproxy", "haply"), ("haply", "haproxy")])
def test_a_client_stays_on_its_server_through_the_other_node(a, b):
    with ExitStack() as stack:
        s1, s2 = stack.enter_context(echo_backends(["s1", "s2"]))
        pair = Pair(stack, s1, s2)
        pair.start("A", PROXIES[a])
        pair.start("B", PROXIES[b])
        time.sleep(0.5)  # the nodes connect
        assert pair.get("A", "127.0.0.8") == "s1"
        assert pair.get("A", "127.0.0.9") == "s2"  # stuck to s2 on A
        # B's own roundrobin would start with s1: the shared entry wins
        pair.same_tables()
        assert pair.get("B", "127.0.0.9") == "s2"
        assert pair.get("B", "127.0.0.10") == "s1"  # a new client is balanced
        table = pair.same_tables()
        assert [line.split(" exp=")[0] for line in table[1:] if line] == [
            "key=127.0.0.8 use=0", "key=127.0.0.9 use=0", "key=127.0.0.10 use=0"]
        rows = {line.split()[0]: line for line in table if line.startswith("key=")}
        assert "server_id=9" in rows["key=127.0.0.9"] and "conn_cnt=2" in rows["key=127.0.0.9"]
        assert "http_req_rate(10000)=2" in rows["key=127.0.0.9"] and "server_key=s2" in rows["key=127.0.0.9"]
        assert "server_id=7" in rows["key=127.0.0.10"] and "conn_cnt=1" in rows["key=127.0.0.10"]


@pytest.mark.parametrize("first,late", [("haproxy", "haply"), ("haply", "haproxy")])
def test_a_node_that_starts_late_learns_every_entry(first, late):
    with ExitStack() as stack:
        s1, s2 = stack.enter_context(echo_backends(["s1", "s2"]))
        pair = Pair(stack, s1, s2)
        pair.start("A", PROXIES[first])
        for client in ("127.0.0.21", "127.0.0.22", "127.0.0.23"):
            pair.get("A", client)
        pair.start("B", PROXIES[late])
        table = pair.same_tables()
        assert len([line for line in table if line.startswith("key=")]) == 3
        # what B learned steers its requests: .22 went to s2 through A
        assert pair.get("B", "127.0.0.22") == "s2"
