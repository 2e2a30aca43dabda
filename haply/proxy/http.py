"""mode http: one client connection, its requests in order, and their exchanges.

The parser callbacks only record (uvicorn's habit); decisions are taken at three
points: when a request head is complete (route, rewrite, pick a server), when a
response head arrives (rewrite, frame it for the client), and when an exchange ends
(keep-alive or close, next pipelined request). Bodies stream through in both
directions with backpressure and are never buffered whole: only up to
`RETRY_BUFFER_SIZE` of a request body is kept so that a failed exchange can be
replayed on another server, as HAProxy's layer-7 retries do within one buffer.

Why haply retries more than HAProxy by default: when a controller dies, the
requests in flight on it get a reset or an empty answer. For an idempotent request
(RFC 9110 §9.2.2) that no byte of a response has been forwarded for, sending it
again elsewhere is safe, so haply does (`empty-response`, `junk-response` and
connection failures are on by default, within `retries`).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from typing import Any

import httptools

try:
    from mypy_extensions import mypyc_attr
except ImportError:  # read only when compiling (setup.py, HAPLY_MYPYC)
    def mypyc_attr(*args, **kwargs):
        return lambda cls: cls

from haply.http import cache, compression, framing, repair, responses, trailers
from haply.http.errors import LocalProtocolError, RemoteProtocolError
from haply.health.state import EV_L7_BAD, EV_L7_TIMEOUT
from haply.logs.exchange import Exchange
from haply.http.headers import (PLAIN_CONNECTION_VALUES, REWRITTEN, REWRITTEN_SIZES,
                                SampleContext)
from haply.proxy.backend import BackendRuntime, NoServerAvailable
from haply.proxy import caching
from haply.http.rewrite import split_target
from haply.proxy.conditions import first_answer, first_match, rejects
from haply.proxy.byte_counts import LostClient
from haply.proxy.counters import Tracking
from haply.proxy.outbox import Outbox
from haply.proxy import redirect
from haply.proxy.frontend import BEFORE_CONTENT, CONTENT, FrontendRuntime
from haply.proxy.timers import Deadline
from haply.tls.sni import client_sni
from haply.proxy.upstream import ConnectionPool, ExchangeTiming, UpstreamConnection
from haply.proxy.request_parser import ExtensionMethodParser, request_parser
from haply.proxy.route import Route
from haply.admin.services import Deferred, finish_deferred

# NoServerAvailable.reason of a request that waited in the queue until
# `timeout queue` (haply.proxy.backend): its log line shows the time waited as Tw.
QUEUE_TIMEOUT = "queue timeout"
# HAProxy only replays a request that still fits its buffer (tune.bufsize, 16 KiB).
RETRY_BUFFER_SIZE = 16384
# RFC 9110 §9.2.2: methods whose repetition has the same effect as one request.
IDEMPOTENT_METHODS = frozenset({b"GET", b"HEAD", b"PUT", b"DELETE", b"OPTIONS", b"TRACE"})

# Reasons for which client reading is paused; reading resumes when none is left.
PAUSE_WAITING = 1  # pipelined request or body waiting for a server
PAUSE_SERVER_FULL = 2  # the server's socket does not take the request body fast enough
PAUSE_PARKED = 4  # over maxconn

CRLF = b"\r\n"
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
# `option http-buffer-request` waits for the body until the request fills
# HAProxy's buffer: tune.bufsize less tune.maxrewrite (framing.MAX_HEAD_SIZE,
# read at each use since the global section sets it), head included (HAProxy
# 2.6 was seen to connect once 15000 to 15300 bytes of body followed a 60-byte
# head).
# The versions framing.request_framing accepts (it explains the others' refusal).
PLAIN_VERSIONS = frozenset(("1.0", "1.1"))
# The version at the end of a request line, as llhttp reports it
LINE_VERSIONS = {b"1.1": "1.1", b"1.0": "1.0"}
# Past every head budget: head_size is moved this far once a chunked
# request's head is complete, so that a field after it (a trailer) takes
# on_header's rare branch and the common one tests nothing more.
TRAILER_SECTION = 1 << 60
CONNECT = b"CONNECT"
CLIENT_EOF, SERVER_EOF = 1, 2


class Request:
    """One request from head to end of body, as seen on the client side."""

    __slots__ = ("method_bytes", "url", "version", "headers", "keep_alive", "chunked",
                 "body", "body_size", "complete", "upgrade", "tunnel_data",
                 "error", "head_bytes", "_header_map", "client_ip", "ssl",
                 "attempts", "redispatched", "backend", "server", "sent_body", "framing",
                 "route", "context", "t_wait", "t_connect", "plain", "cut", "raw", "hosts",
                 "cookie_server", "cookie_flags", "queue_positions",
                 # set only for a frontend with a `unique-id-format` (haply.logs.unique_id)
                 "unique_id",
                 # set only for a frontend with `capture` lines (haply.logs.captures)
                 "captured_request", "captured_response", "captured_cookie",
                 "captured_set_cookie",
                 # the server a failed connection was for, named by the log's %s
                 "tried",
                 # waiting for its body before a server is chosen (http-buffer-request)
                 "buffering",
                 # the algorithm chosen for the response (haply.http.compression),
                 # set only on a route with `compression`
                 "coding",
                 # the server's status, once its answer came (http-response
                 # rules' `status` acls read it)
                 "status",
                 # set (and read) only for an upgrade request: it asks for websocket
                 "websocket",
                 # its txn., req. and res. variables, from the first set-var
                 # (haply.proxy.variables)
                 "vars",
                 # its log line's level, when a set-log-level rule gave one
                 "log_level",
                 # set only by an http-request cache-use rule: its key, for
                 # cache-store (haply.proxy.caching.Pending)
                 "cache",
                 # set only for a chunked body: the fields after its last chunk
                 "trailers")

    # Declared for compiled builds (bench/RESULTS.md, mypyc): a compiled class
    # has only the attributes it declares.
    method_bytes: bytes
    url: bytes
    version: str
    headers: list[tuple[bytes, bytes]]
    keep_alive: bool
    chunked: bool
    body: list[bytes]
    body_size: int
    complete: bool
    upgrade: bool
    tunnel_data: bytes
    error: tuple[int, str] | None
    head_bytes: bytes
    _header_map: dict[str, list[str]] | None
    client_ip: str
    ssl: bool
    attempts: int
    redispatched: bool
    backend: BackendRuntime | None
    server: Any
    sent_body: int
    framing: Any
    route: Any
    context: SampleContext
    t_wait: int
    t_connect: int
    plain: bool
    cut: bytes | None
    raw: bytes | None
    hosts: int
    cookie_server: Any
    cookie_flags: str
    queue_positions: tuple[int, int] | None
    unique_id: Any
    captured_request: Any
    captured_response: Any
    captured_cookie: Any
    captured_set_cookie: Any
    tried: Any
    buffering: bool
    coding: Any
    status: int
    websocket: bool
    vars: Any
    log_level: Any
    cache: Any
    trailers: Any

    def __init__(self, context: SampleContext, client_ip: str, ssl: bool):
        self.context = context
        self.url = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.body: list[bytes] = []
        self.body_size = 0
        self.complete = False
        self.upgrade = False
        self.tunnel_data = b""
        self.error: tuple[int, str] | None = None
        self.head_bytes = b""
        self._header_map: dict[str, list[str]] | None = None
        self.client_ip = client_ip
        self.ssl = ssl
        self.attempts = 0  # retries, connecting and replaying (the log's %rc)
        self.redispatched = False  # a retry moved it to another server ("+" in %rc)
        self.backend: BackendRuntime | None = None
        self.server = None
        self.sent_body = 0  # bytes of body already written to the current server
        self.chunked = False
        self.route = None
        # The log's Tw and Tc (ms in the backend's queue, ms to connect to the
        # server; 0 for a pooled connection), -1 until the request gets there.
        self.t_wait = -1
        self.t_connect = -1
        self.queue_positions: tuple[int, int] | None = None  # %sq/%bq, once queued
        # A head without field to drop or rewrite (but for one plain Connection
        # field, `cut`) goes to the server as received: `raw` is the bytes it
        # starts, when it starts a read (else the field list is written).
        self.plain = True
        self.cut: bytes | None = None
        self.raw: bytes | None = None
        self.hosts = 0  # Host fields: with plain, all request_framing would look at
        # Cookie persistence: the server the client's cookie names (if usable),
        # and the log's two persistence flags (haply.proxy.persistence).
        self.cookie_server = None
        self.cookie_flags = "--"
        self.buffering = False
        self.log_level = None

    # SampleContext, for header values such as %[src] (per connection, shared)
    @property
    def src(self) -> Any:
        return self.context.src

    @property
    def src_ip(self) -> Any:
        return self.context.src_ip

    @property
    def src_port(self) -> Any:
        return self.context.src_port

    @property
    def dst(self) -> Any:
        return self.context.dst

    @property
    def dst_ip(self) -> Any:
        return self.context.dst_ip

    @property
    def dst_port(self) -> Any:
        return self.context.dst_port

    @property
    def ssl_fc(self) -> Any:
        return self.context.ssl_fc
    # The same as text and numbers, for conditions and stick rules (RequestView)
    @property
    def local_ip(self) -> Any:
        return self.context.dst.decode()

    @property
    def local_port(self) -> Any:
        return int(self.context.dst_port)
    @property
    def client_port(self) -> Any:
        return int(self.context.src_port)
    # The connection's sticky counters, for the sc_* fetches and track-sc rules
    @property
    def tracking(self) -> Any:
        return self.context.tracking

    def tracker(self) -> Tracking:
        """The connection's sticky counters, made at the first track-sc rule."""
        context = self.context
        if context.tracking is None:
            context.tracking = Tracking()
        return context.tracking

    # RequestView / RequestKey for conditions and hashing balancers
    def header(self, name: str) -> list[str]:
        header_map = self._header_map
        if header_map is None:
            header_map = self._header_map = {}
            for key, value in self.headers:
                header_map.setdefault(key.decode("latin-1").lower(), []).append(
                    value.decode("latin-1"))
        return header_map.get(name, [])

    # Decoded only when a rule or a hashing balancer asks.
    @property
    def method(self) -> str:
        return self.method_bytes.decode("ascii", "replace")

    @property
    def uri(self) -> str:
        return self.url.decode("latin-1")

    @property
    def path(self) -> str:
        """As HAProxy's `path`: without an absolute form's scheme and host."""
        return split_target(self.url)[1].decode("latin-1")

    @property
    def query(self) -> str:
        url = self.url
        cut = url.find(b"?")
        return "" if cut < 0 else url[cut + 1:].decode("latin-1")

    @property
    def retryable(self) -> bool:
        return self.method_bytes in IDEMPOTENT_METHODS and self.body_size <= RETRY_BUFFER_SIZE


