"""Weighted, static round-robin (`balance static-rr`), and the weight map.

HAProxy documents static-rr as round-robin whose weights are fixed at start
("changing a server's weight on the fly will have no effect") and with no
limit on the number of servers. That shape suggests a precomputed map of
W = sum(weights) slots walked by an index: one array read per pick, O(1).

The map layout (`weighted_map`) was chosen to follow what HAProxy 2.6 does,
observed by black-box runs (tests/interop/test_balance_oracle.py):

- the first server of the group owns slot 0, and its w turns fall at
  k * W / w for k = 0 .. w-1;
- every other server's k-th turn (k = 1 .. w) falls at k * W / w, i.e. one
  full step after the start of the cycle, so the last turn of each lands at
  the end of the cycle;
- turns falling on the same point: servers other than the first one go
  first, in server_id order (so equal weights alternate: 1 2 1 2 ...).

Each server gets exactly its weight in slots and its turns are evenly spaced.
This reproduces HAProxy exactly for two-server backends and for many small
mixes ((1,1,1), (3,2,1), (5,1), (1,2,3), (2,2,1), (3,3,2), (4,4), ...; 30 of
78 recorded mixes). HAProxy's own cycles are not always evenly spaced
((4,2,1) gives 1 1 2 1 2 1 3: two adjacent turns of s1, then gaps of two), so
no evenly spaced layout can reproduce all of them; for those mixes (for
example (2,3,4,1), (4,2,1), (10,1,1)) the per-cycle share is still exactly
HAProxy's, only the order inside a cycle differs. The oracle test names them
with both cycles.

The same map serves `hash-type map-based` (hashing.py): a hash modulo W
indexes it, so a server's share of keys is its share of the weight.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Callable, Sequence

from haply.balance.selection import GroupBalancer, has_free_slot
from haply.runtime.registry import ServerState


def configured_weight(server: ServerState) -> int:
    """Static algorithms use the weight from the configuration, not the runtime
    one; a runtime weight of 0 still removes the server (it is not usable)."""
    return server.weight if server.weight > 0 else 0


def weighted_map(group: Sequence[ServerState],
                 weight_of: Callable[[ServerState], int] = configured_weight) -> list[ServerState]:
    """W slots (W = total weight) holding each server as often as its weight."""
    events: list[tuple[Fraction, int, ServerState]] = []
    for index, server in enumerate(group):
        weight = weight_of(server)
        if weight <= 0:
            continue
        total_steps = range(weight) if index == 0 else range(1, weight + 1)
        for k in total_steps:
            events.append((Fraction(k, weight), index, server))
    # Positions are k/w of the cycle; multiplying by W does not change the order.
    events.sort(key=lambda e: (e[0], e[1] == 0, e[1]))
    return [server for _, _, server in events]


class StaticRoundRobin(GroupBalancer):
    """`balance static-rr`: a fixed map walked by an index."""

    __slots__ = ("_map", "_index")

    def __init__(self, servers: Sequence[ServerState], *, allbackups: bool = False) -> None:
        self._map: list[ServerState] = []
        self._index = 0
        super().__init__(servers, allbackups=allbackups)

    def _build(self, group: tuple[ServerState, ...]) -> None:
        self._map = weighted_map(group)
        if self._index >= len(self._map):
            self._index = 0

    def pick(self, key: object = None, exclude: ServerState | None = None) -> ServerState | None:
        slots = self._map
        size = len(slots)
        if not size:
            return None
        index = self._index
        server = slots[index]
        index += 1
        self._index = index if index < size else 0
        if server is not exclude and (server.maxconn <= 0 or server.current_sessions < server.maxconn):
            return server
        return self._probe(exclude)

    def _probe(self, exclude: ServerState | None) -> ServerState | None:
        """The first slot was full or excluded: walk on to the next one that
        can take the connection (at most one cycle), moving the index along so
        the walk stays fair."""
        slots = self._map
        size = len(slots)
        for _ in range(size):
            server = slots[self._index]
            self._index = self._index + 1 if self._index + 1 < size else 0
            if server is not exclude and has_free_slot(server):
                return server
        if exclude is not None and exclude in self.group and has_free_slot(exclude):
            return exclude
        return None
