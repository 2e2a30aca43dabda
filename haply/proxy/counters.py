"""Sticky counters: what a stick-table's entries count, and a session's tracking.

`stick-table ... store http_req_rate(10s),conn_cur` makes each entry of a table
keep those counters; `tcp-request connection track-sc0 src` or `http-request
track-sc0 src` makes a session (or, for http-request, one request) follow the
entry of its key in one of three sticky counters, sc0 to sc2; events of that
session (a connection, a request, an error) are then added to the entry, and
the `sc*_` and `src_` fetches read them back in conditions:

    stick-table type ip size 100k expire 30s store http_req_rate(10s)
    http-request track-sc0 src
    http-request deny deny_status 429 if { sc_http_req_rate(0) gt 100 }

What counts, as HAProxy 2.6 counts it (compared with `show table` in the
interop tests): tracking an entry counts one connection in it (conn_cnt,
conn_rate, and conn_cur until the tracking ends); a session tracked at the
connection or session stage counts one session (sess_cnt, sess_rate) once the
connection rules accept it; every request the session begins counts in
http_req_cnt and http_req_rate, and a request tracked by an http-request rule
counts itself; a request that fails on the client's side (a bad or truncated
request, a connection closed before its first request, a denied or tarpitted
one, a 4xx answer) counts in http_err_cnt and http_err_rate; a failure a
server causes (a 5xx answer other than 501 and 505, no answer, a broken or
late one) in http_fail_cnt and http_fail_rate. bytes_in_cnt and bytes_out_cnt
(and their rates) count what the client sent and was sent, heads included, as
the connection carried them (haply counts bytes on the wire; HAProxy counts an
HTTP message as its internal representation holds it, a few bytes more per
head). They are added when a request ends and when the connection does, to
every entry tracked at that moment, as HAProxy adds them when it updates a
stream's counters (so a request tracked by an http-request rule counts its
own head and body).

Rates are HAProxy's frequency counters: events in the current period plus
those of the previous one weighted by the part of it still inside a sliding
window of one period.

Pure: entries, counters and tracking state; time is an argument.
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache
from typing import Callable, Protocol

from haply.balance.hashing import avalanche, sdbm
from haply.config.model import STICK_COUNTED as COUNTED, STICKY_SLOTS as SLOTS
from haply.http.values import comma_values, cookie_values


class KeyView(Protocol):
    """What a key is read from: the connection's addresses and, in mode
    http, the request's fields."""

    client_ip: str
    client_port: int
    local_ip: str
    local_port: int
    path: str  # in mode http: the request's path, and its whole target
    uri: str

    def header(self, name: str) -> list[str]:
        """Every value of a header (lower-case name)."""

# An event adds one to each of these that the entry stores.
CONNECTION = ("conn_cnt", "conn_rate", "conn_cur")
SESSION = ("sess_cnt", "sess_rate")
REQUEST = ("http_req_cnt", "http_req_rate")
ERROR = ("http_err_cnt", "http_err_rate")
FAILURE = ("http_fail_cnt", "http_fail_rate")
BYTES_IN = ("bytes_in_cnt", "bytes_in_rate")
BYTES_OUT = ("bytes_out_cnt", "bytes_out_rate")
GPC = {"gpc0": ("gpc0", "gpc0_rate"), "gpc1": ("gpc1", "gpc1_rate")}


@lru_cache(maxsize=4096)
def _hash32(text: str) -> int:
    """base32 and url32: sdbm with full avalanche, as HAProxy hashes them.
    Cached: sdbm walks the text in Python, and an API's URLs repeat."""
    return avalanche(sdbm(text.encode("latin-1", "replace")))


@lru_cache(maxsize=4096)
def _packed_address(text: str) -> bytes | None:
    try:
        return ipaddress.ip_address(text).packed
    except ValueError:
        return None


