"""Server-side HTTP connections and the pool of idle ones.

An `UpstreamConnection` carries one request/response exchange at a time (haply
never pipelines towards servers: a server that closes mid-pipeline would leave
later requests in an unknown state). It only parses; every decision about what the
client sees is the client session's (`haply.proxy.http`), to which it reports
events. Between exchanges a keep-alive connection waits in the `ConnectionPool`,
keyed by server, until reused, closed by the server, or purged after
`POOL_IDLE_TIMEOUT`.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import httptools

from haply.http import framing, repair, trailers
from haply.http.errors import BAD_GATEWAY, RemoteProtocolError
from haply.http.headers import parse_fields
from haply.proxy.outbox import Outbox
from haply.runtime.registry import ServerState

if TYPE_CHECKING:
    from haply.proxy.http import HttpSession

# HAProxy's `pool-purge-delay` default: idle server connections unused for this long
# are closed, so a pool shrinks back after a burst.
POOL_IDLE_TIMEOUT = 5.0
# What is kept of a chunked body's last reads, for its trailer section: the
# section's limit, and as much again for the last chunk's line before it.
TAIL_KEPT = 2 * framing.HAPROXY_BUFSIZE
# The version of the usual status lines, as llhttp reports it
STATUS_LINE_VERSIONS = {b"HTTP/1.1 ": "1.1", b"HTTP/1.0 ": "1.0"}


def response_parser(protocol: object) -> httptools.HttpResponseParser:
    """llhttp for a server's answers, as lenient as HAProxy is with servers
    where that cannot change the framing: spaces after a chunk size
    (`5 \\r\\n`) are accepted, and the versions HTTP/1.2 to 1.9, which
    RFC 9112 §2.6 reads as HTTP/1.1 (others are refused after the head,
    by framing.response_framing), and a Content-Length among trailers, which
    HAProxy forwards (a head with both framings is refused by
    framing.response_framing all the same)."""
    parser = httptools.HttpResponseParser(protocol)
    parser.set_dangerous_leniencies(lenient_spaces_after_chunk_size=True, lenient_version=True,
                                    lenient_chunked_length=True)
    return parser


class TunnelAnswer(Exception):
    """Raised from the parser's callback once a server accepted a CONNECT:
    llhttp stops there. `rest` is what came after the answer's head, the
    tunnel's first bytes."""

    def __init__(self, rest: bytes):
        super().__init__()
        self.rest = rest


class ConnectAnswer:
    """The parser's protocol while a CONNECT is answered. llhttp cannot know
    that a 2xx answer to a CONNECT is the last HTTP on the connection (RFC
    9110 §9.3.6: a tunnel follows; HAProxy opens it): after that head it
    would read the tunnel as a body running until close. Any other answer is
    read as usual, by the connection's own callbacks."""

    __slots__ = ("upstream",)

    def __init__(self, upstream: "UpstreamConnection"):
        self.upstream = upstream

    def on_headers_complete(self) -> None:
        upstream = self.upstream
        pending, start = upstream.pending, upstream.head_start
        upstream.on_headers_complete()
        if upstream.session is not None and 200 <= upstream.parser.get_status_code() < 300:
            head = upstream.head
            raise TunnelAnswer(pending[pending.find(head, start) + len(head):])

    def on_body(self, body: bytes) -> None:
        self.upstream.on_body(body)

    def on_message_complete(self) -> None:
        self.upstream.on_message_complete()


class RepairedAnswer:
    """The parser's protocol once a head written anew by haply.http.repair is
    read again: llhttp's leniency on field values, which the control
    characters HAProxy keeps there need, ends with that head (it would take
    whitespace before a colon and obs-fold too). `inner` gets the callbacks:
    the connection, or its ConnectAnswer."""

    __slots__ = ("upstream", "inner")

    def __init__(self, upstream: "UpstreamConnection", inner):
        self.upstream = upstream
        self.inner = inner

    def on_headers_complete(self) -> None:
        parser = self.upstream.parser
        status = parser.get_status_code()
        if status >= 200 or status == 101:  # the final head: an interim one is not
            parser.set_dangerous_leniencies(lenient_headers=False)
        self.inner.on_headers_complete()

    def on_body(self, body: bytes) -> None:
        self.inner.on_body(body)

    def on_message_complete(self) -> None:
        self.inner.on_message_complete()


