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


# Why DNS resolution put a server into maintenance, in HAProxy's words.
DNS_CAUSES = {"nx": "DNS NX status", "timeout": "DNS timeout status",
              "refused": "DNS refused status", "other": "unspecified DNS error"}


def dns_address_message(state, old: str | None, new: str, source: str) -> tuple[str, str]:
    """source: "SECTION/NAMESERVER" that answered, or "DNS cache" for the
    other servers sharing the answer."""
    return "notice", f"{state.backend}/{state.name} changed its IP from {old or '(none)'} to {new} by {source}."


def dns_maintenance_message(state, status: str, servers) -> tuple[str, str]:
    """A server that lost its address to DNS resolution (haply.resolvers)."""
    who = f"{'Backup Server' if state.backup else 'Server'} {state.backend}/{state.name}"
    cause = DNS_CAUSES.get(status, DNS_CAUSES["other"])
    if state.operational != UP:
        return "notice", f"{who} was DOWN and now enters maintenance ({cause})."
    active, backup = _counts([s for s in servers if s is not state])
    text = f"{who} is going DOWN for maintenance ({cause}). {active} active and {backup} backup servers left."
    if not active and backup:
        text += " Running on backup."
    return "alert", text + (f" {state.current_sessions} sessions active, 0 requeued, "
                            f"{state.queued} remaining in queue.")


def dns_ready_messages(state) -> list[tuple[str, str]]:
    """A server in maintenance for want of an address that DNS gave one."""
    who = f"{'Backup Server' if state.backup else 'Server'} {state.backend}/{state.name}"
    word = "UP/READY" if state.operational == UP else "DOWN"
    return [("notice", f"{who} ('{state.host}') is {word} (resolves again)."),
            ("notice", f"{who} administratively READY thanks to valid DNS answer.")]

