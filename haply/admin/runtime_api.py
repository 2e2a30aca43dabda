"""HAProxy's runtime API commands (management guide, section 9.3), one function each.

`RuntimeApi.execute(line, level)` runs one command line and returns its text
answer exactly as HAProxy frames it (the socket server adds the prompt and the
empty line that ends a one-shot answer). State changes go only through the
Registry's methods, so balancers, health checks and pages see each change once.

Levels (management guide, "stats socket ... level"): `user` may only look,
`operator` may also clear counters, `admin` may change servers. A command above
the socket's level answers "Permission denied".
"""

from __future__ import annotations

import re
import shlex
import time
from dataclasses import dataclass
from typing import Callable

from haply.admin import (columns, frontend_commands, limit_commands, server_commands,
                         session_commands, snapshot)
from haply.admin.answers import (CommandError, Failure, Message, Unframed,  # noqa: F401
                                 UnframedFailure, UnframedMessage)
from haply.http import cache
from haply.proxy import counters, stick
from haply.proxy.addresses import is_ip
from haply.runtime.registry import DOWN, DRAIN, MAINT, READY, UP

# Modules holding a group of commands: their COMMANDS join the table below,
# their CHANGES the commands every worker applies.
GROUPS = (frontend_commands, limit_commands, session_commands, server_commands)
LEVELS = {"user": 0, "operator": 1, "admin": 2}
PERMISSION_DENIED = Failure("Permission denied\n")
# Handled by the socket session itself (haply.admin.socket_server).
SESSION_COMMANDS = (
    ("help [<command>]", "list matching or all commands"),
    ("prompt", "toggle interactive mode with prompt"),
    ("quit", "disconnect"),
    ("operator", "lower the level of the current CLI session to operator"),
    ("user", "lower the level of the current CLI session to user"),
)

# `show servers state` numbering (HAProxy's state file format, version 1).
OP_STOPPED, OP_STARTING, OP_RUNNING = 0, 1, 2
ADMF_RMAINT = 0x20  # maintenance for want of an address (init-addr none)
ADMF_FMAINT = 0x01
ADMF_CMAINT = 0x04
ADMF_FDRAIN = 0x08
CHECK_STATUS_CODES = {
    "UNK": 0, "INI": 1, "SOCKERR": 5, "L4OK": 6, "L4TOUT": 7, "L4CON": 8, "L6OK": 9,
    "L6TOUT": 10, "L6RSP": 11, "L7TOUT": 12, "L7RSP": 13, "L7OK": 15, "L7OKC": 16,
    "L7STS": 17, "PROCERR": 18, "PROCTOUT": 19, "PROCOK": 20,
}
# Commands that change server state (or forget stick entries): a worker process
# passes them on to the others (Engine.on_operator_change) so every worker agrees.
OPERATOR_CHANGES = frozenset({
    ("disable", "server"), ("enable", "server"), ("disable", "health"),
    ("enable", "health"), ("disable", "agent"), ("enable", "agent"), ("set", "server"),
    ("set", "weight"), ("add", "server"), ("del", "server"), ("clear", "counters"),
    ("clear", "table"), ("set", "table"),
}).union(*(group.CHANGES for group in GROUPS))
SERVERS_STATE_HEADER = (
    "# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight "
    "srv_iweight srv_time_since_last_change srv_check_status srv_check_result "
    "srv_check_health srv_check_state srv_agent_state bk_f_forced_id srv_f_forced_id "
    "srv_fqdn srv_port srvrecord srv_use_ssl srv_check_port srv_check_addr "
    "srv_agent_addr srv_agent_port")


class Deferred:
    """An answer that takes time (a rolling restart of programs): `start()`
    returns the awaitable whose text is the answer; the socket session awaits
    it before writing."""

    __slots__ = ("start",)

    def __init__(self, start: Callable):
        self.start = start


@dataclass(frozen=True)
class Command:
    words: tuple[str, ...]  # the fixed words that select it
    level: str
    usage: str
    help: str
    run: Callable


