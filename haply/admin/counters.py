"""Per-server check history the stats need and the registry does not keep:
how many times a server went DOWN (`chkdown`) and how long it was down
(`downtime`). Fed by the health checker's UP/DOWN events, so it costs nothing
per request and one dict update per transition."""

from __future__ import annotations


class CheckCounters:
    def __init__(self) -> None:
        self.downs: dict[tuple[str, str], int] = {}
        self.down_since: dict[tuple[str, str], float] = {}
        self.down_total: dict[tuple[str, str], float] = {}

    def on_event(self, event) -> None:
        key = (event.backend, event.server)
        if not event.up:
            self.downs[key] = self.downs.get(key, 0) + 1
            self.down_since.setdefault(key, event.at)
        else:
            since = self.down_since.pop(key, None)
            if since is not None:
                self.down_total[key] = self.down_total.get(key, 0.0) + event.at - since

    def chkdown(self, backend: str, server: str) -> int:
        return self.downs.get((backend, server), 0)

    def downtime(self, backend: str, server: str, now: float) -> int:
        key = (backend, server)
        total = self.down_total.get(key, 0.0)
        since = self.down_since.get(key)
        if since is not None:
            total += now - since
        return int(total)
