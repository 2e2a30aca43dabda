"""Weighted, static round-robin (`balance static-rr`), and the weight map.

HAProxy documents static-rr as round-robin whose weights are fixed at start
("changing a server's weight on the fly will have no effect") and with no
limit on the number of servers. That shape suggests a precomputed map of
W = sum(weights) slots walked by an index: one array read per pick, O(1).

The layout of the map follows what HAProxy 2.6 does, found by black-box runs
(tests/interop/test_balance_oracle.py records its cycles). Slots are filled
one at a time; for each slot every server's credit grows by its weight, and
the slot goes to the server with the most *whole cycles* of credit
(credit // W, counted from one cycle up), the first server in the group among
equals; the winner then pays one cycle (W) of credit. Each server gets exactly
its weight in slots per cycle. Because credit is compared in whole cycles, a
heavy server can take adjacent slots ((4,2,1) gives 1 1 2 1 2 1 3), which an
evenly spaced layout never does; this rule reproduces every recorded cycle.

The same map serves `hash-type map-based` (hashing.py): a hash modulo W
indexes it, so a server's share of keys is its share of the weight.
"""

from __future__ import annotations

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
    weighted = [(server, weight_of(server)) for server in group]
    weighted = [(server, weight) for server, weight in weighted if weight > 0]
    total = sum(weight for _, weight in weighted)
    credit = [0] * len(weighted)
    slots: list[ServerState] = []
    for _ in range(total):
        best = -1
        best_cycles = 0
        for index, (_, weight) in enumerate(weighted):
            credit[index] += weight
            cycles = (credit[index] + total) // total
            if best < 0 or cycles > best_cycles:
                best, best_cycles = index, cycles
        slots.append(weighted[best][0])
        credit[best] -= total
    return slots


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
