"""`haply ctl show vrrp`: the service's snapshot as a table (no I/O here).

The snapshot itself comes from `haply.vrrp.service.query(control_path)`: one
dict per instance with state, priority (effective) and base_priority, master,
last_transition (Unix time), reason, faults, counters (sent, received, dropped
by reason) and the tracking deltas in force.
"""

from __future__ import annotations

import time

COLUMNS = ("instance", "state", "prio", "master", "since", "reason")


def _since(when: float | None, now: float) -> str:
    if when is None:
        return "-"
    seconds = max(0, int(now - when))
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m"
    return f"{seconds // 3600}h"


def format_table(snapshots: list[dict], now: float | None = None) -> str:
    now = time.time() if now is None else now
    rows = [COLUMNS]
    for s in snapshots:
        prio = str(s["priority"]) if s["priority"] == s["base_priority"] else \
            f"{s['priority']}({s['base_priority']})"
        master = "self" if s["state"] == "MASTER" else (s.get("master") or "-")
        rows.append((s["name"], s["state"], prio, master, _since(s.get("last_transition"), now),
                     s.get("reason") or ""))
    widths = [max(len(r[i]) for r in rows) for i in range(len(COLUMNS) - 1)]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(r, widths)) + "  " + r[-1] for r in rows]
    return "\n".join(line.rstrip() for line in lines)
