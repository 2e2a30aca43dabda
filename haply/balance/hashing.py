"""Hash-based balancing: `balance source | uri | url_param | hdr(<name>)`.

A request attribute is hashed and the hash picks the server, so the same
client address, URI, parameter value or header value keeps reaching the same
server while the farm does not change. What is hashed (HAProxy 2.6 manual,
"balance"):

- source: the client IP address.
- uri: the part of the URI before '?' ("whole" hashes all of it; "len N"
  keeps the first N characters, "depth N" the first N directory levels, and
  "path-only" drops a scheme and authority so absolute and origin-form
  requests hash alike).
- url_param <name>: the value of that query-string parameter.
- hdr(<name>): that header's value ("use_domain_only" keeps only the main
  domain label of a host name, e.g. "1wt" of "haproxy.1wt.eu").

"If no value is found or if the parameter is not found, then a round robin
algorithm is applied" (same for an absent or empty header). Observed on
HAProxy 2.6: with map-based hashing that round robin walks the weight map
itself, i.e. it is exactly static-rr's order (tests/interop checks this), so
the fallback is a `StaticRoundRobin`. With consistent hashing HAProxy's
fallback was seen to follow its ring in an uneven order (one server several
times in a row); haply uses its dynamic `RoundRobin` there instead, which
gives the same shares, smoothly.

Two ways to map a hash to a server (`hash-type`):

- map-based (default): the weight map of static_rr.py (W slots, each server
  as often as its configured weight), indexed by hash % W. Very even, but
  static: a server going up or down remaps most keys.
- consistent: a ring of POINTS_PER_WEIGHT points per unit of effective
  weight per server; a key goes to the first point at or after its hash.
  Weight changes take effect at the next rebuild, and adding or removing one
  of N servers moves only the keys of that server's arcs, about 1/N of them
  (tests/unit/test_balance_hashing.py measures it).

When the chosen server is full or excluded the next slot (map) or the next
ring point of another server (ring) is tried, so the fallback is itself
stable for a given key.

Hash functions (`hash-type <method> [<function>] [avalanche]`), as HAProxy 2.6
maps keys, so that haply and HAProxy send the same client to the same server
(one may replace the other node by node, behind the same VIP):

- the key of uri, url_param and hdr goes through sdbm (the default), djb2 or
  crc32 (the public algorithms of those names); `balance source` uses the
  IPv4 address itself as a 32-bit number, whatever the function;
- `avalanche` passes the result through Bob Jenkins' 32-bit integer hash
  (public domain) times 3221225473, as HAProxy does;
- map-based: that number modulo the map's size picks the slot (checked
  against HAProxy for every function, with and without avalanche);
- consistent: haply's own ring (below), so the number is spread over the
  ring with MurmurHash3's finaliser unless avalanche already did. The servers'
  points are haply's own: a key can land on another server than HAProxy's.

An IPv6 source is hashed with CRC-32 of its 16 bytes (HAProxy's mapping of
IPv6 clients was not reproduced). sdbm and djb2 walk the key byte by byte in
Python, so the last keys' hashes are remembered (REMEMBERED_KEYS): an API's
URIs and clients' addresses repeat.
"""

from __future__ import annotations

import socket
import zlib
from bisect import bisect_left
from typing import Sequence

from haply.balance.roundrobin import RoundRobin
from haply.balance.selection import GroupBalancer, has_free_slot
from haply.balance.static_rr import StaticRoundRobin, weighted_map
from haply.runtime.registry import ServerState

# Ring points per unit of weight for hash-type consistent. A server's share
# of keys strays from its weight's share by about 1/sqrt(points): with 64,
# farms of 2-12 servers of weight 1 were measured within +-25% of their share
# (100 points: +-20%, 40: +-35%), while a ring of 100 servers of weight 10
# (64,000 points) still builds in tens of milliseconds.
POINTS_PER_WEIGHT = 64

_MASK32 = 0xFFFFFFFF
_crc32 = zlib.crc32

HASH_KINDS = ("source", "uri", "url_param", "hdr")


def fmix32(h: int) -> int:
    """MurmurHash3's 32-bit finaliser: full avalanche of a 32-bit value."""
    h ^= h >> 16
    h = (h * 0x85EBCA6B) & _MASK32
    h ^= h >> 13
    h = (h * 0xC2B2AE35) & _MASK32
    h ^= h >> 16
    return h


def hash_bytes(data: bytes) -> int:
    """The stable 32-bit hash of the ring's points."""
    return fmix32(zlib.crc32(data))


def sdbm(data: bytes) -> int:
    h = 0
    for byte in data:
        h = (byte + (h << 6) + (h << 16) - h) & _MASK32
    return h


def djb2(data: bytes) -> int:
    h = 5381
    for byte in data:
        h = (h * 33 + byte) & _MASK32
    return h


def crc32(data: bytes) -> int:
    return _crc32(data)


