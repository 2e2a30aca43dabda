"""haproxy.cfg -> model: sections, keywords, defaults inheritance, validation.

The parser walks the lines of `lexer.split_lines`, keeps one mutable state per
section and freezes it into `model.Proxy` / `model.Global` at the end. Every
keyword goes through the table in `keywords.py`: unknown, unsupported, legacy
and misplaced keywords are reported there, with file:line, before a handler
sees the line. A handler raises `ParseError` for a bad argument; the line is
reported and parsing goes on, so one run lists every mistake.

Defaults follow the manual (section 4): a proxy starts from a copy of the last
`defaults` section before it, or of the named one given with `from NAME`; a
defaults section can itself start `from` another. The last defaults section
carries over to the following files of the same load, as it does in HAProxy
(the conf.d pattern relies on it).

Cross-proxy checks (backends referenced, modes, duplicate names) need every
file, so they live in `validate()`, which `haply.config.load` calls last.
"""

from __future__ import annotations

import copy
import ipaddress
import os
import re
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace

from haply.config import acl as acls
from haply.config.answers import MAX_BYTES, AnswerError, parse_answer, read_limited
from haply.config import caches, cpu_map, http_errors, mailers as mailer_sections, peers as peer_sections, programs, userlists
from haply.config import resolvers as resolver_sections
from haply.config.diagnostics import NOWHERE, Diagnostics, Location
from haply.config.keywords import (
    FAMILIES, KEYWORDS, LEGACY, SECTION_LETTERS, SECTIONS, SUPPORTED, UNSUPPORTED, UNSUPPORTED_SECTIONS, lookup,
    suggest,
)
from haply.config.lexer import Line, Word, apply_conditions, split_lines
from haply.config.model import (
    AuthRule, BackendSwitch, Bind, CacheRule, Capture, Compression, Condition, Config, CounterRule, TcpRequestRule, CookiePersistence, DenyRule, ForwardFor, OriginalTo, ReturnRule, StatusRule, StickRule, VariableRule, CaptureRule, LogLevelRule, StickTableSpec, UseServerRule, Global, HeaderRule, HttpCheck, LogTarget, Proxy,
    ProxyStats, Redirect, Server, SocketOptions, SourceAddress, StatsRule, StatsSocket, TcpCheckStep, Timeouts,
    STICK_COUNTED, STICK_DATA_TYPES, STICKY_SLOTS, used_acls,
)
from haply.config.units import UnitError, parse_int, parse_port, parse_size, parse_time
from haply.http import framing
from haply.http.responses import reason_phrase, render_errorfile
from haply.http.rewrite import LINE_ACTIONS, REGEX_LINE_ACTIONS, compile_regex

# Keywords HAProxy refuses in a proxy without their capability (the others of
# the other side it ignores with a warning): servers in a frontend; the
# frontend stages of tcp-request in a backend are refused by its handler.
CAPABILITY_ERRORS = frozenset({"server", "default-server", "declare"})

# Manual 3.1 "log": the 24 syslog facilities and 8 levels; len accepts 80..65535.
FACILITIES = frozenset(
    "kern user mail daemon auth syslog lpr news uucp cron auth2 ftp ntp audit alert cron2 "
    "local0 local1 local2 local3 local4 local5 local6 local7".split()
)
LEVELS = ("emerg", "alert", "crit", "err", "warning", "notice", "info", "debug")
LOG_FORMATS = frozenset({"local", "rfc3164", "rfc5424", "priority", "short", "timed", "iso", "raw"})
LOG_LENGTH_RANGE = (80, 65535)
# Manual 4.2 "errorfile": the status codes HAProxy can produce itself.
ERRORFILE_CODES = frozenset({200, 400, 401, 403, 404, 405, 407, 408, 410, 413, 425, 429, 500, 501, 502, 503, 504})
# Manual 4.2 "retry-on".
RETRY_EVENTS = frozenset({
    "none", "conn-failure", "empty-response", "junk-response", "response-timeout", "0rtt-rejected",
    "401", "403", "404", "408", "425", "500", "501", "502", "503", "504", "all-retryable-errors",
})
ALL_RETRYABLE = frozenset({
    "conn-failure", "empty-response", "junk-response", "response-timeout", "0rtt-rejected",
    "500", "502", "503", "504",
})
REDIRECT_CODES = frozenset({301, 302, 303, 307, 308})
WEIGHT_RANGE = (0, 256)  # manual 5.2 "weight"
STATS_LEVELS = frozenset({"user", "operator", "admin"})
PROXY_NAME = re.compile(r"[A-Za-z0-9_.:-]+")  # manual section 4
HOSTNAME = re.compile(r"[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?")

# Bind options (manual 5.1): name -> number of arguments. All are kept raw in
# Bind.options for the layers that implement them (TLS, listeners).
BIND_OPTIONS: dict[str, int] = {
    "ssl": 0, "crt": 1, "crt-list": 1, "ca-file": 1, "crl-file": 1, "verify": 1, "alpn": 1, "npn": 1,
    "ciphers": 1, "ciphersuites": 1, "curves": 1, "ecdhe": 1, "ssl-min-ver": 1, "ssl-max-ver": 1,
    "no-sslv3": 0, "no-tlsv10": 0, "no-tlsv11": 0, "no-tlsv12": 0, "no-tlsv13": 0,
    "force-sslv3": 0, "force-tlsv10": 0, "force-tlsv11": 0, "force-tlsv12": 0, "force-tlsv13": 0,
    "no-tls-tickets": 0, "strict-sni": 0, "prefer-client-ciphers": 0, "no-ca-names": 0,
    "allow-0rtt": 0, "ca-ignore-err": 1, "crt-ignore-err": 1, "ca-verify-file": 1,
    "maxconn": 1, "backlog": 1, "name": 1, "id": 1, "v4v6": 0, "v6only": 0, "transparent": 0,
    "interface": 1, "defer-accept": 0, "tfo": 0, "mss": 1, "process": 1, "thread": 1,
    "mode": 1, "user": 1, "group": 1, "uid": 1, "gid": 1, "level": 1, "severity-output": 1,
    "expose-fd": 1, "nice": 1, "tcp-ut": 1, "accept-proxy": 0,
}
UNSUPPORTED_BIND_OPTIONS = frozenset({
    "accept-netscaler-cip", "generate-certificates", "ca-sign-file", "ca-sign-pass",
    "namespace", "proto", "quic-cc-algo", "quic-force-retry", "shards",
})

# Server options (manual 5.2) kept raw in Server.extra for the TLS layer.
SERVER_TLS_OPTIONS: dict[str, int] = {
    "ssl": 0, "no-ssl": 0, "verify": 1, "verifyhost": 1, "no-verifyhost": 0, "ca-file": 1,
    "crl-file": 1, "crt": 1, "sni": 1, "alpn": 1, "npn": 1, "ciphers": 1, "ciphersuites": 1,
    "ssl-min-ver": 1, "ssl-max-ver": 1, "no-sslv3": 0, "no-tlsv10": 0, "no-tlsv11": 0,
    "no-tlsv12": 0, "no-tlsv13": 0, "force-sslv3": 0, "force-tlsv10": 0, "force-tlsv11": 0,
    "force-tlsv12": 0, "force-tlsv13": 0, "no-tls-tickets": 0, "tls-tickets": 0,
    "check-ssl": 0, "no-check-ssl": 0, "check-sni": 1, "check-alpn": 1, "ssl-reuse": 0,
    "no-ssl-reuse": 0, "allow-0rtt": 0,
}
UNSUPPORTED_SERVER_OPTIONS = frozenset({
    "send-proxy-v2-ssl", "send-proxy-v2-ssl-cn", "proxy-v2-options",
    "usesrc", "namespace", "socks4", "check-via-socks4", "redir", "max-reuse",
    "pool-low-conn", "pool-max-conn", "pool-purge-delay", "tfo", "tcp-ut", "proto", "check-proto",
    "log-proto", "non-stick", "stick", "ws", "shard", "no-send-proxy", "no-send-proxy-v2",
    "no-send-proxy-v2-ssl", "no-send-proxy-v2-ssl-cn", "no-tfo",
})
ON_ERROR = frozenset({"fastinter", "fail-check", "sudden-death", "mark-down"})


class ParseError(ValueError):
    """A line with a bad argument; the parser reports it at the line."""


# handler(parser, section state, arguments after the keyword, line, `no` prefix)
Handler = Callable[..., None]


# ------------------------------------------------------------------ section states


@dataclass
class ProxyState:
    """Everything a defaults section can preset and a proxy can set, mutable
    while parsing; `freeze()` turns it into a `model.Proxy`."""

    name: str = ""
    kind: str = "defaults"
    location: Location = NOWHERE
    mode: str = "tcp"
    maxconn: int | None = None
    rate_limit_sessions: int = 0
    fullconn: int = 0
    binds: list[Bind] = field(default_factory=list)
    acls: acls.AclTable = field(default_factory=acls.AclTable)
    backend_switches: list[BackendSwitch] = field(default_factory=list)
    default_backend: str | None = None
    default_backend_location: Location = NOWHERE
    http_request_rules: list[HeaderRule] = field(default_factory=list)
    http_response_rules: list[HeaderRule] = field(default_factory=list)
    redirects: list[Redirect] = field(default_factory=list)
    servers: list[Server] = field(default_factory=list)
    server_lines: dict[str, Location] = field(default_factory=dict)
    default_server: dict = field(default_factory=dict)
    default_server_extra: list[tuple[str, str]] = field(default_factory=list)
    balance: str = "roundrobin"
    balance_arg: str | None = None
    balance_options: tuple[str, ...] = ()
    hash_type: str = "map-based"
    hash_function: str | None = None
    hash_modifier: str | None = None
    retries: int = 3
    source: SourceAddress | None = None
    external_check_command: str | None = None
    external_check_path: str = ""
    redispatch_every: int = -1
    retry_on: frozenset[str] | None = None  # None: haply's default policy
    http_check: HttpCheck | None = None
    check_kind: str = "tcp"
    tcp_check_steps: list[TcpCheckStep] = field(default_factory=list)
    own_tcp_check: bool = False
    own_http_check_send: bool = False
    mysql_check_user: str | None = None
    mysql_check_post41: bool = False
    pgsql_check_user: str | None = None
    smtp_check_hello: tuple[str, ...] = ()
    timeouts: dict[str, float] = field(default_factory=dict)
    http_connection_mode: str = "keep-alive"
    forward_for: ForwardFor | None = None
    original_to: OriginalTo | None = None
    logs: list[LogTarget] = field(default_factory=list)
    log_format: str | None = None
    log_format_location: Location = NOWHERE
    unique_id_format: str | None = None
    unique_id_format_location: Location = NOWHERE
    unique_id_header: str | None = None
    errorfiles: dict[int, bytes] = field(default_factory=dict)
    options: set[str] = field(default_factory=set)
    extra: list[tuple[str, tuple[str, ...]]] = field(default_factory=list)
    stats: dict | None = None
    monitor_uri: str | None = None
    monitor_fail: list[Condition] = field(default_factory=list)
    description: str | None = None
    id: int | None = None
    disabled: bool = False
    cookie: CookiePersistence | None = None
    stick_table: StickTableSpec | None = None
    stick_rules: list[StickRule] = field(default_factory=list)
    use_server_rules: list[UseServerRule] = field(default_factory=list)
    captures: list[Capture] = field(default_factory=list)
    http_reuse: str | None = None
    restrict_header_names: str = "preserve"
    tcp_request_rules: list[TcpRequestRule] = field(default_factory=list)
    inspect_delay: float | None = None
    compression: Compression | None = None
    # email-alert SETTING -> (value, line); made an EmailAlert when complete
    email_alert: dict[str, tuple[str, Location]] = field(default_factory=dict)
    cache_filters: list[CacheRule] = field(default_factory=list)
    smart_accept: bool | None = None  # option tcp-smart-accept; None: on in mode http
    # clitcpka-cnt, srvtcpka-idle, ...: the socket's value (a count, or seconds)
    tcp_keepalive: dict[str, int] = field(default_factory=dict)

    def inherit(self, name: str, kind: str, location: Location) -> ProxyState:
        """A new section starting from this defaults section's settings."""
        state = copy.deepcopy(self)
        state.name, state.kind, state.location = name, kind, location
        state.own_tcp_check = state.own_http_check_send = False
        if state.compression is not None:  # the lists carry over; the line is the defaults'
            state.compression = replace(state.compression, location=NOWHERE)
        return state

    def freeze(self, diagnostics: Diagnostics) -> Proxy:
        options = set(self.options)
        if self.disabled:
            options.add("disabled")
        default_backend = self.name if self.kind == "listen" else self.default_backend
        stats = None
        if self.stats is not None:
            stats = ProxyStats(**self.stats)
        return Proxy(
            name=self.name, kind=self.kind, mode=self.mode, binds=tuple(self.binds),
            maxconn=self.maxconn, rate_limit_sessions=self.rate_limit_sessions, fullconn=self.fullconn,
            acls=self.acls.all(), backend_switches=tuple(self.backend_switches),
            default_backend=default_backend, http_request_rules=tuple(self.http_request_rules),
            http_response_rules=tuple(self.http_response_rules), servers=tuple(self.servers),
            balance=self.balance, balance_arg=self.balance_arg, hash_type=self.hash_type,
            retries=self.retries, source=self.source, retry_on=self.retry_on,
            external_check_command=self.external_check_command,
            external_check_path=self.external_check_path, redispatch="redispatch" in options and self.redispatch_every != 0,
            redispatch_every=self.redispatch_every,
            allbackups="allbackups" in options, http_check=self.http_check, check_kind=self.check_kind,
            timeouts=Timeouts(**self.timeouts), http_connection_mode=self.http_connection_mode,
            forward_for=self.forward_for, original_to=self.original_to,
            buffer_request="http-buffer-request" in options,
            prefer_last_server="prefer-last-server" in options,
            abort_on_close="abortonclose" in options, tcpka="tcpka" in options,
            client_socket=self._socket_options("cli", options, "clitcpka",
                                               self.smart_accept if self.smart_accept is not None
                                               else self.mode == "http"),
            server_socket=self._socket_options("srv", options, "srvtcpka",
                                               "tcp-smart-connect" in options),
            logs=tuple(self.logs),
            log_format=self.log_format, dontlognull="dontlognull" in options,
            unique_id_format=self.unique_id_format, unique_id_header=self.unique_id_header,
            errorfiles=tuple(sorted(self.errorfiles.items())), options=frozenset(options),
            extra=tuple(self.extra), location=self.location, balance_options=self.balance_options,
            hash_function=self.hash_function, hash_modifier=self.hash_modifier,
            redirects=tuple(self.redirects), tcp_check_steps=tuple(self.tcp_check_steps),
            mysql_check_user=self.mysql_check_user, mysql_check_post41=self.mysql_check_post41,
            pgsql_check_user=self.pgsql_check_user, smtp_check_hello=self.smtp_check_hello,
            stats=stats, monitor_uri=self.monitor_uri, monitor_fail=tuple(self.monitor_fail),
            description=self.description, id=self.id,
            cookie=self.cookie, stick_table=self.stick_table, stick_rules=tuple(self.stick_rules),
            use_server_rules=tuple(self.use_server_rules),
            captures=tuple(self.captures), http_reuse=self.http_reuse,
            restrict_header_names=self.restrict_header_names,
            tcp_request_rules=tuple(self.tcp_request_rules), inspect_delay=self.inspect_delay,
            compression=self.compression, cache_filters=tuple(self.cache_filters),
            email_alert=mailer_sections.freeze(self.email_alert, self.kind, self.name, self.location, diagnostics),
            default_backend_location=(self.location if self.kind == "listen" else self.default_backend_location),
        )

    def _socket_options(self, side: str, options: set[str], keepalive_option: str,
                        delayed_ack: bool) -> SocketOptions:
        """One side's socket options: `option tcpka` asks keep-alive of both
        (a frontend only has the client side, a backend the server side)."""
        keepalive = "tcpka" in options or keepalive_option in options
        settings = self.tcp_keepalive
        return SocketOptions(
            keepalive=keepalive,
            keepalive_count=settings.get(f"{side}tcpka-cnt") if keepalive else None,
            keepalive_idle=settings.get(f"{side}tcpka-idle") if keepalive else None,
            keepalive_interval=settings.get(f"{side}tcpka-intvl") if keepalive else None,
            delayed_ack=delayed_ack)


@dataclass
class GlobalState:
    values: dict = field(default_factory=dict)
    logs: list[LogTarget] = field(default_factory=list)
    sockets: list[StatsSocket] = field(default_factory=list)
    extra: list[tuple[str, tuple[str, ...]]] = field(default_factory=list)

    def freeze(self) -> Global:
        return Global(**self.values, logs=tuple(self.logs), stats_sockets=tuple(self.sockets),
                      extra=tuple(self.extra))


@dataclass
class Carry:
    """What one load keeps across the haproxy files it reads."""

    last_defaults: ProxyState = field(default_factory=ProxyState)
    named_defaults: dict[str, ProxyState] = field(default_factory=dict)
    global_: GlobalState = field(default_factory=GlobalState)
    programs: dict = field(default_factory=dict)  # name -> model.Program, for program-servers
    userlists: dict = field(default_factory=dict)  # name -> model.Userlist
    peers: dict = field(default_factory=dict)  # name -> model.PeersSection
    http_errors: dict = field(default_factory=dict)  # name -> {status: response bytes}
    # http-errors sections read ahead of the rest (declare_http_errors), by
    # name: where each is, so that reading it in its turn is no second declaration
    http_errors_ahead: dict = field(default_factory=dict)
    mailers: dict = field(default_factory=dict)  # name -> model.MailersSection
    caches: dict = field(default_factory=dict)  # name -> model.CacheSection
    resolvers: dict = field(default_factory=dict)  # name -> model.ResolversSection


# ------------------------------------------------------------------------ parser


def parse(
    text: str,
    filename: str,
    environ: Mapping[str, str],
    diagnostics: Diagnostics,
    carry: dict | None = None,
) -> Config:
    """Parse one haproxy.cfg file into a partial Config.

    carry is a dict kept by the loader across the files of one load (see
    `haply.config.load`); the defaults in force and the merged global section
    live in it.
    """
    if carry is None:
        carry = {}
    state: Carry = carry.setdefault("haproxy", Carry())
    global _address_environ
    _address_environ = environ
    parser = _Parser(filename, environ, diagnostics, state)
    lines = apply_conditions(split_lines(text, filename, environ, diagnostics), environ, diagnostics)
    parser.run(lines)
    return Config(global_=state.global_.freeze(), proxies=tuple(parser.proxies),
                  programs=tuple(parser.programs), userlists=tuple(parser.userlists),
                  peers=tuple(parser.peer_sections), mailers=tuple(parser.mailer_sections),
                  caches=tuple(parser.cache_sections), resolvers=tuple(parser.resolver_sections),
                  sources=(filename,))


