"""mode tcp: a bidirectional byte relay between a client and one server.

Backpressure crosses the pair: when one side's transport cannot take more
(`pause_writing`), the other side stops reading until it drains (`resume_writing`),
so a slow reader never makes haply buffer more than one transport's high-water mark.
Half-close is forwarded (`eof_received` -> `write_eof`) and the session ends when
both directions are closed or it has been idle for its timeout.
"""

from __future__ import annotations

import asyncio

from haply.http import framing
from haply.proxy.backend import BackendRuntime, NoServerAvailable
from haply.proxy.conditions import rejects
from haply.proxy.connection import SourceKey
from haply.proxy.frontend import FrontendRuntime
from haply.proxy.timers import Deadline


def session_timeout(client: float | None, server: float | None,
                    tunnel: float | None) -> float | None:
    """In mode tcp a session is idle when neither side moves a byte: traffic either
    way counts as activity for both sides (HAProxy's client timeout also covers the
    client acknowledging data). `timeout tunnel`, when set, replaces both once the
    server is connected."""
    if tunnel:
        return tunnel
    values = [t for t in (client, server) if t]
    return min(values) if values else None


class TcpClientProtocol(asyncio.Protocol):
    # Slots: an idle connection's whole cost in haply is these objects, and a
    # per-instance __dict__ would be most of it (measured in bench/run.py idle).
    __slots__ = ("frontend", "backend", "loop", "transport", "upstream", "server",
                 "pending", "pending_size", "connecting", "timer", "admitted", "closed", "client_eof", "server_eof",
                 "t_wait", "t_connect", "queue_positions", "switches", "tried", "attempts", "redispatched", "ending",
                 "key", "began")
    counts_bytes = False  # on a transport that counts its bytes (haply.proxy.byte_counts)

    def __init__(self, frontend: FrontendRuntime, backend: BackendRuntime | None,
                 switches: tuple | None = None):
        # Global
        self.frontend = frontend
        self.backend = backend  # the default backend until a use_backend rule applies
        # use_backend rules: (condition or None, BackendRuntime) in order (None: none)
        self.switches = switches
        self.loop = frontend.loop
        # Per-connection
        self.transport: asyncio.Transport | None = None
        # The connection as the tcp-request rules saw it, with its sticky
        # counters (None without rules)
        self.key: SourceKey | None = None
        self.upstream: TcpServerProtocol | None = None
        self.server = None
        self.pending: list[bytes] | None = None  # data sent before the server answered
        self.pending_size = 0
        self.connecting: asyncio.Task | None = None  # choosing and connecting a server
        self.timer: Deadline | None = None
        self.admitted = False
        self.closed = False
        self.client_eof = False
        self.server_eof = False
        # The log's Tw and Tc: ms in the backend's queue, ms to connect (-1: not yet).
        self.t_wait = -1
        self.t_connect = -1
        self.queue_positions: tuple[int, int] | None = None  # %sq/%bq, once queued
        self.tried = None  # the server whose connection attempts all failed, for the log
        self.attempts = 0  # connection retries (the log's %rc, "+N" once redispatched)
        self.redispatched = False
        # How the session ended, when not in good order (the log's termination
        # state: CD, SD, cD, sD), else None
        self.ending: str | None = None

    # ------------------------------------------------------------------ client

    def connection_made(self, transport: asyncio.Transport) -> None:
        self.transport = transport
        if self.frontend.tcp_rules is not None:
            self.key = self.frontend.screen(transport)
            if self.key is None:
                self.closed = True
                return
        transport.pause_reading()
        if self.frontend.admit(self._resume_admission):
            self._start()

    def _resume_admission(self) -> bool:
        if self.closed:
            return False
        if self.frontend.admit(self._resume_admission):
            self._start()
        return True

    def _start(self) -> None:
        self.admitted = True
        self.frontend.engine.sessions.add(self)
        proxy = self.frontend.proxy
        self.timer = Deadline(self.frontend.wheel, self)
        self.timer.arm_idle(proxy.timeouts.client, "client")
        self._route(self.key if self.key is not None else SourceKey.of(self.transport))

    def _route(self, key: SourceKey) -> None:
        """use_backend, the backend's tcp-request content rules, then a server."""
        if self.switches is not None:
            for test, backend in self.switches:
                if test is None or test(key):
                    self.backend = backend
                    break
        if self.backend is None:
            self.close()
            return
        rules = self.backend.content_rules
        if rules is not None and rejects(rules, key):  # the backend's tcp-request content
            self.frontend.denied += 1  # HAProxy counts it in the frontend's dreq
            self.close()
            return
        self.backend.routed_in()
        self.transport.resume_reading()
        self.connecting = self.loop.create_task(self._connect(key))

    async def _connect(self, key: SourceKey) -> None:
        loop = self.loop
        start = self.began = loop.time()  # the session's ttime counts from here
        backend = self.backend
        stick = backend.stick
        try:
            server = persistent = None
            if backend.use_server is not None:
                persistent = backend.forced_server(key)
            if persistent is None and stick is not None:
                persistent = stick.match(key, start)
            if persistent is not None:
                server = await backend.acquire_server(persistent, key, self)
            if server is None:
                server = await backend.acquire(key, tally=self)
            self.t_wait = int((loop.time() - start) * 1000)
            server, transport, _ = await self.backend.connect(
                key, lambda server: TcpServerProtocol(self, server),
                dest_port=key.local_port or None, server=server,
                client=self.transport, tally=self, persistent=server is persistent,
            )
            backend.registry.record_times(server, self.t_wait, self.t_connect)  # stats
            if stick is not None:  # the server really connected to (HAProxy's store-request)
                stick.store(key, server, loop.time())
        except NoServerAvailable as exc:
            if exc.reason == "queue timeout":
                self.ending = "sQ"  # s: `timeout queue` ran out; Q: while queued
                if self.t_wait < 0:
                    self.t_wait = int((loop.time() - start) * 1000)
            self.tried = exc.server
            self.close()
            return
        if self.upstream is None:
            # The client left while connecting; close() could not release the
            # slot because the server side was not attached yet.
            transport.close()
            self.backend.release(server)

    def server_connected(self, upstream: "TcpServerProtocol", server) -> None:
        """The upstream connection is up: flush what the client sent meanwhile."""
        self.server = server
        self.upstream = upstream
        if self.backend.sessions is not None:
            self.backend.track(server, self)
        transport = upstream.transport
        self._arm_session_timer()
        if self.pending:
            for chunk in self.pending:
                transport.write(chunk)
            self.pending.clear()
            if not self.client_eof:
                self.transport.resume_reading()
        if self.client_eof and transport.can_write_eof():
            transport.write_eof()

    def data_received(self, data: bytes) -> None:
        timer = self.timer
        if timer is not None:  # None: parked over maxconn (uvloop reads all the same)
            timer.touch()
        self.frontend.bytes_in += len(data)
        upstream = self.upstream
        if upstream is None:
            # Hold what fits HAProxy's buffer until the server answers the
            # connect, then stop reading (reading on, a close is seen: abortonclose).
            if self.pending is None:
                self.pending = []
            self.pending.append(data)
            self.pending_size += len(data)
            if self.pending_size >= framing.MAX_HEAD_SIZE or timer is None:
                self.transport.pause_reading()
            return
        upstream.transport.write(data)
        self.server.bytes_in += len(data)

    def eof_received(self) -> bool:
        self.client_eof = True
        if self._abort_waiting():
            return False
        upstream = self.upstream
        if upstream is not None and not upstream.closed:
            if upstream.transport.can_write_eof():
                upstream.transport.write_eof()
        if self.server_eof or upstream is None and self.backend is None:
            return False
        if self.frontend.proxy.timeouts.client_fin:
            self.timer.arm_idle(self.frontend.proxy.timeouts.client_fin, "client-fin")
        return True  # keep the transport open for the server's answer

    def _arm_session_timer(self) -> None:
        front = self.frontend.proxy.timeouts
        back = self.backend.proxy.timeouts
        tunnel = back.tunnel or front.tunnel
        # The log names the side whose timeout ends an idle session first.
        server_side = not tunnel and back.server and (not front.client or back.server < front.client)
        self.timer.arm_idle(session_timeout(front.client, back.server, tunnel),
                            "server" if server_side else "client")

    def pause_writing(self) -> None:
        if self.upstream is not None:
            self.upstream.transport.pause_reading()
            if self.timer.tag == "server":
                # Nothing is awaited from the server while the client does not
                # read: the client's timeout runs, and it is the client's
                # fault when it expires (cD), as in HAProxy.
                client_timeout = self.frontend.proxy.timeouts.client
                if client_timeout:
                    self.timer.arm_idle(client_timeout, "client")

    def resume_writing(self) -> None:
        if self.upstream is not None and not self.upstream.closed:
            self.upstream.transport.resume_reading()
            if self.timer.tag == "client":
                self._arm_session_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        if exc is not None and self.upstream is not None and not self.closed:
            self.broken_off("CD")  # reset by the client in the middle of the session
        self._abort_waiting()
        self.close()

    def _abort_waiting(self) -> bool:
        """`option abortonclose`: the client closed (or half-closed) while its
        connection waits in the queue or for the server: drop it, never connect."""
        task = self.connecting
        if (self.upstream is not None or task is None or task.done() or self.backend is None
                or not self.backend.proxy.abort_on_close):
            return False
        self.connecting = None
        # Cancelled after its first step: a task cancelled before it starts never
        # runs the code that gives back a slot taken for it.
        self.loop.call_soon(task.cancel)
        self.close()
        return True

    # ----------------------------------------------------------------- session

    def on_deadline(self, which: str) -> None:
        if self.upstream is not None:
            self.broken_off("sD" if which.startswith("server") else "cD")
        self.close()

    def broken_off(self, ending: str) -> None:
        """The session ends out of order: a side reset it (C, S) or went quiet
        past its timeout (c, s). Counted on the server as HAProxy counts it
        (cli_abrt; srv_abrt, and eresp for a reset) and logged with ending."""
        if self.ending is not None:
            return
        self.ending = ending
        self.server.count_abort(ending, response_error=ending == "SD")

    def shutdown(self, close_idle: bool = True) -> None:
        """Stopping: a TCP session has no request boundary; it may finish
        within the stop's grace period."""

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self.timer is not None:
            self.timer.cancel()
        if self.transport is not None:
            self.transport.close()
        upstream = self.upstream
        if upstream is not None:
            upstream.closed = True
            upstream.transport.close()
            if self.backend.sessions is not None:
                self.backend.untrack(self.server, self)
            self.backend.release(self.server)
            # every session is timed: a clock read per connection (no rtime in TCP)
            self.backend.registry.record_exchange(
                self.server, 0, round((self.loop.time() - self.began) * 1000))
        if self.admitted:
            self.admitted = False
            self.frontend.engine.sessions.discard(self)
            self.frontend.leave()
        if self.key is not None and self.key.tracking is not None:
            self.key.tracking.ended(self.loop.time(), self.transport if self.counts_bytes else None)


