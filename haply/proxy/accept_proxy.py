"""Client connections that start with a PROXY protocol header (`bind ...
accept-proxy`, `tcp-request connection expect-proxy layer4`): the header is
read first, and the addresses it carries become the connection's own for
everything after it (manual 5.1 "accept-proxy"): sessions, rules, logs,
balancing, stick tables, `send-proxy`. Only `tcp-request connection` rules
see the real addresses: they run before the header is read (and decide, with
expect-proxy, whether one is read at all).

Such a listener accepts its connections itself, and reads the header from
the bare socket by peeking at it (MSG_PEEK), then taking exactly its
length: no byte after it leaves the kernel's buffer, so a TLS handshake
behind it (`bind ... ssl crt ... accept-proxy`) starts on the untouched
stream, and a session's first read is its own data. The socket then becomes
a transport as any other (loop.connect_accepted_socket, with the bind's TLS
context). uvloop's own accept would not do: its transports start reading
right after connection_made, whatever the protocol asks, so the bytes
behind the header would be gone before a handshake could start. HAProxy 2.6
reads the header the same way and so takes it whole from the first read or
not at all: a header split over two segments is "Truncated" (observed);
haply does as it does, and never keeps a partial header.

A connection that fails is closed with a reset, or with a FIN when it timed
out (`timeout client`) or closed itself, is logged with HAProxy's line for
it and is counted in the frontend's conn_tot, never as a session. The
frontends that read no header pay nothing: their listeners keep the session
classes as their protocol factories.

A connection counts against maxconn (global, frontend, bind) from its
accept, as in HAProxy 2.6 (observed: with a frontend maxconn of 2, two
connections that send no header show scur 2 and CurrConns 2, and a third
stays in the kernel's queue until one of them times out, sends a bad header
or closes): the reader holds a slot of each limit (haply.proxy.gate), and
its session takes it over; while the limits leave no room the listener
accepts nothing. In `rate-limit sessions` it counts once its header is read
(HAProxy counts sessions, and a connection becomes one then): the
listener's accepts are paced by the rate as any rate-limited listener's,
but connections that send no header do not slow it.
"""

from __future__ import annotations

import asyncio
import socket
import time

from haply.proxy import proxy_header
from haply.proxy.accepting import AcceptedSocket, SelfAcceptingListener
from haply.proxy.frontend import CONNECTION_STAGE, reset_on_close
from haply.proxy.gate import first_full, room

# HAProxy peeks into one buffer (tune.bufsize, 16 kB by default): a longer
# version 2 header is truncated there too.
PEEK_SIZE = 16384

# What HAProxy 2.6 logs (its words, observed) beside proxy_header's refusals.
TRUNCATED = "Truncated PROXY protocol header received"
EMPTY = "Connection closed while waiting for PROXY protocol header"
ABORTED = "Connection error while waiting for PROXY protocol header"
TIMED_OUT = "Timeout while waiting for PROXY protocol header"


class ProxiedTransport:
    """A client transport seen through its PROXY header: peername and
    sockname are the addresses the header carried; everything else is the
    transport's own (the methods of the request path are bound once, here).
    `screened`: the connection as its tcp-request connection rules saw it."""

    __slots__ = ("transport", "peername", "sockname", "screened", "write", "writelines",
                 "pause_reading", "resume_reading", "is_closing", "close", "abort",
                 "can_write_eof", "write_eof", "get_write_buffer_size")

    def __init__(self, transport, peername, sockname, screened=None):
        self.transport = transport
        self.peername = peername
        self.sockname = sockname
        self.screened = screened
        self.write = transport.write
        self.writelines = transport.writelines
        self.pause_reading = transport.pause_reading
        self.resume_reading = transport.resume_reading
        self.is_closing = transport.is_closing
        self.close = transport.close
        self.abort = transport.abort
        self.can_write_eof = transport.can_write_eof
        self.write_eof = transport.write_eof
        self.get_write_buffer_size = transport.get_write_buffer_size

    def get_extra_info(self, name, default=None):
        if name == "peername":
            return self.peername
        if name == "sockname":
            return self.sockname
        return self.transport.get_extra_info(name, default)

    def __getattr__(self, name):
        return getattr(self.transport, name)


class HeaderListener(SelfAcceptingListener):
    """A listening socket whose connections may start with a PROXY header,
    and what their readers share: its frontend (as its sessions count in
    it), how to make a session, whether every connection must send a
    header (accept-proxy) or only those that the expect-proxy rules pick,
    its TLS context (None: plain) and its name in log lines."""

    def __init__(self, frontend, make_session, required: bool, label: str, sock: socket.socket,
                 tls=None, handshake_timeout: float | None = None):
        super().__init__(frontend.loop, sock, f"{frontend.name}/{label}", frontend.session_rate)
        self.frontend = frontend
        self.make_session = make_session
        self.required = required
        self.label = label  # its `name`, else its `id` or its number among the frontend's
        self.tls = tls
        self.handshake_timeout = handshake_timeout
        self.gates = frontend.gates()  # the limits its connections hold a slot of
        self._parked = False  # waiting among a full gate's parked connections

    def _allowance(self, now: float) -> int:
        allowance = super()._allowance(now)
        free = room(self.gates)
        return allowance if free is None else min(allowance, free)

    def _accepted(self, conn: socket.socket, peername, now: float) -> None:
        for gate in self.gates:
            gate.hold()
        HeaderReader(self, conn, peername).start()

    def _batch_done(self, now: float) -> None:
        super()._batch_done(now)
        full = first_full(self.gates)
        if full is not None:
            # no room: the next connections stay in the kernel's queue until
            # a slot frees
            self._unwatch()
            if not self._parked:
                self._parked = True
                full.park(self._slot_freed)

    def _slot_freed(self) -> bool:
        """A slot freed in the gate it waited on: accept at once, so that the
        slot goes to a connection now (False: none took it)."""
        self._parked = False
        if self.closed:
            return False
        self._watch()
        return self._accept() > 0


