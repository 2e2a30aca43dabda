"""Who logs what, where: per-proxy traffic logs and process events.

`Logging` is built once per engine from the config: it opens one sink per
distinct address and gives each proxy that logs a `ProxyLog` (None for a proxy
without a log target, so the request path tests one attribute and does nothing
more). `log global` expands to the global section's targets, as in HAProxy.
Traffic lines go out at level info; server state changes at notice (UP) or
alert (DOWN), as HAProxy sends them.
"""

from __future__ import annotations

import os
import socket
import time

from haply.logs import formats, syslog
from haply.logs.formats import retries_field
from haply.logs.captures import Captures
from haply.logs.exchange import Exchange
from haply.logs.sinks import open_sink

TAG = "haproxy"  # HAProxy's default `log-tag`; log parsers key on it


class Record:
    """One line's values (the fields of HAProxy's log variables)."""

    __slots__ = ("client_ip", "client_port", "frontend_ip", "frontend_port", "frontend", "ssl",
                 "backend", "server", "server_ip", "server_port", "accept_time", "request_time",
                 "TR", "Tw", "Tc", "Tr", "Ta", "Tt", "Ti", "status", "bytes_read",
                 "bytes_uploaded", "termination", "actconn", "feconn", "beconn", "srv_conn",
                 "retries", "srv_queue", "backend_queue", "request_line", "method", "uri",
                 "http_version", "hostname", "pid", "request_counter", "log_counter",
                 "unique_id")

    def __init__(self, **values):
        for name in Record.__slots__:
            setattr(self, name, values.get(name, ""))


class HttpRecord:
    """The values of one HTTP line, read from the session only when the format
    asks for them (a format that does not print a field does not compute it)."""

    __slots__ = ("session", "request", "exchange", "now", "status", "termination",
                 "server_state", "held", "log")

    def __init__(self, log, session, request, exchange, now, status, termination, server):
        self.log = log
        self.session = session
        self.request = request
        self.exchange = exchange
        self.now = now
        self.status = status if status is not None else (
            exchange.status if exchange.status is not None else -1)
        self.termination = termination
        # A server still held by this request is released right after the line
        # is written; HAProxy logs after the release, so it is not counted.
        held = request.server
        self.held = 1 if held is not None else 0
        self.server_state = held if held is not None else server

    client_ip = property(lambda self: self.request.client_ip)
    client_port = property(lambda self: _text(self.request.context.src_port))
    frontend_ip = property(lambda self: _text(self.request.context.dst))
    frontend_port = property(lambda self: self.session.dest_port)
    frontend = property(lambda self: self.session.frontend.name)
    ssl = property(lambda self: self.request.ssl)
    backend = property(lambda self: (self.request.backend.name if self.request.backend is not None
                                     else self.session.frontend.name))
    server = property(lambda self: self.server_state.name if self.server_state is not None
                      else "<NOSRV>")
    server_ip = property(lambda self: self.server_state.host if self.server_state is not None else "")
    server_port = property(lambda self: self.server_state.port if self.server_state is not None else "")
    accept_time = property(lambda self: self.exchange.wall)
    request_time = property(lambda self: self.exchange.wall)
    TR = property(lambda self: int((self.exchange.headers_at - self.exchange.begin) * 1000)
                  if self.exchange.headers_at else -1)
    Tw = property(lambda self: getattr(self.request, "t_wait", -1))
    Tc = property(lambda self: getattr(self.request, "t_connect", -1))
    Tr = property(lambda self: int((self.exchange.response_at
                                    - (self.exchange.headers_at or self.exchange.begin)) * 1000)
                  - max(self.request.t_wait, 0) - max(self.request.t_connect, 0)
                  if self.exchange.response_at else -1)
    Ta = property(lambda self: int((self.now - self.exchange.begin) * 1000))
    Tt = Ta
    Ti = property(lambda self: 0)
    bytes_read = property(lambda self: self.session.transport.written - self.exchange.bytes_out)
    bytes_uploaded = property(lambda self: self.session.transport.received - self.exchange.bytes_in)
    actconn = property(lambda self: self.log.engine.global_gate.current)
    feconn = property(lambda self: self.session.frontend.gate.current)
    beconn = property(lambda self: self.request.backend.current_sessions
                      + self.request.backend.waiting - self.held
                      if self.request.backend is not None else 0)
    srv_conn = property(lambda self: self.server_state.current_sessions - self.held
                        if self.server_state is not None else 0)
    retries = property(lambda self: retries_field(self.request))
    srv_queue = property(lambda self: (self.request.queue_positions or (0, 0))[0])
    backend_queue = property(lambda self: (self.request.queue_positions or (0, 0))[1])
    method = property(lambda self: formats.method(self.request))
    uri = property(lambda self: self.request.uri)
    http_version = property(lambda self: f"HTTP/{getattr(self.request, 'version', '1.1') or '1.1'}")
    request_line = property(lambda self: formats.request_line(self.request))
    hostname = property(lambda self: self.log.logging.hostname)
    pid = property(lambda self: self.log.logging.pid)
    request_counter = property(lambda self: self.log.logging.request_counter)
    log_counter = property(lambda self: self.log.lines)
    unique_id = property(lambda self: getattr(self.request, "unique_id", ""))

    def header(self, name: str) -> list[str]:
        return self.request.header(name)


