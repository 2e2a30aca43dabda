"""Answers haply gives itself on an HTTP frontend: the stats page (`stats uri`)
and `http-request use-service prometheus-exporter`.

Decided once per frontend at start: `compile_services` returns None for a
frontend with neither, and the request path then pays one `is None` test.
A request that needs its body (an admin POST) is answered when the body is
complete (`Deferred`). The proxy's `compression` applies to these answers,
as HAProxy compresses what its services answer.
"""

from __future__ import annotations

from typing import Callable

from haply.http import compression
from haply.proxy.conditions import compile_condition


class Deferred:
    """Marks a request whose local answer waits for the end of its body."""

    __slots__ = ("answer",)
    errorfiles = None  # an error answered before the body ends uses the defaults

    def __init__(self, answer: Callable[[object, bytes], bytes]):
        self.answer = answer


class Services:
    def __init__(self, engine, proxy):
        self.entries: list[tuple[Callable | None, Callable]] = []
        for rule in proxy.http_request_rules:
            if rule.action == "use-service" and rule.name == "prometheus-exporter":
                from haply.admin.prometheus import Exporter
                exporter = Exporter(engine)
                self.entries.append((compile_condition(rule.condition), exporter.answer))
        if proxy.stats is not None and (proxy.stats.enabled or proxy.stats.uri):
            from haply.admin.stats_page import StatsPage
            page = StatsPage(proxy, engine, compile_condition)
            self.entries.append((page.matches, page.answer))
        policy = compression.policy_for(proxy.compression, proxy.compression)
        if policy is not None:
            # counted in the proxy's rows: its frontend, and its backend for a listen
            counters = [engine.frontends[proxy.name].comp]
            if proxy.is_backend and proxy.name in engine.backends:
                counters.append(engine.backends[proxy.name].comp)
            self.entries = [(test, _compressing(answer, policy, counters))
                            for test, answer in self.entries]

    def serve(self, session, request) -> bool:
        """Answer request locally if a service takes it (True)."""
        for test, answer in self.entries:
            if test is None or test(request):
                if request.complete:
                    _send(session, answer(request, b"".join(request.body)))
                else:
                    request.route = Deferred(answer)
                return True
        return False


def _compressing(answer: Callable, policy: compression.Policy, counters: list) -> Callable:
    """answer, its response compressed when the request and the response allow."""

    def compressed(request, body: bytes = b"") -> bytes:
        message = answer(request, body)
        algorithm, _ = compression.select(policy, request.headers)
        if algorithm is None or request.method_bytes == b"HEAD":
            return message
        done = compression.compress_whole(policy, algorithm, request.version, message)
        if done is None:
            return message
        message, taken, made = done
        for count in counters:
            count.add(algorithm.wbits is not None, taken, made, True)
        return message

    return compressed


def finish_deferred(session, request) -> None:
    """The body of a deferred request is complete: answer it now."""
    _send(session, request.route.answer(request, b"".join(request.body)))


def _send(session, raw: bytes) -> None:
    status = int(raw[9:12])
    session._respond_local(status, raw)


def compile_services(engine, proxy) -> Services | None:
    has_service = any(rule.action == "use-service" for rule in proxy.http_request_rules)
    if proxy.stats is None and not has_service:
        return None
    services = Services(engine, proxy)
    return services if services.entries else None