class RuntimeApi:
    def __init__(self, engine, clock: Callable[[], float] | None = None):
        self.engine = engine
        self.clock = clock or engine.loop.time
        self.commands: list[Command] = []
        self.current_level = "admin"  # the level of the command being run
        self.session = None  # the stats socket session sending it, if any
        for words, level, usage, text, run in _COMMANDS:
            self.commands.append(Command(tuple(words.split()), level, usage, text, run))

    # ------------------------------------------------------------ dispatch

    def execute(self, line: str, level: str = "admin", session=None) -> str:
        """session: the stats socket session (haply.admin.socket_server)
        sending the line, for the commands that change it; None elsewhere."""
        try:
            words = shlex.split(line)
        except ValueError:
            words = line.split()
        if not words:
            return ""
        command = self._find(words)
        if command is None:
            return self.unknown(words, level)
        if LEVELS[level] < LEVELS[command.level]:
            return PERMISSION_DENIED
        self.current_level = level
        self.session = session
        try:
            answer = command.run(self, words[len(command.words):])
            if command.words in OPERATOR_CHANGES and self.engine.on_operator_change is not None:
                self.engine.on_operator_change(line)
            return answer
        except CommandError as exc:
            text = str(exc)
            text = text if text.endswith("\n") else text + "\n"
            return Failure(text) if exc.framed else UnframedFailure(text)

    def unknown(self, words: list[str], level: str) -> str:
        """HAProxy's answer to an unknown command: the closest commands first."""
        import difflib
        typed = " ".join(words)
        allowed = [c for c in self.commands if LEVELS[level] >= LEVELS[c.level]
                   and c.words != ("help",)]
        ranked = sorted(allowed, key=lambda c: -difflib.SequenceMatcher(
            None, typed, " ".join(c.words)).ratio())
        lines = ["Unknown command, but maybe one of the following ones is a better match:"]
        lines += [f"  {c.usage:<39} : {c.help}" for c in ranked[:5]]
        lines += [f"  {usage:<39} : {text}" for usage, text in SESSION_COMMANDS]
        return Message("\n".join(lines) + "\n")

    def _find(self, words: list[str]) -> Command | None:
        best = None
        for command in self.commands:
            n = len(command.words)
            if tuple(words[:n]) == command.words and (best is None or n > len(best.words)):
                best = command
        return best

    def help_text(self, level: str = "admin") -> str:
        lines = ["The following commands are valid at this level:"]
        for command in self.commands:
            if LEVELS[level] >= LEVELS[command.level]:
                lines.append(f"  {command.usage:<39} : {command.help}")
        lines += [f"  {usage:<39} : {text}" for usage, text in SESSION_COMMANDS[1:]]
        return "\n".join(lines) + "\n"

    # ------------------------------------------------------------- helpers

    def snapshot(self) -> snapshot.Snapshot:
        return snapshot.take(self.engine, self.clock())

    def server(self, spec: str):
        backend, sep, name = spec.partition("/")
        if not sep or not name:
            raise CommandError("Require 'backend/server'.")
        if backend not in self.engine.backends:
            raise CommandError("No such backend.")
        state = self.engine.registry.get(backend, name)
        if state is None:
            raise CommandError("No such server.")
        return state


# ---------------------------------------------------------------- commands


def cmd_help(api: RuntimeApi, args: list[str]) -> str:
    return api.help_text("admin")


def cmd_show_info(api: RuntimeApi, args: list[str]) -> str:
    info = api.snapshot().info
    if args[:1] == ["json"]:
        import json
        return json.dumps([{"field": {"pos": i, "name": k}, "value": {"value": v}}
                           for i, (k, v) in enumerate(info.items())]) + "\n"
    return "".join(f"{key}: {value}\n" for key, value in info.items())


def _atoi(text: str) -> int:
    match = re.match(r"[+-]?[0-9]+", text.strip())
    return int(match.group()) if match else 0


def cmd_show_stat(api: RuntimeApi, args: list[str]) -> str:
    rows = api.snapshot().rows
    wanted = [a for a in args if a not in ("json", "typed", "desc", "up", "no-maint")]
    if len(wanted) >= 3:
        # show stat <iid|name> <type mask> <sid>: HAProxy's filter.
        proxy, mask, sid = wanted[:3]
        if proxy != "-1" and not any(r["pxname"] == proxy or str(r["iid"]) == proxy for r in rows):
            raise CommandError("No such proxy.")
        mask_value = _atoi(mask)  # HAProxy reads the leading digits: "x" is 0, "4x" is 4
        rows = [r for r in rows
                if (proxy == "-1" or r["pxname"] == proxy or str(r["iid"]) == proxy)
                and mask_value & (1 << r["type"])
                and (sid == "-1" or str(r["sid"]) == sid)]
    if "up" in args:
        rows = [r for r in rows if r["type"] != columns.TYPE_SERVER
                or snapshot.is_running(str(r["status"]))]
    if "no-maint" in args:
        rows = [r for r in rows if r["status"] != "MAINT"]
    if "json" in args:
        return columns.to_json(rows) + "\n"
    return columns.to_csv(rows)


