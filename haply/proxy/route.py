"""A frontend/backend pair's compiled view: what each request routed to it needs.

Built once by `haply.proxy.router.Router` and read on every request by the
client session (haply.proxy.http); compiled with the request path (setup.py),
where its fields are read as a C struct's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from haply.http.compression import Policy
from haply.http.headers import RequestHeadWriter, ResponseHeadWriter
from haply.proxy.persistence import CookieRouting


@dataclass
class Route:
    """Everything about one frontend/backend pair that requests need."""

    backend: Any  # a BackendRuntime (a unit test's stand-in too)
    request_writer: RequestHeadWriter
    response_writer: ResponseHeadWriter
    client_mode: str
    server_keep_alive: bool
    errorfiles: dict[int, bytes]
    retry_on: frozenset[str]
    retry_statuses: frozenset[int]  # the status codes among retry_on
    # The backend's own `redirect` rules and the http-request rules that answer
    # (`deny`, `return`, `redirect`) (None: none, or the backend is the frontend).
    redirects: list | None = None
    answers: list | None = None
    # The backend's cookie persistence (haply.proxy.persistence), None without one.
    cookie: CookieRouting | None = None
    # `http-reuse never|safe|aggressive|always`; None: haply's default (idle
    # connections for requests haply can replay, see HttpSession._start).
    reuse: str | None = None
    # `option prefer-last-server` where it applies: not with a hash balance,
    # which already sends a request where its key says (manual).
    prefer_last_server: bool = False
    # `option http-buffer-request` in the frontend or the backend.
    buffer_request: bool = False
    # `compression` of the pair (haply.http.compression), None when it has no algorithm.
    compression: Policy | None = None
    # `http-response set-status` rules: (predicate or None, status, reason), in
    # order (the last that applies wins), and among them the response's
    # set-var rules: (predicate or None, None, VariableStep); None without any.
    status_rules: list | None = None
    # `http-response cache-store` rules of the pair (haply.proxy.caching.CacheStore),
    # backend's then frontend's; None without any.
    cache_store: list | None = None
