"""The proxy engine: turns a validated Config into listeners serving traffic.

Start-up is all-or-nothing: every listening socket is bound and every server
address resolved before the first connection is accepted; if one fails, everything
opened so far is closed and the error says which `bind` line failed, so a config
error never leaves a half-started process.
"""

from __future__ import annotations

import asyncio
import resource
import socket
import ssl
import sys
from collections import deque

from haply.config.model import STICK_BYTES, Config
from haply.health import HealthChecker
from haply.http import cache, framing
from haply.proxy import socket_options
from haply.proxy.accept_proxy import HeaderListener
from haply.proxy.addresses import AddressError, initial_address
from haply.limits import RESERVED_DESCRIPTORS
from haply.proxy.backend import BackendRuntime
from haply.proxy.dynamic_backend import backend_for
from haply.proxy.rate_limited import RateLimitedListener
from haply.proxy.frontend import FrontendRuntime, Listener, ListenerCounting, listener_of
from haply.proxy import pausing
from haply.proxy.pausing import ServedSocket
from haply.proxy.gate import Gate
from haply.proxy.conditions import compile_condition, use_backends, use_tables, use_userlists
from haply.proxy.stick import StickTable
from haply.proxy.http import HttpSession
from haply.proxy.listeners import BindError, backlog_of, open_listener
from haply.proxy.router import ERROR_HISTORY, Router
from haply.proxy.inspection import InspectingTcpClient
from haply.proxy.payload import reads_payload
from haply.proxy.tcp import TcpClientProtocol
from haply.proxy.timers import Wheel
from haply.proxy.upstream import ConnectionPool
from haply.runtime.registry import MAINT, Registry
from haply.admin.counters import CheckCounters
from haply.alerts import EmailAlerts
from haply.admin.services import compile_services
from haply.admin.socket_server import StatsSocketError, open_stats_sockets, serve_stats_sockets
from haply.logs import Logging
from haply.logs.formats import FormatError
from haply.logs.hooks import (asap_logged_http_session, connect_logged_session, logged_http_session,
                              logged_tcp_session)
from haply.proxy.byte_counts import byte_counted_session
from haply import tls
from haply.peers.service import services_for
from haply.resolvers import service as resolvers_service


class StartError(Exception):
    pass