def cmd_show_servers_state(api: RuntimeApi, args: list[str]) -> str:
    engine = api.engine
    names = list(engine.backends)
    if args:
        if args[0] not in engine.backends:
            raise CommandError("Can't find backend.")
        names = [args[0]]
    now = api.clock()
    out = ["1", SERVERS_STATE_HEADER]
    ids = {p.name: (p.id if p.id is not None else i + 2)
           for i, p in enumerate(engine.config.proxies)}
    health = engine.health
    for name in names:
        for s in engine.registry.servers(name):
            h = health.health_of(name, s.name) if health is not None else None
            op = OP_RUNNING if s.operational == UP and s.admin != MAINT else OP_STOPPED
            admin = (ADMF_FMAINT if s.admin == MAINT else 0) | (ADMF_FDRAIN if s.admin == DRAIN else 0)
            if s.admin == MAINT and s.config is not None and s.config.disabled:
                admin |= ADMF_CMAINT  # still in the maintenance the config asked for
            if h is None:
                check = (CHECK_STATUS_CODES["INI"], 0, 0, 0)
            else:
                check = (CHECK_STATUS_CODES.get(s.check_status or "INI", 0),
                         2 if s.operational == DOWN else 3,
                         h.health, 6 if s.operational == DOWN else 6)
            if s.unresolved:
                admin = ADMF_RMAINT  # in maintenance for want of an address, not by an operator
            addr = s.address[0] if s.address else "-"
            fqdn = "-" if is_ip(s.host) else s.host
            config = s.config
            check_port = (config.check_port or 0) if config is not None else 0
            out.append(
                f"{ids.get(name, 0)} {name} {s.server_id} {s.name} {addr} {op} {admin} "
                f"{s.effective_weight} {s.weight} {max(0, int(now - s.last_change))} "
                f"{check[0]} {check[1]} {check[2]} {check[3]} 0 0 0 {fqdn} "
                f"{s.port if s.port is not None else 0} - 0 {check_port} - - 0")
    return "\n".join(out) + "\n"


def cmd_show_backend(api: RuntimeApi, args: list[str]) -> str:
    return "# name\n" + "".join(f"{name}\n" for name in api.engine.backends)


def _stick_tables(api: RuntimeApi) -> list:
    return stick.listed(api.engine.tables)


def _table_header(table) -> str:
    return f"# table: {table.name}, type: {table.kind}, size:{table.size}, used:{len(table.entries)}\n"


def _named_table(api: RuntimeApi, name: str):
    table = next((t for t in _stick_tables(api) if t.name == name), None)
    if table is None:
        raise CommandError("No such table")
    return table


DATA_OPERATORS = {"eq": int.__eq__, "ne": int.__ne__, "le": int.__le__, "ge": int.__ge__,
                  "lt": int.__lt__, "gt": int.__gt__}


def _data_filter(table, args: list[str]):
    """`data.NAME OPERATOR VALUE` as a test on an entry at a time (None: no
    filter); HAProxy's messages for a wrong one."""
    if not args:
        return None
    name = args[0][5:]
    operator = args[1] if len(args) > 1 else ""
    value = args[2] if len(args) > 2 else ""
    if name not in table.stored:
        raise CommandError("Filter entry #1: Data type not stored in this table")
    if operator not in DATA_OPERATORS:
        raise CommandError('Filter entry #1: Require and operator among "eq", "ne", "le", "ge", "lt", "gt"')
    if not value.isdigit():
        raise CommandError("Filter entry #1: Require a valid integer value to compare against")
    compare, bound = DATA_OPERATORS[operator], int(value)
    return lambda entry, now: compare(counters.read(entry.data, name, now), bound)


_KEY_ESCAPES = {**{code: f"\\x{code:02X}" for code in (*range(0x20), *range(0x7F, 0x100))},
                **{ord(c): "\\" + c for c in " =\\"}, 9: "\\t"}


def _printed_key(table, key: str) -> str:
    """A string table's key as `show table` prints it: a space, `=` and a
    backslash escaped with a backslash, a tab as `\\t`, other bytes outside
    printable ASCII as `\\xHH` (a key is one word of the line)."""
    return key.translate(_KEY_ESCAPES) if table.kind == "string" else key


