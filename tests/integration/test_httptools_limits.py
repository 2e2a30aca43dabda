"""What httptools (llhttp) rejects by itself, and what haply.http must check.

haply's proxy feeds raw bytes to httptools.HttpRequestParser /
HttpResponseParser and hands what they report to haply.http. Each case below
feeds real bytes to the real parser and pins the outcome:

- `PARSER_REJECTS`: llhttp raises, so the proxy answers 400 before haply.http
  is called, or, for the forms HAProxy reads (bare LF, obs-fold, control
  characters in values...), reads the head again once haply.http.repair wrote
  it anew. haply.http.framing still refuses these where they concern
  framing (defence in depth); if an httptools upgrade ever loosens one of
  them, this test fails and tells us a check moved to our side.
- `PARSER_ACCEPTS_WE_REFUSE`: llhttp accepts and reports the fields; each one
  must then be refused by haply.http, which this test also checks, end to end
  from bytes to our decision.
"""

from __future__ import annotations

import httptools
import pytest

from haply.http.errors import RemoteProtocolError
from haply.http.framing import (
    CHUNKED, LENGTH, MAX_HEADERS, NONE, UNTIL_CLOSE, check_protocol, check_request_target,
    minor_version_above, request_framing, response_framing, validate_header_fields,
)
from haply.proxy.http import request_parser
from haply.proxy.upstream import response_parser


class Recorder:
    """httptools callbacks that only record, like the proxy's."""

    def __init__(self):
        self.url = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.complete = False
        self.body = b""
        self.done = False

    def on_url(self, url):
        self.url += url

    def on_header(self, name, value):
        self.headers.append((name, value))

    def on_headers_complete(self):
        self.complete = True

    def on_body(self, body):
        self.body += body

    def on_message_complete(self):
        self.done = True


def feed_request(raw: bytes) -> tuple[httptools.HttpRequestParser, Recorder]:
    recorder = Recorder()
    parser = request_parser(recorder)  # as the proxy makes it
    parser.feed_data(raw)
    return parser, recorder


def feed_response(raw: bytes) -> tuple[httptools.HttpResponseParser, Recorder]:
    """raw fed to the parser the proxy reads servers' answers with."""
    recorder = Recorder()
    parser = response_parser(recorder)
    parser.feed_data(raw)
    return parser, recorder


def request(fields: bytes, line: bytes = b"POST / HTTP/1.1") -> bytes:
    return line + b"\r\n" + fields + b"\r\n"


# --------------------------------------------------- rejected by llhttp itself