class TcpServerProtocol(asyncio.Protocol):
    __slots__ = ("client", "server", "transport", "closed")

    def __init__(self, client: TcpClientProtocol, server):
        self.client = client
        self.server = server
        self.transport: asyncio.Transport | None = None
        self.closed = False

    def connection_made(self, transport: asyncio.Transport) -> None:
        self.transport = transport
        if self.client.closed:
            return  # the connect coroutine closes it and gives the slot back
        self.client.server_connected(self, self.server)

    def data_received(self, data: bytes) -> None:
        client = self.client
        client.timer.touch()
        client.transport.write(data)
        size = len(data)
        client.frontend.bytes_out += size
        client.server.bytes_out += size

    def eof_received(self) -> bool:
        client = self.client
        client.server_eof = True
        if client.client_eof or client.closed:
            client.close()
            return False
        if client.transport.can_write_eof():
            client.transport.write_eof()
        else:
            # TLS to the client (bind ... ssl): close_notify is TLS's end of
            # stream and nothing may follow it, so the session ends here.
            client.close()
            return False
        server_fin = client.backend.proxy.timeouts.server_fin
        if server_fin:
            client.timer.arm_idle(server_fin, "server-fin")
        return True

    def pause_writing(self) -> None:
        self.client.transport.pause_reading()

    def resume_writing(self) -> None:
        if not self.client.closed:
            self.client.transport.resume_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        client = self.client
        if exc is not None and not client.closed:
            client.broken_off("SD")  # reset by the server in the middle of the session
        client.close()
