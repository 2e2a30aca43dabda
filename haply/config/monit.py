"""monitrc -> model: `check process` entries become supervised programs.

monit's control file (monit(1), "THE MONIT CONTROL FILE") is free-form: a
statement starts with `set`, `check` or `include`; words such as `with`, `and`,
`as`, `=` are noise that may be left out; strings are quoted with `"` or `'`;
`#` starts a comment. The part haply takes over is process supervision:

    check process nova-api-8781 with pidfile /var/run/nova/nova_api_8781.pid
        group nova-api
        start program = "/usr/local/bin/nova-lb-api start 8781 8788" as uid nova and gid nova
        stop program  = "/usr/local/bin/nova-lb-api stop 8781 8788" with timeout 20 seconds
        if failed port 8781 then restart
        if 5 restarts within 5 cycles then unmonitor

becomes a Program with `option daemon` (a monit start program forks and
leaves the process id in the pidfile, which is the process watched), the stop
program as stop-command, the group as service-group, uid/gid as user/group,
the port of `if failed port N then restart` as the program's port, and
"N restarts within M cycles" as crash-limit N (M x the `set daemon` cycle).

Other `set` statements (mail, httpd, logfile ...) and `check system` change
nothing haply runs and are accepted with a warning. Other check types and
process checks without a pidfile are errors: haply would not do what monit did.
"""

from __future__ import annotations

import glob
import os
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass

from haply.config.diagnostics import Diagnostics, Location
from haply.config.model import Config, Program
from haply.config.programs import check_account

# The names haproxy.cfg allows for a program (haply convert writes them there).
PROGRAM_NAME = re.compile(r"[A-Za-z0-9_.:-]+")
# monit(1) "set daemon n": the cycle length; monit's own example uses 30 s, and
# "N cycles" in a restart limit is only meaningful with one.
DEFAULT_CYCLE = 30.0
MAX_INCLUDE_DEPTH = 8
NOISE = frozenset({"with", "and", "as", "=", "is", "on", "program", "using", "use", "the", "has", "only"})
TIME_UNITS = {"second": 1.0, "seconds": 1.0, "minute": 60.0, "minutes": 60.0, "hour": 3600.0, "hours": 3600.0}
STATEMENTS = frozenset({"set", "check", "include"})
# Words that start a statement inside a `check` entry.
CHECK_WORDS = frozenset({"start", "stop", "restart", "group", "if", "depends", "mode", "every",
                         "alert", "noalert", "onreboot", "pidfile", "matching", "with", "depend"})


class _Error(Exception):
    def __init__(self, location: Location, message: str):
        super().__init__(message)
        self.location = location


@dataclass(frozen=True, slots=True)
class Token:
    text: str
    location: Location
    quoted: bool = False


def tokenize(text: str, filename: str) -> list[Token]:
    """Words and quoted strings with their line; comments dropped."""
    tokens: list[Token] = []
    for number, raw in enumerate(text.split("\n"), start=1):
        location = Location(filename, number)
        i, n = 0, len(raw)
        while i < n:
            char = raw[i]
            if char.isspace():
                i += 1
            elif char == "#":
                break
            elif char in "\"'":
                end = raw.find(char, i + 1)
                if end < 0:
                    raise _Error(location, f"unterminated string (missing {char})")
                tokens.append(Token(raw[i + 1:end], location, True))
                i = end + 1
            else:
                start = i
                while i < n and not raw[i].isspace() and raw[i] != "#":
                    i += 1
                word = raw[start:i]
                # `program=` and `="..."` are the same noise as a lone "="; `a,b` is a list
                for part in word.replace("=", " = ").replace(",", " , ").split():
                    tokens.append(Token(part, location))
    return tokens


@dataclass
class _Check:
    name: str
    location: Location
    pidfile: str | None = None
    start: tuple[str, ...] = ()
    stop: tuple[str, ...] = ()
    user: str | None = None
    group: str | None = None
    stop_timeout: float | None = None
    service_group: str | None = None
    port: int | None = None
    crash: tuple[int, int] | None = None  # restarts, cycles