def _with_host(view: KeyView, rest: str) -> str:
    """The first Host field's value, then rest (HAProxy's base and url32;
    rest alone without a Host field)."""
    hosts = view.header("host")
    return hosts[0] + rest if hosts else rest


def _hash_and_source(text: Callable[[KeyView], str]) -> Callable[[KeyView], bytes | None]:
    """base32+src and url32+src: the hash (4 bytes, network order), then the
    client's address (4 or 16 bytes), for a binary table."""
    def key(view: KeyView) -> bytes | None:
        address = _packed_address(view.client_ip)
        if address is None:
            return None
        return _hash32(text(view)).to_bytes(4, "big") + address
    return key


def base(view: KeyView) -> str:
    """HAProxy's `base`: the first Host field's value, then the path."""
    return _with_host(view, view.path)


def _whole_url(view: KeyView) -> str:
    return _with_host(view, view.uri)


# Keys read from the request (haply.config.haproxy.STICK_REQUEST_KEYS)
REQUEST_KEYS: dict[str, Callable[[KeyView], str | bytes | None]] = {
    "base": base,
    "base32": lambda view: str(_hash32(base(view))),
    "base32+src": _hash_and_source(base),
    "path": lambda view: view.path,
    "url": lambda view: view.uri,
    "url32": lambda view: str(_hash32(_whole_url(view))),
    "url32+src": _hash_and_source(_whole_url),
}


def fetch_for(pattern: str) -> Callable[[KeyView], str | bytes | None]:
    """The compiled sample fetch of a stick rule or track-sc key (the parser
    checked the name): a text, or bytes for a binary key."""
    request_key = REQUEST_KEYS.get(pattern)
    if request_key is not None:
        return request_key
    if pattern in ("req.ssl_sni", "req_ssl_sni"):
        # imported here: haply.proxy.payload's view is made of this module's parts
        from haply.proxy.payload import payload_sample
        sample = payload_sample("req.ssl_sni")
        return lambda view: sample(view)[0] if hasattr(view, "payload") else None
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

        def header(view: KeyView) -> str | None:
            values = comma_values(view.header(name))
            return values[-1] if values else None  # HAProxy: the last occurrence
        return header

    def cookie(view: KeyView) -> str | None:
        values = cookie_values(view.header("cookie"), argument)
        return values[0] if values else None
    return cookie


