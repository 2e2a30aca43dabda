"""Listening sockets that haply accepts on itself.

uvloop's servers accept in C as fast as connections come, and their
transports start reading as soon as connection_made returns. Two kinds of
listener cannot live with that: a frontend with `rate-limit sessions`
(haply.proxy.rate_limited), which must leave connections over its rate in
the kernel's accept queue, and one whose connections start with a PROXY
header (haply.proxy.accept_proxy), which must read that header off the bare
socket before anything else does. Both watch the listening socket here and
say what to do with each connection accepted.

Both pace their accepts by the frontend's `rate-limit sessions`, if any: a
wake-up takes no more connections than the rate allows, and the socket is
left unwatched until it allows one more (the connections wait in the
kernel's queue meanwhile). Who counts a session in the rate, and when, is
the subclass's: HAProxy counts a connection once it is a session, so not
those its tcp-request connection rules refuse, nor those whose PROXY header
never comes.
"""

from __future__ import annotations

import asyncio
import errno
import socket
import sys

from haply.runtime.session_rate import SessionRateLimit

# At most this many accepts per readiness event, so that a flood of new
# connections does not starve the established ones (HAProxy's
# tune.maxaccept plays the same part).
MAX_ACCEPT = 64
# accept() failures that say the process or the system is out of something:
# stop accepting for a moment (the kernel keeps the connections in its
# backlog meanwhile) and keep serving, rather than wake at once and fail again.
CAPACITY_ERRNOS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.ENOBUFS})
CAPACITY_PAUSE = 0.1  # seconds


class SelfAcceptingListener:
    """A listening socket watched by the loop; subclasses say how many
    connections one wake-up may take (`_allowance`), what becomes of each
    (`_accepted`) and what follows a batch (`_batch_done`). It stands where
    an asyncio server would (close, wait_closed)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, sock: socket.socket, where: str,
                 rate: SessionRateLimit | None = None):
        self.loop = loop
        self.sock = sock
        self.fd = sock.fileno()
        self.where = where  # who warns when accepting fails
        self.rate = rate  # the frontend's `rate-limit sessions`, shared by its listeners; None: none
        self.closed = False
        self._watching = False
        self._timer: asyncio.TimerHandle | None = None

    def start(self) -> None:
        self._watch()

    def _watch(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self.closed and not self._watching:
            self.loop.add_reader(self.fd, self._accept)
            self._watching = True

    def _unwatch(self) -> None:
        if self._watching:
            self.loop.remove_reader(self.fd)
            self._watching = False

    def _pause(self, delay: float) -> None:
        """Stop watching the socket for `delay` seconds."""
        self._unwatch()
        if self._timer is None and not self.closed:
            self._timer = self.loop.call_later(delay, self._watch)

    def _accept(self) -> int:
        """Accept what the allowance lets in; how many were."""
        now = self.loop.time()
        accepted = 0
        for _ in range(self._allowance(now)):
            try:
                conn, peername = self.sock.accept()
            except (BlockingIOError, InterruptedError):
                return accepted  # another worker took it, or none is left
            except OSError as exc:
                if exc.errno in CAPACITY_ERRNOS:
                    print(f"[WARNING] {self.where}: cannot accept a connection ({exc.strerror}); "
                          f"trying again in {CAPACITY_PAUSE}s", file=sys.stderr)
                    self._pause(CAPACITY_PAUSE)
                return accepted  # ECONNABORTED and kin: that client is gone, not the listener
            conn.setblocking(False)
            if conn.family != socket.AF_UNIX:
                conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            accepted += 1
            self._accepted(conn, peername, now)
        self._batch_done(now)
        return accepted

    def _allowance(self, now: float) -> int:
        rate = self.rate
        return MAX_ACCEPT if rate is None else min(rate.allowance(now), MAX_ACCEPT)

    def _accepted(self, conn: socket.socket, peername, now: float) -> None:
        raise NotImplementedError

    def _batch_done(self, now: float) -> None:
        """After a batch that the allowance, not an empty queue, ended: with
        the rate spent, wait until it allows one more."""
        rate = self.rate
        if rate is not None and rate.allowance(now) == 0:
            self._pause(rate.wait(now))

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self._unwatch()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self.sock.close()

    async def wait_closed(self) -> None:
        return None


class AcceptedSocket:
    """A connection just accepted, as the tcp-request connection rules read
    it before any transport exists (frontend.screen): its addresses, and a
    close that the refusing rule's reset applies to."""

    __slots__ = ("sock", "peername")

    def __init__(self, sock: socket.socket, peername):
        self.sock = sock
        self.peername = peername

    def get_extra_info(self, name, default=None):
        if name == "peername":
            return self.peername
        if name == "sockname":
            return self.sock.getsockname()
        if name == "socket":
            return self.sock
        return default

    def close(self) -> None:
        self.sock.close()
