"""Logging sessions: subclasses of the proxy's session protocols, used by the
engine only for frontends that log, so a frontend without a log target runs
the plain classes and pays nothing for logging.

HTTP: one `Exchange` per request, in arrival order (requests are answered in
order, pipelined or not), timed from the first byte of the request (TR ends
when its head is complete, Tr when the server's head arrives); the line is
written when the exchange ends (response complete, local answer, or rejection).
The steps every request takes are the compiled HttpSession's (it does them
when its log_queue is set); the subclass adds the rarer paths.
TCP: one line per connection when it closes. In both, bytes are counted per
connection by a thin transport wrapper that only logging connections get.

A frontend that logs without any log format option (no `option httplog`,
`tcplog` or `log-format`) writes HAProxy's default line instead, once per
stream as it starts: `connect_logged_session`.
"""

from __future__ import annotations

import collections
import time

from haply.logs.formats import retries_field
from haply.proxy.caching import CACHE_SERVER
from haply.proxy.byte_counts import CountingTransport, byte_counted_session

# Termination state of local answers (manual 8.5): first letter who ended it,
# second at which step. S=server side, s=server timeout, C=client, P=proxy,
# L=answered locally; C=connect, H=headers, R=request.
LOCAL_TERMINATION = {503: "SC--", 502: "SH--", 504: "sH--", 408: "cR--", 400: "PR--"}


def logged_http_session(base):
    # %B and %U are this connection's bytes (the frontend's totals move with
    # every other connection's traffic): the session counts them.
    base = byte_counted_session(base)
    # The base methods are called directly rather than through super() with
    # *args: these hooks run several times per request.
    base_connection_made = base.connection_made
    base_left_before_request = base._left_before_request
    wall_clock = time.time

    class LoggedHttpSession(base):
        # The per-request steps (an Exchange as a request begins, its times as
        # its head ends and its answer's comes, the line as it ends) are the
        # compiled HttpSession's own, done once log_queue is set.

        def connection_made(self, transport) -> None:
            self.log_queue = collections.deque()
            self.log_accepted = (self.loop.time(), wall_clock())
            base_connection_made(self, transport)

        def _left_before_request(self) -> bool:
            # HAProxy logs it as <BADREQ> closed by the client (CR--), an empty
            # connection only without dontlognull.
            if not base_left_before_request(self):
                return False
            null = self.parsing is None
            log_queue = self.log_queue
            if not null and log_queue:
                exchange = log_queue.pop()
                begin, wall = exchange.begin, exchange.wall
            else:
                begin, wall = self.log_accepted
            self.frontend.logger.http_empty(self, begin, wall, null)
            return True

        def _status_set(self, status) -> None:
            if self.log_queue:
                self.log_queue[0].status = status

        def _answered_locally(self, request, status, termination) -> None:
            # while the session still counts in ac/fc/bc, as HAProxy logs it
            server = request.server or getattr(request, "tried", None)
            cookie = request.route.cookie if request.route is not None else None
            if cookie is not None and cookie.logs_flags:
                # the answer came from no server and sets no cookie: "N"
                request.cookie_flags = request.cookie_flags[0] + "N"
            if termination == "PT--" and self.log_queue:
                # HAProxy logs a tarpitted request without TR (its time in the
                # tarpit is its Tw)
                self.log_queue[0].headers_at = None
            elif server is CACHE_SERVER and self.log_queue:
                # an answer from the cache has its Tr, as a server's has
                self.log_queue[0].response_at = self.loop.time()
            self._log(request, status, termination or LOCAL_TERMINATION.get(status, "LR--"), server)

        def _ended(self, request, termination) -> None:
            # the status is the server's if its head came, else -1
            self._log(request, None, termination, request.server)

        def _rejected(self, status) -> None:
            request = self.parsing or (self.requests[-1] if self.requests else None)
            log_queue = self.log_queue
            if request is None:  # a new connection sent nothing: its 408
                self.frontend.logger.http_empty(self, *self.log_accepted, status=status,
                                                termination="cR--")
            elif log_queue:
                # HAProxy logs no byte for a refused request, even when the
                # answers to the requests before it went out since it came.
                log_queue[-1].bytes_out = self.transport.written
                if request.error is not None:
                    # refused in its head (a bad target, framing or upgrade):
                    # HAProxy never had a request, so no TR
                    log_queue[-1].headers_at = None
                log_queue.rotate(-(len(log_queue) - 1))  # the last one
                self._log(request, status, "PR--" if status != 408 else "cR--")

        def _log(self, request, status, termination, server=None) -> None:
            if not self.log_queue:
                return
            exchange = self.log_queue.popleft()
            self.frontend.logger.http_done(self, request, exchange, status, termination, server)

    return LoggedHttpSession


