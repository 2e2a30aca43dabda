"""The interface every balancing algorithm implements.

A balancer is pure: it sees a backend's list of `ServerState` objects (shared with
the registry) and answers which server should take the next connection. It does no
I/O and keeps no clock. The proxy calls `rebuild()` whenever the registry reports a
change in that backend (state, weight, server added or removed), so per-pick work
stays small: anything derivable from the server list is computed there, once.

Selection follows HAProxy's documented rules: active servers first; backups only
when no active server is usable, and then only the first usable backup unless
`option allbackups`. Servers at their `maxconn` are skipped by `pick` (the proxy
queues when every candidate is full, see `pick`'s return contract).
"""

from __future__ import annotations

from typing import Protocol

from haply.runtime.registry import ServerState


class RequestKey(Protocol):
    """What hash-based algorithms may look at. The proxy passes an object with
    these attributes; non-hashing algorithms ignore it."""

    client_ip: str  # source
    uri: str  # uri: the request target as received, path and query
    query: str  # url_param: the part after "?"

    def header(self, name: str) -> list[str]:
        """hdr(NAME): every value of a header, by lower-case name."""


class Balancer(Protocol):
    def rebuild(self) -> None:
        """Recompute after the server list, a state or a weight changed."""

    def pick(self, key: RequestKey | None, exclude: ServerState | None = None) -> ServerState | None:
        """The server for the next connection, or None.

        `exclude` is the server a retry with redispatch is moving away from: pick
        another one if any other is usable. Returns None when no usable server has a
        free slot (all full: the caller queues) or none is usable at all (the caller
        can tell the two apart with `has_usable()`).
        """

    def has_usable(self) -> bool:
        """True if at least one server (active, else backup) could take traffic."""

    def connection_started(self, server: ServerState) -> None:
        """A connection to server began (leastconn keeps its order here)."""

    def connection_ended(self, server: ServerState) -> None:
        """A connection to server ended."""
