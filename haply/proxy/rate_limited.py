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

A connection counts in the rate once it is a session, as in HAProxy: its
frontend's `tcp-request connection` rules run here, on the socket just
accepted, and a connection they refuse is not counted (observed in HAProxy
2.6: with `rate-limit sessions 5`, ten refused connections then ten others,
the first five of the others are served at once). The session then skips
that stage (frontend.screen reads the transport's `screened`). The
`tcp-request session` rules run later, in the session, so a connection they
refuse is counted here, where HAProxy does not count it.

Only frontends with `rate-limit sessions` are served this way; the others keep
uvloop's accept loop. The cost here, per connection: one accept call from
Python, one task to build the transport, and the rate's bookkeeping.
"""

from __future__ import annotations

import asyncio
import socket

from haply.proxy.accept_proxy import Handoff
from haply.proxy.accepting import AcceptedSocket, SelfAcceptingListener
from haply.proxy.frontend import CONNECTION, CONNECTION_STAGE
from haply.runtime.session_rate import SessionRateLimit


class RateLimitedListener(SelfAcceptingListener):
    """One listening socket of a rate-limited frontend (`frontend`: as its
    sessions count in it)."""

    def __init__(self, frontend, sock: socket.socket, factory, rate: SessionRateLimit, backlog: int,
                 ssl=None, handshake_timeout: float | None = None, where: str = "accept"):
        super().__init__(frontend.loop, sock, where, rate)
        self.frontend = frontend
        self.factory = factory
        rules = frontend.tcp_rules
        self.screens = rules is not None and bool(rules[CONNECTION])
        self.ssl = ssl
        self.handshake_timeout = handshake_timeout
        self._opening: set[asyncio.Task] = set()
        sock.setblocking(False)
        sock.listen(backlog)

    def _accepted(self, conn: socket.socket, peername, now: float) -> None:
        factory = self.factory
        if self.screens:
            session = factory()  # made first: a listener counted apart counts refused ones too
            screened = self.frontend.screen(AcceptedSocket(conn, peername), CONNECTION_STAGE)
            if screened is None:
                return  # refused (counted in dcon, closed with a reset): no session, not in the rate
            handoff = Handoff(session, peername, conn.getsockname(), screened)
            factory = lambda: handoff  # noqa: E731
        self.rate.count(now)
        task = self.loop.create_task(self.loop.connect_accepted_socket(
            factory, conn, ssl=self.ssl,
            ssl_handshake_timeout=self.handshake_timeout if self.ssl is not None else None))
        self._opening.add(task)
        task.add_done_callback(self._opened)

    def _opened(self, task: asyncio.Task) -> None:
        self._opening.discard(task)
        if not task.cancelled():
            task.exception()  # a failed handshake has closed its transport: nothing to do
