"""A frontend at run time: its listeners' protocol factory, limits and counters."""

from __future__ import annotations

import asyncio
import socket
import struct
from collections import Counter
from typing import TYPE_CHECKING

from haply.config.model import Proxy
from haply.http import compression
from haply.proxy.conditions import compile_tcp_rules, rejects
from haply.proxy.gate import Gate
from haply.proxy.connection import SourceKey

if TYPE_CHECKING:
    from haply.proxy.engine import Engine

# tcp-request stages, in the order they apply (indexes of FrontendRuntime.tcp_rules)
CONNECTION, SESSION, CONTENT = range(3)
BEFORE_CONTENT = range(CONNECTION, CONTENT)


def _reset_on_close(transport) -> None:
    """Make closing the connection send a reset (no lingering, no FIN)."""
    sock = transport.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, NO_LINGER)


NO_LINGER = struct.pack("ii", 1, 0)


class FrontendRuntime:
    def __init__(self, proxy: Proxy, engine: "Engine"):
        self.proxy = proxy
        self.name = proxy.name
        self.engine = engine
        self.loop: asyncio.AbstractEventLoop = engine.loop
        self.wheel = engine.wheel
        self.gate = Gate(proxy.maxconn if proxy.maxconn is not None else engine.default_maxconn)
        self.global_gate: Gate = engine.global_gate
        # haply.logs.ProxyLog when this frontend logs (set by the engine), else None
        self.logger = None
        # counters
        self.bytes_in = 0
        self.bytes_out = 0
        self.denied = 0
        self.request_errors = 0
        self.http_requests = 0
        self.http_responses: Counter[int] = Counter()  # status class (1..5) -> count
        self.denied_connections = 0  # by tcp-request connection|session rules (dcon, dses)
        self.denied_sessions = 0
        self.comp = compression.Counters()  # comp_in, comp_out, comp_byp, comp_rsp
        # tcp-request rules by stage, in HAProxy's order: for each stage the
        # (condition or None, accept?) pairs in file order (None: no rule at all)
        stages = [compile_tcp_rules(proxy, stage) for stage in ("connection", "session", "content")]
        self.tcp_rules = stages if any(stages) else None
        self.content_rules = bool(stages[CONTENT])

    def screen(self, transport, stages=range(3), tracking=None) -> SourceKey | None:
        """tcp-request rules: in each stage the first rule that applies decides
        for that stage (none: accept), and a reject ends it all. A refused
        connection is counted (dcon, dses, dreq) and closed here (None). stages:
        all of them (mode tcp: the rules read addresses only, so the content
        stage needs no data), or connection and session, then content at the
        first request (mode http, where HAProxy evaluates them on the request).
        Returns the connection as the rules saw it, with the sticky counters
        they track (tracking: those tracked at an earlier stage)."""
        view = SourceKey.of(transport)
        view.tracking = tracking
        for stage in stages:
            if rejects(self.tcp_rules[stage], view):
                if stage == CONNECTION:
                    self.denied_connections += 1
                    _reset_on_close(transport)  # as HAProxy drops it: with a reset
                elif stage == SESSION:
                    self.denied_sessions += 1
                else:
                    self.denied += 1
                if view.tracking is not None:
                    view.tracking.ended(self.loop.time())
                transport.close()
                return None
            if stage != CONTENT and view.tracking is not None:
                view.tracking.count_session(self.loop.time())
        return view

    def admit(self, resume) -> bool:
        """Count a new connection in, or park it (False) until a slot frees."""
        # Gate.full, inline: once per connection
        global_gate = self.global_gate
        if 0 < global_gate.limit <= global_gate.current:
            global_gate.park(resume)
            return False
        gate = self.gate
        if 0 < gate.limit <= gate.current:
            gate.park(resume)
            return False
        gate.enter()
        global_gate.enter()
        return True

    def leave(self) -> None:
        gate = self.gate
        global_gate = self.global_gate
        gate.leave()
        global_gate.leave()
        if gate.waiting:
            gate.wake_one()
        if global_gate.waiting:
            global_gate.wake_one()