class Rate:
    """A frequency counter over `period` seconds.

    Periods follow one another from the counter's creation (`origin`); the
    one a time falls in is its number, `(time - origin) // period`, the
    same computation for every time, so that float rounding at a boundary
    cannot put an event in one period and the boundary in the next. Until a
    little before the current period's end (`until`), no division is needed.
    """

    __slots__ = ("period", "origin", "index", "start", "until", "current", "previous")

    def __init__(self, period: float, now: float):
        self.period = period
        self.origin = now
        self.current = 0
        self.previous = 0
        self._enter(0)

    def _enter(self, index: int) -> None:
        period = self.period
        self.index = index  # the period the current count is for
        self.start = self.origin + index * period
        # short of the period's end by far more than a clock's rounding (a
        # microsecond at least): every time before this is in this period,
        # whatever the rounding of the division
        self.until = self.start + period - max(period * 1e-6, 1e-6)

    def period_of(self, now: float) -> int:
        return int((now - self.origin) // self.period)

    def _turn(self, now: float) -> None:
        if now < self.until:
            return
        index = int((now - self.origin) // self.period)
        if index > self.index:
            self.previous = self.current if index == self.index + 1 else 0
            self.current = 0
            self._enter(index)

    def restore(self, now: float, elapsed: float, current: int, previous: int) -> None:
        """Take a peer's counter: its current period began `elapsed` seconds
        ago with these counts (haply.peers)."""
        self.origin = now - elapsed
        self.current, self.previous = current, previous
        self._enter(0)

    def add(self, now: float, count: int = 1) -> None:
        if now >= self.until:
            self._turn(now)
        self.current += count

    def value(self, now: float) -> int:
        if now >= self.until:
            self._turn(now)
        remaining = self.period - (now - self.start)
        return self.current + int(self.previous * max(remaining, 0.0) / self.period)


def new_data(store: tuple[tuple[str, float | None], ...], now: float) -> dict:
    """An entry's counters: name -> int, or Rate for the rates."""
    return {name: (Rate(period, now) if period is not None else 0) for name, period in store}


def add(data: dict, names: tuple[str, ...], now: float, count: int = 1) -> None:
    """Count one event in each of names that data stores."""
    for name in names:
        value = data.get(name)
        if value is None:
            continue
        if type(value) is int:
            data[name] = value + count
        else:
            value.add(now, count)


def read(data: dict, name: str, now: float) -> int | None:
    """A counter's value now, or None when the entry does not store it."""
    value = data.get(name)
    if value is None or type(value) is int:
        return value
    return value.value(now)


def set_value(data: dict, name: str, value: int, now: float) -> None:
    """A counter set by hand (`set table`): a rate starts its period with value."""
    if type(data[name]) is int:
        data[name] = value
    else:
        rate = data[name] = Rate(data[name].period, now)
        rate.current = value


def show(data: dict, now: float) -> str:
    """The counters as `show table` prints them: `name=value` and
    `name(period in ms)=value`, in HAProxy's order."""
    parts = []
    for name in COUNTED:
        value = data.get(name)
        if value is None:
            continue
        if type(value) is int:
            parts.append(f"{name}={value}")
        else:
            parts.append(f"{name}({round(value.period * 1000)})={value.value(now)}")
    return " ".join(parts)


class Tracked:
    """One sticky counter of a session: the entry it follows."""

    __slots__ = ("table", "key", "entry", "per_request", "session_counted")

    def __init__(self, table, key: str, entry, per_request: bool):
        self.table = table
        self.key = key
        self.entry = entry
        self.per_request = per_request  # tracked by an http-request rule
        self.session_counted = False


class Tracking:
    """A session's sticky counters sc0..sc2, and the events it adds to them."""

    __slots__ = ("slots", "requests", "bytes_in", "bytes_out")

    def __init__(self) -> None:
        self.slots: list[Tracked | None] = [None] * SLOTS
        self.requests = 0  # requests begun, to count a connection that sent none
        # the connection's byte counts up to which entries have been given them
        self.bytes_in = 0
        self.bytes_out = 0

    def track(self, slot: int, table, key: str, now: float, per_request: bool = False,
              counts_request: bool = False) -> None:
        """Start following key's entry in table, unless slot already follows
        one (the first track-scN rule that applies wins) or a full `nopurge`
        table has no room for it. per_request: until the request ends
        (http-request, and tcp-request content in mode http); counts_request:
        the request under way counts in it now (http-request: the request
        was counted before the rule tracked it)."""
        if self.slots[slot] is not None:
            return
        entry = table.track(key, now)
        if entry is None:
            return
        self.slots[slot] = Tracked(table, key, entry, per_request)
        data = entry.data
        add(data, CONNECTION, now)
        if counts_request:
            add(data, REQUEST, now)

    def count_session(self, now: float) -> None:
        """The session's connection was accepted: each counter tracked so far
        counts one session (once)."""
        for tracked in self.slots:
            if tracked is not None and not tracked.session_counted:
                tracked.session_counted = True
                add(tracked.entry.data, SESSION, now)

    def request_begun(self, now: float) -> None:
        self.requests += 1
        for tracked in self.slots:
            if tracked is not None:
                add(tracked.entry.data, REQUEST, now)

    def request_failed(self, now: float) -> None:
        for tracked in self.slots:
            if tracked is not None:
                add(tracked.entry.data, ERROR, now)

    def server_failed(self, now: float) -> None:
        for tracked in self.slots:
            if tracked is not None:
                add(tracked.entry.data, FAILURE, now)

    def count_bytes(self, transport, now: float) -> None:
        """Add what the connection carried since the last time to every entry
        tracked now. transport: one that counts its bytes (`received`,
        `written`: haply.proxy.byte_counts.CountingTransport), which a session
        has when a table stores byte counts; None: nothing to add."""
        if transport is None:
            return
        received, written = transport.received, transport.written
        sent_in, sent_out = received - self.bytes_in, written - self.bytes_out
        self.bytes_in, self.bytes_out = received, written
        if sent_in or sent_out:
            for tracked in self.slots:
                if tracked is not None:
                    data = tracked.entry.data
                    add(data, BYTES_IN, now, sent_in)
                    add(data, BYTES_OUT, now, sent_out)

    def request_ended(self, now: float, transport=None) -> None:
        """The request is over: its bytes are counted, and the counters an
        http-request rule tracked for it stop."""
        self.count_bytes(transport, now)
        slots = self.slots
        for index, tracked in enumerate(slots):
            if tracked is not None and tracked.per_request:
                slots[index] = None
                tracked.table.release(tracked.entry, now)

    def ended(self, now: float, transport=None) -> None:
        """The session is over: its last bytes are counted, every counter stops."""
        self.count_bytes(transport, now)
        slots = self.slots
        for index, tracked in enumerate(slots):
            if tracked is not None:
                slots[index] = None
                tracked.table.release(tracked.entry, now)

    def entry(self, slot: int, table, now: float):
        """The entry counter `slot` tracks, or with table, the entry of the
        same key in that table; None when not tracked or not there."""
        tracked = self.slots[slot]
        if tracked is None:
            return None
        if table is None or table is tracked.table:
            return tracked.entry
        return table.find(tracked.key, now)

    def apply(self, action: str, slot: int, value: int, now: float) -> None:
        """sc-inc-gpc0|1(N) and sc-set-gpt0(N) on counter `slot`, if tracked."""
        tracked = self.slots[slot]
        if tracked is None:
            return
        data = tracked.entry.data
        if action == "set-gpt0":
            if "gpt0" in data:
                data["gpt0"] = value
        else:
            add(data, GPC[action[4:]], now)


class _NoEntry:
    """What a src_ fetch reads when the client's address has no entry."""

    __slots__ = ()
    use = 0
    data: dict = {}


NO_ENTRY = _NoEntry()


KILOBYTES = {"kbytes_in": "bytes_in_cnt", "kbytes_out": "bytes_out_cnt"}


def stored_as(fetch_name: str) -> str:
    """The data type a fetch reads (get_gpc0, inc_gpc0: gpc0; kbytes_in:
    bytes_in_cnt)."""
    if fetch_name.startswith(("get_", "inc_", "clr_")):
        return fetch_name[4:]
    return KILOBYTES.get(fetch_name, fetch_name)


def fetch(fetch_name: str):
    """What an sc_/src_ fetch reads from an entry: (entry, now) -> int, or
    None when the entry's table does not store it (the fetch fails)."""
    if fetch_name == "trackers":
        return lambda entry, now: entry.use
    name = stored_as(fetch_name)
    action = fetch_name[:4]
    if action == "inc_":
        def increment(entry, now):
            data = entry.data
            if name not in data and name + "_rate" not in data:
                return None
            add(data, GPC[name], now)
            return read(data, name, now) if name in data else read(data, name + "_rate", now)
        return increment
    if action == "clr_":
        def clear(entry, now):
            data = entry.data
            previous = data.get(name)
            if previous is None:
                return None
            data[name] = 0
            return previous
        return clear

    if fetch_name in KILOBYTES:
        def kilobytes(entry, now):
            if entry is NO_ENTRY:
                return 0
            count = read(entry.data, name, now)
            return count >> 10 if count is not None else None
        return kilobytes

    def value(entry, now):
        if entry is NO_ENTRY:
            return 0
        return read(entry.data, name, now)
    return value
