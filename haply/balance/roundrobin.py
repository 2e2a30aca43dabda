"""Weighted, dynamic round-robin (`balance roundrobin`).

Goal: the same sequence of servers as HAProxy 2.6 for the same weights, so a
haply node and an HAProxy node spread load identically. The order below was
found by sending sequential requests through the real HAProxy 2.6 to named
backends and recording who answered (tests/interop/test_balance_oracle.py
replays that comparison); it reproduces every recorded sequence (75 weight
mixes of 2-6 servers, weights 1-20, three cycles each). It is written here
from first principles:

*Spacing.* With total weight W, a server of weight w must get w turns in every
W picks, one every W/w picks. W/w is rarely an integer, so each server keeps
the pick number at which its next turn is due (`due`, an integer) and the
remainder `r` of the division: after a turn at position p the next turn is due
at p + (W + r) // w and the new remainder is (W + r) % w. This is error
diffusion: over w turns the steps add up to exactly W, so the per-cycle share
is exact, and no two turns of one server are more than one pick off the ideal.

*Order among servers due at the same pick.* The one with the smaller r - w
goes first: the server that still "owes" more weight units in that slot, which
favours heavy servers and, for equal weights, the one furthest behind its
ideal point. Remaining ties go first-queued, first-served.

*Entering.* A server that has no position yet (at start, after its weight
changed, or when it comes back) waits in an entry line ordered by weight
(heaviest first, then server_id). It enters, and is served at once, at a pick
where no placed server is due. That is why the heaviest server opens a
backend's first cycle and light servers are spread through it rather than
bunched at the start.

*Nothing due, nobody waiting.* The earliest placed server is served.

Per pick this is one heap pop and one push: O(log n), no allocation beyond
the pushed tuple. A full server is passed over and loses that turn; an
excluded one keeps it. `rebuild()` keeps the positions of servers whose weight did
not change, so a server going up or down does not reset everyone's rhythm; but a
position that the old, larger total put beyond one period of the new total is
brought within it (a heavy server going down would otherwise leave the light ones
due far ahead, and one of them served several times in a row until they came due).
"""

from __future__ import annotations

from heapq import heapify, heappop, heappush, heapreplace
from typing import Sequence

from haply.balance.selection import GroupBalancer, has_free_slot
from haply.runtime.registry import ServerState

# Heap entry: (due, r - w, seq, r, weight, server). `seq` is unique, so the
# tuple comparison never reaches the server object.
_DUE, _TIE, _SEQ, _REM, _WEIGHT, _SERVER = range(6)


class RoundRobin(GroupBalancer):
    """`balance roundrobin`: weights are read at every rebuild (dynamic)."""

    __slots__ = ("_heap", "_entering", "_pos", "_seq", "_total")

    def __init__(self, servers: Sequence[ServerState], *, allbackups: bool = False) -> None:
        self._heap: list[tuple] = []
        self._entering: list[ServerState] = []  # a stack: next to enter is last
        self._pos = 0
        self._seq = 0
        self._total = 0
        super().__init__(servers, allbackups=allbackups)

    @staticmethod
    def _weight(server: ServerState) -> int:
        return server.effective_weight

    def _build(self, group: tuple[ServerState, ...]) -> None:
        weight_of = self._weight
        members = {id(s): weight_of(s) for s in group}
        self._total = sum(members.values())
        total, pos = self._total, self._pos
        kept = []
        for entry in self._heap:
            weight = members.get(id(entry[_SERVER]))
            if weight != entry[_WEIGHT]:
                continue
            # Due within one of its periods under the new total at the latest.
            latest = pos + -(-total // weight)
            kept.append(entry if entry[_DUE] <= latest else (latest,) + entry[1:])
        placed = {id(e[_SERVER]) for e in kept}
        heapify(kept)
        self._heap = kept
        waiting = [s for s in group if id(s) not in placed]
        # Heaviest first, then lowest server_id; stored reversed to pop().
        waiting.sort(key=lambda s: (-weight_of(s), s.server_id), reverse=True)
        self._entering = waiting

    def pick(self, key: object = None, exclude: ServerState | None = None) -> ServerState | None:
        # Fast path: the earliest placed server is due (or nobody waits to
        # enter) and can take the connection: one heapreplace.
        heap = self._heap
        if heap:
            top = heap[0]
            pos = self._pos
            if top[_DUE] <= pos or not self._entering:
                server = top[_SERVER]
                if server is not exclude and (server.maxconn <= 0 or server.current_sessions < server.maxconn):
                    weight = top[_WEIGHT]
                    step, rem = divmod(self._total + top[_REM], weight)
                    self._seq = seq = self._seq + 1
                    heapreplace(heap, (top[_DUE] + step, rem - weight, seq, rem, weight, server))
                    self._pos = pos + 1
                    return server
        return self._pick_slow(exclude)

    def _pick_slow(self, exclude: ServerState | None) -> ServerState | None:
        heap = self._heap
        entering = self._entering
        pos = self._pos
        skipped: list | None = None
        chosen = None
        while True:
            if heap and heap[0][_DUE] <= pos:
                entry = heappop(heap)
            elif entering:
                server = entering.pop()
                entry = (pos, 0, 0, 0, self._weight(server), server)
            elif heap:
                entry = heappop(heap)
            else:
                break
            server = entry[_SERVER]
            if server is not exclude and (server.maxconn <= 0 or server.current_sessions < server.maxconn):
                chosen = entry
                break
            if skipped is None:
                skipped = []
            skipped.append(entry)
        if skipped is not None:
            if chosen is None and exclude is not None:
                for i, entry in enumerate(skipped):
                    if entry[_SERVER] is exclude and has_free_slot(exclude):
                        chosen = skipped.pop(i)
                        break
            self._restore(skipped)
        if chosen is None:
            return None
        self._advance(chosen)
        return chosen[_SERVER]

    def _advance(self, entry: tuple, served: bool = True) -> None:
        weight = entry[_WEIGHT]
        step, rem = divmod(self._total + entry[_REM], weight)
        self._seq += 1
        heappush(self._heap, (entry[_DUE] + step, rem - weight, self._seq, rem, weight, entry[_SERVER]))
        if served:
            self._pos += 1

    def _restore(self, skipped: list) -> None:
        """Put passed-over servers back. A server skipped because it was full
        loses that turn (it moves on as if served) so it does not come back
        owed a burst of turns the moment a slot frees; an excluded server
        keeps its place (it was only avoided for this one request)."""
        for entry in reversed(skipped):
            server = entry[_SERVER]
            if not (server.maxconn <= 0 or server.current_sessions < server.maxconn):
                self._advance(entry, served=False)
            elif entry[_SEQ] == 0:  # had not entered yet: back to the front of the line
                self._entering.append(server)
            else:
                heappush(self._heap, entry)
