"""Runtime API commands on a frontend's listeners: `disable frontend`,
`enable frontend`, `shutdown frontend` (haply.proxy.pausing does the work),
answered in HAProxy 2.6's words; all need the admin level.
"""

from __future__ import annotations

from haply.admin.answers import CommandError, Notice
from haply.proxy import pausing

NAME_EXPECTED = "A frontend name is expected."


def frontend_named(api, args: list[str]):
    """The frontend args[0] names (its name, or `#ID`), or HAProxy's error."""
    if not args:
        raise CommandError(NAME_EXPECTED)
    engine = api.engine
    wanted = args[0]
    if wanted.startswith("#"):
        by_number = {str(number): name for name, number in engine.config.proxy_ids().items()}
        wanted = by_number.get(wanted[1:], wanted)
    frontend = engine.frontends.get(wanted)
    if frontend is None:
        raise CommandError("No such frontend.")
    return frontend


def cmd_disable_frontend(api, args: list[str]) -> str:
    frontend = frontend_named(api, args)
    if frontend.listening == pausing.STOPPED:
        raise CommandError("Frontend was previously shut down, cannot disable.")
    if not pausing.pause(api.engine, frontend):
        return Notice("All sockets are already disabled.\n")
    return ""


def cmd_enable_frontend(api, args: list[str]) -> str:
    frontend = frontend_named(api, args)
    if frontend.listening == pausing.STOPPED:
        raise CommandError("Frontend was previously shut down, cannot enable.")
    try:
        resumed = pausing.resume(api.engine, frontend)
    except OSError:
        raise CommandError("Failed to resume frontend, check logs for precise cause.") from None
    if not resumed:
        return Notice("All sockets are already enabled.\n")
    return ""


def cmd_shutdown_frontend(api, args: list[str]) -> str:
    frontend = frontend_named(api, args)
    if frontend.listening == pausing.STOPPED:
        raise CommandError("Frontend was already shut down.")
    pausing.stop(api.engine, frontend)
    return ""


# words, level, usage, help, function (as in runtime_api's table)
COMMANDS = [
    ("disable frontend", "admin", "disable frontend <frontend>", "temporarily disable specific frontend",
     cmd_disable_frontend),
    ("enable frontend", "admin", "enable frontend <frontend>", "re-enable specific frontend",
     cmd_enable_frontend),
    ("shutdown frontend", "admin", "shutdown frontend <frontend>", "stop a specific frontend",
     cmd_shutdown_frontend),
]
# Changes every worker makes (haply.master relays them).
CHANGES = frozenset({("disable", "frontend"), ("enable", "frontend"), ("shutdown", "frontend")})
