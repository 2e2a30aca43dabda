"""A frontend's HTTP rules, compiled once: which backend, which heads to write.

`Router.route` is called once per request head and returns either a local answer
(no backend matched) or the backend's `Route`: the head writers, connection modes
and errorfiles of that frontend/backend pair, all compiled when the router was
built. Nothing on the per-request path parses a rule or folds a header name that
could have been folded at start.
"""

from __future__ import annotations

from collections import deque

from haply.balance import hashes_requests
from haply.config.model import CacheRule, CaptureRule, CounterRule, LogLevelRule, Proxy, VariableRule
from haply.http import (connection_modes, for_route, route_errorfiles,
                        server_keep_alive)
from haply.http.compression import Policy, policy_for
from haply.http.headers import (RequestHeadWriter, ResponseHeadWriter, compile_header_rules, compile_value,
                                response_rules_of)
from haply.admin.errors import capture
from haply.http.responses import status_reason
from haply.http.rewrite import LINE_ACTIONS, LineRewrite, compile_regex
from haply.proxy.conditions import CounterStep, compile_condition, compile_response_condition
from haply.logs import unique_id
from haply.logs.captures import Captures
from haply.proxy import header_names
from haply.proxy.caching import CacheStore, CacheUse, Counters
from haply.proxy.persistence import CookieRouting
from haply.proxy.redirect import compile_redirects
from haply.proxy.route import Route
from haply.proxy.samples import CaptureStep, LogLevelStep, VariableStep

# How many rejected requests `show errors` keeps.
ERROR_HISTORY = 16
# haply's default `retry-on`: what a retry can save without risk (README, "What
# haply retries and why"). Replays are further limited to idempotent requests.
DEFAULT_RETRY_ON = frozenset({"conn-failure", "empty-response", "junk-response"})


class Router:
    # Local answers (stats page, prometheus-exporter) set by the engine, or None.
    services = None

    def __init__(self, proxy: Proxy, backends: dict, errors: deque | None = None,
                 caches: dict | None = None, cache_counters: Counters | None = None):
        self.proxy = proxy
        self.backends = backends
        # Each cache section's store (haply.http.cache.Store) by name, and the
        # frontend's cache_lookups/cache_hits.
        self.caches = caches if caches is not None else {}
        self.errors = errors if errors is not None else deque(maxlen=ERROR_HISTORY)
        self.errorfiles = dict(proxy.errorfiles)  # before a backend is chosen
        # (test, backend name, or for a name made per request (`%[...]`) a
        # function of the request that makes it)
        self.switches = [(compile_condition(s.condition),
                          compile_value(s.backend, True) if "%[" in s.backend else s.backend)
                         for s in proxy.backend_switches]
        self._backends = backends
        self.default_backend = proxy.default_backend
        # `redirect` rules, answered before any backend is chosen (None: no rules).
        self.redirects = compile_redirects(proxy.redirects)
        # `http-request deny | return | redirect` rules, in file order, evaluated before
        # the `redirect` lines as in HAProxy.
        self.answers = compile_answers(proxy, self.caches, cache_counters)
        # What a hit of the frontend's own cache-use rules is written with
        # (its http-response rules run on it, as HAProxy runs them); None without any.
        self.cache_writer = None
        self.cache_compression = None  # and compressed with the frontend's `compression`
        if any(isinstance(rule, CacheRule) for rule in proxy.http_request_rules):
            self.cache_writer = for_route(proxy, proxy, compile_condition, compile_response_condition)[1]
            self.cache_compression = policy_for(proxy.compression, None)
        # `monitor-uri`: answered by haply itself, for an external load balancer
        # or a health probe of the proxy (HAProxy's exact answer).
        self.monitor_uri = proxy.monitor_uri.encode() if proxy.monitor_uri else None
        # `monitor fail` conditions: it answers 503 while one holds (None: none).
        self.monitor_fail = tuple(compile_condition(c) for c in proxy.monitor_fail) or None
        # `capture` lines: what the log shows of requests and responses (None: none).
        self.captures = Captures.compile(proxy.captures)
        # `unique-id-format`: (session, request) -> the request's identifier, or None.
        self.unique_id = unique_id.compile_generator(proxy.unique_id_format, proxy.name)
        # A session's (http-request, http-keep-alive, client) timeouts, with
        # their fallbacks: timeout http-request defaults to timeout client, and
        # http-keep-alive to http-request (HAProxy manual, 4.2).
        timeouts = proxy.timeouts
        http_request = timeouts.http_request or timeouts.client
        self.session_timeouts = (http_request, timeouts.http_keep_alive or http_request,
                                 timeouts.client)
        self._routes: dict[str, Route] = {}
        for name in {s.backend for s in proxy.backend_switches if "%[" not in s.backend} | {
                proxy.default_backend}:
            if name is not None and name in backends:
                self._routes[name] = self._compile(backends[name])

    def _compile(self, backend) -> Route:
        frontend, bproxy = self.proxy, backend.proxy
        request_writer, response_writer = for_route(frontend, bproxy, compile_condition,
                                                    compile_response_condition)
        client_mode, server_mode = connection_modes(frontend.http_connection_mode,
                                                    bproxy.http_connection_mode)
        retry_on = retry_policy(bproxy.retry_on)
        route = Route(backend, request_writer, response_writer, client_mode,
                      server_keep_alive(server_mode),
                      route_errorfiles(frontend.errorfiles,
                                       () if bproxy is frontend else bproxy.errorfiles),
                      retry_on, frozenset(int(t) for t in retry_on if t.isdigit()))
        if bproxy.name != frontend.name:
            route.redirects = compile_redirects(bproxy.redirects)
            route.answers = compile_answers(bproxy, self.caches, getattr(backend, "cache", None))
        # a connection that began with one client's PROXY header serves that
        # client alone (HAProxy makes such connections private too)
        route.reuse = ("never" if any(server.send_proxy for server in bproxy.servers)
                       else bproxy.http_reuse)
        if route.reuse is None and (backend.retries == 0 or "empty-response" not in retry_on):
            # haply's default sends on an idle connection only a request it can
            # replay should the server have closed it meanwhile; without such a
            # replay, HAProxy's default (`safe`) keeps a client's first request
            # off them, and its 502.
            route.reuse = "safe"
        route.prefer_last_server = bproxy.prefer_last_server and not hashes_requests(bproxy.balance)
        route.buffer_request = frontend.buffer_request or bproxy.buffer_request
        route.compression = policy_for(frontend.compression, bproxy.compression)
        route.status_rules = [
            (compile_response_condition(rule.condition), rule.status,
             (rule.reason or status_reason(rule.status)).encode("latin-1"))
            if rule.action == "set-status" else
            (compile_response_condition(rule.condition), None, _response_step(rule))
            for rule in response_rules_of(frontend, bproxy)
            if rule.action == "set-status" or isinstance(rule, RESPONSE_STEPS)] or None
        route.cache_store = compile_cache_store(frontend, bproxy, self.caches)
        if bproxy.cookie is not None and bproxy.mode == "http":
            route.cookie = CookieRouting(bproxy.cookie, backend.servers)
        return route

    def route(self, request) -> Route | None:
        """The route for a request, or None when no backend applies (503)."""
        routes = self._routes
        for test, name in self.switches:
            if test is None or test(request):
                if name.__class__ is str:
                    return routes.get(name)
                route = self._named_route(name(request).decode("latin-1"))
                if route is not None:
                    return route
                break  # a name that is no backend: the default one, as in HAProxy
        if self.default_backend is None:
            return None
        return routes.get(self.default_backend)

    def _named_route(self, name: str) -> Route | None:
        """The route to the backend a `use_backend %[...]` named (made once)."""
        route = self._routes.get(name)
        if route is None:
            backend = self._backends.get(name)
            if backend is None or backend.proxy.mode != self.proxy.mode:
                return None
            route = self._routes[name] = self._compile(backend)
        return route

    def record_error(self, client_ip: str, reason: str, data: bytes = b"",
                     session=None) -> None:
        """Keep a rejected request for `show errors` (haply.admin.errors)."""
        self.errors.append(capture(client_ip, reason, data, session))