class AsapRecord(HttpRecord):
    """option logasap: the line of an exchange whose response head has just
    gone out: its total time and bytes are those so far, '+' before them."""

    __slots__ = ()

    Ta = property(lambda self: f"+{HttpRecord.Ta.fget(self)}")
    Tt = Ta
    bytes_read = property(lambda self: f"+{HttpRecord.bytes_read.fget(self)}")


class Target:
    __slots__ = ("sink", "facility", "max_severity", "format", "length", "framer")

    def __init__(self, sink, facility: str, level: str | None, fmt: str, length: int,
                 pid: int, tag: str = TAG, send_hostname: str | None = None):
        self.sink = sink
        self.facility = facility
        self.max_severity = syslog.SEVERITIES[level] if level else 7
        self.format = fmt
        self.length = length
        self.framer = syslog.Framer(fmt, facility, tag, pid, send_hostname, length)


class Logging:
    def __init__(self, config, clock=time.time):
        self.config = config
        self.clock = clock
        self.pid = os.getpid()
        self.hostname = socket.gethostname()
        self.sinks: dict[str, object] = {}
        extra = dict(config.global_.extra)
        self.tag = extra["log-tag"][0] if extra.get("log-tag") else TAG
        self.send_hostname = None
        if "log-send-hostname" in extra:
            self.send_hostname = (extra["log-send-hostname"] or (self.hostname,))[0]
        self.global_targets = [self._target(t) for t in config.global_.logs]
        self.request_counter = 0

    def _target(self, spec, tag: str | None = None) -> Target:
        sink = self.sinks.get(spec.address)
        if sink is None:
            sink = self.sinks[spec.address] = open_sink(spec.address)
        fmt = spec.format or ("rfc3164" if self.send_hostname else "local")
        return Target(sink, spec.facility, spec.level, fmt, spec.length,
                      self.pid, tag or self.tag, self.send_hostname)

    def targets_of(self, proxy) -> list[Target]:
        """A proxy's targets; its own `log-tag` applies to them, `log global` included."""
        tags = [args[0] for key, args in proxy.extra if key == "log-tag" and args]
        tag = tags[-1] if tags else None
        targets: list[Target] = []
        for spec in proxy.logs:
            if spec.address == "global":
                targets.extend(self._target(t, tag) for t in self.config.global_.logs)
            else:
                targets.append(self._target(spec, tag))
        return targets

    def for_proxy(self, proxy, engine) -> "ProxyLog | None":
        targets = self.targets_of(proxy)
        if not targets:
            return None
        return ProxyLog(self, proxy, targets, engine)

    @property
    def dropped(self) -> int:
        return sum(sink.dropped for sink in self.sinks.values())

    def send(self, targets: list[Target], severity: str, message: str) -> None:
        level = syslog.SEVERITIES[severity]
        now = self.clock()
        for target in targets:
            if level <= target.max_severity:
                target.sink.send(target.framer.frame(severity, message, now))

    def server_event(self, event, proxy=None) -> None:
        """A health check moved a server UP or DOWN (HealthChecker.subscribe)."""
        targets = self.targets_of(proxy) if proxy is not None else self.global_targets
        self.send(targets, "notice" if event.up else "alert", event.message)

    def admin_event(self, state, before: str, after: str, servers, proxy=None) -> None:
        """An operator changed a server's state (runtime API, stats page)."""
        from haply.logs.events import admin_message
        message = admin_message(state, before, after, servers)
        if message is not None:
            targets = self.targets_of(proxy) if proxy is not None else self.global_targets
            self.send(targets, *message)

    def backend_down(self, proxy) -> None:
        """The last server that could take a backend's traffic went away
        (haply.admin.counters); HAProxy says so at emerg, whatever the cause."""
        kind = "proxy" if proxy.kind == "listen" else "backend"
        self.send(self.targets_of(proxy), "emerg", f"{kind} {proxy.name} has no server available!")

    def close(self) -> None:
        for sink in self.sinks.values():
            sink.close()