PARSER_REJECTS = {
    "CR inside a value": request(b"X: a\rb\r\n"),
    "bare LF inside a value": request(b"X: a\nb: c\r\n"),
    "NUL inside a value": request(b"X: a\x00b\r\n"),
    "other CTL inside a value": request(b"X: a\x01b\r\n"),
    "DEL inside a value": request(b"X: a\x7fb\r\n"),
    "obs-fold with SP": request(b"X: a\r\n b\r\n"),
    "obs-fold with HTAB": request(b"X: a\r\n\tb\r\n"),
    "obs-fold after an empty value": request(b"X:\r\n b\r\n"),
    "SP before the colon": request(b"X : a\r\n"),
    "HTAB before the colon": request(b"X\t: a\r\n"),
    "empty name": request(b": a\r\n"),
    "no colon": request(b"Xab\r\n"),
    "@ in a name": request(b"X@Y: a\r\n"),
    "/ in a name": request(b"X/Y: a\r\n"),
    "( in a name": request(b"X(Y: a\r\n"),
    "8-bit byte in a name": request(b"X\xc3Y: a\r\n"),
    "NUL in a name": request(b"X\x00: a\r\n"),
    "whitespace before the first field": request(b" X: a\r\n"),
    "duplicate Content-Length, different": request(b"Content-Length: 3\r\nContent-Length: 4\r\n"),
    "duplicate Content-Length, identical": request(b"Content-Length: 3\r\ncontent-length: 3\r\n"),
    "Content-Length list": request(b"Content-Length: 3, 3\r\n"),
    "Content-Length with sign": request(b"Content-Length: +3\r\n"),
    "negative Content-Length": request(b"Content-Length: -3\r\n"),
    "hex Content-Length": request(b"Content-Length: 0x3\r\n"),
    "Content-Length with inner space": request(b"Content-Length: 1 2\r\n"),
    "empty Content-Length": request(b"Content-Length: \r\n"),
    "Content-Length over 2**64": request(b"Content-Length: 18446744073709551616\r\n"),
    "Transfer-Encoding chunked, gzip": request(b"Transfer-Encoding: chunked, gzip\r\n"),
    "Transfer-Encoding chunked twice": request(b"Transfer-Encoding: chunked, chunked\r\n"),
    "Transfer-Encoding chunked in two fields":
        request(b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n"),
    "Transfer-Encoding chunked,": request(b"Transfer-Encoding: chunked,\r\n"),
    "empty Transfer-Encoding": request(b"Transfer-Encoding: \r\n"),
    "bare LF line endings": b"GET / HTTP/1.1\nHost: a\n\n",
    "two-digit minor version": request(b"", b"GET / HTTP/1.10"),
    "ICE protocol": request(b"", b"GET / ICE/1.0"),
    # (the proxy reads these again, when the method is a token: see the
    # ExtensionMethodParser test below)
    "lower-case method": request(b"", b"get / HTTP/1.1"),
    "unknown method": request(b"", b"FOO / HTTP/1.1"),
    "SP in the URL": request(b"", b"GET /a b HTTP/1.1"),
    "CTL in the URL": request(b"", b"GET /a\x01b HTTP/1.1"),
    "8-bit byte in the URL": request(b"", b"GET /a\xe9b HTTP/1.1"),
    "bad chunk size": request(b"Transfer-Encoding: chunked\r\n") + b"zz\r\nabc\r\n0\r\n\r\n",
    "chunk size with SP": request(b"Transfer-Encoding: chunked\r\n") + b"3 \r\nabc\r\n0\r\n\r\n",
    "chunk without CRLF": request(b"Transfer-Encoding: chunked\r\n") + b"3\r\nabcX0\r\n\r\n",
    "chunk size overflow": request(b"Transfer-Encoding: chunked\r\n") + b"f" * 17 + b"\r\n",
}


@pytest.mark.parametrize("case", sorted(PARSER_REJECTS))
def test_llhttp_rejects(case):
    with pytest.raises(httptools.HttpParserError):
        feed_request(PARSER_REJECTS[case])


def test_llhttp_response_parser_rejects_fold_and_smuggling():
    with pytest.raises(httptools.HttpParserError):
        feed_response(b"HTTP/1.1 200 OK\r\nX: a\r\n b\r\nContent-Length: 0\r\n\r\n")
    with pytest.raises(httptools.HttpParserError):
        feed_response(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nok")


def test_spaces_after_a_chunk_size_accepted_from_servers_only():
    """HAProxy reads `5 \\r\\n` from a server; so does haply's response parser.
    llhttp's default, kept for requests, refuses it."""
    chunked = b"Transfer-Encoding: chunked\r\n\r\n5  \r\nhello\r\n0 \r\n\r\n"
    _, recorder = feed_response(b"HTTP/1.1 200 OK\r\n" + chunked)
    assert recorder.body == b"hello" and recorder.done
    with pytest.raises(httptools.HttpParserError):
        httptools.HttpResponseParser(Recorder()).feed_data(b"HTTP/1.1 200 OK\r\n" + chunked)
    with pytest.raises(httptools.HttpParserError):
        feed_request(b"POST / HTTP/1.1\r\nHost: h\r\n" + chunked)


# Fields llhttp rejected above, as a list haply.http would see if a lenient
# parser let them through: validate_header_fields refuses each of them.
@pytest.mark.parametrize("fields", [
    [(b"X", b"a\rb")], [(b"X", b"a\nb")], [(b"X", b"a\x00b")], [(b"X", b"a\x01b")],
    [(b"X", b" b")], [(b"X", b"\tb")], [(b"X ", b"a")], [(b"", b"a")], [(b"X@Y", b"a")],
])
def test_we_refuse_what_llhttp_refuses(fields):
    with pytest.raises(RemoteProtocolError):
        validate_header_fields(fields)


# -------------------------------------- accepted by llhttp, refused by haply.http


def test_http10_transfer_encoding_is_decoded_by_llhttp_and_refused_by_us():
    raw = request(b"Transfer-Encoding: chunked\r\n", b"POST / HTTP/1.0") + b"3\r\nabc\r\n0\r\n\r\n"
    parser, seen = feed_request(raw)
    assert seen.done and seen.body == b"abc"  # llhttp decoded it as chunked
    with pytest.raises(RemoteProtocolError) as info:
        request_framing(parser.get_method(), parser.get_http_version(), seen.headers)
    assert info.value.status_hint == 400


# llhttp's lenient_chunked_length, which the proxy's parsers use so that a
# Content-Length among trailers passes (HAProxy forwards it), lets through
# heads with both framings and, in requests, a Transfer-Encoding that does
# not end in chunked: request_framing and response_framing refuse them.
@pytest.mark.parametrize("fields", [
    b"Content-Length: 3\r\nTransfer-Encoding: chunked\r\n",
    b"Transfer-Encoding: chunked\r\nContent-Length: 3\r\n",
    b"Transfer-Encoding: xchunked\r\n",
    b"Transfer-Encoding: identity\r\n",
    b"Transfer-Encoding: chunked;x\r\n",
])
def test_framing_llhttp_lets_through_for_trailers_is_refused_by_us(fields):
    parser, seen = feed_request(request(fields))
    assert seen.complete
    with pytest.raises(RemoteProtocolError) as info:
        request_framing(parser.get_method(), parser.get_http_version(), seen.headers)
    assert info.value.status_hint == 400


def test_both_framings_in_a_response_pass_llhttp_and_are_refused_by_us():
    _, seen = feed_response(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n"
                            b"Transfer-Encoding: chunked\r\n\r\n")
    with pytest.raises(RemoteProtocolError) as info:
        response_framing(b"GET", 200, "1.1", seen.headers)
    assert info.value.status_hint == 502


def test_framing_fields_among_trailers_pass_llhttp():
    chunked = b"Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nContent-Length: 5\r\n\r\n"
    _, seen = feed_request(b"POST / HTTP/1.1\r\nHost: h\r\n" + chunked)
    assert seen.done and seen.headers[-1] == (b"Content-Length", b"5")
    _, seen = feed_response(b"HTTP/1.1 200 OK\r\n" + chunked)
    assert seen.done and seen.body == b"abc"


@pytest.mark.parametrize("value,status", [
    (b",chunked", 400),  # leading empty element: llhttp reads it as chunked
    (b"gzip, chunked", 501),
    (b"deflate, chunked", 501),
])
def test_transfer_encoding_lists_llhttp_accepts(value, status):
    parser, seen = feed_request(request(b"Transfer-Encoding: " + value + b"\r\n") + b"0\r\n\r\n")
    assert seen.done
    with pytest.raises(RemoteProtocolError) as info:
        request_framing(parser.get_method(), parser.get_http_version(), seen.headers)
    assert info.value.status_hint == status


def test_split_transfer_encoding_fields_reach_us_separately():
    parser, seen = feed_request(
        request(b"Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n") + b"0\r\n\r\n")
    assert seen.headers == [(b"Transfer-Encoding", b"gzip"), (b"Transfer-Encoding", b"chunked")]
    with pytest.raises(RemoteProtocolError) as info:
        request_framing(parser.get_method(), parser.get_http_version(), seen.headers)
    assert info.value.status_hint == 501


@pytest.mark.parametrize("line,version,status", [
    (b"GET /", "0.9", 400),
    (b"GET / HTTP/2.0", "2.0", 505),
])
def test_versions_llhttp_accepts(line, version, status):
    parser, _ = feed_request(line + b"\r\n\r\n")
    assert parser.get_http_version() == version
    with pytest.raises(RemoteProtocolError) as info:
        request_framing(parser.get_method(), version, [])
    assert info.value.status_hint == status


@pytest.mark.parametrize("version", ["1.2", "1.9"])
def test_higher_minor_versions_are_read_as_http11(version):
    """RFC 9112 §2.6, as HAProxy 2.6 forwards them: HTTP/1.1."""
    parser, _ = feed_request(b"GET / HTTP/%s\r\nHost: a\r\n\r\n" % version.encode())
    assert parser.get_http_version() == version
    assert minor_version_above(version)
    assert not minor_version_above("1.1") and not minor_version_above("2.0")


@pytest.mark.parametrize("version", ["3.0", "9.9"])
def test_other_major_versions_are_refused_by_us(version):
    parser, _ = feed_request(b"GET / HTTP/%s\r\nHost: a\r\n\r\n" % version.encode())
    with pytest.raises(RemoteProtocolError) as info:
        request_framing(parser.get_method(), parser.get_http_version(), [])
    assert info.value.status_hint == 505


def test_rtsp_accepted_by_llhttp_refused_by_us():
    head = b"GET / RTSP/1.0\r\nHost: a\r\n\r\n"
    parser, _ = feed_request(head)
    assert parser.get_http_version() == "1.0"  # nothing tells it from HTTP/1.0 but the line
    for refused in (head, b"\r\n\r\n" + head, b"OPTIONS * RTSP/2.0\r\n\r\n"):
        with pytest.raises(RemoteProtocolError) as info:
            check_protocol(refused)
        assert info.value.status_hint == 400
    for accepted in (b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", b"\r\nGET /x HTTP/1.0\r\n\r\n",
                     b"GET /a-very-long-path-split-over-rea"):  # not a whole line yet
        check_protocol(accepted)


def test_printable_characters_outside_rfc3986_pass_llhttp_and_us():
    """As HAProxy 2.6 forwards them; DEL and bytes above 0x7F llhttp refuses."""
    _, seen = feed_request(b'GET /a{b}|c^d\\e`f?q="<x>" HTTP/1.1\r\nHost: a\r\n\r\n')
    assert seen.url == b'/a{b}|c^d\\e`f?q="<x>"'
    check_request_target(seen.url, seen.headers)
    for refused in (b"\x7f", b"\x80", b"\xc3\xa9"):
        with pytest.raises(httptools.HttpParserError):
            feed_request(b"GET /a%sb HTTP/1.1\r\nHost: a\r\n\r\n" % refused)


def test_fragment_in_url_accepted_by_llhttp_refused_by_us():
    _, seen = feed_request(b"GET /a#b HTTP/1.1\r\nHost: a\r\n\r\n")
    assert seen.url == b"/a#b"
    with pytest.raises(RemoteProtocolError):
        check_request_target(seen.url, seen.headers)


def test_differing_hosts_accepted_by_llhttp_refused_by_us():
    parser, seen = feed_request(b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n")
    with pytest.raises(RemoteProtocolError):
        request_framing(parser.get_method(), parser.get_http_version(), seen.headers)


def test_llhttp_has_no_size_or_count_limit():
    # The proxy enforces MAX_HEAD_SIZE and MAX_HEADERS itself (framing.py).
    _, seen = feed_request(b"GET / HTTP/1.1\r\nX: " + b"a" * 100_000 + b"\r\n\r\n")
    assert seen.done and len(seen.headers[0][1]) == 100_000
    _, seen = feed_request(b"GET / HTTP/1.1\r\n" + b"X: a\r\n" * (MAX_HEADERS * 10) + b"\r\n")
    assert seen.done and len(seen.headers) == MAX_HEADERS * 10
    _, seen = feed_request(b"GET /" + b"a" * 100_000 + b" HTTP/1.1\r\n\r\n")
    assert seen.done and len(seen.url) == 100_001


def test_llhttp_value_whitespace():
    # Leading OWS is stripped, trailing OWS kept: our parsers strip it.
    parser, seen = feed_request(request(b"Content-Length:   3 \t\r\n") + b"abc")
    assert seen.headers == [(b"Content-Length", b"3 \t")]
    assert request_framing(parser.get_method(), "1.1", seen.headers).length == 3


def test_llhttp_accepts_leading_zeros_and_so_do_we():
    parser, seen = feed_request(request(b"Content-Length: 0003\r\n") + b"abc")
    assert seen.body == b"abc"
    assert request_framing(parser.get_method(), "1.1", seen.headers).kind == LENGTH


def test_response_status_099_accepted_by_llhttp_refused_by_us():
    parser, seen = feed_response(b"HTTP/1.1 099 Odd\r\nContent-Length: 0\r\n\r\n")
    assert parser.get_status_code() == 99
    with pytest.raises(RemoteProtocolError) as info:
        response_framing(b"GET", 99, "1.1", seen.headers)
    assert info.value.status_hint == 502


def test_head_response_body_is_unknown_to_llhttp():
    # llhttp does not know the request was HEAD: it waits for 10 body bytes.
    # The proxy must use response_framing and stop feeding the parser.
    parser, seen = feed_response(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n")
    assert seen.complete and not seen.done
    assert response_framing(b"HEAD", 200, "1.1", seen.headers).kind == NONE


def test_response_framing_agrees_with_llhttp():
    cases = [
        (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", LENGTH),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n", CHUNKED),
        (b"HTTP/1.1 204 No Content\r\nContent-Length: 3\r\n\r\n", NONE),
        (b"HTTP/1.1 304 Not Modified\r\nContent-Length: 3\r\n\r\n", NONE),
        (b"HTTP/1.1 200 OK\r\n\r\nuntil close", UNTIL_CLOSE),
    ]
    for raw, kind in cases:
        parser, seen = feed_response(raw)
        framing = response_framing(b"GET", parser.get_status_code(),
                                   parser.get_http_version(), seen.headers)
        assert framing.kind == kind, raw
        assert seen.done is (kind != UNTIL_CLOSE), raw


def test_llhttp_refuses_transfer_encoding_in_responses_only_when_not_final():
    # A response with "Transfer-Encoding: gzip" is read until close by llhttp
    # (RFC 9112 §6.3 item 4); haply refuses it (502): see framing.py.
    parser, seen = feed_response(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nabc")
    assert seen.body == b"abc" and not seen.done
    with pytest.raises(RemoteProtocolError) as info:
        response_framing(b"GET", 200, "1.1", seen.headers)
    assert info.value.status_hint == 502


def test_extension_method_read_as_get_reports_its_own_method():
    """A method llhttp does not know is read with GET in its place (the
    proxy's ExtensionMethodParser); the head's get_method() gives the
    request's own, and the requests after it on the connection their own."""
    from haply.proxy.http import ExtensionMethodParser

    methods = []

    class Methods(Recorder):
        def on_headers_complete(self):
            methods.append(parser.get_method())

    with pytest.raises(httptools.HttpParserInvalidMethodError):
        feed_request(b"BAN /a HTTP/1.1\r\nHost: h\r\n\r\n")
    recorder = Methods()
    parser = request_parser(recorder, ExtensionMethodParser)
    parser.method = b"BAN"
    parser.feed_data(b"GET /a HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\nokHEAD /b HTTP/1.1\r\n\r\n")
    assert methods == [b"BAN", b"HEAD"]
    assert recorder.body == b"ok"
