"""Accepting no faster than `rate-limit sessions` allows.

HAProxy stops accepting when a frontend reaches its session rate: the
connections over it stay in the kernel's accept queue, neither refused nor
reset, "and HAProxy will not even be aware that sessions are pending"
(configuration manual). uvloop's servers accept in C as fast as connections
come, with no way to pause them, so a frontend with a rate limit accepts on
its own: it watches the listening socket, accepts what the rate allows
(haply.runtime.session_rate), then stops watching it until the rate allows
one more. An accepted connection becomes a transport through
`connect_accepted_socket`, TLS included.

Only frontends with `rate-limit sessions` are served this way; the others keep
uvloop's accept loop. The cost here, per connection: one accept call from
Python, one task to build the transport, and the rate's bookkeeping.
"""

from __future__ import annotations

import asyncio
import errno
import socket
import sys

from haply.runtime.session_rate import SessionRateLimit

# At most this many accepts per readiness event, so that one busy listener
# does not hold the loop (HAProxy's tune.maxaccept plays the same part).
MAX_ACCEPT = 64
# accept() failures that say the process or the system is out of something:
# stop accepting for a moment and keep serving (as trio's serve_listeners does).
CAPACITY_ERRNOS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.ENOBUFS})
CAPACITY_PAUSE = 0.1  # seconds


class RateLimitedListener:
    """One listening socket of a rate-limited frontend; `close` and
    `wait_closed` as an asyncio server has them."""

    def __init__(self, loop: asyncio.AbstractEventLoop, sock: socket.socket, factory,
                 rate: SessionRateLimit, backlog: int, ssl=None, handshake_timeout: float | None = None):
        self.loop = loop
        self.sock = sock
        self.factory = factory
        self.rate = rate  # the frontend's: its listeners share one rate
        self.ssl = ssl
        self.handshake_timeout = handshake_timeout
        self.fd = sock.fileno()
        self.closed = False
        self._watching = False
        self._timer: asyncio.TimerHandle | None = None
        self._opening: set[asyncio.Task] = set()
        sock.setblocking(False)
        sock.listen(backlog)

    def start(self) -> None:
        self._watch()

    def _watch(self) -> None:
        self._timer = None
        if not self.closed and not self._watching:
            self.loop.add_reader(self.fd, self._accept)
            self._watching = True

    def _pause(self, delay: float) -> None:
        if self._watching:
            self.loop.remove_reader(self.fd)
            self._watching = False
        if self._timer is None and not self.closed:
            self._timer = self.loop.call_later(delay, self._watch)

    def _accept(self) -> None:
        now = self.loop.time()
        rate = self.rate
        allowed = min(rate.allowance(now), MAX_ACCEPT)
        for _ in range(allowed):
            try:
                conn, _ = self.sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                if exc.errno in CAPACITY_ERRNOS:
                    print(f"[WARNING] accept: {exc.strerror}; pausing {CAPACITY_PAUSE} s",
                          file=sys.stderr)
                    self._pause(CAPACITY_PAUSE)
                return  # ECONNABORTED and the like: that client is gone
            rate.count(now)
            self._open(conn)
        if rate.allowance(now) == 0:
            self._pause(rate.wait(now))

    def _open(self, conn: socket.socket) -> None:
        conn.setblocking(False)
        if conn.family != socket.AF_UNIX:
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        task = self.loop.create_task(self.loop.connect_accepted_socket(
            self.factory, conn, ssl=self.ssl,
            ssl_handshake_timeout=self.handshake_timeout if self.ssl is not None else None))
        self._opening.add(task)
        task.add_done_callback(self._opened)

    def _opened(self, task: asyncio.Task) -> None:
        self._opening.discard(task)
        if not task.cancelled():
            task.exception()  # a failed handshake has closed its transport: nothing to do

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self._watching:
            self.loop.remove_reader(self.fd)
            self._watching = False
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self.sock.close()

    async def wait_closed(self) -> None:
        return None


__all__ = ["RateLimitedListener"]
