"""Per-server check history the stats need and the registry does not keep:
how many times a server went down (`chkdown`) and how long it was down
(`downtime`). Fed by the registry's change notices, so it costs nothing per
request and one dict update per change.

"Down" is HAProxy's stopped state: DOWN by its checks, or in maintenance,
which stops a server whatever its checks said. Read off HAProxy 2.6's `show
stat` for a checked server put in and out of maintenance, one already DOWN
put in maintenance, and one `disabled` in the configuration:

* chkdown counts each change from usable to stopped: `disable server` on an
  UP server adds one, on a DOWN server none; a server that starts disabled
  has not gone down (0);
* downtime adds up a stopped period when the checks bring the server back
  UP; leaving maintenance adds nothing (the server restarts its checks as at
  startup); while stopped, the time since its last change is added in.

A backend has the same three columns for its own state, which HAProxy 2.6
reads off its servers' total usable weight: it is DOWN when no server can
take traffic (all down, in maintenance, draining or at weight 0) and it has
servers at all. Observed on `show stat`: going down adds one to chkdown and
starts lastchg and the down period again, whatever took the last server
away (its checks, maintenance, drain); coming back adds the period to
downtime only when a server's checks brought it back, not when an operator
did; a backend down from the start (its only server `disabled`, or at
weight 0) counts its period from the start and has not gone down.
"""

from __future__ import annotations

from typing import Callable

from haply.runtime.registry import MAINT, ServerState

Key = tuple[str, str]


class BackendHistory:
    """One backend's own ups and downs (the columns of its BACKEND row)."""

    __slots__ = ("down", "since", "downs", "down_total")

    def __init__(self, down: bool, since: float):
        self.down = down
        self.since = since  # its last change, or the start
        self.downs = 0
        self.down_total = 0.0

    def note(self, down: bool, by_checks: bool, now: float) -> None:
        """The backend is now down (or not); by_checks: a server's checks
        made the change."""
        if down == self.down:
            return
        if down:
            self.downs += 1
        elif by_checks:
            self.down_total += max(0.0, now - self.since)
        self.down, self.since = down, now

    def downtime(self, now: float) -> int:
        total = self.down_total
        if self.down:
            total += max(0.0, now - self.since)
        return int(total)


def backend_down(servers: list[ServerState]) -> bool:
    """No server of a backend that has some can take traffic."""
    return bool(servers) and not any(state.usable for state in servers)


class CheckCounters:
    def __init__(self) -> None:
        self.downs: dict[Key, int] = {}
        self.down_total: dict[Key, float] = {}
        # per server: (stopped, in maintenance, its last change) as last seen
        self._seen: dict[Key, tuple[bool, bool, float]] = {}
        self.backends: dict[str, BackendHistory] = {}

    def watch(self, registry, clock: Callable[[], float],
              went_down: Callable[[str], None] | None = None) -> None:
        """Take every server's and backend's state as it is now and follow
        their changes; clock: the registry's time (a weight change has no
        date of its own); went_down(backend): told of each backend that
        loses its last server."""
        now = clock()
        for backend in registry.backends():
            servers = registry.servers(backend)
            for state in servers:
                self.changed(state)
            self.backends[backend] = BackendHistory(backend_down(servers), now)

            def changed(state: ServerState, servers=servers) -> None:
                by_checks = self._by_checks(state)
                self.changed(state)
                history = self.backends[state.backend]
                was_down = history.down
                history.note(backend_down(servers), by_checks, clock())
                if history.down and not was_down and went_down is not None:
                    went_down(state.backend)

            registry.subscribe(backend, changed)

    def _by_checks(self, state: ServerState) -> bool:
        """Whether this notice is the server's checks (or the server it
        tracks) taking it out of DOWN, as opposed to an operator's change."""
        seen = self._seen.get((state.backend, state.name))
        return seen is not None and seen[0] and not seen[1] and not state.stopped

    def changed(self, state: ServerState) -> None:
        """A registry notice: state's state or weight changed."""
        self.note((state.backend, state.name), state.stopped, state.admin == MAINT,
                  state.last_change)

    def note(self, key: Key, stopped: bool, maint: bool, at: float) -> None:
        """The server is now stopped (or not), in maintenance (or not), as of
        `at`, its last change. The first note of a server is its start."""
        seen = self._seen.get(key)
        self._seen[key] = (stopped, maint, at)
        if seen is None:
            return
        was_stopped, was_maint, since = seen
        if stopped and not was_stopped:
            self.downs[key] = self.downs.get(key, 0) + 1
        elif was_stopped and not stopped and not was_maint:
            self.down_total[key] = self.down_total.get(key, 0.0) + max(0.0, at - since)

    def chkdown(self, backend: str, server: str) -> int:
        return self.downs.get((backend, server), 0)

    def downtime(self, backend: str, server: str, now: float) -> int:
        key = (backend, server)
        total = self.down_total.get(key, 0.0)
        seen = self._seen.get(key)
        if seen is not None and seen[0]:
            total += max(0.0, now - seen[2])
        return int(total)

    def backend(self, name: str) -> BackendHistory | None:
        return self.backends.get(name)