ANSWERING_ACTIONS = ("deny", "return", "redirect", "auth")
# The http-response rules that run in place among the set-status ones.
RESPONSE_STEPS = (VariableRule, CaptureRule, LogLevelRule)


def _response_step(rule):
    if isinstance(rule, VariableRule):
        return VariableStep(rule, response=True)
    return CaptureStep(rule) if isinstance(rule, CaptureRule) else LogLevelStep(rule)


def compile_answers(proxy: Proxy, caches: dict | None = None, cache_counters: Counters | None = None):
    """A proxy's http-request rules that answer the request themselves (`deny`,
    `return`, `redirect`, `auth`, and `cache-use` on a hit) and those that
    rewrite its line (`set-path` ...), compiled in file order (None: it has
    none): see `first_answer`."""
    compiled = []
    for rule in proxy.http_request_rules:
        if isinstance(rule, CacheRule):
            compiled.append((compile_condition(rule.condition),
                             CacheUse(_store(caches, rule), cache_counters or Counters(),
                                      (proxy.kind, proxy.name))))
        elif rule.action in ANSWERING_ACTIONS:
            compiled.append((compile_condition(rule.condition), rule))
        elif isinstance(rule, CounterRule):
            compiled.append((compile_condition(rule.condition), CounterStep(rule)))
        elif isinstance(rule, VariableRule):
            compiled.append((compile_condition(rule.condition), VariableStep(rule)))
        elif isinstance(rule, CaptureRule):
            compiled.append((compile_condition(rule.condition), CaptureStep(rule)))
        elif isinstance(rule, LogLevelRule):
            compiled.append((compile_condition(rule.condition), LogLevelStep(rule)))
        elif rule.action in LINE_ACTIONS:
            regex = compile_regex(rule.pattern) if rule.pattern is not None else None
            compiled.append((compile_condition(rule.condition),
                             LineRewrite(rule.action, compile_value(rule.value, True), regex)))
    compiled += header_names.steps(proxy.restrict_header_names)  # after the rules, as in HAProxy
    return compiled or None


def compile_cache_store(frontend: Proxy, backend: Proxy, caches: dict) -> list | None:
    """The cache-store rules among a pair's http-response rules (the
    backend's, then the frontend's), each with the header rules above it,
    whose fields it stores, and its proxy (None: none)."""
    rules = response_rules_of(frontend, backend)
    own = len(rules) - len(frontend.http_response_rules)  # the backend's come first
    compiled = []
    for index, rule in enumerate(rules):
        if isinstance(rule, CacheRule) and rule.action == "cache-store":
            owner = backend if index < own else frontend
            edits = compile_header_rules(rules[:index], compile_response_condition)
            compiled.append(CacheStore(compile_response_condition(rule.condition), _store(caches, rule),
                                       edits, (owner.kind, owner.name)))
    return compiled or None


def _store(caches: dict | None, rule: CacheRule):
    store = (caches or {}).get(rule.cache)
    if store is None:
        raise ValueError(f"{rule.location}: no cache section named '{rule.cache}'")
    return store


def retry_policy(configured: frozenset[str] | None) -> frozenset[str]:
    """None (no `retry-on` line) means haply's default; a line replaces it, as in
    HAProxy (the parser has already expanded all-retryable-errors)."""
    return DEFAULT_RETRY_ON if configured is None else configured