def _entry_line(table, key: str, entry, now: float) -> str:
    expires = 0 if entry.expires is None else max(0, int((entry.expires - now) * 1000))
    parts = [f"{id(entry):#x}: key={_printed_key(table, key)} use={entry.use} exp={expires}"]
    if table.stores_server:
        parts.append(f"server_id={entry.server_id}")
    data = counters.show(entry.data, now)
    if data:
        parts.append(data)
    if table.stores_server and entry.server is not None:
        parts.append(f"server_key={entry.server}")
    return " ".join(parts) + "\n"


def _refuse_binary_key(table, doing: str) -> None:
    """HAProxy names no key of a binary table on the runtime API."""
    if table.kind == "binary":
        raise CommandError(f"{doing} tables of type other than ip, ipv6, string and integer is not supported")


SHOW_TABLE_USAGE = ('Optional argument only supports "data.<store_data_type>" <operator> <value> '
                    "and key <key>")


def cmd_show_table(api: RuntimeApi, args: list[str]) -> str:
    """HAProxy's `show table [NAME [data.TYPE OPERATOR VALUE | key KEY]]`:
    the tables, or one table's entries (those the filter keeps)."""
    tables = _stick_tables(api)
    if not args:
        return "".join(_table_header(t) for t in tables)
    table = _named_table(api, args[0])
    now = api.clock()
    table.purge(now)
    if args[1:2] == ["key"]:
        if len(args) < 3:
            raise CommandError("Key value expected")
        _refuse_binary_key(table, "Showing keys from")
        key = table.normalise(args[2])
        entry = table.lookup(key, now) if key is not None else None
        return _table_header(table) + (_entry_line(table, key, entry, now) if entry is not None else "")
    if len(args) > 1 and not args[1].startswith("data."):
        raise CommandError(SHOW_TABLE_USAGE)
    keep = _data_filter(table, args[1:])
    lines = [_table_header(table)]
    for key, entry in stick.ordered(table):
        if keep is None or keep(entry, now):
            lines.append(_entry_line(table, key, entry, now))
    return "".join(lines)


CLEAR_TABLE_USAGE = ('Required arguments: <table> "data.<store_data_type>" <operator> <value> '
                     "or <table> key <key>")


def cmd_clear_table(api: RuntimeApi, args: list[str]) -> str:
    """`clear table NAME [key KEY | data.TYPE OPERATOR VALUE]`: forget every
    entry, one, or those the filter keeps (never one a session tracks)."""
    if not args:
        raise CommandError(CLEAR_TABLE_USAGE)
    table = _named_table(api, args[0])
    if len(args) == 1:
        table.clear()
    elif args[1] == "key" and len(args) == 3:
        _refuse_binary_key(table, "Removing keys from")
        table.clear(args[2])
    elif args[1].startswith("data."):
        now = api.clock()
        test = _data_filter(table, args[1:])
        table.clear(keep=lambda entry: not test(entry, now))
    else:
        raise CommandError(CLEAR_TABLE_USAGE)
    return ""


def cmd_set_table(api: RuntimeApi, args: list[str]) -> str:
    """`set table NAME key KEY [data.TYPE VALUE]...`: make the entry if needed
    and set counters (a rate gets VALUE events in its current period). A key
    that does not fit the table is ignored, as HAProxy ignores it."""
    if len(args) < 3 or args[1] != "key":
        raise CommandError("'set table' expects a table identifier, 'key' and a key value")
    table = _named_table(api, args[0])
    _refuse_binary_key(table, "Inserting keys into")
    settings = args[3:]
    pairs = []
    for index in range(0, len(settings), 2):
        name = settings[index]
        value = settings[index + 1] if index + 1 < len(settings) else ""
        if not name.startswith("data."):
            raise CommandError('Optional argument only supports "data.<store_data_type>" <value>')
        if name[5:] not in table.stored:
            raise CommandError("Data type not stored in this table")
        if not value.isdigit():
            raise CommandError("Require a valid integer value to store")
        pairs.append((name[5:], int(value)))
    now = api.clock()
    entry = table.place(args[2], now)
    if entry is not None:
        for name, value in pairs:
            counters.set_value(entry.data, name, value, now)
    return ""


