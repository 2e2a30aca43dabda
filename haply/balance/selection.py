"""Which servers a balancer may choose from, decided once for every algorithm.

HAProxy's rules (configuration manual 2.6, "backup" and "option allbackups"):

1. Only servers that may take new traffic count: administratively READY,
   operationally UP, effective weight above 0 (`ServerState.usable`). A DRAIN
   server or one whose weight was set to 0 gets no new traffic.
2. Active (non-backup) servers are used whenever at least one is usable.
3. Only when no active server is usable do backups take over: the first
   usable backup (lowest server_id) alone, or, with `option allbackups`, all
   usable backups balanced by weight like active servers would be.

The result of these rules, the *group*, depends only on the server list, its
states and weights, so it is computed in `rebuild()`; per pick only the
things that change without a registry event are looked at: whether a server
has a free slot (`maxconn`) and whether it is the one a redispatch excludes.

`GroupBalancer` is the common base: it owns the group and the Balancer
protocol's bookkeeping, and each algorithm implements `_build(group)` and
`pick()`.
"""

from __future__ import annotations

from typing import Sequence

from haply.runtime.registry import ServerState


def select_group(servers: Sequence[ServerState], allbackups: bool) -> tuple[ServerState, ...]:
    """The servers traffic may go to now, in server_id order (rules above)."""
    actives = [s for s in servers if not s.backup and s.usable]
    if actives:
        group = actives
    else:
        backups = [s for s in servers if s.backup and s.usable]
        if not backups:
            return ()
        if allbackups:
            group = backups
        else:
            group = [min(backups, key=_server_order)]
    group.sort(key=_server_order)
    return tuple(group)


def _server_order(server: ServerState) -> int:
    return server.server_id


def has_free_slot(server: ServerState) -> bool:
    """Same as `ServerState.has_free_slot`, spelled out for the hot path."""
    return server.maxconn <= 0 or server.current_sessions < server.maxconn


class GroupBalancer:
    """Base of every algorithm: the group, and the protocol's small parts.

    Subclasses set up their structures in `_build(group)`; `rebuild()` is the
    only place the group changes. `pick()` must honour `exclude` this way:
    another acceptable server if one exists, else `exclude` itself if it can
    take the connection (a redispatch to the same server beats a 503), else
    None.
    """

    __slots__ = ("servers", "allbackups", "group")

    def __init__(self, servers: Sequence[ServerState], *, allbackups: bool = False) -> None:
        # The live list shared with the registry: servers added or removed
        # there are seen at the next rebuild().
        self.servers = servers
        self.allbackups = allbackups
        self.group: tuple[ServerState, ...] = ()
        self.rebuild()

    def rebuild(self) -> None:
        self.group = select_group(self.servers, self.allbackups)
        self._build(self.group)

    def _build(self, group: tuple[ServerState, ...]) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def pick(self, key: object, exclude: ServerState | None = None) -> ServerState | None:  # pragma: no cover
        raise NotImplementedError

    def has_usable(self) -> bool:
        return bool(self.group)

    def connection_started(self, server: ServerState) -> None:
        """Called after the caller counted the new session on `server`."""

    def connection_ended(self, server: ServerState) -> None:
        """Called after the caller uncounted the ended session on `server`."""

    def __repr__(self) -> str:
        names = ",".join(s.name for s in self.group)
        return f"<{type(self).__name__} group=[{names}]>"
