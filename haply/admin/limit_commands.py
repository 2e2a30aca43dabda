"""Runtime API commands that change connection limits: `set maxconn
frontend|server|global` and `set rate-limit`, answered in HAProxy 2.6's
words (admin level).

With several workers, every limit is split between them as the configured
ones are (haply.master.shares): each worker applies its share of the value,
and the shares add up to it. A raised limit lets in at once the connections
and requests it was holding back.
"""

from __future__ import annotations

import re

from haply.admin.answers import CommandError
from haply.admin.frontend_commands import frontend_named

RATE_LIMIT_USAGE = (
    "'set rate-limit' only supports :\n"
    "   - 'connections global' to set the per-process maximum connection rate\n"
    "   - 'sessions global' to set the per-process maximum session rate\n"
    "   - 'ssl-sessions global' to set the per-process maximum SSL session rate\n"
    "   - 'http-compression global' to set the per-process maximum compression speed in kB/s")
# The global directive each rate limit stands for: haply enforces none of them.
RATE_DIRECTIVES = {"connections": "maxconnrate", "sessions": "maxsessrate",
                   "ssl-sessions": "maxsslrate", "http-compression": "maxcomprate"}
# HAProxy keeps a server's maxconn unsigned: a negative one reads as this much more.
UNSIGNED = 1 << 32


def _leading_int(text: str) -> int:
    """The number text starts with, 0 if none (HAProxy reads values so)."""
    match = re.match(r"[+-]?[0-9]+", text)
    return int(match.group()) if match else 0


def _share(api, limit: int) -> int:
    return api.engine.limit_share(limit)


def cmd_set_maxconn_frontend(api, args: list[str]) -> str:
    frontend = frontend_named(api, args)
    if len(args) < 2:
        raise CommandError("Integer value expected.")
    value = _leading_int(args[1])
    if value < 0:
        raise CommandError("Value out of range.")
    frontend.gate.set_limit(_share(api, value))
    return ""


def cmd_set_maxconn_server(api, args: list[str]) -> str:
    if not args:
        raise CommandError("Require 'backend/server'.")
    state = api.server(args[0])
    if len(args) < 2:
        raise CommandError("Require <maxconn>.")
    if not re.match(r"[+-]?[0-9]", args[1]):
        raise CommandError("maxconn string empty or preceded by garbage", framed=False)
    value = _leading_int(args[1])
    if value < 0:
        value += UNSIGNED
    engine = api.engine
    engine.registry.set_maxconn(state, _share(api, value))
    backend = engine.backends.get(state.backend)
    if backend is not None:
        backend.limit_changed(state)
    return ""


def cmd_set_maxconn_global(api, args: list[str]) -> str:
    if not args:
        raise CommandError("Expects an integer value.")
    engine = api.engine
    value = _leading_int(args[0])
    ceiling = engine.whole_global_maxconn or 0  # 0: none configured, no ceiling
    if ceiling and value > ceiling:
        raise CommandError("Value out of range.")
    if value <= 0:  # back to the configured limit
        value = ceiling
    engine.global_gate.set_limit(_share(api, value))
    return ""


def cmd_set_rate_limit(api, args: list[str]) -> str:
    if len(args) < 2 or args[0] not in RATE_DIRECTIVES or args[1] != "global":
        raise CommandError(RATE_LIMIT_USAGE)
    if len(args) < 3:
        raise CommandError("Expects an integer value.")
    if _leading_int(args[2]) < 0:
        raise CommandError("Value out of range.")
    directive = RATE_DIRECTIVES[args[0]]
    raise CommandError(f"haply does not limit the process-wide {args[0]} rate "
                       f"(global '{directive}' is not supported); nothing was changed.")


COMMANDS = [
    ("set maxconn frontend", "admin", "set maxconn frontend <frontend> <value>",
     "change a frontend's maxconn setting", cmd_set_maxconn_frontend),
    ("set maxconn global", "admin", "set maxconn global <value>",
     "change the per-process maxconn setting", cmd_set_maxconn_global),
    ("set maxconn server", "admin", "set maxconn server <bk>/<srv>",
     "change a server's maxconn setting", cmd_set_maxconn_server),
    ("set rate-limit", "admin", "set rate-limit <setting> <value>",
     "change a rate limiting value", cmd_set_rate_limit),
]
CHANGES = frozenset({("set", "maxconn", "frontend"), ("set", "maxconn", "global"),
                     ("set", "maxconn", "server")})