def cmd_show_sess(api: RuntimeApi, args: list[str]) -> str:
    now = api.clock()
    lines = []
    for session in list(api.engine.sessions):
        frontend = getattr(session, "frontend", None)
        requests = getattr(session, "requests", None) or ()
        request = requests[0] if requests else None
        backend = getattr(request, "backend", None)
        server = getattr(request, "server", None)
        started = getattr(session, "started_at", None) or getattr(session, "log_begin", None)
        accepted = getattr(session, "log_accepted", None)
        if started is None and accepted is not None:
            started = accepted[0]
        age = f" age={int(now - started)}s" if started is not None else ""
        src = getattr(session, "client_ip", "")
        context = getattr(session, "context", None)
        port = getattr(context, "src_port", b"") if context is not None else b""
        if isinstance(port, bytes):
            port = port.decode("latin-1")
        if port:
            src = f"{src}:{port}"
        elif not src:  # a mode tcp session: its transport's (a PROXY header's) client
            transport = getattr(session, "transport", None)
            peer = transport.get_extra_info("peername") if transport is not None else None
            if isinstance(peer, tuple):
                src = f"{peer[0]}:{peer[1]}"
        lines.append(
            f"{id(session):#x}: proto=tcpv4 src={src} "
            f"fe={frontend.name if frontend else '<NONE>'} "
            f"be={backend.name if backend else '<NONE>'} "
            f"srv={server.name if server else '<none>'}{age}")
    return "".join(line + "\n" for line in lines)


def cmd_show_errors(api: RuntimeApi, args: list[str]) -> str:
    """HAProxy's layout: a header, then per event its date, frontend, source,
    length, the byte where parsing failed and a dump of what was received."""
    from haply.admin.errors import CapturedError, dump
    errors = [e for e in api.engine.errors if isinstance(e, CapturedError)]
    if args and args[0] not in ("request", "response"):
        errors = [e for e in errors if e.frontend == args[0] or str(e.frontend_id) == args[0]]
    if args[-1:] == ["response"]:
        errors = []  # haply keeps rejected requests only
    out = [f"Total events captured on [{_date(time.time())}] : {len(errors)}"]
    for index, error in enumerate(errors):
        position = "" if error.position is None else f", error at position {error.position}"
        out += [" ", f"[{_date(error.when)}] frontend {error.frontend} (#{error.frontend_id}): "
                     f"invalid request",
                f"  backend <NONE> (#-1), server <NONE> (#-1), event #{index}, "
                f"src {error.client_ip}:{error.client_port}",
                f"  len {len(error.data)}{position}",
                f"  reason: {error.reason}", "  "]
        out += dump(error.data)
    return "\n".join(out) + "\n"


def _date(when: float) -> str:
    t = time.localtime(when)
    return time.strftime("%d/%b/%Y:%H:%M:%S", t) + f".{int(when % 1 * 1000):03d}"


def _set_admin(api: RuntimeApi, state, admin: str) -> None:
    set_admin(api.engine, state, admin, api.clock())


def set_admin(engine, state, admin: str, now: float) -> None:
    """Change a server's administrative state through the registry and log it
    as HAProxy does (when the engine logs and announces: Engine.announces)."""
    before = state.admin
    engine.registry.set_admin(state, admin, now)
    if not getattr(engine, "announces", True):
        return
    logging = getattr(engine, "logging", None)
    if logging is not None and before != admin:
        logging.admin_event(state, before, admin, engine.registry.servers(state.backend),
                            engine.config.proxy(state.backend))
    alerts = getattr(engine, "email_alerts", None)
    if alerts is not None and before != admin:
        alerts.admin_event(state, before, admin, engine.registry.servers(state.backend))


def cmd_disable_server(api: RuntimeApi, args: list[str]) -> str:
    _need(args, 1, "Require 'backend/server'.")
    _set_admin(api, api.server(args[0]), MAINT)
    return ""


def cmd_enable_server(api: RuntimeApi, args: list[str]) -> str:
    _need(args, 1, "Require 'backend/server'.")
    _set_admin(api, api.server(args[0]), READY)
    return ""


def cmd_set_server(api: RuntimeApi, args: list[str]) -> str:
    _need(args, 1, "Require 'backend/server'.")
    state = api.server(args[0])
    _need(args, 2, SET_SERVER_USAGE)
    if args[1] == "weight" and len(args) < 3:
        raise CommandError("Require <weight> or <weight%>.")
    if args[1] == "addr" and len(args) < 3:
        raise CommandError("set server <b>/<s> addr requires an address and optionally a port.")
    _need(args, 3, SET_SERVER_USAGE)
    what, value = args[1], args[2]
    if what == "state":
        admin = {"ready": READY, "drain": DRAIN, "maint": MAINT}.get(value)
        if admin is None:
            raise CommandError("'set server <srv> state' expects 'ready', 'drain' and 'maint'.")
        _set_admin(api, state, admin)
        return ""
    if what == "weight":
        return _set_weight(api, state, value)
    if what == "addr":
        return _set_address(api, state, args[2:])
    if what == "health":
        if state.config is not None and state.config.track:
            raise CommandError("cannot change health on a tracking server.")
        health = api.engine.health
        if health is None or health.health_of(state.backend, state.name) is None:
            raise CommandError("health checks are not enabled on this server.")
        if value not in ("up", "down", "stopping"):
            raise CommandError("'set server <srv> health' expects 'up', 'stopping', or 'down'.")
        health.set_health(state.backend, state.name, "down" if value == "stopping" else value)
        return ""
    raise CommandError(SET_SERVER_USAGE)