def asap_logged_http_session(base):
    """`option logasap`: a request is logged as soon as its response head has
    gone to the client (with what of the body came in the same read), with
    the time and the bytes so far: '+' before %Ta, %Tt and %B, as HAProxy
    writes them; what happens after is not logged. A request answered
    without a server head (an error, a local answer) is logged when it ends,
    as without the option."""
    logged = logged_http_session(base)

    class AsapLoggedHttpSession(logged):
        asap_pending = False  # a response head is on its way: log once it is written

        def response_head(self, upstream, status: int, version: str,
                          server_keep_alive: bool) -> None:
            logged.response_head(self, upstream, status, version, server_keep_alive)
            self.asap_pending = bool(self.log_queue) and bool(self.requests)

        def flush(self) -> None:
            logged.flush(self)
            if self.asap_pending:
                self._log_asap()

        def _log_asap(self) -> None:
            self.asap_pending = False
            exchange = self.log_queue[0]
            exchange.logged = True
            self.frontend.logger.http_done(self, self.requests[0], exchange, asap=True)

        def _drop_logged(self) -> bool:
            """Take the exchange already logged off the queue (True), if it is."""
            log_queue = self.log_queue
            if log_queue and log_queue[0].logged:
                log_queue.popleft()
                return True
            return False

        def _finish_exchange(self, request, upstream, reusable: bool) -> None:
            if self.asap_pending:  # a response written whole in one go
                self._log_asap()
            self._drop_logged()
            logged._finish_exchange(self, request, upstream, reusable)

        def _log(self, request, status, termination, server=None) -> None:
            self.asap_pending = False  # the head did not leave: logged as it ends
            if not self._drop_logged():
                logged._log(self, request, status, termination, server)

    return AsapLoggedHttpSession


def logged_tcp_session(base):
    class LoggedTcpSession(byte_counted_session(base)):
        def connection_made(self, transport) -> None:
            self.log_begin = self.loop.time()
            self.log_wall = time.time()
            self.log_peer = transport.get_extra_info("peername")
            self.log_local = transport.get_extra_info("sockname")
            self.log_ssl = transport.get_extra_info("sslcontext") is not None
            super().connection_made(transport)

        def close(self) -> None:
            if self.closed:
                return
            server = self.server if self.upstream is not None else None
            transport = self.transport
            counted = isinstance(transport, CountingTransport)
            self.frontend.logger.tcp_done(
                self.frontend, self.log_peer, self.log_local, self.backend, server or self.tried,
                self.log_begin, self.log_wall, self.loop.time(), transport.received if counted else 0,
                transport.written if counted else 0,
                (self.ending or ("--" if server is not None else "SC")), self.t_wait, self.t_connect,
                retries_field(self), self.queue_positions, self.log_ssl)
            super().close()

    return LoggedTcpSession


def connect_logged_session(base, http: bool):
    """HAProxy's default log line (manual 8.2.1), for a frontend that logs
    with no log format option: "Connect from SRC:PORT to DST:PORT
    (FRONTEND/MODE)" at info, as each stream starts. In mode tcp that is the
    connection's accept, logged even when it sends nothing (dontlognull does
    not apply); in mode http, each request once its head is whole, so a
    connection that never sends one logs nothing (observed with HAProxy
    2.6). Nothing is logged as streams end."""

    class ConnectLoggedSession(base):
        connect_line = ""

        def connection_made(self, transport) -> None:
            peer = transport.get_extra_info("peername")
            local = transport.get_extra_info("sockname")
            self.connect_line = (f"Connect from {_address(peer)} to {_address(local)} "
                                 f"({self.frontend.name}/{'HTTP' if http else 'TCP'})")
            if not http:
                self.frontend.logger.connect(self.connect_line)
            base.connection_made(self, transport)

        if http:
            def on_headers_complete(self) -> None:
                self.frontend.logger.connect(self.connect_line)
                base.on_headers_complete(self)

    return ConnectLoggedSession


def _address(pair) -> str:
    if not pair:
        return "-:0"
    if isinstance(pair, str):  # a UNIX socket
        return f"unix:{pair}"
    return f"{pair[0]}:{pair[1]}"
