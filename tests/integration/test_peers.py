"""Stick tables shared between haply nodes (`peers` sections), for real: two
haply processes on loopback, echo backends, the runtime API's `show table`.

What an operator relies on after a VRRP failover: the client a node stuck to a
server is sent to that server by the other node; a node that restarts learns
the entries back from its peer; and a reload of a master-worker haply keeps
its entries even without another node (the old worker teaches the new one).
"""

from __future__ import annotations

import os
import signal
import socket
import tempfile
import time
from contextlib import ExitStack

from haply.peers.service import PUSH_EVERY
from tests.integration.test_master_worker import wait_for, workers_of
from tests.interop.test_peers_oracle import Pair
from tests.interop.test_stick_oracle import entries
from tests.support.admin_cli import ask, cli, wait_no_sessions
from tests.support.haproxy_oracle import echo_backends, free_port, http_get
from tests.support.haply_process import HAPLY_BIN, run_haply


def keys(table: list[str]) -> list[str]:
    return [line.split()[0] for line in table if line.startswith("key=")]


def test_two_haply_nodes_share_and_a_restarted_one_learns_back():
    with ExitStack() as stack:
        s1, s2 = stack.enter_context(echo_backends(["s1", "s2"]))
        pair = Pair(stack, s1, s2)
        pair.start("A", HAPLY_BIN)
        with ExitStack() as node_b:
            pair.stack = node_b
            pair.start("B", HAPLY_BIN)
            time.sleep(0.5)
            assert [pair.get("A", client) for client in ("127.0.0.31", "127.0.0.32")] == ["s1", "s2"]
            # A's sessions end, which changes their entries once more (conn_cur)
            # and pushes them again: one still on its way when B serves .32
            # would cross B's own push and undo it there (the last update
            # wins, as between HAProxy peers). B serves once A has said it all.
            wait_no_sessions(pair.socket("A"))
            time.sleep(3 * PUSH_EVERY)
            pair.same_tables()
            assert pair.get("B", "127.0.0.32") == "s2"  # B alone would have chosen s1
            assert pair.get("B", "127.0.0.33") == "s1"
            assert keys(pair.same_tables()) == ["key=127.0.0.31", "key=127.0.0.32", "key=127.0.0.33"]
            # the runtime API says who is connected and what went through
            peers = cli(pair.socket("B"), "show peers")
            assert " id=lbs disabled=0 local=B synced=" in peers  # (1 once a peer taught it all)
            assert f"id=A(remote,active) addr=127.0.0.1:{pair.peer_ports['A']} last_status=ESTA" in peers
            assert "local_id=1 remote_id=1 " in peers and "table=be used=3" in peers
            assert f"id=B(local,inactive) addr=127.0.0.1:{pair.peer_ports['B']}" in peers
            assert cli(pair.socket("B"), "show peers other") == "No such peers section 'other'.\n\n"
        # B is gone; A keeps serving, then B comes back empty and asks A
        pair.stack = stack
        assert [pair.get("A", client) for client in ("127.0.0.34", "127.0.0.35")] == ["s1", "s2"]
        pair.start("B", HAPLY_BIN)
        table = pair.same_tables()
        assert keys(table) == ["key=127.0.0.31", "key=127.0.0.32", "key=127.0.0.33", "key=127.0.0.34",
                               "key=127.0.0.35"]
        # what the new B learned steers it (its own first choice is s1)
        assert pair.get("B", "127.0.0.35") == "s2" and pair.get("B", "127.0.0.32") == "s2"


SINGLE = """global
    master-worker
    stats socket {socket} level admin
defaults
    mode http
    timeout connect 2s
    timeout client 5s
    timeout server 5s
peers alone
    peer lb1 127.0.0.1:{peer}
global
    localpeer lb1
frontend fe
    bind 127.0.0.1:{port}
    default_backend be
backend be
    stick-table type ip size 1k expire 60s peers alone store conn_cnt
    stick on src
    server s1 {s1} id 1
    server s2 {s2} id 2
"""


def test_a_reload_keeps_the_entries_without_another_node():
    directory = tempfile.mkdtemp(prefix="peers-")
    stats, port = os.path.join(directory, "admin.sock"), free_port()
    with echo_backends(["s1", "s2"]) as (s1, s2):
        config = SINGLE.format(socket=stats, peer=free_port(), port=port, s1=s1.address, s2=s2.address)
        with run_haply(config) as proxy:
            assert [http_get(port, source=c).backend for c in ("127.0.0.41", "127.0.0.42")] == ["s1", "s2"]
            before = entries(cli(stats, "show table be"))
            assert keys(before) == ["key=127.0.0.41", "key=127.0.0.42"]
            master = stats + ".master"
            old = workers_of(master)
            proxy.process.send_signal(signal.SIGUSR2)
            # a new worker, and the old one gone (so the table shown is the new one's)
            wait_for(lambda: set(workers_of(master).values()).isdisjoint(old.values()))
            wait_for(lambda: "old workers" not in ask(master, "show proc"), timeout=15)
            after = entries(cli(stats, "show table be"))
            assert keys(after) == keys(before), (before, after)
            assert http_get(port, source="127.0.0.42").backend == "s2"


WATCHED = """global
    localpeer lb1
defaults
    mode http
    timeout connect 2s
    timeout client 5s
    timeout server 5s
peers pair
    peer lb1 127.0.0.1:{peer}
    peer lb2 127.0.0.1:{absent}
frontend fe
    bind 127.0.0.1:{port}
    default_backend be
backend be
    stick-table type ip size 1k peers pair
    stick on src
    server s1 {s1}
"""


def _peer_exchange(port: int, data: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=3) as sock:
        sock.sendall(data)
        chunks = []
        while chunk := sock.recv(4096):
            chunks.append(chunk)
        return b"".join(chunks)


def test_a_peer_speaking_nonsense_is_refused_and_the_proxy_serves_on():
    peer, port = free_port(), free_port()
    with echo_backends(["s1"]) as (s1,):
        config = WATCHED.format(peer=peer, absent=free_port(), port=port, s1=s1.address)
        with run_haply(config) as proxy:
            time.sleep(0.3)
            assert _peer_exchange(peer, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n") == b"501\n"
            assert _peer_exchange(peer, b"HAProxyS 9.0\nlb1\nlb2 1 0\n") == b"502\n"
            assert _peer_exchange(peer, b"HAProxyS 2.1\nlb9\nlb2 1 0\n") == b"503\n"
            assert _peer_exchange(peer, b"HAProxyS 2.1\nlb1\nintruder 1 0\n") == b"504\n"
            # a known peer that sends an update before saying which table it is for
            answer = _peer_exchange(peer, b"HAProxyS 2.1\nlb1\nlb2 1 0\n\x0a\x80\x05\x00\x00\x00\x01\x7f")
            # (a resync request first: the node has just started and has no entry from a peer)
            assert answer == b"200\n\x00\x00\x01\x00"  # the protocol error message, then the close
            assert http_get(port).status == 200
            assert "peer 'lb2'" in proxy.output() and "before any table definition" in proxy.output()
