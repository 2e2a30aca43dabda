"""Stickiness tables: `stick-table` and `stick on | match | store-request`.

A table maps a key taken from the connection or request (the client's address,
the address it connected to, a header, a cookie) to the server that last served
it. `stick match` sends a request whose key is in the table to that server, if
the server is neither DOWN nor in maintenance; `stick store-request` writes the
server that was connected to (the real one, after retries and redispatch); `stick
on` does both. The OpenStack guides use `stick on dst` with
`stick-table type ip size 1000` on Galera: every client reaches the same node,
and stays on the node it failed over to even when the first one returns, so the
cluster never has two writers.

Pure: keys and servers in, decisions out; time is an argument. Entries expire
`expire` after they were stored or last matched (never without `expire`); a full
table forgets its least recently used entry, or refuses the new one with
`nopurge`.

As with cookies (haply.proxy.persistence), a request whose stuck server is at its
`maxconn` is balanced rather than queued for that server.

Each worker process has its own tables (HAProxy shares them between threads, or
between nodes with `peers`, which haply does not support); `haply -c` says so
when nbthread is above 1.
"""

from __future__ import annotations

import ipaddress
from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable, Protocol

from haply.config.model import StickRule, StickTableSpec
from haply.proxy.conditions import compile_condition
from haply.runtime.registry import ServerState


class StickView(Protocol):
    """What a pattern reads: the connection's addresses and, in mode http, the
    request's fields."""

    client_ip: str
    client_port: int
    local_ip: str
    local_port: int

    def header(self, name: str) -> list[str]:
        """Every value of a header (lower-case name)."""


@dataclass(slots=True)
class Entry:
    server: str  # the server's name in its backend
    server_id: int
    expires: float | None


class StickTable:
    """One table: key -> the server that served it, least recently used first."""

    def __init__(self, spec: StickTableSpec):
        self.spec = spec
        self.name = spec.name
        self.kind = spec.kind
        self.size = spec.size
        self.expire = spec.expire
        self.entries: OrderedDict[str, Entry] = OrderedDict()

    def normalise(self, key: str) -> str | None:
        """The key as this table stores it, or None when it cannot hold it."""
        kind = self.kind
        if kind == "string":
            return key[:self.spec.length]
        if kind == "integer":
            try:
                return str(int(key))
            except ValueError:
                return None
        try:
            address = ipaddress.ip_address(key)
        except ValueError:
            return None
        if kind == "ip":
            if address.version == 6:
                mapped = address.ipv4_mapped
                return str(mapped) if mapped is not None else None
            return str(address)
        return str(address) if address.version == 6 else "::ffff:" + str(address)

    def lookup(self, key: str, now: float) -> Entry | None:
        entry = self.entries.get(key)
        if entry is None:
            return None
        if entry.expires is not None and entry.expires <= now:
            del self.entries[key]
            return None
        return entry

    def touch(self, key: str, now: float) -> None:
        """A match refreshes the entry's expiry and its place in the LRU order."""
        entry = self.entries.get(key)
        if entry is not None:
            if self.expire is not None:
                entry.expires = now + self.expire
            self.entries.move_to_end(key)

    def store(self, key: str, server: ServerState, now: float) -> bool:
        """Record server for key; False when a full `nopurge` table refuses it."""
        expires = now + self.expire if self.expire is not None else None
        entry = self.entries.get(key)
        if entry is not None:
            entry.server, entry.server_id, entry.expires = server.name, server.server_id, expires
            self.entries.move_to_end(key)
            return True
        self.purge(now)
        if len(self.entries) >= self.size:
            if self.spec.nopurge:
                return False
            self.entries.popitem(last=False)
        self.entries[key] = Entry(server.name, server.server_id, expires)
        return True

    def purge(self, now: float) -> None:
        """Drop expired entries (from the oldest; stops at the first live one,
        which is exact when every entry has the same expire delay)."""
        entries = self.entries
        while entries:
            key, entry = next(iter(entries.items()))
            if entry.expires is None or entry.expires > now:
                return
            del entries[key]

    def clear(self, key: str | None = None) -> int:
        if key is None:
            count = len(self.entries)
            self.entries.clear()
            return count
        normalised = self.normalise(key)
        return 1 if normalised is not None and self.entries.pop(normalised, None) else 0


def fetch_for(pattern: str) -> Callable[[StickView], str | None]:
    """The compiled sample fetch of a stick rule (the parser checked the name)."""
    if pattern == "src":
        return lambda view: view.client_ip or None
    if pattern == "dst":
        return lambda view: view.local_ip or None
    if pattern == "src_port":
        return lambda view: str(view.client_port) if view.client_port else None
    if pattern == "dst_port":
        return lambda view: str(view.local_port) if view.local_port else None
    argument = pattern[pattern.index("(") + 1:-1]
    if pattern.startswith(("req.hdr(", "hdr(")):
        name = argument.lower()

        def header(view: StickView) -> str | None:
            values = view.header(name)
            return values[-1].strip() if values else None  # HAProxy: the last occurrence
        return header

    def cookie(view: StickView) -> str | None:
        for value in view.header("cookie"):
            for part in value.split(";"):
                key, equals, found = part.partition("=")
                if equals and key.strip() == argument:
                    return found.strip()
        return None
    return cookie


class Stickiness:
    """A backend's stick rules over its table, compiled."""

    def __init__(self, spec: StickTableSpec, rules: tuple[StickRule, ...],
                 servers: list[ServerState]):
        self.table = StickTable(spec)
        self.servers = servers  # the registry's live list
        self.matches = [(fetch_for(r.pattern), compile_condition(r.condition))
                        for r in rules if r.kind in ("on", "match")]
        self.stores = [(fetch_for(r.pattern), compile_condition(r.condition))
                       for r in rules if r.kind in ("on", "store-request")]

    def _keys(self, rules, view: StickView):
        """The table's keys the rules whose condition holds take from view, in
        rule order."""
        table = self.table
        for fetch, condition in rules:
            if condition is not None and not condition(view):
                continue
            raw = fetch(view)
            key = table.normalise(raw) if raw is not None else None
            if key is not None:
                yield key

    def match(self, view: StickView, now: float) -> ServerState | None:
        """The server the first matching rule's entry names, if it may take
        the request (not DOWN, not in maintenance; a draining one may)."""
        table = self.table
        for key in self._keys(self.matches, view):
            entry = table.lookup(key, now)
            if entry is None:
                continue
            table.touch(key, now)
            for server in self.servers:
                if server.name == entry.server:
                    if server.takes_persistent:
                        return server
                    break
        return None

    def store(self, view: StickView, server: ServerState, now: float) -> None:
        """Once connected: the first rule that yields a key records server
        (HAProxy stores one key per table and request)."""
        key = next(self._keys(self.stores, view), None)
        if key is not None:
            self.table.store(key, server, now)
