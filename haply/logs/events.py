"""HAProxy's log lines for administrative state changes (runtime API, stats
page), worded as HAProxy 2.6 writes them (observed), with their levels.

Pure: the server, its old and new state and its backend's servers in; the level
and the text out (None when HAProxy writes nothing, e.g. a weight change).
"""

from __future__ import annotations

from haply.runtime.registry import DRAIN, MAINT, READY, UP


def _counts(servers) -> tuple[int, int]:
    usable = [s for s in servers if s.operational == UP and s.admin == READY]
    active = sum(1 for s in usable if not s.backup)
    return active, len(usable) - active


def admin_message(state, before: str, after: str, servers) -> tuple[str, str] | None:
    """(severity, text) for a server going from admin state before to after."""
    who = f"{'Backup Server' if state.backup else 'Server'} {state.backend}/{state.name}"
    queued = sum(s.queued for s in servers)
    active, backup = _counts(servers)
    if after == MAINT and before != MAINT:
        text = (f"{who} is going DOWN for maintenance. {active} active and {backup} backup "
                f"servers left.")
        if not active and backup:
            text += " Running on backup."
        text += (f" {state.current_sessions} sessions active, 0 requeued, "
                 f"{state.queued} remaining in queue.")
        return "alert", text
    if before == MAINT and after != MAINT:
        word = "UP/READY" if state.operational == UP else "DOWN"
        return "notice", f"{who} is {word} (leaving forced maintenance)."
    if after == DRAIN and before == READY:
        return "notice", (f"{who} enters drain state. {active} active and {backup} backup "
                          f"servers online. 0 sessions requeued, {queued} total in queue.")
    if before == DRAIN and after == READY:
        return "notice", f"{who} is {'UP' if state.operational == UP else 'DOWN'} (leaving forced drain)."
    return None
