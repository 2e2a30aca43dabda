"""`show resolvers [<id>]` on the runtime API, laid out as HAProxy 2.6 lays it
out: each resolvers section, each of its name servers and their counters
(haply.resolvers.wire.COUNTERS). A section no server uses shows zeros.

Pure: the sections and the counters in, the text out.
"""

from __future__ import annotations

from haply.resolvers.wire import COUNTERS


def show(sections, counters: dict[str, list[dict[str, int]]]) -> str:
    """counters: section name -> one dict per name server, in its order."""
    out = []
    for section in sections:
        out.append(f"Resolvers section {section.name}")
        mine = counters.get(section.name) or [{} for _ in section.nameservers]
        for nameserver, counted in zip(section.nameservers, mine):
            out.append(f" nameserver {nameserver.name}:")
            out += [f"  {name + ':':<13}{counted.get(name, 0)}" for name in COUNTERS]
    return "".join(line + "\n" for line in out)


__all__ = ["show"]
