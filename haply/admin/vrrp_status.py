"""What the VRRP process last said about its instances, for the proxy's pages.

VRRP runs in its own process (haply.vrrp.child). The stats page and the
Prometheus exporter are answered synchronously on the proxy's event loop, so
they must never wait for that process: instead one connection per proxy
process says `watch vrrp` on the VRRP control socket and keeps the JSON lines
it pushes (one per change, one per haply.vrrp.service.WATCH_HEARTBEAT). A page
reads the last line and its age; nothing is asked per request.

Asking per request with a short timeout was the alternative: it either blocks
the loop (a synchronous query) or needs an asynchronous answer path the stats
page does not have, and a page refreshed by many browsers would ask as many
times. A push costs one line a second whoever looks.

A VRRP process that is gone (connection refused, closed) is reported at once;
one that stops sending (stopped, stuck) is reported once no line came for
STALE_AFTER. The page still renders, with the problem instead of the table.
"""

from __future__ import annotations

import asyncio
import json
import weakref

# Heartbeats a VRRP process may miss before the page calls it unresponsive
# (its heartbeat is 1 s: a loaded machine may delay one, not three).
STALE_AFTER = 3.5
# Reconnect delay after the VRRP process went away (its supervisor restarts
# it after 1 s, haply.cli.VrrpSupervisor.RESTART_DELAY).
RETRY_DELAY = 1.0
# A line longer than this is not a snapshot: drop the connection (bounded buffer).
MAX_LINE = 1 << 20

STATES = ("INIT", "BACKUP", "MASTER", "FAULT", "STOP")


class VrrpStatus:
    """The last snapshot pushed by the VRRP process at path (see module doc)."""

    def __init__(self, path: str, loop: asyncio.AbstractEventLoop, stopping=lambda: False):
        self.path = path
        self.loop = loop
        self.stopping = stopping  # true once the proxy stops: no more reconnects
        self.instances: list[dict] | None = None
        self.received_at: float | None = None  # loop time of the last line
        self.error: str | None = "not connected yet"
        self.transport: asyncio.Transport | None = None
        self._retry: asyncio.TimerHandle | None = None
        self._connecting = False

    # -------------------------------------------------------------- connecting

    def start(self) -> None:
        if self._connecting or self.transport is not None or self.stopping():
            return
        self._connecting = True
        task = self.loop.create_task(
            self.loop.create_unix_connection(lambda: _WatchProtocol(self), self.path))
        task.add_done_callback(self._connected)

    def _connected(self, task: asyncio.Task) -> None:
        self._connecting = False
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            self.error = f"no VRRP process answers at {self.path}: {getattr(exc, 'strerror', None) or exc}"
            self._schedule_retry()

    def _schedule_retry(self) -> None:
        if self._retry is None and not self.stopping():
            self._retry = self.loop.call_later(RETRY_DELAY, self._retry_now)

    def _retry_now(self) -> None:
        self._retry = None
        self.start()

    def close(self) -> None:
        if self._retry is not None:
            self._retry.cancel()
            self._retry = None
        if self.transport is not None:
            self.transport.close()
            self.transport = None

    # ------------------------------------------------------------- what we heard

    def _line(self, line: bytes) -> None:
        try:
            instances = json.loads(line)
        except ValueError:
            return
        if isinstance(instances, list):
            self.instances = instances
            self.received_at = self.loop.time()
            self.error = None

    def _lost(self, reason: str) -> None:
        self.transport = None
        self.error = reason
        self._schedule_retry()

    def view(self, now: float) -> tuple[list[dict], str | None]:
        """(instances as last heard, problem or None). now: loop time.

        After a problem the last instances are still returned (marked stale by
        the caller): the last known state is what an operator wants to see."""
        self.start()  # no-op while connected; after a failure, try again now
        if self.error is not None:
            return self.instances or [], self.error
        if self.received_at is not None and now - self.received_at > STALE_AFTER:
            return self.instances or [], (f"the VRRP process has not answered for "
                                          f"{int(now - self.received_at)}s")
        return self.instances or [], None


class _WatchProtocol(asyncio.Protocol):
    def __init__(self, status: VrrpStatus):
        self.status = status
        self.buffer = bytearray()

    def connection_made(self, transport) -> None:
        self.status.transport = transport
        transport.write(b"watch vrrp\n")

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            end = self.buffer.find(b"\n")
            if end < 0:
                break
            line = bytes(self.buffer[:end])
            del self.buffer[:end + 1]
            self.status._line(line)
        if len(self.buffer) > MAX_LINE:
            self.status.transport.abort()

    def connection_lost(self, exc) -> None:
        self.status._lost("the VRRP process closed its control connection")


_BY_ENGINE: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def for_engine(engine) -> VrrpStatus | None:
    """The engine's one watcher (shared by its stats pages and exporters),
    started on first use; None when the configuration has no VRRP instance."""
    if not getattr(engine.config, "vrrp", None):
        return None
    status = _BY_ENGINE.get(engine)
    if status is None:
        from haply.vrrp.child import default_control_path
        status = VrrpStatus(default_control_path(engine.config), engine.loop,
                            lambda: getattr(engine, "stopping", False))
        _BY_ENGINE[engine] = status
        status.start()
    return status