def declare_http_errors(text: str, filename: str, environ: Mapping[str, str],
                        carry: dict) -> None:
    """Read the http-errors sections of a file before any proxy: HAProxy lets
    `errorfiles` and `http-request deny ... errorfiles` name one declared
    further down, or in a later file. Nothing is reported here; each section
    is read again in its turn, with its errors (see `http_errors.close_section`)."""
    state: Carry = carry.setdefault("haproxy", Carry())
    quiet = Diagnostics()
    lines = apply_conditions(split_lines(text, filename, environ, quiet), environ, quiet)
    ahead, inside = [], False
    for line in lines:
        first = line.words[0].text
        if first in SECTIONS or first in UNSUPPORTED_SECTIONS:
            inside = first == "http-errors"
        if inside:
            ahead.append(line)
    if ahead:
        parser = _Parser(filename, environ, quiet, state)
        parser.reading_ahead = True
        parser.run(ahead)


class _Parser:
    reading_ahead = False  # declare_http_errors' pass

    def __init__(self, filename: str, environ: Mapping[str, str], diagnostics: Diagnostics, carry: Carry):
        self.filename = filename
        self.environ = environ
        self.diagnostics = diagnostics
        self.carry = carry
        self.proxies: list[Proxy] = []
        self.programs: list = []  # model.Program, see haply.config.programs
        self.userlists: list = []  # model.Userlist, see haply.config.userlists
        self.peer_sections: list = []  # model.PeersSection, see haply.config.peers
        self.mailer_sections: list = []  # model.MailersSection, see haply.config.mailers
        self.cache_sections: list = []  # model.CacheSection, see haply.config.caches
        self.resolver_sections: list = []  # model.ResolversSection, see haply.config.resolvers
        self.section: str | None = None  # "global", "defaults", "frontend", ...
        self.current: ProxyState | None = None
        self.skipping = False  # inside a section haply refuses
        self.reported_formats: set = set()  # (line, keyword, variable) refused once

    # -- driving

    def run(self, lines: list[Line]) -> None:
        for line in lines:
            try:
                self.line(line)
            except ParseError as error:
                self.diagnostics.error(line.location, str(error))
            except UnitError as error:
                self.diagnostics.error(line.location, str(error))
            except acls.AclError as error:
                self.diagnostics.error(line.location, str(error))
        self.close_section()

    def line(self, line: Line) -> None:
        first = line.words[0].text
        if first in SECTIONS:
            self.close_section()
            try:
                self.open_section(first, line)
            except ParseError:
                # The header is reported; the lines of a section that could not
                # be opened are skipped rather than reported one by one.
                self.section, self.current, self.skipping = None, None, True
                raise
            return
        if first in UNSUPPORTED_SECTIONS:
            self.close_section()
            self.skipping = True
            raise ParseError(f"'{first}' sections are not supported by haply")
        if self.skipping:
            return  # the section header was already reported
        if self.section is None:
            raise ParseError(
                f"'{first}' outside of any section: a file starts with a section keyword "
                "(global, defaults, frontend, backend or listen)"
            )
        words = list(line.words)
        negated = False
        if first == "no" and len(words) > 1:
            negated = True
            words = words[1:]
            if words[0].text == "log":
                words = [Word("no log", words[0].location)] + words[1:]
        texts = [w.text for w in words]
        if self.section == "peers" and texts[0] in PEERS_UNSUPPORTED:
            raise ParseError(f"'{texts[0]}' in a peers section is not supported by haply")
        keyword, size = lookup(texts)
        if keyword is None:
            self.unknown(texts)
        name = keyword.name
        if negated and not (name.startswith("option ") or name == "no log"):
            raise ParseError(f"'no' cannot be used with '{name}' (only with 'option' and 'log')")
        if negated and name.removeprefix("option ") in NOT_NEGATABLE:
            # before any other verdict on the option: HAProxy refuses the line itself
            raise ParseError(f"negation/default is not supported for option '{name[7:]}'")
        if keyword.status == UNSUPPORTED:
            hint = f"; use '{keyword.modern}' instead" if keyword.modern else ""
            raise ParseError(f"'{name}' is not supported by haply{hint}")
        if not keyword.allowed_in(self.section):
            if (self.section in ("frontend", "backend") and keyword.allowed_in("listen")
                    and name not in CAPABILITY_ERRORS):
                # HAProxy ignores, with a warning, a keyword of the other
                # capability (a frontend's `option httplog` in a backend)
                capability = "frontend" if self.section == "backend" else "backend"
                self.diagnostics.warning(
                    line.location, f"'{name}' is ignored: {self.section} '{self.current.name}' "
                    f"has no {capability} capability (HAProxy ignores it too)")
                return
            raise ParseError(
                f"'{name}' is not allowed in a '{self.section}' section (allowed in: {keyword.section_list})"
            )
        if keyword.status == LEGACY:
            self.diagnostics.warning(line.location, f"'{name}' is deprecated; write '{keyword.modern}' instead")
            keyword = KEYWORDS[keyword.modern]
            name = keyword.name
        handler = SECTION_HANDLERS.get(self.section, HANDLERS).get(name)
        if handler is None:  # a keyword of the table without a handler is a bug
            raise ParseError(f"'{name}' has no handler in haply (internal error)")
        target = self.carry.global_ if self.section == "global" else self.current
        handler(self, target, words[size:], line, negated)

    def unknown(self, texts: list[str]) -> None:
        name = texts[0]
        if name in FAMILIES and len(texts) == 1:
            letter = SECTION_LETTERS.get(self.section or "", "")
            words = sorted(k.split(" ", 1)[1] for k, row in KEYWORDS.items()
                           if k.startswith(name + " ") and letter in row.sections
                           and row.status != UNSUPPORTED)
            if words:
                raise ParseError(f"'{name}' expects one of: {', '.join(words)}")
        if name in FAMILIES and len(texts) > 1:
            name = f"{texts[0]} {texts[1]}"
        message = f"unknown keyword '{name}' in '{self.section}' section"
        guess = suggest(name, self.section or "")
        if guess:
            message += f"; did you mean '{guess}'?"
        raise ParseError(message)

    # -- sections

    def open_section(self, kind: str, line: Line) -> None:
        args = [w.text for w in line.words[1:]]
        self.skipping = False
        self.section = kind
        if kind == "global":
            if args:
                raise ParseError(f"'global' takes no argument (got '{args[0]}')")
            return
        if kind == "program":
            self.current = programs.open_section(args, line.location)
            return
        if kind == "userlist":
            self.current = userlists.open_section(args, line.location)
            return
        if kind == "peers":
            self.current = peer_sections.open_section(args, line.location)
            return
        if kind == "http-errors":
            self.current = http_errors.open_section(args, line.location)
            return
        if kind == "mailers":
            self.current = mailer_sections.open_section(args, line.location)
            return
        if kind == "cache":
            self.current = caches.open_section(args, line.location)
            return
        if kind == "resolvers":
            self.current = resolver_sections.open_section(args, line.location)
            return
        name, parent, legacy_address = None, None, None
        rest = list(args)
        if rest and rest[0] != "from":
            name = rest.pop(0)
        if rest and rest[0] == "from":
            if len(rest) < 2:
                raise ParseError("'from' needs the name of a defaults section")
            parent = rest[1]
            rest = rest[2:]
        if rest and kind == "listen" and name is not None and len(rest) == 1:
            legacy_address = rest.pop()
        if rest:
            raise ParseError(f"unexpected '{rest[0]}' after the {kind} name: expected '{kind} NAME [from DEFAULTS]'")
        if kind != "defaults" and not name:
            raise ParseError(f"'{kind}' needs a name")
        if name is not None and not PROXY_NAME.fullmatch(name):
            raise ParseError(
                f"invalid {kind} name '{name}': use letters, digits, '-', '_', '.' and ':'"
            )
        # A defaults section starts from the documented defaults (manual 4), a
        # proxy from the last defaults section.
        base = ProxyState() if kind == "defaults" else self.carry.last_defaults
        if parent is not None:
            base = self.carry.named_defaults.get(parent)
            if base is None:
                raise ParseError(f"no defaults section named '{parent}' before this line")
        self.current = base.inherit(name or "", kind, line.location)
        if legacy_address is not None:
            self.diagnostics.warning(
                line.location,
                f"'listen {name} {legacy_address}' is the old form, which HAProxy 2.6 rejects; write 'listen {name}' "
                f"followed by 'bind {legacy_address}'",
            )
            try:
                self.current.binds.extend(parse_bind_addresses(legacy_address, line.location))
            except (ParseError, UnitError) as error:
                self.diagnostics.error(line.location, str(error))

    def http_fallbacks(self, state: ProxyState) -> None:
        """HTTP-only settings in a TCP proxy fall back as HAProxy makes them
        fall back, with the same warnings."""
        if state.mode != "tcp":
            return
        if state.log_format in ("httplog", "httplog clf"):
            self.diagnostics.warning(
                state.location,
                f"'option httplog' needs 'mode http' in '{state.name}': falling back to 'option tcplog'",
            )
            state.log_format = "tcplog"
        if state.kind != "backend":
            self._http_only_variables(state, "log-format", state.log_format,
                                      state.log_format_location)
            self._http_only_variables(state, "unique-id-format", state.unique_id_format,
                                      state.unique_id_format_location)
        if state.kind != "frontend" and state.balance in ("uri", "url_param", "hdr"):
            self.diagnostics.warning(
                state.location,
                f"'balance {state.balance}' needs 'mode http' in '{state.name}': falling back to roundrobin",
            )
            state.balance, state.balance_arg, state.balance_options = "roundrobin", None, ()

    def _http_only_variables(self, state: ProxyState, keyword: str, fmt: str | None,
                             location: Location) -> None:
        """HAProxy refuses a format with HTTP variables in a mode tcp frontend,
        at the format's line (a defaults section's, when inherited), once."""
        from haply.logs.formats import http_only  # the log formats read the model

        for name in http_only(fmt) if fmt else ():
            if (location, keyword, name) not in self.reported_formats:
                self.reported_formats.add((location, keyword, name))
                self.diagnostics.error(
                    location, f"'{keyword}': variable '%{name}' is reserved for mode http "
                    f"('{state.name}' is in mode tcp)")

    def close_section(self) -> None:
        state = self.current
        if state is not None and self.section in ("frontend", "backend", "listen"):
            self.http_fallbacks(state)
            self.proxies.append(state.freeze(self.diagnostics))
        elif state is not None and self.section == "program":
            try:
                self.programs.append(programs.close_section(state, self.carry.programs))
            except ParseError as error:  # reported at the section, not at the next line
                self.diagnostics.error(state.location, str(error))
        elif state is not None and self.section == "userlist":
            try:
                self.userlists.append(userlists.close_section(state, self.carry.userlists))
            except ParseError as error:
                self.diagnostics.error(state.location, str(error))
        elif state is not None and self.section == "http-errors":
            try:
                http_errors.close_section(state, self.carry.http_errors,
                                          self.carry.http_errors_ahead, self.reading_ahead)
            except ParseError as error:
                self.diagnostics.error(state.location, str(error))
        elif state is not None and self.section == "mailers":
            try:
                self.mailer_sections.append(mailer_sections.close_section(state, self.carry.mailers))
            except ParseError as error:
                self.diagnostics.error(state.location, str(error))
        elif state is not None and self.section == "resolvers":
            try:
                self.resolver_sections.append(resolver_sections.close_section(
                    state, self.carry.resolvers, self.diagnostics))
            except ParseError as error:
                self.diagnostics.error(state.location, str(error))
        elif state is not None and self.section == "cache":
            try:
                self.cache_sections.append(caches.close_section(state, self.carry.caches))
            except ParseError as error:
                self.diagnostics.error(state.location, str(error))
        elif state is not None and self.section == "peers":
            try:
                self.peer_sections.append(peer_sections.close_section(state, self.carry.peers))
            except ParseError as error:
                self.diagnostics.error(state.location, str(error))
        elif state is not None and self.section == "defaults":
            self.carry.last_defaults = state
            if state.name:
                self.carry.named_defaults[state.name] = state
        self.current = None
        self.section = None


# ------------------------------------------------------------------------ helpers


def _texts(words: list[Word]) -> list[str]:
    return [w.text for w in words]


def _one(name: str, args: list[Word], what: str) -> str:
    if len(args) != 1:
        got = "nothing" if not args else f"{len(args)} arguments"
        raise ParseError(f"'{name}' expects {what} (got {got})")
    return args[0].text


def _none(name: str, args: list[Word]) -> None:
    if args:
        raise ParseError(f"'{name}' takes no argument (got '{args[0].text}')")


def _condition(state: ProxyState, args: list[Word]):
    """Split a rule's words at if/unless; returns (words before, Condition|None)."""
    before, keyword, after = acls.split_condition(args)
    if keyword is None:
        return before, None
    return before, acls.parse_condition(keyword, after, state.acls, state.name)


# The environment of the file being read (set by `parse`): HAProxy's address
# parser expands ${NAME} in an address even outside double quotes.
_address_environ: Mapping[str, str] = {}
_ADDRESS_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def _expand_address(text: str, what: str) -> str:
    def value(match: re.Match) -> str:
        name = match.group(1)
        if name not in _address_environ:
            raise ParseError(f"{what} '{text}': environment variable '{name}' is not set")
        return _address_environ[name]
    return _ADDRESS_VARIABLE.sub(value, text) if "${" in text else text


def _host_port(text: str, what: str, port_required: bool) -> tuple[str, str | None]:
    """Split ADDR[:PORT] in HAProxy's forms: 1.2.3.4:80, *:80, :80, :::80,
    [::1]:80, ipv6@::1:80, ipv4@1.2.3.4:80, host.example:80, with ${NAME}
    taken from the environment."""
    text = _expand_address(text, what)
    family = None
    if text.startswith(("ipv4@", "ipv6@")):
        family, text = text[:4], text[5:]
    if text.startswith(("unix@", "abns@", "sockpair@", "udp@", "udp4@", "udp6@", "quic4@", "quic6@")) or text.startswith("/"):
        raise ParseError(f"{what} '{text}' is not supported by haply: only TCP over IPv4/IPv6 and fd@N are")
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise ParseError(f"invalid {what} '{text}': missing ']'")
        host, rest = text[1:end], text[end + 1 :]
        if rest and not rest.startswith(":"):
            raise ParseError(f"invalid {what} '{text}': expected ':PORT' after ']'")
        port = rest[1:] if rest else None
    elif ":" in text:
        # The last colon separates the port, also for IPv6 (":::80" is "::" port
        # 80, "ipv6@::1:80" is "::1" port 80), as HAProxy reads addresses.
        host, port = text.rsplit(":", 1)
    else:
        host, port = text, None
    if port == "":
        port = None
    if port is None and port_required:
        raise ParseError(f"missing port in {what} '{text}': expected ADDR:PORT such as 10.0.0.11:443 or *:80")
    if host not in ("", "*"):
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            if family == "ipv6" or ":" in host or not HOSTNAME.fullmatch(host):
                raise ParseError(
                    f"invalid address '{host}' in {what} '{text}': expected an IPv4/IPv6 address or a host name"
                ) from None
        else:
            if family == "ipv4" and address.version != 4 or family == "ipv6" and address.version != 6:
                raise ParseError(f"address '{host}' does not match its '{family}@' prefix")
    return host, port


def parse_bind_addresses(text: str, location: Location, options: tuple = ()) -> list[Bind]:
    """One Bind per address and port of a bind line's first word."""
    binds = []
    for item in text.split(","):
        if not item:
            raise ParseError(f"empty address in bind list '{text}'")
        if item.startswith("fd@"):
            fd = parse_int(item[3:], "file descriptor in " + item, 0)
            binds.append(Bind("", 0, fd=fd, options=options, location=location))
            continue
        host, port = _host_port(item, "bind address", port_required=True)
        for number in _port_range(port, item):
            binds.append(Bind(host, number, options=options, location=location))
    return binds


def _port_range(port: str, item: str) -> range:
    if "-" in port:
        low_text, high_text = port.split("-", 1)
        low = parse_port(low_text, f"port in '{item}'")
        high = parse_port(high_text, f"port in '{item}'")
        if high < low:
            raise ParseError(f"invalid port range '{port}' in '{item}': the first port is higher than the last")
        return range(low, high + 1)
    number = parse_port(port, f"port in '{item}'")
    return range(number, number + 1)


def _read_options(
    name: str, words: list[str], table: dict[str, int], unsupported: frozenset[str]
) -> list[tuple[str, str]]:
    """(option, value) pairs of a bind / stats socket line, checked against a table."""
    out = []
    i = 0
    while i < len(words):
        option = words[i]
        if option in unsupported:
            raise ParseError(f"{name} option '{option}' is not supported by haply")
        if option not in table:
            raise ParseError(f"unknown {name} option '{option}'")
        count = table[option]
        if count and i + 1 >= len(words):
            raise ParseError(f"{name} option '{option}' needs a value")
        out.append((option, words[i + 1] if count else ""))
        i += 1 + count
    return out


# ---------------------------------------------------------------- global keywords


def _global_value(field_name: str, convert: Callable[[str], object], what: str):
    def handler(parser: _Parser, state: GlobalState, args: list[Word], line: Line, negated: bool) -> None:
        name = line.words[0].text
        state.values[field_name] = convert(_one(name, args, what))
    return handler


def _account(kind: str):
    """A user or group name that must exist on this machine (as HAProxy
    checks it when it reads the line, not when it drops privileges)."""
    def convert(name: str) -> str:
        from haply.config.programs import check_account  # programs reads this module

        check_account(kind, name)
        return name
    return convert


MIN_BUFSIZE = 1024
MAX_BUFSIZE = 256 << 20


def _bufsize(text: str) -> int:
    size = parse_size(text, "tune.bufsize")
    # Below this haply's own error answers and the stats page no longer fit;
    # HAProxy refuses 256 MB and more when HTTP is in use.
    if not MIN_BUFSIZE <= size < MAX_BUFSIZE:
        raise ParseError(f"tune.bufsize {text}: expected {MIN_BUFSIZE} to {MAX_BUFSIZE - 1} bytes")
    return size


def _cpu_map(parser, state: GlobalState, args, line, negated) -> None:
    try:
        mapping = cpu_map.parse(_texts(args))
    except cpu_map.CpuMapError as exc:
        raise ParseError(str(exc)) from None
    for word in cpu_map.truncated_lists(_texts(args)):
        parser.diagnostics.warning(line.location, f"cpu-map: '{word}' means CPU "
                                   f"{word.split(',', 1)[0]} only, as HAProxy 2.6 reads it: "
                                   "separate CPUs with spaces")
    if not mapping.process_matches:
        parser.diagnostics.warning(line.location, "cpu-map for a process other than 1 binds "
                                   "nothing: haply runs one process of workers (write 1/<threads>)")
    elif mapping.threads is None:
        parser.diagnostics.warning(line.location, "cpu-map without a thread set binds no worker, "
                                   "as in HAProxy 2.6: write 1/all or 1/<threads>")
    state.values["cpu_map"] = state.values.get("cpu_map", ()) + (mapping,)


def _global_flag(field_name: str):
    def handler(parser, state: GlobalState, args, line, negated) -> None:
        _none(line.words[0].text, args)
        state.values[field_name] = True
    return handler


