"""mode tcp content inspection: hold a connection's first bytes until the
frontend's tcp-request content rules decide on them (manual 4.2,
"tcp-request inspect-delay" and "tcp-request content").

Only the frontends whose rules read those bytes (req.ssl_sni, req.len, ...:
haply.config.acl.READS_PAYLOAD), or whose backends do, use this session
class; the others relay from the first byte (haply.proxy.tcp).

The rules are evaluated as the session starts, on no bytes yet, and again
at each new chunk. A rule whose condition may still change with more bytes (MAYBE) makes
the session wait for them, resuming at that rule; the inspection ends when a
rule accepts or rejects, when every rule has answered without deciding (the
connection is accepted), or when the bytes are final: `inspect-delay` has
expired, the client has closed its side, or the buffer is full. The last
evaluation then reads the bytes as definitive (nothing is MAYBE any more).
Then use_backend, use-server and stick rules read the same bytes, and the
bytes go to the chosen server unchanged, first.

Without `inspect-delay` HAProxy "will not wait at all and will immediately
apply a verdict based on the available information": haply reads the first
chunk (or the client's close) as final, the information its first read gives.
"""

from __future__ import annotations

from haply.proxy.conditions import MAYBE, inspect
from haply.proxy.frontend import BEFORE_CONTENT
from haply.proxy.payload import InspectedKey
from haply.proxy.tcp import TcpClientProtocol

# HAProxy holds what it inspects in one buffer: tune.bufsize (16384) less
# tune.maxrewrite (1024) for a request; a full buffer ends the inspection.
INSPECT_BUFFER = 16384 - 1024


class InspectingTcpClient(TcpClientProtocol):
    __slots__ = ("view", "inspect_timer", "next_rule")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # Per-connection, while inspecting
        self.view: InspectedKey | None = None  # None once the inspection is over
        self.inspect_timer = None  # the inspect-delay's call_later handle
        self.next_rule = 0  # the rule that waits, where the next evaluation resumes

    def connection_made(self, transport) -> None:
        self.transport = transport
        frontend = self.frontend
        if frontend.tcp_rules is not None:
            # the content stage waits for the bytes: not at the connection
            self.key = frontend.screen(transport, BEFORE_CONTENT)
            if self.key is None:
                self.closed = True
                return
        transport.pause_reading()
        if frontend.admit(self._resume_admission):
            self._start()

    def _route(self, key) -> None:
        """Inspect first: routing waits for the rules' verdict."""
        view = self.view = InspectedKey.from_key(key) if key is not None else InspectedKey.of(self.transport)
        self.key = view
        self.pending = []
        delay = self.frontend.proxy.inspect_delay
        if delay:
            self.inspect_timer = self.loop.call_later(delay, self._delay_over)
            # HAProxy evaluates the rules as the session starts, on no bytes yet
            # (`req.len eq 0` holds at once); not without a delay, where that
            # would be final: there the first read gives the verdict
            self._evaluate()
            if self.view is None:
                return
        self.transport.resume_reading()

    def _delay_over(self) -> None:
        self.inspect_timer = None
        if self.view is not None and not self.closed:
            self.view.final = True
            self._evaluate()

    def data_received(self, data: bytes) -> None:
        view = self.view
        if view is None:
            super().data_received(data)
            return
        self.timer.touch()
        self.frontend.bytes_in += len(data)
        self.pending.append(data)
        self.pending_size += len(data)
        view.payload = b"".join(self.pending)
        if self.pending_size >= INSPECT_BUFFER:
            self.transport.pause_reading()
            view.final = True
        elif not self.frontend.proxy.inspect_delay:
            view.final = True
        self._evaluate()

    def eof_received(self) -> bool:
        view = self.view
        if view is None:
            return super().eof_received()
        self.client_eof = True
        view.final = True  # nothing more can come
        self._evaluate()
        if self.closed:
            return False
        return super().eof_received()  # let on: as the relay takes a close

    def _evaluate(self) -> None:
        view = self.view
        rules = self.frontend.inspect_rules
        verdict, self.next_rule = inspect(rules, view, self.next_rule)
        if verdict is MAYBE:
            return
        self.view = None
        if self.inspect_timer is not None:
            self.inspect_timer.cancel()
            self.inspect_timer = None
        view.final = True  # what follows reads the bytes as they are
        if verdict:
            self.frontend.denied += 1
            self.close()
            return
        # until the server answers, reading stops at HAProxy's buffer (tcp.py)
        if self.pending_size >= INSPECT_BUFFER:
            self.transport.pause_reading()
        super()._route(view)

    def close(self) -> None:
        if self.inspect_timer is not None:
            self.inspect_timer.cancel()
            self.inspect_timer = None
        super().close()

