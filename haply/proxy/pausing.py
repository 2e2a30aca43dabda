"""A frontend's listeners paused, resumed or stopped at run time.

What HAProxy 2.6 does on Linux, observed: `disable frontend` makes its
listening sockets stop listening while they stay bound (a new connection is
refused, and the ones waiting in the accept queue are reset); established
connections are served on; the FRONTEND row of `show stat` says PAUSED.
`enable frontend` listens again on the same sockets: connections are queued
by the kernel from that instant. `shutdown frontend` closes the listeners for
good (the row says STOP) and neither command can bring them back.

A listening socket stops listening when its receiving side is shut down; a
second listen() on it starts again. What serves it (an asyncio server, or one
of haply's own accept loops) is closed first, on a duplicate descriptor, so
nothing watches a socket that no longer listens; the duplicate is what a
resumed server is given.
"""

from __future__ import annotations

import socket
import sys
from dataclasses import dataclass

OPEN, PAUSED, STOPPED = "OPEN", "PAUSED", "STOP"


@dataclass
class ServedSocket:
    """One bound socket of a frontend and what accepts on it."""

    frontend: object  # haply.proxy.frontend.FrontendRuntime
    sock: socket.socket
    listener: object  # its haply.proxy.frontend.Listener, or None
    backlog: int
    factory: object  # the sessions' protocol factory
    tls: object = None  # its server-side TLS context, if any
    header: tuple | None = None  # (required, name) when a PROXY header may come first
    server: object = None  # None while paused or stopped


def _of(engine, frontend) -> list[ServedSocket]:
    return [served for served in engine.served if served.frontend is frontend]


def pause(engine, frontend) -> bool:
    """Stop listening on every socket of frontend; False if none was listening."""
    changed = False
    for served in _of(engine, frontend):
        if served.server is None:
            continue
        keep = served.sock.dup()  # the server closes its own descriptor
        _stop_serving(engine, served)
        served.sock = keep
        try:
            keep.shutdown(socket.SHUT_RD)
        except OSError:
            pass  # already not listening
        changed = True
    if changed:
        frontend.listening = PAUSED
        _announce(engine, f"Paused frontend {frontend.name}.")
    return changed


def resume(engine, frontend) -> bool:
    """Listen again on every paused socket of frontend; False if none was
    paused. The kernel queues connections from the listen() on; the accept
    loop starts as soon as the event loop runs again."""
    paused = [served for served in _of(engine, frontend) if served.server is None]
    if not paused:
        return False
    for served in paused:
        served.sock.listen(served.backlog)
        starting = served.server = _Starting()  # a second resume does not start it twice
        engine.loop.create_task(_start(engine, served, starting))
    frontend.listening = OPEN
    _announce(engine, f"Resumed frontend {frontend.name}.")
    return True


class _Starting:
    """Stands for a server being started, so that a pause in between is heard."""

    closed = False

    def close(self) -> None:
        self.closed = True


async def _start(engine, served: ServedSocket, starting: _Starting) -> None:
    if not starting.closed:  # else paused again before the loop came round
        await engine.serve(served)


def stop(engine, frontend) -> None:
    """Close frontend's listeners for good."""
    for served in _of(engine, frontend):
        if served.server is not None:
            keep = served.sock.dup()
            _stop_serving(engine, served)
            served.sock = keep
        try:
            served.sock.shutdown(socket.SHUT_RD)
        except OSError:
            pass
        served.sock.close()
        engine.served.remove(served)
    frontend.listening = STOPPED
    gate = frontend.gate
    _announce(engine, f"Proxy {frontend.name} stopped (cumulated conns: FE: {gate.total}, "
                      f"BE: {_backend_total(engine, frontend)}).")


def _backend_total(engine, frontend) -> int:
    """The cumulated sessions of the frontend's own backend side (a `listen`)."""
    backend = engine.backends.get(frontend.name)
    return backend.total_sessions if backend is not None else 0


def _stop_serving(engine, served: ServedSocket) -> None:
    server = served.server
    served.server = None
    if server in engine._servers:
        engine._servers.remove(server)
    server.close()


def close_paused(engine) -> None:
    """At stop: the descriptors kept for paused listeners."""
    for served in engine.served:
        if served.server is None:
            served.sock.close()


def _announce(engine, text: str) -> None:
    if getattr(engine, "announces", True):
        print(f"[WARNING] {text}", file=sys.stderr)