def _global_extra(parser, state: GlobalState, args, line, negated) -> None:
    keyword, size = lookup(line.texts)
    if not args and keyword.synopsis and not keyword.synopsis.startswith("["):
        raise ParseError(f"'{keyword.name}' expects {keyword.synopsis}")
    state.extra.append((keyword.name, tuple(_texts(args))))


def _dh_param_file(parser, state: GlobalState, args, line, negated) -> None:
    """Read at its line, as HAProxy reads it, so that -c names the file."""
    import ssl

    path = _one("ssl-dh-param-file", args, "a file of Diffie-Hellman parameters")
    try:
        ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_dh_params(path)
    except (OSError, ssl.SSLError) as error:
        raise ParseError(f"'ssl-dh-param-file': cannot load DH parameters from '{path}': "
                         f"{getattr(error, 'strerror', None) or error}") from None
    state.extra.append(("ssl-dh-param-file", (path,)))


def _ssl_server_verify(parser, state: GlobalState, args, line, negated) -> None:
    if _one("ssl-server-verify", args, "none or required") not in ("none", "required"):
        raise ParseError(f"invalid ssl-server-verify '{args[0].text}': expected none or required")
    state.extra.append(("ssl-server-verify", (args[0].text,)))


def _max_spread_checks(parser, state: GlobalState, args, line, negated) -> None:
    state.values["max_spread_checks"] = parse_time(
        _one("max-spread-checks", args, "a time such as 5s"), "max-spread-checks")


def _spread_checks(parser, state: GlobalState, args, line, negated) -> None:
    state.values["spread_checks"] = parse_int(_one("spread-checks", args, "a percentage 0-50"), "spread-checks", 0, 50)


def _comp_maxlevel(parser, state: GlobalState, args, line, negated) -> None:
    level = _one("tune.comp.maxlevel", args, "a level from 1 to 9")
    parse_int(level, "tune.comp.maxlevel", 1, 9)
    state.extra.append(("tune.comp.maxlevel", (level,)))


def _stats_timeout(parser, state: GlobalState, args, line, negated) -> None:
    state.values["stats_timeout"] = parse_time(_one("stats timeout", args, "a time such as 30s"), "stats timeout")


def _hard_stop_after(parser, state: GlobalState, args, line, negated) -> None:
    state.values["hard_stop_after"] = parse_time(_one("hard-stop-after", args, "a time such as 30s"), "hard-stop-after")


UNIX_BIND_SETTINGS = ("prefix", "mode", "user", "uid", "group", "gid")


def _unix_bind(parser, state: GlobalState, args, line, negated) -> None:
    """`unix-bind [prefix P] [mode M] [user U|uid N] [group G|gid N]`: checked
    only. HAProxy 2.6 applies it to the UNIX sockets of `bind` lines only,
    not to stats sockets (observed); haply refuses UNIX binds, so with the
    TCP binds it takes the settings change nothing, as in HAProxy."""
    texts = _texts(args)
    if not texts or len(texts) % 2:
        raise ParseError("'unix-bind' expects settings and their values: prefix, mode, user, "
                         "uid, group, gid")
    for setting, value in zip(texts[::2], texts[1::2]):
        if setting not in UNIX_BIND_SETTINGS:
            raise ParseError(f"unknown 'unix-bind' setting '{setting}': expected "
                             f"{', '.join(UNIX_BIND_SETTINGS)}")
        if setting == "mode" and not re.fullmatch(r"[0-7]{1,4}", value):
            raise ParseError(f"invalid unix-bind mode '{value}': expected an octal number such as 660")
        if setting in ("user", "group"):
            _account(setting)(value)
        if setting in ("uid", "gid") and not value.isdigit():
            raise ParseError(f"invalid unix-bind {setting} '{value}': expected a number")


def _stats_socket(parser, state: GlobalState, args, line, negated) -> None:
    texts = _texts(args)
    if not texts:
        raise ParseError("'stats socket' expects a path or ADDR:PORT")
    address = _expand_address(texts[0], "stats socket address")
    if address.startswith("unix@"):
        address = address[5:]
    if not address.startswith("/"):
        host, port = _host_port(address, "stats socket address", port_required=True)
        parse_port(port, f"port of stats socket '{address}'")
    mode, level = None, "operator"
    options = []
    for option, value in _read_options("stats socket", texts[1:], BIND_OPTIONS, UNSUPPORTED_BIND_OPTIONS):
        if option == "mode":
            if not re.fullmatch(r"[0-7]{1,4}", value):
                raise ParseError(f"invalid socket mode '{value}': expected an octal number such as 660")
            mode = int(value, 8)
        elif option == "level":
            if value not in STATS_LEVELS:
                raise ParseError(f"invalid level '{value}': expected user, operator or admin")
            level = value
        elif option == "accept-proxy":
            raise ParseError("'stats socket' option 'accept-proxy' is not supported by haply: the runtime "
                             "API reads its commands from the first byte")
        else:
            if option in ("user", "group"):
                _account(option)(value)
            options.append((option, value))
    state.sockets.append(StatsSocket(address, mode, level, line.location, tuple(options)))


def parse_log(args: list[str], location: Location) -> LogTarget:
    """`log ADDR [len N] [format F] [sample R:S] FACILITY [LEVEL [MINLEVEL]]` or `log global`."""
    if args == ["global"]:
        return LogTarget("global", location=location)
    if not args:
        raise ParseError("'log' expects 'global' or an address followed by a facility")
    address, rest = _expand_address(args[0], "log address"), args[1:]
    if address.startswith("ring@"):
        raise ParseError(f"log target '{address}' is not supported by haply (rings)")
    if not (address.startswith(("/", "fd@")) or address in ("stdout", "stderr")):
        host, port = _host_port(address, "log address", port_required=False)
        if port is not None:
            parse_port(port, f"port of log address '{address}'")
    length, fmt = 1024, None
    while rest and rest[0] in ("len", "format", "sample"):
        if len(rest) < 2:
            raise ParseError(f"'{rest[0]}' in 'log' needs a value")
        if rest[0] == "len":
            length = parse_int(rest[1], "log length", *LOG_LENGTH_RANGE)
        elif rest[0] == "format":
            if rest[1] not in LOG_FORMATS:
                raise ParseError(f"unknown log format '{rest[1]}': expected one of {', '.join(sorted(LOG_FORMATS))}")
            fmt = rest[1]
        else:
            raise ParseError("'sample' in 'log' is not supported by haply")
        rest = rest[2:]
    if not rest:
        raise ParseError(f"'log {address}' needs a facility such as local0")
    if rest[0] not in FACILITIES:
        raise ParseError(f"unknown log facility '{rest[0]}': expected one of kern, user, daemon, local0..local7, ...")
    if len(rest) > 3:
        raise ParseError(f"unexpected '{rest[3]}' in 'log': expected FACILITY [LEVEL [MINLEVEL]]")
    for level in rest[1:]:
        if level not in LEVELS:
            raise ParseError(f"unknown log level '{level}': expected one of {', '.join(LEVELS)}")
    kwargs = {"format": fmt} if fmt else {}
    return LogTarget(
        address, rest[0], rest[1] if len(rest) > 1 else None, rest[2] if len(rest) > 2 else None,
        length, location=location, **kwargs,
    )


def _log(parser, state, args, line, negated) -> None:
    target = parse_log(_texts(args), line.location)
    if isinstance(state, GlobalState):
        if target.address == "global":
            raise ParseError("'log global' is meaningless in the global section")
        state.logs.append(target)
    else:
        state.logs.append(target)


def _log_tag(parser, state, args, line, negated) -> None:
    state.extra.append(("log-tag", (_one("log-tag", args, "a tag"),)))


def _no_log(parser, state: ProxyState, args, line, negated) -> None:
    _none("no log", args)
    state.logs.clear()


# ----------------------------------------------------------------- proxy keywords


def _mode(parser, state: ProxyState, args, line, negated) -> None:
    mode = _one("mode", args, "tcp or http")
    if mode not in ("tcp", "http"):
        hint = " ('mode health' was removed from HAProxy; use monitor-uri)" if mode == "health" else ""
        raise ParseError(f"unknown mode '{mode}': expected tcp or http{hint}")
    state.mode = mode


def _maxconn(parser, state, args, line, negated) -> None:
    value = parse_int(_one("maxconn", args, "a number"), "maxconn", 0)
    if isinstance(state, GlobalState):
        state.values["maxconn"] = value
    else:
        state.maxconn = value


def _bind(parser, state: ProxyState, args, line, negated) -> None:
    texts = _texts(args)
    if not texts:
        raise ParseError("'bind' expects an address such as *:80 or 10.0.0.11:443")
    if "<" in texts[0] or ">" in texts[0]:
        raise ParseError(
            f"invalid bind address '{' '.join(texts[:2])}': it looks like a placeholder; "
            "replace it with an address such as 10.0.0.11:443"
        )
    binds = parse_bind_addresses(texts[0], line.location)
    options = tuple(_read_options("bind", texts[1:], BIND_OPTIONS, UNSUPPORTED_BIND_OPTIONS))
    _check_files(options, "bind")
    _check_socket_options(options)
    names = {option for option, _ in options}
    if "ssl" in names and not names & {"crt", "crt-list"}:
        raise ParseError(f"bind '{texts[0]}' has 'ssl' but no certificate: add 'crt FILE'")
    state.binds.extend(replace(bind, options=options) for bind in binds)


# bind options that only HAProxy's threads and scheduler have: haply's workers
# all accept on every listener.
THREAD_BIND_OPTIONS = ("process", "thread", "nice")


def _check_socket_options(options) -> None:
    """The values of the bind options haply applies to the listening socket
    (haply.proxy.listeners) and its connections."""
    for option, value in options:
        if option in THREAD_BIND_OPTIONS:
            raise ParseError(f"bind option '{option}' is not supported by haply: its worker processes "
                             "all accept on every listener")
        if option in ("maxconn", "backlog", "id"):
            parse_int(value, f"bind {option}", 1)
        elif option == "mss":
            parse_int(value, "bind mss", 1, 65535)
        elif option == "tcp-ut":
            parse_time(value, "bind tcp-ut")
    names = {option for option, _ in options}
    if {"v4v6", "v6only"} <= names:
        raise ParseError("bind options 'v4v6' and 'v6only' contradict each other")


# Options naming files that must exist when the configuration is loaded, as
# HAProxy checks them. Relative names depend on crt-base/ca-base and are left to
# the TLS layer.
FILE_OPTIONS = frozenset({"crt", "ca-file", "crl-file", "crt-list", "ca-verify-file"})


def _check_files(options, what: str) -> None:
    for option, value in options:
        if option in FILE_OPTIONS and value.startswith("/") and not os.path.exists(value):
            raise ParseError(f"{what} option '{option} {value}': no such file or directory")


def _flag(attribute: str, value):
    def handler(parser, state: ProxyState, args, line, negated) -> None:
        _none(line.words[0].text, args)
        setattr(state, attribute, value)
    return handler


def _proxy_id(parser, state: ProxyState, args, line, negated) -> None:
    state.id = parse_int(_one("id", args, "a number"), "id", 1)


def _extra(parser, state: ProxyState, args, line, negated) -> None:
    keyword, size = lookup(line.texts)
    if not args:
        raise ParseError(f"'{keyword.name}' expects {keyword.synopsis}")
    if keyword.name == "backlog":
        parse_int(args[0].text, "backlog", 1)
    state.extra.append((keyword.name, tuple(_texts(args))))


def _load_server_state(parser, state: ProxyState, args, line, negated) -> None:
    mode = _one("load-server-state-from-file", args, "global, local or none")
    if mode not in ("global", "local", "none"):
        raise ParseError(f"invalid load-server-state-from-file '{mode}': expected global, local or none")
    state.extra.append(("load-server-state-from-file", (mode,)))


def _description(parser, state, args, line, negated) -> None:
    text = " ".join(_texts(args))
    if isinstance(state, GlobalState):
        state.extra.append(("description", tuple(_texts(args))))
    else:
        state.description = text


def _retries(parser, state: ProxyState, args, line, negated) -> None:
    state.retries = parse_int(_one("retries", args, "a number"), "retries", 0)


def _tcp_keepalive(keyword: str):
    """clitcpka-cnt <count>, clitcpka-idle <time>, clitcpka-intvl <time> and
    the srvtcpka ones: times in seconds unless a unit says otherwise."""
    def handler(parser, state: ProxyState, args, line, negated) -> None:
        text = _one(keyword, args, "a count" if keyword.endswith("-cnt") else "a time")
        if keyword.endswith("-cnt"):
            value = parse_int(text, keyword, 1)
        else:
            try:
                seconds = parse_time(text if not text.isdigit() else text + "s", keyword)
            except UnitError:
                raise ParseError(f"invalid {keyword} '{text}': expected a whole number with an "
                                 "optional unit among ms, s, m, h, d (a bare number is seconds), "
                                 "e.g. 60 or 10m") from None
            if seconds < 1:
                raise ParseError(f"'{keyword}' must be at least one second (got '{text}')")
            value = int(seconds)
        state.tcp_keepalive[keyword] = value
    return handler


def _fullconn(parser, state: ProxyState, args, line, negated) -> None:
    state.fullconn = parse_int(_one("fullconn", args, "a number of connections"), "fullconn", 0)


def _rate_limit_sessions(parser, state: ProxyState, args, line, negated) -> None:
    state.rate_limit_sessions = parse_int(
        _one("rate-limit sessions", args, "a number of sessions per second"), "rate-limit sessions", 0)


def _retry_on(parser, state: ProxyState, args, line, negated) -> None:
    events = _texts(args)
    if not events:
        raise ParseError("'retry-on' expects one or more events such as conn-failure 503")
    for event in events:
        if event not in RETRY_EVENTS:
            raise ParseError(f"unknown retry-on event '{event}': expected one of {', '.join(sorted(RETRY_EVENTS))}")
    if "none" in events and len(events) > 1:
        raise ParseError("'none' cannot be combined with other retry-on events")
    result: set[str] = set()
    for event in events:
        if event == "all-retryable-errors":
            result |= ALL_RETRYABLE
        elif event != "none":
            result.add(event)
    state.retry_on = frozenset(result)


def _timeout(field_name: str):
    def handler(parser, state: ProxyState, args, line, negated) -> None:
        name = "timeout " + field_name.replace("_", "-")
        state.timeouts[field_name] = parse_time(_one(name, args, "a time such as 10s"), name)
    return handler


_BALANCE_PLAIN = frozenset({"roundrobin", "static-rr", "leastconn", "first", "source"})


def _balance(parser, state: ProxyState, args, line, negated) -> None:
    texts = _texts(args) or ["roundrobin"]  # HAProxy takes a bare `balance` as its default
    algorithm, rest = texts[0], texts[1:]
    arg = None
    match = re.fullmatch(r"(hdr|random|rdp-cookie)\((.*)\)", algorithm)
    if match:
        algorithm, arg = match.groups()
    if algorithm in ("hash", "rdp-cookie"):
        raise ParseError(f"balance algorithm '{algorithm}' is not supported by haply")
    if algorithm in _BALANCE_PLAIN or algorithm == "random" and arg is None:
        if rest:
            raise ParseError(f"balance {algorithm} takes no argument (got '{rest[0]}')")
    elif algorithm == "random":
        parse_int(arg, "random draws", 1)
        if rest:
            raise ParseError(f"balance random takes no argument (got '{rest[0]}')")
    elif algorithm == "hdr":
        if not arg:
            raise ParseError("balance hdr needs a header name, as in hdr(host)")
        if rest not in ([], ["use_domain_only"]):
            raise ParseError(f"unexpected '{rest[0]}' after balance hdr(): expected use_domain_only")
    elif algorithm == "url_param":
        if not rest:
            raise ParseError("balance url_param needs a parameter name")
        arg, rest = rest[0], rest[1:]
        if rest[:1] not in ([], ["check_post"]):
            raise ParseError(f"unexpected '{rest[0]}' after balance url_param: expected check_post")
        rest = rest[:1]  # a trailing <max_wait> is ignored by HAProxy too (manual 4.2)
    elif algorithm == "uri":
        i = 0
        while i < len(rest):
            if rest[i] in ("whole", "path-only"):
                i += 1
            elif rest[i] in ("len", "depth") and i + 1 < len(rest):
                parse_int(rest[i + 1], f"balance uri {rest[i]}", 1)
                i += 2
            else:
                raise ParseError(f"unexpected '{rest[i]}' after balance uri: expected whole, len N, depth N or path-only")
    else:
        raise ParseError(
            f"unknown balance algorithm '{algorithm}': expected roundrobin, static-rr, leastconn, first, "
            "source, uri, url_param, hdr(NAME) or random"
        )
    state.balance, state.balance_arg, state.balance_options = algorithm, arg, tuple(rest)


def _hash_type(parser, state: ProxyState, args, line, negated) -> None:
    texts = _texts(args)
    if not texts or texts[0] not in ("map-based", "consistent"):
        raise ParseError("'hash-type' expects map-based or consistent")
    function = modifier = None
    for word in texts[1:]:
        if word == "wt6":
            raise ParseError("hash function 'wt6' is not supported by haply: use sdbm (the default), djb2 or crc32")
        if word in ("sdbm", "djb2", "crc32") and function is None and modifier is None:
            function = word
        elif word == "avalanche" and modifier is None:
            modifier = word
        else:
            raise ParseError(f"unexpected '{word}' in hash-type: expected a function (sdbm, djb2, wt6, crc32) then avalanche")
    state.hash_type, state.hash_function, state.hash_modifier = texts[0], function, modifier


def _default_backend(parser, state: ProxyState, args, line, negated) -> None:
    name = _one("default_backend", args, "a backend name")
    if "%[" in name:
        raise ParseError(f"'default_backend {name}': dynamic backend names (log-format) are not "
                         "supported by haply")
    state.default_backend, state.default_backend_location = name, line.location


def _use_backend(parser, state: ProxyState, args, line, negated) -> None:
    before, condition = _condition(state, args)
    name = _one("use_backend", before, "a backend name followed by if|unless CONDITION")
    if "%[" in name:  # a name made per request (kolla-ansible's host map)
        from haply.http.headers import compile_value  # the values read the model

        try:
            compile_value(name, request=True)
        except ValueError as error:
            raise ParseError(f"'use_backend {name}': {error}") from None
    state.backend_switches.append(BackendSwitch(name, condition, line.location))


def _acl(parser, state: ProxyState, args, line, negated) -> None:
    texts = _texts(args)
    if len(texts) < 2:
        raise ParseError("'acl' expects a name, a fetch and patterns, as in 'acl is_api path_beg /api'")
    name = texts[0]
    if not re.fullmatch(r"[A-Za-z0-9_.:-]+", name):
        raise ParseError(f"invalid acl name '{name}': use letters, digits, '-', '_', '.' and ':'")
    if name in acls.PREDEFINED:
        raise ParseError(f"'{name}' is a predefined acl and cannot be redefined")
    state.acls.add(acls.parse_acl(name, texts[1:], line.location, state.name))


