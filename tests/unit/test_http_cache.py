"""haply.http.cache: the store and its decisions, with a fake clock. The
expected values are what HAProxy 2.6 was seen doing (tests/interop/test_cache_oracle.py
compares the two on the wire)."""

from __future__ import annotations

import hashlib

from hypothesis import given, strategies as st

from haply.http import cache
from haply.http.framing import CHUNKED, LENGTH, UNTIL_CLOSE

SETTINGS = cache.Settings("c", total_size=1 << 20, max_object_size=4096, max_age=60)
VARY = SETTINGS._replace(process_vary=True, max_secondary_entries=2)
HOST = [(b"Host", b"h")]
WALL = 1_800_000_000.0  # a time of day, for Expires


def plan(method=b"GET", target=b"/a", fields=(), version="1.1"):
    return cache.plan_request(method, version, target, HOST + list(fields))


def judge(fields, status=200, settings=SETTINGS):
    return cache.judge_response(status, list(fields), settings, WALL)


def keep(store, request_plan, fields=((b"Cache-Control", b"max-age=60"),), body=b"body", now=0.0):
    storable = judge(fields, settings=store.settings)
    kept, removed = cache.stored_fields(list(fields))
    size = cache.stored_size(200, b"OK", kept, removed, len(body))
    return store.store(request_plan, storable, b"OK", kept, LENGTH, body, size, now)


# ------------------------------------------------------------------ requests


def test_the_key_is_host_and_target_as_show_cache_prints_it():
    key = plan().key
    assert key == hashlib.sha1(b"https://h/a").digest()
    # (HAProxy 2.6 printed hash:537853692 for Host x and /b?h=Cache-Control:max-age=60)
    entry_key = cache.primary_key(b"/b?h=Cache-Control:max-age=60", b"x")
    assert int.from_bytes(entry_key[:4], "little") == 537853692
    assert cache.primary_key(b"http://h/a", b"h") != key  # an absolute target as it is
    assert cache.plan_request(b"GET", "1.1", b"/a", []).key is None  # no Host: no key


def test_which_requests_are_looked_up_and_stored():
    assert plan()[1:4] == (True, True, False)
    assert plan(b"HEAD")[1:4] == (True, False, False)  # a HEAD is answered, not stored
    for fields in ([(b"Cache-Control", b"no-cache")], [(b"Pragma", b"no-cache")],
                   [(b"cache-control", b"max-age=0")]):
        assert plan(fields=fields)[1:4] == (False, True, True), fields
    assert plan(fields=[(b"Cache-Control", b"no-store")]).lookup
    assert plan(fields=[(b"Authorization", b"Basic eA==")]) == cache.NOTHING
    assert plan(version="1.0") == cache.NOTHING
    for method in (b"POST", b"PUT", b"DELETE", b"PATCH"):
        assert plan(method).invalidate and not plan(method).lookup
    assert plan(b"OPTIONS") == cache.NOTHING


def test_accepted_codings():
    assert cache.accepted_codings(None) == cache.ALL_CODINGS
    assert cache.accepted_codings([b"gzip"]) == 0x101
    assert cache.accepted_codings([b"deflate, gzip;q=0.1", b"BR"]) == 0x107
    assert cache.accepted_codings([b"gzip;q=0"]) == cache.IDENTITY
    assert cache.accepted_codings([b"identity;q=0, gzip"]) == 0x1
    assert cache.accepted_codings([b"*"]) == cache.ALL_CODINGS
    assert cache.accepted_codings([b"gzip, *;q=0"]) == 0x101  # HAProxy keeps identity
    assert cache.accepted_codings([b"foo"]) == cache.IDENTITY


@given(st.lists(st.binary(max_size=40), max_size=3))
def test_accept_encoding_of_any_bytes(values):
    assert cache.accepted_codings(values) & ~cache.ALL_CODINGS == 0


@given(st.binary(max_size=60), st.lists(st.tuples(st.binary(min_size=1, max_size=16),
                                                  st.binary(max_size=40)), max_size=6))