class _AwaitingHead:
    """In place of the parser while the rest of a head llhttp refused is
    awaited (UpstreamConnection._read_repaired): each read is taken to that
    head, whole, again."""

    @staticmethod
    def feed_data(data: bytes) -> None:
        raise httptools.HttpParserError("incomplete head")


AWAITING_HEAD = _AwaitingHead()


class ExchangeTiming:
    """An exchange the stats sampler asked to time (ServerState.timing): when
    its request went, when its answer's head came; recorded in the server's
    response and total times (`show stat` rtime, ttime) once the answer
    ends. The server connection keeps it, so that the other exchanges pay
    the test of one field."""

    __slots__ = ("request", "server", "sent", "answered")

    def __init__(self, request, server: ServerState, now: float):
        self.request = request
        self.server = server
        self.sent = now
        self.answered = 0.0

    def ended(self, now: float) -> None:
        request = self.request
        sent = self.sent
        # rounded: a difference of HAProxy's millisecond clock is as often above
        # the true duration as below
        request.backend.registry.record_exchange(
            self.server, round(((self.answered or now) - sent) * 1000),
            max(request.t_wait, 0) + max(request.t_connect, 0) + round((now - sent) * 1000))


class UpstreamConnection(asyncio.Protocol):
    # the exchange under way, when the stats sampler times it
    timing: ExchangeTiming | None = None
    # set with `tail` (only a chunked answer has one)
    tail_size = 0
    tail_whole = True

    def __init__(self, server: ServerState, pool: "ConnectionPool"):
        # Global
        self.server = server
        self.pool = pool
        # Per-connection
        self.transport: asyncio.Transport | None = None
        self.parser = response_parser(self)
        self.closed = False
        self.tunnel = False
        self.reset = False  # lost by a reset rather than a close
        self.idle_since = 0.0
        self.stale_parser = False
        self.repairing = False  # a head written anew is being parsed
        # The pool's key: the server, or (server, SNI) for a TLS connection that
        # sent one: a connection is only reused for requests wanting that name.
        self.pool_key: object = server
        self.exchanges = 0  # begun on it: `http-reuse aggressive` trusts those reused once
        # Per-exchange
        self.session: HttpSession | None = None
        self.head_request = False
        self.received_any = False
        # The response head is kept as the bytes the server sent: the parser
        # gets no per-field callback, and the session rewrites the head from
        # these bytes. `pending` holds what arrived since the exchange began
        # until a final head is complete; `head_start` skips interim heads.
        self.pending = b""
        self.head_start = 0
        self.head = b""
        self._headers: list[tuple[bytes, bytes]] | None = None
        # A chunked answer's last reads, from the head on while none was
        # dropped (tail_whole), until its end: its trailers are read there.
        self.tail: list[bytes] | None = None

    # ------------------------------------------------------------- exchanges

    def begin(self, session: "HttpSession", head_request: bool) -> None:
        self.session = session
        self.timing = None
        self.exchanges += 1
        self.head_request = head_request
        self.received_any = False
        self.pending = b""
        self.head_start = 0
        self.head = b""
        self._headers = None
        if self.stale_parser:
            self.parser = response_parser(self)
            self.stale_parser = False

    def answer_to_connect(self) -> None:
        """The request sent is a CONNECT: its answer is read by ConnectAnswer,
        and the next exchange, if the connection has one, by a new parser."""
        self.parser = response_parser(ConnectAnswer(self))
        self.stale_parser = True

    def detach(self) -> None:
        self.session = None

    # --------------------------------------------------------------- asyncio

    def connection_made(self, transport: asyncio.Transport) -> None:
        self.transport = transport
        ssl_object = transport.get_extra_info("ssl_object")
        if ssl_object is not None and ssl_object.server_hostname:
            self.pool_key = (self.server, ssl_object.server_hostname)

    def data_received(self, data: bytes) -> None:
        session = self.session
        if self.tunnel:
            session.tunnel_from_server(data)
            return
        if session is None:
            # A server may not speak unasked; whatever this is, the connection
            # can no longer be trusted to frame the next response.
            self.close()
            return
        self.received_any = True
        session.deadline.touch()  # `timeout server` counts from the last read
        if self.head_start >= 0:  # a final head is not complete yet
            self.pending = self.pending + data if self.pending else data
        elif self.tail is not None:
            self._keep_tail(data)
        try:
            self.parser.feed_data(data)
            if self.session is not None:
                if self.head_start >= 0 and len(self.pending) - self.head_start > framing.MAX_HEAD_SIZE:
                    # A head that does not end within the budget will not fit
                    # HAProxy's buffer either: refuse it now, before it grows.
                    self._refuse_head(framing.head_too_large(0, response=True))
                    return
                self.session.flush()
        except httptools.HttpParserUpgrade as upgrade:
            rest = data[upgrade.args[0]:]
            self.tunnel = True
            if self.session is not None:
                self.session.upgraded(rest)
        except httptools.HttpParserError as exc:
            if exc.__context__.__class__ is TunnelAnswer:
                self.tunnel = True
                if self.session is not None:
                    self.session.upgraded(exc.__context__.rest)
                return
            if self.session is not None:
                if self.head_start >= 0 and not self.repairing and self._read_repaired():
                    return
                self.session.server_protocol_error(self, str(exc))
            else:
                self.close()

    def _read_repaired(self) -> bool:
        """A head llhttp refused that HAProxy reads (haply.http.repair: bare
        LF, tabs or spaces in the status line, obs-fold, control characters
        in values) is read again as written anew, and goes to the client so;
        one HAProxy refuses is a bad answer, with the reason of its fault.
        A head not whole yet, refused by nothing so far, is awaited. False:
        llhttp's refusal stands."""
        pending, start = self.pending, self.head_start
        head = repair.response_head(pending, start)
        if head is None:
            if len(pending) - start > framing.MAX_HEAD_SIZE or repair.refused(
                    pending[start:], response=True):
                return False
            self.parser = AWAITING_HEAD
            return True
        if head.__class__ is repair.HeadError:
            if head is repair.LEFT:
                return False
            self.session.server_protocol_error(self, head.reason)
            return True
        # While a CONNECT is answered the parser reports to ConnectAnswer
        # (answer_to_connect), which only then makes the parser stale.
        inner = ConnectAnswer(self) if self.stale_parser else self
        self.parser = parser = response_parser(RepairedAnswer(self, inner))
        parser.set_dangerous_leniencies(lenient_headers=True)
        self.pending = pending[:start]
        self.repairing = True
        try:
            self.data_received(head.data + pending[head.end:])
        finally:
            self.repairing = False
        return True

    def eof_received(self) -> bool:
        if self.tunnel and self.session is not None:
            return self.session.tunnel_server_eof()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.reset = exc is not None
        session = self.session
        if session is not None:
            self.session = None
            session.server_lost(self)
        else:
            self.pool.discard(self)

    def pause_writing(self) -> None:
        if self.session is not None:
            self.session.pause_client_reading(2)

    def resume_writing(self) -> None:
        if self.session is not None:
            self.session.resume_client_reading(2)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.pool.outbox.send()  # what the outbox holds for it goes first
            self.transport.close()

    # --------------------------------------------------------- parser events

    @property
    def headers(self) -> list[tuple[bytes, bytes]]:
        """The fields of the current head, split only when asked for."""
        headers = self._headers
        if headers is None:
            headers = self._headers = parse_fields(self.head)
        return headers

    @property
    def reason(self) -> bytes:
        line = self.head[:self.head.find(b"\r\n")]
        parts = line.split(b" ", 2)
        return parts[2] if len(parts) > 2 else b""

    def on_headers_complete(self) -> None:
        parser = self.parser
        status = parser.get_status_code()
        session = self.session
        # Cut the head llhttp just completed out of `pending`.
        pending = self.pending
        start = self.head_start
        while pending.startswith(b"\r\n", start):  # llhttp skips empty lines before it
            start += 2
        end = pending.find(b"\r\n\r\n", start) + 4
        head = self.head = pending if start == 0 and end == len(pending) else pending[start:end]
        self._headers = None
        self.head_start = end
        # The limits HAProxy puts on a response head (502 past them).
        if len(head) > framing.CROWDED_HEAD:
            if len(head) > framing.MAX_HEAD_SIZE:
                self._refuse_head(framing.head_too_large(0, response=True))
                return
            if head.count(b"\r\n") - 2 > framing.MAX_HEADERS:
                self._refuse_head(framing.too_many_headers(response=True))
                return
        if status < 200:
            if status >= 100 and status != 101:
                # llhttp would take a "Connection: close" on an interim answer
                # (or its HTTP/1.0 status line) for the connection's end and
                # refuse the final answer after it; HAProxy reads on. The
                # final head makes the parser strict again (below).
                parser.set_dangerous_leniencies(lenient_keep_alive=True)
                session.informational_response(self, status)
                return
            if status == 101 and not session.requests[0].upgrade:
                # A switch of protocols nobody asked for (RFC 9110 §15.2.2):
                # the client would be left in a tunnel it cannot speak.
                self._refuse_head(RemoteProtocolError(
                    "server switched protocols for a request without Upgrade", BAD_GATEWAY))
                return
        elif start:  # after interim answers (or leading empty lines)
            parser.set_dangerous_leniencies(lenient_keep_alive=False)
        self.head_start = -1
        self.pending = b""
        # "HTTP/1.1 " starts the usual head: its version without the parser's
        # string formatting
        version = STATUS_LINE_VERSIONS.get(head[:9]) or parser.get_http_version()
        timing = self.timing
        if timing is not None and not timing.answered:
            timing.answered = session.loop.time()
        chunked = session.response_head(self, status, version, parser.should_keep_alive())
        if self.session is None:
            return  # the session dropped this answer (a retry, a bad response)
        if chunked:
            self.tail = [pending]
            self.tail_size = len(pending)
            self.tail_whole = True
        if self.head_request and status != 101:
            # llhttp would wait for the body a HEAD response's Content-Length
            # announces: end the exchange here and parse the next response with a
            # fresh parser.
            self.stale_parser = True
            self._answer_ended(session)

    def _answer_ended(self, session: HttpSession) -> None:
        timing = self.timing
        if timing is not None:
            self.timing = None
            timing.ended(session.loop.time())
        session.response_complete(self)

    def _refuse_head(self, error: Exception) -> None:
        if self.session is not None:
            self.session.server_protocol_error(self, str(error))
        else:
            self.close()

    def _keep_tail(self, data: bytes) -> None:
        tail = self.tail
        tail.append(data)
        self.tail_size += len(data)
        while len(tail) > 1 and self.tail_size - len(tail[0]) >= TAIL_KEPT:
            self.tail_size -= len(tail.pop(0))
            self.tail_whole = False

    def take_trailers(self) -> list[tuple[bytes, bytes]] | None:
        """The trailer fields of the chunked answer just read (None: it had
        none, or was not chunked); raises RemoteProtocolError (502) for a
        section over the head's limits. llhttp read the section's fields
        but reports none of them (there is no on_header here): they are
        read back from the answer's last bytes, which end with them (a
        server sends nothing after its answer unasked)."""
        tail = self.tail
        if tail is None:
            return None
        self.tail = None
        last = tail[-1]
        if last.endswith(b"\n0\r\n\r\n"):  # the common end: no trailers
            return None
        fields = trailers.read_section(last if len(tail) == 1 else b"".join(tail),
                                       self.tail_whole)
        if fields:
            # llhttp ends the connection after a Connection (or a
            # Content-Length) among trailers: the next answer gets a new parser
            self.stale_parser = True
        return fields or None

    def on_body(self, body: bytes) -> None:
        if self.session is not None and not self.stale_parser:
            self.session.response_body(body)

    def on_message_complete(self) -> None:
        if self.session is not None and not self.stale_parser:
            if 100 <= self.parser.get_status_code() < 200 and not self.tunnel:
                return  # an interim response; the final one follows
            self._answer_ended(self.session)