def _header_rule(family: str, action: str):
    takes_value = action != "del-header"

    def handler(parser, state: ProxyState, args, line, negated) -> None:
        before, condition = _condition(state, args)
        texts = _texts(before)
        expected = "a header name and a value" if takes_value else "a header name"
        if len(texts) != (2 if takes_value else 1):
            raise ParseError(f"'{family} {action}' expects {expected}, then optionally if|unless CONDITION")
        if takes_value:  # what the proxy would refuse at start: said by `haply -c`, at this line
            _check_rewrite(None, texts[1], family == "http-request")
        rule = HeaderRule(action, texts[0], texts[1] if takes_value else None, condition, line.location)
        (state.http_request_rules if family == "http-request" else state.http_response_rules).append(rule)
    return handler


def _replace_field_rule(family: str, action: str):
    """`replace-header|replace-value <name> <match-regex> <replace-fmt>`."""
    def handler(parser, state: ProxyState, args, line, negated) -> None:
        before, condition = _condition(state, args)
        texts = _texts(before)
        if len(texts) != 3:
            raise ParseError(f"'{family} {action}' expects a header name, a regular expression "
                             "and a replacement, then optionally if|unless CONDITION")
        name, pattern, value = texts
        _check_rewrite(pattern, value, family == "http-request")
        rule = HeaderRule(action, name, value, condition, line.location, pattern)
        (state.http_request_rules if family == "http-request" else state.http_response_rules).append(rule)
    return handler


def _line_rule(action: str):
    """`http-request set-method|set-path|set-pathq|set-query|set-uri <fmt>` and
    `replace-path|replace-pathq|replace-uri <match-regex> <replace-fmt>`."""
    takes_regex = action in REGEX_LINE_ACTIONS

    def handler(parser, state: ProxyState, args, line, negated) -> None:
        before, condition = _condition(state, args)
        texts = _texts(before)
        if len(texts) != (2 if takes_regex else 1) or not texts[-1]:
            expected = "a regular expression and a replacement" if takes_regex else "a value"
            raise ParseError(f"'http-request {action}' expects {expected}, then optionally if|unless CONDITION")
        pattern = texts[0] if takes_regex else None
        _check_rewrite(pattern, texts[-1], True)
        state.http_request_rules.append(HeaderRule(action, "", texts[-1], condition, line.location, pattern))
    return handler


def _check_rewrite(pattern: str | None, value: str, request: bool) -> None:
    # imported here: haply.http.headers itself imports the configuration model
    from haply.http.headers import compile_value

    try:
        if pattern is not None:
            compile_regex(pattern)
        compile_value(value, request)
    except ValueError as exc:
        raise ParseError(str(exc)) from None


def _set_status(parser, state: ProxyState, args, line, negated) -> None:
    """`http-response set-status <status> [reason <text>]`."""
    before, condition = _condition(state, args)
    texts = _texts(before)
    if len(texts) not in (1, 3) or (len(texts) == 3 and texts[1] != "reason"):
        raise ParseError("'http-response set-status' expects a status, optionally 'reason TEXT', "
                         "then optionally if|unless CONDITION")
    status = parse_int(texts[0], "http-response set-status status")
    if not 200 <= status <= 599:
        raise ParseError(f"http-response set-status {status}: haply sets a final status, 200 to 599")
    reason = texts[2] if len(texts) == 3 else None
    if reason is not None and re.search(r"[\x00-\x1f\x7f]", reason):
        raise ParseError("http-response set-status: the reason contains a control character")
    state.http_response_rules.append(StatusRule(status, reason, condition, line.location))


VARIABLE_ACTION = re.compile(r"(set-var|set-var-fmt|unset-var)\((.*)\)")


def _variable_rule(family: str):
    """`set-var(NAME[,COND...]) EXPR`, `set-var-fmt(NAME[,COND...]) FMT` and
    `unset-var(NAME)` among a proxy's http-request or http-response rules;
    the expression is compiled here, so that an error names its line."""
    def handler(parser, state: ProxyState, args, line, negated) -> None:
        # imported here: these modules themselves import the configuration model
        from haply.proxy import samples
        from haply.http.headers import compile_value

        action_text = line.words[1].text
        match = VARIABLE_ACTION.fullmatch(action_text)
        if match is None:
            raise ParseError(f"'{family} {action_text}' expects a variable name in parentheses, "
                             "as in set-var(txn.host)")
        action, inside = match.groups()
        name, *conditions = [part.strip() for part in inside.split(",")]
        before, condition = _condition(state, args)
        texts = _texts(before)
        try:
            if action == "unset-var":
                if conditions or texts:
                    raise ParseError(f"'{family} unset-var({inside})' takes only a variable name, "
                                     "then optionally if|unless CONDITION")
                samples.variable_setter(name)
                value = ""
            else:
                if len(texts) != 1 or not texts[0]:
                    what = "a sample expression" if action == "set-var" else "a log-format value"
                    raise ParseError(f"'{family} {action}({inside})' expects {what}, then optionally "
                                     "if|unless CONDITION")
                samples.variable_setter(name, conditions)
                value = texts[0]
                if action == "set-var":
                    samples.compile_expression(value, response=family == "http-response")
                else:
                    compile_value(value, family == "http-request")
        except ValueError as error:  # SampleError, or a log-format value's error
            raise ParseError(f"'{family} {action_text}': {error}") from None
        rule = VariableRule(action, name, value, tuple(conditions), condition, line.location)
        (state.http_request_rules if family == "http-request" else state.http_response_rules).append(rule)
    return handler


def _use_service(parser, state: ProxyState, args, line, negated) -> None:
    before, condition = _condition(state, args)
    service = _one("http-request use-service", before, "a service name")
    if service != "prometheus-exporter":
        raise ParseError(f"service '{service}' is not supported by haply: only prometheus-exporter is")
    state.http_request_rules.append(HeaderRule("use-service", service, None, condition, line.location))


def _deny(action: str, default_status: int):
    """`http-request deny`, or `http-request tarpit` (the same answer, given
    after `timeout tarpit`)."""
    name = "http-request " + action

    def handler(parser, state: ProxyState, args, line, negated) -> None:
        before, condition = _condition(state, args)
        try:
            answer = parse_answer(_texts(before), name, ("deny_status", "status"),
                                  _errorfile_reader(parser), default_status=default_status,
                                  limit=_head_budget(parser), error_sections=parser.carry.http_errors)
        except AnswerError as exc:
            raise ParseError(str(exc)) from None
        if answer.warning:
            parser.diagnostics.warning(line.location, answer.warning)
        if answer.response is None and answer.status not in ERRORFILE_CODES:
            raise ParseError(
                f"'{name}' status {answer.status} has no error page: use one of "
                f"{', '.join(map(str, sorted(ERRORFILE_CODES)))}, or give file or string")
        state.http_request_rules.append(DenyRule(answer.status, answer.response, condition,
                                                 line.location, closes=answer.closes,
                                                 tarpit=action == "tarpit"))
    return handler


def _auth(parser, state: ProxyState, args, line, negated) -> None:
    """`http-request auth [realm REALM]` (the realm defaults to the proxy's name)."""
    before, condition = _condition(state, args)
    texts = _texts(before)
    realm = state.name
    if texts:
        if texts[0] != "realm" or len(texts) != 2:
            raise ParseError("'http-request auth' expects [realm <realm>], then optionally if|unless CONDITION")
        realm = texts[1]
    if '"' in realm or "\\" in realm or any(ord(c) < 0x20 or ord(c) == 0x7F for c in realm):
        raise ParseError(f"realm '{realm}' cannot hold quotes, backslashes or control characters")
    state.http_request_rules.append(AuthRule(realm, condition, line.location))


def _return(parser, state: ProxyState, args, line, negated) -> None:
    before, condition = _condition(state, args)
    try:
        answer = parse_answer(_texts(before), "http-request return", ("status",),
                              _errorfile_reader(parser), default_status=200,
                              limit=_head_budget(parser), error_sections=parser.carry.http_errors)
    except AnswerError as exc:
        raise ParseError(str(exc)) from None
    if answer.warning:
        parser.diagnostics.warning(line.location, answer.warning)
    response = answer.response
    if response is None:
        if answer.default_errorfiles:
            if answer.status not in ERRORFILE_CODES:
                raise ParseError(f"'http-request return' status {answer.status} has no error page "
                                 "for default-errorfiles: give file or string, or nothing")
        else:  # no content: an empty answer (none at all for 204 and 304)
            length = "" if answer.status in (204, 304) else "content-length: 0\r\n"
            response = f"HTTP/1.1 {answer.status} {reason_phrase(answer.status)}\r\n{length}\r\n".encode()
    state.http_request_rules.append(ReturnRule(answer.status, response, condition, line.location,
                                               closes=answer.closes))


def _http_error(parser, state: ProxyState, args, line, negated) -> None:
    try:
        answer = parse_answer(_texts(args), "http-error", ("status",), _errorfile_reader(parser),
                              limit=_head_budget(parser), error_sections=parser.carry.http_errors)
    except AnswerError as exc:
        raise ParseError(str(exc)) from None
    if answer.warning:
        parser.diagnostics.warning(line.location, answer.warning)
    if answer.status not in ERRORFILE_CODES:
        raise ParseError(
            f"http-error status {answer.status} cannot be customised: expected one of "
            f"{', '.join(map(str, sorted(ERRORFILE_CODES)))}")
    if answer.default_errorfiles:
        state.errorfiles.pop(answer.status, None)
    elif answer.response is None:
        raise ParseError("'http-error' expects errorfile, file or string (with content-type), "
                         "or default-errorfiles")
    else:
        state.errorfiles[answer.status] = answer.response


def _errorfile_reader(parser):
    """read_errorfile for parse_answer, within this configuration's buffer."""
    limit = _head_budget(parser)

    def read(path: str) -> bytes:
        try:
            return read_errorfile(path, limit)
        except ParseError as exc:
            raise AnswerError(str(exc)) from None
    return read


def _head_budget(parser) -> int:
    """The largest head the buffers hold, with the tune settings read so far
    (the global section comes first, as HAProxy expects)."""
    values = parser.carry.global_.values
    return framing.head_budget(values.get("bufsize", framing.HAPROXY_BUFSIZE),
                               values.get("maxrewrite", framing.HAPROXY_MAXREWRITE))


def _redirect(parser, state: ProxyState, args, line, negated) -> None:
    state.redirects.append(_parse_redirect(state, args, line, "redirect"))


def _http_request_redirect(parser, state: ProxyState, args, line, negated) -> None:
    """Evaluated in order among the http-request rules (the legacy `redirect`
    lines come after all of them), as in HAProxy."""
    rule = _parse_redirect(state, args, line, "http-request redirect")
    if "%" in rule.target:
        raise ParseError("log-format values (%[...], %H ...) in http-request redirect targets are "
                         "not supported by haply: give a literal scheme, location or prefix")
    state.http_request_rules.append(rule)


def _parse_redirect(state: ProxyState, args, line, keyword: str) -> Redirect:
    before, condition = _condition(state, args)
    texts = _texts(before)
    if len(texts) < 2 or texts[0] not in ("scheme", "location", "prefix"):
        raise ParseError(f"'{keyword}' expects scheme|location|prefix followed by a target")
    kind, target, rest = texts[0], texts[1], texts[2:]
    code, options = 302, []
    i = 0
    while i < len(rest):
        word = rest[i]
        if word == "code" and i + 1 < len(rest):
            code = parse_int(rest[i + 1], "redirect code")
            if code not in REDIRECT_CODES:
                raise ParseError(f"invalid redirect code {code}: expected 301, 302, 303, 307 or 308")
            i += 2
        elif word in ("drop-query", "append-slash", "ignore-empty"):
            options.append(word)
            i += 1
        elif word in ("set-cookie", "clear-cookie"):
            raise ParseError(f"redirect option '{word}' is not supported by haply")
        else:
            raise ParseError(f"unexpected '{word}' in redirect: expected code N, drop-query, append-slash or if|unless")
    return Redirect(kind, target, code, tuple(options), condition, line.location)


def errorfile_line(parser, texts: list[str]) -> tuple[int, bytes]:
    """`errorfile CODE FILE` (a proxy's or an http-errors section's): the
    status and the response, read and checked."""
    if len(texts) != 2:
        raise ParseError("'errorfile' expects a status code and a file name")
    code = parse_int(texts[0], "errorfile status code")
    if code not in ERRORFILE_CODES:
        raise ParseError(
            f"errorfile status {code} cannot be customised: expected one of {', '.join(map(str, sorted(ERRORFILE_CODES)))}"
        )
    return code, read_errorfile(texts[1], _head_budget(parser))


def _errorfile(parser, state: ProxyState, args, line, negated) -> None:
    code, response = errorfile_line(parser, _texts(args))
    state.errorfiles[code] = response


def _errorfiles(parser, state: ProxyState, args, line, negated) -> None:
    """`errorfiles NAME [CODE...]`: an http-errors section's pages (those of
    the codes listed), over the proxy's so far."""
    texts = _texts(args)
    if not texts:
        raise ParseError("'errorfiles' expects the name of an http-errors section, then optionally status codes")
    files = parser.carry.http_errors.get(texts[0])
    if files is None:
        raise ParseError(f"unknown http-errors section '{texts[0]}'")
    codes = [parse_int(text, "errorfiles status code") for text in texts[1:]] or sorted(files)
    for code in codes:
        if code in files:
            state.errorfiles[code] = files[code]
        else:  # as HAProxy warns
            parser.diagnostics.warning(line.location, f"status {code} is not declared in http-errors "
                                       f"section '{texts[0]}'")


def _errorloc(keyword: str, redirect_code: int):
    """`errorloc|errorloc302|errorloc303 <code> <url>`: the error is answered
    with a redirect (no body, the connection kept), as HAProxy writes it."""
    reason = "Found" if redirect_code == 302 else "See Other"

    def handler(parser, state: ProxyState, args, line, negated) -> None:
        texts = _texts(args)
        if len(texts) != 2 or not texts[1]:
            raise ParseError(f"'{keyword}' expects a status code and a URL")
        code = parse_int(texts[0], f"{keyword} status code")
        if code not in ERRORFILE_CODES:
            raise ParseError(f"{keyword} status {code} cannot be customised: expected one of "
                             f"{', '.join(map(str, sorted(ERRORFILE_CODES)))}")
        url = texts[1].encode("latin-1", "replace")
        if re.search(rb"[\x00-\x20\x7f]", url):
            raise ParseError(f"{keyword}: the URL '{texts[1]}' contains a space or a control character")
        state.errorfiles[code] = (b"HTTP/1.1 %d %s\r\ncache-control: no-cache\r\ncontent-length: 0\r\n"
                                  b"location: %s\r\n\r\n" % (redirect_code, reason.encode(), url))
    return handler


def read_errorfile(path: str, limit: int = MAX_BYTES) -> bytes:
    """The bytes of an errorfile, checked to be a plausible HTTP response."""
    try:
        data = read_limited(path, "errorfile", limit)
    except AnswerError as exc:
        raise ParseError(str(exc)) from None
    if not re.match(rb"HTTP/1\.[01] [1-5][0-9][0-9]", data):
        raise ParseError(
            f"errorfile '{path}' does not look like an HTTP response: it must start with a status line "
            "such as 'HTTP/1.0 503 Service Unavailable'"
        )
    if b"\r\n\r\n" not in data and b"\n\n" not in data:
        raise ParseError(f"errorfile '{path}' has no end of headers (an empty line)")
    return render_errorfile(data)


COOKIE_MODES = ("insert", "rewrite", "prefix")
COOKIE_FLAGS = ("indirect", "nocache", "postonly", "preserve", "httponly", "secure")
COOKIE_UNSUPPORTED = ("maxidle", "maxlife", "dynamic")


