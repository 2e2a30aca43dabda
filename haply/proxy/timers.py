"""Timeouts that cost a clock read when they change, not a timer per event.

Re-arming a `call_later` handle on every `data_received` or at every phase of every
request allocates a TimerHandle and touches the loop's heap each time: on a busy
keep-alive connection that is tens of thousands of heap operations a second.
Instead a connection keeps one `Deadline`: changing it only stores a number; the
single pending timer, when it fires early, re-arms itself for what is left, and it
is moved earlier only in the rare case a new deadline comes before it.

Two kinds of period: an absolute one (`arm`: `timeout http-request` must cut a
slowloris client that trickles bytes), and an idle one (`arm_idle` then `touch` on
every activity: `timeout client`, `timeout server`, `timeout tunnel`).

One Deadline lives as long as its connection, so it is kept small: it calls its
owner's `on_deadline(tag)` instead of holding a bound method, and asks the timer
handle when it fires instead of storing a copy.
"""

from __future__ import annotations

import asyncio
from typing import Protocol


class Owner(Protocol):
    def on_deadline(self, tag: str) -> None:
        """The period tagged `tag` ran out."""


class Deadline:
    __slots__ = ("_loop", "_owner", "_handle", "deadline", "timeout", "idle", "tag")

    def __init__(self, loop: asyncio.AbstractEventLoop, owner: Owner):
        self._loop = loop
        self._owner = owner
        self._handle: asyncio.TimerHandle | None = None
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
        handle = self._handle
        if handle is None or deadline < handle.when():
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
        handle = self._handle
        if handle is None or deadline < handle.when():
            self._move(deadline)

    def touch(self) -> None:
        if self.idle and self.timeout:
            self.deadline = self._loop.time() + self.timeout

    def cancel(self) -> None:
        self.deadline = None
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _move(self, deadline: float) -> None:
        """The pending timer (if any) fires too late: replace it."""
        if self._handle is not None:
            self._handle.cancel()
        self._handle = self._loop.call_at(deadline, self._fire)

    def _fire(self) -> None:
        self._handle = None
        deadline = self.deadline
        if deadline is None:
            return
        if self._loop.time() < deadline:
            self._handle = self._loop.call_at(deadline, self._fire)
            return
        self.deadline = None
        self._owner.on_deadline(self.tag)