def avalanche(a: int) -> int:
    """Bob Jenkins' 32-bit integer hash, times 3221225473 (HAProxy's avalanche)."""
    a = (a + 0x7ED55D16 + (a << 12)) & _MASK32
    a = (a ^ 0xC761C23C ^ (a >> 19)) & _MASK32
    a = (a + 0x165667B1 + (a << 5)) & _MASK32
    a = ((a + 0xD3A2646C) ^ (a << 9)) & _MASK32
    a = (a + 0xFD7046C5 + (a << 3)) & _MASK32
    a = (a ^ 0xB55A4F09 ^ (a >> 16)) & _MASK32
    return (a * 3221225473) & _MASK32


FUNCTIONS = {"sdbm": sdbm, "djb2": djb2, "crc32": crc32}
REMEMBERED_KEYS = 4096


def source_number(address: str) -> int | None:
    """An IPv4 client address (or IPv4-mapped IPv6) as the number HAProxy
    hashes; None for IPv6."""
    if address.startswith("::ffff:") and "." in address:
        address = address[7:]
    try:
        return int.from_bytes(socket.inet_aton(address), "big") if ":" not in address else None
    except OSError:
        return None


def hash_text(text: str) -> int:
    """The default key hash (sdbm, map-based) of a text."""
    return sdbm(text.encode("utf-8", "surrogateescape"))


# ---------------------------------------------------------------- key extraction


def _parse_uri_options(arg: str | None) -> tuple[bool, int, int, bool]:
    whole = path_only = False
    length = depth = 0
    words = (arg or "").split()
    i = 0
    while i < len(words):
        word = words[i]
        if word == "whole":
            whole = True
        elif word == "path-only":
            path_only = True
        elif word in ("len", "depth") and i + 1 < len(words) and words[i + 1].isdigit():
            if word == "len":
                length = int(words[i + 1])
            else:
                depth = int(words[i + 1])
            i += 1
        else:
            raise ValueError(f"balance uri: unknown option {word!r}")
        i += 1
    return whole, length, depth, path_only


def uri_key(path: str, whole: bool = False, length: int = 0, depth: int = 0,
            path_only: bool = False) -> str:
    """The part of the request URI that `balance uri` hashes."""
    if path_only and not path.startswith("/"):
        # absolute form: scheme://authority/path -> /path
        scheme_end = path.find("://")
        if scheme_end >= 0:
            slash = path.find("/", scheme_end + 3)
            path = path[slash:] if slash >= 0 else "/"
    if not whole:
        question = path.find("?")
        if question >= 0:
            path = path[:question]
    if depth:
        seen = 0
        for index, char in enumerate(path):
            if char == "/":
                seen += 1
                if seen > depth:
                    path = path[:index]
                    break
    if length:
        path = path[:length]
    return path


def url_param_value(query: str, name: str) -> str | None:
    """The value of `name` in a query string (no leading '?'), or None when
    absent or empty."""
    if not query:
        return None
    prefix = name + "="
    for part in query.split("&"):
        if part.startswith(prefix):
            value = part[len(prefix):]
            return value or None
    return None


def domain_only(host: str) -> str:
    """`use_domain_only`: the main domain label ("1wt" of "haproxy.1wt.eu")."""
    host = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
    labels = [label for label in host.split(".") if label]
    if len(labels) >= 2:
        return labels[-2]
    return labels[0] if labels else ""


# --------------------------------------------------------------- the balancer


