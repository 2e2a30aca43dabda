"""Listening sockets held by the master and handed to workers across reloads.

Each `bind` gets one socket per worker, all in one SO_REUSEPORT group: the kernel
spreads new connections evenly over the workers, and worker i of every
generation accepts on socket i. A reload or a restarted worker therefore takes
over a socket whose accept queue the master kept open: nothing is refused and
nothing queued is reset. `bind fd@N` (one inherited descriptor) and the `stats
socket`s are shared by all workers.
"""

from __future__ import annotations

import os
import socket

from haply.admin.socket_server import open_stats_sockets
from haply.config.model import Bind, Config
from haply.proxy.listeners import describe, open_listener


def bind_key(bind: Bind) -> tuple:
    """Binds with the same key can keep the same socket across a reload."""
    return (describe(bind), tuple(sorted(o for o in bind.options if o[0] in SOCKET_OPTIONS)))


# bind options that shape the socket itself; the others (ssl, crt, alpn...) are
# applied by the worker on top of the same socket.
SOCKET_OPTIONS = frozenset({"v4v6", "v6only", "interface", "transparent", "namespace",
                            "backlog", "defer-accept", "tfo", "mss"})


class SocketSet:
    """The master's sockets for one configuration generation."""

    def __init__(self) -> None:
        self.binds: dict[tuple, list[socket.socket]] = {}
        self.stats: dict[str, tuple[object, socket.socket]] = {}
        self.workers = 0

    @classmethod
    def open(cls, config: Config, workers: int, previous: "SocketSet | None" = None) -> "SocketSet":
        """Sockets for config: reused from previous where the address is the
        same, opened otherwise. All or nothing: on a bind error the sockets
        opened here are closed (previous ones are untouched) and BindError or
        StatsSocketError is raised, naming the line."""
        new = cls()
        new.workers = workers
        opened: list[socket.socket] = []
        old_binds = previous.binds if previous else {}
        old_stats = previous.stats if previous else {}
        try:
            for proxy in config.frontends:
                for bind in proxy.binds:
                    key = bind_key(bind)
                    if key in new.binds:
                        continue
                    reused = list(old_binds.get(key, ()))
                    count = 1 if bind.fd is not None else workers
                    sockets = reused[:count]
                    while len(sockets) < count:
                        sock = open_listener(bind)
                        opened.append(sock)
                        sockets.append(sock)
                    new.binds[key] = sockets
            wanted = [spec for spec in config.global_.stats_sockets if spec.path not in old_stats]
            for spec in config.global_.stats_sockets:
                if spec.path in old_stats:
                    new.stats[spec.path] = (spec, old_stats[spec.path][1])
            if wanted:
                fresh = open_stats_sockets(_with_stats_sockets(config, wanted))
                opened.extend(sock for _, sock in fresh)
                for spec, sock in fresh:
                    new.stats[spec.path] = (spec, sock)
        except BaseException:
            for sock in opened:
                sock.close()
            raise
        return new

    def close_unless_in(self, others: "list[SocketSet]") -> None:
        """Close this set's sockets that none of others holds (after the
        workers that used them are gone)."""
        kept = set()
        for other in others:
            kept.update(id(s) for sockets in other.binds.values() for s in sockets)
            kept.update(id(sock) for _, sock in other.stats.values())
        for sockets in self.binds.values():
            for sock in sockets:
                if id(sock) not in kept:
                    sock.close()
        for _, sock in self.stats.values():
            if id(sock) not in kept:
                sock.close()

    def close(self) -> None:
        for sockets in self.binds.values():
            for sock in sockets:
                sock.close()
        for _, sock in self.stats.values():
            sock.close()
        self.binds.clear()
        self.stats.clear()

    def fds(self) -> list[int]:
        fds = [s.fileno() for sockets in self.binds.values() for s in sockets]
        fds += [sock.fileno() for _, sock in self.stats.values()]
        return [fd for fd in fds if fd >= 0]

    def take_over(self, index: int) -> "WorkerSockets":
        """In a freshly forked worker: keep the sockets worker `index` serves,
        close the master's others (a worker never holds another worker's
        queue open). The master's socket objects in this process are detached
        first, so nothing closes a descriptor number twice."""
        mine: dict[tuple, socket.socket] = {}
        for key, sockets in self.binds.items():
            for position, sock in enumerate(sockets):
                fd = sock.detach()
                if position == index % len(sockets):
                    mine[key] = socket.socket(fileno=fd)
                else:
                    os.close(fd)
        stats = {path: (spec, socket.socket(fileno=sock.detach()))
                 for path, (spec, sock) in self.stats.items()}
        return WorkerSockets(mine, stats)


class WorkerSockets:
    """What an Engine in a worker binds to instead of opening sockets
    (Engine(sockets=...))."""

    def __init__(self, binds: dict[tuple, socket.socket], stats: dict[str, tuple]) -> None:
        self._binds = binds
        self._stats = stats

    def listener(self, bind: Bind) -> socket.socket:
        return self._binds[bind_key(bind)]

    def stats_sockets(self, config: Config) -> list[tuple[object, socket.socket]]:
        return [(spec, self._stats[spec.path][1]) for spec in config.global_.stats_sockets]

    def fds(self) -> set[int]:
        return {s.fileno() for s in self._binds.values()} | {
            sock.fileno() for _, sock in self._stats.values()}




def _with_stats_sockets(config: Config, specs: list) -> Config:
    import dataclasses
    return dataclasses.replace(
        config, global_=dataclasses.replace(config.global_, stats_sockets=tuple(specs)))
