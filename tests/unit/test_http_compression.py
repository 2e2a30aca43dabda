"""haply.http.compression: which algorithm, which response, and the streaming
encoder. The expected values are what HAProxy 2.6.12 did on the same input
(tests/interop/test_compression_oracle.py runs the live comparison)."""

from __future__ import annotations

import zlib

import pytest
from hypothesis import given, strategies as st

from haply.config.model import Compression
from haply.http.compression import (
    ALGORITHMS, Counters, Encoder, Policy, compress_whole, compressible, list_elements, old_mozilla,
    policy_for, qvalue, response_fields, select,
)


def policy(written: str, types: str = "", offload: bool = False) -> Policy:
    """The policy of `compression algo <written>`: HAProxy's list is the reverse."""
    return Policy(tuple(reversed(written.split())), tuple(reversed(types.split())), offload)


def chosen(written: str, accept: str | None, agent: str | None = None) -> str | None:
    headers = [(b"Host", b"x")]
    if accept is not None:
        headers.append((b"Accept-Encoding", accept.encode()))
    if agent is not None:
        headers.append((b"User-Agent", agent.encode()))
    algorithm, accepted = select(policy(written), headers)
    assert accepted == (algorithm is not None and (accept is not None and algorithm.name != "identity"
                                                   or "identity" in (accept or "")))
    return None if algorithm is None else algorithm.name


# --------------------------------------------------------------- the algorithm

# (Accept-Encoding, what `compression algo gzip deflate` chose, what
# `compression algo identity gzip` chose), observed with HAProxy 2.6.12.
ACCEPT = [
    ("gzip, deflate", "gzip", "gzip"),
    ("deflate, gzip", "deflate", "gzip"),
    ("*", "deflate", "gzip"),  # the first of the list, which is the last written
    ("deflate;q=0.5, gzip;q=0.6", "gzip", "gzip"),
    ("gzip;q=0.5, deflate;q=0.6", "deflate", "gzip"),
    ("gzip;q=0.5, deflate;q=0.5", "gzip", "gzip"),  # a tie keeps the first
    ("identity", None, "identity"),
    ("identity, gzip", "gzip", "identity"),
    ("gzip;q=0.5, identity", "gzip", "identity"),
    ("br", None, "identity"),  # identity is taken when nothing matches
    ("deflate", "deflate", "identity"),
    ("gzip;q=1.5, deflate;q=1.0", "gzip", "gzip"),  # capped at 1
    ("gzip;Q=0.1, deflate;q=0.2", "gzip", "gzip"),  # "Q=" is not q
    ("gzip; level=1; q=0.1, deflate;q=0.2", "deflate", "gzip"),
    ("gzip;q=0.001", "gzip", "gzip"),
    ("gzip;q=.5, deflate;q=0.4", "gzip", "gzip"),  # unreadable: 1
    ("*;q=0, gzip", "gzip", "gzip"),
    ("gzip;q=0, *", "deflate", "gzip"),
    ("gzip;q=0", None, "identity"),
    ("GZIP", "gzip", "gzip"),
    ("br , gzip ; q=0.5", "gzip", "gzip"),
    ("br, x-gzip", None, "identity"),
    ("", None, "identity"),
]


@pytest.mark.parametrize("accept, gzip_deflate, identity_gzip", ACCEPT)
def test_algorithm_as_haproxy_chose_it(accept, gzip_deflate, identity_gzip):
    assert chosen("gzip deflate", accept) == gzip_deflate
    assert chosen("identity gzip", accept) == identity_gzip


def test_algorithm_without_accept_encoding_and_with_several_fields():
    assert chosen("gzip", None) is None
    assert chosen("gzip identity", None) == "identity"
    headers = [(b"accept-encoding", b"br"), (b"ACCEPT-ENCODING", b"gzip")]
    assert select(policy("gzip"), headers) == (ALGORITHMS["gzip"], True)
    # identity taken because nothing matched: offload leaves Accept-Encoding alone
    assert select(policy("identity"), [(b"Accept-Encoding", b"br")]) == (ALGORITHMS["identity"], False)
    assert select(policy("identity"), [(b"Accept-Encoding", b"identity")]) == (ALGORITHMS["identity"], True)


