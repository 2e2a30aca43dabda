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

Each worker process has its own tables (HAProxy shares them between threads);
`haply -c` says so when nbthread is above 1. A table with `peers NAME` is
shared with the other nodes of that peers section (haply.peers).
"""

from __future__ import annotations

import ipaddress
import sys
from collections import OrderedDict
from dataclasses import dataclass
from functools import lru_cache

from haply.config.model import StickRule, StickTableSpec
from haply.proxy.conditions import compile_condition
from haply.proxy.counters import KeyView, fetch_for, new_data
from haply.runtime.registry import ServerState


def listed(tables: dict) -> list:
    """A configuration's tables in the order HAProxy lists them (`show table`,
    its Prometheus exporter): the most recently declared first."""
    return list(reversed(tables.values()))


@lru_cache(maxsize=4096)
def _address_key(kind: str, text: str) -> str | None:
    """An address as an ip or ipv6 table stores it (None: it cannot). Cached:
    the same clients come back, and parsing an address costs more than the
    rest of a tracked request's counting."""
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if kind == "ip":
        if address.version == 6:
            mapped = address.ipv4_mapped
            return str(mapped) if mapped is not None else None
        return str(address)
    return str(address) if address.version == 6 else "::ffff:" + str(address)


def _binary_key(key: str | bytes, length: int) -> str | None:
    if key.__class__ is not bytes:
        try:
            key = bytes.fromhex(key)
        except ValueError:
            key = key.encode("latin-1", "replace")  # a text sample: its bytes
    return key[:length].ljust(length, b"\0").hex().upper()


def ordered(table: "StickTable") -> list:
    """A table's (key, entry) pairs in the order HAProxy lists them (`show
    table`): by their bytes as its trees hold them. Addresses are held in
    network order (so they sort as numbers), integers in the machine's own
    (x86: least significant byte first), texts and binary keys as they are."""
    kind = table.kind
    if kind in ("ip", "ipv6"):
        order = lambda item: ipaddress.ip_address(item[0]).packed  # noqa: E731
    elif kind == "integer":
        order = lambda item: (int(item[0]) & 0xFFFFFFFF).to_bytes(4, sys.byteorder)  # noqa: E731
    else:
        order = lambda item: item[0].encode("latin-1", "replace")  # noqa: E731
    return sorted(table.entries.items(), key=order)


@dataclass(slots=True)
class Entry:
    server: str | None  # the server's name in its backend (None: not stored)
    server_id: int
    expires: float | None
    data: dict  # the stored counters (haply.proxy.counters)
    use: int = 0  # sessions tracking it: it does not expire meanwhile
    key: str = ""  # its key in its table (set when added)