class ProxyLog:
    """The traffic log of one frontend."""

    def __init__(self, logging: Logging, proxy, targets: list[Target], engine):
        self.logging = logging
        self.proxy = proxy
        self.targets = targets
        self.engine = engine
        self.dontlognull = proxy.dontlognull
        # `option dontlog-normal` / `log-separate-errors`: lines of exchanges that
        # went wrong (termination flags other than "--", or a 5xx) alone, or at err.
        self.dontlog_normal = "dontlog-normal" in proxy.options
        self.separate_errors = "log-separate-errors" in proxy.options
        self.lines = 0  # lines this frontend logged (%lc: those before a line)
        fmt = proxy.log_format or formats.DEFAULT
        try:
            captures = Captures.compile(proxy.captures)
            self.render = formats.compile_format(fmt, captures)
            if captures is None and formats.NAMED.get(fmt, fmt) == formats.NAMED["httplog"]:
                # the common line, written out by hand for the compiled
                # build (imported here: it loads the proxy's session module)
                from haply.logs import httplog_line
                self.http_render = httplog_line.render
            else:
                self.http_render = formats.compile_http(fmt, captures)
        except formats.FormatError as exc:
            raise formats.FormatError(f"{proxy.location}: log-format of '{proxy.name}': {exc}") from None
        self.http = proxy.mode == "http"
        # mode tcp: `unique-id-format` gives %ID its value when the line is made
        # (mode http makes it with the request: haply.logs.unique_id)
        self.tcp_unique_id = (formats.compile_format(proxy.unique_id_format)
                              if not self.http and proxy.unique_id_format else None)
        # Traffic lines are "info": the targets that take it, resolved once
        # (a line per request goes straight to framer and sink).
        info = syslog.SEVERITIES["info"]
        self._info = [(t.framer.frame, t.sink.send) for t in targets if info <= t.max_severity]

    # ------------------------------------------------------------- HTTP

    def http_done(self, session, request, exchange: Exchange, status: int | None = None,
                  termination: str = "----", server=None, asap: bool = False) -> None:
        """The line of an exchange; asap: logged as its response head went out
        (option logasap: AsapRecord)."""
        # %rt and %lc count the requests and lines before this one (HAProxy
        # numbers from 0), so both counters move once the line is made.
        logging = self.logging
        if request.cookie_flags != "--":  # cookie persistence's two characters
            termination = termination[:2] + request.cookie_flags
        level = request.log_level  # set by a set-log-level rule
        if level == "silent":
            logging.request_counter += 1  # numbered all the same
            return
        problem = False
        if self.dontlog_normal or self.separate_errors:
            final = status if status is not None else exchange.status
            problem = termination[:2] != "--" or final is None or final >= 500
            if self.dontlog_normal and not problem:
                logging.request_counter += 1  # numbered all the same
                return
        render = self.http_render
        if asap:
            line = self.render(AsapRecord(self, session, request, exchange, session.loop.time(),
                                          status, termination, server))
        elif render is not None:
            held = request.server
            if status is None:
                status = exchange.status if exchange.status is not None else -1
            line = render(session, request, exchange, session.loop.time(), status, termination,
                          held if held is not None else server, 1 if held is not None else 0,
                          self)
        else:
            line = self.render(HttpRecord(self, session, request, exchange, session.loop.time(),
                                          status, termination, server))
        logging.request_counter += 1
        self.lines += 1
        if level is not None:
            logging.send(self.targets, level, line)
            return
        if problem and self.separate_errors:
            logging.send(self.targets, "err", line)
            return
        now = logging.clock()
        for frame, send in self._info:
            send(frame("info", line, now))

    def http_empty(self, session, begin: float, wall: float, null: bool = True,
                   status: int = 400, termination: str = "CR--") -> None:
        """A client that closed before sending a whole request head (or, with
        status 408 and cR--, that timed out sending nothing): `null`, nothing
        at all (not logged under dontlognull)."""
        number = self.logging.request_counter  # HAProxy numbers these too (%rt)
        self.logging.request_counter = number + 1
        if null and self.dontlognull:
            return
        lines = self.lines
        self.lines = lines + 1
        frontend = session.frontend
        context = getattr(session, "context", None)
        ms = int((session.loop.time() - begin) * 1000)
        record = Record(
            client_ip=session.client_ip,
            client_port=_text(context.src_port) if context else "",
            frontend_ip=_text(context.dst) if context else "", frontend_port=session.dest_port,
            frontend=frontend.name, ssl=session.ssl, backend=frontend.name, server="<NOSRV>",
            accept_time=wall, request_time=wall, TR=-1, Tw=-1, Tc=-1, Tr=-1, Ta=ms, Tt=ms,
            Ti=0, status=status, bytes_read=0, bytes_uploaded=0, termination=termination,
            actconn=self.engine.global_gate.current, feconn=frontend.gate.current, beconn=0,
            srv_conn=0, retries=0, srv_queue=0, backend_queue=0, request_line="<BADREQ>",
            method="", uri="", http_version="", hostname=self.logging.hostname,
            pid=self.logging.pid, request_counter=number, log_counter=lines)
        self.logging.send(self.targets, "info", self.render(record))

    # ------------------------------------------------------- connections

    def connection_error(self, listener: str, client: tuple | None, wall: float, message: str,
                         null: bool = False) -> None:
        """A connection that ended before it became a session (its PROXY
        header missing, malformed or late): HAProxy's line for it, whatever
        the log format, `client_ip:port [accept date] frontend/listener:
        message`; `null`, it sent nothing at all (not logged under
        dontlognull)."""
        if null and self.dontlognull:
            return
        self.lines += 1
        host, port = (client[0], client[1]) if client else ("", "")
        self.logging.send(self.targets, "info", f"{host}:{port} [{formats.accept_date(wall)}] "
                                                f"{self.proxy.name}/{listener}: {message}")

    def connect(self, line: str) -> None:
        """HAProxy's default line, a stream starting (haply.logs.hooks)."""
        self.lines += 1
        self.logging.send(self.targets, "info", line)

    # -------------------------------------------------------------- TCP

    def tcp_done(self, frontend, client: tuple | None, local: tuple | None, backend, server,
                 begin: float, wall: float, now: float, bytes_in: int, bytes_out: int,
                 termination: str = "--", t_wait: int = 0, t_connect: int = 0,
                 retries: int | str = 0, queue_positions: tuple | None = None,
                 ssl: bool = False) -> None:
        """client, local: the connection's two addresses; t_wait, t_connect: ms
        in the backend's queue and to connect (Tw, Tc), -1 when the connection
        never got there; retries: the %rc field; queue_positions: %sq and %bq,
        if it waited in a queue; ssl: it came over TLS (`bind ... ssl`: the
        frontend's name ends with "~")."""
        # HAProxy numbers every session (%rt), logged or not
        number = self.logging.request_counter
        self.logging.request_counter = number + 1
        if self.dontlognull and bytes_in == 0:
            return
        problem = termination[:2] != "--"
        if self.dontlog_normal and not problem:
            return
        lines = self.lines
        self.lines = lines + 1
        ms = int((now - begin) * 1000)
        record = Record(
            client_ip=client[0] if client else "", client_port=client[1] if client else "",
            frontend_ip=local[0] if local else "", frontend_port=local[1] if local else "",
            frontend=frontend.name, ssl=ssl,
            backend=backend.name if backend is not None else frontend.name,
            server=server.name if server is not None else "<NOSRV>",
            server_ip=server.host if server is not None else "",
            server_port=server.port if server is not None else "",
            accept_time=wall, request_time=wall, TR=0, Tw=t_wait, Tc=t_connect, Tr=0, Ta=ms,
            # no HTTP status: HAProxy writes 0; the cookie flags are always "--"
            Tt=ms, Ti=0, status=0, bytes_read=bytes_out, bytes_uploaded=bytes_in,
            termination=termination + "--",
            actconn=self.engine.global_gate.current, feconn=frontend.gate.current,
            beconn=max(0, backend.current_sessions + backend.waiting - 1) if backend is not None else 0,
            srv_conn=max(0, server.current_sessions - 1) if server is not None else 0, retries=retries,
            srv_queue=queue_positions[0] if queue_positions else 0,
            backend_queue=queue_positions[1] if queue_positions else 0,
            request_line="", method="", uri="", http_version="",
            hostname=self.logging.hostname, pid=self.logging.pid,
            request_counter=number, log_counter=lines)
        if self.tcp_unique_id is not None:  # made when the line is, as HAProxy does
            record.unique_id = self.tcp_unique_id(record)
        level = "err" if problem and self.separate_errors else "info"
        self.logging.send(self.targets, level, self.render(record))


def _text(value) -> str:
    return value.decode("latin-1") if value.__class__ is bytes else value