def test_deflate_and_raw_deflate_answer_to_the_same_coding():
    # `algo raw-deflate deflate` offers deflate first, `algo deflate raw-deflate` raw-deflate
    assert chosen("raw-deflate deflate", "deflate") == "deflate"
    assert chosen("deflate raw-deflate", "deflate") == "raw-deflate"
    assert ALGORITHMS["raw-deflate"].coding == ALGORITHMS["deflate"].coding == b"deflate"


AGENTS = [
    ("Mozilla/4.0 (compatible)", True),
    ("Mozilla/4.0 (compatible; MSIE 7.0; Windows NT 6.0)", False),
    ("Mozilla/4.0 (compatible; MSIE 6.0; Windows NT 5.1)", True),
    ("Mozilla/4.0 (compatible; MSIE 6.0; Windows NT 5.1; SV1)", False),
    ("Mozilla/4.0 (compatible; MSIE 5.5; Windows NT 5.0)", True),
    ("Mozilla/5.0 (X11; Linux x86_64)", False),
    ("python-requests/2.31.0", False),
    ("Mozilla/4", True),
]


@pytest.mark.parametrize("agent, old", AGENTS)
def test_old_mozilla_gets_nothing(agent, old):
    assert old_mozilla(agent.encode()) is old
    # even identity: HAProxy gives such a client no algorithm at all
    assert chosen("identity gzip", "gzip", agent) == (None if old else "gzip")


@pytest.mark.parametrize("parameters, q", [
    ("", 1000), (";q=0", 0), (";q=0.5", 500), ("; q=0.25", 250), (";q=1", 1000),
    (";q=1.000", 1000), (";q=0.1234", 123), (";q=2", 1000), (";q=abc", 1000),
    (";q=", 1000), (";q", 1000), (";Q=0", 1000), (";level=1;q=0", 0), (";level=1", 1000),
    (" x;q=0", 1000), (";", 1000),
])
def test_qvalue(parameters, q):
    assert qvalue(parameters.encode()) == q


def test_list_elements_keep_quoted_commas():
    assert list_elements(b" a , b,,c ") == [b"a", b"b", b"", b"c"]
    assert list_elements(b'private="x, y", no-transform') == [b'private="x, y"', b"no-transform"]
    assert list_elements(b'a="\\", no-transform", b') == [b'a="\\", no-transform"', b"b"]


def test_route_settings_backend_first():
    fe = Compression(("gzip",), ("text/html",), offload=True)
    be = Compression(("deflate",))
    route = policy_for(fe, be)
    assert [a.name for a in route.algorithms] == ["deflate"]
    assert route.types == (b"text/html",) and route.offload
    assert policy_for(fe, None).algorithms == policy_for(fe, Compression(offload=True)).algorithms
    assert policy_for(Compression(types=("text/html",)), Compression(offload=True)) is None
    assert policy_for(None, None) is None
    # types of the backend win even when its algorithms come from the frontend
    route = policy_for(Compression(("gzip",), ("text/html",)), Compression(types=("Application/JSON",)))
    assert [a.name for a in route.algorithms] == ["gzip"] and route.types == (b"application/json",)


# ---------------------------------------------------------------- the response


@pytest.mark.parametrize("status, request_version, version, kind, length, expected", [
    (200, "1.1", "1.1", "length", 120, True),
    (201, "1.1", "1.1", "chunked", 0, True),
    (203, "1.1", "1.1", "length", 1, True),
    (204, "1.1", "1.1", "none", 0, False),
    (206, "1.1", "1.1", "length", 120, False),
    (404, "1.1", "1.1", "length", 120, False),
    (200, "1.0", "1.1", "length", 120, False),
    (200, "1.1", "1.0", "length", 120, False),
    (200, "1.1", "1.1", "length", 0, False),
    (200, "1.1", "1.1", "until-close", 0, False),
    (200, "1.1", "1.1", "none", 0, False),  # a HEAD answer
])
def test_compressible(status, request_version, version, kind, length, expected):
    assert compressible(status, request_version, version, kind, length) is expected


