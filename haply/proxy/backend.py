"""A backend at run time: which server takes a connection, the queue, and connecting.

The balancer (pure) answers "which server"; this module adds what needs a loop:
waiting in the backend's queue while every server is at its `maxconn` (bounded by
`timeout queue`), and connecting with `retries` and `option redispatch`.

Slots: a server's `current_sessions` counts requests (HTTP) or connections (TCP) in
progress on it. `acquire` takes a slot, `release` gives it back and hands the freed
slot straight to the oldest queued request, so a queue is served in order.
"""

from __future__ import annotations

import asyncio
import socket
from collections import Counter, defaultdict, deque
from typing import Callable

from haply.balance import make_balancer
from haply.balance.hashing import HashBalancer
from haply.balance.selection import GroupBalancer
from haply.config.model import Proxy
from haply.http import compression
from haply.health.state import EV_L4_ERROR, EV_L4_OK, EV_L4_TIMEOUT
from haply.proxy import caching, outbound, proxy_header, socket_options
from haply.proxy.conditions import compile_condition, compile_tcp_rules, stick_table
from haply.proxy.stick import Stickiness, StickTable
from haply.runtime.registry import Registry, ServerState

# HAProxy applies `timeout connect` to the queue when `timeout queue` is unset, and
# warns when `timeout connect` itself is missing; 5 s is the usual value in guides.
DEFAULT_CONNECT_TIMEOUT = 5.0


class NoServerAvailable(Exception):
    """No server could take the request: the proxy answers 503 or closes."""

    def __init__(self, reason: str, status: int = 503, server: ServerState | None = None):
        self.reason = reason
        self.status = status
        self.server = server  # the last one tried, for the log (HAProxy names it)
        super().__init__(reason)


def follows_sessions(balancer) -> bool:
    """Whether a balancer does anything when a session starts or ends
    (leastconn orders its servers so); the others' empty hooks are not
    called on every request."""
    kind = type(balancer)
    return (kind.connection_started is not GroupBalancer.connection_started
            or kind.connection_ended is not GroupBalancer.connection_ended)


