"""A frontend's HTTP rules, compiled once: which backend, which head to send.

`Router.route` is called once per request with the parsed head and returns either a
local answer (no backend, deny) or the backend and the exact request head bytes to
send to the server; `Router.response_head` builds the head the client receives. All
rule parsing, ACL compiling and header-name folding happens in `__init__`.
"""

from __future__ import annotations

import ipaddress
from collections import deque
from dataclasses import dataclass

from haply.config.model import Proxy
from haply.proxy.conditions import compile_condition

# RFC 9110 §7.6.1: hop-by-hop fields end at the proxy, plus the legacy ones that
# clients and servers still send.
HOP_BY_HOP = frozenset({b"connection", b"keep-alive", b"proxy-connection",
                        b"te", b"upgrade"})
# How many rejected requests `show errors` keeps.
ERROR_HISTORY = 16
# haply's default `retry-on`: what a retry can save without risk (see README).
DEFAULT_RETRY_ON = frozenset({"conn-failure", "empty-response", "junk-response"})

_STATUS_REASONS = {
    200: b"OK", 101: b"Switching Protocols", 100: b"Continue",
}


@dataclass(slots=True)
class Route:
    status: int = 0
    body: bytes | None = None
    backend: object = None
    head: bytes = b""


class _HeaderEdit:
    __slots__ = ("action", "name", "lname", "value", "test")

    def __init__(self, rule):
        self.action = rule.action
        self.name = rule.name.encode("latin-1")
        self.lname = self.name.lower()
        self.value = (rule.value or "").encode("latin-1")
        self.test = compile_condition(rule.condition)


def _apply_edits(edits, headers: list, request) -> list:
    for edit in edits:
        if edit.test is not None and not edit.test(request):
            continue
        if edit.action in ("set-header", "del-header"):
            headers = [h for h in headers if h[0].lower() != edit.lname]
        if edit.action in ("set-header", "add-header"):
            headers.append((edit.name, edit.value))
    return headers


class Router:
    def __init__(self, proxy: Proxy, backends: dict, errors: deque | None = None):
        self.proxy = proxy
        self.backends = backends
        self.errors = errors if errors is not None else deque(maxlen=ERROR_HISTORY)
        self.client_keep_alive = proxy.http_connection_mode != "close"
        self.errorfiles = dict(proxy.errorfiles)
        self.switches = [(compile_condition(s.condition), s.backend)
                         for s in proxy.backend_switches]
        self.default_backend = proxy.default_backend
        self.request_edits = [_HeaderEdit(r) for r in proxy.http_request_rules
                              if r.action in ("set-header", "add-header", "del-header")]
        self.response_edits = [_HeaderEdit(r) for r in proxy.http_response_rules
                               if r.action in ("set-header", "add-header", "del-header")]
        self._backend_heads: dict[str, tuple] = {}

    # --------------------------------------------------------------- requests

    def _backend_for(self, request):
        for test, name in self.switches:
            if test is None or test(request):
                return self.backends.get(name)
        if self.default_backend is None:
            return None
        return self.backends.get(self.default_backend)

    def route(self, request) -> Route:
        backend = self._backend_for(request)
        if backend is None:
            return Route(status=503)
        return Route(backend=backend, head=self._request_head(request, backend))

    def _backend_settings(self, backend) -> tuple:
        settings = self._backend_heads.get(backend.name)
        if settings is None:
            bproxy = backend.proxy
            forward_for = self.proxy.forward_for or bproxy.forward_for
            if forward_for is not None:
                network = (ipaddress.ip_network(forward_for.except_network, strict=False)
                           if forward_for.except_network else None)
                forward_for = (forward_for.header.encode("latin-1"),
                               forward_for.header.lower().encode("latin-1"),
                               network, forward_for.if_none)
            edits = self.request_edits
            if bproxy is not self.proxy:
                edits = edits + [_HeaderEdit(r) for r in bproxy.http_request_rules
                                 if r.action in ("set-header", "add-header", "del-header")]
            server_close = (bproxy.http_connection_mode != "keep-alive"
                            or self.proxy.http_connection_mode != "keep-alive")
            settings = (forward_for, edits, server_close)
            self._backend_heads[backend.name] = settings
        return settings

    def _request_head(self, request, backend) -> bytes:
        forward_for, edits, server_close = self._backend_settings(backend)
        connection_tokens = b""
        headers = []
        upgrade = request.upgrade
        for name, value in request.headers:
            lname = name.lower()
            if lname in HOP_BY_HOP:
                if lname == b"connection":
                    connection_tokens += b"," + value.lower()
                if not (upgrade and lname == b"upgrade"):
                    continue
            headers.append((name, value))
        if connection_tokens:
            # Fields the client listed in Connection are hop-by-hop too (§7.6.1).
            named = {t.strip() for t in connection_tokens.split(b",")} - {b"", b"close", b"keep-alive", b"upgrade"}
            if named:
                headers = [h for h in headers if h[0].lower() not in named]
        if edits:
            headers = _apply_edits(edits, headers, request)
        if forward_for is not None:
            header, lheader, network, if_none = forward_for
            if not (network is not None and _in_network(request.client_ip, network)):
                if not (if_none and any(h[0].lower() == lheader for h in headers)):
                    headers.append((header, request.client_ip.encode("latin-1")))
        if upgrade:
            headers.append((b"Connection", b"upgrade"))
        elif server_close:
            headers.append((b"Connection", b"close"))
        elif request.version == "1.0":
            headers.append((b"Connection", b"keep-alive"))
        parts = [request.method.encode("ascii"), b" ", request.url, b" HTTP/",
                 request.version.encode("ascii"), b"\r\n"]
        for name, value in headers:
            parts += (name, b": ", value, b"\r\n")
        parts.append(b"\r\n")
        return b"".join(parts)

    # -------------------------------------------------------------- responses

    def response_head(self, status: int, reason: bytes, headers: list,
                      keep_alive: bool | None, request) -> bytes:
        out = []
        upgrade = status == 101
        for name, value in headers:
            lname = name.lower()
            if lname in HOP_BY_HOP and not (upgrade and lname in (b"upgrade", b"connection")):
                continue
            out.append((name, value))
        edits = self.response_edits
        backend = request.backend
        if backend is not None and backend.proxy is not self.proxy:
            edits = edits + [_HeaderEdit(r) for r in backend.proxy.http_response_rules
                             if r.action in ("set-header", "add-header", "del-header")]
        if edits and keep_alive is not None:
            out = _apply_edits(edits, out, request)
        if keep_alive is False:
            out.append((b"Connection", b"close"))
        elif keep_alive and request.version == "1.0" and not upgrade:
            out.append((b"Connection", b"keep-alive"))
        parts = [b"HTTP/1.1 ", str(status).encode(), b" ",
                 reason or _STATUS_REASONS.get(status, b""), b"\r\n"]
        for name, value in out:
            parts += (name, b": ", value, b"\r\n")
        parts.append(b"\r\n")
        return b"".join(parts)

    # ------------------------------------------------------------------ misc

    def retry_on(self, backend) -> frozenset[str]:
        configured = backend.proxy.retry_on
        if configured == frozenset({"conn-failure"}):
            return DEFAULT_RETRY_ON
        if "all-retryable-errors" in configured:
            return configured | DEFAULT_RETRY_ON | {"response-timeout"}
        return configured

    def record_error(self, client_ip: str, reason: str) -> None:
        self.errors.append((client_ip, reason))


def _in_network(address: str, network) -> bool:
    try:
        return ipaddress.ip_address(address) in network
    except ValueError:
        return False
