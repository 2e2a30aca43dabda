"""Balancing algorithms: one module per algorithm behind the `Balancer` protocol.

    from haply.balance import make_balancer
    balancer = make_balancer("roundrobin", registry.servers("app"))
    registry.subscribe("app", lambda state: balancer.rebuild())
    server = balancer.pick(request_key)            # None: all full or none usable
    ... count the session on server, then balancer.connection_started(server)

`algorithm` is spelled as in haproxy.cfg's `balance` line: roundrobin,
static-rr, leastconn, first, source, uri, url_param, hdr (argument in `arg`,
or written `hdr(Name)`), random (draws in `arg`, or written `random(3)`).
"""

from __future__ import annotations

from typing import Sequence

from haply.balance.base import Balancer, RequestKey
from haply.balance.first import First
from haply.balance.hashing import HASH_KINDS, HashBalancer
from haply.balance.leastconn import LeastConn
from haply.balance.random_draws import DEFAULT_DRAWS, RandomDraws
from haply.balance.roundrobin import RoundRobin
from haply.balance.selection import GroupBalancer, select_group
from haply.balance.static_rr import StaticRoundRobin
from haply.runtime.registry import ServerState

ALGORITHMS = ("roundrobin", "static-rr", "leastconn", "first", "source", "uri",
              "url_param", "hdr", "random")

__all__ = [
    "ALGORITHMS", "Balancer", "First", "GroupBalancer", "HashBalancer", "LeastConn",
    "RandomDraws", "RequestKey", "RoundRobin", "StaticRoundRobin", "hashes_requests",
    "make_balancer", "select_group",
]


def _split_call(algorithm: str) -> tuple[str, str | None]:
    """"hdr(Host)" -> ("hdr", "Host"); "roundrobin" -> ("roundrobin", None)."""
    name = algorithm.strip()
    if name.endswith(")") and "(" in name:
        head, _, inner = name[:-1].partition("(")
        return head.strip().lower(), inner.strip() or None
    return name.lower(), None


def hashes_requests(algorithm: str) -> bool:
    """True for the algorithms that pick a server from the request's own key
    (source, uri, url_param, hdr): "deterministic" in the manual's words."""
    return _split_call(algorithm)[0] in HASH_KINDS


def make_balancer(algorithm: str, servers: Sequence[ServerState], *, arg: str | None = None,
                  hash_type: str = "map-based", allbackups: bool = False) -> GroupBalancer:
    """The balancer for one backend's live server list (see module docstring).

    Raises ValueError for an unknown algorithm or a bad argument; the config
    layer reports it with the balance line's file:line.
    """
    name, inline = _split_call(algorithm)
    if inline is not None:
        arg = inline if not arg else f"{inline} {arg}"
    if name == "roundrobin":
        return RoundRobin(servers, allbackups=allbackups)
    if name == "static-rr":
        return StaticRoundRobin(servers, allbackups=allbackups)
    if name == "leastconn":
        return LeastConn(servers, allbackups=allbackups)
    if name == "first":
        return First(servers, allbackups=allbackups)
    if name in HASH_KINDS:
        return HashBalancer(name, servers, arg=arg, hash_type=hash_type, allbackups=allbackups)
    if name == "random":
        draws = DEFAULT_DRAWS
        if arg:
            word = arg.split()[0]
            if not word.isdigit() or int(word) < 1:
                raise ValueError(f"balance random: draws must be an integer of 1 or more, not {word!r}")
            draws = int(word)
        return RandomDraws(servers, draws=draws, allbackups=allbackups)
    raise ValueError(f"unknown balance algorithm {algorithm!r}: expected one of {', '.join(ALGORITHMS)}")