def _set_address(api: RuntimeApi, state, args: list[str]) -> str:
    """`set server B/S addr IP [port PORT]`, answered in HAProxy's words. New
    connections go to the new address; idle ones to the old are closed. A server
    that started without an address (init-addr none) leaves maintenance."""
    by = " by 'stats socket command'\n"
    address = args[0]
    if not is_ip(address):
        raise CommandError(f"Invalid addr '{address}'{by}")
    old = state.address[0] if state.address else None
    said = [f"IP changed from '{old or '-'}' to '{address}'" if address != old
            else "no need to change the addr"]
    port = state.port
    if len(args) >= 3 and args[1] == "port":
        text = args[2]
        if not text.isdigit() or not 0 < int(text) < 65536:
            said.append(f"problem converting port '{text}' to an int")
        elif int(text) != port:
            said.append(f"port changed from '{port}' to '{text}'")
            port = int(text)
    if address != old or port != state.port:
        was_unresolved = state.unresolved
        change_address(api.engine, state, address, port)
        if was_unresolved:
            _set_admin(api, state, READY)
    return ", ".join(said) + by


def change_address(engine, state, address: str | None, port: int | None) -> None:
    """Give a server a new address (None: none, as DNS resolution takes it
    away): new connections go there, idle ones to the old are closed, health
    checks follow (they read state.address). A server given an address is no
    longer unresolved; its caller says how it leaves maintenance."""
    state.address, state.port = ((address,) if address is not None else None), port
    engine.pool.close_idle(state)
    state.unresolved = address is None


SET_SERVER_USAGE = ("usage: set server <backend>/<server> addr | agent | agent-addr | "
                    "agent-port | agent-send | check-addr | check-port | fqdn | health | ssl | "
                    "state | weight\n")


def _set_weight(api: RuntimeApi, state, text: str) -> str:
    try:
        if text.endswith("%"):
            weight = state.weight * int(text[:-1]) // 100
        else:
            weight = int(text)
    except ValueError:
        raise CommandError("Empty weight string empty or preceded by garbage",
                           framed=False) from None
    if not 0 <= weight <= 256:
        raise CommandError("Absolute weight can only be between 0 and 256 inclusive.")
    api.engine.registry.set_weight(state, weight, api.clock())
    return ""


def cmd_set_weight(api: RuntimeApi, args: list[str]) -> str:
    _need(args, 1, "Require 'backend/server'.")
    state = api.server(args[0])
    _need(args, 2, "Require <weight> or <weight%>.")
    return _set_weight(api, state, args[1])


def cmd_get_weight(api: RuntimeApi, args: list[str]) -> str:
    _need(args, 1, "Require 'backend/server'.")
    state = api.server(args[0])
    return f"{state.effective_weight} (initial {state.weight})\n"


def _health_toggle(enabled: bool):
    return server_commands.check_toggle(
        enabled, "Health check",
        lambda health, state: health.health_of(state.backend, state.name) is not None,
        lambda health, state, on: health.set_health_enabled(state.backend, state.name, on))


def cmd_add_server(api: RuntimeApi, args: list[str]) -> str:
    _need(args, 2, "'server' expects <name> and <addr>[:<port>] as arguments.")
    backend, sep, name = args[0].partition("/")
    if not sep or not name:
        raise CommandError("Require 'backend/server'.")
    engine = api.engine
    runtime = engine.backends.get(backend)
    if runtime is None:
        raise CommandError("No such backend.", framed=False)
    if engine.registry.get(backend, name) is not None:
        raise CommandError("Already exists a server with the same name in backend.")
    from haply.admin.servers import build_server
    try:
        server = build_server(runtime.proxy, name, args[1], args[2:])
    except ValueError as exc:
        raise CommandError(str(exc), framed=False) from None
    from haply.proxy.backend import resolve
    try:
        address = resolve(server.host)
    except OSError as exc:
        raise CommandError(f"could not resolve address '{server.host}': {exc}",
                           framed=False) from None
    # HAProxy adds a dynamic server in maintenance; it is put in service with
    # `set server B/S state ready` (management guide, "add server").
    import dataclasses
    server = dataclasses.replace(server, disabled=True)
    state = engine.registry.add_server(backend, server, api.clock())
    state.address = address
    if engine.health is not None:
        engine.health.watch(backend, name)
    return Message("New server registered.\n")