class HeaderReader(AcceptedSocket):
    """A connection until its PROXY header is read: it then becomes a
    session's transport, seen through the header. Until then it offers the
    tcp-request connection rules what a transport offers them (as any
    accepted socket does)."""

    __slots__ = ("listener", "screened", "timer", "wall", "reading")

    def __init__(self, listener: HeaderListener, sock: socket.socket, peername):
        super().__init__(sock, peername)
        self.listener = listener
        self.screened = None  # the connection as the tcp-request connection rules saw it
        self.timer: asyncio.TimerHandle | None = None
        self.wall = 0.0  # the accept date of a log line
        self.reading = False

    def start(self) -> None:
        listener = self.listener
        frontend = listener.frontend
        if frontend.tcp_rules is not None:
            self.screened = frontend.screen(self, CONNECTION_STAGE)
            if self.screened is None:
                frontend.leave()  # the slot it held
                return  # refused, counted and closed
        if not (listener.required or self.screened is not None and self.screened.expects_proxy):
            self._hand_over(None)
            return
        if frontend.logger is not None:
            self.wall = time.time()
        listener.loop.add_reader(self.sock.fileno(), self._readable)
        self.reading = True
        timeout = frontend.proxy.timeouts.client
        if timeout:
            self.timer = listener.loop.call_later(timeout, self._fail, TIMED_OUT, False)

    def close(self) -> None:
        self._stop_reading()
        super().close()

    def _readable(self) -> None:
        sock = self.sock
        try:
            data = sock.recv(PEEK_SIZE, socket.MSG_PEEK)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._fail(ABORTED)
            return
        if not data:
            self._fail(EMPTY, False)
            return
        try:
            header = proxy_header.parse(data)
        except proxy_header.ProxyHeaderError as exc:
            self._fail(exc.message, True, exc.source)
            return
        if header is None:
            self._fail(TRUNCATED)
            return
        sock.recv(header.length)  # the header alone: what follows is the session's
        self._stop_reading()
        self._hand_over(header)

    def _hand_over(self, header) -> None:
        if header is not None and header.source is not None:
            peername, sockname = header.source, header.destination
        else:  # LOCAL, UNKNOWN, or no header expected: the connection's own
            peername, sockname = self.peername, self.sock.getsockname()
        listener = self.listener
        if listener.rate is not None:
            listener.rate.count(listener.loop.time())
        session = listener.make_session()
        listener.loop.create_task(self._connect(Handoff(session, peername, sockname, self.screened,
                                                        listener.gates)))

    async def _connect(self, handoff: "Handoff") -> None:
        listener = self.listener
        try:
            await listener.loop.connect_accepted_socket(
                lambda: handoff, self.sock, ssl=listener.tls,
                ssl_handshake_timeout=listener.handshake_timeout if listener.tls is not None else None)
        except asyncio.CancelledError:
            raise
        except Exception:  # a failed TLS handshake ends this connection alone
            pass
        finally:
            if handoff.held:  # no session took its slot
                handoff.held = ()
                listener.frontend.leave()

    def _fail(self, message: str, reset: bool = True, source: tuple | None = None) -> None:
        self._stop_reading()
        frontend = self.listener.frontend
        frontend.header_failures += 1
        frontend.leave()  # the slot it held, for the next connection
        logger = frontend.logger
        if logger is not None:
            logger.connection_error(self.listener.label, source or self.peername, self.wall, message,
                                    null=message in (EMPTY, TIMED_OUT))
        if reset:
            reset_on_close(self)  # as HAProxy drops it: with a reset
        self.sock.close()

    def _stop_reading(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if self.reading:
            self.reading = False
            self.listener.loop.remove_reader(self.sock.fileno())


class Handoff(asyncio.Protocol):
    """The first protocol of a connection whose header was read (or whose
    connection rules ran as it was accepted): it gives the transport, seen
    through the header, to the session, and with it the slots of `held`
    (the gates the connection held a slot of since its accept)."""

    __slots__ = ("session", "peername", "sockname", "screened", "held")

    def __init__(self, session, peername, sockname, screened, held=()):
        self.session = session
        self.peername = peername
        self.sockname = sockname
        self.screened = screened
        self.held = held

    def connection_made(self, transport) -> None:
        transport.set_protocol(self.session)
        held, self.held = self.held, ()
        # The session's admission takes the slots given back here, in the
        # same step: no other connection can take them in between.
        for gate in held:
            gate.unhold()
        self.session.connection_made(ProxiedTransport(transport, self.peername, self.sockname,
                                                      self.screened))
        for gate in held:
            gate.settle()