class HashBalancer(GroupBalancer):
    """`balance source|uri|url_param|hdr` over a weight map or a ring."""

    __slots__ = ("kind", "arg", "consistent", "_extract", "_fallback", "_function",
                 "_avalanche", "_hashes", "_map", "_ring_keys", "_ring_servers", "_point_cache")

    def __init__(self, kind: str, servers: Sequence[ServerState], *, arg: str | None = None,
                 hash_type: str = "map-based", allbackups: bool = False) -> None:
        if kind not in HASH_KINDS:
            raise ValueError(f"unknown hash balance {kind!r}")
        words = (hash_type or "map-based").split()
        method, options = words[0], words[1:]
        if method not in ("map-based", "consistent"):
            raise ValueError(f"unknown hash-type {hash_type!r}: expected map-based or consistent")
        function = options[0] if options and options[0] != "avalanche" else "sdbm"
        if function not in FUNCTIONS:
            raise ValueError(f"hash function {function!r} is not supported by haply: "
                             f"expected {', '.join(FUNCTIONS)}")
        self.kind = kind
        self.arg = arg
        self.consistent = method == "consistent"
        self._function = FUNCTIONS[function]
        self._avalanche = "avalanche" in options
        self._hashes: dict[str, int] = {}
        self._extract = self._make_extractor(kind, arg)
        self._map: list[ServerState] = []
        self._ring_keys: list[int] = []
        self._ring_servers: list[ServerState] = []
        self._point_cache: dict[tuple[str, int], list[int]] = {}
        fallback = RoundRobin if self.consistent else StaticRoundRobin
        self._fallback: GroupBalancer = fallback(servers, allbackups=allbackups)
        super().__init__(servers, allbackups=allbackups)

    # -- keys

    @staticmethod
    def _make_extractor(kind: str, arg: str | None):
        if kind == "source":
            return lambda key: key.client_ip or None
        if kind == "uri":
            whole, length, depth, path_only = _parse_uri_options(arg)
            if not (whole or length or depth or path_only):
                def plain_uri(key):
                    path = key.uri
                    question = path.find("?")
                    return path[:question] if question >= 0 else path
                return plain_uri
            return lambda key: uri_key(key.uri, whole, length, depth, path_only)
        words = (arg or "").split()
        if not words:
            raise ValueError(f"balance {kind} requires an argument")
        if kind == "url_param":
            name = words[0]

            def param(key):
                query = key.query
                if not query:
                    path = key.uri
                    question = path.find("?")
                    query = path[question + 1:] if question >= 0 else ""
                return url_param_value(query, name)
            return param
        # hdr
        name = words[0].lower()
        def first_value(key):
            values = key.header(name)
            return (values[0] or None) if values else None
        if "use_domain_only" in words[1:]:
            return lambda key: domain_only(first_value(key) or "") or None
        return first_value

    def key_hash(self, key: object) -> int | None:
        """The 32-bit number of the request's key that picks its server, or None
        if it has none."""
        if key is None:
            return None
        value = self._extract(key)
        if value is None:
            return None
        h = self._hashes.get(value)
        if h is None:
            h = self._hash(value)
            if len(self._hashes) >= REMEMBERED_KEYS:
                self._hashes.clear()
            self._hashes[value] = h
        return h

    def _hash(self, value: str) -> int:
        number = source_number(value) if self.kind == "source" else None
        if number is None:
            data = value.encode("utf-8", "surrogateescape")
            number = crc32(data) if self.kind == "source" else self._function(data)
        if self._avalanche:
            return avalanche(number)
        return fmix32(number) if self.consistent else number

    # -- structures

    def rebuild(self) -> None:
        super().rebuild()
        self._fallback.rebuild()

    def _build(self, group: tuple[ServerState, ...]) -> None:
        if self.consistent:
            self._build_ring(group)
        else:
            self._map = weighted_map(group)

    def _points(self, server: ServerState, count: int) -> list[int]:
        cache_key = (server.name, count)
        points = self._point_cache.get(cache_key)
        if points is None:
            prefix = server.name.encode() + b"\0"
            points = [hash_bytes(prefix + str(i).encode()) for i in range(count)]
            self._point_cache[cache_key] = points
        return points

    def _build_ring(self, group: tuple[ServerState, ...]) -> None:
        pairs: list[tuple[int, int, ServerState]] = []
        live = set()
        for server in group:
            count = server.effective_weight * POINTS_PER_WEIGHT
            live.add((server.name, count))
            for point in self._points(server, count):
                # server_id breaks (rare) equal points the same way everywhere
                pairs.append((point, server.server_id, server))
        for stale in [k for k in self._point_cache if k not in live]:
            del self._point_cache[stale]
        pairs.sort(key=lambda p: (p[0], p[1]))
        self._ring_keys = [p[0] for p in pairs]
        self._ring_servers = [p[2] for p in pairs]

    # -- picking

    def pick(self, key: object = None, exclude: ServerState | None = None) -> ServerState | None:
        h = self.key_hash(key)
        if h is None:
            return self._fallback.pick(key, exclude)
        if self.consistent:
            return self._pick_ring(h, exclude)
        slots = self._map
        size = len(slots)
        if not size:
            return None
        index = h % size
        server = slots[index]
        if server is not exclude and (server.maxconn <= 0 or server.current_sessions < server.maxconn):
            return server
        for step in range(1, size):
            server = slots[(index + step) % size]
            if server is not exclude and has_free_slot(server):
                return server
        return self._excluded_fallback(exclude)

    def _pick_ring(self, h: int, exclude: ServerState | None) -> ServerState | None:
        keys = self._ring_keys
        size = len(keys)
        if not size:
            return None
        index = bisect_left(keys, h)
        if index == size:
            index = 0
        servers = self._ring_servers
        server = servers[index]
        if server is not exclude and (server.maxconn <= 0 or server.current_sessions < server.maxconn):
            return server
        for step in range(1, size):
            server = servers[(index + step) % size]
            if server is not exclude and has_free_slot(server):
                return server
        return self._excluded_fallback(exclude)

    def _excluded_fallback(self, exclude: ServerState | None) -> ServerState | None:
        if exclude is not None and exclude in self.group and has_free_slot(exclude):
            return exclude
        return None

    def connection_started(self, server: ServerState) -> None:
        self._fallback.connection_started(server)

    def connection_ended(self, server: ServerState) -> None:
        self._fallback.connection_ended(server)