def cmd_del_server(api: RuntimeApi, args: list[str]) -> str:
    _need(args, 1, "Require 'backend/server'.")
    try:
        state = api.server(args[0])
    except CommandError as exc:
        raise CommandError(str(exc), framed=False) from None
    if state.admin != MAINT:
        raise CommandError("Only servers in maintenance mode can be deleted.", framed=False)
    if state.current_sessions or state.queued:
        raise CommandError("Server still has connections attached to it, cannot remove it.",
                           framed=False)
    engine = api.engine
    if engine.health is not None:
        engine.health.unwatch(state.backend, state.name)
    engine.registry.remove_server(state.backend, state.name)
    return UnframedMessage("Server deleted.\n")


# Counters `clear counters all` zeroes (current values such as sessions in
# progress are states, not counters, and stay).
SERVER_COUNTERS = ("total_sessions", "balanced", "bytes_in", "bytes_out", "connect_errors",
                   "response_errors", "retries", "redispatches", "failed_checks",
                   "client_aborts", "server_aborts", "connects", "reuses")
BACKEND_COUNTERS = ("routed", "total_sessions", "connect_errors", "retried", "redispatched", "unanswered",
                    "no_server", "denied", "bytes_in", "bytes_out")
FRONTEND_COUNTERS = ("bytes_in", "bytes_out", "denied", "request_errors", "http_requests",
                     "intercepted")


def cmd_clear_counters(api: RuntimeApi, args: list[str]) -> str:
    """`clear counters`: maximums back to current values; `clear counters all`
    (admin level) also zeroes every cumulated counter."""
    everything = args[:1] == ["all"]
    if everything and api.current_level != "admin":
        return PERMISSION_DENIED
    engine = api.engine
    for state in engine.registry.all():
        state.max_sessions = state.current_sessions
        state.max_queued = state.queued
        state.queue_time_max = state.connect_time_max = 0
        state.response_time_max = state.total_time_max = 0
        if everything:
            for name in SERVER_COUNTERS:
                setattr(state, name, 0)
            state.http_responses.clear()
    for backend in engine.backends.values():
        backend.max_queued = backend.queued
        backend.max_sessions = backend.current_sessions + backend.waiting
        if everything:
            for name in BACKEND_COUNTERS:
                setattr(backend, name, 0)
            backend.comp.clear()
            backend.local_responses.clear()
    for frontend in engine.frontends.values():
        frontend.gate.max_seen = frontend.gate.current
        if everything:
            for name in FRONTEND_COUNTERS:
                setattr(frontend, name, 0)
            frontend.comp.clear()
            frontend.http_responses.clear()
            frontend.gate.total = 0
    from haply.admin import rates
    sampler = rates.of(engine)
    if sampler is not None:
        sampler.clear_maxima()
    return ""


def _programs(api: RuntimeApi):
    """The program supervisor (haply.programs) attached to the engine."""
    supervisor = getattr(api.engine, "programs", None)
    if supervisor is None:
        raise CommandError("No programs are supervised by this process.")
    return supervisor


def cmd_show_programs(api: RuntimeApi, args: list[str]) -> str:
    return _programs(api).show()


def _program_command(verb: str):
    def run(api: RuntimeApi, args: list[str]) -> Deferred:
        supervisor = _programs(api)
        if len(args) != 1:
            raise CommandError(f"Require 'program <name>{'' if verb == 'rolling-restart' else '[:<instance>]'}'.")
        return Deferred(lambda: supervisor.command([verb, "program", args[0]]))
    return run


def cmd_show_peers(api: RuntimeApi, args: list[str]) -> str:
    """HAProxy's `show peers [<section>]`: each peers section that shares
    tables, its peers, their sessions and the tables they share."""
    services = getattr(api.engine, "peer_services", [])
    if args:
        services = [s for s in services if s.section.name == args[0]]
        if not services:
            raise CommandError(f"No such peers section '{args[0]}'.")
    now = api.clock()
    return "\n".join(service.describe(now, time.time()) for service in services)


