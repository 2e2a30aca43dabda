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
import re
import tempfile
import time
from contextlib import ExitStack

import pytest

from tests.interop.test_stick_oracle import entries
from tests.support.admin_cli import cli
from tests.support.cuttable_relay import CuttableRelay
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


def _synced(pair: Pair, name: str, program: str) -> bool:
    """Whether a node is past its start-up resync (so that a new session
    does not ask the other for every entry, which would hide a lost update)."""
    peers = cli(pair.socket(name), "show peers")
    return "resync_timeout=<PAST>" in peers if program == "haproxy" else " synced=1" in peers


def _active(pair: Pair, name: str, other: str) -> bool:
    return f"id={other}(remote,active)" in cli(pair.socket(name), "show peers")


def _wait(condition, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


@pytest.mark.parametrize("served_by", ["B", "A"])
def test_what_a_node_serves_while_the_link_is_cut_reaches_the_other_once_it_is_back(served_by):
    """A is HAProxy, B is haply, and every peer session between them goes
    through a relay. The relay cuts the session and refuses new ones for a
    while: clients that come to one node meanwhile (new ones, and a known one
    again) are in the other node's table once a session is back, without a
    resync (both nodes are past their start-up one). HAProxy sends what B
    has not acknowledged; haply does the same for A."""
    programs = {"A": "haproxy", "B": "haply"}
    with ExitStack() as stack:
        s1, s2 = stack.enter_context(echo_backends(["s1", "s2"]))
        relay = CuttableRelay()
        stack.callback(relay.close)
        pair = Pair(stack, s1, s2)
        # each node reaches the other through the relay; it listens on its own port
        through = {"A": relay.relay_to(pair.peer_ports["A"]), "B": relay.relay_to(pair.peer_ports["B"])}
        for name in ("A", "B"):
            ports = {other: pair.peer_ports[other] if other == name else through[other] for other in "AB"}
            config = NODE.format(name=name, socket=pair.socket(name), peer_a=ports["A"], peer_b=ports["B"],
                                 port=pair.ports[name], s1=pair.servers[0], s2=pair.servers[1])
            stack.enter_context(run_haproxy(config, PROXIES[programs[name]]))
        assert pair.get("A", "127.0.0.8") == "s1"
        pair.same_tables()
        assert _wait(lambda: all(_synced(pair, name, programs[name]) for name in "AB"), 15.0)
        assert _wait(lambda: _active(pair, "B", "A"), 5.0)

        relay.cut()
        assert _wait(lambda: not _active(pair, "B", "A"), 5.0)
        served = {client: pair.get(served_by, client) for client in ("127.0.0.11", "127.0.0.12", "127.0.0.8")}
        assert served["127.0.0.8"] == "s1" and {served["127.0.0.11"], served["127.0.0.12"]} == {"s1", "s2"}
        time.sleep(1.0)  # pushes come and go with nobody to take them
        other = "A" if served_by == "B" else "B"
        assert [line.split()[0] for line in pair.table(other) if line.startswith("key=")] == ["key=127.0.0.8"]
        relay.mend()

        table = pair.same_tables(timeout=10.0)
        rows = {line.split()[0]: line for line in table if line.startswith("key=")}
        assert sorted(rows) == ["key=127.0.0.11", "key=127.0.0.12", "key=127.0.0.8"]
        # (its rate depends on how long the nodes took to be past their
        # resync: the first request may be in the previous period or older)
        assert "conn_cnt=2" in rows["key=127.0.0.8"]
        for client in ("127.0.0.11", "127.0.0.12"):
            assert f"server_key={served[client]}" in rows[f"key={client}"] and "conn_cnt=1" in rows[f"key={client}"]
        # haply's show peers: everything it pushed was acknowledged, and HAProxy
        # got up to haply's last update number (an acknowledgement is a message
        # of its own: it may arrive after the entry shows in A's table)
        def numbers() -> dict:
            return dict(re.findall(r"\b(last_pushed|update|localupdate)=(\d+)",
                                   cli(pair.socket("B"), "show peers")))

        def all_acknowledged() -> bool:
            seen = numbers()
            return seen["update"] == seen["localupdate"] == seen["last_pushed"]

        assert _wait(all_acknowledged, 5.0), numbers()
        if served_by == "B":
            assert f"last_get={numbers()['localupdate']} " in cli(pair.socket("A"), "show peers")