def test_any_request_fields_give_a_plan(target, fields):
    result = cache.plan_request(b"GET", "1.1", b"/" + target, fields)
    assert result.key is None or len(result.key) == 20


@given(st.integers(100, 599), st.lists(st.tuples(st.sampled_from(
    [b"Cache-Control", b"Expires", b"Age", b"Vary", b"Content-Encoding", b"ETag", b"Pragma"]),
    st.binary(max_size=40)), max_size=6))
def test_any_response_fields_are_judged(status, fields):
    storable = cache.judge_response(status, fields, VARY, WALL)
    assert storable is None or 0 < storable.lifetime <= VARY.max_age


# ----------------------------------------------------------------- responses


def test_which_responses_are_stored_and_for_how_long():
    assert judge([(b"Cache-Control", b"max-age=600")]).lifetime == 60  # at most the cache's
    assert judge([(b"Cache-Control", b"s-maxage=2, max-age=50")]).lifetime == 2
    assert judge([(b"Cache-Control", b"max-age=50,s-maxage=2")]).lifetime == 2
    assert judge([(b"Cache-Control", b"max-age=2"), (b"Expires", b"Mon, 01 Dec 2036 00:00:00 GMT")]).lifetime == 2
    assert judge([(b"Expires", b"Fri, 15 Jan 2027 08:00:30 GMT")]).lifetime == 30
    assert judge([(b"ETag", b'"v1"')]).lifetime == 60  # a validator alone: the cache's max-age
    assert judge([(b"Last-Modified", b"Mon, 01 Dec 2025 00:00:00 GMT")]).lifetime == 60
    assert judge([(b"Cache-Control", b"max-age=60"), (b"Set-Cookie", b"a=b")]) is not None
    for fields in ([], [(b"Cache-Control", b"public")],
                   [(b"Cache-Control", b"max-age=0")],
                   [(b"Cache-Control", b"no-cache"), (b"ETag", b'"v"')],
                   [(b"Cache-Control", b"no-store,max-age=60")],
                   [(b"Cache-Control", b"private, max-age=60")],
                   [(b"Cache-Control", b'max-age=60'), (b"Cache-Control", b'no-cache="set-cookie"')],
                   [(b"Pragma", b"no-cache"), (b"Cache-Control", b"max-age=60")],
                   [(b"Expires", b"Mon, 01 Dec 2020 00:00:00 GMT")],
                   [(b"Cache-Control", b"max-age=3"), (b"Age", b"5")]):
        assert judge(fields) is None, fields
    assert judge([(b"Cache-Control", b"max-age=60")], status=203) is None
    assert judge([(b"Cache-Control", b"max-age=3"), (b"Age", b"2")]) == (3, 2, frozenset(), 0)


def test_vary_needs_process_vary_and_managed_fields():
    gzip_vary = [(b"Cache-Control", b"max-age=60"), (b"Vary", b"Accept-Encoding"),
                 (b"Content-Encoding", b"gzip")]
    assert judge(gzip_vary) is None  # process-vary off
    assert judge(gzip_vary, settings=VARY).codings == 0x1
    assert judge(gzip_vary[:2], settings=VARY).codings == cache.IDENTITY
    assert judge(gzip_vary[:1] + [(b"Vary", b"accept-encoding,referer")], settings=VARY).varies == {
        b"accept-encoding", b"referer"}
    for vary in (b"User-Agent", b"*", b"Accept-Encoding, Cookie"):
        assert judge(gzip_vary[:1] + [(b"Vary", vary)], settings=VARY) is None, vary
    unknown = gzip_vary[:2] + [(b"Content-Encoding", b"foo")]
    assert judge(unknown, settings=VARY) is None


def test_stored_size_is_haproxys():
    fields = [(b"cache-control", b"max-age=60"), (b"content-length", b"12")]
    assert cache.stored_size(200, b"X", fields, 0, 12) == 216
    assert cache.stored_size(200, b"X", fields[:1], 0, 0) == 180  # no body, no length
    assert cache.stored_size(200, b"X", fields, 1, 12) == 220  # an Age field was removed
    kept, removed = cache.stored_fields([(b"Age", b"30"), (b"Connection", b"close"), (b"ETag", b"e")])
    assert (kept, removed) == ([(b"ETag", b"e")], 1)


