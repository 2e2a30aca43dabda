"""Stickiness tables (haply.proxy.stick): keys, expiry, a full table, and which
stored server may take a request. End to end against HAProxy 2.6:
tests/interop/test_stick_oracle.py."""

from __future__ import annotations

from dataclasses import dataclass, field

from haply.config.model import Server, StickRule, StickTableSpec
from haply.proxy.counters import fetch_for
from haply.proxy.stick import Stickiness, StickTable, ordered
from haply.runtime.registry import DOWN, DRAIN, MAINT, ServerState


def states(*names: str) -> list[ServerState]:
    return [ServerState(backend="b", name=name, host="192.0.2.1", port=80, weight=1, backup=False,
                        maxconn=0, server_id=i, effective_weight=1, config=Server(name, "192.0.2.1", 80))
            for i, name in enumerate(names, start=1)]


@dataclass
class View:
    client_ip: str = "192.0.2.50"
    client_port: int = 40000
    local_ip: str = "192.0.2.5"
    local_port: int = 3306
    headers: dict = field(default_factory=dict)
    path: str = "/"
    uri: str = "/"

    def header(self, name: str) -> list[str]:
        return self.headers.get(name, [])


def test_keys_take_the_tables_form():
    assert StickTable(StickTableSpec("t", "ip", 10)).normalise("::ffff:192.0.2.1") == "192.0.2.1"
    assert StickTable(StickTableSpec("t", "ip", 10)).normalise("2001:db8::1") is None
    assert StickTable(StickTableSpec("t", "ipv6", 10)).normalise("192.0.2.1") == "::ffff:192.0.2.1"
    assert StickTable(StickTableSpec("t", "integer", 10)).normalise("3306") == "3306"
    assert StickTable(StickTableSpec("t", "integer", 10)).normalise("x") is None
    assert StickTable(StickTableSpec("t", "string", 10, length=3)).normalise("abcdef") == "abc"


def test_keys_read_from_the_request():
    view = View(client_ip="127.0.0.1", headers={"host": ["Example.com:8080", "other"], "x-key": ["a, b ,c "]},
                path="/a/b", uri="/a/b?x=1")
    keys = {pattern: fetch_for(pattern)(view) for pattern in (
        "base", "base32", "base32+src", "path", "url", "url32", "url32+src", "req.hdr(x-key)")}
    # base32 and the binary key as HAProxy 2.6 computed them for this request
    assert keys == {"base": "Example.com:8080/a/b", "base32": "1648227160",
                    "base32+src": bytes.fromhex("623DF358") + bytes([127, 0, 0, 1]), "path": "/a/b",
                    "url": "/a/b?x=1", "url32": "451128362",
                    "url32+src": (451128362).to_bytes(4, "big") + bytes([127, 0, 0, 1]),
                    "req.hdr(x-key)": "c"}  # the last comma-separated value
    assert fetch_for("base")(View(path="/x")) == "/x"  # no Host: the path alone
    binary = StickTable(StickTableSpec("t", "binary", 10, length=20))
    assert binary.normalise(keys["base32+src"]) == "623DF3587F000001" + "00" * 12
    assert binary.normalise("623df3587f000001") == "623DF3587F000001" + "00" * 12  # hexadecimal text
    assert StickTable(StickTableSpec("t", "binary", 10, length=2)).normalise(b"abc") == "6162"
    assert StickTable(StickTableSpec("t", "string", 10)).normalise(b"\x01\xff") == "01FF"


def test_tables_are_listed_in_haproxys_key_order():
    integers = StickTable(StickTableSpec("t", "integer", 10))
    addresses = StickTable(StickTableSpec("t", "ip", 10))
    for key in ("494537467", "3011576353", "2639022759"):
        integers.place(key, 0.0)
    for key in ("192.0.2.10", "10.0.0.1", "192.0.2.9"):
        addresses.place(key, 0.0)
    # integers as x86 holds them (least significant byte first), as HAProxy 2.6 listed these three
    assert [key for key, _ in ordered(integers)] == ["3011576353", "2639022759", "494537467"]
    assert [key for key, _ in ordered(addresses)] == ["10.0.0.1", "192.0.2.9", "192.0.2.10"]


def test_expiry_refresh_and_a_full_table():
    s1, s2 = states("s1", "s2")
    table = StickTable(StickTableSpec("t", "string", 2, expire=10.0))
    assert table.store("a", s1, now=0.0) and table.store("b", s2, now=1.0)
    assert table.lookup("a", now=5.0).server == "s1"
    table.touch("a", now=5.0)  # a match refreshes it: now the most recent, expiring at 15
    assert table.store("c", s1, now=6.0)  # full: the least recently used (b) goes
    assert table.lookup("b", now=6.0) is None and table.lookup("a", now=14.0) is not None
    assert table.lookup("a", now=15.0) is None  # expired, and removed
    assert "a" not in table.entries
    table.store("c", s2, now=20.0)  # storing again moves it to the real server
    assert (table.entries["c"].server, table.entries["c"].server_id) == ("s2", 2)
    nopurge = StickTable(StickTableSpec("t", "string", 1, nopurge=True))
    assert nopurge.store("a", s1, 0.0) and not nopurge.store("b", s1, 0.0)
    assert list(nopurge.entries) == ["a"]
    assert nopurge.clear("a") == 1 and nopurge.clear() == 0


def test_match_skips_down_and_maintenance_but_keeps_draining_servers():
    servers = states("s1", "s2")
    s1, s2 = servers
    stick = Stickiness(StickTable(StickTableSpec("mysql", "ip", 1000)), (StickRule("on", "dst"),), servers)
    view = View()
    assert stick.match(view, 0.0) is None
    stick.store(view, s1, 0.0)
    assert stick.match(View(client_ip="192.0.2.99"), 1.0) is s1  # every client: the same key
    s1.admin = DRAIN
    assert stick.match(view, 1.0) is s1
    s1.admin = MAINT
    assert stick.match(view, 1.0) is None
    s1.admin, s1.operational = "READY", DOWN
    assert stick.match(view, 1.0) is None
    stick.store(view, s2, 2.0)  # the failover's server replaces it
    s1.operational = "UP"
    assert stick.match(view, 3.0) is s2  # and keeps the clients after failback


def test_rules_conditions_and_request_patterns():
    servers = states("s1", "s2")
    rules = (StickRule("match", "req.cook(SESSION)"), StickRule("store-request", "req.hdr(x-user)"),
             StickRule("store-request", "src"))
    stick = Stickiness(StickTable(StickTableSpec("web", "string", 100)), rules, servers)
    view = View(headers={"x-user": ["alice"], "cookie": ["a=1; SESSION=alice"]})
    stick.store(view, servers[1], 0.0)
    assert list(stick.table.entries) == ["alice"]  # one key per request: the first rule's
    assert stick.match(view, 1.0) is servers[1]
    assert stick.match(View(headers={"cookie": ["SESSION=bob"]}), 1.0) is None