def _cookie(parser, state: ProxyState, args, line, negated) -> None:
    texts = _texts(args)
    if not texts:
        raise ParseError("'cookie' expects a cookie name")
    name, words = texts[0], texts[1:]
    if not re.fullmatch(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+", name):
        raise ParseError(f"cookie name '{name}' is not a valid cookie name (RFC 6265 token)")
    mode = "passive"
    flags: dict[str, bool] = {}
    domains: list[str] = []
    attrs: list[str] = []
    i = 0
    while i < len(words):
        word = words[i]
        if word in COOKIE_MODES:
            if mode != "passive" and mode != word:
                raise ParseError(f"cookie '{name}': '{mode}' and '{word}' cannot be combined")
            mode = word
        elif word in COOKIE_FLAGS:
            flags[word] = True
        elif word in ("domain", "attr"):
            if i + 1 >= len(words):
                raise ParseError(f"cookie '{name}': '{word}' needs a value")
            value = words[i + 1]
            if any(c in value for c in ";\r\n") or any(ord(c) < 32 for c in value):
                raise ParseError(f"cookie '{name}': {word} '{value}' may not contain ';' or control characters")
            (domains if word == "domain" else attrs).append(value)
            i += 1
        elif word in COOKIE_UNSUPPORTED:
            raise ParseError(f"cookie option '{word}' is not supported by haply")
        else:
            raise ParseError(f"unknown cookie option '{word}': expected insert, rewrite, prefix, "
                             f"{', '.join(COOKIE_FLAGS)}, domain or attr")
        i += 1
    # HAProxy's rules for combining them (its cookie-options table).
    if flags.get("indirect") and mode == "rewrite":
        raise ParseError(f"cookie '{name}': 'indirect' cannot be used with 'rewrite'")
    if flags.get("preserve") and mode != "insert" and not flags.get("indirect"):
        raise ParseError(f"cookie '{name}': 'preserve' needs 'insert' or 'indirect'")
    if mode != "insert":
        for word in ("nocache", "postonly", "httponly", "secure"):
            if flags.get(word):
                raise ParseError(f"cookie '{name}': '{word}' only applies to 'insert'")
        if domains or attrs:
            raise ParseError(f"cookie '{name}': 'domain' and 'attr' only apply to 'insert'")
    state.cookie = CookiePersistence(
        name=name, mode=mode, domains=tuple(domains), attrs=tuple(attrs), location=line.location,
        **{flag: flags.get(flag, False) for flag in COOKIE_FLAGS})


STICK_TABLE_TYPES = ("ip", "ipv6", "integer", "string", "binary")
STICK_TABLE_UNSUPPORTED = ("srvkey", "write-to", "recv-only")
STICK_PATTERNS = ("src", "dst", "src_port", "dst_port")
# Keys read from the request (haply.proxy.counters.fetch_for); the integer ones
# are hashes, the binary ones a hash and the client's address.
STICK_REQUEST_KEYS = ("base", "base32", "base32+src", "path", "url", "url32", "url32+src")
STICK_INTEGER_KEYS = ("src_port", "dst_port", "base32", "url32")
# Keys read from a mode tcp connection's first bytes (haply.proxy.payload),
# which a stick rule then waits for as tcp-request content rules do.
STICK_PAYLOAD_KEYS = ("req.ssl_sni", "req_ssl_sni")
STICK_FUNCTIONS = re.compile(r"(req\.hdr|hdr|req\.cook|cookie)\(([^(),]+)\)")
MAX_STICK_TABLE_EXPIRE = 2**31 / 1000  # HAProxy's limit: "slightly above 24 days"


def _stick_table(parser, state: ProxyState, args, line, negated) -> None:
    words = _texts(args)
    kind = length = size = expire = peers = None
    nopurge = False
    store: dict[str, float | None] = {}
    i = 0
    while i < len(words):
        word = words[i]
        value = words[i + 1] if i + 1 < len(words) else None
        if word == "nopurge":
            nopurge, i = True, i + 1
            continue
        if word in STICK_TABLE_UNSUPPORTED:
            raise ParseError(f"stick-table option '{word}' is not supported by haply")
        if word not in ("type", "len", "size", "expire", "store", "peers"):
            raise ParseError(f"unknown stick-table option '{word}': expected type, len, size, expire, "
                             "nopurge, store or peers")
        if value is None:
            raise ParseError(f"stick-table '{word}' needs a value")
        if word == "store":
            for item in value.split(","):
                name, period = _stored_data(item)
                store[name] = period
        elif word == "type":
            if value not in STICK_TABLE_TYPES:
                raise ParseError(f"stick-table type '{value}': expected ip, ipv6, integer, string or binary")
            kind = value
        elif word == "peers":
            peers = value
        elif word == "len":
            length = parse_int(value, "stick-table len", 1, 65535)
        elif word == "size":
            multiplier = {"k": 2**10, "m": 2**20, "g": 2**30}.get(value[-1:].lower(), 1)
            size = parse_int(value[:-1] if multiplier > 1 else value, "stick-table size", 1) * multiplier
        else:
            expire = parse_time(value, "stick-table expire")
            if not 0 < expire <= MAX_STICK_TABLE_EXPIRE:
                raise ParseError(f"stick-table expire {value} must be above 0 and at most 24 days")
        i += 2
    if kind is None or size is None:
        raise ParseError("stick-table needs 'type' and 'size', as in 'stick-table type ip size 1000'")
    if length is not None and kind not in ("string", "binary"):
        raise ParseError("stick-table 'len' only applies to types string and binary")
    store.pop("server_id", None)  # stick rules store it anyway
    state.stick_table = StickTableSpec(state.name, kind, size, length or 32, expire, nopurge, line.location,
                                       tuple(store.items()), peers)


def _check_key(key: str, what: str) -> None:
    """A stick rule's pattern or a track-sc key: one of the samples haply reads."""
    stick = what == "stick pattern"  # a track-sc key is taken before the bytes are inspected
    if key in STICK_PAYLOAD_KEYS and stick:
        return
    if key not in STICK_PATTERNS and key not in STICK_REQUEST_KEYS and not STICK_FUNCTIONS.fullmatch(key):
        raise ParseError(f"{what} '{key}' is not supported by haply (supported: src, dst, src_port, dst_port, "
                         f"{', '.join(STICK_REQUEST_KEYS)}, req.hdr(NAME), req.cook(NAME)"
                         f"{', req.ssl_sni' if stick else ''})")


STORED_DATA = re.compile(r"([a-z0-9_]+)(?:\((.*)\))?")


def _stored_data(item: str) -> tuple[str, float | None]:
    """One data type of `store`: its name, and its period for a rate."""
    match = STORED_DATA.fullmatch(item)
    name = match.group(1) if match else item
    if name not in STICK_DATA_TYPES:
        raise ParseError(f"unknown stick-table data type '{item}': expected one of "
                         f"{', '.join(STICK_COUNTED)}")
    if name not in STICK_COUNTED and name != "server_id":
        raise ParseError(f"stick-table data type '{name}' is not supported by haply "
                         f"(supported: {', '.join(STICK_COUNTED)})")
    argument = match.group(2)
    if STICK_DATA_TYPES[name]:
        if not argument:
            raise ParseError(f"stick-table data type '{name}' needs a period, as in {name}(10s)")
        period = parse_time(argument, f"{name} period")
        if period <= 0:
            raise ParseError(f"the period of '{name}' must be above 0")
        return name, period
    if argument is not None:
        raise ParseError(f"stick-table data type '{name}' takes no argument")
    return name, None


STICKY_COUNTERS = "sc0, sc1 and sc2"
COUNTER_ACTION = re.compile(r"sc-(inc-gpc0|inc-gpc1|set-gpt0)\(([0-9]+)\)")


def _sticky_counter(text: str, action: str) -> int:
    if not text.isdigit() or int(text) >= STICKY_SLOTS:
        raise ParseError(f"'{action}': there is no sticky counter '{text}' ({STICKY_COUNTERS} exist)")
    return int(text)


def _counter_rule(words: list[str], condition, state: ProxyState, line, http: bool) -> CounterRule:
    """`track-scN KEY [table NAME]`, `sc-inc-gpc0(N)`, `sc-inc-gpc1(N)` or
    `sc-set-gpt0(N) VALUE`, as an http-request (http) or tcp-request action."""
    action = words[0]
    if action.startswith("track-sc"):
        slot = _sticky_counter(action[8:], action)
        if len(words) < 2:
            raise ParseError(f"'{action}' expects a key such as src")
        key = words[1]
        _check_key(key, "track key")
        if not http and key not in STICK_PATTERNS:
            raise ParseError(f"'{action} {key}' reads the HTTP request, which a tcp-request connection or "
                             "session rule does not have: use http-request track-sc")
        rest, table = words[2:], state.name
        if rest[:1] == ["table"]:
            if len(rest) < 2:
                raise ParseError("'table' needs a table name")
            table, rest = rest[1], rest[2:]
        if rest:
            raise ParseError(f"unexpected '{rest[0]}' after '{action} {key}': expected table NAME "
                             "or if|unless CONDITION")
        return CounterRule("track", slot, key, table, 0, condition, line.location)
    match = COUNTER_ACTION.fullmatch(action)
    if match is None:
        raise ParseError(f"'{action}' expects a sticky counter number, as in sc-inc-gpc0(0)")
    kind, slot = match.group(1), _sticky_counter(match.group(2), action)
    value = 0
    if kind == "set-gpt0":
        if len(words) != 2:
            raise ParseError(f"'{action}' expects an integer value")
        if not words[1].isdigit():
            raise ParseError(f"'{action} {words[1]}': only an integer value is supported by haply "
                             "(sample expressions are not)")
        value = parse_int(words[1], action, 0, 2**32 - 1)
    elif len(words) > 1:
        raise ParseError(f"unexpected '{words[1]}' after '{action}': expected if|unless CONDITION")
    return CounterRule(kind, slot, "", "", value, condition, line.location)


def _http_counter(parser, state: ProxyState, args, line, negated) -> None:
    """http-request track-scN, sc-inc-gpc0|1(N), sc-set-gpt0(N)."""
    before, condition = _condition(state, args)
    words = [line.words[1].text, *_texts(before)]
    state.http_request_rules.append(_counter_rule(words, condition, state, line, http=True))


def _use_server(parser, state: ProxyState, args, line, negated) -> None:
    before, condition = _condition(state, args)
    if condition is None:
        raise ParseError("'use-server' expects a server name followed by if|unless CONDITION")
    name = _one("use-server", before, "a server name followed by if|unless CONDITION")
    if "%[" in name:
        raise ParseError("dynamic server names (log-format) are not supported by haply")
    state.use_server_rules.append(UseServerRule(name, condition, line.location))


def _stick(parser, state: ProxyState, args, line, negated) -> None:
    before, condition = _condition(state, args)
    words = _texts(before)
    if not words or words[0] not in ("on", "match", "store-request", "store-response"):
        raise ParseError("'stick' expects on, match or store-request, then a pattern")
    kind = words[0]
    if kind == "store-response":
        raise ParseError("'stick store-response' is not supported by haply")
    if len(words) < 2:
        raise ParseError(f"'stick {kind}' expects a pattern such as src or dst")
    pattern = words[1]
    _check_key(pattern, "stick pattern")
    rest = words[2:]
    if rest[:1] == ["table"]:
        if len(rest) < 2:
            raise ParseError("'table' needs a table name")
        if rest[1] != state.name:
            raise ParseError(f"stick rules on another proxy's table ('{rest[1]}') are not supported by haply")
        rest = rest[2:]
    if rest:
        raise ParseError(f"unexpected '{rest[0]}' after the stick pattern: expected table NAME or if|unless CONDITION")
    state.stick_rules.append(StickRule(kind, pattern, condition, line.location))


MAX_COOKIE_CAPTURE = 63  # HAProxy's tune.http.cookielen default


def _capture(parser, state: ProxyState, args, line, negated) -> None:
    words = _texts(args)
    if words[:2] in (["request", "header"], ["response", "header"]):
        kind, rest = words[0], words[2:]
    elif words[:1] == ["cookie"]:
        kind, rest = "cookie", words[1:]
    else:
        raise ParseError("'capture' expects 'request header', 'response header' or 'cookie'")
    if len(rest) != 3 or rest[1] != "len":
        what = "cookie" if kind == "cookie" else f"{kind} header"
        raise ParseError(f"'capture {what}' expects a name and 'len N'")
    name = rest[0]
    length = parse_int(rest[2], "capture len", 1, MAX_COOKIE_CAPTURE if kind == "cookie" else 65535)
    if kind == "cookie" and any(c.kind == "cookie" for c in state.captures):
        raise ParseError("only one 'capture cookie' is allowed per frontend")
    state.captures.append(Capture(kind, name, length, line.location))


LOG_LEVELS = ("emerg", "alert", "crit", "err", "warning", "notice", "info", "debug", "silent")


def _log_level_rule(family: str):
    """`http-request|http-response set-log-level <level>`."""
    def handler(parser, state: ProxyState, args, line, negated) -> None:
        before, condition = _condition(state, args)
        words = _texts(before)
        if len(words) != 1 or words[0] not in LOG_LEVELS:
            raise ParseError(f"'{family} set-log-level' expects one of {', '.join(LOG_LEVELS)}, "
                             "then optionally if|unless CONDITION")
        rules = state.http_request_rules if family == "http-request" else state.http_response_rules
        rules.append(LogLevelRule(words[0], condition, line.location))
    return handler


def _cache_rule(family: str, action: str):
    """`http-request cache-use NAME` and `http-response cache-store NAME`
    [if|unless CONDITION]: the name is checked against the cache sections
    once every file is read (`_check_cache_references`)."""
    def handler(parser, state: ProxyState, args, line, negated) -> None:
        before, condition = _condition(state, args)
        words = _texts(before)
        if not words:
            raise ParseError(f"'{family} {action}' expects a cache name")
        if len(words) > 1:
            raise ParseError(f"'{family} {action}' expects either 'if' or 'unless' followed by a "
                             f"condition but found '{words[1]}'")
        rules = state.http_request_rules if family == "http-request" else state.http_response_rules
        rules.append(CacheRule(action, words[0], condition, line.location))
    return handler


def _filter_cache(parser, state: ProxyState, args, line, negated) -> None:
    """`filter cache NAME`: what cache-use and cache-store imply; HAProxy
    refuses the same cache declared twice in a proxy."""
    name = _one("filter cache", args, "the name of a cache section")
    if any(rule.cache == name for rule in state.cache_filters):
        raise ParseError(f"'filter' : '{state.name}: multiple explicit declarations of the cache "
                         f"filter '{name}''")
    state.cache_filters.append(CacheRule("filter", name, None, line.location))


def _declare(parser, state: ProxyState, args, line, negated) -> None:
    """`declare capture request|response len N`: a capture slot for capture rules."""
    words = _texts(args)
    if len(words) != 4 or words[0] != "capture" or words[1] not in ("request", "response") \
            or words[2] != "len":
        raise ParseError("'declare' expects 'capture request len N' or 'capture response len N'")
    state.captures.append(Capture(words[1], "", parse_int(words[3], "declare capture len", 1, 65535),
                                  line.location))


def _capture_rule(family: str):
    """`http-request capture <sample> len N|id N`, `http-response capture <sample> id N`."""
    side = "request" if family == "http-request" else "response"

    def handler(parser, state: ProxyState, args, line, negated) -> None:
        from haply.proxy import samples  # it imports the configuration model

        before, condition = _condition(state, args)
        words = _texts(before)
        forms = "len N or id N" if side == "request" else "id N"
        if len(words) != 3 or words[1] not in ("len", "id") or (side == "response" and words[1] == "len"):
            raise ParseError(f"'{family} capture' expects a sample expression, then {forms}")
        try:
            samples.compile_expression(words[0], response=side == "response")
        except samples.SampleError as error:
            raise ParseError(f"'{family} capture': {error}") from None
        slots = [capture for capture in state.captures if capture.kind == side]
        if words[1] == "len":
            length = parse_int(words[2], f"{family} capture len", 1, 65535)
            state.captures.append(Capture(side, "", length, line.location))
            slot = len(slots)
        else:
            slot = parse_int(words[2], f"{family} capture id", 0)
            if slot >= len(slots):
                raise ParseError(f"'{family} capture ... id {slot}': '{state.name}' has {len(slots)} {side} "
                                 f"capture slot(s) so far (declare capture {side} len N makes one)")
            length = slots[slot].length
        rules = state.http_request_rules if side == "request" else state.http_response_rules
        rules.append(CaptureRule(side, slot, words[0], length, condition, line.location))
    return handler


HTTP_REUSE = ("never", "safe", "aggressive", "always")


def _http_reuse(parser, state: ProxyState, args, line, negated) -> None:
    mode = _one("http-reuse", args, "never, safe, aggressive or always")
    if mode not in HTTP_REUSE:
        raise ParseError(f"'http-reuse {mode}': expected never, safe, aggressive or always")
    state.http_reuse = mode


COMPRESSION_ALGORITHMS = ("identity", "gzip", "deflate", "raw-deflate")


def _compression(what: str) -> Handler:
    """`compression algo|type|offload`. HAProxy 2.6 puts each algorithm or type
    in front of its list, after what the section inherited, and ignores
    offload in defaults with a warning; haply keeps the same lists."""

    def handler(parser, state: ProxyState, args, line, negated) -> None:
        words = _texts(args)
        current = state.compression or Compression()
        if current.location == NOWHERE:
            current = replace(current, location=line.location)
        if what == "offload":
            if words:
                parser.diagnostics.warning(line.location, f"'compression offload' takes no argument; "
                                           f"'{words[0]}' is ignored (as HAProxy ignores it)")
            if state.kind == "defaults":
                parser.diagnostics.warning(line.location, "'compression offload' is ignored in a "
                                           "defaults section (as HAProxy ignores it): set it in "
                                           "the frontend, listen or backend")
            else:
                current = replace(current, offload=True)
        elif what == "algo":
            if not words:
                raise ParseError("'compression algo' expects one or more algorithms: "
                                 + ", ".join(COMPRESSION_ALGORITHMS))
            for word in words:
                if word not in COMPRESSION_ALGORITHMS:
                    raise ParseError(f"'compression algo': '{word}' is not a supported algorithm "
                                     f"(expected {', '.join(COMPRESSION_ALGORITHMS)})")
            current = replace(current, algorithms=(*reversed(words), *current.algorithms))
        else:
            if not words:
                raise ParseError("'compression type' expects one or more MIME types such as text/html")
            current = replace(current, types=(*reversed(words), *current.types))
        state.compression = current

    return handler


TCP_REQUEST_STAGES = ("connection", "session", "content")


def _tcp_request(parser, state: ProxyState, args, line, negated) -> None:
    before, condition = _condition(state, args)
    words = _texts(before)
    if words[:1] == ["inspect-delay"]:
        if len(words) != 2:
            raise ParseError("'tcp-request inspect-delay' expects a time")
        state.inspect_delay = parse_time(words[1], "tcp-request inspect-delay")
        return
    if not words or words[0] not in TCP_REQUEST_STAGES:
        raise ParseError("'tcp-request' expects connection, session, content or inspect-delay")
    stage = words[0]
    if state.kind == "backend" and stage != "content":
        raise ParseError(f"'tcp-request {stage}' is not allowed in a backend, which has no "
                         "frontend capability (HAProxy refuses it too): put the rule in the frontend")
    if len(words) < 2:
        raise ParseError(f"'tcp-request {stage}' expects accept or reject")
    action = words[1]
    if action == "expect-proxy":
        _expect_proxy(stage, words, condition, line, state)
        return
    if action.startswith(("track-sc", "sc-")):
        counter = _counter_rule(words[1:], condition, state, line, http=False)
        state.tcp_request_rules.append(TcpRequestRule(stage, "counter", condition, line.location, counter))
        return
    if action not in ("accept", "reject"):
        raise ParseError(f"'tcp-request {stage} {action}' is not supported by haply "
                         "(accept, reject, track-sc0|1|2, sc-inc-gpc0|1, sc-set-gpt0 and, in "
                         "tcp-request connection, expect-proxy layer4 are)")
    if len(words) > 2:
        raise ParseError(f"unexpected '{words[2]}' after 'tcp-request {stage} {action}': "
                         "expected if|unless CONDITION")
    state.tcp_request_rules.append(TcpRequestRule(stage, action, condition, line.location))


def _expect_proxy(stage: str, words: list[str], condition, line, state: ProxyState) -> None:
    """`tcp-request connection expect-proxy layer4 [if|unless COND]`: the
    connections the condition picks (on their real addresses) start with a
    PROXY header, as on an `accept-proxy` bind line."""
    if stage != "connection":
        raise ParseError(f"'tcp-request {stage} expect-proxy' is only valid in 'tcp-request connection': "
                         "the header is read before anything else")
    if words[2:] != ["layer4"]:
        raise ParseError("'tcp-request connection expect-proxy' expects 'layer4' (then if|unless CONDITION)"
                         + (f", not '{' '.join(words[2:])}'" if words[2:] else ""))
    state.tcp_request_rules.append(TcpRequestRule(stage, "expect-proxy", condition, line.location))


def _monitor(parser, state: ProxyState, args, line, negated) -> None:
    """`monitor fail if|unless CONDITION`: the monitor-uri answers 503 while
    the condition holds (several lines: any of them)."""
    if not args or args[0].text != "fail":
        raise ParseError("'monitor' expects 'fail if|unless CONDITION', as in "
                         "'monitor fail if { nbsrv(be) lt 1 }'")
    before, condition = _condition(state, args[1:])
    if before or condition is None:
        raise ParseError("'monitor fail' expects 'if' or 'unless' and a condition"
                         + (f" (got '{before[0].text}')" if before else ""))
    state.monitor_fail.append(condition)


def _monitor_uri(parser, state: ProxyState, args, line, negated) -> None:
    uri = _one("monitor-uri", args, "a URI")
    if not uri.startswith("/"):
        raise ParseError(f"monitor-uri '{uri}' must start with '/'")
    state.monitor_uri = uri


def _format_argument(keyword: str, args) -> str:
    """The log-format string of a `log-format` or `unique-id-format` line,
    checked here so that `haply -c` names the line of a wrong one."""
    # imported here: the log formats read the configuration model
    from haply.logs.formats import FormatError, parse_format

    # HAProxy's words: an empty string is no format, and several words
    # are a format whose spaces were meant to be escaped (or quoted)
    if not args or not args[0].text:
        raise ParseError(f"'{keyword}' expects a log-format string (got nothing)")
    if len(args) > 1:
        raise ParseError(f"'{keyword}' expects only one argument, don't forget to escape spaces!")
    fmt = args[0].text
    try:
        parse_format(fmt)
    except FormatError as exc:
        raise ParseError(f"'{keyword}': {exc}") from None
    return fmt


def _log_format(parser, state: ProxyState, args, line, negated) -> None:
    from haply.logs.formats import request_head_fetches

    fmt = _format_argument("log-format", args)
    for name in request_head_fetches(fmt):  # HAProxy's words
        raise ParseError(f"'log-format': sample fetch '{name}' may not be reliably used here "
                         "because it needs 'HTTP request headers' which is not available here")
    state.log_format = fmt
    state.log_format_location = line.location


def _unique_id_format(parser, state: ProxyState, args, line, negated) -> None:
    state.unique_id_format = _format_argument("unique-id-format", args)
    state.unique_id_format_location = line.location


def _unique_id_header(parser, state: ProxyState, args, line, negated) -> None:
    name = _one("unique-id-header", args, "a header name")
    if not re.fullmatch(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+", name):
        raise ParseError(f"'unique-id-header': '{name}' is not a header name")
    state.unique_id_header = name


# -- options


def _option(name: str) -> Handler:
    def handler(parser, state: ProxyState, args, line, negated) -> None:
        _apply_option(state, name, _texts(args), line, negated)
    return handler


# Options HAProxy 2.6 refuses to negate, in a defaults section as in a proxy
# (`haproxy -c`: "negation/default is not supported for option 'httpchk'."):
# the check types, the log formats, forwardfor and originalto, tcpka. A check
# type inherited from defaults so cannot be taken back by `no option`; another
# `option ...-check` line replaces it.
NOT_NEGATABLE = frozenset({
    "httpchk", "mysql-check", "redis-check", "smtpchk", "pgsql-check", "ldap-check",
    "tcp-check", "ssl-hello-chk", "external-check", "spop-check",
    "httplog", "httpslog", "tcplog", "forwardfor", "originalto", "tcpka",
    "http-restrict-req-hdr-names",
})


def _apply_option(state: ProxyState, name: str, values: list[str], line: Line, negated: bool) -> None:
    if name == "tcp-smart-accept":  # on by default in mode http: its `no` is a setting too
        state.smart_accept = not negated
    if negated:  # never one of NOT_NEGATABLE: the parser refused those
        if values:
            raise ParseError(f"'no option {name}' takes no argument")
        state.options.discard(name)
        if name in ("http-keep-alive", "http-server-close", "httpclose") and state.http_connection_mode != "keep-alive":
            state.http_connection_mode = "keep-alive"
        return
    handler = OPTION_HANDLERS.get(name)
    if handler is not None:
        handler(state, values, line)
    elif values:
        raise ParseError(f"'option {name}' takes no argument (got '{values[0]}')")
    state.options.add(name)


def _option_httplog(state: ProxyState, values: list[str], line: Line) -> None:
    if values not in ([], ["clf"]):
        raise ParseError(f"unexpected '{values[0]}' after option httplog: expected clf or nothing")
    state.log_format = "httplog clf" if values else "httplog"


def _option_tcplog(state: ProxyState, values: list[str], line: Line) -> None:
    if values:
        raise ParseError(f"'option tcplog' takes no argument (got '{values[0]}')")
    state.log_format = "tcplog"


def _option_redispatch(state: ProxyState, values: list[str], line: Line) -> None:
    if len(values) > 1:
        raise ParseError(f"unexpected '{values[1]}' after option redispatch: expected one interval")
    every = -1
    if values:
        try:
            every = int(values[0])
        except ValueError:
            raise ParseError(f"option redispatch expects an integer interval, not '{values[0]}'") from None
    state.redispatch_every = every  # 0 turns redispatching off, as in HAProxy


def _option_connection_mode(mode: str):
    def handler(state: ProxyState, values: list[str], line: Line) -> None:
        if values:
            raise ParseError(f"unexpected '{values[0]}'")
        state.http_connection_mode = mode
        state.options -= {"http-keep-alive", "http-server-close", "httpclose"}
    return handler


def _option_forwardfor(state: ProxyState, values: list[str], line: Line) -> None:
    header, network, if_none = _address_field_words("forwardfor", values, "X-Forwarded-For", True)
    state.forward_for = ForwardFor(header, network, if_none)


def _option_originalto(state: ProxyState, values: list[str], line: Line) -> None:
    header, network, _ = _address_field_words("originalto", values, "X-Original-To", False)
    state.original_to = OriginalTo(header, network)


def _address_field_words(option: str, values: list[str], header: str,
                         allow_if_none: bool) -> tuple[str, str | None, bool]:
    """The words of `option forwardfor` / `option originalto`: [except NET]
    [header NAME], and [if-none] for forwardfor only (HAProxy refuses it for
    originalto). Returns (header, network or None, if_none)."""
    network, if_none = None, False
    i = 0
    while i < len(values):
        word = values[i]
        if word == "except" and i + 1 < len(values):
            try:
                ipaddress.ip_network(values[i + 1], strict=False)
            except ValueError:
                raise ParseError(f"invalid network '{values[i + 1]}' after 'except': expected ADDR[/MASK]") from None
            network = values[i + 1]
            i += 2
        elif word == "header" and i + 1 < len(values):
            header = values[i + 1]
            i += 2
        elif word == "if-none" and allow_if_none:
            if_none = True
            i += 1
        else:
            expected = "except NET, header NAME or if-none" if allow_if_none else "except NET or header NAME"
            raise ParseError(f"unexpected '{word}' in option {option}: expected {expected}")
    return header, network, if_none


def _option_httpchk(state: ProxyState, values: list[str], line: Line) -> None:
    if len(values) > 3:
        raise ParseError("'option httpchk' expects at most a method, a URI and a version")
    method, uri, version = "OPTIONS", "/", "HTTP/1.0"
    if len(values) == 1:
        uri = values[0]
    elif len(values) >= 2:
        method, uri = values[0], values[1]
    headers: tuple[tuple[str, str], ...] = ()
    if len(values) == 3:
        # The pre-2.2 trick "HTTP/1.1\r\nHost:\ x" carries headers in the version.
        version, *lines = values[2].split("\r\n")
        pairs = []
        for text in lines:
            if text:
                name, _, value = text.partition(":")
                pairs.append((name.strip(), value.strip()))
        headers = tuple(pairs)
    if not uri.startswith("/") and uri != "*":
        raise ParseError(f"invalid httpchk URI '{uri}': expected a path starting with '/'")
    state.http_check = HttpCheck(method, uri, version, headers)
    state.check_kind = "http"


def _option_mysql_check(state: ProxyState, values: list[str], line: Line) -> None:
    user, post41 = None, False
    if values:
        if values[0] != "user" or len(values) < 2 or values[2:] not in ([], ["post-41"]):
            raise ParseError("'option mysql-check' expects nothing or 'user NAME [post-41]'")
        user, post41 = values[1], len(values) == 3
    state.mysql_check_user, state.mysql_check_post41 = user, post41
    state.check_kind = "mysql"


def _option_pgsql_check(state: ProxyState, values: list[str], line: Line) -> None:
    # HAProxy 2.6's own wording for each mistake
    if not values or values[0] != "user":
        if values:
            raise ParseError("'option pgsql-check' only supports optional values: 'user'")
        raise ParseError("'option pgsql-check' expects 'user <username>' as argument")
    if len(values) < 2:
        raise ParseError("'option pgsql-check' expects 'user <username>' as argument")
    if len(values) > 2:
        raise ParseError(f"'option pgsql-check' cannot handle unexpected argument '{values[2]}'")
    state.pgsql_check_user = values[1]
    state.check_kind = "pgsql"


def _option_smtpchk(state: ProxyState, values: list[str], line: Line) -> None:
    """[HELO|EHLO <domain>]: other words are accepted and give the default
    greeting, as in HAProxy (haply.health.dialogues.smtp_hello)."""
    if len(values) > 2:
        raise ParseError(f"'option smtpchk' cannot handle unexpected argument '{values[2]}'")
    state.smtp_check_hello = tuple(values)
    state.check_kind = "smtp"


def _option_check_kind(option: str, kind: str):
    def handler(state: ProxyState, values: list[str], line: Line) -> None:
        if values:
            raise ParseError(f"'option {option}' cannot handle unexpected argument '{values[0]}'")
        state.check_kind = kind
    return handler


def _option_restrict_header_names(state: ProxyState, values: list[str], line: Line) -> None:
    if values not in (["preserve"], ["delete"], ["reject"]):
        shown = values[0] if values else ""
        raise ParseError(f"invalid parameter '{shown}'. option 'http-restrict-req-hdr-names' "
                         "expects 'preserve', 'reject' or 'delete' option.")
    state.restrict_header_names = values[0]


OPTION_HANDLERS: dict[str, Callable[[ProxyState, list[str], Line], None]] = {
    "httplog": _option_httplog,
    "tcplog": _option_tcplog,
    "http-keep-alive": _option_connection_mode("keep-alive"),
    "http-server-close": _option_connection_mode("server-close"),
    "httpclose": _option_connection_mode("close"),
    "forwardfor": _option_forwardfor,
    "originalto": _option_originalto,
    "redispatch": _option_redispatch,
    "httpchk": _option_httpchk,
    "mysql-check": _option_mysql_check,
    "ssl-hello-chk": _option_check_kind("ssl-hello-chk", "ssl-hello"),
    "tcp-check": _option_check_kind("tcp-check", "tcp-check"),
    "redis-check": _option_check_kind("redis-check", "redis"),
    "smtpchk": _option_smtpchk,
    "pgsql-check": _option_pgsql_check,
    "ldap-check": _option_check_kind("ldap-check", "ldap"),
    "external-check": _option_check_kind("external-check", "external"),
    "http-restrict-req-hdr-names": _option_restrict_header_names,
}


# -- health-check rules


def _http_check_send(parser, state: ProxyState, args, line, negated) -> None:
    texts = _texts(args)
    base = state.http_check or HttpCheck()
    if not state.own_http_check_send:
        base = replace(base, headers=(), body="")
        state.own_http_check_send = True
    values: dict = {}
    headers = list(base.headers)
    i = 0
    while i < len(texts):
        word = texts[i]
        if word in ("meth", "uri", "ver", "body") and i + 1 < len(texts):
            values[{"meth": "method", "uri": "uri", "ver": "version", "body": "body"}[word]] = texts[i + 1]
            i += 2
        elif word == "hdr" and i + 2 < len(texts):
            headers.append((texts[i + 1], texts[i + 2]))
            i += 3
        elif word in ("uri-lf", "body-lf", "comment"):
            raise ParseError(f"'http-check send {word}' is not supported by haply")
        else:
            raise ParseError(f"unexpected '{word}' in http-check send: expected meth, uri, ver, hdr NAME VALUE or body")
    state.http_check = replace(base, headers=tuple(headers), **values)


def _read_expect(name: str, texts: list[str], matches: tuple[str, ...]) -> tuple[bool, str, str]:
    negated = False
    if texts and texts[0] == "!":
        negated, texts = True, texts[1:]
    elif texts and texts[0].startswith("!"):
        negated, texts = True, [texts[0][1:], *texts[1:]]
    if len(texts) != 2 or texts[0] not in matches:
        raise ParseError(f"'{name}' expects [!] {'|'.join(matches)} PATTERN")
    match, pattern = texts
    if match.startswith("r"):
        try:
            re.compile(pattern)
        except re.error as error:
            raise ParseError(f"invalid regular expression '{pattern}': {error}") from None
    return negated, match, pattern


def _http_check_expect(parser, state: ProxyState, args, line, negated_prefix) -> None:
    negated, match, pattern = _read_expect("http-check expect", _texts(args), ("status", "rstatus", "string", "rstring"))
    if match == "status":
        for item in pattern.split(","):
            if not re.fullmatch(r"[1-5][0-9][0-9](-[1-5][0-9][0-9])?", item):
                raise ParseError(f"invalid status '{item}' in http-check expect: expected codes or ranges such as 200,300-399")
    base = state.http_check or HttpCheck()
    state.http_check = replace(base, expect=(match, pattern), expect_negated=negated)


def _tcp_check_start(state: ProxyState) -> None:
    if not state.own_tcp_check:
        state.tcp_check_steps = []
        state.own_tcp_check = True


def _tcp_check_connect(parser, state: ProxyState, args, line, negated) -> None:
    _tcp_check_start(state)
    texts = _texts(args)
    port, options = None, []
    i = 0
    while i < len(texts):
        if texts[i] == "port" and i + 1 < len(texts):
            port = parse_port(texts[i + 1], "tcp-check connect port")
            i += 2
        elif texts[i] in ("ssl", "linger"):
            options.append(texts[i])
            i += 1
        elif texts[i] in ("sni", "alpn") and i + 1 < len(texts):
            options.append(f"{texts[i]} {texts[i + 1]}")
            i += 2
        else:
            raise ParseError(f"'tcp-check connect {texts[i]}' is not supported by haply: it supports port N, ssl, sni, alpn, linger")
    state.tcp_check_steps.append(TcpCheckStep("connect", port=port, options=tuple(options), location=line.location))


def _tcp_check_send(action: str):
    def handler(parser, state: ProxyState, args, line, negated) -> None:
        _tcp_check_start(state)
        data = _one(f"tcp-check {action}", args, "one string (quote it if it has spaces)")
        if action == "send-binary" and not re.fullmatch(r"([0-9a-fA-F]{2})+", data):
            raise ParseError(f"invalid hexadecimal string '{data}' in tcp-check send-binary")
        state.tcp_check_steps.append(TcpCheckStep(action, data=data, location=line.location))
    return handler


def _tcp_check_expect(parser, state: ProxyState, args, line, negated_prefix) -> None:
    _tcp_check_start(state)
    negated, match, pattern = _read_expect("tcp-check expect", _texts(args), ("string", "rstring", "binary"))
    if match == "binary" and not re.fullmatch(r"([0-9a-fA-F]{2})+", pattern):
        raise ParseError(f"invalid hexadecimal string '{pattern}' in tcp-check expect binary")
    state.tcp_check_steps.append(
        TcpCheckStep("expect", match=match, pattern=pattern, negated=negated, location=line.location)
    )


# -- stats page


def _stats(setting: str):
    def handler(parser, state: ProxyState, args, line, negated) -> None:
        if state.stats is None:
            state.stats = {}
        stats = state.stats
        texts = _texts(args)
        name = f"stats {setting}"
        if setting in ("enable", "hide-version", "show-legends"):
            _none(name, args)
            if setting != "enable":
                stats[setting.replace("-", "_")] = True
        elif setting == "uri":
            stats["uri"] = _one(name, args, "a URI prefix")
        elif setting == "realm":
            stats["realm"] = " ".join(texts) if texts else _one(name, args, "a realm")
        elif setting == "auth":
            user, sep, password = _one(name, args, "USER:PASSWORD").partition(":")
            if not sep or not user:
                raise ParseError("'stats auth' expects USER:PASSWORD")
            stats["auth"] = (*stats.get("auth", ()), (user, password))
        elif setting == "refresh":
            stats["refresh"] = parse_time(_one(name, args, "a time such as 10s"), name)
        elif setting in ("show-node", "show-desc"):
            if setting == "show-node" and len(texts) > 1:
                raise ParseError("'stats show-node' expects at most one name")
            stats[setting.replace("-", "_")] = " ".join(texts)
        elif setting == "scope":
            stats["scopes"] = (*stats.get("scopes", ()), _one(name, args, "a proxy name or '.'"))
        elif setting == "admin":
            before, condition = _condition(state, args)
            if before or condition is None:
                raise ParseError("'stats admin' expects if|unless CONDITION, as in 'stats admin if LOCALHOST'")
            stats["admin"] = condition
        elif setting == "http-request":
            before, condition = _condition(state, args)
            words = [word.text for word in before]
            if not words or words[0] not in ("allow", "deny", "auth"):
                raise ParseError("'stats http-request' expects allow, deny or auth [realm REALM], "
                                 "then if|unless CONDITION or nothing")
            realm = None
            if words[0] == "auth" and words[1:2] == ["realm"] and len(words) == 3:
                realm = words[2]
            elif len(words) > 1:
                raise ParseError(f"unexpected '{words[1]}' after 'stats http-request {words[0]}'"
                                 + (": expected realm REALM" if words[0] == "auth" else ""))
            rule = StatsRule(words[0], realm, condition, line.location)
            stats["rules"] = (*stats.get("rules", ()), rule)
        if setting not in ("show-node", "show-desc", "show-legends"):
            stats["enabled"] = True  # manual 4.2: these all enable the page
        stats.setdefault("location", line.location)
    return handler


# -- servers


def _server_options(words: list[str], for_default: bool) -> tuple[dict, list[tuple[str, str]]]:
    """Typed Server fields and raw TLS options from a server's option words."""
    values: dict = {}
    extra: list[tuple[str, str]] = []
    i = 0

    def value(what: str) -> str:
        if i + 1 >= len(words):
            raise ParseError(f"server option '{words[i]}' needs {what}")
        return words[i + 1]

    while i < len(words):
        option = words[i]
        step = 2
        if option == "weight":
            values["weight"] = parse_int(value("a weight"), "weight", *WEIGHT_RANGE)
        elif option in ("maxconn", "minconn", "maxqueue", "error-limit"):
            values[option.replace("-", "_")] = parse_int(value("a number"), option, 0)
        elif option in ("rise", "fall"):
            values[option] = parse_int(value("a number"), option, 1)
        elif option in ("inter", "fastinter", "downinter", "slowstart", "agent-inter"):
            seconds = parse_time(value("a time"), option)
            if seconds <= 0 and option != "slowstart":
                raise ParseError(f"server option '{option}' must be greater than zero")
            values[option.replace("-", "_")] = seconds
        elif option in ("port", "agent-port"):
            values["check_port" if option == "port" else "agent_port"] = parse_port(value("a port"), option)
        elif option == "addr":
            host, _ = _host_port(value("an address"), "check address", port_required=False)
            values["check_addr"] = host
        elif option in ("agent-addr", "agent-send"):
            values[option.replace("-", "_")] = value("a value")
        elif option == "track":
            values["track"] = value("[<proxy>/]<server>")
        elif option == "cookie":
            if for_default:
                raise ParseError("'cookie' cannot be set on default-server: each server needs its own value")
            values["cookie"] = value("a value")
        elif option == "id":
            if for_default:
                raise ParseError("'id' cannot be set on default-server")
            values["id"] = parse_int(value("a number"), "server id", 1)
        elif option == "observe":
            if value("layer4 or layer7") not in ("layer4", "layer7"):
                raise ParseError(f"invalid observe mode '{words[i + 1]}': expected layer4 or layer7")
            values["observe"] = words[i + 1]
        elif option == "on-error":
            if value("an action") not in ON_ERROR:
                raise ParseError(f"invalid on-error action '{words[i + 1]}': expected {', '.join(sorted(ON_ERROR))}")
            values["on_error"] = words[i + 1]
        elif option == "on-marked-down":
            if value("shutdown-sessions") != "shutdown-sessions":
                raise ParseError(f"invalid on-marked-down action '{words[i + 1]}': expected shutdown-sessions")
            values["on_marked_down"] = words[i + 1]
        elif option == "on-marked-up":
            if value("shutdown-backup-sessions") != "shutdown-backup-sessions":
                raise ParseError(f"invalid on-marked-up action '{words[i + 1]}': expected shutdown-backup-sessions")
            values["on_marked_up"] = words[i + 1]
        elif option == "init-addr":
            methods = tuple(value("methods such as last,libc,none").split(","))
            for method in methods:
                if method not in ("last", "libc", "none"):
                    try:
                        ipaddress.ip_address(method)
                    except ValueError:
                        raise ParseError(f"invalid init-addr method '{method}': expected last, libc, none or an IP address") from None
            values["init_addr"] = methods
        elif option in ("backup", "disabled", "check", "agent-check", "check-send-proxy"):
            values[option.replace("-", "_")] = True
            step = 1
        elif option in ("send-proxy", "send-proxy-v2"):
            values["send_proxy"] = 2 if option.endswith("v2") else 1
            step = 1
        elif option in ("no-backup", "enabled", "no-check", "no-agent-check"):
            values[{"no-backup": "backup", "enabled": "disabled", "no-check": "check",
                    "no-agent-check": "agent_check"}[option]] = False
            step = 1
        elif option == "source":
            values["source"], used = parse_source(words[i + 1:], "server option 'source'", ranges=True)
            step = 1 + used
        elif option in ("resolvers", "resolve-prefer", "resolve-net", "resolve-opts"):
            field_name, setting = resolver_sections.server_option(option, value("an argument"))
            values[field_name] = setting
        elif option in SERVER_TLS_OPTIONS:
            count = SERVER_TLS_OPTIONS[option]
            extra.append((option, value("a value") if count else ""))
            step = 1 + count
        elif option in UNSUPPORTED_SERVER_OPTIONS:
            raise ParseError(f"server option '{option}' is not supported by haply")
        else:
            raise ParseError(f"unknown server option '{option}'")
        i += step
    return values, extra


def parse_source(words: list, what: str, ranges: bool) -> tuple[SourceAddress, int]:
    """`ADDR[:PORT] [interface NAME]` after `source` (a server's may give a
    port range, LOW-HIGH, as HAProxy allows there only): the source and how
    many words it took. `usesrc` (transparent proxying) is refused by name."""
    texts = [w.text if hasattr(w, "text") else w for w in words]
    if not texts:
        raise ParseError(f"{what} needs an address, such as 10.0.0.5 or 10.0.0.5:0")
    host, port = _host_port(texts[0], what, port_required=False)
    if host in ("", "*"):
        host = "0.0.0.0"
    try:
        ipaddress.ip_address(host)
    except ValueError:  # a host name (_host_port checked its form): resolved once, as HAProxy does
        try:
            host = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)[0][4][0]
        except OSError:
            raise ParseError(f"{what}: could not resolve address '{host}'") from None
    low = high = 0
    if port is not None:
        first, dash, last = port.partition("-")
        if dash and not ranges:
            raise ParseError(f"{what}: port ranges are not supported here (only on a server line, "
                             "as in HAProxy)")
        low = parse_port(first, what) if first != "0" else 0
        high = parse_port(last, what) if dash else low
        if dash and (low == 0 or high < low):
            raise ParseError(f"{what}: invalid port range '{port}' (expected LOW-HIGH, LOW <= HIGH)")
    used, interface = 1, None
    while used < len(texts) and texts[used] in ("usesrc", "interface"):
        if texts[used] == "usesrc":
            raise ParseError(f"{what}: 'usesrc' (transparent proxying) is not supported by haply")
        if used + 1 >= len(texts):
            raise ParseError(f"{what}: 'interface' needs an interface name")
        interface = texts[used + 1]
        used += 2
    return SourceAddress(host, low, high, interface), used


def _source(parser, state: ProxyState, args, line, negated) -> None:
    texts = [w.text for w in args]
    state.source, used = parse_source(texts, "'source'", ranges=False)
    if used < len(texts):
        raise ParseError(f"'source': unexpected '{texts[used]}' (expected 'interface NAME')")


def _external_check_setting(setting: str) -> Handler:
    """`external-check command <program>` / `external-check path <PATH>`."""
    def handler(parser, state: ProxyState, args, line, negated) -> None:
        value = _one(f"external-check {setting}", args,
                     "a program" if setting == "command" else "a search path")
        if setting == "command":
            state.external_check_command = value
        else:
            state.external_check_path = value
    return handler


def _make_server(
    state: ProxyState, name: str, address: str, option_words: list[str], location: Location, verify_default: str
) -> Server:
    if address.startswith("_"):  # HAProxy reads a name starting with '_' as a SRV label
        raise ParseError(f"server '{name}': SRV records ('{address}') are not supported by haply; "
                         "name an A/AAAA host")
    host, port_text = _host_port(address, "server address", port_required=False)
    if host in ("", "*"):
        raise ParseError(f"server '{name}' needs an address, got '{address}'")
    port = None
    if port_text is not None:
        if port_text[:1] in "+-":
            raise ParseError(f"port offsets such as '{port_text}' are not supported by haply; give a fixed port")
        port = parse_port(port_text, f"port of server '{name}'")
    values, extra = _server_options(option_words, for_default=False)
    _check_files(extra, "server")
    merged = {**state.default_server, **values}
    if merged.get("minconn", 0) > merged.get("maxconn", 0):
        # minconn alone, or above maxconn: HAProxy takes it as the (static) maxconn
        merged["maxconn"] = merged["minconn"]
    if merged.get("agent_check") and merged.get("agent_port") is None:
        raise ParseError(f"server '{name}' has agent-check but no agent-port: add 'agent-port N'")
    if merged.get("track"):
        if merged.get("check"):
            raise ParseError(f"'server {state.name}/{name}' : unable to enable checks and tracking at the same time!")
        if "/" not in merged["track"]:  # a server of this proxy
            merged["track"] = f"{state.name}/{merged['track']}"
    tls = state.default_server_extra + extra
    _check_server_tls(name, tls, verify_default)
    return Server(name=name, host=host, port=port, extra=tuple(tls), location=location, **merged)


def _check_server_tls(name: str, tls: list[tuple[str, str]], verify_default: str) -> None:
    """HAProxy refuses a TLS server whose certificate would be verified without
    a CA file (verification is on by default, `ssl-server-verify`); so does haply."""
    flags = [option for option, _ in tls if option in ("ssl", "no-ssl")]
    if not flags or flags[-1] != "ssl":
        return
    verify = next((value for option, value in reversed(tls) if option == "verify"), verify_default)
    if verify != "none" and not any(option == "ca-file" for option, _ in tls):
        raise ParseError(
            f"server '{name}' verifies its TLS certificate but has no 'ca-file': add 'ca-file FILE', "
            "or 'verify none' if the network is trusted"
        )


def _verify_default(parser: _Parser) -> str:
    values = [args[0] for key, args in parser.carry.global_.extra if key == "ssl-server-verify" and args]
    return values[-1] if values else "required"


def _add_server(state: ProxyState, server: Server, location: Location) -> None:
    previous = state.server_lines.get(server.name)
    if previous is not None:
        raise ParseError(
            f"backend '{state.name}' already has a server named '{server.name}' (at {previous}); use distinct names"
        )
    state.server_lines[server.name] = location
    state.servers.append(server)


def _server(parser, state: ProxyState, args, line, negated) -> None:
    texts = _texts(args)
    if len(texts) < 2:
        raise ParseError("'server' expects a name and an address, as in 'server web1 10.0.0.12:80 check'")
    server = _make_server(state, texts[0], texts[1], texts[2:], line.location, _verify_default(parser))
    _add_server(state, server, line.location)


def _default_server(parser, state: ProxyState, args, line, negated) -> None:
    values, extra = _server_options(_texts(args), for_default=True)
    state.default_server.update(values)
    state.default_server_extra.extend(extra)


def _server_template(parser, state: ProxyState, args, line, negated) -> None:
    texts = _texts(args)
    if len(texts) < 3:
        raise ParseError("'server-template' expects a prefix, a count or range, and an address")
    prefix, count, address = texts[:3]
    match = re.fullmatch(r"([0-9]+)(?:-([0-9]+))?", count)
    if not match:
        raise ParseError(f"invalid server-template count '{count}': expected N or FROM-TO")
    low, high = (int(match.group(1)), int(match.group(2))) if match.group(2) else (1, int(match.group(1)))
    if low < 1 or high < low:
        raise ParseError(f"invalid server-template range '{count}': expected 1 <= FROM <= TO")
    for number in range(low, high + 1):
        server = _make_server(state, f"{prefix}{number}", address, texts[3:], line.location, _verify_default(parser))
        _add_server(state, server, line.location)


# ----------------------------------------------------------------- handler table

HANDLERS: dict[str, Handler] = {
    # global
    "daemon": _global_flag("daemon"),
    "external-check": _global_flag("external_check"),
    "insecure-fork-wanted": _global_flag("insecure_fork_wanted"),
    "pidfile": _global_value("pidfile", str, "a file name"),
    "localpeer": _global_value("localpeer", str, "a peer name"),
    "user": _global_value("user", _account("user"), "a user name"),
    "group": _global_value("group", _account("group"), "a group name"),
    "chroot": _global_value("chroot", str, "a directory"),
    "nbthread": _global_value("nbthread", lambda text: parse_int(text, "nbthread", 1, 4096), "a number of threads"),
    "tune.bufsize": _global_value("bufsize", _bufsize, "a buffer size in bytes"),
    "cpu-map": _cpu_map,
    "tune.maxrewrite": _global_value("maxrewrite", lambda text: parse_size(text, "tune.maxrewrite"), "a size in bytes"),
    "tune.http.maxhdr": _global_value("http_maxhdr", lambda text: parse_int(text, "tune.http.maxhdr", 1, 32767),
                                      "a number of header lines, 1 to 32767"),
    "spread-checks": _spread_checks,
    "max-spread-checks": _max_spread_checks,
    "unix-bind": _unix_bind,
    "tune.comp.maxlevel": _comp_maxlevel,
    "hard-stop-after": _hard_stop_after,
    "stats socket": _stats_socket,
    "stats timeout": _stats_timeout,
    "stats maxconn": _global_extra,
    "uid": _global_extra,
    "gid": _global_extra,
    "node": _global_extra,
    "log-send-hostname": _global_extra,
    "ca-base": _global_extra,
    "crt-base": _global_extra,
    "ulimit-n": _global_extra,
    "master-worker": _global_extra,
    "server-state-file": _global_extra,
    "server-state-base": _global_extra,
    "tune.ssl.default-dh-param": _global_extra,
    "ssl-dh-param-file": _dh_param_file,
    "ssl-server-verify": _ssl_server_verify,
    **{f"ssl-default-{side}-{what}": _global_extra for side in ("bind", "server") for what in ("ciphers", "ciphersuites", "options")},
    # both
    "maxconn": _maxconn,
    "log": _log,
    "no log": _no_log,
    "description": _description,
    "log-tag": _log_tag,
    # proxies
    "mode": _mode,
    "bind": _bind,
    "disabled": _flag("disabled", True),
    "enabled": _flag("disabled", False),
    "id": _proxy_id,
    "backlog": _extra,
    "retries": _retries,
    **{keyword: _tcp_keepalive(keyword) for keyword in (
        "clitcpka-cnt", "clitcpka-idle", "clitcpka-intvl",
        "srvtcpka-cnt", "srvtcpka-idle", "srvtcpka-intvl")},
    "source": _source,
    "external-check command": _external_check_setting("command"),
    "external-check path": _external_check_setting("path"),
    "fullconn": _fullconn,
    "rate-limit sessions": _rate_limit_sessions,
    "retry-on": _retry_on,
    "balance": _balance,
    "hash-type": _hash_type,
    "default_backend": _default_backend,
    "use_backend": _use_backend,
    "acl": _acl,
    "http-request set-header": _header_rule("http-request", "set-header"),
    "http-request add-header": _header_rule("http-request", "add-header"),
    "http-request del-header": _header_rule("http-request", "del-header"),
    "http-request use-service": _use_service,
    "http-request deny": _deny("deny", 403),
    "http-request tarpit": _deny("tarpit", 500),
    "http-request redirect": _http_request_redirect,
    "http-request return": _return,
    "http-request auth": _auth,
    **{f"http-request {action}": _http_counter for action in (
        "track-sc0", "track-sc1", "track-sc2", "sc-inc-gpc0", "sc-inc-gpc1", "sc-set-gpt0")},
    **{f"{family} {action}": _variable_rule(family) for family in ("http-request", "http-response")
       for action in ("set-var", "set-var-fmt", "unset-var")},
    "http-response set-header": _header_rule("http-response", "set-header"),
    "http-response add-header": _header_rule("http-response", "add-header"),
    "http-response del-header": _header_rule("http-response", "del-header"),
    "http-request replace-header": _replace_field_rule("http-request", "replace-header"),
    "http-request replace-value": _replace_field_rule("http-request", "replace-value"),
    "http-response replace-header": _replace_field_rule("http-response", "replace-header"),
    "http-response set-status": _set_status,
    "http-response replace-value": _replace_field_rule("http-response", "replace-value"),
    **{f"http-request {action}": _line_rule(action) for action in sorted(LINE_ACTIONS)},
    "redirect": _redirect,
    "errorfile": _errorfile,
    "errorfiles": _errorfiles,
    **{f"email-alert {setting}": mailer_sections.email_alert for setting in mailer_sections.SETTINGS},
    "errorloc": _errorloc("errorloc", 302),
    "errorloc302": _errorloc("errorloc302", 302),
    "errorloc303": _errorloc("errorloc303", 303),
    "http-error": _http_error,
    "monitor": _monitor,
    "monitor-uri": _monitor_uri,
    "cookie": _cookie,
    "stick-table": _stick_table,
    "capture": _capture,
    "declare": _declare,
    "http-request set-log-level": _log_level_rule("http-request"),
    "http-response set-log-level": _log_level_rule("http-response"),
    "http-request capture": _capture_rule("http-request"),
    "http-request cache-use": _cache_rule("http-request", "cache-use"),
    "http-response cache-store": _cache_rule("http-response", "cache-store"),
    "filter cache": _filter_cache,
    "http-response capture": _capture_rule("http-response"),
    "http-reuse": _http_reuse,
    "compression algo": _compression("algo"),
    "compression type": _compression("type"),
    "compression offload": _compression("offload"),
    "tcp-request": _tcp_request,
    "stick": _stick,
    "use-server": _use_server,
    "load-server-state-from-file": _load_server_state,
    "server-state-file-name": _extra,
    "log-format": _log_format,
    "unique-id-format": _unique_id_format,
    "unique-id-header": _unique_id_header,
    "server": _server,
    "default-server": _default_server,
    "server-template": _server_template,
    "program-servers": programs.program_servers,
    "http-check send": _http_check_send,
    "http-check expect": _http_check_expect,
    "tcp-check connect": _tcp_check_connect,
    "tcp-check send": _tcp_check_send("send"),
    "tcp-check send-binary": _tcp_check_send("send-binary"),
    "tcp-check expect": _tcp_check_expect,
    **{f"stats {setting}": _stats(setting) for setting in (
        "enable", "uri", "realm", "auth", "refresh", "hide-version", "show-node", "show-desc",
        "show-legends", "scope", "admin", "http-request",
    )},
    **{f"timeout {name.replace('_', '-')}": _timeout(name) for name in Timeouts.__dataclass_fields__},
    **{
        name: _option(name.split(" ", 1)[1])
        for name, row in KEYWORDS.items()
        if name.startswith("option ") and row.status == SUPPORTED
    },
}


# What HAProxy 2.6 reads in a peers section and haply does not.
PEERS_UNSUPPORTED = ("default-bind", "default-server", "log", "table", "shards")


# The keywords of the sections that are not proxies, by section kind.
SECTION_HANDLERS: dict[str, dict[str, Handler]] = {
    "program": programs.HANDLERS,
    "userlist": userlists.HANDLERS,
    "peers": peer_sections.HANDLERS,
    "http-errors": http_errors.HANDLERS,
    "mailers": mailer_sections.HANDLERS,
    "cache": caches.HANDLERS,
    "resolvers": resolver_sections.HANDLERS,
}


# --------------------------------------------------------------------- validation


def validate(config: Config, diagnostics: Diagnostics) -> None:
    """Checks that need every proxy of every file: names, references, modes.
    Reported in file and line order."""
    found = Diagnostics()
    _validate(config, found)
    order = {name: index for index, name in enumerate(config.sources)}
    found.items.sort(key=lambda d: (order.get(d.location.file, len(order)), d.location.line))
    diagnostics.items.extend(found.items)


def _check_external_check(proxy: Proxy, global_, diagnostics: Diagnostics) -> None:
    """What HAProxy 2.6 asks of `option external-check` (its words)."""
    if proxy.check_kind != "external" or not proxy.is_backend:
        return
    if not global_.external_check:
        diagnostics.error(proxy.location, f"Proxy '{proxy.name}' : 'option external-check' unable "
                          "to find required 'global.external-check'.")
    elif not proxy.external_check_command:
        diagnostics.error(proxy.location, f"Proxy '{proxy.name}' : 'option external-check' unable "
                          "to find required 'external-check command'.")
    elif not global_.insecure_fork_wanted:
        # HAProxy's checks then fail (it forbids itself to fork); haply runs them
        diagnostics.warning(proxy.location, f"Proxy '{proxy.name}' : 'insecure-fork-wanted' not "
                            "enabled in the global section, 'option external-check' will likely "
                            "fail with HAProxy (haply runs the checks)")


def _check_server_references(proxy: Proxy, backends: dict, diagnostics: Diagnostics) -> None:
    """nbsrv(NAME) counts the servers of a backend or listen section NAME, and
    srv_is_up(NAME/SERVER) reads one of them (without NAME, of the proxy's own
    servers: it must then have some)."""
    for acl in used_acls(proxy):
        if acl.fetch == "nbsrv":
            name, server, shown = acl.arg, None, f"nbsrv({acl.arg})"
        elif acl.fetch == "srv_is_up":
            name, _, server = acl.arg.partition("/")
            shown = f"srv_is_up({acl.arg})"
        else:
            continue
        backend = backends.get(name)
        if backend is None and name == proxy.name:
            diagnostics.error(acl.location, f"{acl.fetch}: {proxy.kind} '{proxy.name}' has no "
                              f"servers; name a backend, as in {acl.fetch}(NAME{'/SERVER' if server else ''})")
        elif backend is None:
            guess = _closest(name, backends)
            hint = f"; did you mean '{guess}'?" if guess else ""
            diagnostics.error(acl.location, f"{shown}: no backend or listen section named "
                              f"'{name}'{hint}")
        elif server is not None and server not in {s.name for s in backend.servers}:
            diagnostics.error(acl.location, f"{shown}: {backend.kind} '{name}' has no server "
                              f"named '{server}'")


def _check_cache_references(proxy: Proxy, names: set[str], diagnostics: Diagnostics) -> None:
    """cache-use, cache-store and `filter cache` name a cache section of any
    file (HAProxy finds it after the proxy too)."""
    rules = [rule for rule in (*proxy.http_request_rules, *proxy.http_response_rules,
                               *proxy.cache_filters) if isinstance(rule, CacheRule)]
    for rule in rules:
        if rule.cache not in names:
            what = "the filter 'cache'" if rule.action == "filter" else f"'{rule.action}'"
            diagnostics.error(rule.location, f"proxy '{proxy.name}': unable to find the cache "
                              f"'{rule.cache}' referenced by {what}")


def _check_userlist_references(proxy: Proxy, userlists: dict, diagnostics: Diagnostics) -> None:
    """http_auth(L) and http_auth_group(L) G... name a userlist L, and groups of it."""
    for acl in used_acls(proxy):
        if acl.fetch not in ("http_auth", "http_auth_group"):
            continue
        userlist = userlists.get(acl.arg)
        if userlist is None:
            diagnostics.error(acl.location, f"{acl.fetch}({acl.arg}): no userlist named '{acl.arg}'")
            continue
        known = {name for name, _ in userlist.groups}
        for group in acl.patterns:
            if group not in known:
                diagnostics.error(acl.location, f"{acl.fetch}({acl.arg}): userlist '{acl.arg}' "
                                  f"has no group '{group}'")


def _validate(config: Config, diagnostics: Diagnostics) -> None:
    _check_tracks(config, diagnostics)
    mailer_sections.check_references(config, diagnostics)
    resolver_sections.check_references(config, diagnostics)
    userlists = {userlist.name: userlist for userlist in config.userlists}
    _check_sticky_counters(config, diagnostics)
    cache_names = {cache.name for cache in config.caches}
    for proxy in config.proxies:
        _check_external_check(proxy, config.global_, diagnostics)
        _check_userlist_references(proxy, userlists, diagnostics)
        _check_cache_references(proxy, cache_names, diagnostics)
        _check_response_conditions(proxy, diagnostics)
    frontends: dict[str, Proxy] = {}
    backends: dict[str, Proxy] = {}
    for proxy in config.proxies:
        for side, seen in (("frontend", frontends), ("backend", backends)):
            if (side == "frontend" and not proxy.is_frontend) or (side == "backend" and not proxy.is_backend):
                continue
            previous = seen.get(proxy.name)
            if previous is not None and previous is not proxy:
                diagnostics.error(
                    proxy.location,
                    f"{proxy.kind} '{proxy.name}' has the same name as the {previous.kind} at "
                    f"{previous.location}; proxies with {side} capability need distinct names",
                )
            else:
                seen[proxy.name] = proxy
    for proxy in config.proxies:
        _check_server_references(proxy, backends, diagnostics)
        stats = proxy.stats
        if stats is not None and stats.rules and (stats.auth or stats.realm is not None):
            diagnostics.error(stats.rules[0].location, f"'{proxy.name}': 'stats http-request' "
                              "cannot be used with 'stats auth' or 'stats realm' (HAProxy 2.6 "
                              "refuses them together): write an auth rule with a userlist")
    for proxy in config.proxies:
        if not proxy.is_frontend:
            continue
        # (a name made per request is looked up then: no backend, the default one)
        references = [(s.backend, s.location, "use_backend") for s in proxy.backend_switches
                      if "%[" not in s.backend]
        if proxy.default_backend and proxy.kind != "listen":
            references.append((proxy.default_backend, proxy.default_backend_location, "default_backend"))
        for name, location, keyword in references:
            target = backends.get(name)
            if target is None:
                guess = _closest(name, backends)
                hint = f"; did you mean '{guess}'?" if guess else ""
                diagnostics.error(location, f"{keyword} '{name}': no backend or listen section named '{name}'{hint}")
            elif proxy.mode == "http" and target.mode == "tcp":
                diagnostics.error(
                    location,
                    f"{proxy.kind} '{proxy.name}' is in mode http but its backend '{name}' is in mode tcp; "
                    "set 'mode http' on the backend (or 'mode tcp' on the frontend)",
                )
        _check_timeouts(proxy, diagnostics)
        _check_deny_after_edits(proxy, diagnostics)
        if proxy.mode == "tcp":
            for switch in proxy.backend_switches:
                _check_tcp_condition(switch.condition, "use_backend", switch.location, diagnostics)
                if "%[" in switch.backend:
                    diagnostics.error(switch.location, f"'use_backend {switch.backend}': a name "
                                      "made per request is not supported by haply in mode tcp")
        for rule in proxy.tcp_request_rules:  # decided before any HTTP is read
            _check_tcp_condition(rule.condition, f"tcp-request {rule.stage}", rule.location, diagnostics)
            if (proxy.mode == "http" and rule.stage == "content" and rule.counter is not None
                    and rule.counter.action == "track"):
                diagnostics.warning(rule.location, "a 'tcp-request content track-sc*' rule not depending on "
                                    "request contents for an HTTP frontend should be executed at the session "
                                    "level, using a 'tcp-request session' rule (mandatory to track invalid "
                                    "HTTP requests); haply tracks it for each request, as HAProxy does")
        if proxy.mode == "http":
            _check_no_payload(proxy, diagnostics)
        if proxy.kind == "frontend" and not proxy.binds:
            diagnostics.warning(proxy.location, f"frontend '{proxy.name}' has no 'bind' line and will not accept connections")
        if proxy.log_format is not None and not any(
                spec.address != "global" or config.global_.logs for spec in proxy.logs):
            kind = "proxy" if proxy.kind == "listen" else "frontend"
            diagnostics.warning(proxy.location, f"log format ignored for {kind} '{proxy.name}' "
                                "since it has no log address")
        if proxy.mode == "tcp":
            for rule in (*proxy.http_request_rules, *proxy.http_response_rules, *proxy.redirects):
                diagnostics.warning(rule.location, f"HTTP rule in '{proxy.name}' has no effect in mode tcp")
            if proxy.stats is not None and proxy.stats.enabled:
                diagnostics.warning(proxy.stats.location, f"the statistics page of '{proxy.name}' needs 'mode http'")
            if proxy.monitor_uri:
                diagnostics.warning(proxy.location, f"monitor-uri of '{proxy.name}' has no effect in mode tcp")
            for capture in proxy.captures:
                diagnostics.warning(capture.location, f"capture in '{proxy.name}' has no effect in mode tcp")
            _warn_http_only_settings(proxy, diagnostics)
    for proxy in config.proxies:
        if not proxy.is_backend:
            continue
        if proxy.kind == "backend":
            _check_timeouts(proxy, diagnostics)
            if proxy.mode == "tcp":  # a backend's rules in mode tcp read the connection only
                for rule in proxy.tcp_request_rules:
                    _check_tcp_condition(rule.condition, "tcp-request content", rule.location,
                                         diagnostics)
        names = {server.name for server in proxy.servers}
        for rule in proxy.use_server_rules:
            if rule.server not in names:
                diagnostics.error(rule.location, f"use-server: no server '{rule.server}' in '{proxy.name}'")
        if proxy.stick_rules and proxy.stick_table is None:
            diagnostics.error(proxy.stick_rules[0].location, f"stick rules in '{proxy.name}' need a "
                              "'stick-table' in the same section")
        if proxy.stick_table is not None:
            _check_stick_types(proxy, diagnostics, config.global_.nbthread)
            _check_table_peers(proxy, config, diagnostics)
        if proxy.mode == "tcp" and proxy.kind == "backend":
            _warn_http_only_settings(proxy, diagnostics)
        if proxy.cookie is not None:
            if proxy.mode == "tcp":
                diagnostics.warning(proxy.cookie.location, f"cookie persistence in '{proxy.name}' has no effect in mode tcp")
            elif not any(server.cookie for server in proxy.servers):
                diagnostics.warning(proxy.cookie.location, f"cookie persistence in '{proxy.name}': no server has a "
                                    "'cookie' value, so no client is ever sent to a server by its cookie")
        if proxy.http_check is not None and proxy.check_kind == "tcp":
            diagnostics.warning(proxy.location, f"http-check rules in '{proxy.name}' have no effect without 'option httpchk'")
        if proxy.tcp_check_steps and proxy.check_kind != "tcp-check":
            diagnostics.warning(proxy.location, f"tcp-check rules in '{proxy.name}' have no effect without 'option tcp-check'")


def _warn_http_only_settings(proxy: Proxy, diagnostics: Diagnostics) -> None:
    """HTTP-only options in a mode tcp proxy: HAProxy warns that it ignores
    them, inherited from defaults or not, and so does haply. (Errorfiles and
    http-reuse from a shared defaults section are left unsaid, as HAProxy does.)"""
    for option, present in (("forwardfor", proxy.forward_for is not None),
                            ("originalto", proxy.original_to is not None),
                            ("http-buffer-request", proxy.buffer_request),
                            ("prefer-last-server", proxy.prefer_last_server)):
        if present:
            diagnostics.warning(proxy.location, f"'option {option}' in '{proxy.name}' has no "
                                "effect in mode tcp")
    if proxy.compression is not None and proxy.compression.location != NOWHERE:
        # only for the proxy's own lines: `compression` in a defaults section
        # shared by http and tcp proxies is usual, and HAProxy says nothing
        diagnostics.warning(proxy.compression.location, f"compression in '{proxy.name}' has no "
                            "effect in mode tcp")


HTTP_ONLY_FETCHES = frozenset(name for name in (*acls.FETCHES, *acls.DERIVED_FETCHES)
                              if name.split("_")[0] in (*acls.REQUEST_SAMPLES, "method"))


def _check_no_payload(proxy: Proxy, diagnostics: Diagnostics) -> None:
    """The payload fetches read a mode tcp connection's first bytes; in mode
    http haply has parsed them into a request and has no such buffer."""
    for acl in used_acls(proxy):
        if acl.fetch in acls.READS_PAYLOAD:
            diagnostics.error(acl.location, f"fetch '{acl.fetch}' reads the first bytes of a mode tcp "
                              f"connection: haply does not support it in mode http ('{proxy.name}')")
    for rule in proxy.stick_rules:
        if rule.pattern in STICK_PAYLOAD_KEYS:
            diagnostics.error(rule.location, f"stick pattern '{rule.pattern}' reads the first bytes of a "
                              f"mode tcp connection: haply does not support it in mode http ('{proxy.name}')")


def _check_tcp_condition(condition, what: str, location: Location, diagnostics: Diagnostics) -> None:
    """In mode tcp a condition can only read the connection (src, dst, dst_port)."""
    if condition is None:
        return
    for group in condition.any_of:
        for term in group:
            for acl in term.acls:
                if acl.fetch in HTTP_ONLY_FETCHES:
                    diagnostics.error(location, f"{what} condition reads '{acl.fetch}', which only "
                                      "exists in mode http: on a connection use src, dst or dst_port")


def _check_tracks(config: Config, diagnostics: Diagnostics) -> None:
    """`track [<proxy>/]<server>` names a server of a proxy with a backend
    that checks (or runs an agent, or tracks in turn), without a loop; the
    errors are HAProxy 2.6's. Servers are taken in file order and a chain is
    followed only through servers already taken, as HAProxy resolves them:
    a loop is reported on the server that closes it."""
    taken: set[tuple[str, str]] = set()
    for proxy in config.proxies:
        for server in proxy.servers:
            key = (proxy.name, server.name)
            taken.add(key)
            if not server.track:
                continue
            who = f"'server {proxy.name}/{server.name}'"
            proxy_name, _, server_name = server.track.partition("/")
            tracked_proxy = config.proxy(proxy_name)
            if tracked_proxy is None or not tracked_proxy.is_backend:
                diagnostics.error(server.location, f"{who} : unable to find required proxy '{proxy_name}' for tracking.")
                continue
            tracked = next((s for s in tracked_proxy.servers if s.name == server_name), None)
            if tracked is None:
                diagnostics.error(server.location, f"{who} : unable to find required server '{server_name}' for tracking.")
                continue
            if not (tracked.check or tracked.agent_check or tracked.track):
                diagnostics.error(server.location, f"{who} : unable to use {server.track} for tracking as it "
                                  "does not have any check nor agent enabled.")
                continue
            link, seen = (proxy_name, server_name), set()
            while link in taken and link not in seen:
                if link == key:
                    diagnostics.error(server.location, f"{who} : unable to track {server.track} as it belongs "
                                      f"to a tracking chain looping back to {server.track}.")
                    break
                seen.add(link)
                nxt = config.proxy(link[0])
                nxt_server = next((s for s in nxt.servers if s.name == link[1]), None) if nxt else None
                if nxt_server is None or not nxt_server.track:
                    break
                link = tuple(nxt_server.track.partition("/")[::2])


def _check_stick_types(proxy: Proxy, diagnostics: Diagnostics, workers: int | None) -> None:
    table = proxy.stick_table
    for rule in proxy.stick_rules:
        if proxy.mode == "tcp":
            _check_tcp_condition(rule.condition, "stick", rule.location, diagnostics)
        address = rule.pattern in ("src", "dst")
        port = rule.pattern.endswith("_port")
        if ((table.kind in ("ip", "ipv6") and not address)
                or (table.kind == "integer" and rule.pattern not in STICK_INTEGER_KEYS)):
            diagnostics.error(rule.location, f"stick pattern '{rule.pattern}' does not fit the {table.kind} "
                              f"table of '{proxy.name}'")
        if proxy.mode == "tcp" and not (address or port or rule.pattern in STICK_PAYLOAD_KEYS):
            diagnostics.error(rule.location, f"stick pattern '{rule.pattern}' reads the HTTP request; "
                              f"'{proxy.name}' is in mode tcp")


def _check_table_peers(proxy: Proxy, config: Config, diagnostics: Diagnostics) -> None:
    """`stick-table ... peers NAME` names a peers section; its entries are
    shared by one process (a worker per thread would each claim the local
    peer's name)."""
    table = proxy.stick_table
    if table.peers is None:
        return
    if not any(section.name == table.peers for section in config.peers):
        diagnostics.error(table.location, f"stick-table of '{proxy.name}': no peers section named "
                          f"'{table.peers}'")
    elif config.global_.nbthread > 1:
        diagnostics.error(table.location, f"stick-table of '{proxy.name}' is shared with peers "
                          f"'{table.peers}': haply shares tables from one worker, set nbthread 1")


def _counter_rules(proxy: Proxy) -> list[CounterRule]:
    return [*(rule for rule in proxy.http_request_rules if isinstance(rule, CounterRule)),
            *(rule.counter for rule in proxy.tcp_request_rules if rule.counter is not None)]


def _check_sticky_counters(config: Config, diagnostics: Diagnostics) -> None:
    """The tables that track-sc rules and the sc_*/src_* fetches name exist;
    a table nothing uses, or one kept apart by several workers, is worth a
    warning."""
    tables = {proxy.name: proxy.stick_table for proxy in config.proxies if proxy.stick_table is not None}
    used = set()
    for proxy in config.proxies:
        if proxy.stick_rules:
            used.add(proxy.name)
        for rule in _counter_rules(proxy):
            if rule.action != "track":
                continue
            used.add(rule.table)
            if rule.table not in tables:
                diagnostics.error(rule.location, f"track-sc{rule.slot}: '{rule.table}' has no stick-table "
                                  "(name a proxy that declares one with 'table NAME')")
        for acl in used_acls(proxy):
            if acl.fetch.startswith("src_"):
                name = acl.arg
            elif acl.fetch.startswith("sc_"):
                name = acl.arg.partition(",")[2]
            else:
                continue
            if name:
                used.add(name)
                if name not in tables:
                    diagnostics.error(acl.location, f"{acl.fetch}: no stick-table '{name}' (a proxy of that "
                                      "name declares one with 'stick-table')")
    workers = config.global_.nbthread
    for name, table in tables.items():
        if name not in used:
            diagnostics.warning(table.location, f"the stick-table of '{name}' is not used by any stick rule, "
                                "track-sc rule or sticky counter fetch")
        if workers and workers > 1:
            diagnostics.warning(table.location, f"the stick-table of '{name}' is kept by each of the {workers} "
                                "worker processes apart: a client can stick to different servers, and its "
                                "counters count only what one worker saw")


def _check_response_conditions(proxy: Proxy, diagnostics: Diagnostics) -> None:
    """An acl on the request's target, fields or credentials in an
    http-response rule never matches, nor one on the response elsewhere
    (HAProxy warns the same way)."""
    response_rules = [(rule, True) for rule in proxy.http_response_rules]
    others = [*proxy.http_request_rules, *proxy.backend_switches, *proxy.redirects,
              *proxy.use_server_rules, *proxy.stick_rules, *proxy.tcp_request_rules]
    for rule, in_response in response_rules + [(rule, False) for rule in others]:
        condition = getattr(rule, "condition", None)
        if condition is None:
            continue
        unreadable = acls.REQUEST_ONLY_FETCHES if in_response else acls.RESPONSE_ONLY_FETCHES
        for group in condition.any_of:
            for acl in (acl for term in group for acl in term.acls):
                if acl.fetch in unreadable:
                    what = f"acl '{acl.name}'" if acl.name else "anonymous acl"
                    diagnostics.warning(
                        rule.location,
                        f"{what} will never match here: '{acl.fetch}' reads the "
                        + ("request, which is no longer at hand in an http-response rule"
                           if in_response else "response, which only http-response rules see")
                        + " (as in HAProxy)")


def _check_deny_after_edits(proxy: Proxy, diagnostics: Diagnostics) -> None:
    """HAProxy reads a deny's or redirect's fields on the request as the rules
    above it left it; haply applies header edits when it writes the request out,
    so those rules see the fields as the client sent them. Say so where that
    can differ."""
    edited: set[str] = set()
    for rule in proxy.http_request_rules:
        if rule.action in ("set-header", "add-header", "del-header", "replace-header", "replace-value"):
            edited.add(rule.name.lower())
        elif rule.action in ("deny", "return", "redirect"):
            read = set()
            if rule.condition is not None:
                read = {acl.arg.lower() for group in rule.condition.any_of for term in group
                        for acl in term.acls if acl.fetch.startswith("hdr") and acl.arg}
            if rule.action == "redirect" and rule.kind == "scheme":
                read.add("host")  # the Location is built from it
            for name in sorted(read & edited):
                diagnostics.warning(
                    rule.location,
                    f"http-request {rule.action} reads header '{name}', which an http-request rule "
                    "above it edits: haply reads the field as the client sent it (HAProxy, as edited)")


def _check_timeouts(proxy: Proxy, diagnostics: Diagnostics) -> None:
    """HAProxy warns when a proxy lacks the timeouts of its sides: without them
    a stuck peer holds a connection forever. haply warns the same way."""
    needed = []
    if proxy.is_frontend:
        needed.append("client")
    if proxy.is_backend:
        needed += ["connect", "server"]
    missing = [name for name in needed if not getattr(proxy.timeouts, name)]
    if missing:
        diagnostics.warning(
            proxy.location,
            f"missing timeouts for {proxy.kind} '{proxy.name}': set "
            + ", ".join(f"'timeout {name}'" for name in missing)
            + " (here or in defaults) so that stuck connections are closed",
        )


def _closest(name: str, names: Mapping[str, object]) -> str | None:
    import difflib

    found = difflib.get_close_matches(name, list(names), n=1, cutoff=0.6)
    return found[0] if found else None


__all__ = ["HANDLERS", "ParseError", "parse", "parse_bind_addresses", "parse_log", "read_errorfile", "validate"]