class ConnectionPool:
    """Idle keep-alive connections per server, most recently used last.

    Idle connections are purged by one sweep per POOL_IDLE_TIMEOUT rather than a
    timer per connection: putting a connection back happens once per request.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop):
        self.loop = loop
        # the writes of the HTTP sessions and their server connections
        self.outbox = Outbox(loop)
        self._idle: dict[object, list[UpstreamConnection]] = {}  # by pool_key
        self._sweeper: asyncio.TimerHandle | None = None

    def take(self, server: ServerState, sni: str | None = None,
             proven: bool = False) -> UpstreamConnection | None:
        """An idle connection to server that sent this SNI (None: none sent);
        proven: only one that has carried two exchanges or more."""
        idle = self._idle.get(server if sni is None else (server, sni))
        if proven:
            for i in range(len(idle) - 1, -1, -1) if idle else ():
                connection = idle[i]
                if not connection.closed and connection.exchanges >= 2:
                    del idle[i]
                    return connection
            return None
        while idle:
            connection = idle.pop()
            if not connection.closed:
                return connection
        return None

    def put(self, connection: UpstreamConnection) -> None:
        if connection.closed:
            return
        connection.detach()
        connection.idle_since = self.loop.time()
        idle = self._idle.get(connection.pool_key)
        if idle is None:
            idle = self._idle[connection.pool_key] = []
        idle.append(connection)
        if self._sweeper is None:
            self._sweeper = self.loop.call_later(POOL_IDLE_TIMEOUT, self._sweep)

    def discard(self, connection: UpstreamConnection) -> None:
        idle = self._idle.get(connection.pool_key)
        if idle and connection in idle:
            idle.remove(connection)

    def census(self) -> dict[ServerState, list[int]]:
        """Idle connections per server as [unsafe, safe] (HAProxy's
        idle_conn_cur and safe_conn_cur): safe ones have already carried a
        second exchange, so they are known to survive between requests. Read
        by the stats when asked, so the pool keeps no counts of its own."""
        counts: dict[ServerState, list[int]] = {}
        for key, idle in self._idle.items():
            if not idle:
                continue
            server = key[0] if type(key) is tuple else key
            pair = counts.get(server)
            if pair is None:
                pair = counts[server] = [0, 0]
            for connection in idle:
                if not connection.closed:
                    pair[connection.exchanges >= 2] += 1
        return counts

    def close_idle(self, server: ServerState) -> None:
        """Close the idle connections to server (its address changed)."""
        for key in [key for key in self._idle
                    if key is server or (isinstance(key, tuple) and key[0] is server)]:
            for connection in self._idle.pop(key):
                connection.close()

    def _sweep(self) -> None:
        self._sweeper = None
        limit = self.loop.time() - POOL_IDLE_TIMEOUT
        remaining = 0
        for idle in self._idle.values():
            # Most recently used last: the stale ones are at the front.
            stale = 0
            while stale < len(idle) and idle[stale].idle_since <= limit:
                idle[stale].close()
                stale += 1
            del idle[:stale]
            remaining += len(idle)
        if remaining:
            self._sweeper = self.loop.call_later(POOL_IDLE_TIMEOUT / 2, self._sweep)