BASE = [(b"Content-Type", b"text/plain"), (b"Content-Length", b"120")]


def fields(extra=(), types: str = "", base=BASE):
    return response_fields(policy("gzip", types), [*base, *extra])


def test_fields_of_a_compressed_response():
    assert fields() == [(b"Content-Type", b"text/plain")]
    assert fields([(b"ETag", b'"abc"')]) == [(b"Content-Type", b"text/plain"), (b"ETag", b'W/"abc"')]
    assert fields([(b"etag", b'W/"abc"')])[-1] == (b"etag", b'W/"abc"')
    assert fields([(b"ETag", b'""')])[-1] == (b"ETag", b'W/""')
    assert fields([(b"Vary", b"Cookie")])[-1] == (b"Vary", b"Cookie")
    assert fields([(b"Cache-Control", b"no-transformx")]) is not None
    assert fields(base=[(b"Transfer-Encoding", b"chunked")]) == [(b"Transfer-Encoding", b"chunked")]
    assert fields(base=[]) == []  # no Content-Type and no type list


@pytest.mark.parametrize("extra", [
    [(b"Content-Encoding", b"br")],
    [(b"content-encoding", b"")],
    [(b"Cache-Control", b"max-age=3, no-transform")],
    [(b"Cache-Control", b"No-Transform")],
    [(b"Cache-Control", b"public"), (b"Cache-Control", b"no-transform ")],
    [(b"ETag", b"abc")],
    [(b"ETag", b'"abc')],
    [(b"ETag", b'w/"abc"')],
    [(b"ETag", b'"')],
    [(b"ETag", b'"a"'), (b"ETag", b'"b"')],
])
def test_fields_that_forbid_compression(extra):
    assert fields(extra) is None


def test_content_types():
    multipart = [(b"Content-Type", b"Multipart/form-data; boundary=x"), (b"Content-Length", b"3")]
    assert fields(base=multipart) is None
    html = [(b"Content-Type", b"TEXT/HTML; charset=utf-8")]
    assert fields(types="text/html text/plain", base=html) == html  # a prefix, any case
    assert fields(types="application/json", base=html) is None
    assert fields(types="text/html", base=[(b"Content-Length", b"3")]) is None  # none: required
    two = [(b"Content-Type", b"text/css"), (b"Content-Type", b"text/html")]
    assert fields(types="text/html", base=two) is None  # the first one counts


# ------------------------------------------------------------------ encoders


def decoder(name: str):
    return zlib.decompressobj(ALGORITHMS[name].wbits)


@pytest.mark.parametrize("name", ["gzip", "deflate", "raw-deflate"])
def test_each_flush_delivers_what_was_fed(name):
    """Z_SYNC_FLUSH after every read: the client can decode all it was sent
    so far, which is what a streamed body needs."""
    encoder = ALGORITHMS[name].encoder(chunked_input=False)
    inflate = decoder(name)
    sent = b""
    for piece in (b"first line\n", b"x" * 70000, b"", b"last\n"):
        encoder.feed(piece)
        data, taken, made = encoder.flush()
        assert (taken, made) == (len(piece), len(data))
        sent += piece
        assert inflate.decompress(data) == piece
    data, taken, made = encoder.flush(last=True)
    assert (taken, made) == (0, len(data))
    assert inflate.decompress(data) == b"" and inflate.eof


def test_a_flush_without_body_sends_nothing():
    encoder = ALGORITHMS["gzip"].encoder(chunked_input=False)
    assert encoder.flush() == (b"", 0, 0)
    encoder.feed(b"abc")
    encoder.feed(b"def")  # pieces of one read share one flush
    data, taken, _ = encoder.flush()
    assert taken == 6 and zlib.decompressobj(31).decompress(data) == b"abcdef"
    assert encoder.flush() == (b"", 0, 0)


