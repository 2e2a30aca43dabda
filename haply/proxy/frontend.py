"""A frontend at run time: its listeners' protocol factory, limits and counters."""

from __future__ import annotations

import asyncio
import socket
import struct
from collections import Counter
from typing import TYPE_CHECKING, Any

from haply.config.model import Proxy
from haply.http import compression
from haply.proxy import caching
from haply.proxy.conditions import compile_inspecting_rules, compile_tcp_rules, rejects
from haply.proxy.gate import Gate
from haply.proxy.connection import SourceKey
from haply.runtime.session_rate import SessionRateLimit

if TYPE_CHECKING:
    from haply.proxy.engine import Engine

# tcp-request stages, in the order they apply (indexes of FrontendRuntime.tcp_rules)
CONNECTION, SESSION, CONTENT = range(3)
BEFORE_CONTENT = range(CONNECTION, CONTENT)
CONNECTION_STAGE = (CONNECTION,)


def reset_on_close(transport) -> None:
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
        # OPEN, PAUSED or STOP: what the runtime API made of its listeners (haply.proxy.pausing)
        self.listening = "OPEN"
        # `rate-limit sessions`: its listeners accept no faster (haply.proxy.accepting)
        self.session_rate = (SessionRateLimit(proxy.rate_limit_sessions)
                             if proxy.rate_limit_sessions else None)
        # haply.logs.ProxyLog when this frontend logs (set by the engine), else
        # None. Typed: the compiled session reads it (a bare None would be
        # taken for its only possible value).
        self.logger: Any = None
        # counters
        self.bytes_in = 0
        self.bytes_out = 0
        self.denied = 0
        self.request_errors = 0
        self.http_requests = 0
        self.http_responses: Counter[int] = Counter()  # status class (1..5) -> count
        # requests haply answered itself: monitor-uri, redirects, `return`, `auth`,
        # services such as the stats page and the exporter (`intercepted`)
        self.intercepted = 0
        self.denied_connections = 0  # by tcp-request connection|session rules (dcon, dses)
        self.denied_sessions = 0
        # connections closed for their PROXY header (haply.proxy.accept_proxy):
        # in conn_tot, as HAProxy counts them, never sessions
        self.header_failures = 0
        # Whether its listeners run the tcp-request connection stage as they
        # accept (PROXY headers, and the rate of `rate-limit sessions`, come
        # after it): set by the engine for PROXY headers
        self.screens_at_accept = False
        self.comp = compression.Counters()  # comp_in, comp_out, comp_byp, comp_rsp
        self.cache = caching.Counters()  # cache_lookups, cache_hits of its cache-use rules
        # `option socket-stats`: each listening address's counters, in bind order
        self.listeners: list[Listener] = []
        # tcp-request rules by stage, in HAProxy's order: for each stage the
        # (condition or None, accept?) pairs in file order (None: no rule at all)
        stages = [compile_tcp_rules(proxy, stage) for stage in ("connection", "session", "content")]
        self.tcp_rules = stages if any(stages) else None
        self.content_rules = bool(stages[CONTENT])
        # The content stage as inspection evaluates it (haply.proxy.inspection),
        # in mode tcp, where the engine decides whether the sessions inspect
        self.inspect_rules = compile_inspecting_rules(proxy) if proxy.mode == "tcp" else []
        if self.session_rate is not None and stages[CONNECTION]:
            self.screens_at_accept = True  # haply.proxy.rate_limited

    def screen(self, transport, stages=range(3), tracking=None) -> SourceKey | None:
        """tcp-request rules: in each stage the first rule that applies decides
        for that stage (none: accept), and a reject ends it all. A refused
        connection is counted (dcon, dses, dreq) and closed here (None). stages:
        all of them (mode tcp: the rules read addresses only, so the content
        stage needs no data), or connection and session, then content at the
        first request (mode http, where HAProxy evaluates them on the request).
        Returns the connection as the rules saw it, with the sticky counters
        they track (tracking: those tracked at an earlier stage). A
        connection that sent a PROXY header had its connection stage before
        the header was read (haply.proxy.accept_proxy), and so had one
        accepted at a rate (haply.proxy.rate_limited): its transport says
        how that stage saw it, and the later stages see the header's
        addresses."""
        view = SourceKey.of(transport)
        if self.screens_at_accept:
            screened = getattr(transport, "screened", None)
            if screened is not None:
                tracking = screened.tracking
                stages = [stage for stage in stages if stage != CONNECTION]
        view.tracking = tracking
        for stage in stages:
            if rejects(self.tcp_rules[stage], view):
                if stage == CONNECTION:
                    self.denied_connections += 1
                    reset_on_close(transport)  # as HAProxy drops it: with a reset
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

    def gates(self) -> tuple[Gate, ...]:
        """The limits a connection counts in, in the order admit reads them."""
        return (self.global_gate, self.gate)

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