# --------------------------------------------------------------------- store


def test_store_lookup_and_expiry():
    store = cache.Store(SETTINGS)
    request = plan()
    entry = keep(store, request, ((b"Cache-Control", b"max-age=2"),), now=10.0)
    assert store.lookup(request, 11.9) is entry
    assert store.lookup(request, 12.0) is None
    assert not store.entries and store.used_blocks == 0
    assert store.lookup(plan(target=b"/other"), 11.0) is None


def test_an_object_held_stays_unless_the_request_skipped_the_lookup():
    store = cache.Store(SETTINGS)
    first = keep(store, plan(), body=b"one")
    assert keep(store, plan(), body=b"two") is None
    assert store.lookup(plan(), 1.0) is first
    replaced = keep(store, plan(fields=[(b"Pragma", b"no-cache")]), body=b"three")
    assert store.lookup(plan(), 1.0) is replaced and len(store.entries) == 1


def test_unsafe_methods_remove_the_object():
    store = cache.Store(SETTINGS)
    keep(store, plan())
    store.invalidate(plan(b"POST").key)
    assert store.lookup(plan(), 1.0) is None and store.used_blocks == 0


def test_least_recently_used_objects_make_room():
    settings = SETTINGS._replace(total_size=4 * cache.BLOCK_SIZE, max_object_size=2 * cache.BLOCK_SIZE)
    store = cache.Store(settings)
    body = b"x" * 1200  # two blocks each
    a, b = plan(target=b"/a"), plan(target=b"/b")
    keep(store, a, body=body)
    keep(store, b, body=body)
    assert store.used_blocks == 4
    store.lookup(a, 1.0)  # /a is now the most recently used
    keep(store, plan(target=b"/c"), body=body)
    assert store.lookup(b, 1.0) is None and store.lookup(a, 1.0) is not None
    assert store.used_blocks == 4
    assert keep(store, plan(target=b"/d"), body=b"x" * 3000) is None  # over max-object-size


def test_variants():
    store = cache.Store(VARY)
    fields = ((b"Cache-Control", b"max-age=60"), (b"Vary", b"Accept-Encoding"), (b"Content-Encoding", b"gzip"))
    gzip = plan(fields=[(b"Accept-Encoding", b"gzip")])
    entry = keep(store, gzip, fields)
    assert entry.vary_text() == "0x0100000000000000"
    assert store.lookup(gzip, 1.0) is entry
    assert store.lookup(plan(fields=[(b"Accept-Encoding", b"br")]), 1.0) is None
    assert store.lookup(plan(), 1.0) is entry  # no Accept-Encoding: any coding
    identity = keep(store, plan(fields=[(b"Accept-Encoding", b"br")]), fields[:2])
    assert identity.vary_text() == "0x0001000000000000"
    # max-secondary-entries 2: a third variant is not stored
    third = fields[:2] + ((b"Content-Encoding", b"br"),)
    assert keep(store, plan(fields=[(b"Accept-Encoding", b"br")]), third) is None
    # referer
    both = ((b"Cache-Control", b"max-age=60"), (b"Vary", b"accept-encoding,referer"))
    with_referer = plan(target=b"/r", fields=[(b"Referer", b"a")])
    entry = keep(store, with_referer, both)
    assert entry.vary_text() == "0x0001000043beb7e8"  # CRC-32 of "a", as HAProxy shows it
    assert store.lookup(with_referer, 1.0) is entry
    assert store.lookup(plan(target=b"/r", fields=[(b"Referer", b"b")]), 1.0) is None
    # referer without accept-encoding: stored, never found again (as HAProxy 2.6)
    only = plan(target=b"/o", fields=[(b"Referer", b"a")])
    assert keep(store, only, ((b"Cache-Control", b"max-age=60"), (b"Vary", b"Referer"))) is not None
    assert store.lookup(only, 1.0) is None


# ---------------------------------------------------------------------- hits