class StickTable:
    """One table: key -> the server that served it, least recently used first."""

    def __init__(self, spec: StickTableSpec):
        self.spec = spec
        self.name = spec.name
        self.kind = spec.kind
        self.size = spec.size
        self.expire = spec.expire
        self.entries: OrderedDict[str, Entry] = OrderedDict()
        # Whether stick rules use it (its entries name a server), and the
        # servers they name (Stickiness sets both).
        self.stores_server = False
        self.servers: list[ServerState] = []
        self.stored = frozenset(name for name, _ in spec.store)
        # The peers it is shared with (haply.peers.sync.TableShare): told of
        # every entry that changed; None when it is not shared.
        self.share = None

    def normalise(self, key: str | bytes) -> str | None:
        """The key as this table stores it, or None when it cannot hold it.
        A binary table keeps its keys as HAProxy prints them: `len` bytes
        (cut or padded with zeros) in upper-case hexadecimal; a text given
        to it (the runtime API's `key`) is that hexadecimal already."""
        kind = self.kind
        if kind == "binary":
            return _binary_key(key, self.spec.length)
        if key.__class__ is bytes:
            key = key.hex().upper()  # a binary key in a table of text
        if kind == "string":
            return key[:self.spec.length]
        if kind == "integer":
            try:
                return str(int(key))
            except ValueError:
                return None
        return _address_key(kind, key)

    def lookup(self, key: str, now: float) -> Entry | None:
        entry = self.entries.get(key)
        if entry is None:
            return None
        if entry.expires is not None and entry.expires <= now and not entry.use:
            del self.entries[key]
            return None
        return entry

    def find(self, raw: str, now: float) -> Entry | None:
        """The live entry of a key as a fetch gives it, without touching it."""
        key = self.normalise(raw)
        return self.lookup(key, now) if key is not None else None

    def track(self, raw: str, now: float) -> Entry | None:
        """The entry of a key, made if needed, now followed by one more
        session; None when the key does not fit or a full `nopurge` table
        refuses it."""
        entry = self.place(raw, now)
        if entry is not None:
            entry.use += 1
        return entry

    def place(self, raw: str, now: float) -> Entry | None:
        """The entry of a key, made if needed (src_inc_gpc0 counts in it)."""
        key = self.normalise(raw)
        if key is None:
            return None
        entry = self.lookup(key, now)
        if entry is None:
            entry = self._add(key, Entry(None, 0, None, new_data(self.spec.store, now)), now)
        else:
            self.entries.move_to_end(key)
        if entry is not None:
            if self.expire is not None:
                entry.expires = now + self.expire
            if self.share is not None:
                self.share.changed[key] = None
        return entry

    def release(self, entry: Entry, now: float) -> None:
        """A session stops following entry: conn_cur counts it out, and the
        entry expires `expire` from now."""
        entry.use -= 1
        current = entry.data.get("conn_cur")
        if current:
            entry.data["conn_cur"] = current - 1
        if self.expire is not None:
            entry.expires = now + self.expire
        if self.share is not None:
            self.share.changed[entry.key] = None

    def _add(self, key: str, entry: Entry, now: float) -> Entry | None:
        self.purge(now)
        if len(self.entries) >= self.size and (self.spec.nopurge or not self._forget_oldest()):
            return None
        entry.key = key
        self.entries[key] = entry
        return entry

    def _forget_oldest(self) -> bool:
        """Make room: the least recently used entry no session follows (False:
        every entry is followed, the table stays full)."""
        for key, entry in self.entries.items():
            if not entry.use:
                del self.entries[key]
                return True
        return False

    def touch(self, key: str, now: float) -> None:
        """A match refreshes the entry's expiry and its place in the LRU order."""
        entry = self.entries.get(key)
        if entry is not None:
            if self.expire is not None:
                entry.expires = now + self.expire
            self.entries.move_to_end(key)
            if self.share is not None:
                self.share.changed[key] = None

    def store(self, key: str, server: ServerState, now: float) -> bool:
        """Record server for key; False when a full `nopurge` table refuses it."""
        expires = now + self.expire if self.expire is not None else None
        if self.share is not None:
            self.share.changed[key] = None
        entry = self.entries.get(key)
        if entry is not None:
            entry.server, entry.server_id, entry.expires = server.name, server.server_id, expires
            self.entries.move_to_end(key)
            return True
        entry = Entry(server.name, server.server_id, expires, new_data(self.spec.store, now))
        return self._add(key, entry, now) is not None

    def purge(self, now: float) -> None:
        """Drop expired entries (from the oldest; stops at the first live one,
        which is exact when every entry has the same expire delay)."""
        entries = self.entries
        while entries:
            key, entry = next(iter(entries.items()))
            if entry.expires is None or entry.expires > now or entry.use:
                return
            del entries[key]

    def clear(self, key: str | None = None, keep=None) -> int:
        """Forget every entry no session follows, or the one of key, or those
        `keep(entry)` is false for."""
        if key is not None:
            normalised = self.normalise(key)
            entry = self.entries.get(normalised) if normalised is not None else None
            if entry is None or entry.use:
                return 0
            del self.entries[normalised]
            return 1
        doomed = [k for k, entry in self.entries.items()
                  if not entry.use and (keep is None or not keep(entry))]
        for k in doomed:
            del self.entries[k]
        return len(doomed)


class Stickiness:
    """A backend's stick rules over its table, compiled."""

    def __init__(self, table: StickTable, rules: tuple[StickRule, ...],
                 servers: list[ServerState]):
        self.table = table
        table.stores_server = True
        self.servers = table.servers = servers  # the registry's live list
        self.matches = [(fetch_for(r.pattern), compile_condition(r.condition))
                        for r in rules if r.kind in ("on", "match")]
        self.stores = [(fetch_for(r.pattern), compile_condition(r.condition))
                       for r in rules if r.kind in ("on", "store-request")]

    def _keys(self, rules, view: KeyView):
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

    def match(self, view: KeyView, now: float) -> ServerState | None:
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

    def store(self, view: KeyView, server: ServerState, now: float) -> None:
        """Once connected: the first rule that yields a key records server
        (HAProxy stores one key per table and request)."""
        key = next(self._keys(self.stores, view), None)
        if key is not None:
            self.table.store(key, server, now)