class Listener:
    """One listening address of a frontend, counted apart: its own connection
    limit (the bind line's `maxconn`) and, with `option socket-stats`, the
    counters of its row in the statistics (type 3, HAProxy's "listener")."""

    __slots__ = ("sid", "name", "addr", "gate", "total", "bytes_in", "bytes_out", "denied",
                 "request_errors", "denied_connections", "denied_sessions")

    def __init__(self, sid: int, name: str, addr: str, limit: int = 0):
        self.sid = sid  # its number among the frontend's listeners, from 1 (or its `id`)
        self.name = name
        self.addr = addr
        self.gate = Gate(limit)  # its sessions, and its maxconn (0: none)
        self.total = 0  # connections accepted, those the rules refused too
        self.bytes_in = self.bytes_out = self.denied = self.request_errors = 0
        self.denied_connections = self.denied_sessions = 0

    @property
    def limit(self) -> int:
        return self.gate.limit


def listener_of(bind, sid: int) -> Listener:
    """The statistics row of one bound address: named by its bind line's
    `name`, else sock-<sid>; its address as HAProxy prints it."""
    options = dict(bind.options)
    host = "0.0.0.0" if bind.host in ("", "*") else bind.host
    if bind.fd is not None:
        addr = f"fd@{bind.fd}"
    else:
        addr = f"[{host}]:{bind.port}" if ":" in host else f"{host}:{bind.port}"
    limit = options.get("maxconn")
    sid = int(options.get("id") or sid)
    return Listener(sid, options.get("name") or f"sock-{sid}", addr, int(limit) if limit else 0)


# What a session counts on its frontend, and on its listener too.
LISTENER_COUNTED = ("bytes_in", "bytes_out", "denied", "request_errors")


class ListenerCounting:
    """The frontend as the sessions of one listener see it: what they count
    goes to the frontend and to the listener; everything else is the
    frontend's. Only listeners of a frontend with `option socket-stats` pay
    for this indirection."""

    __slots__ = ("_frontend", "_listener")

    def __init__(self, frontend: FrontendRuntime, listener: Listener):
        object.__setattr__(self, "_frontend", frontend)
        object.__setattr__(self, "_listener", listener)

    def __getattr__(self, name):
        return getattr(self._frontend, name)

    def __setattr__(self, name, value):
        if name in LISTENER_COUNTED:
            object.__setattr__(self, name, value)  # the property below
        else:
            setattr(self._frontend, name, value)

    def gates(self) -> tuple[Gate, ...]:
        return (self._listener.gate, *self._frontend.gates())

    def admit(self, resume) -> bool:
        """The listener's maxconn first (a connection over it waits, reading
        nothing, as over the frontend's), then the frontend's."""
        gate = self._listener.gate
        if 0 < gate.limit <= gate.current:
            gate.park(resume)
            return False
        if not self._frontend.admit(resume):
            return False
        gate.enter()
        return True

    def leave(self) -> None:
        gate = self._listener.gate
        gate.leave()
        self._frontend.leave()
        if gate.waiting:
            gate.wake_one()

    def screen(self, transport, stages=range(3), tracking=None):
        frontend, listener = self._frontend, self._listener
        before = frontend.denied_connections, frontend.denied_sessions, frontend.denied
        view = frontend.screen(transport, stages, tracking)
        listener.denied_connections += frontend.denied_connections - before[0]
        listener.denied_sessions += frontend.denied_sessions - before[1]
        listener.denied += frontend.denied - before[2]
        return view


def _counted(name: str) -> property:
    def get(self):
        return getattr(self._frontend, name)

    def set(self, value):
        frontend, listener = self._frontend, self._listener
        change = value - getattr(frontend, name)
        setattr(frontend, name, value)
        setattr(listener, name, getattr(listener, name) + change)
    return property(get, set)


for _name in LISTENER_COUNTED:
    setattr(ListenerCounting, _name, _counted(_name))
del _name