class _Parser:
    def __init__(self, diagnostics: Diagnostics):
        self.diagnostics = diagnostics
        self.checks: list[_Check] = []
        self.cycle = DEFAULT_CYCLE
        self.tokens: list[Token] = []
        self.i = 0

    # -- token stream

    def peek(self) -> Token | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def next(self, what: str) -> Token:
        token = self.peek()
        if token is None:
            last = self.tokens[-1].location if self.tokens else Location("<monitrc>", 0)
            raise _Error(last, f"the file ends where {what} was expected")
        self.i += 1
        return token

    def skip_noise(self) -> None:
        while (token := self.peek()) is not None and not token.quoted and token.text.lower() in NOISE:
            self.i += 1

    def at_statement(self) -> bool:
        token = self.peek()
        return token is None or (not token.quoted and token.text.lower() in STATEMENTS)

    # -- statements

    def run(self, tokens: list[Token]) -> None:
        self.tokens, self.i = tokens, 0
        while self.peek() is not None:
            token, first = self.peek(), self.i
            word = token.text.lower()
            try:
                if word == "set":
                    self.set_statement()
                elif word == "check":
                    self.check_statement()
                elif word == "include":
                    self.i += 1  # expanded before parsing; a leftover is a bad pattern
                    self.next("a file pattern after include")
                else:
                    raise _Error(token.location, f"unexpected '{token.text}': a monit statement starts "
                                 "with set, check or include")
            except _Error as error:
                self._report(error)
                # to the next statement; a check found wrong at its end is already there
                self.i = max(self.i, first + 1)
                while not self.at_statement():
                    self.i += 1

    def _report(self, error: _Error) -> None:
        self.diagnostics.error(error.location, str(error))

    def set_statement(self) -> None:
        start = self.next("set")
        what = self.next("a setting after set")
        if what.text.lower() == "daemon":
            value = self.next("the cycle length in seconds after set daemon")
            if not value.text.isdigit() or int(value.text) < 1:
                raise _Error(value.location, f"set daemon expects a number of seconds, got '{value.text}'")
            self.cycle = float(value.text)
            while not self.at_statement():  # `with start delay N` changes no supervision
                self.i += 1
            return
        self.diagnostics.warning(start.location, f"'set {what.text}' is monit's own setting and is ignored by "
                                 "haply (use haply's logging and `haply ctl`)")
        while not self.at_statement():
            self.i += 1

    def check_statement(self) -> None:
        start = self.next("check")
        kind = self.next("a check type after check").text.lower()
        name = self.next(f"a name after check {kind}")
        if kind == "system":
            self.diagnostics.warning(start.location, "'check system' watches the host's resources; haply "
                                     "does not, and ignores it")
            while not self.at_statement():
                self.i += 1
            return
        if kind != "process":
            raise _Error(start.location, f"'check {kind}' is not supported by haply; only 'check process' "
                         "entries (with a pidfile) are supervised")
        if not PROGRAM_NAME.fullmatch(name.text):
            raise _Error(name.location, f"check process name '{name.text}' cannot name a program: use letters, "
                                        "digits, '-', '_', '.' and ':'")
        check = _Check(name.text, start.location)
        while not self.at_statement():
            self.check_item(check)
        self.finish(check)

    def check_item(self, check: _Check) -> None:
        self.skip_noise()
        if self.at_statement():
            return
        token = self.next("a check statement")
        word = token.text.lower()
        if word == "pidfile":
            check.pidfile = self.next("a file after pidfile").text
        elif word == "matching":
            raise _Error(token.location, "'matching' is not supported by haply: give the process a "
                         "'with pidfile' so that haply knows which process to watch")
        elif word in ("start", "stop"):
            self.skip_noise()
            command = self.next(f"the {word} program's command")
            try:
                argv = tuple(shlex.split(command.text))
            except ValueError as exc:
                raise _Error(command.location, f"cannot split the {word} program '{command.text}': {exc}") from None
            if not argv:
                raise _Error(command.location, f"the {word} program is empty")
            if word == "start":
                check.start = argv
            else:
                check.stop = argv
            self.program_options(check, word)
        elif word == "restart":
            self.skip_noise()
            self.next("the restart program's command")
            self.diagnostics.warning(token.location, "'restart program' is not used: haply restarts with the "
                                     "stop program and then the start program")
            self.program_options(check, word)
        elif word == "group":
            check.service_group = self.next("a name after group").text
        elif word == "if":
            self.if_statement(check, token)
        elif word in ("depends", "depend"):
            self.skip_noise()
            self.next("a service name after depends on")
            while (t := self.peek()) is not None and t.text == ",":
                self.i += 1
                self.next("a service name")
            self.diagnostics.warning(token.location, "'depends on' is ignored: haply starts every program at once")
        elif word == "mode":
            self.next("active, passive or manual after mode")
        elif word in ("alert", "noalert"):
            self.next("an address")
            while (t := self.peek()) is not None and not self.at_statement() and t.text.lower() not in CHECK_WORDS:
                self.i += 1
        elif word in ("every", "onreboot"):
            self.next(f"a value after {word}")
        else:
            raise _Error(token.location, f"'{token.text}' is not a statement haply knows in a check process "
                         "entry (expected pidfile, start, stop, group, if, depends, mode)")

    def program_options(self, check: _Check, word: str) -> None:
        """`as uid U and gid G with timeout N seconds` after a program."""
        while True:
            self.skip_noise()
            token = self.peek()
            if token is None or token.quoted:
                return
            option = token.text.lower()
            if option in ("uid", "gid"):
                self.i += 1
                value = self.next(f"a {option}").text
                if word == "start":
                    try:
                        check_account("user" if option == "uid" else "group", value)
                    except ValueError as exc:
                        raise _Error(token.location, str(exc)) from None
                    if option == "uid":
                        check.user = value
                    else:
                        check.group = value
            elif option == "timeout":
                self.i += 1
                value = self.next("a number after timeout")
                if not value.text.isdigit():
                    raise _Error(value.location, f"timeout expects a number of seconds, got '{value.text}'")
                unit = self.peek()
                scale = 1.0
                if unit is not None and unit.text.lower() in TIME_UNITS:
                    scale = TIME_UNITS[unit.text.lower()]
                    self.i += 1
                if word == "stop":
                    check.stop_timeout = int(value.text) * scale
            else:
                return

    def if_statement(self, check: _Check, start: Token) -> None:
        words: list[Token] = []
        while True:
            token = self.next("'then ACTION' to end the if statement")
            if token.text.lower() == "then":
                break
            words.append(token)
        action = self.next("an action after then").text.lower()
        texts = [w.text.lower() for w in words]
        if texts and texts[0] == "failed" and "port" in texts and action == "restart":
            port = words[texts.index("port") + 1].text if texts.index("port") + 1 < len(words) else ""
            if not port.isdigit() or not 1 <= int(port) <= 65535:
                raise _Error(start.location, f"'if failed port' expects a port, got '{port}'")
            check.port = int(port)
        elif "exist" in texts and "not" in texts and action in ("restart", "start"):
            pass  # what haply does anyway: a process that is gone is started again
        elif len(texts) >= 4 and texts[0].isdigit() and texts[1] == "restarts" and texts[2] == "within" \
                and texts[3].isdigit() and action in ("unmonitor", "timeout", "stop"):
            check.crash = (int(texts[0]), int(texts[3]))
        else:
            self.diagnostics.warning(start.location, f"'if {' '.join(w.text for w in words)} then {action}' "
                                     "is ignored by haply (it restarts a process that exits and, through "
                                     "program-servers, one its health checks mark down)")
        token = self.peek()
        if token is not None and token.text.lower() == "else":
            self.i += 1
            self.skip_noise()
            self.next("an action after else")

    def finish(self, check: _Check) -> None:
        if check.pidfile is None:
            raise _Error(check.location, f"check process '{check.name}' has no 'with pidfile': haply needs "
                         "it to know which process the start program left running")
        if not check.start:
            raise _Error(check.location, f"check process '{check.name}' has no 'start program'")
        self.checks.append(check)

    def programs(self) -> tuple[Program, ...]:
        result = []
        seen: dict[str, Location] = {}
        for check in self.checks:
            if check.name in seen:
                self.diagnostics.error(check.location, f"check process '{check.name}' is already defined at "
                                       f"{seen[check.name]}")
                continue
            seen[check.name] = check.location
            values: dict = {}
            if check.stop_timeout is not None:
                values["stop_timeout"] = check.stop_timeout
            if check.crash is not None:
                values["crash_limit"] = check.crash[0]
                values["crash_window"] = check.crash[1] * self.cycle
            result.append(Program(
                name=check.name, command=check.start, user=check.user, group=check.group,
                pidfile=check.pidfile, daemon=True, stop_command=check.stop, port=check.port,
                service_group=check.service_group, location=check.location, **values,
            ))
        return tuple(result)


