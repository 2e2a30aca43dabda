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
"""

from __future__ import annotations

from haply.runtime.registry import MAINT, ServerState

Key = tuple[str, str]


class CheckCounters:
    def __init__(self) -> None:
        self.downs: dict[Key, int] = {}
        self.down_total: dict[Key, float] = {}
        # per server: (stopped, in maintenance, its last change) as last seen
        self._seen: dict[Key, tuple[bool, bool, float]] = {}

    def watch(self, registry) -> None:
        """Take every server's state as it is now and follow its changes."""
        for backend in registry.backends():
            for state in registry.servers(backend):
                self.changed(state)
            registry.subscribe(backend, self.changed)

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
