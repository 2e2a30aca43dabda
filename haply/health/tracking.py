"""`track [<proxy>/]<server>`: servers that take another server's health.

A tracking server runs no check of its own. Whenever the server it tracks
changes (its checks mark it UP or DOWN, an operator or an agent puts it in
maintenance or drain), the tracking server takes the same state, and a server
tracking *it* follows in turn, since each change goes through the registry
and the registry tells its listeners. The words are HAProxy 2.6's, read off
its logs and `show stat` for two `listen` sections, the second's servers
tracking the first's:

    Server l2/s1 is DOWN via l1/s1. 1 active and 0 backup servers left. ...
    Server l2/s1 is going DOWN for maintenance via l1/s1. ...
    status column: "MAINT (via l1/s1)"; check columns empty; tracked "l1/s1"

Maintenance and drain are inherited only while the tracking server has no
administrative state of its own: one an operator put in maintenance stays
there when the tracked server comes back, as HAProxy's "remains in forced
maintenance" says.

A tracking server's own `on-marked-down shutdown-sessions` and `on-marked-up
shutdown-backup-sessions` apply to the changes it follows, as a checked
server's do to its checks' (haply.health.shutdown sees them all).
"""

from __future__ import annotations

import logging
from typing import Callable

from haply.config.model import Config
from haply.runtime.registry import DRAIN, MAINT, READY, UP, Registry, ServerState

log = logging.getLogger("haply.health")

Key = tuple[str, str]


def tracked_key(track: str) -> Key:
    backend, _, server = track.partition("/")
    return backend, server


class Tracking:
    """The tracking servers of one configuration, kept in step with the
    servers they track. `announce(state, up, via)` is called for each UP/DOWN
    change, to log it and tell the checker's listeners."""

    def __init__(self, registry: Registry, config: Config,
                 announce: Callable[[ServerState, bool, str], None],
                 clock: Callable[[], float]) -> None:
        self.registry = registry
        self.announce = announce
        self.clock = clock
        # tracked server -> the servers tracking it, in file order
        self.trackers: dict[Key, list[ServerState]] = {}
        self.tracked: dict[Key, str] = {}  # tracking server -> "proxy/server" it tracks
        self._pending: list[ServerState] = []
        self._following = False
        for proxy in config.backends:
            for server in proxy.servers:
                state = registry.get(proxy.name, server.name)
                if server.track and state is not None:
                    self.trackers.setdefault(tracked_key(server.track), []).append(state)
                    self.tracked[(proxy.name, server.name)] = server.track

    def start(self) -> None:
        for backend in {key[0] for key in self.trackers}:
            self.registry.subscribe(backend, self._changed)
        for key in list(self.trackers):
            source = self.registry.get(*key)
            if source is not None:
                self._changed(source)

    def end_of_chain(self, backend: str, server: str) -> Key | None:
        """The checked server at the end of a tracking server's chain."""
        key, seen = (backend, server), set()
        while key in self.tracked and key not in seen:
            seen.add(key)
            key = tracked_key(self.tracked[key])
        return key if seen else None

    def _changed(self, state: ServerState) -> None:
        """The registry's word that a server changed. A tracking server's own
        change (it has trackers too) waits until its change is announced, so
        a chain is logged link by link as HAProxy logs it."""
        if (state.backend, state.name) not in self.trackers:
            return
        self._pending.append(state)
        if self._following:
            return
        self._following = True
        try:
            while self._pending:
                self._follow(self._pending.pop(0), self.clock())
        finally:
            self._following = False

    def _follow(self, source: ServerState, now: float) -> None:
        via = f"{source.backend}/{source.name}"
        for tracker in self.trackers[(source.backend, source.name)]:
            self._inherit_admin(tracker, source.admin, via, now)
            if tracker.operational != source.operational:
                up = source.operational == UP
                self.registry.set_operational(tracker, source.operational, now)
                self.announce(tracker, up, via)

    def _inherit_admin(self, tracker: ServerState, admin: str, via: str, now: float) -> None:
        own = tracker.admin != READY and not tracker.admin_via
        if own or tracker.admin == admin:
            return
        who = f"{'Backup Server' if tracker.backup else 'Server'} {tracker.backend}/{tracker.name}"
        if admin == READY:
            self.registry.set_admin(tracker, READY, now)
            log.warning("%s is UP/READY (leaving maintenance).", who)
            return
        self.registry.set_admin(tracker, admin, now, via=via)
        usable = [s for s in self.registry.servers(tracker.backend)
                  if s.operational == UP and s.admin == READY]
        active = sum(1 for s in usable if not s.backup)
        if admin == MAINT:
            backup = len(usable) - active
            log.warning("%s is going DOWN for maintenance via %s. %d active and %d backup servers"
                        " left.%s %d sessions active, 0 requeued, %d remaining in queue.", who, via,
                        active, backup, " Running on backup." if backup and not active else "",
                        tracker.current_sessions, tracker.queued)
        elif admin == DRAIN:
            log.warning("%s enters drain state via %s. %d active and %d backup servers online."
                        " 0 sessions requeued, %d total in queue.", who, via, active,
                        len(usable) - active, tracker.queued)


__all__ = ["Tracking", "tracked_key"]
