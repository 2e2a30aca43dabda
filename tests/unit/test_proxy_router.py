"""Router: what a frontend/backend pair's Route takes from each proxy."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from haply.config.model import Proxy
from haply.proxy.router import Router


def route(frontend: Proxy, backend: Proxy):
    runtime = SimpleNamespace(proxy=backend, servers=[], retries=backend.retries)
    return Router(frontend, {backend.name: runtime}).route(SimpleNamespace())


@pytest.mark.parametrize("front, back, buffered", [
    (False, False, False), (True, False, True), (False, True, True), (True, True, True),
])
def test_http_buffer_request_from_either_proxy(front, back, buffered):
    fe = Proxy("fe", "frontend", mode="http", default_backend="be", buffer_request=front)
    be = Proxy("be", "backend", mode="http", buffer_request=back)
    assert route(fe, be).buffer_request is buffered


@pytest.mark.parametrize("balance, preferred", [
    ("roundrobin", True), ("leastconn", True), ("static-rr", True), ("first", True),
    ("random", True), ("source", False), ("uri", False), ("url_param", False), ("hdr", False),
])
def test_prefer_last_server_is_the_backends_and_not_with_a_hash(balance, preferred):
    fe = Proxy("fe", "frontend", mode="http", default_backend="be", prefer_last_server=True)
    be = Proxy("be", "backend", mode="http", balance=balance, prefer_last_server=True)
    assert route(fe, be).prefer_last_server is preferred
    off = Proxy("be", "backend", mode="http", balance=balance)
    assert route(fe, off).prefer_last_server is False  # the frontend's has no say


def test_cache_rules_compile_with_their_proxy_and_the_rules_above_them():
    from haply.config.model import CacheRule, CacheSection, HeaderRule
    from haply.http import cache
    from haply.proxy import caching

    store = cache.Store(cache.Settings.of(CacheSection("c", 1 << 20, 4096)))
    fe = Proxy("fe", "frontend", mode="http", default_backend="be",
               http_request_rules=(CacheRule("cache-use", "c"),),
               http_response_rules=(HeaderRule("add-header", "X-Fe", "fe"), CacheRule("cache-store", "c")))
    be = Proxy("be", "backend", mode="http",
               http_request_rules=(CacheRule("cache-use", "c"),),
               http_response_rules=(CacheRule("cache-store", "c"), HeaderRule("add-header", "X-Be", "be")))
    runtime = SimpleNamespace(proxy=be, servers=[], cache=caching.Counters(), retries=be.retries)
    frontend_counters = caching.Counters()
    router = Router(fe, {"be": runtime}, caches={"c": store}, cache_counters=frontend_counters)
    (_, use), = router.answers
    assert (use.store, use.counters, use.owner) == (store, frontend_counters, ("frontend", "fe"))
    assert router.cache_writer is not None and router.cache_compression is None
    built = router.route(SimpleNamespace())
    (_, backend_use), = built.answers
    assert (backend_use.counters, backend_use.owner) == (runtime.cache, ("backend", "be"))
    backend_store, frontend_store = built.cache_store
    assert backend_store.owner == ("backend", "be") and backend_store.edits == ()
    assert frontend_store.owner == ("frontend", "fe")
    # the backend's rules come first: the frontend's store keeps what both added
    assert [op.name for op in frontend_store.edits] == [b"X-Be", b"X-Fe"]
    with pytest.raises(ValueError, match="no cache section named 'c'"):
        Router(fe, {"be": runtime})
