"""The cache's glue to the request path: `http-request cache-use` as a step
among a proxy's answering rules, `http-response cache-store` as what the
session does with a response head, its body and its end. The decisions are
haply.http.cache's; this module keeps what one request and one response need.

Built only for proxies that name a cache: without one, no request pays for it.
"""

from __future__ import annotations

import time

from haply.http import cache
from haply.http.framing import CHUNKED, LENGTH, UNTIL_CLOSE
from haply.http.headers import apply_in_order


class Counters:
    """cache_lookups and cache_hits of a frontend (rules of a frontend or a
    listen) or of a backend (its own rules), as `show stat` shows them."""

    __slots__ = ("lookups", "hits")

    def __init__(self):
        self.lookups = 0
        self.hits = 0


class CacheServer:
    """What the log names as the server of an answer from the cache."""

    name = "<CACHE>"
    host = port = ""
    current_sessions = 0


CACHE_SERVER = CacheServer()


class Pending:
    """A request's key, kept for cache-store (set by cache-use), and the
    proxy whose rule keyed it: only that proxy's cache-store rules store the
    answer, as with HAProxy 2.6 (each proxy's cache filter has its own key)."""

    __slots__ = ("plan", "owner")

    def __init__(self, plan: cache.RequestPlan, owner: tuple):
        self.plan = plan
        self.owner = owner


class Hit:
    """The answer of a cache-use rule that found the object (http.py `_answer`)."""

    __slots__ = ("entry", "counters")
    action = "cache-hit"

    def __init__(self, entry: cache.Entry, counters: Counters):
        self.entry = entry
        self.counters = counters


class CacheUse:
    """`http-request cache-use NAME`, applied in place among the answering
    rules (haply.proxy.conditions.first_answer): it answers only on a hit."""

    __slots__ = ("store", "counters", "owner")
    action = "rewrite"

    def __init__(self, store: cache.Store, counters: Counters, owner: tuple):
        self.store = store
        self.counters = counters
        self.owner = owner  # (kind, name) of the rule's proxy

    def apply(self, request) -> Hit | None:
        plan = cache.plan_request(request.method_bytes, request.version, request.url, request.headers)
        if plan.key is None:
            return None
        if plan.invalidate:
            self.store.invalidate(plan.key)
            return None
        if plan.lookup:
            self.counters.lookups += 1
            entry = self.store.lookup(plan, time.monotonic())
            if entry is not None:
                self.counters.hits += 1
                return Hit(entry, self.counters)
        if plan.store:
            request.cache = Pending(plan, self.owner)
        return None


class CacheStore:
    """`http-response cache-store NAME [if|unless COND]` of a route: the rule's
    test, its store, and the header rules above it (whose result is stored)."""

    __slots__ = ("test", "store", "edits", "owner")

    def __init__(self, test, store: cache.Store, edits, owner: tuple):
        self.test = test
        self.store = store
        self.edits = edits  # haply.http.headers.HeaderOp, applied in order
        self.owner = owner  # (kind, name) of the rule's proxy


class Filling:
    """A response on its way into the cache: its head was judged storable,
    its body is gathered while it stays within max-object-size."""

    __slots__ = ("store", "plan", "storable", "reason", "fields", "framing", "parts", "size",
                 "removed", "limit", "trailers")

    def __init__(self, store: cache.Store, plan: cache.RequestPlan, storable: cache.Storable,
                 reason: bytes, fields: list, framing_kind: str, removed: int):
        self.store = store
        self.plan = plan
        self.storable = storable
        self.reason = reason
        self.fields = fields
        self.framing = framing_kind
        self.removed = removed
        self.parts: list[bytes] = []
        self.size = cache.stored_size(200, reason, fields, removed, 0) + cache.BLOCK_INFO
        self.limit = store.settings.max_object_size
        self.trailers = None  # a chunked body's, set once it is complete

    def add(self, data: bytes) -> bool:
        """False once the object no longer fits (then drop this filling)."""
        self.size += len(data)
        self.parts.append(data)
        return self.size <= self.limit

    def commit(self, now: float) -> None:
        body = b"".join(self.parts)
        size = cache.stored_size(200, self.reason, self.fields, self.removed, len(body))
        self.store.store(self.plan, self.storable, self.reason, self.fields, self.framing, body,
                         size, now, self.trailers)


def start_filling(rules: list[CacheStore], request, status: int, reason: bytes, fields: list,
                  framing) -> Filling | None:
    """The filling of a response to a request that cache-use keyed, when a
    cache-store rule of the proxy that keyed it applies and the cache would
    keep it (None otherwise)."""
    pending = getattr(request, "cache", None)
    if pending is None or framing.kind not in (LENGTH, CHUNKED, UNTIL_CLOSE):
        return None
    for rule in rules:
        if rule.owner != pending.owner or rule.test is not None and not rule.test(request):
            continue
        store = rule.store
        storable = cache.judge_response(status, fields, store.settings, time.time())
        if storable is None:
            return None
        kept, removed = cache.stored_fields(fields)
        if rule.edits:
            kept = apply_in_order(rule.edits, kept, request)
        plan = pending.plan
        if not store.admits(plan, storable, time.monotonic()):
            return None
        filling = Filling(store, plan, storable, reason, kept, framing.kind, removed)
        if framing.kind == LENGTH and filling.size + framing.length > filling.limit:
            return None  # known too large from its head
        return filling
    return None


__all__ = ["CACHE_SERVER", "CacheStore", "CacheUse", "Counters", "Filling", "Hit", "Pending",
           "start_filling"]