def cmd_show_cache(api: RuntimeApi, args: list[str]) -> str:
    """HAProxy's `show cache`: each cache section and the objects it holds
    (this worker's; arguments are ignored, as HAProxy ignores them)."""
    return cache.show(list(getattr(api.engine, "caches", {}).values()), time.monotonic())


def cmd_show_resolvers(api: RuntimeApi, args: list[str]) -> str:
    """HAProxy's `show resolvers [<id>]`: each resolvers section's name
    servers and what they answered (this worker's)."""
    from haply.resolvers.show import show

    sections = list(api.engine.config.resolvers)
    if args:
        sections = [s for s in sections if s.name == args[0]]
        if not sections:
            raise CommandError("Can't find that resolvers section")
    counters = {r.section.name: r.counters for r in getattr(api.engine, "resolvers", [])}
    return show(sections, counters)


def _need(args: list[str], count: int, message: str) -> None:
    if len(args) < count:
        raise CommandError(message)


# words, level, usage, help, function
_COMMANDS = [
    ("help", "user", "help [<command>]", "list matching or all commands", cmd_help),
    ("show info", "user", "show info [json]", "report information about the running process", cmd_show_info),
    ("show stat", "user", "show stat [desc|json|no-maint|typed|up]*", "report counters for each proxy and server", cmd_show_stat),
    ("show servers state", "user", "show servers state [<backend>]", "dump volatile server information (all or for a single backend)", cmd_show_servers_state),
    ("show backend", "user", "show backend", "list backends in the current running config", cmd_show_backend),
    ("show sess", "operator", "show sess", "report the list of current sessions", cmd_show_sess),
    ("show table", "user", "show table [<name> [data.<type> <op> <value>|key <key>]]",
     "report table usage stats or dump this table's contents", cmd_show_table),
    ("clear table", "operator", "clear table <table> [key <key>|data.<type> <op> <value>]",
     "remove entries from a table: all, one key, or those whose counter compares so", cmd_clear_table),
    ("set table", "admin", "set table <table> key <key> data.<type> <value> ...",
     "set counters of a table's entry (made if needed)", cmd_set_table),
    ("show cache", "user", "show cache", "show cache status", cmd_show_cache),
    ("show peers", "user", "show peers [<section>]", "dump some information about all the peers", cmd_show_peers),
    ("show resolvers", "user", "show resolvers [id]",
     "dumps counters from all resolvers section and associated name servers", cmd_show_resolvers),
    ("show errors", "operator", "show errors", "report last request and/or response errors for each proxy", cmd_show_errors),
    ("get weight", "user", "get weight <bk>/<srv>", "report a server's current weight", cmd_get_weight),
    ("clear counters", "operator", "clear counters [all]", "clear max statistics counters", cmd_clear_counters),
    ("disable server", "admin", "disable server <bk>/<srv>", "disable a server for maintenance (use 'set server' instead)", cmd_disable_server),
    ("enable server", "admin", "enable server <bk>/<srv>", "enable a disabled server (use 'set server' instead)", cmd_enable_server),
    ("disable health", "admin", "disable health <bk>/<srv>", "disable health checks", _health_toggle(False)),
    ("enable health", "admin", "enable health <bk>/<srv>", "enable health checks", _health_toggle(True)),
    ("set server", "admin", "set server <bk>/<srv> [opts]", "change a server's state, weight or health", cmd_set_server),
    ("set weight", "admin", "set weight <bk>/<srv> (DEPRECATED)", "change a server's weight (use 'set server' instead)", cmd_set_weight),
    ("add server", "admin", "add server <bk>/<srv> <addr> [opts]", "create a new server (honours default-server)", cmd_add_server),
    ("del server", "admin", "del server <bk>/<srv>", "remove a server (in maintenance, without sessions)", cmd_del_server),
    ("show programs", "user", "show programs", "supervised programs: state, pid, uptime, restarts", cmd_show_programs),
    ("start program", "admin", "start program <name>[:<inst>]", "start a program's instances", _program_command("start")),
    ("stop program", "admin", "stop program <name>[:<inst>]", "stop a program's instances", _program_command("stop")),
    ("restart program", "admin", "restart program <name>[:<inst>]", "restart a program's instances", _program_command("restart")),
    ("rolling-restart program", "admin", "rolling-restart program <name>", "drain, restart and re-enable each instance in turn", _program_command("rolling-restart")),
]


# Command groups kept in modules of their own.
for _group in GROUPS:
    _COMMANDS.extend(_group.COMMANDS)
