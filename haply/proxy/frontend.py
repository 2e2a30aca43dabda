"""A frontend at run time: its listeners' protocol factory, limits and counters."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import TYPE_CHECKING

from haply.config.model import Proxy
from haply.proxy.gate import Gate

if TYPE_CHECKING:
    from haply.proxy.engine import Engine


class FrontendRuntime:
    def __init__(self, proxy: Proxy, engine: "Engine"):
        self.proxy = proxy
        self.name = proxy.name
        self.engine = engine
        self.loop: asyncio.AbstractEventLoop = engine.loop
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

    def admit(self, resume) -> bool:
        """Count a new connection in, or park it (False) until a slot frees."""
        if self.global_gate.full:
            self.global_gate.park(resume)
            return False
        if self.gate.full:
            self.gate.park(resume)
            return False
        self.gate.enter()
        self.global_gate.enter()
        return True

    def leave(self) -> None:
        self.gate.leave()
        self.global_gate.leave()
        self.gate.wake_one()
        self.global_gate.wake_one()
