"""Runtime API commands about the stats socket session itself and the
process around it: `show cli level`, `set timeout cli`, `set severity-output`
(any level, for this session only) and `show env` (operator), answered in
HAProxy 2.6's words.
"""

from __future__ import annotations

import os
import re

from haply.admin.answers import CommandError, Message

SEVERITY_OUTPUTS = ("none", "number", "string")
# A `set timeout cli` delay: a whole number, in seconds unless a unit follows.
_DELAY = re.compile(r"([0-9]+)(us|ms|s|m|h|d)?")
_UNIT_SECONDS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}


def _session(api):
    """The socket session the command came on (None: run by the master or a
    test, where a session setting has nowhere to go and is ignored)."""
    return api.session


def cmd_show_cli_level(api, args: list[str]) -> str:
    return Message(f"{api.current_level}\n")


def cmd_set_timeout(api, args: list[str]) -> str:
    if not args or args[0] != "cli":
        raise CommandError("'set timeout' only supports 'cli'.")
    if len(args) < 2:
        raise CommandError("Expects an integer value.")
    match = _DELAY.fullmatch(args[1])
    seconds = int(match.group(1)) * _UNIT_SECONDS[match.group(2)] if match else 0
    if seconds <= 0:
        raise CommandError("Invalid timeout value.")
    session = _session(api)
    if session is not None:
        session.set_timeout(seconds)
    return ""


def cmd_set_severity_output(api, args: list[str]) -> str:
    if not args or args[0] not in SEVERITY_OUTPUTS:
        raise CommandError("one of 'none', 'number', 'string' is a required argument")
    session = _session(api)
    if session is not None:
        session.severity_output = args[0]
    return ""


def cmd_show_env(api, args: list[str]) -> str:
    if args:
        if args[0] not in os.environ:
            raise CommandError("Variable not found")
        return f"{args[0]}={os.environ[args[0]]}\n"
    return "".join(f"{name}={value}\n" for name, value in os.environ.items())


COMMANDS = [
    ("show cli level", "user", "show cli level", "display the level of the current CLI session",
     cmd_show_cli_level),
    ("set timeout", "user", "set timeout [cli] <delay>", "change a timeout setting", cmd_set_timeout),
    ("set severity-output", "user", "set severity-output [none|number|string]",
     "set presence of severity level in feedback information", cmd_set_severity_output),
    ("show env", "operator", "show env [var]", "dump environment variables known to the process",
     cmd_show_env),
]
CHANGES = frozenset()
