"""Connection limits (`maxconn` on a frontend and in global).

HAProxy stops accepting beyond maxconn and leaves new connections in the kernel's
backlog. uvloop accepts in C before Python sees a connection, so haply does the
nearest equivalent: a connection over the limit is parked with reading paused (no
byte of it is read, no server connection is made) and is served, in arrival order,
as soon as an established connection ends. Established connections are unaffected.
"""

from __future__ import annotations

from collections import deque
from typing import Callable


class Gate:
    __slots__ = ("limit", "current", "max_seen", "total", "waiting", "on_empty")

    def __init__(self, limit: int | None):
        self.limit = limit or 0  # 0 = unlimited
        self.current = 0
        self.max_seen = 0
        self.total = 0
        # Resumes of the parked connections, oldest first (the caller may test
        # it before calling wake_one: a connection's end costs no call then).
        self.waiting: deque[Callable[[], bool]] = deque()
        self.on_empty: Callable[[], object] | None = None  # set while draining

    @property
    def full(self) -> bool:
        return 0 < self.limit <= self.current

    @property
    def parked(self) -> int:
        return len(self.waiting)

    def enter(self) -> None:
        self.current += 1
        self.total += 1
        if self.current > self.max_seen:
            self.max_seen = self.current

    def leave(self) -> None:
        self.current -= 1
        if self.current == 0 and self.on_empty is not None:
            self.on_empty()

    def park(self, resume: Callable[[], bool]) -> None:
        """resume() is called when a slot frees; it returns False if the parked
        connection has gone meanwhile (then the next one is tried)."""
        self.waiting.append(resume)

    def wake_one(self) -> None:
        while self.waiting and not self.full:
            if self.waiting.popleft()():
                return
