"""The first server with a free slot (`balance first`).

HAProxy's manual: "The first server with available connection slots receives
the connection. The servers are chosen from the lowest numeric identifier to
the highest ... Once a server reaches its maxconn value, the next server is
used. ... This algorithm ignores the server weight."

The group is already in server_id order, so a pick is a scan from its start
to the first server with a free slot: O(number of full servers ahead of it).
No position is remembered between picks: sessions end (and free slots
appear) without the balancer being told in every code path, and a stale hint
would skip a server that is free again.
"""

from __future__ import annotations

from haply.balance.selection import GroupBalancer, has_free_slot
from haply.runtime.registry import ServerState


class First(GroupBalancer):
    """`balance first`."""

    __slots__ = ()

    def _build(self, group: tuple[ServerState, ...]) -> None:
        pass

    def pick(self, key: object = None, exclude: ServerState | None = None) -> ServerState | None:
        for server in self.group:
            if server.maxconn <= 0 or server.current_sessions < server.maxconn:
                if server is not exclude:
                    return server
        if exclude is not None and exclude in self.group and has_free_slot(exclude):
            return exclude
        return None
