"""Server lists for balancer tests, made through the real registry.

`farm(weights, backups=..., maxconn=...)` builds a backend with one server per
weight (named s1, s2, ... in server_id order) in a `Registry`, exactly as the
proxy would, and returns the registry and its live list of `ServerState`.
`Key` is a minimal request key with the attributes hash algorithms read.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

from haply.config.model import Proxy, Server
from haply.runtime.registry import Registry, ServerState

BACKEND = "app"


def farm(weights: Sequence[int], *, backups: Sequence[int] = (),
         maxconn: int | Sequence[int] = 0, names: Sequence[str] | None = None,
         ) -> tuple[Registry, list[ServerState]]:
    """A registry holding one backend; `backups` are 0-based indexes."""
    if isinstance(maxconn, int):
        maxconn = [maxconn] * len(weights)
    names = list(names) if names is not None else [f"s{i + 1}" for i in range(len(weights))]
    servers = tuple(
        Server(name=names[i], host="127.0.0.1", port=9000 + i, weight=w,
               backup=i in backups, maxconn=maxconn[i])
        for i, w in enumerate(weights))
    registry = Registry()
    states = registry.add_backend(Proxy(name=BACKEND, kind="backend", servers=servers))
    return registry, states


def names(servers: Sequence[ServerState | None]) -> list[str | None]:
    return [s.name if s is not None else None for s in servers]


@dataclass
class Key:
    """What the proxy hands to hash algorithms (haply.balance.base.RequestKey)."""

    client_ip: str = "127.0.0.1"
    path: str = "/"
    query: str = ""
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def uri(self) -> str:
        return self.path

    def header(self, name: str) -> list[str]:
        value = self.headers.get(name)
        return [] if value is None else [value]
