"""Weighted random draws, least loaded of N (`balance random`, `random(<draws>)`).

HAProxy 2.6 manual: a random number is drawn (respecting weights, dynamic);
"When an argument <draws> is present, it must be an integer value one or
greater, indicating the number of draws before selecting the least loaded of
these servers ... The default value is 2" (the "power of two random choices",
Mitzenmacher). HAProxy draws through its consistent-hash ring; a weighted
draw straight from the cumulative weights gives the same distribution
without a ring: `rebuild()` stores the running sums of effective weights and a
draw is one `random()` and one `bisect`: O(log n), no allocation.

Load = (current_sessions + queued) / effective_weight, compared by cross
multiplication (no floats). Among equally loaded draws the first one wins.
A draw that lands on a full or excluded server does not count; when all N
draws are unusable the least loaded server that can take the connection is
found by a scan (O(n), only when the farm is nearly full).
"""

from __future__ import annotations

import random
from bisect import bisect_right
from typing import Sequence

from haply.balance.selection import GroupBalancer, has_free_slot
from haply.runtime.registry import ServerState

DEFAULT_DRAWS = 2


def _less_loaded(a: ServerState, b: ServerState) -> bool:
    """True if a's load per weight is strictly below b's."""
    return ((a.current_sessions + a.queued) * b.effective_weight
            < (b.current_sessions + b.queued) * a.effective_weight)


class RandomDraws(GroupBalancer):
    """`balance random(<draws>)`."""

    __slots__ = ("draws", "_rng", "_cumulative", "_total")

    def __init__(self, servers: Sequence[ServerState], *, draws: int = DEFAULT_DRAWS,
                 allbackups: bool = False, rng: random.Random | None = None) -> None:
        if draws < 1:
            raise ValueError("balance random: the number of draws must be 1 or more")
        self.draws = draws
        # A private generator: not shared with (or reseeded by) other code;
        # tests pass a seeded one.
        self._rng = rng or random.Random()
        self._cumulative: list[int] = []
        self._total = 0
        super().__init__(servers, allbackups=allbackups)

    def _build(self, group: tuple[ServerState, ...]) -> None:
        running = 0
        cumulative = []
        for server in group:
            running += server.effective_weight
            cumulative.append(running)
        self._cumulative = cumulative
        self._total = running

    def pick(self, key: object = None, exclude: ServerState | None = None) -> ServerState | None:
        group = self.group
        total = self._total
        if not group or total <= 0:
            return None
        cumulative = self._cumulative
        rand = self._rng.random
        best = None
        for _ in range(self.draws):
            server = group[bisect_right(cumulative, int(rand() * total))]
            if server is exclude or not (server.maxconn <= 0 or server.current_sessions < server.maxconn):
                continue
            if best is None or _less_loaded(server, best):
                best = server
        if best is not None:
            return best
        return self._scan(exclude)

    def _scan(self, exclude: ServerState | None) -> ServerState | None:
        best = None
        for server in self.group:
            if server is not exclude and has_free_slot(server):
                if best is None or _less_loaded(server, best):
                    best = server
        if best is None and exclude is not None and exclude in self.group and has_free_slot(exclude):
            return exclude
        return best