def _expand_includes(text: str, filename: str, diagnostics: Diagnostics, depth: int = 0) -> list[Token]:
    """Tokens of a file with `include PATTERN` replaced by the files' tokens
    (relative patterns from the including file's directory, sorted)."""
    tokens = tokenize(text, filename)
    out: list[Token] = []
    i = 0
    while i < len(tokens):
        token = tokens[i]
        if token.text.lower() == "include" and not token.quoted and i + 1 < len(tokens):
            pattern = tokens[i + 1].text
            if not os.path.isabs(pattern):
                pattern = os.path.join(os.path.dirname(filename), pattern)
            if depth >= MAX_INCLUDE_DEPTH:
                diagnostics.error(token.location, f"includes nested deeper than {MAX_INCLUDE_DEPTH} levels")
            for path in sorted(glob.glob(pattern)):
                try:
                    with open(path, encoding="utf-8", errors="surrogateescape") as handle:
                        included = handle.read()
                except OSError as exc:
                    diagnostics.error(token.location, f"cannot read included file {path}: {exc.strerror}")
                    continue
                if depth < MAX_INCLUDE_DEPTH:
                    out.extend(_expand_includes(included, path, diagnostics, depth + 1))
            i += 2
            continue
        out.append(token)
        i += 1
    return out


def parse(text: str, filename: str, environ: Mapping[str, str] | None = None,
          diagnostics: Diagnostics | None = None) -> Config:
    """Parse one monitrc into a partial Config holding its programs."""
    diagnostics = diagnostics if diagnostics is not None else Diagnostics()
    parser = _Parser(diagnostics)
    try:
        tokens = _expand_includes(text.removeprefix("\ufeff"), filename, diagnostics)
    except _Error as error:
        parser._report(error)
        return Config(sources=(filename,))
    parser.run(tokens)
    return Config(programs=parser.programs(), sources=(filename,))


__all__ = ["DEFAULT_CYCLE", "Token", "parse", "tokenize"]