class BackendRuntime:
    # Slots: read on every request, and past 30 attributes CPython gives an
    # instance a plain dictionary, slower to read than slots or shared keys.
    __slots__ = ("_balances_freely", "_follows_sessions", "_queue", "_server_queues", "balancer", "bytes_in",
                 "bytes_out", "cache", "client_aborts", "comp", "connect_errors", "connect_timeout",
                 "content_rules", "current_sessions",
                 "denied", "dequeued", "fullconn", "local_responses", "loop", "max_queue", "max_queued",
                 "max_sessions", "name", "no_server", "observer", "proxy", "queue_timeout",
                 "redispatch", "redispatch_every", "redispatched", "registry", "retried",
                 "retries", "routed", "server_socket", "servers", "sessions", "stick", "tls", "total_sessions",
                 "turnaround", "unanswered", "use_server", "waiting")

    def __init__(self, proxy: Proxy, registry: Registry, loop: asyncio.AbstractEventLoop,
                 fullconn: int = 1):
        self.proxy = proxy
        # the load at which servers with minconn reach their maxconn (its
        # `slim`); haply.balance.dynamic_limit.backend_fullconn
        self.fullconn = fullconn
        self.name = proxy.name
        self.loop = loop
        self.registry = registry
        self.servers = registry.servers(proxy.name)
        arg = " ".join(w for w in (proxy.balance_arg, *proxy.balance_options) if w)
        self.balancer = make_balancer(
            proxy.balance, self.servers, arg=arg or None,
            hash_type=" ".join(word for word in (proxy.hash_type, proxy.hash_function,
                                                 proxy.hash_modifier) if word),
            allbackups=proxy.allbackups,
        )
        # Balanced requests wait in one queue per backend, not one per server:
        # `maxqueue` on every server bounds it by their sum (a server without
        # maxqueue means no bound, as in HAProxy). Beyond it a request gets 503
        # at once. (Persistent requests wait for their server: _server_queues.)
        limits = [server.maxqueue for server in proxy.servers]
        self.max_queue = sum(limits) if limits and all(limits) else 0
        registry.subscribe(proxy.name, self._on_server_change)
        timeouts = proxy.timeouts
        self.connect_timeout = timeouts.connect or DEFAULT_CONNECT_TIMEOUT
        self.queue_timeout = timeouts.queue or self.connect_timeout
        # `retry-on none`: never retry, connects included (configuration manual).
        # (the parser stores `none` as the empty set).
        self.retries = 0 if proxy.retry_on == frozenset() else proxy.retries
        self.redispatch = proxy.redispatch
        self.redispatch_every = proxy.redispatch_every
        # A balancer that would choose the same server again (a hash of the
        # request) gains nothing from leaving it at the first failure.
        self._balances_freely = not isinstance(self.balancer, HashBalancer)
        self._follows_sessions = follows_sessions(self.balancer)
        # Before a retry on the same server, HAProxy waits min(timeout
        # connect, 1 s): a server that is restarting gets a moment to listen.
        self.turnaround = min(self.connect_timeout, 1.0)
        # tcpka, nolinger, tcp-smart-connect on connections to servers; None
        # when the backend asks nothing of them (the common case pays a test)
        self.server_socket = None if proxy.server_socket.plain else proxy.server_socket
        self._queue: deque[tuple[asyncio.Future, object, ServerState | None]] = deque()
        # Requests that persistence (a cookie, a stick table) ties to a server
        # that is full wait for that server in a queue of its own, as in
        # HAProxy, bounded by the server's `maxqueue`.
        self._server_queues: dict[ServerState, deque[asyncio.Future]] = {}
        # Passive health (`observe`): the checker's observe(backend, server, event),
        # set by the engine only when a server of this backend observes, so the
        # hot path pays one `is None` test otherwise.
        self.observer: Callable[[str, str, object], None] | None = None
        # Re-encryption: server name -> (SSLContext, server_hostname), or a
        # haply.tls.DynamicServerTls when `sni` varies per request; built once by
        # the engine (haply.tls.server_context); empty when no server uses ssl.
        self.tls: dict[str, object] = {}
        # Live sessions per server, kept only when `on-marked-down
        # shutdown-sessions` or `on-marked-up shutdown-backup-sessions` needs them.
        self.sessions: dict[ServerState, set] | None = None
        if any(s.on_marked_down or s.on_marked_up for s in proxy.servers):
            self.sessions = defaultdict(set)
        # counters read by pages and metrics. HAProxy's backend counts every
        # request (HTTP) or connection (TCP) routed to it, from then until it
        # ends, queued or not (stot, scur, smax); lbtot counts servers chosen.
        self.routed = 0  # stot
        self.total_sessions = 0  # slots taken on a server (lbtot: its servers' `balanced`)
        self.current_sessions = 0  # slots held on its servers
        self.waiting = 0  # in its queue or a server's: with the above, scur
        self.dequeued = 0  # requests that left its queue, served or not (the log's %bq)
        # the most requests it had at once (counted as each is routed here)
        self.max_sessions = 0
        self.max_queued = 0
        self.connect_errors = 0
        self.retried = 0
        self.redispatched = 0
        self.denied = 0  # requests refused by its own `http-request deny` rules
        # haply's own answers to requests routed here (errors, denials,
        # redirects), by status class: with its servers' answers, the
        # backend's req_tot and hrsp_* as HAProxy counts them
        self.local_responses: Counter[int] = Counter()
        # requests routed here that the client broke off before any answer:
        # in req_tot too, as HAProxy counts them
        self.unanswered = 0
        # exchanges the client broke off with no server involved (a tarpit):
        # its servers' cli_abrt are theirs
        self.client_aborts = 0
        # `stick-table` with stick rules (haply.proxy.stick), else None.
        self.stick: Stickiness | None = None
        if proxy.stick_table is not None and proxy.stick_rules:
            table = stick_table(proxy.name) or StickTable(proxy.stick_table)
            self.stick = Stickiness(table, proxy.stick_rules, self.servers)
        self.no_server = 0
        # A backend's own `tcp-request content` rules, evaluated once a request
        # or connection is routed here (a listen's are its frontend's): None without.
        self.content_rules = (compile_tcp_rules(proxy, "content") or None
                              if proxy.kind == "backend" else None)
        # `use-server` rules: (predicate, server) in file order, or None.
        self.use_server: list | None = None
        if proxy.use_server_rules:
            by_name = {server.name: server for server in self.servers}
            self.use_server = [(compile_condition(rule.condition), by_name[rule.server])
                               for rule in proxy.use_server_rules]
        self.bytes_in = 0
        self.bytes_out = 0
        self.comp = compression.Counters()  # comp_in, comp_out, comp_byp, comp_rsp
        self.cache = caching.Counters()  # cache_lookups, cache_hits of its own cache-use rules

    # ----------------------------------------------------------------- slots

    @property
    def queued(self) -> int:
        return len(self._queue)

    def routed_in(self) -> None:
        """A request (or connection) is routed here: counted in stot, and in
        smax with the ones here already (holding a slot or queued), so that
        one answered without a server (a deny, none available) counts too.
        Taking a slot and queueing count again: a request routed while
        another is between here and its slot is not among these."""
        self.routed += 1
        self._note_present(1)

    def _note_present(self, arriving: int = 0) -> None:
        """smax: the most requests here at once, holding a slot or queued
        (and `arriving`, one not yet among them)."""
        present = self.current_sessions + self.waiting + arriving
        if present > self.max_sessions:
            self.max_sessions = present

    def try_acquire(self, key, exclude: ServerState | None = None) -> ServerState | None:
        server = self.balancer.pick(key, exclude)
        if server is not None:
            self._take(server)
            server.balanced += 1
            # _note_present(), inline: once per request
            if self.current_sessions + self.waiting > self.max_sessions:
                self.max_sessions = self.current_sessions + self.waiting
        return server

    def forced_server(self, key) -> ServerState | None:
        """The server of the first `use-server` rule whose condition holds for
        key and whose server may take it (not DOWN, not in maintenance: such a
        rule is passed over, as in HAProxy), else None."""
        for test, server in self.use_server:
            if test(key) and server.takes_persistent:
                return server
        return None

    def try_acquire_server(self, server: ServerState) -> ServerState | None:
        """A slot on this very server (cookie persistence), if it has one free."""
        if server.maxconn > 0 and server.current_sessions >= server.maxconn:
            return None
        self._take(server)
        self._note_present()
        return server

    async def acquire_server(self, server: ServerState, key, tally=None) -> ServerState:
        """A slot on the server persistence chose, waiting in its queue while it
        is full (up to `timeout queue`). Past its `maxqueue`, or when it leaves
        service meanwhile, the request is balanced with `option redispatch`
        and refused (503) without."""
        in_service = server.takes_persistent
        if in_service:
            if self.try_acquire_server(server) is not None:
                return server
            if not (server.maxqueue and server.queued >= server.maxqueue):
                queue = self._server_queues.get(server)
                if queue is None:
                    queue = self._server_queues[server] = deque()
                waiter = self.loop.create_future()
                server.queued += 1
                if server.queued > server.max_queued:
                    server.max_queued = server.queued
                try:
                    granted = await self._wait(queue, waiter, waiter, server, tally)
                finally:
                    server.queued -= 1
                if granted is not None:
                    return granted
                in_service = False  # it left service while the request waited
        if not self.redispatch:
            self.no_server += 1
            raise NoServerAvailable("queue full" if in_service else "no server available")
        return await self.acquire(key, tally=tally)

    async def acquire(self, key, exclude: ServerState | None = None, tally=None) -> ServerState:
        server = self.try_acquire(key, exclude)
        if server is not None:
            return server
        if not self.balancer.has_usable():
            self.no_server += 1
            raise NoServerAvailable("no server available")
        if self.max_queue and len(self._queue) >= self.max_queue:
            self.no_server += 1
            raise NoServerAvailable("queue full")
        waiter = self.loop.create_future()
        if len(self._queue) + 1 > self.max_queued:
            self.max_queued = len(self._queue) + 1
        return await self._wait(self._queue, (waiter, key, exclude), waiter, self, tally)

    async def _wait(self, queue: deque, entry, waiter: asyncio.Future, owner,
                    tally) -> ServerState | None:
        """Wait in queue (as entry) until waiter gets a server slot, for `timeout
        queue` at most; the server, or None when the slot's server left service.
        owner: the backend (its queue) or the server (its own); tally, if any,
        gets in `queue_positions` (server's, backend's) how many requests left
        that queue while it waited, itself included (HAProxy's %sq/%bq)."""
        queue.append(entry)
        entered = owner.dequeued
        self.waiting += 1
        self._note_present()
        try:
            async with asyncio.timeout(self.queue_timeout):
                return await waiter
        except TimeoutError:
            self.no_server += 1
            raise NoServerAvailable("queue timeout") from None
        except asyncio.CancelledError:
            # The client left (option abortonclose): a slot handed over just
            # before is given back.
            if waiter.done() and not waiter.cancelled() and waiter.exception() is None \
                    and waiter.result() is not None:
                self.release(waiter.result())
            raise
        finally:
            self.waiting -= 1
            owner.dequeued += 1
            if tally is not None:
                position = owner.dequeued - entered
                tally.queue_positions = (0, position) if owner is self else (position, 0)
            if not waiter.done():
                waiter.cancel()
            try:
                queue.remove(entry)
            except ValueError:
                pass

    def release(self, server: ServerState) -> None:
        server.current_sessions -= 1
        self.current_sessions -= 1
        if self._follows_sessions:
            self.balancer.connection_ended(server)
        if self._server_queues and self._serve_server_queue(server):
            return
        if self._queue:
            self._serve_queue()

    def _serve_server_queue(self, server: ServerState) -> bool:
        """Give the slot server just freed to the first request waiting for
        that very server; False when none waits."""
        queue = self._server_queues.get(server)
        while queue:
            waiter = queue.popleft()
            if not waiter.done():
                self._take(server)
                waiter.set_result(server)
                return True
        return False

    def _take(self, server: ServerState) -> None:
        server.current_sessions += 1
        server.total_sessions += 1
        if server.current_sessions > server.max_sessions:
            server.max_sessions = server.current_sessions
        self.current_sessions += 1
        self.total_sessions += 1
        if self._follows_sessions:
            self.balancer.connection_started(server)

    def _serve_queue(self) -> None:
        while self._queue:
            waiter, key, exclude = self._queue[0]
            if waiter.done():
                self._queue.popleft()
                continue
            server = self.balancer.pick(key, exclude)
            if server is None:
                if not self.balancer.has_usable():
                    # Every server went away while requests waited: fail them now
                    # rather than at the end of `timeout queue`.
                    self._queue.popleft()
                    waiter.set_exception(NoServerAvailable("no server available"))
                    continue
                return
            self._queue.popleft()
            self._take(server)
            waiter.set_result(server)

    def limit_changed(self, server: ServerState) -> None:
        """server's maxconn changed (runtime API): requests waiting for it,
        then those waiting for any server, take the room it now has."""
        while server.has_free_slot and self._server_queues and self._serve_server_queue(server):
            pass
        self._on_server_change(server)

    def _on_server_change(self, state: ServerState) -> None:
        self.balancer.rebuild()
        queue = self._server_queues.get(state)
        if queue and not state.takes_persistent:
            # Out of service: its waiting requests are redispatched or refused.
            while queue:
                waiter = queue.popleft()
                if not waiter.done():
                    waiter.set_result(None)
        if self._queue:
            self._serve_queue()

    # ---------------------------------------------------- health and sessions

    def report(self, server: ServerState, event) -> None:
        """Tell passive health about one exchange (callers test `observer` first)."""
        config = server.config
        if config is not None and config.observe:
            self.observer(self.name, server.name, event)

    def track(self, server: ServerState, session) -> None:
        self.sessions[server].add(session)

    def untrack(self, server: ServerState, session) -> None:
        sessions = self.sessions.get(server)
        if sessions is not None:
            sessions.discard(session)

    def kill_sessions(self, server: ServerState) -> int:
        """Close every session on server (on-marked-down shutdown-sessions)."""
        if self.sessions is None:
            return 0
        victims = self.sessions.pop(server, set())
        for session in victims:
            session.close()
        return len(victims)

    # -------------------------------------------------------------- connecting

    def should_redispatch(self, attempt: int, persistent: bool) -> bool:
        """Whether retry number `attempt` (from 1) goes back to the balancer
        rather than to the server that just failed, under `option redispatch
        [interval]`: every interval-th retry when positive, the retry that many
        before the last when negative (-1, the default: the last one). As in
        HAProxy, a request no persistence ties to a server leaves a failed
        server at once when the balancer has another active server to give."""
        if not self.redispatch:
            return False
        every = self.redispatch_every
        if every > 0 and attempt % every == 0:
            return True
        if every < 0 and attempt == self.retries + 1 + every:
            return True
        group = self.balancer.group
        return (not persistent and self._balances_freely and len(group) > 1
                and not group[0].backup)

    def server_sni(self, server: ServerState, key, client=None) -> str | None:
        """The SNI a connection to server sends for key (None: none, or no TLS).
        Pooled connections are reused only for the same name."""
        tls = self.tls.get(server.name)
        if tls is None:
            return None
        if type(tls) is tuple:
            return tls[1] or None
        return tls.server_name(key, client)

    async def connect(self, key, factory: Callable[[ServerState], asyncio.Protocol],
                      dest_port: int | None = None, exclude: ServerState | None = None,
                      server: ServerState | None = None,
                      gave_up: Callable[[], bool] | None = None, client=None,
                      tally=None, persistent: bool = False):
        """Connect to a server chosen for key, with retries and redispatch.

        factory(server) makes the protocol for an attempt on server. `server`, when
        given, is one whose slot the caller already holds; `persistent` says that
        persistence chose it. `gave_up()` true stops retrying (the client left).
        `client`, the client's transport, is read only by an `sni ssl_fc_sni`
        expression. `tally`, the request or session, counts the retries in its
        `attempts` (retries already spent there count against `retries`), notes
        a move to another server in `redispatched` (the log's %rc, "+N") and
        gets the log's Tc in `t_connect`: the time to connect to the server
        finally used; as in HAProxy, what went before a move to another server
        is added to its Tw (`t_wait`).
        Returns (server, transport, protocol); the server's slot is held and must
        be given back with `release`. Raises NoServerAvailable.
        """
        if server is None:
            server = await self.acquire(key, exclude, tally)
        attempt = tally.attempts if tally is not None else 0
        began = self.loop.time()
        while True:
            address = server_address(server, dest_port)
            tls = self.tls.get(server.name) if self.tls else None
            if tls is not None and type(tls) is not tuple:
                tls = tls.resolve(key, client)  # `sni EXPR`: this request's name
            config = server.config
            server.connects += 1
            try:
                async with asyncio.timeout(self.connect_timeout):
                    source = (config.source if config is not None and config.source is not None
                              else self.proxy.source)
                    send_proxy = config.send_proxy if config is not None else 0
                    options = self.server_socket
                    if send_proxy or source is not None or (options is not None and options.delayed_ack):
                        transport, protocol = await self._connect_own_socket(
                            server, address, tls, factory, client, send_proxy, source)
                    else:
                        transport, protocol = await self.loop.create_connection(
                            lambda: factory(server), address[0], address[1],
                            ssl=tls[0] if tls else None,
                            server_hostname=tls[1] if tls else None)
                    if options is not None:
                        sock = transport.get_extra_info("socket")
                        if sock is not None:
                            socket_options.once_connected(sock, options)
                if self.observer is not None:
                    self.report(server, EV_L4_OK)
                if tally is not None:
                    tally.t_connect = int((self.loop.time() - began) * 1000)
                return server, transport, protocol
            except asyncio.CancelledError:
                self.release(server)  # the client left while connecting (abortonclose)
                raise
            except (OSError, TimeoutError) as exc:
                server.connect_errors += 1
                self.connect_errors += 1
                if self.observer is not None:
                    self.report(server, EV_L4_TIMEOUT if isinstance(exc, TimeoutError)
                                else EV_L4_ERROR)
                self.release(server)
                if attempt >= self.retries or (gave_up is not None and gave_up()):
                    raise NoServerAvailable("connection failed", 503, server) from None
                attempt += 1
                if tally is not None:
                    tally.attempts = attempt
                server.retries += 1
                self.retried += 1
                moved = self.should_redispatch(attempt, persistent) or not server.usable
                if moved:
                    previous = server
                    server = await self.acquire(key, exclude=previous, tally=tally)
                    if server is not previous:
                        server.redispatches += 1
                        self.redispatched += 1
                        if tally is not None:
                            tally.redispatched = True
                            began = _into_wait(tally, began, self.loop.time())
                        persistent = False
                        continue
                else:
                    self._take(server)
                await self._turn_around(server, gave_up)
                if moved and tally is not None:  # back through the balancer to the same one
                    began = _into_wait(tally, began, self.loop.time())

    async def _connect_own_socket(self, server: ServerState, address, tls, factory,
                                  client, send_proxy: int, source):
        """A connection the loop cannot make alone: from a `source` address
        (haply.proxy.outbound), or to a `send-proxy[-v2]` server, whose PROXY
        header with the client's address and the one it connected to goes
        first, before any TLS handshake."""
        loop = self.loop
        options = self.server_socket
        sock = await outbound.connected_socket(
            loop, address[0], address[1], source,
            None if options is None else lambda sock: socket_options.before_connect(sock, options))
        try:
            if send_proxy:
                source_address = client.get_extra_info("peername") if client is not None else None
                destination = client.get_extra_info("sockname") if client is not None else None
                await loop.sock_sendall(sock, proxy_header.header(send_proxy, source_address,
                                                                  destination))
            return await loop.create_connection(
                lambda: factory(server), sock=sock, ssl=tls[0] if tls else None,
                server_hostname=tls[1] if tls else None)
        except BaseException:
            sock.close()
            raise

    async def _turn_around(self, server: ServerState, gave_up) -> None:
        """The pause before a retry on the same server, its slot held."""
        try:
            await asyncio.sleep(self.turnaround)
        except asyncio.CancelledError:
            self.release(server)  # the client left (abortonclose)
            raise
        if gave_up is not None and gave_up():
            self.release(server)
            raise NoServerAvailable("connection failed", 503, server)


def _into_wait(tally, began: float, now: float) -> float:
    """A request goes back through the balancer (a redispatch): as in HAProxy,
    the time spent connecting so far counts in its Tw, and Tc starts again."""
    tally.t_wait = max(tally.t_wait, 0) + int((now - began) * 1000)
    return now


def server_address(server: ServerState, dest_port: int | None) -> tuple[str, int | None]:
    address = server.address
    if address is None:
        address = server.address = resolve(server.host)
    port = server.port if server.port is not None else dest_port
    return address[0], port


def resolve(host: str) -> tuple[str]:
    """Resolve a server's host once, at start: the hot path never calls DNS."""
    infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    return (infos[0][4][0],)
