"""Timeouts that cost a few stores when they change, not a timer per event.

Re-arming a `call_later` handle on every `data_received` or at every phase of every
request allocates a TimerHandle and touches the loop's heap each time: on a busy
keep-alive connection that is tens of thousands of heap operations a second, and a
connection per request pays a loop timer (about 5 µs with its cancel) for its
`timeout http-request` alone. Instead a connection keeps one `Deadline`: changing
it only stores a number. The Deadlines of a loop share one `Wheel`: each waits in
the wheel's slot of its deadline (a set per 10 ms), and the wheel keeps one loop
timer, for its earliest slot. A Deadline that finds, when its slot comes, that it
was postponed goes to the slot of its new deadline.

Two kinds of period: an absolute one (`arm`: `timeout http-request` must cut a
slowloris client that trickles bytes), and an idle one (`arm_idle` then `touch` on
every activity: `timeout client`, `timeout server`, `timeout tunnel`).

One Deadline lives as long as its connection, so it is kept small: it calls its
owner's `on_deadline(tag)` instead of holding a bound method.
"""

from __future__ import annotations

import asyncio
import heapq
from typing import Protocol

# Slots per second: a period ends at most 1/SLOTS s late, never early.
SLOTS = 100
INFINITY = float("inf")
TICKING = -1  # Wheel._armed while its due Deadlines run


class Owner(Protocol):
    def on_deadline(self, tag: str) -> None:
        """The period tagged `tag` ran out."""


class Wheel:
    """The pending Deadlines of one loop, by slot (deadline × SLOTS, rounded
    up), with one loop timer for the earliest slot that has any."""

    __slots__ = ("loop", "_slots", "_order", "_handle", "_armed")

    def __init__(self, loop: asyncio.AbstractEventLoop):
        self.loop = loop
        self._slots: dict[int, set[Deadline]] = {}
        self._order: list[int] = []  # heap of the slots' numbers
        self._handle: asyncio.TimerHandle | None = None
        self._armed = 0  # the slot the loop timer is set for (0: none, TICKING)

    def add(self, deadline: Deadline, slot: int) -> None:
        bucket = self._slots.get(slot)
        if bucket is None:
            bucket = self._slots[slot] = set()
            heapq.heappush(self._order, slot)
            if not self._armed or slot < self._armed:
                self._arm(slot)
        bucket.add(deadline)

    def remove(self, deadline: Deadline, slot: int) -> None:
        bucket = self._slots.get(slot)
        if bucket is not None:
            bucket.discard(deadline)

    def __len__(self) -> int:
        return sum(len(bucket) for bucket in self._slots.values())

    def _arm(self, slot: int) -> None:
        if self._handle is not None:
            self._handle.cancel()
        self._armed = slot
        self._handle = self.loop.call_at(slot / SLOTS, self._tick)

    def _tick(self) -> None:
        self._handle = None
        # While due Deadlines run, those they add wait here (TICKING keeps
        # `add` from arming the timer for a slot later than others pending).
        upto, self._armed = self._armed, TICKING
        order = self._order
        slots = self._slots
        try:
            while order and order[0] <= upto:
                bucket = slots.pop(heapq.heappop(order), None)
                if bucket:
                    for deadline in bucket:
                        deadline._reached()
        finally:
            # Slots emptied by cancels need no wake-up of their own.
            while order and not slots.get(order[0]):
                slots.pop(heapq.heappop(order), None)
            self._armed = 0
            if order:
                self._arm(order[0])


class Deadline:
    __slots__ = ("_wheel", "_loop", "_owner", "_slot", "_due", "deadline", "timeout", "idle",
                 "tag")

    def __init__(self, wheel: Wheel, owner: Owner):
        self._wheel = wheel
        self._loop = wheel.loop
        self._owner = owner
        self._slot = 0  # the wheel's slot this waits in (0: none)
        self._due = INFINITY  # when that slot comes (a float compare per arm, no int())
        self.deadline: float | None = None
        self.timeout: float | None = None
        self.idle = False
        self.tag = ""  # which timeout this is, passed to the callback

    # arm and arm_idle each do the whole job (no shared helper): they run
    # several times per HTTP request, and a Python call is most of their cost.

    def arm(self, timeout: float | None, tag: str) -> None:
        """Expire `timeout` seconds from now, whatever happens meanwhile."""
        self.idle = False
        self.tag = tag
        self.timeout = timeout
        if not timeout:
            self.deadline = None
            return
        deadline = self.deadline = self._loop.time() + timeout
        if deadline < self._due:
            self._move(deadline)

    def arm_idle(self, timeout: float | None, tag: str) -> None:
        """Expire after `timeout` seconds without a `touch()`."""
        self.idle = True
        self.tag = tag
        self.timeout = timeout
        if not timeout:
            self.deadline = None
            return
        deadline = self.deadline = self._loop.time() + timeout
        if deadline < self._due:
            self._move(deadline)

    def touch(self) -> None:
        if self.idle and self.timeout:
            self.deadline = self._loop.time() + self.timeout

    def cancel(self) -> None:
        self.deadline = None
        if self._slot:
            self._wheel.remove(self, self._slot)
            self._slot = 0
            self._due = INFINITY

    def _move(self, deadline: float) -> None:
        """The slot this waits in comes too late (or there is none): wait in
        the slot of `deadline` instead."""
        slot = int(deadline * SLOTS) + 1
        if slot == self._slot:
            return
        if self._slot:
            self._wheel.remove(self, self._slot)
        self._slot = slot
        self._due = slot / SLOTS
        self._wheel.add(self, slot)

    def _reached(self) -> None:
        """The wheel reached this one's slot."""
        self._slot = 0
        self._due = INFINITY
        deadline = self.deadline
        if deadline is None:
            return
        if self._loop.time() < deadline:
            self._move(deadline)
            return
        self.deadline = None
        self._owner.on_deadline(self.tag)