class RepairedHead:
    """The parser's protocol while a head written anew by haply.http.repair
    is read again: llhttp takes the control characters HAProxy keeps in field
    values only with its leniency on headers, which must not outlive that
    head (it would also take whitespace before a colon, obs-fold...). The
    session's own callbacks do the rest."""

    __slots__ = ("session",)

    def __init__(self, session: "HttpSession"):
        self.session = session

    def __getattr__(self, name):
        return getattr(self.session, name)

    def on_headers_complete(self) -> None:
        session = self.session
        session.parser.set_dangerous_leniencies(lenient_headers=False)
        session.on_headers_complete()


# Logging and byte counting derive their sessions from this class at run
# time (haply.logs.hooks, haply.proxy.byte_counts), overriding its hooks.
@mypyc_attr(allow_interpreted_subclasses=True)
class HttpSession(asyncio.Protocol):
    # Per-connection and per-exchange state starts from these class-level
    # values: a new connection stores only what is its own (a third of the
    # stores, which count in connection-per-request traffic).
    # Per-connection
    transport: asyncio.Transport | None = None
    counts_bytes = False  # on a transport that counts its bytes (haply.proxy.byte_counts)
    client_ip = ""
    ssl = False
    context: SampleContext | None = None
    parsing: Request | None = None
    head_size = 0
    paused = 0
    closed = False
    admitted = False
    client_writable = True
    dest_port: int | None = None
    broken = False  # a request was rejected; read nothing more
    rejection = 0  # the status owed to a bad request once those before it are answered
    refused = False  # by a tcp-request rule, before anything was read (not logged)
    held: list[bytes] | None = None  # what a connection parked over maxconn sent meanwhile
    fresh: bytes | None = None  # the read being parsed, if no request was begun
    # A request whose answer ended before its body did: the rest of its body
    # is read and dropped, so that the next request on the connection is found.
    discarding: Request | None = None
    # Per-exchange (the request at requests[0])
    upstream: UpstreamConnection | None = None
    # False until the answer's head is made, then that head (bytes): while it
    # is still in `out`, nothing of the answer has reached the client.
    response_started: bytes | bool = False
    response_chunked = False
    # llhttp reads on after a request whose trailers hold a Connection field
    # (HttpSession._trailer) until a request closes the connection
    lenient_close = False
    response_keep_alive = True
    response_until_close = False
    upstream_reusable = False
    tunnel = False
    tunnel_eofs = 0  # the sides of a tunnel that sent their end (CLIENT_EOF, SERVER_EOF)
    client_ended = False  # the client half-closed with requests still to answer
    client_gone = False  # the client left while its request went on (_outlives_client)
    # While `http-request tarpit` holds requests[0]: (rule, errorfiles, since)
    # of its answer, since being the loop time it entered the tarpit.
    tarpitted: tuple | None = None
    # The body being compressed (haply.http.compression), else None.
    encoder: compression.Encoder | None = None
    # The answer being stored by cache-store (haply.proxy.caching.Filling), else None.
    filling: caching.Filling | None = None
    exchanges = 0  # finished on this connection (the next is not its first)
    # `http-reuse never`: this client's own idle server connection
    private: UpstreamConnection | None = None
    # The task finding a server for requests[0] (queue, connect), if any.
    connecting: asyncio.Task | None = None
    # The read as received while a head written anew from it is parsed
    # (_read_repaired): what `show errors` keeps if that fails too.
    received: bytes | None = None
    # Logging sessions only (haply.logs.hooks): an Exchange per request not
    # yet logged, in arrival order, and the texts of the log line that are the
    # same for every request of the connection, made at its first
    # (haply.logs.formats._connection_constants). The per-request part of
    # logging is here rather than in the logging subclass: compiled, and
    # without a call through the subclass for each parser event.
    log_queue: deque[Exchange] | None = None
    log_constants: tuple[str, ...] | None = None

    def __init__(self, frontend: FrontendRuntime, router, pool: ConnectionPool):
        # Global
        self.frontend = frontend
        self.router = router
        self.pool = pool
        self.outbox: Outbox = pool.outbox
        self.loop = frontend.loop
        (self.timeout_http_request, self.timeout_keep_alive,
         self.timeout_client) = router.session_timeouts
        # Per-connection
        self.parser = request_parser(self)
        self.deadline = Deadline(frontend.wheel, self)
        self.requests: deque[Request] = deque()  # [0] is being answered
        # What one server read produced for the client, written at once by
        # `flush` (head and body of a small response in one send).
        self.out: list[bytes] = []

    # ================================================================ client

    def connection_made(self, transport: asyncio.Transport) -> None:
        self.transport = transport
        frontend = self.frontend
        view = None
        if frontend.tcp_rules is not None:
            view = frontend.screen(transport, BEFORE_CONTENT)
            if view is None:
                self.closed = self.refused = True
                return
        peer = transport.get_extra_info("peername")
        self.client_ip = peer[0] if peer else ""
        sockname = transport.get_extra_info("sockname")
        self.dest_port = sockname[1] if sockname else None
        self.ssl = transport.get_extra_info("sslcontext") is not None
        self.context = SampleContext.from_sockets(peer, sockname, self.ssl)
        if self.ssl:
            self.context.sni = client_sni(transport)
        if view is not None:
            self.context.tracking = view.tracking
        if self.frontend.admit(self._resume_admission):
            self._admitted()
        else:
            self.held = []
            self.pause_client_reading(PAUSE_PARKED)

    def _resume_admission(self) -> bool:
        if self.closed:
            return False
        if self.frontend.admit(self._resume_admission):
            self._admitted()
            held, self.held = self.held, None
            self.resume_client_reading(PAUSE_PARKED)
            for data in held:
                if not self.closed:
                    self.data_received(data)
        return True

    def _admitted(self) -> None:
        self.admitted = True
        self.frontend.engine.sessions.add(self)
        self.deadline.arm(self.timeout_http_request, "http-request")

    def data_received(self, data: bytes) -> None:
        if self.broken:
            return
        if self.held is not None:
            if self.admitted:
                # the start of a request whose method is not whole yet
                # (_read_extension_method): read again with what follows
                held, self.held = self.held[0], None
                self.frontend.bytes_in -= len(held)
                data = held + data
            else:
                # Parked over maxconn: uvloop starts reading once
                # connection_made returns, even when reading was paused
                # there. Keep this read for when the connection is let in,
                # and read nothing more until then.
                self.held.append(data)
                self.transport.pause_reading()
                return
        if self.tunnel:
            self.deadline.touch()
            self.outbox.write(self.upstream.transport, data)
            self.frontend.bytes_in += len(data)
            return
        self.frontend.bytes_in += len(data)
        parsing = self.parsing
        if parsing is None:
            # A request that begins in this read begins at its first byte.
            self.fresh = data
        else:
            self.fresh = None
            raw = parsing.raw
            if raw is not None and not (self.requests and self.requests[-1] is parsing):
                # Its head goes on in this read: all of it is kept, as for
                # one read (the raw path, _read_repaired).
                parsing.raw = raw + data
        if self.deadline.tag == "http-keep-alive":
            self.deadline.arm(self.timeout_http_request, "http-request")
        else:
            self.deadline.touch()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade as upgrade:
            request = self.requests[-1] if self.requests else None
            if request is not None and request.upgrade:
                request.tunnel_data = data[upgrade.args[0]:]
                # Nothing more is HTTP on this connection until the server agrees.
                self.pause_client_reading(PAUSE_WAITING)
            else:
                self._reject(400, "unexpected upgrade")
        except httptools.HttpParserError as exc:
            if self.received is None and self._read_repaired(data, exc):
                return
            if exc.__class__ is httptools.HttpParserInvalidMethodError and \
                    self._read_extension_method(data):
                return
            last = self.requests[-1] if self.requests else None
            if self.parsing is None and last is not None and not last.keep_alive:
                # Bytes after a request that closes the connection: llhttp
                # refuses them; like HAProxy, haply answers what came before
                # and ignores the rest.
                self.broken = True
                return
            request = self.parsing
            if request is not None and request.error is not None:
                status, reason = request.error
            else:
                status, reason = 400, str(exc) or "malformed request"
            self._reject(status, reason, data if self.received is None else self.received)

    def _read_repaired(self, data: bytes, exc: Exception) -> bool:
        """A head llhttp refused that HAProxy reads (haply.http.repair: bare
        LF, tabs in the request line, obs-fold, control characters in values)
        is read again as written anew, and goes to the server so; one HAProxy
        refuses gets its 400 here, with the reason of its fault. Only a
        request that began at the start of a read can be (its bytes are all
        kept, `raw`); a head not whole yet, refused by nothing so far, is
        kept until it is. False: the refusal stands as llhttp gave it."""
        request = self.parsing
        if request is None or request.error is not None or (
                self.requests and self.requests[-1] is request):
            return False  # not its head that llhttp refused
        raw = request.raw
        if raw is None or raw[len(raw) - len(data):] != data:
            return False  # its start is not known (it began within a read)
        head = repair.request_head(raw)
        if head is None:
            if len(raw) > framing.MAX_HEAD_SIZE or repair.refused(raw):
                return False
            self.held = [raw]
            self.parser = request_parser(self)
            self.parsing = None
            return True
        if head.__class__ is repair.HeadError:
            if head is repair.LEFT:
                return False
            self._reject(400, head.reason, raw)
            return True
        if exc.__class__ is httptools.HttpParserInvalidMethodError and \
                raw[len(raw) - len(raw.lstrip(b"\r\n")):head.end] == head.data:
            return False  # nothing to repair: only the method is unknown to llhttp
        # The method goes as GET but for CONNECT, which llhttp frames apart:
        # llhttp knows a fixed list of them, HAProxy forwards any token.
        method, _, rest = head.data.partition(b" ")
        if method == CONNECT:
            self.parser = parser = request_parser(RepairedHead(self))
            again = head.data
        else:
            self.parser = parser = request_parser(RepairedHead(self), ExtensionMethodParser)
            parser.method = method
            again = b"GET " + rest
        parser.set_dangerous_leniencies(lenient_headers=True)
        again += raw[head.end:]
        # self.parsing stays set: this read is no request's first, so the raw
        # path does not send it as received
        self.frontend.bytes_in -= len(again)  # counted as received
        self.received = raw
        try:
            self.data_received(again)
        finally:
            self.received = None
        return True

    def _read_extension_method(self, data: bytes) -> bool:
        """A method llhttp does not know: when it is a token, which HAProxy
        forwards, the request is read again with GET in its place and its own
        method reported (ExtensionMethodParser), then written from its parts
        (its line's protocol checked here, as the raw path would). A method
        not whole yet is kept, and read again with what comes next, as
        HAProxy waits for it. False when it cannot be: not a token, or a
        request that did not begin at this read (its start in `data` is not
        known)."""
        request = self.parsing
        if request is None or request.raw is not data:
            return False
        found = framing.extension_method(data)
        if found is None:
            return False
        method, rest = found
        if rest is None:
            if len(data) > framing.MAX_HEAD_SIZE:
                return False
            self.held = [data]
            self.parser = request_parser(self)
            self.parsing = None
            return True
        try:
            framing.check_protocol(rest)
        except RemoteProtocolError:
            return False
        self.parser = parser = request_parser(self, ExtensionMethodParser)
        parser.method = method
        # self.parsing stays set: this read is no request's first, so the
        # raw path does not send GET for it
        self.frontend.bytes_in -= len(data)  # counted again
        self.data_received(b"GET" + rest)
        return True

    def eof_received(self) -> bool:
        # The answers of this turn go out first: returning False closes the
        # transport, and the outbox skips a closed one.
        self.outbox.send()
        if self.tunnel:
            return self._tunnel_eof(CLIENT_EOF, self.upstream.transport)
        # A client half-close after a complete request still wants its answer,
        # unless `option abortonclose` drops a request still waiting for a server.
        if self.requests and self.parsing is None:
            if self._abort_waiting():
                return False
            self.client_ended = True  # no request can follow: close once these are answered
            return True
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        if self.closed:
            return
        if self.tunnel:
            self._end_tunnel("CD--" if exc is not None else "----")
            return
        if self.tarpitted is not None:
            self._tarpit_abandoned()
        elif self.requests:
            if self._outlives_client():
                return
            if self.requests[0].server is not None:
                # C: the client left, D: with its request unfinished or its
                # answer under way
                self._broken_off("CD--")
            elif self.connecting is not None and not self.connecting.done():
                self._left_waiting()
        elif self.admitted and not self.refused and self.deadline.tag == "http-request":
            self._left_before_request()
        self.close()

    def _outlives_client(self) -> bool:
        """A client that leaves once its whole request is at its server, or on
        its way there (queued, connecting): without `option abortonclose` the
        request goes on, as HAProxy 2.6 lets it, and its answer, counted, ends
        the exchange as broken off by the client (CD--, `_answer_lost`). What
        the session would still send goes nowhere (LostClient). False when
        the request is not whole, or is already being answered. (HAProxy
        notices a reset only when it writes, so `option abortonclose`, which
        acts on a client's end of sending, does not apply.)"""
        request = self.requests[0]
        if not request.complete or self.response_started or self.client_gone:
            return False
        if request.server is None and (self.connecting is None or self.connecting.done()):
            return False
        self.client_gone = self.client_ended = True
        self.transport = LostClient(self.transport)
        if not self.client_writable:
            # the server's answer was held for a client that read slowly; it
            # is wanted now, and the server's timeout runs again
            self.resume_writing()
        return True

    def _left_waiting(self) -> None:
        """The client left while its request, not yet whole, waited for a
        server: it is dropped, logged CQ-- (in the queue) or CC-- (while
        connecting) and counted as a client abort in its backend, as HAProxy
        does."""
        request = self.requests[0]
        backend = request.backend
        backend.client_aborts += 1
        backend.unanswered += 1
        self._ended(request, "CQ--" if request.t_wait < 0 else "CC--")
        task, self.connecting = self.connecting, None
        # Cancelled after its first step (see _abort_waiting).
        self.loop.call_soon(task.cancel)

    def _answer_lost(self, upstream: UpstreamConnection, status: int) -> None:
        """The answer to the request of a client that left (`_outlives_client`):
        counted as an answer in the frontend and on the server, as HAProxy
        counts it before its write to the client fails, then the exchange
        ends broken off by the client."""
        request = self.requests[0]
        klass = status // 100
        request.server.http_responses[klass] += 1
        self.frontend.http_responses[klass] += 1
        self.response_started = True
        upstream.detach()
        upstream.close()
        self._broken_off("CD--")
        self.close()

    def _left_before_request(self) -> bool:
        """The client closed before a whole request head came (nothing at all
        on a new connection, or part of a head): HAProxy counts a request
        answered 400 and a request error (and logs <BADREQ> CR--). An idle
        keep-alive connection that closes is not counted. False when it is
        not (`option http-ignore-probes`), nor to be logged."""
        if self.parsing is None and self._ignores_probe():
            return False
        frontend = self.frontend
        frontend.http_requests += 1
        frontend.http_responses[4] += 1
        frontend.request_errors += 1
        tracking = self.context.tracking
        if tracking is not None:
            now = self.loop.time()
            tracking.request_begun(now)
            tracking.request_failed(now)
        return True

    def _ignores_probe(self) -> bool:
        """`option http-ignore-probes`, for a connection that sent nothing
        (the caller checked): not logged, not counted, no 408."""
        return "http-ignore-probes" in self.frontend.proxy.options
    def _abort_waiting(self) -> bool:
        """`option abortonclose`: the client closed (or half-closed) its side
        while its request waits in the queue or for its server connection:
        the request is dropped, never sent, and the connection closed.
        Without the option the request goes on, as HAProxy 2.6 sends it."""
        request = self.requests[0]
        task = self.connecting
        if (request.server is not None or task is None or task.done()
                or request.backend is None or not request.backend.proxy.abort_on_close):
            return False
        self.connecting = None
        # Cancelled after its first step: a task cancelled before it starts
        # never runs the code that gives back a slot taken for it.
        self.loop.call_soon(task.cancel)
        self.close()
        return True

    def pause_writing(self) -> None:
        self.client_writable = False
        upstream = self.upstream
        if upstream is not None and not upstream.closed:
            upstream.transport.pause_reading()
            if self.deadline.tag == "server":
                # The client now holds the transfer up, not the server: its
                # timeout runs, and expiring is its fault (cD--), as in HAProxy.
                self.deadline.arm_idle(self.timeout_client, "client")

    def resume_writing(self) -> None:
        self.client_writable = True
        upstream = self.upstream
        if upstream is not None and not upstream.closed:
            upstream.transport.resume_reading()
            if self.deadline.tag == "client" and self.requests:
                self.deadline.arm_idle(self.requests[0].backend.proxy.timeouts.server, "server")

    def pause_client_reading(self, reason: int) -> None:
        if not self.paused and self.transport is not None and not self.closed:
            self.transport.pause_reading()
        self.paused |= reason

    def resume_client_reading(self, reason: int) -> None:
        if self.paused & reason:
            self.paused &= ~reason
            if not self.paused and not self.closed:
                self.transport.resume_reading()

    # ---------------------------------------------------------- parser events

    def on_message_begin(self) -> None:
        self.parsing = request = Request(self.context, self.client_ip, self.ssl)
        fresh = self.fresh
        request.raw = fresh
        self.fresh = None
        self.head_size = 0
        # A request pipelined behind one in flight gets its time once it is
        # the current one (_next_request): the deadline is the exchange's now.
        if self.deadline.tag != "http-request" and not self.requests:
            self.deadline.arm(self.timeout_http_request, "http-request")
        log_queue = self.log_queue
        if log_queue is not None:
            # timed from its first byte; `fresh`, the read it begins in, was
            # counted as received already (haply.proxy.byte_counts)
            transport: Any = self.transport
            received: int = transport.received
            log_queue.append(Exchange(self.loop.time(), time.time(), transport.written,
                                      received - len(fresh) if fresh is not None else received))

    def on_url(self, url: bytes) -> None:
        request: Request = self.parsing  # never None in llhttp's callbacks
        request.url += url
        self.head_size += len(url)
        if self.head_size > framing.MAX_HEAD_SIZE:
            error = framing.head_too_large(len(request.url))
            request.error = (error.status_hint, str(error))
            raise error

    def on_header(self, name: bytes, value: bytes) -> None:
        request: Request = self.parsing  # never None in llhttp's callbacks
        request.headers.append((name, value))
        size = len(name)
        if size == 4 and name.lower() == b"host":
            request.hosts += 1
        elif size in REWRITTEN_SIZES and request.plain:
            lname = name.lower()
            if lname in REWRITTEN:
                if (lname == b"connection" and request.cut is None
                        and value.lower() in PLAIN_CONNECTION_VALUES):
                    request.cut = name + b": " + value
                else:
                    request.plain = False
        self.head_size += size + len(value) + 4
        if self.head_size > framing.MAX_HEAD_SIZE:
            if self.head_size > TRAILER_SECTION:
                self._trailer(request)
                return
            error = framing.head_too_large(len(request.url))
        elif len(request.headers) > framing.MAX_HEADERS:
            error = framing.too_many_headers()
        else:
            return
        request.error = (error.status_hint, str(error))
        raise error

    def on_headers_complete(self) -> None:
        log_queue = self.log_queue
        if log_queue:
            log_queue[-1].headers_at = self.loop.time()
        parser = self.parser
        request: Request = self.parsing  # never None in llhttp's callbacks
        request.method_bytes = parser.get_method()
        # A stopping process answers each request with Connection: close.
        request.keep_alive = parser.should_keep_alive() and not self.frontend.engine.stopping
        request.upgrade = parser.should_upgrade()
        url = request.url
        version = None
        try:
            if url[0] != 47 or b"#" in url:  # not a plain "/..." path: the whole check
                framing.check_request_target(url, request.headers)
            raw = request.raw
            if raw is not None:
                # The line as received goes to the server on the raw path
                # (_dispatch): its protocol must be HTTP, which llhttp does not
                # see to (RTSP). " HTTP/1.1\r\n" ends it: test its "H" first.
                # And it must be "method SP target SP version", as llhttp
                # reports them: llhttp also takes empty lines (a bare LF too)
                # before it and more spaces between its parts, which HAProxy
                # writes anew and a server may read otherwise. Such a line is
                # written from the parts instead.
                end = raw.find(b"\r\n")
                if end != len(url) + len(request.method_bytes) + 10 or raw[end - 8] != 72:
                    framing.check_protocol(raw)
                    request.plain = False
                else:
                    # the line ends with "HTTP/x.y", as llhttp read it: its
                    # version without the parser's string formatting
                    version = LINE_VERSIONS.get(raw[end - 3:end])
            request.version = version or parser.get_http_version()
            if request.plain and request.hosts < 2 and request.version in PLAIN_VERSIONS:
                # No framing field and at most one Host: what request_framing
                # would find in its pass over the fields.
                body = request.framing = framing.NO_BODY
            else:
                if request.version not in PLAIN_VERSIONS and framing.minor_version_above(request.version):
                    self._speak_http11(request)
                body = request.framing = framing.request_framing(
                    request.method_bytes, request.version, request.headers)
                if body.kind == framing.CHUNKED:
                    request.trailers = []
                    self.head_size += TRAILER_SECTION
                if request.hosts > 1:  # identical copies (others were refused): keep one
                    self._keep_one_host(request)
                # A plain head has at most one Connection field, reading close
                # or keep-alive, and no Proxy-Connection: llhttp reads those as
                # HAProxy does. Others are read again where llhttp's answer may
                # be wrong: an HTTP/1.0 one kept, an HTTP/1.1 one closed.
                if not request.plain and request.keep_alive is (request.version == "1.0"):
                    self._read_connection(request)
            if request.upgrade:  # llhttp's word for an Upgrade field and for CONNECT
                if request.method_bytes == CONNECT:
                    request.websocket = False
                    body = request.framing = framing.connect_framing(url, request.headers, body)
                else:
                    request.websocket = framing.is_websocket_upgrade(request.headers)
        except RemoteProtocolError as exc:
            if version is None:
                request.version = parser.get_http_version()
            request.error = (exc.status_hint, str(exc))
            raise
        request.chunked = body.kind == framing.CHUNKED
        self.frontend.http_requests += 1
        captures = self.router.captures
        if captures is not None:
            captures.on_request(request, request.headers)
        if self.router.unique_id is not None:
            request.unique_id = self.router.unique_id(self, request)
        self.requests.append(request)
        if len(self.requests) == 1:
            self._start(request)
        else:
            # Pipelined: answered in order once the one before it is done.
            self.pause_client_reading(PAUSE_WAITING)

    def _read_connection(self, request: Request) -> None:
        """Whether the client keeps its connection, from its Connection fields
        alone (RFC 9112 §9.3: close wins over keep-alive), as HAProxy reads
        them. llhttp also reads a Proxy-Connection field, which no standard
        defines, and keeps an HTTP/1.0 connection whose fields say both
        keep-alive and close."""
        request.keep_alive = framing.peer_wants_keep_alive(
            request.version, framing.connection_options(request.headers)
        ) and not self.frontend.engine.stopping

    @staticmethod
    def _speak_http11(request: Request) -> None:
        """An HTTP/1.2 to 1.9 request goes on as HTTP/1.1 (RFC 9112 §2.6, as
        HAProxy does): its line is written anew, and whether the client keeps
        its connection is read from its Connection fields (llhttp keeps it
        whatever they say for these versions)."""
        request.version = "1.1"
        request.plain = False
        request.keep_alive = request.keep_alive and b"close" not in framing.connection_options(
            request.headers)

    def _trailer(self, request: Request) -> None:
        """A field after the last chunk (on_header put it among the head's):
        kept for the server, within the head's limits (400 past them)."""
        field = request.headers.pop()
        fields = request.trailers
        fields.append(field)
        error = trailers.section_error(
            len(fields), sum(len(name) + len(value) + 4 for name, value in fields) + 2, 400)
        if error is not None:
            request.error = (error.status_hint, str(error))
            raise error
        if field[0].lower() == b"connection" and request.keep_alive:
            # llhttp would end the connection after a trailer's close, and
            # refuse the next request; HAProxy reads on. The leniency ends
            # with the next request that does close it (_stops_reading).
            self.parser.set_dangerous_leniencies(lenient_keep_alive=True)
            self.lenient_close = True

    def on_body(self, body: bytes) -> None:
        request: Request = self.parsing  # never None in llhttp's callbacks
        size = len(body)
        request.body_size += size
        upstream = self.upstream
        if (upstream is not None and self.requests and request is self.requests[0]
                and request.server is not None):
            self._send_body(upstream, body, request.chunked)
            if request.body_size <= RETRY_BUFFER_SIZE:
                request.body.append(body)
            request.sent_body += size
            return
        if request is self.discarding:
            return
        request.body.append(body)
        if request.buffering and self._held_size(request) >= framing.MAX_HEAD_SIZE:
            self._body_buffered(request)  # the buffer is full: on to a server
        elif request.body_size > RETRY_BUFFER_SIZE:
            # No server to take it yet: hold one buffer, then stop reading.
            self.pause_client_reading(PAUSE_WAITING)

    def on_message_complete(self) -> None:
        request: Request = self.parsing  # never None in llhttp's callbacks
        self.parsing = None
        request.complete = True
        if request.route.__class__ is Deferred:
            finish_deferred(self, request)
            return
        if request.buffering:
            self._body_buffered(request)
            if not request.keep_alive and self._stops_reading(request):
                self.pause_client_reading(PAUSE_WAITING)
            return
        upstream = self.upstream
        if upstream is None:
            if request is self.discarding:  # its answer came before its end
                self.discarding = None
                self._next_request()
                return
            if not self.requests and self.deadline.tag == "http-request" and not self.closed:
                # haply answered it from its head, while it was still being
                # read: the wait that follows is for a next request, and a
                # client that leaves now leaves no request behind.
                self.deadline.arm(self.timeout_keep_alive, "http-keep-alive")
        # The queue may be empty: haply itself may already have answered this
        # request (monitor-uri, a redirect) from its head.
        elif (self.requests and request is self.requests[0]
                and request.server is not None and request.chunked):
            self.outbox.write(upstream.transport, trailers.last_chunk(request.trailers))
        if not request.keep_alive and self._stops_reading(request):
            self.pause_client_reading(PAUSE_WAITING)

    def _stops_reading(self, request: Request) -> bool:
        """Whether reading stops after a last request; it goes on when
        `option abortonclose` must see its client leave while it waits for a
        server (bytes after a last request are refused by the parser, as
        they were before: the leniency a trailer's Connection field asked
        for, if any, ends here, before llhttp reads on)."""
        if self.lenient_close:
            self.parser.set_dangerous_leniencies(lenient_keep_alive=False)
            self.lenient_close = False
        backend = request.backend
        return not (request.server is None and backend is not None
                    and backend.proxy.abort_on_close)

    # ================================================================= routing

    def _start(self, request: Request) -> None:
        """Route the request at the head of the queue and send it to a server.

        Until it is sent, `timeout client` runs (idle); a request that leaves
        here on a pooled server connection goes straight to `timeout server`,
        so that one is armed only on the other paths (local answers re-arm or
        close themselves)."""
        router = self.router
        frontend = self.frontend
        if frontend.content_rules and rejects(frontend.tcp_rules[CONTENT], request):
            # tcp-request content, evaluated again for each request as
            # HAProxy does: the connection ends, unanswered
            frontend.denied += 1
            frontend.http_requests -= 1  # HAProxy counts no request these rules refuse
            self.refused = True
            self.close()
            return
        tracking = self.context.tracking
        if tracking is not None:
            tracking.request_begun(self.loop.time())
        monitor_uri = router.monitor_uri
        if monitor_uri is not None and request.url == monitor_uri:
            failing = router.monitor_fail
            status = 503 if failing is not None and any(test(request) for test in failing) else 200
            self.frontend.intercepted += 1
            errorfiles = router.errorfiles  # `errorfile 200` and `503` answer it too
            keep_alive = request.keep_alive and not responses.must_close(status, errorfiles)
            self._respond_local(status, responses.error_response(status, errorfiles,
                                                                 close=not keep_alive),
                                keep_alive=keep_alive)
            return
        if router.answers is not None:
            rule = first_answer(router.answers, request)
            if rule is not None:
                self._answer(request, rule, router.errorfiles, None)
                return
        if router.redirects is not None:
            rule = first_match(router.redirects, request)
            if rule is not None:
                self._redirect(request, rule)
                return
        # `timeout client` is armed before each way out but the pooled send
        # (local answers that close cancel it anyway).
        services = router.services
        if services is not None:
            self.deadline.arm_idle(self.timeout_client, "client")
            if services.serve(self, request):
                self.frontend.intercepted += 1
                return
        route: Route | None = router.route(request)
        if route is None:
            self._respond_local(503)
            return
        backend: BackendRuntime = route.backend
        if backend.content_rules is not None and rejects(backend.content_rules, request):
            # the backend's tcp-request content: the connection ends, unanswered
            self.frontend.denied += 1  # HAProxy counts it in the frontend's dreq
            self.refused = True
            self.close()
            return
        backend.routed += 1  # backend.routed_in(), inline: once per request
        if backend.current_sessions + backend.waiting >= backend.max_sessions:
            backend.max_sessions = backend.current_sessions + backend.waiting + 1
        if route.answers is not None:
            self.deadline.arm_idle(self.timeout_client, "client")
            rule = first_answer(route.answers, request)
            if rule is not None:
                self._answer(request, rule, route.errorfiles, route)
                return
        if route.redirects is not None:
            self.deadline.arm_idle(self.timeout_client, "client")
            rule = first_match(route.redirects, request)
            if rule is not None:
                request.backend = backend
                request.route = route
                self._redirect(request, rule)
                return
        request.backend = backend
        request.route = route
        if route.cookie is not None:
            self._persist(request, route.cookie)
        if route.compression is not None:
            self._select_coding(request, route.compression)
        if (route.buffer_request and not request.complete
                and request.framing.kind != framing.NONE):
            self._buffer_body(request)
            if request.buffering:
                return
        self._dispatch(request)

    def _buffer_body(self, request: Request) -> None:
        """`option http-buffer-request`: hold the body until it is complete or
        fills a buffer, then choose the server (`_dispatch`); `timeout
        http-request` covers that wait (counted from the end of the head).
        A client waiting for 100 Continue gets it from haply, and the
        server does not see its Expect field, as with HAProxy 2.6."""
        if self._held_size(request) >= framing.MAX_HEAD_SIZE:
            return
        request.buffering = True
        self.deadline.arm(self.timeout_http_request, "http-request")
        if self.paused & PAUSE_WAITING:  # a pipelined request: its body is to be read
            self.resume_client_reading(PAUSE_WAITING)
        expect = request.header("expect")
        if expect and request.version == "1.1" and expect[-1].lower() == "100-continue":
            request.headers = [field for field in request.headers
                               if field[0].lower() != b"expect"]
            request._header_map = None
            request.plain = False
            self.outbox.write(self.transport, CONTINUE)

    def _held_size(self, request: Request) -> int:
        """The head and body HAProxy's buffer would hold (a chunked request's
        head_size is past TRAILER_SECTION)."""
        return self.head_size % TRAILER_SECTION + request.body_size

    def _body_buffered(self, request: Request) -> None:
        request.buffering = False
        if self.requests and self.requests[0] is request:
            self.deadline.arm_idle(self.timeout_client, "client")
            self._dispatch(request)

    def _dispatch(self, request: Request) -> None:
        """Write the request's head and send it to a server of its route."""
        route: Route = request.route
        backend: BackendRuntime = request.backend
        writer = route.request_writer
        head = None
        raw = request.raw
        if raw is not None:
            request.raw = None  # the read may be large: not kept
            if (request.plain and writer.plain and not request.upgrade
                    and request.framing.kind == framing.NONE):
                end = raw.find(b"\r\n\r\n")
                if end >= 0:  # else the head spans reads
                    head = writer.write_plain(raw[:end + 4], request.cut, request.version,
                                              route.server_keep_alive, request)
        if head is None:
            try:
                # A CONNECT goes as any request (HAProxy's Connection field),
                # not as an Upgrade
                head = writer.write(
                    request.method_bytes, request.url, request.version, request.headers,
                    request.framing, route.server_keep_alive, request,
                    request.upgrade and request.method_bytes != CONNECT)
            except LocalProtocolError:
                self._respond_local(505)
                return
        request.head_bytes = head
        persistent = request.cookie_server  # use-server first, then the cookie, then stick rules
        if backend.use_server is not None:
            forced = backend.forced_server(request)
            if forced is not None:
                # as if its cookie chose it: no cookie is inserted (HAProxy)
                persistent = request.cookie_server = forced
        if persistent is None and backend.stick is not None:
            persistent = backend.stick.match(request, self.loop.time())
        if persistent is None and self.private is not None and route.prefer_last_server:
            persistent = self._last_server(backend)
        if persistent is None:
            server = backend.try_acquire(request)
        else:
            server = backend.try_acquire_server(persistent)
            if server is None:  # full: wait for it in its own queue
                self.deadline.arm_idle(self.timeout_client, "client")
                self.connecting = self.loop.create_task(
                    self._connect_and_send(request, None, persistent))
                return
        if server is not None:
            request.t_wait = 0
            if route.reuse is None:
                # haply's default: an idle connection for a request it can
                # replay elsewhere should that connection be dead (request.retryable)
                upstream = (self.pool.take(server, backend.server_sni(server, request, self.transport)
                                           if backend.tls else None)
                            if request.method_bytes in IDEMPOTENT_METHODS
                            and request.body_size <= RETRY_BUFFER_SIZE else None)
            else:
                upstream = self._idle_connection(route.reuse, request, server, backend)
            if upstream is not None:
                server.reuses += 1
                request.t_connect = 0
                request.server = server
                self._send_request(upstream, request)  # arms `timeout server`
                return
        self.deadline.arm_idle(self.timeout_client, "client")
        self.connecting = self.loop.create_task(self._connect_and_send(request, server, persistent))

    def _set_status(self, rules, request: Request, status: int) -> tuple[int, bytes | None]:
        """The status and reason `http-response set-status` rules give the
        answer (the last rule that applies wins; None: none applies); the log
        records it. The response's set-var rules among them run in order."""
        sent, reason = status, None
        for test, new_status, new_reason in rules:
            if test is None or test(request):
                if new_status is None:  # a set-var rule (haply.proxy.samples.VariableStep)
                    new_reason.apply(request)
                else:
                    sent, reason = new_status, new_reason
        if sent != status:
            self._status_set(sent)
        return sent, reason

    def _status_set(self, status: int) -> None:
        """Called when set-status changed the answer's status: logging records it."""

    @staticmethod
    def _keep_one_host(request: Request) -> None:
        """Forward the first of several identical Host fields alone, as HAProxy
        does: a server may answer 400 to more than one (RFC 9112 §3.2)."""
        kept, seen = [], False
        for name, value in request.headers:
            if len(name) == 4 and name.lower() == b"host":
                if seen:
                    continue
                seen = True
            kept.append((name, value))
        request.headers = kept
        request.hosts = 1
        request.plain = False  # written from the fields, not as received
        request._header_map = None

    @staticmethod
    def _persist(request: Request, cookie) -> None:
        """The server the client's persistence cookie names, and the Cookie
        fields the server is to see (haply.proxy.persistence)."""
        server, flag, headers = cookie.on_request(request.headers)
        request.cookie_server = server
        if cookie.logs_flags:
            request.cookie_flags = flag + "-"
        if headers is not None:
            request.headers = headers
            request.plain = False  # written from the fields, not as received
            request._header_map = None

    @staticmethod
    def _select_coding(request: Request, policy: compression.Policy) -> None:
        """The algorithm for the answer, from the request's Accept-Encoding; with
        `compression offload`, the server then sees no Accept-Encoding (when
        the field chose it)."""
        request.coding, accepted = compression.select(policy, request.headers)
        if accepted and policy.offload:
            request.headers = [field for field in request.headers
                               if len(field[0]) != 15 or field[0].lower() != b"accept-encoding"]
            request.plain = False  # written from the fields, not as received
            request._header_map = None
    def _last_server(self, backend: BackendRuntime):
        """`option prefer-last-server`: the server of the connection this
        session still holds (only `http-reuse never` keeps one, as in HAProxy
        2.6, whose other modes hand it to every session), if it may take the
        request now: usable, a slot free (checked by the caller), no request
        of the backend queued."""
        private = self.private
        server = private.server
        if (private.closed or server.backend != backend.name or not server.usable
                or backend.queued):
            return None
        return server

    def _idle_connection(self, reuse: str, request: Request, server,
                         backend: BackendRuntime) -> UpstreamConnection | None:
        """An idle server connection under `http-reuse` (None: connect anew).
        never: only this client's own; safe: none for its first request;
        aggressive: for a first request, one proven by an earlier reuse;
        always: any."""
        if reuse == "never":
            private, self.private = self.private, None
            if private is not None:
                if not private.closed and private.server is server:
                    return private
                private.close()
            return None
        first = self.exchanges == 0
        if first and reuse == "safe":
            return None
        return self.pool.take(server, backend.server_sni(server, request, self.transport)
                              if backend.tls else None, proven=first and reuse == "aggressive")

    async def _connect_and_send(self, request: Request, server, persistent=None) -> None:
        backend = request.backend
        loop = self.loop
        start = loop.time()  # queue entry (Tw; backend.connect gives Tc)
        try:
            if server is None:
                try:
                    server = await (backend.acquire(request, None, request) if persistent is None
                                    else backend.acquire_server(persistent, request, request))
                except NoServerAvailable as exc:
                    if exc.reason == QUEUE_TIMEOUT:  # it waited: HAProxy logs how long
                        request.t_wait = int((loop.time() - start) * 1000)
                    raise
                request.t_wait = int((loop.time() - start) * 1000)
            else:
                request.t_wait = 0
            pool = self.pool
            server, transport, upstream = await backend.connect(
                request, lambda server: UpstreamConnection(server, pool), self.dest_port,
                server=server, gave_up=lambda: self.closed, client=self.transport,
                tally=request, persistent=server is persistent)
        except NoServerAvailable as exc:
            request.tried = exc.server
            if not self.closed and self.requests and self.requests[0] is request:
                # s: `timeout queue` ran out; Q: while the request was queued
                self._respond_local(exc.status, termination="sQ--" if exc.reason == QUEUE_TIMEOUT
                                    else None)
            return
        backend.registry.record_times(server, request.t_wait, request.t_connect)  # stats
        if request.redispatched and request.cookie_flags[0] == "V":
            # the cookie's server failed: HAProxy logs the cookie as "D" (down)
            request.cookie_flags = "D" + request.cookie_flags[1]
        if self.closed or not self.requests or self.requests[0] is not request:
            upstream.close()
            backend.release(server)
            return
        request.server = server
        self._send_request(upstream, request)

    def _send_request(self, upstream: UpstreamConnection, request: Request) -> None:
        self.upstream = upstream
        backend: BackendRuntime = request.backend
        if backend.sessions is not None:
            backend.track(request.server, self)
        if backend.stick is not None:  # the server really sent to (store-request)
            backend.stick.store(request, request.server, self.loop.time())
        self.response_started = False
        upstream.begin(self, request.method_bytes == b"HEAD")
        transport = upstream.transport
        if not self.client_writable:  # the answer waits until the client reads
            transport.pause_reading()
        request.sent_body = 0
        if request.body:
            chunked = request.chunked
            parts = [request.head_bytes]
            for chunk in request.body:
                if chunked:
                    parts.append(b"%x\r\n" % len(chunk))
                    parts.append(chunk)
                    parts.append(CRLF)
                else:
                    parts.append(chunk)
                request.sent_body += len(chunk)
            if request.complete and chunked:
                parts.append(trailers.last_chunk(request.trailers))
            self.outbox.write(transport, b"".join(parts))
            if request.body_size > RETRY_BUFFER_SIZE:
                request.body = []  # streamed from now on; no replay possible
        else:
            self.outbox.write(transport, request.head_bytes)
            if request.complete and request.chunked:
                self.outbox.write(transport, trailers.last_chunk(request.trailers))
        server = request.server
        server.bytes_in += len(request.head_bytes)
        if server.timing:  # the stats sampler asks for one exchange to be timed
            server.timing = False
            upstream.timing = ExchangeTiming(request, server, self.loop.time())
        if request.upgrade:
            if request.method_bytes == CONNECT:
                upstream.answer_to_connect()
            # what followed the request goes once the server accepts it
            if not request.tunnel_data and self.paused & PAUSE_WAITING:
                self.resume_client_reading(PAUSE_WAITING)
        elif self.paused & PAUSE_WAITING:
            self.resume_client_reading(PAUSE_WAITING)
        self.deadline.arm_idle(backend.proxy.timeouts.server, "server")

    def _send_body(self, upstream: UpstreamConnection, body: bytes, chunked: bool) -> None:
        if chunked:
            self.outbox.write(upstream.transport, b"%x\r\n%b\r\n" % (len(body), body))
        else:
            self.outbox.write(upstream.transport, body)

    # ============================================================ responses

    def informational_response(self, upstream: UpstreamConnection, status: int) -> None:
        request = self.requests[0]
        request.server.http_responses[1] += 1  # HAProxy counts each response it reads
        head = request.route.response_writer.write(
            upstream.parser.get_http_version(), status, upstream.reason, upstream.headers,
            framing.NO_BODY_NO_LENGTH, True, request.version, request)
        self.out.append(head)

    def response_head(self, upstream: UpstreamConnection, status: int, version: str,
                      server_keep_alive: bool) -> bool | None:
        """server_keep_alive: llhttp's reading of the response's version and
        Connection field (RFC 9112 §9.3), so no field is scanned twice.
        True when the answer goes on with a chunked body, whose trailers the
        upstream then keeps the bytes of (response_complete reads them)."""
        log_queue = self.log_queue
        if log_queue:
            exchange = log_queue[0]
            exchange.status = status
            exchange.response_at = self.loop.time()
        if self.client_gone:
            self._answer_lost(upstream, status)
            return
        request = self.requests[0]
        request.status = status
        route: Route = request.route
        # a tunnel follows a 101 to an Upgrade, and a 2xx to a CONNECT
        upgrade = request.upgrade and (status == 101 or (
            request.method_bytes == CONNECT and 200 <= status < 300))
        if status in route.retry_statuses and self._can_replay(request, str(status)):
            # `retry-on 503` and the like: this answer is dropped and the request
            # goes to another server; the last attempt's answer is forwarded.
            upstream.detach()
            upstream.close()
            self._exchange_failed(request, str(status), event=status)
            return
        if upgrade and request.websocket and not framing.accepts_websocket(upstream.headers):
            self.server_protocol_error(upstream, "websocket upgrade answered without Sec-WebSocket-Accept")
            return
        writer = route.response_writer
        raw = upstream.head
        low, fields = writer.scan(raw)
        try:
            # Only the framing fields matter here, and the scan found them all.
            body = framing.response_framing(request.method_bytes, status, version, fields)
        except RemoteProtocolError as exc:
            self.server_protocol_error(upstream, str(exc))
            return
        captures = self.router.captures
        if captures is not None:
            captures.on_response(request, upstream.headers)
        until_close = body.kind == framing.UNTIL_CLOSE
        # request.keep_alive is llhttp's reading of the client's version and
        # Connection field; the mode and a body running until close can only
        # turn it off (framing.keep_alive documents the same rules).
        keep_client = upgrade or (request.keep_alive and not until_close
                                  and route.client_mode != framing.CLOSE)
        self.response_keep_alive = keep_client
        # the answer as it came; compression may still send it chunked
        chunked = self.response_chunked = body.kind == framing.CHUNKED
        self.response_until_close = until_close
        self.upstream_reusable = (route.server_keep_alive and server_keep_alive
                                  and not upgrade and not until_close)
        head = None
        sent, reason = status, None  # a reason: set-status gave another status
        if route.status_rules is not None and not upgrade:
            sent, reason = self._set_status(route.status_rules, request, status)
        if route.compression is not None and request.coding is not None:
            head = self._compressed_head(request, status, version, body, keep_client, upstream,
                                         sent, reason or upstream.reason)
        if head is None and not upgrade and reason is None:
            head = writer.write_raw(raw, low, fields, status, body, keep_client, request.version)
        if head is None:
            # a CONNECT's tunnel: nothing said of the connection, as HAProxy
            # says nothing (the client's version does not matter then)
            head = writer.write(version, sent, reason or upstream.reason, upstream.headers, body,
                                keep_client, "1.1" if upgrade else request.version, request,
                                upgrade and status == 101)
        if route.cache_store is not None:
            self.filling = None if upgrade else caching.start_filling(
                route.cache_store, request, status, upstream.reason, upstream.headers, body)
        if route.cookie is not None and not upgrade:
            server = request.server
            head, flag = route.cookie.edit_response(head, request.method_bytes, status, server,
                                                    request.cookie_server is server)
            if route.cookie.logs_flags:
                request.cookie_flags = request.cookie_flags[0] + flag
        self.response_started = head
        server = request.server
        backend: BackendRuntime = request.backend
        if backend.observer is not None:
            backend.report(server, status)
        klass = status // 100
        server.http_responses[klass] += 1
        self.frontend.http_responses[sent // 100] += 1  # HAProxy counts there what it sent
        if klass == 4:
            self._client_error()
        elif klass == 5 and status != 501 and status != 505:
            self._server_failure()
        self.out.append(head)
        self.frontend.bytes_out += len(head)
        return chunked

    def _compressed_head(self, request: Request, status: int, version: str,
                         body: framing.Framing, keep_client: bool,
                         upstream: UpstreamConnection, sent: int, reason: bytes) -> bytes | None:
        """The head of a response haply compresses (its body then goes through
        `encoder`, chunked), or None when it goes as it came."""
        if not compression.compressible(status, request.version, version, body.kind, body.length):
            return None
        route = request.route
        fields = compression.response_fields(route.compression, upstream.headers)
        if fields is None:
            return None
        coding = request.coding
        head = route.response_writer.write(version, sent, reason, fields,
                                           framing.CHUNKED_BODY, keep_client, request.version,
                                           request)
        self.encoder = coding.encoder(body.kind == framing.CHUNKED)
        self.response_chunked = True
        # Vary and Content-Encoding come after the rules' fields, as HAProxy adds them
        return head[:-2] + coding.lines + CRLF

    def response_body(self, body: bytes) -> None:
        if self.response_chunked:
            encoder = self.encoder
            if encoder is None:
                self.out += (b"%x\r\n" % len(body), body, CRLF)
            else:
                encoder.feed(body)  # sent by the flush after this read
        else:
            self.out.append(body)
        filling = self.filling
        if filling is not None and not filling.add(body):
            self.filling = None  # over max-object-size: not stored
        size = len(body)
        self.frontend.bytes_out += size
        self.requests[0].server.bytes_out += size

    def response_complete(self, upstream: UpstreamConnection) -> None:
        request = self.requests[0]
        out = self.out
        if self.response_chunked:
            # read before anything is written: a bad section is a 502 while
            # the head may still be withdrawn
            try:
                fields = upstream.take_trailers()
            except RemoteProtocolError as exc:
                self.server_protocol_error(upstream, str(exc))
                return
            if self.encoder is not None:
                self._flush_encoder(True)
            out.append(trailers.last_chunk(fields))
            if self.filling is not None and fields:
                self.filling.trailers = fields
        if out:  # flush(), inline: once per response
            self.outbox.write(self.transport, out[0] if len(out) == 1 else b"".join(out))
            out.clear()
        if self.filling is not None:
            self._stored()
        if upstream.tunnel:
            return
        self._finish_exchange(request, upstream, reusable=self.upstream_reusable and request.complete)

    def _stored(self) -> None:
        """The answer cache-store was gathering is complete: into the cache."""
        filling, self.filling = self.filling, None
        filling.commit(time.monotonic())

    def flush(self) -> None:
        """Write what the last server read produced (called after each read)."""
        if self.encoder is not None:
            self._flush_encoder(False)
        out = self.out
        if out:
            self.outbox.write(self.transport, out[0] if len(out) == 1 else b"".join(out))
            out.clear()

    def _flush_encoder(self, last: bool) -> None:
        """What the body fed since the last flush became, as one chunk, counted
        as HAProxy counts it (comp_in/comp_out, or comp_byp for identity, in
        the frontend and the backend; comp_rsp once the body is complete)."""
        encoder = self.encoder
        data, taken, made = encoder.flush(last)
        if data:
            self.out += (b"%x\r\n" % len(data), data, CRLF)
        self.frontend.comp.add(encoder.compresses, taken, made, last)
        self.requests[0].backend.comp.add(encoder.compresses, taken, made, last)
        if last:
            self.encoder = None

    def upgraded(self, early_server_data: bytes) -> None:
        """The server answered 101: both sides become a raw byte tunnel."""
        request = self.requests[0]
        self.tunnel = True
        self.flush()
        upstream = self.upstream
        if early_server_data:
            self.outbox.write(self.transport, early_server_data)
        if request.tunnel_data:
            self.outbox.write(upstream.transport, request.tunnel_data)
        timeouts = request.backend.proxy.timeouts
        tunnel_timeout = timeouts.tunnel or self.frontend.proxy.timeouts.tunnel or timeouts.server
        self.deadline.arm_idle(tunnel_timeout, "tunnel")
        self.paused = 0
        self.transport.resume_reading()

    def tunnel_server_eof(self) -> bool:
        """The server ended its side of the tunnel: False to close its connection."""
        return self._tunnel_eof(SERVER_EOF, self.transport)

    def _tunnel_eof(self, side: int, other: asyncio.Transport) -> bool:
        """One side of a tunnel ended its stream: the other side is told
        (half-close), and the tunnel ends once both have. A TLS side cannot
        be half-closed (close_notify ends it): the tunnel ends there."""
        self.tunnel_eofs |= side
        if self.tunnel_eofs == CLIENT_EOF | SERVER_EOF or not other.can_write_eof():
            self._end_tunnel("----")
            return False
        self.outbox.send()
        other.write_eof()
        return True

    def _end_tunnel(self, termination: str) -> None:
        """The tunnel is over: logged now as HAProxy logs it, with the 101 and
        the whole session's time and bytes, then closed."""
        request = self.requests[0]
        if termination != "----":
            self._broken_off(termination)
        else:
            self._ended(request, termination)
        self.close()

    def tunnel_from_server(self, data: bytes) -> None:
        self.deadline.touch()
        self.outbox.write(self.transport, data)
        self.frontend.bytes_out += len(data)

    def _finish_exchange(self, request: Request, upstream: UpstreamConnection,
                         reusable: bool) -> None:
        log_queue = self.log_queue
        if log_queue:  # the line is written while the request still holds its server
            self.frontend.logger.http_done(self, request, log_queue.popleft())
        self.upstream = None
        # _give_back_server(request), inline: once per request
        server = request.server
        backend: BackendRuntime = request.backend
        request.server = None
        if backend.sessions is not None:
            backend.untrack(server, self)
        backend.release(server)
        self.exchanges += 1
        if reusable and not upstream.closed:
            if not self.client_writable:  # paused for this client alone
                upstream.transport.resume_reading()
            if request.route.reuse != "never":
                self.pool.put(upstream)
            else:  # kept for this client alone
                upstream.detach()
                if self.private is not None:
                    self.private.close()
                self.private = upstream
        else:
            upstream.detach()
            upstream.close()
        self.requests.popleft()
        if not self.response_keep_alive:
            self._close_after_write()
            return
        if request.upgrade:
            self._upgrade_refused(request)
        if not request.complete:
            self._discard_rest(request)
            return
        self._next_request()

    def _upgrade_refused(self, request: Request) -> None:
        """An upgrade request answered otherwise than by a tunnel (the server
        refused it, or haply answered it): the connection goes on in HTTP, as
        in HAProxy. The parser stopped at the upgrade; a new one reads on, from
        the bytes that came after it, once this call chain has returned."""
        self.parser = request_parser(self)
        rest, request.tunnel_data = request.tunnel_data, b""
        if rest:
            self.frontend.bytes_in -= len(rest)  # counted when they came
            self.loop.call_soon(self._read_again, rest)

    def _read_again(self, data: bytes) -> None:
        if not self.closed:
            self.data_received(data)

    def _discard_rest(self, request: Request) -> None:
        """The server answered before the request's body ended (an early 413,
        401, or a server that reads no body): the client may go on sending
        it, then ask again on this connection. Its body is read to its end and
        dropped, under `timeout client`, and the next request is read after."""
        self.discarding = request
        request.body = []
        if self.paused & PAUSE_WAITING:
            self.resume_client_reading(PAUSE_WAITING)
        self.deadline.arm_idle(self.timeout_client, "client")

    def _next_request(self) -> None:
        tracking = self.context.tracking
        if tracking is not None:  # what http-request rules tracked for the last one stops
            tracking.request_ended(self.loop.time(), self.transport if self.counts_bytes else None)
        if self.requests:
            self._start(self.requests[0])
            return
        if self.rejection:  # a bad request waited for those before it
            self._send_rejection(self.rejection)
            return
        if self.client_ended:
            self._close_after_write()
            return
        if self.paused & PAUSE_WAITING:
            self.resume_client_reading(PAUSE_WAITING)
        if self.parsing is not None:
            self.deadline.arm(self.timeout_http_request, "http-request")
        else:
            self.deadline.arm(self.timeout_keep_alive, "http-keep-alive")

    # ================================================================ failures

    def server_lost(self, upstream: UpstreamConnection) -> None:
        """The server closed before the exchange ended."""
        if self.closed or not self.requests:
            return
        request = self.requests[0]
        self.flush()  # what the server sent before closing still goes out
        if self.tunnel:
            self._end_tunnel("SD--" if upstream.reset else "----")
            return
        if self.response_started:
            if self.response_until_close:
                # The body ran until close: that was its end.
                if self.filling is not None:
                    self._stored()
                self._finish_exchange(request, upstream, reusable=False)
                return
            self._broken_off("SD--")
            self.close()  # truncated response: the client must see it broken
            return
        self._exchange_failed(request, "empty-response" if not upstream.received_any
                              else "junk-response")

    def server_protocol_error(self, upstream: UpstreamConnection, reason: str) -> None:
        upstream.detach()
        upstream.close()
        if self.closed or not self.requests:
            return
        if self.response_started and not self._withdraw_head():
            # Part of the answer went out: the client must see it broken. HAProxy
            # logs the server's fault (SD--) and counts an error, not an abort.
            request = self.requests[0]
            request.server.response_errors += 1
            self._server_failure()
            self._ended(request, "SD--")
            self.close()
            return
        # Interim answers that came in the read with the fault are dropped
        # with it, as HAProxy drops the buffer it refuses (left behind, they
        # would go out ahead of the next answer); earlier reads' went out.
        self.out.clear()
        self._exchange_failed(self.requests[0], "junk-response")

    def _withdraw_head(self) -> bool:
        """Take back an answer whose head has not left yet (its body broke its
        framing in the read that carried the head), uncounting it: the client
        then gets a 502, as from HAProxy, which reads head and body in one
        buffer before sending either. False if any of it was written."""
        head = self.response_started
        out = self.out
        for index, part in enumerate(out):
            if part is head:
                break
        else:
            return False
        del out[index:]
        request = self.requests[0]
        request.server.http_responses[request.status // 100] -= 1
        self.frontend.http_responses[int(head[9:12]) // 100] -= 1  # the status it was to send
        self.frontend.bytes_out -= len(head)
        self.encoder = None
        self.response_started = False
        return True

    def _can_replay(self, request: Request, why: str) -> bool:
        """May this exchange be sent again (README: what haply retries and why)?"""
        return (why in request.route.retry_on and request.retryable
                and request.sent_body == request.body_size
                and request.attempts < request.backend.retries)

    def _exchange_failed(self, request: Request, why: str, status: int = 502,
                         event=EV_L7_BAD) -> None:
        """The server failed this exchange before any response byte reached the
        client: replay it on another server if allowed, else answer status."""
        backend = request.backend
        self.upstream = None
        server = self._give_back_server(request)
        request.tried = server  # the log names it, as HAProxy does
        replay = self._can_replay(request, why)
        if why == "empty-response" and self.exchanges and not replay:
            # HAProxy's answer to a server that closed on a request that is
            # not its connection's first: none. The client sees what it sees
            # when a keep-alive connection closes as it sends, and sends the
            # request again; nothing is logged or counted.
            self.close()
            return
        server.response_errors += 1
        if backend.observer is not None:
            backend.report(server, event)
        if replay:
            request.attempts += 1
            server.retries += 1
            backend.retried += 1
            # The same server just failed this exchange: move the retry elsewhere.
            next_server = backend.try_acquire(request, exclude=server)
            if next_server is not None and next_server is not server:
                server.redispatches += 1
                backend.redispatched += 1
                request.redispatched = True
            self.connecting = self.loop.create_task(self._connect_and_send(request, next_server))
            return
        self._server_failure()
        # an answer that is not HTTP is the proxy's finding (P), an empty one the server's (S)
        self._respond_local(status, termination="PH--" if why == "junk-response" else None)

    def on_deadline(self, which: str) -> None:
        if self.closed:
            return
        if which == "tarpit":
            self._tarpit_over()
            return
        if which == "http-request":
            if self.parsing is not None or self.requests or not self._ignores_probe():
                # nothing at all on a new connection gets its 408 too, as in HAProxy
                self._reject(408, "timeout http-request")
            else:
                self.close()
        elif which == "server" and self.requests and not self.response_started:
            upstream = self.upstream
            if upstream is not None:
                upstream.detach()
                upstream.close()
                self._exchange_failed(self.requests[0], "response-timeout", 504,
                                      EV_L7_TIMEOUT)
            else:
                self._respond_local(504)
        else:
            if self.requests and self.requests[0].server is not None:
                # the side that went quiet in the middle of the transfer (a
                # tunnel's timeout is the client's, as HAProxy logs it)
                if self.tunnel:
                    self._end_tunnel("cD--")
                    return
                self._broken_off("sD--" if which == "server" else "cD--")
            self.close()

    # =========================================================== local answers

    def _respond_local(self, status: int, body: bytes | None = None,
                       keep_alive: bool | None = None, termination: str | None = None) -> None:
        """Answer the request at the head of the queue from haply itself.

        Without body, the proxy's page for status (an errorfile, else the
        default page); the connection then stays open, as HAProxy keeps it
        after a 502, 503 or 504, when the client keeps it and its request was
        read whole, and the page is framed (never after 400 or 408). With a
        body, keep_alive says whether the connection stays open (not by
        default), when the request had no body or was read whole.
        termination: the log's termination state, when the status does not
        tell it (haply.logs.hooks.LOCAL_TERMINATION)."""
        request = self.requests[0] if self.requests else None
        if self.client_gone and request is not None:
            # this answer cannot reach the client: a client abort, as HAProxy
            # counts it when its write fails
            server = request.server or getattr(request, "tried", None)
            (server if server is not None else request.backend).client_aborts += 1
        if body is None:
            route = request.route if request is not None else None
            errorfiles = route.errorfiles if route is not None else self.router.errorfiles
            if keep_alive is None:
                keep_alive = (request is not None and request.keep_alive and request.complete
                              and not responses.must_close(status, errorfiles))
            body = responses.error_response(status, errorfiles, close=not keep_alive)
        if keep_alive and request is not None and (request.version == "1.0"
                                                   or body.startswith(b"HTTP/1.0 ")):
            body = responses.with_keep_alive(body)  # (an HTTP/1.0 errorfile too)
        if request is not None and request.method_bytes == b"HEAD":
            # An answer to HEAD ends with its head (RFC 9110 §9.3.2): a client
            # would read the page as the start of its next response.
            end = body.find(b"\r\n\r\n")
            if end >= 0:
                body = body[:end + 4]
        self._count_local_answer(request, status)
        self.outbox.write(self.transport, body)
        self.frontend.bytes_out += len(body)
        if request is not None:
            self._answered_locally(request, status, termination)
        if keep_alive and request is not None and (
                request.complete or request.framing.kind == framing.NONE):
            self.requests.popleft()
            if request.upgrade:
                self._upgrade_refused(request)
            self._next_request()
            return
        self._close_after_write()

    def _count_local_answer(self, request: Request | None, status: int) -> None:
        """haply's own answer: counted in the frontend and, for a request
        routed to a backend, in the backend too, as HAProxy counts it."""
        klass = status // 100
        self.frontend.http_responses[klass] += 1
        if request is not None and request.backend is not None:
            request.backend.local_responses[klass] += 1
        if klass == 4:
            self._client_error()

    def _client_error(self) -> None:
        """A request that failed on the client's side (a 4xx answer, a
        denied one): counted in the sticky counters the connection tracks."""
        tracking = self.context.tracking
        if tracking is not None:
            tracking.request_failed(self.loop.time())

    def _server_failure(self) -> None:
        """An exchange a server failed (a 5xx other than 501 and 505, no
        answer, a broken or late one): counted in the sticky counters the
        connection tracks (http_fail_cnt), as HAProxy counts it."""
        tracking = self.context.tracking
        if tracking is not None:
            tracking.server_failed(self.loop.time())

    def _broken_off(self, termination: str) -> None:
        """The exchange at the head of the queue ends before its answer did: a
        client that left or went quiet (C, c), or a server that did (S, s).
        Counted as HAProxy counts it (cli_abrt, or srv_abrt and eresp, on the
        server) and logged with `termination`, before the session closes."""
        request = self.requests[0]
        self.filling = None  # a broken answer is not stored
        if not self.response_started:
            request.backend.unanswered += 1
        request.server.count_abort(termination, response_error=True)
        if termination[0] in "sS":
            self._server_failure()
        self._ended(request, termination)

    def _ended(self, request: Request, termination: str) -> None:
        """Called when an exchange ends otherwise than with its answer (broken
        off, or a tunnel that closed), before the connection closes and
        leaves the counts: logging records it here."""

    def _answered_locally(self, request: Request, status: int, termination: str | None) -> None:
        """Called once haply's own answer to request is written, before the
        connection may close and leave the counts: logging records it here."""

    def _answer(self, request: Request, rule, errorfiles: dict[int, bytes], route) -> None:
        """An http-request rule that answers: `deny`, `return`, `redirect` or `auth`,
        a frontend's (route None) or a backend's. `deny` is counted as denied (in
        the backend too for its own rules, as HAProxy counts them). Nothing is
        forwarded; the connection stays open after a framed answer, as HAProxy
        keeps it."""
        action = rule.action
        backend = None
        if route is not None:
            # Logged as HAProxy logs a backend's answer: under the backend; a
            # deny after the persistence cookie was read, under its server.
            backend = request.backend = route.backend
            request.route = route
            cookie = route.cookie
            if cookie is not None and cookie.logs_flags:
                if action == "deny":
                    self._persist(request, cookie)
                    request.tried = request.cookie_server
                else:
                    request.cookie_flags = "N-"
        if action == "cache-hit":
            self._serve_cached(request, rule.entry, route)
            return
        if action == "redirect":
            self._redirect(request, rule)
            return
        if action == "auth":
            self.frontend.intercepted += 1
            close = responses.must_close(401, errorfiles) or not request.keep_alive
            page = responses.error_response(401, errorfiles, close=close)
            self._respond_local(401, responses.with_challenge(page, rule.realm), keep_alive=not close)
            return
        termination = None
        if action == "deny":
            self.frontend.denied += 1
            if backend is not None:
                backend.denied += 1
            if rule.status // 100 != 4:  # (a 4xx is counted with the answer)
                self._client_error()
            if rule.tarpit:
                # Held, answered when the deadline says (on_deadline): `timeout
                # tarpit` of the rule's proxy, else its `timeout connect`.
                timeouts = (backend or self.frontend).proxy.timeouts
                self.tarpitted = (rule, errorfiles, self.loop.time())
                self.deadline.arm(timeouts.tarpit or timeouts.connect, "tarpit")
                return
            termination = "PR--"  # the proxy refused the request
        else:  # `return`
            self.frontend.intercepted += 1
        self._answer_with(request, rule, errorfiles, termination)

    def _serve_cached(self, request: Request, entry: cache.Entry, route) -> None:
        """An answer from the cache (cache-use found the object): its stored
        head through the http-response rules, with its age; logged with the
        server <CACHE>, as HAProxy logs it. No server is contacted."""
        answer = cache.answer(entry, request.method_bytes, request.headers, time.monotonic())
        writer = route.response_writer if route is not None else self.router.cache_writer
        keep_alive = (request.keep_alive and answer.framing.kind != framing.UNTIL_CLOSE
                      and (route is None or route.client_mode != framing.CLOSE))
        head = writer.write("1.1", answer.status, answer.reason, answer.fields, answer.framing,
                            keep_alive, request.version, request)
        message = head + answer.body
        policy = route.compression if route is not None else self.router.cache_compression
        if policy is not None and answer.body and answer.framing.kind == framing.LENGTH:
            message = self._compressed_hit(request, policy, message, route)
        request.tried = caching.CACHE_SERVER
        request.t_wait = request.t_connect = 0
        self._respond_local(answer.status, message, keep_alive=keep_alive, termination="LR--")

    def _compressed_hit(self, request: Request, policy: compression.Policy, message: bytes,
                        route) -> bytes:
        """A hit goes through `compression` as a server's answer does: the
        cache keeps what the server sent, HAProxy compresses each hit."""
        algorithm, _ = compression.select(policy, request.headers)
        if algorithm is None:
            return message
        done = compression.compress_whole(policy, algorithm, request.version, message)
        if done is None:
            return message
        message, taken, made = done
        self.frontend.comp.add(algorithm.wbits is not None, taken, made, True)
        if route is not None:
            route.backend.comp.add(algorithm.wbits is not None, taken, made, True)
        return message

    def _answer_with(self, request: Request, rule, errorfiles: dict[int, bytes],
                     termination: str | None) -> None:
        """The answer of a `deny`, `tarpit` or `return` rule: its own page, or
        the proxy's for its status; the connection stays open when the page
        is framed and the client keeps it."""
        status = rule.status
        if rule.response is not None:
            page = rule.response
            if not request.keep_alive and not rule.closes:
                page = responses.with_close(page)
            self._respond_local(status, page, keep_alive=not rule.closes and request.keep_alive,
                                termination=termination)
        else:
            close = responses.must_close(status, errorfiles) or not request.keep_alive
            self._respond_local(status, responses.error_response(status, errorfiles, close=close),
                                keep_alive=not close, termination=termination)

    def _tarpit_over(self) -> None:
        """The tarpit's time is up: the held request gets its answer, logged
        PT-- (P: the proxy, T: while tarpitted)."""
        request, rule, errorfiles = self._leave_tarpit()
        self._answer_with(request, rule, errorfiles, "PT--")

    def _tarpit_abandoned(self) -> None:
        """The client left while its request was tarpitted. HAProxy notices it
        only when its answer fails to go out, so the request is counted and
        logged as answered (PT--), and counted as a client abort in its
        backend (cli_abrt)."""
        request, rule, errorfiles = self._leave_tarpit()
        status = rule.status
        self._count_local_answer(request, status)
        if request.backend is not None:
            request.backend.client_aborts += 1
        self._answered_locally(request, status, "PT--")

    def _leave_tarpit(self) -> tuple:
        """(request, rule, errorfiles) of the tarpitted request, whose time in
        the tarpit is logged as its Tw, as HAProxy logs it."""
        (rule, errorfiles, since), self.tarpitted = self.tarpitted, None
        request = self.requests[0]
        request.t_wait = int((self.loop.time() - since) * 1000)
        return request, rule, errorfiles

    def _redirect(self, request: Request, rule) -> None:
        """Answer a `redirect` rule; the connection stays open as HAProxy keeps
        it, unless the client closes or a request body would have to be read."""
        hosts = request.header("host")
        where = redirect.location(rule, request.url.decode("latin-1"), hosts[0] if hosts else None)
        body_kind = request.framing.kind
        close = not request.keep_alive or not (
            body_kind == framing.NONE or (body_kind == framing.LENGTH and request.framing.length == 0))
        answer = redirect.response(rule.code, where, close)
        self.frontend.intercepted += 1
        self._count_local_answer(request, rule.code)
        self.frontend.bytes_out += len(answer)
        self.outbox.write(self.transport, answer)
        self._answered_locally(request, rule.code, None)
        if close:
            self._close_after_write()
            return
        # The parser is still inside this request's callbacks: move on once
        # it has returned (the request has no body, so it is complete by then).
        self.loop.call_soon(self._redirected, request)

    def _redirected(self, request: Request) -> None:
        if not self.closed and self.requests and self.requests[0] is request:
            self.requests.popleft()
            self._next_request()

    def _reject(self, status: int, reason: str, data: bytes = b"") -> None:
        """A malformed or too slow request: answer status and close, never forward.
        data: the bytes being parsed when it failed, kept for `show errors`."""
        frontend = self.frontend
        frontend.request_errors += 1
        self.router.record_error(self.client_ip, reason, data, self)
        requests = self.requests
        parsing = self.parsing
        if parsing is None and not requests or parsing is not None and not (
                requests and requests[-1] is parsing):
            frontend.http_requests += 1  # its head never came whole: counted here, as HAProxy does
            tracking = self.context.tracking
            if tracking is not None:
                tracking.request_begun(self.loop.time())
        if requests and parsing is not None and parsing is not requests[-1]:
            # A bad head pipelined behind requests not answered yet: they are
            # answered first, then this error (_next_request), as HAProxy, which
            # reads a request only once the one before it is done.
            self.broken = True
            self.rejection = status
            self.pause_client_reading(PAUSE_WAITING)
            return
        if self.upstream is not None and requests and requests[0].server is not None:
            # The request being answered is itself broken (its body): let the
            # answer end, then stop.
            self.broken = True
            self.pause_client_reading(PAUSE_WAITING)
            requests[0].keep_alive = False
            self._rejected(status)
            return
        self._send_rejection(status)

    def _send_rejection(self, status: int) -> None:
        self._count_local_answer(None, status)
        self.outbox.write(self.transport, responses.error_response(status, self.router.errorfiles))
        self._rejected(status)
        self._close_after_write()

    def _rejected(self, status: int) -> None:
        """Called when a request is refused (its answer written, if any),
        before the connection may close: logging records it here."""

    def _close_after_write(self) -> None:
        self.deadline.cancel()
        if not self.closed:
            self.closed = True
            self.outbox.send()
            self.transport.close()  # flushes what is buffered, then closes
            self._release()

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.outbox.send()
        self.transport.close()
        self._release()

    def shutdown(self, close_idle: bool = True) -> None:
        """Stopping: close after the response in progress, and now if idle
        unless close_idle is False (a soft stop: an idle connection is closed
        after its next request instead, or when its keep-alive timeout ends,
        so a client never sends a request into a connection being closed)."""
        if not self.requests and self.parsing is None:
            if close_idle:
                self.close()
            return
        for request in self.requests:
            request.keep_alive = False

    def _give_back_server(self, request: Request):
        """End the request's hold on its server: slot, session tracking."""
        server = request.server
        backend = request.backend
        request.server = None
        if backend.sessions is not None:
            backend.untrack(server, self)
        backend.release(server)
        return server

    def _release(self) -> None:
        self.deadline.cancel()
        if self.private is not None:
            self.private.close()
            self.private = None
        upstream = self.upstream
        if upstream is not None:
            self.upstream = None
            upstream.detach()
            upstream.close()
            request = self.requests[0] if self.requests else None
            if request is not None and request.server is not None:
                self._give_back_server(request)
        if self.admitted:
            self.admitted = False
            self.frontend.engine.sessions.discard(self)
            self.frontend.leave()
        context = self.context
        if context is not None and context.tracking is not None:
            context.tracking.ended(self.loop.time(), self.transport if self.counts_bytes else None)
