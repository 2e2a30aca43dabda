"""Connection limits (`maxconn` on a frontend and in global).

HAProxy stops accepting beyond maxconn and leaves new connections in the kernel's
backlog. uvloop accepts in C before Python sees a connection, so haply does the
nearest equivalent: a connection over the limit is parked with reading paused (no
byte of it is read, no server connection is made) and is served, in arrival order,
as soon as an established connection ends. Established connections are unaffected.

The listeners that accept on their own (haply.proxy.accepting) do as HAProxy
does: a connection waiting for its PROXY header holds a slot from its accept
on (`hold`), and hands it to its session once the header is read (`unhold`,
then the session's own admission, in one step); while the limits leave no
room, such a listener accepts nothing and waits among the parked.
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

    def hold(self) -> None:
        """A slot taken before the connection is a session: counted in
        current (scur, CurrConns), not in the sessions' total."""
        self.current += 1
        if self.current > self.max_seen:
            self.max_seen = self.current

    def unhold(self) -> None:
        """Give a held slot back for the session to take at once: no waking,
        no end of a drain (`settle` follows, should the session not take it)."""
        self.current -= 1

    def settle(self) -> None:
        """After `unhold` and a session's admission: what a leave would have
        done had the session not taken the slot back."""
        if self.current == 0 and self.on_empty is not None:
            self.on_empty()
        if self.waiting:
            self.wake_one()

    def park(self, resume: Callable[[], bool]) -> None:
        """resume() is called when a slot frees; it returns False if the parked
        connection has gone meanwhile (then the next one is tried)."""
        self.waiting.append(resume)

    def set_limit(self, limit: int) -> None:
        """A new limit (the runtime API's `set maxconn`): a higher one lets
        the parked connections it now has room for in at once."""
        self.limit = limit
        while self.waiting and not self.full:
            self.wake_one()

    def wake_one(self) -> None:
        while self.waiting and not self.full:
            if self.waiting.popleft()():
                return


def room(gates) -> int | None:
    """How many more connections every one of gates admits (None: no limit)."""
    free = [gate.limit - gate.current for gate in gates if gate.limit > 0]
    return max(0, min(free)) if free else None


def first_full(gates) -> Gate | None:
    for gate in gates:
        if gate.full:
            return gate
    return None