def entry_with(fields, body=b"body", framing=LENGTH, now=0.0):
    store = cache.Store(SETTINGS)
    storable = judge(fields)
    kept, removed = cache.stored_fields(list(fields))
    return store.store(plan(), storable, b"OK", kept, framing, body, 100, now)


def test_a_hit_sends_the_stored_head_with_its_age():
    entry = entry_with([(b"Cache-Control", b"max-age=60"), (b"Age", b"30"), (b"Connection", b"close")])
    answer = cache.answer(entry, b"GET", [], 2.5)
    assert answer == (200, b"OK", [(b"Cache-Control", b"max-age=60"), (b"age", b"32")],
                      (LENGTH, 4), b"body")
    assert cache.answer(entry, b"HEAD", [], 0.0).body == b""
    chunked = entry_with([(b"Cache-Control", b"max-age=60")], framing=CHUNKED)
    assert cache.answer(chunked, b"GET", [], 0.0).body == b"4\r\nbody\r\n0\r\n\r\n"
    until_close = entry_with([(b"Cache-Control", b"max-age=60")], framing=UNTIL_CLOSE)
    assert cache.answer(until_close, b"GET", [], 0.0).framing.kind == UNTIL_CLOSE


def test_a_chunked_hit_ends_with_the_stored_trailers():
    store = cache.Store(SETTINGS)
    fields = [(b"Cache-Control", b"max-age=60")]
    entry = store.store(plan(), judge(fields), b"OK", fields, CHUNKED, b"body", 100, 0.0,
                        [(b"X-Trail", b"one")])
    assert cache.answer(entry, b"GET", [], 0.0).body == b"4\r\nbody\r\n0\r\nx-trail: one\r\n\r\n"
    assert cache.answer(entry, b"HEAD", [], 0.0).body == b""


def test_conditional_requests_get_304():
    entry = entry_with([(b"ETag", b'"e1"'), (b"Last-Modified", b"Mon, 01 Dec 2025 00:00:00 GMT")])

    def status(*fields):
        return cache.answer(entry, b"GET", list(fields), 0.0).status

    assert status((b"If-None-Match", b'"e1"')) == 304
    assert status((b"If-None-Match", b'W/"e1"')) == 304
    assert status((b"If-None-Match", b'"zz", "e1"')) == 304
    assert status((b"If-None-Match", b"*")) == 304
    assert status((b"If-None-Match", b'"zz"')) == 200
    assert status((b"If-Modified-Since", b"Mon, 01 Dec 2025 00:00:00 GMT")) == 304
    assert status((b"If-Modified-Since", b"Mon, 01 Dec 2024 00:00:00 GMT")) == 200
    assert status((b"If-Modified-Since", b"garbage")) == 200
    # If-None-Match decides alone
    assert status((b"If-Modified-Since", b"Mon, 01 Dec 2025 00:00:00 GMT"), (b"If-None-Match", b'"zz"')) == 200
    answer = cache.answer(entry, b"GET", [(b"If-None-Match", b'"e1"')], 0.0)
    assert (answer.reason, answer.body, answer.framing) == (b"Not Modified", b"", (LENGTH, 4))


def test_show_cache_lists_fresh_objects_by_hash():
    store = cache.Store(SETTINGS)
    keep(store, plan(target=b"/b"), ((b"Cache-Control", b"max-age=9"),), now=0.0)
    keep(store, plan(target=b"/a"), ((b"Cache-Control", b"max-age=2"),), now=0.0)
    text = cache.show([store], 1.5)
    lines = text.splitlines()
    assert lines[0].endswith(": c (shctx:" + lines[0].split("shctx:")[1].split(",")[0]
                             + ", available blocks:1024)")
    hashes = [int(line.split("hash:")[1].split()[0]) for line in lines[1:]]
    assert hashes == sorted(hashes) and len(hashes) == 2
    assert "vary:0x0000000000000000 size:" in lines[1] and "(1 blocks), refcount:0, expire:" in lines[1]
    assert sorted(int(line.rsplit("expire:", 1)[1]) for line in lines[1:]) == [0, 7]
    assert len(cache.show([store], 3.0).splitlines()) == 2  # the expired one is gone
