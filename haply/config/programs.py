"""`program` sections of haproxy.cfg -> model.Program, and `program-servers`.

HAProxy 2.x runs external programs from its master process with a `program
NAME` section (manual 3.9 "Programs"): `command`, `user`, `group` and
`option start-on-reload` / `no option start-on-reload`. haply reads those and
adds what the monit pattern of the OpenStack guides needs, each keyword
documented in keywords.py (section "program"):

    program nova-api
        command nova-api --port %p
        instances 4
        port 8781                       # instances listen on 8781..8784
        setenv OS_LOG_DIR /var/log/nova
        directory /var/lib/nova
        stdout /var/log/nova/api-%i.log
        stderr /var/log/nova/api-%i.log
        pidfile /run/nova/api-%i.pid
        timeout stop 10s
        restart-backoff 1s 60s
        crash-limit 5 60s

    backend nova-api
        default-server check inter 2s fall 3
        program-servers nova-api        # servers nova-api-1..4 at 127.0.0.1:8781..8784

`program-servers` is expanded here, at parse time, into ordinary Server models
built exactly like `server` lines (the backend's default-server settings, then
the options written after the program name), so checks, balancers, pages and
the runtime API see plain servers. It needs the program section to come first
in the load (as `from DEFAULTS` needs its defaults first): the servers are
known when the backend closes.

The parser in haproxy.py dispatches lines of a program section here through the
same keyword table; handlers share its signature (parser, state, args, line,
negated). This module imports haproxy.py only inside functions, because
haproxy.py imports this one to build its table.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from haply.config.diagnostics import NOWHERE, Location
from haply.config.model import Program
from haply.config.units import parse_int, parse_port, parse_time

# Defaults of the haply extensions. The stop timeout follows systemd's
# DefaultTimeoutStopSec spirit at a tenth of it: an API worker that has not
# left ten seconds after SIGTERM is stuck, not finishing requests. The backoff
# starts at supervisord's one second and is capped at a minute, and five exits
# within a minute is monit's usual "5 restarts within 5 cycles" at a 12 s cycle.
DEFAULT_STOP_TIMEOUT = 10.0
DEFAULT_BACKOFF = 1.0
DEFAULT_BACKOFF_MAX = 60.0
DEFAULT_CRASH_LIMIT = 5
DEFAULT_CRASH_WINDOW = 60.0
MAX_INSTANCES = 1024
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# Where program-servers point: the instances listen on the loopback.
INSTANCE_HOST = "127.0.0.1"


def _error(message: str) -> Exception:
    from haply.config.haproxy import ParseError

    return ParseError(message)


@dataclass
class ProgramState:
    """A program section while it is read; `freeze()` makes the model."""

    name: str
    location: Location = NOWHERE
    values: dict = field(default_factory=dict)
    environment: list[tuple[str, str]] = field(default_factory=list)

    def freeze(self) -> Program:
        return Program(name=self.name, location=self.location, environment=tuple(self.environment),
                       **self.values)


def open_section(args: list[str], location: Location) -> ProgramState:
    """`program NAME`: the state of a new program section."""
    from haply.config.haproxy import PROXY_NAME

    if len(args) != 1:
        raise _error("'program' expects one name, as in 'program nova-api'")
    if not PROXY_NAME.fullmatch(args[0]):
        raise _error(f"invalid program name '{args[0]}': use letters, digits, '-', '_', '.' and ':'")
    return ProgramState(args[0], location)


def close_section(state: ProgramState, known: dict[str, Program]) -> Program:
    """Check a finished section as a whole and return its model; known holds
    the programs of the load so far (a name may appear once)."""
    from haply.config.haproxy import ParseError

    program = state.freeze()
    where = f"program '{program.name}'"
    if not program.command:
        raise ParseError(f"{where} has no 'command' line; add 'command <path> [<argument>...]'")
    if program.instances > 1 and program.port is None:
        raise ParseError(
            f"{where} has {program.instances} instances but no 'port': add 'port <first port>' "
            "(instance i listens on port + i - 1)")
    if program.port is not None and program.port_of(program.instances) > 65535:
        raise ParseError(f"{where}: {program.instances} instances from port {program.port} go beyond 65535")
    if program.port is None:
        texts = [*program.command, *program.stop_command, program.pidfile or "", program.stdout or "",
                 program.stderr or "", *(value for _, value in program.environment)]
        if any("%p" in text for text in texts):
            raise ParseError(f"{where} uses %p but has no 'port': add 'port <first port>'")
    if program.daemon and not program.pidfile:
        raise ParseError(f"{where} has 'option daemon' but no 'pidfile': haply needs the file "
                         "where the command leaves the process id")
    if program.instances > 1:
        for key in ("pidfile", "stdout", "stderr"):
            value = getattr(program, key)
            if key == "pidfile" and value and "%i" not in value and "%p" not in value:
                raise ParseError(f"{where}: the {program.instances} instances would share the pidfile "
                                 f"'{value}'; put %i (instance) or %p (port) in its name")
    if program.backoff_max < program.backoff:
        raise ParseError(f"{where}: restart-backoff maximum is below its first delay")
    previous = known.get(program.name)
    if previous is not None:
        raise ParseError(f"a program named '{program.name}' is already defined at {previous.location}")
    known[program.name] = program
    return program


# ------------------------------------------------------------------ handlers


def _one(name: str, args, what: str) -> str:
    if len(args) != 1:
        got = "nothing" if not args else f"{len(args)} arguments"
        raise _error(f"'{name}' expects {what} (got {got})")
    return args[0].text


def _argv(name: str):
    def handler(parser, state: ProgramState, args, line, negated) -> None:
        if not args:
            raise _error(f"'{name}' expects a command and its arguments")
        state.values[name.replace("-", "_")] = tuple(word.text for word in args)
    return handler


def _text(name: str, key: str, what: str):
    def handler(parser, state: ProgramState, args, line, negated) -> None:
        state.values[key] = _one(name, args, what)
    return handler


def check_account(kind: str, name: str) -> None:
    """HAProxy refuses a program whose user or group does not exist on this
    machine at load time (not when the program starts); so does haply."""
    import grp
    import pwd

    if name.isdigit():
        return
    try:
        (pwd.getpwnam if kind == "user" else grp.getgrnam)(name)
    except KeyError:
        raise _error(f"cannot find {kind} id for '{name}'") from None


def _account(kind: str):
    def handler(parser, state: ProgramState, args, line, negated) -> None:
        name = _one(kind, args, f"a {kind} name")
        check_account(kind, name)
        state.values[kind] = name
    return handler


def _instances(parser, state: ProgramState, args, line, negated) -> None:
    state.values["instances"] = parse_int(_one("instances", args, "a number"), "instances", 1, MAX_INSTANCES)


def _port(parser, state: ProgramState, args, line, negated) -> None:
    state.values["port"] = parse_port(_one("port", args, "the first instance's port"), "port")


def _setenv(parser, state: ProgramState, args, line, negated) -> None:
    if len(args) != 2:
        raise _error("'setenv' expects a name and a value, as in 'setenv OS_LOG_DIR /var/log/nova'")
    name = args[0].text
    if not ENV_NAME.fullmatch(name):
        raise _error(f"invalid environment variable name '{name}'")
    state.environment = [(k, v) for k, v in state.environment if k != name] + [(name, args[1].text)]


def _timeout_stop(parser, state: ProgramState, args, line, negated) -> None:
    seconds = parse_time(_one("timeout stop", args, "a time"), "timeout stop")
    if seconds <= 0:
        raise _error("'timeout stop' must be greater than zero")
    state.values["stop_timeout"] = seconds


def _restart_backoff(parser, state: ProgramState, args, line, negated) -> None:
    if len(args) not in (1, 2):
        raise _error("'restart-backoff' expects a first delay and an optional maximum, as in 'restart-backoff 1s 60s'")
    first = parse_time(args[0].text, "restart-backoff first delay")
    state.values["backoff"] = first
    state.values["backoff_max"] = parse_time(args[1].text, "restart-backoff maximum") if len(args) == 2 \
        else max(first, DEFAULT_BACKOFF_MAX)


def _crash_limit(parser, state: ProgramState, args, line, negated) -> None:
    if len(args) != 2:
        raise _error("'crash-limit' expects a number of exits and a time window, as in 'crash-limit 5 60s'")
    state.values["crash_limit"] = parse_int(args[0].text, "crash-limit exits", 1)
    window = parse_time(args[1].text, "crash-limit window")
    if window <= 0:
        raise _error("'crash-limit' window must be greater than zero")
    state.values["crash_window"] = window


def _option(key: str):
    def handler(parser, state: ProgramState, args, line, negated) -> None:
        if args:
            raise _error(f"'option {key.replace('_', '-')}' takes no argument (got '{args[0].text}')")
        state.values[key] = not negated
    return handler


# Keyword name (as in keywords.py) -> handler, for lines inside a program section.
HANDLERS = {
    "command": _argv("command"),
    "user": _account("user"),
    "group": _account("group"),
    "option start-on-reload": _option("start_on_reload"),
    "option daemon": _option("daemon"),
    "instances": _instances,
    "port": _port,
    "setenv": _setenv,
    "directory": _text("directory", "directory", "a directory"),
    "stdout": _text("stdout", "stdout", "a file name"),
    "stderr": _text("stderr", "stderr", "a file name"),
    "pidfile": _text("pidfile", "pidfile", "a file name"),
    "stop-command": _argv("stop-command"),
    "timeout stop": _timeout_stop,
    "restart-backoff": _restart_backoff,
    "crash-limit": _crash_limit,
    "service-group": _text("service-group", "service_group", "a group name"),
}


# ----------------------------------------------------------- program-servers


def program_servers(parser, state, args, line, negated) -> None:
    """`program-servers NAME [<server option>...]` in a backend or listen:
    one server per instance, named NAME-1..N, at 127.0.0.1:port."""
    from haply.config import haproxy

    if not args:
        raise _error("'program-servers' expects a program name, as in 'program-servers nova-api check'")
    name = args[0].text
    program = parser.carry.programs.get(name)
    if program is None:
        raise _error(f"program-servers '{name}': no program section named '{name}' before this line "
                     "(put the program section first)")
    if program.port is None:
        raise _error(f"program-servers '{name}': program '{name}' has no 'port', so its instances have "
                     "no address")
    options = [word.text for word in args[1:]]
    verify = haproxy._verify_default(parser)
    for instance in range(1, program.instances + 1):
        server_name = f"{name}-{instance}"
        server = haproxy._make_server(state, server_name, f"{INSTANCE_HOST}:{program.port_of(instance)}",
                                      options, line.location, verify)
        haproxy._add_server(state, server, line.location)


__all__ = ["HANDLERS", "ProgramState", "close_section", "open_section", "program_servers"]
