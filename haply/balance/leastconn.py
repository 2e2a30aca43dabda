"""Fewest connections relative to weight (`balance leastconn`).

HAProxy's manual: "The server with the lowest number of connections receives
the connection. Round-robin is performed within groups of servers of the same
load ... It will also consider the number of queued connections in addition
to the established ones." Weights are dynamic.

Load of a server = (current_sessions + queued) / effective_weight. The heap
key is the integer (sessions + queued) * LOAD_SCALE // weight with
LOAD_SCALE = 256 * 256: two different loads a/w1 != b/w2 differ by at least
1 / (w1 * w2) >= 1/65536 (weights are at most 256), so scaled they differ by
at least 1 and their floors keep the order; equal loads get equal keys. The
comparison is exact without floats.

Round-robin among equals: each time a server's load changes it is re-queued
with a fresh sequence number, so among equal loads the one that changed
longest ago goes first. With sequential short requests (all loads back to 0)
this visits the servers in turn.

The heap uses lazy deletion: a server's live entry is the one whose version
matches `_version[server]`; stale entries are dropped when they surface, and
the heap is compacted when stale entries outnumber live ones 3 to 1. Each
connection start/end is one push, each pick one pop and one push: O(log n).
The caller counts the session on the ServerState (current_sessions) before
calling connection_started()/connection_ended().
"""

from __future__ import annotations

from heapq import heapify, heappop, heappush, heapreplace
from typing import Sequence

from haply.balance.selection import GroupBalancer, has_free_slot
from haply.runtime.registry import ServerState

# Fixed-point scale for load = sessions / weight: the square of the largest
# weight (256, HAProxy's maximum), which keeps the order exact.
LOAD_SCALE = 256 * 256
# Compact the heap when it holds this many times more entries than servers.
COMPACT_FACTOR = 4


class LeastConn(GroupBalancer):
    """`balance leastconn`."""

    __slots__ = ("_heap", "_version", "_seq", "_members")

    def __init__(self, servers: Sequence[ServerState], *, allbackups: bool = False) -> None:
        self._heap: list[tuple[int, int, int, ServerState]] = []
        self._version: dict[int, int] = {}
        self._members: set[int] = set()
        self._seq = 0
        super().__init__(servers, allbackups=allbackups)

    def _build(self, group: tuple[ServerState, ...]) -> None:
        self._members = {id(s) for s in group}
        self._heap = []
        self._version = {}
        for server in group:  # server_id order: equal loads start in that order
            self._queue(server)

    @staticmethod
    def _load(server: ServerState) -> int:
        weight = server.effective_weight
        if weight <= 0:
            weight = 1
        return (server.current_sessions + server.queued) * LOAD_SCALE // weight

    def _queue(self, server: ServerState) -> None:
        self._seq += 1
        self._version[id(server)] = self._seq
        heappush(self._heap, (self._load(server), self._seq, self._seq, server))

    def _requeue(self, server: ServerState) -> None:
        if id(server) in self._members:
            self._queue(server)
            if len(self._heap) > COMPACT_FACTOR * (len(self._members) + 1):
                self._compact()

    def _compact(self) -> None:
        version = self._version
        self._heap = [e for e in self._heap if version.get(id(e[3])) == e[2]]
        heapify(self._heap)

    def connection_started(self, server: ServerState) -> None:
        self._requeue(server)

    def connection_ended(self, server: ServerState) -> None:
        self._requeue(server)

    def pick(self, key: object = None, exclude: ServerState | None = None) -> ServerState | None:
        # Fast path: the least loaded live entry can take the connection; it is
        # re-queued behind its equals (so ties rotate even if the caller does
        # not report the connection) with one heapreplace.
        heap = self._heap
        if heap:
            top = heap[0]
            server = top[3]
            if (self._version.get(id(server)) == top[2] and server is not exclude
                    and (server.maxconn <= 0 or server.current_sessions < server.maxconn)):
                self._seq = seq = self._seq + 1
                self._version[id(server)] = seq
                heapreplace(heap, (self._load(server), seq, seq, server))
                return server
        return self._pick_slow(exclude)

    def _pick_slow(self, exclude: ServerState | None) -> ServerState | None:
        heap = self._heap
        version = self._version
        skipped: list | None = None
        chosen = None
        while heap:
            entry = heappop(heap)
            server = entry[3]
            if version.get(id(server)) != entry[2]:
                continue  # stale
            if server is not exclude and has_free_slot(server):
                chosen = server
                break
            if skipped is None:
                skipped = []
            skipped.append(entry)
        if skipped is not None:
            for entry in skipped:
                if chosen is None and entry[3] is exclude and has_free_slot(exclude):
                    chosen = exclude
                    continue
                heappush(heap, entry)
        if chosen is None:
            return None
        # Re-queue behind its equals so ties rotate even before the caller
        # reports the connection (it will re-queue again with the new load).
        self._queue(chosen)
        return chosen