class Engine:
    def __init__(self, config: Config, loop: asyncio.AbstractEventLoop,
                 registry: Registry | None = None, sockets=None):
        self.config = config
        # Where listeners come from: None = bind them here; a worker of the
        # master process gets haply.master.sockets.WorkerSockets instead.
        self.sockets = sockets
        # Called with a runtime API command line after an operator changed
        # server state (runtime API, stats page), so a master can pass it on
        # to the other workers.
        self.on_operator_change = None
        # The other workers' stats (haply.master.worker.PeerStats), merged into
        # every snapshot this engine's pages and sockets show.
        self.peers = None
        # The servers' states at start: None reads the state files the
        # configuration names (`load-server-state-from-file`); a master hands
        # over the replaced workers' fresher states here instead.
        self.carried_states = None
        # False in a worker that follows another worker's health checks and DNS
        # resolutions (haply.resolvers.service.follow); that worker also
        # announces the operator's changes (see `announces`).
        self.health_probing = True
        # Called with (backend, server, address or None) after DNS resolution
        # moved a server, so a master can pass it on to the other workers.
        self.on_dns_change = None
        self.loop = loop
        self.registry = registry or Registry()
        self.global_gate = Gate(config.global_.maxconn)
        # A limit set at run time as this process applies it, and the global
        # maxconn as configured: a worker of several gets its share of each
        # (haply.master.shares) and is told the whole.
        self.limit_share = lambda limit: limit
        self.whole_global_maxconn = config.global_.maxconn
        settings = config.global_
        framing.set_limits(settings.bufsize, settings.maxrewrite, settings.http_maxhdr)
        use_userlists(config.userlists)
        self.default_maxconn = None
        self.pool = ConnectionPool(loop)
        # the timeouts of every connection (haply.proxy.timers)
        self.wheel = Wheel(loop)
        self.errors: deque = deque(maxlen=ERROR_HISTORY)
        self.backends: dict[str, BackendRuntime] = {}
        use_backends(self.backends)
        # Every proxy's stick-table, by the proxy's name (a listen's once).
        self.tables: dict[str, StickTable] = {
            proxy.name: StickTable(proxy.stick_table) for proxy in config.proxies
            if proxy.stick_table is not None}
        use_tables(self.tables, loop.time)
        # Every cache section's objects (haply.http.cache), by name: each
        # worker process keeps its own.
        self.caches: dict[str, cache.Store] = {
            section.name: cache.Store(cache.Settings.of(section)) for section in config.caches}
        self.frontends: dict[str, FrontendRuntime] = {}
        self._routers: dict[str, Router] = {}  # a frontend's, shared by its listeners
        # (frontend, socket, its Listener or None, its listen queue)
        self._sockets: list[tuple[FrontendRuntime, socket.socket, Listener | None, int]] = []
        self._servers: list[asyncio.AbstractServer] = []
        # what serves each bound socket of a frontend, once started (the
        # runtime API pauses and resumes them: haply.proxy.pausing)
        self.served: list[ServedSocket] = []
        self._stats_sockets: list = []  # (StatsSocket, bound socket), from prepare()
        # TLS contexts of `bind ... ssl` listeners (haply.tls), keyed by socket.
        self._tls: dict[socket.socket, object] = {}
        # The listeners whose connections may start with a PROXY header
        # (haply.proxy.accept_proxy): whether all must (accept-proxy, else
        # expect-proxy rules pick them), and their name in log lines.
        self._headers: dict[socket.socket, tuple[bool, str]] = {}
        self.health: HealthChecker | None = None
        self.peer_services: list = []  # haply.peers.service.PeersService, once started
        self.resolvers: list = []  # haply.resolvers.service.SectionResolver, once started
        # e-mail alerts (haply.alerts), where this engine runs the checks and a proxy mails
        self.email_alerts: EmailAlerts | None = None
        # Live client sessions, so a stop can close the idle ones at once.
        self.sessions: set = set()
        self.stopping = False

    @property
    def announces(self) -> bool:
        """Whether the state changes an operator makes are logged and mailed
        here: in a single process, and in the worker that runs the health
        checks, which speaks for all workers. The master relays every change
        to every worker; the others apply it silently, so a change made on any
        worker is announced once."""
        return self.health_probing

    # ---------------------------------------------------------------- set-up

    def prepare(self) -> None:
        """Resolve servers and bind every listener, or undo everything and raise."""
        from haply.runtime import server_state
        now = self.loop.time()
        saved, warnings = ((self.carried_states, []) if self.carried_states is not None
                           else server_state.read_configured(self.config))
        for warning in warnings:
            print(f"[WARNING] {warning}", file=sys.stderr)
        last = {(entry.backend, entry.server): entry.address for entry in saved}
        for proxy in self.config.backends:
            if not self.registry.servers(proxy.name):
                self.registry.add_backend(proxy, now)
            for state in self.registry.servers(proxy.name):
                self._place(state, last.get((proxy.name, state.name)), now)
            self.backends[proxy.name] = backend_for(proxy, self.config, self.registry, self.loop,
                                                    self._implied_maxconn())
        server_state.apply(self.registry, saved, now)
        # Every certificate and TLS option is built before the first bind.
        contexts = self._tls_contexts()
        try:
            for proxy in self.config.frontends:
                frontend = FrontendRuntime(proxy, self)
                self.frontends[proxy.name] = frontend
                counted = "socket-stats" in proxy.options
                expecting = any(rule.action == "expect-proxy" for rule in proxy.tcp_request_rules)
                for position, bind in enumerate(proxy.binds, start=1):
                    sock = self.sockets.listener(bind) if self.sockets else open_listener(bind)
                    if sock is not None:  # (none when the master only validates)
                        socket_options.for_listener(sock, proxy.client_socket)
                    # a listener of its own: for its statistics row, or its `maxconn`
                    listener = (listener_of(bind, position)
                                if counted or any(o == "maxconn" for o, _ in bind.options) else None)
                    if counted:
                        frontend.listeners.append(listener)
                    self._sockets.append((frontend, sock, listener, backlog_of(bind)))
                    if id(bind) in contexts:
                        self._tls[sock] = contexts[id(bind)]
                    options = dict(bind.options)
                    if expecting or "accept-proxy" in options:
                        frontend.screens_at_accept = True
                        self._headers[sock] = ("accept-proxy" in options,
                                               options.get("name") or options.get("id") or str(position))
            # `stats socket`s are bound here too: before privileges are dropped
            self._stats_sockets = (self.sockets.stats_sockets(self.config) if self.sockets
                                   else open_stats_sockets(self.config))
            # log sockets too (/dev/log is outside a chroot), formats compiled
            self._start_logging()
            self._compile_routers()
        except (BindError, StatsSocketError, FormatError) as exc:
            self.close_sockets()
            raise StartError(str(exc)) from exc
        except StartError:
            self.close_sockets()
            raise

    def _implied_maxconn(self) -> int:
        """A frontend's maxconn when neither it nor the global section sets
        one, for fullconn's default: what HAProxy derives from the open-file
        limit (half of it, less what the process keeps for itself)."""
        if self.config.global_.maxconn:
            return self.config.global_.maxconn
        soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        return max(0, (soft - RESERVED_DESCRIPTORS) // 2) if soft != resource.RLIM_INFINITY else 0

    def _compile_routers(self) -> None:
        """Every HTTP frontend's routes and rules, compiled before anything is
        served: what the proxy cannot run is a start error naming its line,
        not a failure once clients come."""
        for frontend in self.frontends.values():
            if frontend.proxy.mode == "http":
                self._router(frontend.proxy)

    def _router(self, proxy):
        """A frontend's routes, compiled once (its listeners share them)."""
        router = self._routers.get(proxy.name)
        if router is None:
            try:
                frontend = self.frontends.get(proxy.name)
                router = Router(proxy, self.backends, self.errors, self.caches,
                                frontend.cache if frontend is not None else None)
            except ValueError as exc:
                raise StartError(str(exc)) from exc
            router.services = compile_services(self, proxy)
            self._routers[proxy.name] = router
        return router

    def _place(self, state, last: str | None, now: float) -> None:
        """Give a server its address at start (init-addr), or keep it in
        maintenance without one."""
        methods = state.config.init_addr if state.config is not None else ()
        try:
            address = initial_address(state.host, methods, last)
        except AddressError as exc:
            if state.config.resolvers is not None:
                # DNS resolution will give it one: HAProxy starts it without
                state.unresolved = True
                self.registry.set_admin(state, MAINT, now)
                print(f"[WARNING] {state.config.location}: server {state.backend}/{state.name}: "
                      f"could not resolve address '{state.host}', disabling server until its "
                      f"resolvers '{state.config.resolvers}' resolve it", file=sys.stderr)
                return
            raise StartError(f"{state.config.location}: server {state.backend}/{state.name}: "
                             f"{exc}") from None
        if address is None:
            state.unresolved = True
            self.registry.set_admin(state, MAINT, now)
            print(f"[WARNING] {state.config.location}: server {state.backend}/{state.name} has no "
                  f"address (init-addr none): in maintenance until `set server "
                  f"{state.backend}/{state.name} addr` gives it one", file=sys.stderr)
        else:
            state.address = (address,)

    def _tls_contexts(self) -> dict[int, object]:
        """Server-side contexts per TLS bind (by id) and client-side contexts
        per TLS server, or StartError naming the line."""
        if not any(tls.bind_uses_tls(b) for p in self.config.frontends for b in p.binds) and \
                not any(o == "ssl" for p in self.config.backends for s in p.servers for o, _ in s.extra):
            return {}
        found: dict[int, object] = {}
        try:
            for proxy in self.config.frontends:
                for bind in proxy.binds:
                    if tls.bind_uses_tls(bind):
                        where = bind.location
                        found[id(bind)] = tls.bind_context(bind, proxy, self.config)
            for proxy in self.config.backends:
                backend = self.backends[proxy.name]
                for server in proxy.servers:
                    where = server.location
                    context = tls.server_context(server, self.config)
                    if context is not None:
                        backend.tls[server.name] = context
        except (tls.CertificateError, tls.TlsOptionError, ssl.SSLError) as exc:
            raise StartError(f"{where}: {exc}") from exc
        return found

    def close_sockets(self) -> None:
        for _, sock, _, _ in self._sockets:
            sock.close()
        self._sockets.clear()
        self._tls.clear()
        self._headers.clear()
        for _, sock in self._stats_sockets:
            sock.close()
        self._stats_sockets = []

    def _plain_session(self, base):
        """The session class of a frontend that does not log: base itself,
        or base on a transport that counts bytes when a stick-table stores
        byte counts (logging sessions count them anyway)."""
        if any(table.stored & STICK_BYTES for table in self.tables.values()):
            return byte_counted_session(base)
        return base

    def _factory(self, frontend: FrontendRuntime, listener: Listener | None = None):
        """The sessions of frontend's listeners, or of one listener counted
        apart (`option socket-stats`)."""
        proxy = frontend.proxy
        counted = frontend if listener is None else ListenerCounting(frontend, listener)
        if proxy.mode == "http":
            router = self._router(proxy)
            pool = self.pool
            session = (self._plain_session(HttpSession) if frontend.logger is None
                       else connect_logged_session(self._plain_session(HttpSession), True)
                       if proxy.log_format is None
                       else asap_logged_http_session(HttpSession) if "logasap" in proxy.options
                       else logged_http_session(HttpSession))
            make = lambda: session(counted, router, pool)  # noqa: E731
        else:
            backend = self.backends.get(proxy.default_backend) if proxy.default_backend else None
            # use_backend in mode tcp: conditions on the connection (src, dst, dst_port)
            switches = tuple((compile_condition(s.condition), self.backends.get(s.backend))
                             for s in proxy.backend_switches) or None
            # the first bytes are inspected only when a rule reads them
            targets = [backend, *(target for _, target in switches or ())]
            inspects = reads_payload(proxy) or any(target is not None and reads_payload(target.proxy)
                                                   for target in targets)
            base = InspectingTcpClient if inspects else TcpClientProtocol
            client = (self._plain_session(base) if frontend.logger is None
                      else connect_logged_session(self._plain_session(base), False)
                      if proxy.log_format is None
                      else logged_tcp_session(base))
            make = lambda: client(counted, backend, switches)  # noqa: E731
        if listener is None:
            return make

        def accept():
            listener.total += 1  # every connection it accepts, refused ones too
            return make()
        return accept

    async def start(self) -> None:
        if not self._sockets:
            self.prepare()
        factories: dict[str, object] = {}
        for frontend, sock, listener, backlog in self._sockets:
            if listener is not None:  # counted apart, or limited apart
                factory = self._factory(frontend, listener)
            else:
                factory = factories.get(frontend.name)
                if factory is None:
                    factory = factories[frontend.name] = self._factory(frontend)
            served = ServedSocket(frontend, sock, listener, backlog, factory,
                                  self._tls.get(sock), self._headers.get(sock))
            await self.serve(served)
            self.served.append(served)
        # before the checks start: from the start, every change counts
        self.check_counters = CheckCounters()
        self.check_counters.watch(self.registry, self.loop.time, self._backend_went_down)
        self._start_health()
        # stick tables shared with peers (haply.peers), once their stick
        # rules have said whether their entries name servers
        self.peer_services = services_for(self.config, self.tables, self.loop, None)
        for service in self.peer_services:
            await service.start()
        self.resolvers = await resolvers_service.start(self)
        self.started_at = self.loop.time()
        if self.logging is not None:
            self.health.subscribe(
                lambda event: self.logging.server_event(event, self.config.proxy(event.backend)))
        if self.health_probing:  # the others follow these checks: one mail per change
            self.email_alerts = EmailAlerts.for_config(self.config, self.loop)
        if self.email_alerts is not None:
            self.health.subscribe(self.email_alerts.server_event)
            self.health.subscribe_checks(self.email_alerts.check_line)
        if self._stats_sockets:
            self._servers.extend(await serve_stats_sockets(self, self._stats_sockets))

    async def serve(self, served: ServedSocket) -> None:
        """Accept on one bound socket of a frontend (at start, and when
        `enable frontend` resumes it)."""
        frontend, sock, listener, backlog = (served.frontend, served.sock, served.listener,
                                             served.backlog)
        factory, context, header = served.factory, served.tls, served.header
        if header is not None:  # the header first; then TLS, if any, on the same stream
            counted = frontend if listener is None else ListenerCounting(frontend, listener)
            server = HeaderListener(counted, factory, header[0], header[1], sock, context,
                                    self._handshake_timeout(frontend))
            sock.listen(backlog)  # again: a reload may take over a paused socket
            server.start()
        elif frontend.session_rate is not None:
            counted = frontend if listener is None else ListenerCounting(frontend, listener)
            server = RateLimitedListener(
                counted, sock, factory, frontend.session_rate, backlog, ssl=context,
                handshake_timeout=self._handshake_timeout(frontend), where=frontend.name)
            sock.listen(backlog)
            server.start()
        elif context is None:
            server = await self.loop.create_server(factory, sock=sock, backlog=backlog)
        else:
            server = await self.loop.create_server(factory, sock=sock, backlog=backlog, ssl=context,
                                                   ssl_handshake_timeout=self._handshake_timeout(frontend))
        served.server = server
        self._servers.append(server)

    def _backend_went_down(self, backend: str) -> None:
        if self.logging is not None and self.announces:
            # after the line of the server change that took it down, as HAProxy orders them
            self.loop.call_soon(self.logging.backend_down, self.config.proxy(backend))

    @staticmethod
    def _handshake_timeout(frontend: FrontendRuntime) -> float:
        # The handshake is part of the request in HAProxy's timers: timeout
        # http-request, else timeout client; asyncio's own default otherwise.
        timeouts = frontend.proxy.timeouts
        return timeouts.http_request or timeouts.client or 60.0

    def _start_logging(self) -> None:
        """Log targets are opened once; frontends without one keep logger None
        and run the plain session classes."""
        self.logging = None
        if not (self.config.global_.logs or any(p.logs for p in self.config.proxies)):
            return
        self.logging = Logging(self.config)
        for frontend in self.frontends.values():
            frontend.logger = self.logging.for_proxy(frontend.proxy, self)

    def _start_health(self) -> None:
        checker = self.health = HealthChecker(self.registry, self.config, self.loop)
        checker.probing = self.health_probing
        checker.set_shutdown_sessions(self._shutdown_sessions)
        checker.set_shutdown_backup_sessions(self._shutdown_backup_sessions)
        for backend in self.backends.values():
            if any(server.observe for server in backend.proxy.servers):
                backend.observer = checker.observe
        checker.start()

    def _shutdown_sessions(self, state) -> int:
        return self.backends[state.backend].kill_sessions(state)

    def _shutdown_backup_sessions(self, state) -> int:
        backend = self.backends[state.backend]
        return sum(backend.kill_sessions(s) for s in list(backend.servers) if s.backup)

    async def stop_checks(self) -> None:
        """A stopping process checks its servers no more, as HAProxy stops a
        proxy's checks when it stops: after a reload the new processes check,
        so a change is logged and mailed once, by them, not again by the old
        ones still finishing their connections."""
        if self.health is not None:
            await self.health.stop()

    async def alerts_sent(self) -> None:
        """Return once the e-mail alerts queued here are sent (or failed), for
        a stop: its caller bounds the wait by the grace period."""
        if self.email_alerts is not None:
            await self.email_alerts.flush()

    async def stop(self) -> None:
        """Stop accepting. Established connections are closed by the caller's exit."""
        if self.health is not None:
            await self.health.stop()
        if self.email_alerts is not None:
            await self.email_alerts.close()
        for resolver in self.resolvers:
            resolver.close()
        self.resolvers = []
        for service in self.peer_services:
            await service.stop()
        for server in self._servers:
            server.close()
        for server in self._servers:
            await server.wait_closed()
        self._servers.clear()
        self._sockets.clear()
        pausing.close_paused(self)

    def stop_accepting(self, close_idle: bool = True) -> None:
        """Close the listeners; busy connections close after their current
        response, idle keep-alive ones now (or, with close_idle False, after
        their next request or keep-alive timeout)."""
        self.stopping = True
        for server in self._servers:
            server.close()
        for session in list(self.sessions):
            session.shutdown(close_idle)

    def close_all(self) -> None:
        for session in list(self.sessions):
            session.close()

    def listening_fds(self) -> list[int]:
        """The bound listeners' descriptors (a forked helper process closes them)."""
        fds = {sock.fileno() for _, sock, _, _ in self._sockets}
        fds.update(served.sock.fileno() for served in self.served)  # resumed ones are dups
        return sorted(fd for fd in fds if fd >= 0)

    def active_connections(self) -> int:
        return self.global_gate.current

    async def drained(self, grace: float | None) -> bool:
        """Wait until no client connection is left (True) or grace runs out."""
        if self.global_gate.current == 0:
            return True
        waiter = self.loop.create_future()
        self.global_gate.on_empty = lambda: waiter.done() or waiter.set_result(None)
        try:
            async with asyncio.timeout(grace):
                await waiter
            return True
        except TimeoutError:
            return False
        finally:
            self.global_gate.on_empty = None
