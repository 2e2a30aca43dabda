"""Stickiness tables (`stick-table`, `stick on | match | store-request`) against
HAProxy 2.6 on the same configuration.

The Galera pattern of the OpenStack guides (`stick on dst`, `stick-table type ip
size 1000`, mode tcp): every client reaches the same server; when it goes into
maintenance they move to the other one and stay there after it comes back, so
the cluster never has two writers. In mode http a header keys the table. Both
proxies must pick the same servers and `show table` must list the same entries.
"""

from __future__ import annotations

import os
import re
import tempfile

import pytest

from tests.interop.test_proxy_oracle import raw_exchange, run_both
from tests.support.admin_cli import cli, wait_no_sessions, wait_socket
from tests.support.haproxy_oracle import echo_backends, free_port, haproxy_available

pytestmark = pytest.mark.skipif(not haproxy_available(), reason="HAProxy oracle not installed")


def served_by(reply: bytes) -> str:
    match = re.search(rb"(?i)x-backend: (\S+)", reply)
    assert match, reply[:300]
    return match.group(1).decode()


def tcp_request(port: int) -> str:
    return served_by(raw_exchange(port, b"GET / HTTP/1.0\r\n\r\n"))


def http_request(port: int, user: str | None) -> str:
    head = b"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n"
    if user is not None:
        head += b"X-User: %s\r\n" % user.encode()
    return served_by(raw_exchange(port, head + b"\r\n"))


def entries(dump: str) -> list[str]:
    """`show table NAME` lines without the entry's address and expiry countdown."""
    out = []
    for line in dump.splitlines():
        line = re.sub(r"^0x[0-9a-f]+: ", "", line)
        out.append(re.sub(r" exp=\d+", " exp=<ms>" if " exp=0" not in line else " exp=0", line))
    return out


def test_galera_stick_on_dst_and_header_tables_as_haproxy():
    with echo_backends(["s1", "s2", "s3"]) as (b1, b2, b3):
        directory = tempfile.mkdtemp(prefix="stick-")
        sock = os.path.join(directory, "admin.sock")
        cfg = f"""global
    stats socket {sock} level admin

defaults
    timeout connect 2s
    timeout client 5s
    timeout server 5s

listen mysql
    mode tcp
    bind 127.0.0.1:@PORT@
    stick on dst
    stick-table type ip size 1000 expire 30m
    server s1 {b1.address}
    server s2 {b2.address}

listen web
    mode http
    bind 127.0.0.1:@PORT2@
    stick-table type string len 8 size 100
    stick on req.hdr(x-user)
    server s1 {b1.address}
    server s2 {b2.address}
    server s3 {b3.address}
"""

        def exercise(port):
            web = port2[0]
            wait_socket(sock)
            wait_no_sessions(sock)
            cli(sock, "clear table mysql")  # the start-up probe's connection stored one
            seen = {"tables": cli(sock, "show table")}
            seen["tcp"] = [tcp_request(port) for _ in range(4)]
            first = seen["tcp"][0]
            cli(sock, f"disable server mysql/{first}")
            seen["tcp-failover"] = [tcp_request(port) for _ in range(3)]
            cli(sock, f"enable server mysql/{first}")
            seen["tcp-failback"] = [tcp_request(port) for _ in range(3)]
            seen["mysql"] = entries(cli(sock, "show table mysql"))
            cli(sock, "clear table web")
            users = ["alice", "bob", "alice", None, "carol-is-long", "bob", "alice", "carol-is-longer"]
            seen["http"] = [http_request(web, user) for user in users]
            # "carol-is-long" and "carol-is-longer" share a key: len 8 keeps "carol-is"
            seen["web"] = sorted(entries(cli(sock, "show table web"))[1:])
            cli(sock, "clear table web key alice")
            seen["cleared"] = entries(cli(sock, "show table web"))
            seen["errors"] = [cli(sock, "show table nope"), cli(sock, "clear table")]
            os.unlink(sock)
            return seen

        port2 = [free_port()]
        results = run_both(cfg.replace("@PORT2@", str(port2[0])), exercise)
    theirs, ours = results["haproxy"], results["haply"]
    for key in theirs:
        assert ours[key] == theirs[key], (key, ours[key], theirs[key])
    # The Galera property itself: one server at a time, no return after failback.
    assert len(set(ours["tcp"])) == 1
    assert set(ours["tcp-failover"]) == set(ours["tcp-failback"]) != set(ours["tcp"])
