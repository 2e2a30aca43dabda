"""haply.proxy.caching: cache-use as a rule step, cache-store as the filling
of a response, on requests and responses made by hand."""

from __future__ import annotations

import time
from types import SimpleNamespace

from haply.http import cache
from haply.http.framing import CHUNKED, LENGTH, NONE, Framing
from haply.proxy import caching

OWNER = ("listen", "app")
FRESH = [(b"Cache-Control", b"max-age=60")]


def request(method=b"GET", fields=()):
    return SimpleNamespace(method_bytes=method, version="1.1", url=b"/a",
                           headers=[(b"Host", b"h"), *fields])


def setting_up(limit=4096):
    store = cache.Store(cache.Settings("c", 1 << 20, limit))
    counters = caching.Counters()
    return store, counters, caching.CacheUse(store, counters, OWNER), [
        caching.CacheStore(None, store, (), OWNER)]


def fill(rules, asked, fields=FRESH, framing=Framing(LENGTH, 4), body=b"body"):
    filling = caching.start_filling(rules, asked, 200, b"OK", list(fields), framing)
    if filling is not None and filling.add(body):
        filling.commit(time.monotonic())
    return filling


def test_a_miss_keys_the_request_then_its_answer_is_a_hit():
    store, counters, use, rules = setting_up()
    first = request()
    assert use.apply(first) is None and first.cache.owner == OWNER
    assert fill(rules, first) is not None
    hit = use.apply(request())
    assert hit.action == "cache-hit" and hit.entry.body == b"body"
    assert (counters.lookups, counters.hits) == (2, 1)
    assert not hasattr(request(), "cache")


def test_what_cache_use_leaves_alone():
    store, counters, use, rules = setting_up()
    first = request()
    use.apply(first)
    fill(rules, first)
    head = request(b"HEAD")
    assert use.apply(head) is not None and not hasattr(head, "cache")  # answered, never stored
    skipped = request(fields=[(b"Cache-Control", b"no-cache")])
    assert use.apply(skipped) is None and skipped.cache.plan.replace
    assert counters.lookups == 2
    assert use.apply(request(b"POST")) is None  # and the object is gone
    assert use.apply(request()) is None and not store.entries


def test_cache_store_of_another_proxy_or_too_large():
    store, counters, use, rules = setting_up(limit=400)
    asked = request()
    use.apply(asked)
    other = [caching.CacheStore(None, store, (), ("backend", "be"))]
    assert caching.start_filling(other, asked, 200, b"OK", FRESH, Framing(LENGTH, 4)) is None
    assert caching.start_filling(rules, asked, 200, b"OK", FRESH, Framing(LENGTH, 300)) is None
    assert caching.start_filling(rules, asked, 200, b"OK", FRESH, Framing(NONE)) is None
    growing = caching.start_filling(rules, asked, 200, b"OK", FRESH, Framing(CHUNKED))
    assert growing.add(b"x" * 100) and not growing.add(b"x" * 200)
    assert caching.start_filling(rules, asked, 200, b"OK", [], Framing(LENGTH, 4)) is None
    assert caching.start_filling(rules, request(), 200, b"OK", FRESH, Framing(LENGTH, 4)) is None
