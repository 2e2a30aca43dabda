"""A backend whose servers' limits follow its load (`minconn`, `fullconn`).

Only a backend with such a server is built from this class (`backend_for`), so
every other backend runs BackendRuntime's methods unchanged: the limits cost
nothing where they are not configured. Here each placement of a request first
brings every dynamic server's `maxconn` (what the balancers read) up to date
for the load (haply.runtime.dynamic_limit), a loop over those servers.

How HAProxy 2.6 queues with moving limits, observed through `show stat` and
followed here:
- a request is counted in the load before it is placed, and the one that frees
  a slot is still counted while the queue is served;
- with roundrobin, static-rr and first, a new request joins a non-empty
  backend queue even when a raised limit left a slot free: the queue keeps its
  order;
- a slot freed on a server goes to requests waiting for that server, then to
  the backend's queue, on that same server, up to its limit now: twelve slow
  requests on two servers `minconn 2 maxconn 10` (`fullconn 20`) are 2 + 2
  served and 8 queued; when the first ends its server takes 5 more (limit 6
  at a load of 12), the other's 3 wait for the other's slot.
"""

from __future__ import annotations

import asyncio

from haply.config.model import Config, Proxy
from haply.proxy.backend import BackendRuntime
from haply.runtime.dynamic_limit import backend_fullconn, dynamic_maxconn
from haply.runtime.registry import Registry, ServerState

# Algorithms with which HAProxy queues a new request behind a non-empty
# backend queue rather than looking for a free slot (the others search).
QUEUE_KEEPING = frozenset({"roundrobin", "static-rr", "first"})


class DynamicLimitBackend(BackendRuntime):
    __slots__ = ("_dynamic", "_keeps_queue")

    def __init__(self, proxy: Proxy, registry: Registry, loop: asyncio.AbstractEventLoop,
                 fullconn: int = 1):
        super().__init__(proxy, registry, loop, fullconn)
        self._keeps_queue = proxy.balance in QUEUE_KEEPING
        self._dynamic = [server for server in self.servers if server.minconn]

    def _set_limits(self, load: int) -> None:
        fullconn = self.fullconn
        for server in self._dynamic:
            server.maxconn = dynamic_maxconn(server.minconn, server.ceiling, fullconn, load)

    def try_acquire(self, key, exclude: ServerState | None = None) -> ServerState | None:
        self._set_limits(self.current_sessions + self.waiting + 1)
        if self._keeps_queue and self._queue:
            return None
        return super().try_acquire(key, exclude)

    def try_acquire_server(self, server: ServerState) -> ServerState | None:
        self._set_limits(self.current_sessions + self.waiting + 1)
        return super().try_acquire_server(server)

    def release(self, server: ServerState) -> None:
        self._set_limits(self.current_sessions + self.waiting)
        server.current_sessions -= 1
        self.current_sessions -= 1
        if self._follows_sessions:
            self.balancer.connection_ended(server)
        if not (server.usable and server in self.balancer.group):
            # draining, down, or a backup while actives serve: only its own
            # queue may have its slot; the balancer places the backend's
            if self._server_queues:
                self._serve_server_queue(server)
            if self._queue:
                self._serve_queue()
            return
        queue = self._server_queues.get(server) if self._server_queues else None
        backend_queue = self._queue
        while server.current_sessions < server.maxconn:
            if queue:
                waiter = queue.popleft()
            elif backend_queue and backend_queue[0][2] is not server:
                waiter = backend_queue.popleft()[0]
            else:
                break
            if not waiter.done():
                self._take(server)
                waiter.set_result(server)

    def _on_server_change(self, state: ServerState) -> None:
        self._dynamic = [server for server in self.servers if server.minconn]
        super()._on_server_change(state)


def backend_for(proxy: Proxy, config: Config, registry: Registry, loop: asyncio.AbstractEventLoop,
                default_maxconn: int = 0) -> BackendRuntime:
    """The runtime of a backend: DynamicLimitBackend when one of its servers
    has a moving limit, BackendRuntime otherwise."""
    fullconn = backend_fullconn(config, proxy, default_maxconn)
    if any(state.minconn for state in registry.servers(proxy.name)):
        return DynamicLimitBackend(proxy, registry, loop, fullconn)
    return BackendRuntime(proxy, registry, loop, fullconn)


__all__ = ["DynamicLimitBackend", "QUEUE_KEEPING", "backend_for"]