def test_gzip_stream_is_haproxys():
    """The gzip header HAProxy (libslz) writes, and its empty body (20 bytes)."""
    data, taken, made = ALGORITHMS["gzip"].encoder(chunked_input=True).flush(last=True)
    assert data[:10] == bytes.fromhex("1f8b0800000000000403")
    assert len(data) == 20 and zlib.decompress(data, 31) == b""
    assert (taken, made) == (1, 21)  # HAProxy counts a byte more for a chunked body


def test_identity_passes_the_body():
    encoder = ALGORITHMS["identity"].encoder(chunked_input=True)
    assert isinstance(encoder, Encoder) and not encoder.compresses
    encoder.feed(b"abc")
    encoder.feed(b"de")
    assert encoder.flush() == (b"abcde", 5, 5)
    assert encoder.flush(last=True) == (b"", 1, 1)
    assert ALGORITHMS["identity"].lines == b"Vary: Accept-Encoding\r\n"
    assert ALGORITHMS["gzip"].lines == b"Vary: Accept-Encoding\r\nContent-Encoding: gzip\r\n"


@given(st.sampled_from(["gzip", "deflate", "raw-deflate", "identity"]),
       st.lists(st.lists(st.binary(max_size=3000), max_size=4), max_size=6),
       st.booleans())
def test_any_body_round_trips(name, reads, chunked):
    encoder = ALGORITHMS[name].encoder(chunked)
    sent, counted = [], 0
    for read in reads:
        for piece in read:
            encoder.feed(piece)
        data, taken, made = encoder.flush()
        sent.append(data)
        counted += taken
    data, taken, made = encoder.flush(last=True)
    sent.append(data)
    counted += taken
    body = b"".join(piece for read in reads for piece in read)
    assert counted == len(body) + chunked
    stream = b"".join(sent)
    assert (stream if name == "identity" else zlib.decompressobj(ALGORITHMS[name].wbits)
            .decompress(stream)) == body


def test_a_whole_answer_compressed():
    """What haply answers itself (statistics page, exporter) in one piece."""
    body = b"haproxy_frontend_bytes_in_total{proxy=\"fe\"} 0\n" * 200
    message = (b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n"
               b"Cache-Control: no-cache\r\nConnection: close\r\n\r\n" % len(body)) + body
    gzip = ALGORITHMS["gzip"]
    out, taken, made = compress_whole(policy("gzip"), gzip, "1.1", message)
    head, _, chunks = out.partition(b"\r\n\r\n")
    assert head == (b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nCache-Control: no-cache\r\n"
                    b"Connection: close\r\nTransfer-Encoding: chunked\r\nVary: Accept-Encoding\r\n"
                    b"Content-Encoding: gzip")
    size, _, rest = chunks.partition(b"\r\n")
    data = rest[:int(size, 16)]
    assert rest[int(size, 16):] == b"\r\n0\r\n\r\n"
    assert zlib.decompress(data, 31) == body and (taken, made) == (len(body), len(data))
    assert compress_whole(policy("gzip"), gzip, "1.0", message) is None  # an HTTP/1.0 client
    assert compress_whole(policy("gzip", "text/html"), gzip, "1.1", message) is None
    assert compress_whole(policy("gzip"), gzip, "1.1", message.replace(b"200 OK", b"303 See Other")) is None


def test_counters():
    counters = Counters()
    counters.add(True, 1000, 100, last=False)
    counters.add(True, 1, 21, last=True)
    counters.add(False, 50, 50, last=True)  # identity: bypassed
    assert (counters.comp_in, counters.comp_out, counters.comp_byp, counters.comp_rsp) == (
        1001, 121, 50, 2)
    counters.clear()
    assert (counters.comp_in, counters.comp_out, counters.comp_byp, counters.comp_rsp) == (0,) * 4


def test_encoder_level_is_haproxys_default():
    from haply.http import compression
    assert compression.LEVEL == 1 and isinstance(ALGORITHMS["gzip"].encoder(False), Encoder)
