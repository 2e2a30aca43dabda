"""`on-marked-down shutdown-sessions` and `on-marked-up shutdown-backup-sessions`:
when a server's change closes sessions.

HAProxy 2.6 applies them on every change between running and stopped (DOWN
or in maintenance), whatever made it, read off its sessions for long-lived TCP
connections through servers with and without the options:

* a server's checks mark it DOWN, or `disable server` / `set server state
  maint` puts it in maintenance: its sessions are closed if it carries
  on-marked-down shutdown-sessions, checked or not;
* a server that `track`s another follows it DOWN or into maintenance: the
  same, by the tracking server's own option (a tracking server without the
  option keeps its sessions even when the tracked server has it), and down a
  chain of tracking servers;
* a non-backup server comes back UP (its checks, the server it tracks, or
  the end of its maintenance): the backup servers of its backend lose their
  sessions if it carries on-marked-up shutdown-backup-sessions;
* drain closes nothing.

The sessions are closed after the change is announced: HAProxy's log line
still counts them ("1 sessions active, 0 requeued").
"""

from __future__ import annotations

from typing import Callable

from haply.config.model import Config, Server
from haply.runtime.registry import Registry, ServerState

SHUTDOWN_SESSIONS = "shutdown-sessions"
SHUTDOWN_BACKUP_SESSIONS = "shutdown-backup-sessions"

SessionCallback = Callable[[ServerState], "int | None"]


def shutdown_for(server: Server, backup: bool, was_stopped: bool, stopped: bool) -> str | None:
    """What a change from was_stopped to stopped shuts down for server:
    SHUTDOWN_SESSIONS (its own), SHUTDOWN_BACKUP_SESSIONS (its backend's
    backups') or None."""
    if stopped and not was_stopped and server.on_marked_down == SHUTDOWN_SESSIONS:
        return SHUTDOWN_SESSIONS
    if was_stopped and not stopped and not backup \
            and server.on_marked_up == SHUTDOWN_BACKUP_SESSIONS:
        return SHUTDOWN_BACKUP_SESSIONS
    return None


def carries_an_option(server: Server | None) -> bool:
    return server is not None and bool(server.on_marked_down or server.on_marked_up)


class SessionShutdown:
    """Follows the servers that carry either option through the registry and
    has their sessions closed, through the callbacks the proxy registered, by
    `later` (the loop's call_soon: after the change is announced)."""

    def __init__(self, registry: Registry, config: Config,
                 later: Callable[..., object]) -> None:
        self.registry = registry
        self.later = later
        self.sessions: SessionCallback | None = None
        self.backup_sessions: SessionCallback | None = None
        self._backends = [proxy.name for proxy in config.backends
                          if any(carries_an_option(s) for s in proxy.servers)]
        self._stopped: dict[ServerState, bool] = {}

    def start(self) -> None:
        for backend in self._backends:
            for state in self.registry.servers(backend):
                if carries_an_option(state.config):
                    self._stopped[state] = state.stopped
            self.registry.subscribe(backend, self._changed)

    def _changed(self, state: ServerState) -> None:
        if not carries_an_option(state.config):
            return
        was_stopped = self._stopped.get(state, state.stopped)
        self._stopped[state] = state.stopped
        action = shutdown_for(state.config, state.backup, was_stopped, state.stopped)
        if action == SHUTDOWN_SESSIONS and self.sessions is not None:
            self.later(self.sessions, state)
        elif action == SHUTDOWN_BACKUP_SESSIONS and self.backup_sessions is not None:
            self.later(self.backup_sessions, state)


__all__ = ["SHUTDOWN_BACKUP_SESSIONS", "SHUTDOWN_SESSIONS", "SessionShutdown",
           "shutdown_for"]
