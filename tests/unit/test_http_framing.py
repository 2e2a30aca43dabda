"""haply.http.framing: body framing (RFC 9112 §6), smuggling refusals, limits, keep-alive."""

from __future__ import annotations

import pytest
from hypothesis import given, settings, strategies as st

from haply.http.errors import ProtocolError, RemoteProtocolError
from haply.http.framing import (
    CHUNKED, CLOSE, KEEP_ALIVE, LENGTH, MAX_HEAD_SIZE, MAX_HEADERS, NO_BODY_NO_LENGTH, NONE, SERVER_CLOSE,
    UNTIL_CLOSE, Framing, check_request_target, connect_framing, connection_modes, extension_method,
    connection_options,
    head_too_large, keep_alive, peer_wants_keep_alive, request_framing, response_framing,
    server_keep_alive, too_many_headers, validate_header_fields,
)


def refused(call, *args) -> RemoteProtocolError:
    with pytest.raises(RemoteProtocolError) as info:
        call(*args)
    return info.value


# ------------------------------------------------------------------ requests


@pytest.mark.parametrize("method", [b"GET", b"HEAD", b"DELETE", b"OPTIONS", b"POST"])
def test_request_without_framing_fields_has_no_body(method):
    assert request_framing(method, "1.1", [(b"Host", b"a")]) == Framing(NONE, 0)


@pytest.mark.parametrize("value,length", [
    (b"0", 0), (b"3", 3), (b"0003", 3), (b"3 ", 3), (b" 3\t", 3),
    (b"9223372036854775807", 2**63 - 1),
    # leading zeros do not count against the 19 digits (HAProxy takes them)
    (b"00000000000000000003", 3), (b"0" * 5000 + b"3", 3), (b"0" * 30, 0),
    (b"0" + b"9223372036854775807", 2**63 - 1),
])
def test_content_length(value, length):
    framing = request_framing(b"POST", "1.1", [(b"content-LENGTH", value)])
    assert framing == Framing(LENGTH, length)


@pytest.mark.parametrize("value", [
    b"", b"  ", b"+3", b"-3", b"0x3", b"3.0", b"1 2", b"3, 3", b"3,", b"three",
    "\u0663".encode(),  # ARABIC-INDIC DIGIT THREE: not an ASCII digit
    b"9223372036854775808",  # 2**63
    b"09223372036854775808",  # 2**63 behind a zero
    b"1" * 5000,
])
def test_bad_content_length_is_refused(value):
    error = refused(request_framing, b"POST", "1.1", [(b"Content-Length", value)])
    assert error.status_hint == 400
    assert "Content-Length" in error.message
    assert error.field == b"content-length"


def test_duplicate_content_length_with_different_values():
    error = refused(request_framing, b"POST", "1.1",
                    [(b"Content-Length", b"3"), (b"Content-Length", b"4")])
    assert (error.status_hint, error.message) == (400, "duplicate Content-Length with "
                                                       "different values")


def test_identical_duplicate_content_length_is_refused_too():
    error = refused(request_framing, b"POST", "1.1",
                    [(b"Content-Length", b"3"), (b"content-length", b"3")])
    assert (error.status_hint, error.message) == (400, "duplicate Content-Length")


@pytest.mark.parametrize("values", [
    [b"chunked"], [b"CHUNKED"], [b"Chunked"], [b" chunked \t"],
])
def test_chunked_request(values):
    headers = [(b"Transfer-Encoding", v) for v in values]
    assert request_framing(b"POST", "1.1", headers) == Framing(CHUNKED)


@pytest.mark.parametrize("cl_first", [True, False])
def test_content_length_with_transfer_encoding_is_refused(cl_first):
    fields = [(b"Content-Length", b"5"), (b"Transfer-Encoding", b"chunked")]
    if not cl_first:
        fields.reverse()
    error = refused(request_framing, b"POST", "1.1", fields)
    assert error.status_hint == 400
    assert error.message == "both Content-Length and Transfer-Encoding"


@pytest.mark.parametrize("values,status,words", [
    ([b"chunked, gzip"], 400, "does not end with chunked"),
    ([b"gzip"], 400, "does not end with chunked"),
    ([b"identity"], 400, "does not end with chunked"),
    ([b"xchunked"], 400, "does not end with chunked"),
    ([b"chunkedx"], 400, "does not end with chunked"),
    ([b"chunked;x"], 400, "does not end with chunked"),
    ([b"chunked x"], 400, "does not end with chunked"),
    ([b'"chunked"'], 400, "does not end with chunked"),
    ([b"chunked,"], 400, "does not end with chunked"),
    ([b""], 400, "does not end with chunked"),
    ([b"chunked, chunked"], 400, "more than once"),
    ([b"chunked"] * 2, 400, "more than once"),
    ([b"chunked", b"gzip"], 400, "does not end with chunked"),
    ([b",chunked"], 400, "malformed"),
    ([b"x chunked"], 400, "does not end with chunked"),
    ([b"x y, chunked"], 400, "malformed"),
    ([b"gzip;q=1, chunked"], 400, "malformed"),
    ([b"gzip, chunked"], 501, "other than chunked"),
    ([b"gzip", b"chunked"], 501, "other than chunked"),
    ([b"deflate , Chunked"], 501, "other than chunked"),
])
def test_transfer_encoding_other_than_a_single_chunked_is_refused(values, status, words):
    headers = [(b"Transfer-Encoding", v) for v in values]
    error = refused(request_framing, b"POST", "1.1", headers)
    assert error.status_hint == status
    assert words in error.message
    assert error.field == b"transfer-encoding"


def test_transfer_encoding_in_http10_request_is_refused():
    error = refused(request_framing, b"POST", "1.0", [(b"Transfer-Encoding", b"chunked")])
    assert (error.status_hint, error.message) == (400, "Transfer-Encoding in an HTTP/1.0 "
                                                       "request")


def test_http10_content_length_is_fine():
    assert request_framing(b"POST", "1.0", [(b"Content-Length", b"2")]) == Framing(LENGTH, 2)


@pytest.mark.parametrize("version,status", [("0.9", 400), ("2.0", 505), ("1.2", 505)])
def test_unsupported_versions(version, status):
    assert refused(request_framing, b"GET", version, []).status_hint == status


def test_differing_hosts_are_refused_identical_pass():
    error = refused(request_framing, b"GET", "1.1", [(b"Host", b"a"), (b"host", b"b")])
    assert (error.status_hint, error.field) == (400, b"host")
    assert request_framing(b"GET", "1.1", [(b"Host", b"a"), (b"HOST", b"A ")]) == \
        Framing(NONE)


def test_framing_fields_are_recognised_whatever_their_case():
    assert request_framing(b"POST", "1.1", [(b"TRANSFER-ENCODING", b"chunked")]).kind == \
        CHUNKED
    assert request_framing(b"POST", "1.1", [(b"cOnTeNt-LeNgTh", b"7")]).length == 7


# ----------------------------------------------------------------- responses


@pytest.mark.parametrize("method,status", [
    (b"HEAD", 200), (b"GET", 100), (b"GET", 101), (b"GET", 103), (b"GET", 204),
    (b"GET", 304), (b"CONNECT", 200), (b"CONNECT", 299),
])
def test_responses_without_body(method, status):
    # Framing fields are irrelevant (even contradictory ones) when no body exists;
    # a 1xx or 204 may not have any (RFC 9110 §8.6): the writers then drop them.
    headers = [(b"Content-Length", b"10"), (b"Transfer-Encoding", b"chunked")]
    framing = response_framing(method, status, "1.1", headers)
    assert framing.kind == NONE
    assert (framing == NO_BODY_NO_LENGTH) == (status < 200 or status == 204)


def test_connect_failure_has_a_body():
    assert response_framing(b"CONNECT", 403, "1.1", [(b"Content-Length", b"5")]) == \
        Framing(LENGTH, 5)


def test_response_kinds():
    assert response_framing(b"GET", 200, "1.1", [(b"Content-Length", b"2")]) == \
        Framing(LENGTH, 2)
    assert response_framing(b"GET", 200, "1.1", [(b"Transfer-Encoding", b"chunked")]) == \
        Framing(CHUNKED)
    framing = response_framing(b"GET", 200, "1.1", [])
    assert framing == Framing(UNTIL_CLOSE) and not framing.delimited
    assert response_framing(b"GET", 200, "1.0", []).kind == UNTIL_CLOSE
    assert Framing(LENGTH, 0).delimited and Framing(CHUNKED).delimited


@pytest.mark.parametrize("version,headers", [
    ("1.1", [(b"Content-Length", b"2"), (b"Transfer-Encoding", b"chunked")]),
    ("1.1", [(b"Content-Length", b"2"), (b"Content-Length", b"3")]),
    ("1.1", [(b"Content-Length", b"2"), (b"Content-Length", b"2")]),
    ("1.1", [(b"Content-Length", b"-1")]),
    ("1.1", [(b"Transfer-Encoding", b"chunked, gzip")]),
    ("1.1", [(b"Transfer-Encoding", b"gzip, chunked")]),
    ("1.1", [(b"Transfer-Encoding", b"chunked, chunked")]),
    ("1.1", [(b"Transfer-Encoding", b"xchunked")]),
    ("1.0", [(b"Transfer-Encoding", b"chunked")]),
])
def test_bad_responses_are_502(version, headers):
    assert refused(response_framing, b"GET", 200, version, headers).status_hint == 502


@pytest.mark.parametrize("status", [0, 99, 600, 999])
def test_response_status_out_of_range(status):
    assert refused(response_framing, b"GET", status, "1.1", []).status_hint == 502


def test_response_version():
    assert refused(response_framing, b"GET", 200, "0.9", []).status_hint == 502
    for version in ("2.0", "3.0"):
        assert refused(response_framing, b"GET", 200, version, []).status_hint == 502
    # RFC 9112 §2.6: a higher minor version is read as the highest one spoken
    for version in ("1.2", "1.9"):
        assert response_framing(b"GET", 200, version, [(b"Content-Length", b"2")]) == \
            Framing(LENGTH, 2)


@pytest.mark.parametrize("coding", [b"gzip, chunked", b"chunked, gzip", b"identity", b",chunked"])
def test_an_answer_to_head_with_a_coding_haply_does_not_relay_is_502(coding):
    headers = [(b"Transfer-Encoding", coding)]
    assert refused(response_framing, b"HEAD", 200, "1.1", headers).status_hint == 502


def test_an_answer_to_head_keeps_its_framing_fields():
    for headers in ([(b"Transfer-Encoding", b"Chunked")], [(b"Content-Length", b"20")], []):
        assert response_framing(b"HEAD", 200, "1.1", headers) == Framing(NONE, 0)


# -------------------------------------------------------------------- hypothesis

_names = st.sampled_from([b"Content-Length", b"content-length", b"Transfer-Encoding",
                          b"transfer-encoding", b"Host", b"Connection", b"X-A"])
_values = st.one_of(
    st.binary(max_size=30),
    st.sampled_from([b"chunked", b"0", b"12", b"gzip, chunked", b"chunked, chunked",
                     b" 5 ", b"close", b"+1", b"99999999999999999999"]),
)
_header_lists = st.lists(st.tuples(st.one_of(_names, st.binary(max_size=20)), _values),
                         max_size=12)
_versions = st.sampled_from(["0.9", "1.0", "1.1", "2.0"])


@settings(max_examples=400, deadline=None)
@given(method=st.sampled_from([b"GET", b"POST", b"HEAD", b"CONNECT"]), version=_versions,
       headers=_header_lists)
def test_request_framing_never_crashes(method, version, headers):
    try:
        framing = request_framing(method, version, headers)
    except RemoteProtocolError as error:
        assert error.status_hint in (400, 501, 505) and error.message
        return
    assert framing.kind in (NONE, LENGTH, CHUNKED)
    assert framing.length >= 0


@settings(max_examples=400, deadline=None)
@given(method=st.sampled_from([b"GET", b"HEAD", b"CONNECT"]),
       status=st.integers(min_value=0, max_value=1000), version=_versions,
       headers=_header_lists)
def test_response_framing_never_crashes(method, status, version, headers):
    try:
        framing = response_framing(method, status, version, headers)
    except ProtocolError as error:
        assert isinstance(error, RemoteProtocolError)
        assert error.status_hint == 502 and error.message
        return
    assert framing.kind in (NONE, LENGTH, CHUNKED, UNTIL_CLOSE)


_tokens = st.text(alphabet="abcdefghijklmnopqrstuvwxyz-", min_size=1, max_size=12) \
    .map(str.encode).filter(lambda n: n.lower() not in (
        b"content-length", b"transfer-encoding", b"host"))
_other_fields = st.lists(st.tuples(_tokens, st.binary(max_size=20)), max_size=10)


@settings(max_examples=300, deadline=None)
@given(version=st.sampled_from(["1.0", "1.1"]), length=st.integers(0, 2**63 - 1),
       zeros=st.integers(0, 2), others=_other_fields, position=st.integers(0, 10),
       spaces=st.sampled_from([b"", b" ", b"\t "]))
def test_well_formed_content_length_is_always_accepted(version, length, zeros, others,
                                                      position, spaces):
    digits = str(length).encode()
    if len(digits) + zeros <= 19:
        digits = b"0" * zeros + digits
    fields = list(others)
    fields.insert(min(position, len(fields)), (b"Content-Length", digits + spaces))
    assert request_framing(b"POST", version, fields) == Framing(LENGTH, length)


@settings(max_examples=300, deadline=None)
@given(others=_other_fields, position=st.integers(0, 10),
       spelling=st.sampled_from([b"chunked", b"Chunked", b"CHUNKED", b"chunked "]))
def test_well_formed_chunked_is_always_accepted(others, position, spelling):
    fields = list(others)
    fields.insert(min(position, len(fields)), (b"Transfer-Encoding", spelling))
    assert request_framing(b"POST", "1.1", fields) == Framing(CHUNKED)
    assert response_framing(b"GET", 200, "1.1", fields) == Framing(CHUNKED)


# ------------------------------------------------------------- fields, limits


@pytest.mark.parametrize("name,value,words", [
    (b"", b"a", "empty header name"),
    (b"X Y", b"a", "name"),
    (b"X ", b"a", "name"),  # whitespace before the colon
    (b"X\t", b"a", "name"),
    (b"X@", b"a", "name"),
    (b"X\xc3", b"a", "name"),
    (b"X", b"a\rb", "value"),
    (b"X", b"a\nb", "value"),
    (b"X", b"a\x00b", "value"),
    (b"X", b"a\x7fb", "value"),
    (b"X", b"a\r\n b", "value"),
    (b"X", b" folded", "obs-fold"),
    (b"X", b"\tfolded", "obs-fold"),
])
def test_validate_header_fields_refuses(name, value, words):
    error = refused(validate_header_fields, [(b"Ok", b"fine"), (name, value)])
    assert words in error.message and error.status_hint == 400


def test_validate_header_fields_accepts_valid_fields():
    validate_header_fields([(b"X-Ok!#$%&'*+-.^_`|~09", b"a\tb c \xe9\xff"), (b"E", b"")])


def test_validate_header_fields_status_for_responses():
    assert refused(validate_header_fields, [(b"X", b"\x01")], 502).status_hint == 502


def test_limits_match_haproxy_defaults():
    assert MAX_HEAD_SIZE == 16384 - 1024
    assert MAX_HEADERS == 100


def test_limit_errors():
    assert head_too_large(100).status_hint == 431
    assert head_too_large(MAX_HEAD_SIZE).status_hint == 414
    assert "URI" in head_too_large(MAX_HEAD_SIZE).message
    assert head_too_large(MAX_HEAD_SIZE, response=True).status_hint == 502
    assert too_many_headers().status_hint == 431
    assert too_many_headers(response=True).status_hint == 502
    assert str(MAX_HEADERS) in too_many_headers().message


HOST_H = [(b"Host", b"h")]


@pytest.mark.parametrize("url,headers", [
    (b"/a#b", HOST_H), (b"/#", []),
    # an absolute form naming another host than Host (RFC 9112 §3.2.2)
    (b"http://other/x", HOST_H), (b"http://h:81/x", [(b"Host", b"h:82")]),
    (b"https://h/x", [(b"Host", b"h:80")]), (b"http://h/x", [(b"X", b"1"), (b"host", b"g")]),
    # a query right after the authority, which HAProxy refuses
    (b"http://h?q", HOST_H), (b"http://h?", HOST_H), (b"https://u@h:443?q", []),
])
def test_request_target_refused(url, headers):
    assert refused(check_request_target, url, headers).status_hint == 400


@pytest.mark.parametrize("url,headers", [
    (b"/", []), (b"*", HOST_H), (b"h:443", [(b"Host", b"h:443")]),
    (b"/a;b=c/~d!$'()*+,", HOST_H),
    # what RFC 3986 leaves out of a URI but HAProxy forwards
    (b'/a<b>{c}|d^e\\f`g?q="x"', HOST_H),
    # the same host: default ports, case, user information, no Host at all
    (b"http://h:80/p?q=1&r=%20", HOST_H), (b"http://h/x", [(b"Host", b"h:80")]),
    (b"https://H:443/x", [(b"host", b" h ")]), (b"http://u:p@h/x", HOST_H),
    (b"http://h:8080/x", [(b"Host", b"h:8080")]), (b"http://h/?q", HOST_H), (b"http://h/x", []),
    # an empty port is the default one; an empty authority is not compared
    (b"http://h:/x", HOST_H), (b"http://h:", HOST_H), (b"http:///x", HOST_H), (b"http://", HOST_H),
])
def test_request_target_accepted(url, headers):
    check_request_target(url, headers)


# ------------------------------------------------------------------ keep-alive


def test_connection_modes_matrix():
    # Server side: the stronger mode (manual, section 4 matrix).
    modes = [KEEP_ALIVE, SERVER_CLOSE, CLOSE]
    for i, fe in enumerate(modes):
        for j, be in enumerate(modes):
            client, server = connection_modes(fe, be)
            assert server == modes[max(i, j)]
            # Client side: only the frontend's httpclose closes it (observed).
            assert client == (CLOSE if fe == CLOSE else KEEP_ALIVE)
    with pytest.raises(ValueError):
        connection_modes("tunnel", KEEP_ALIVE)


def test_connection_options():
    headers = [(b"Connection", b"Keep-Alive, X-Foo"), (b"connection", b" ,close,,"),
               (b"X", b"close")]
    assert connection_options(headers) == {b"keep-alive", b"x-foo", b"close"}


@pytest.mark.parametrize("version,value,wanted", [
    ("1.1", None, True), ("1.1", b"close", False), ("1.1", b"keep-alive", True),
    ("1.1", b"Upgrade, CLOSE", False), ("1.0", None, False), ("1.0", b"keep-alive", True),
    ("1.0", b"Keep-Alive", True), ("1.0", b"keep-alive, close", False), ("0.9", None, False),
])
def test_peer_wants_keep_alive(version, value, wanted):
    headers = [] if value is None else [(b"Connection", value)]
    assert peer_wants_keep_alive(version, connection_options(headers)) is wanted
    assert keep_alive(version, headers, KEEP_ALIVE) is wanted
    assert keep_alive(version, headers, SERVER_CLOSE) is wanted
    assert keep_alive(version, headers, CLOSE) is False


def test_until_close_response_closes_both_sides():
    assert keep_alive("1.1", [], KEEP_ALIVE, Framing(UNTIL_CLOSE)) is False
    assert keep_alive("1.1", [], KEEP_ALIVE, Framing(LENGTH, 3)) is True


def test_server_keep_alive():
    assert server_keep_alive(KEEP_ALIVE)
    assert not server_keep_alive(SERVER_CLOSE)
    assert not server_keep_alive(CLOSE)


NO_BODY = Framing(NONE, 0)


@pytest.mark.parametrize("url,headers", [
    # not a host and port (RFC 9112 §3.2.3)
    (b"h", []), (b"h:", HOST_H), (b"h:x", HOST_H), (b":443", []), (b"/x", []), (b"*", []),
    (b"http://h/x", HOST_H), (b"[::1]", []),
    # another host than Host: a Host port must be the target's, and a Host
    # without port matches only 80 and 443
    (b"g:443", HOST_H), (b"h:443", [(b"Host", b"g")]), (b"h:8443", HOST_H),
    (b"h:0", HOST_H), (b"h:0443", HOST_H), (b"h:443", [(b"Host", b"h:80")]),
    (b"h:80", [(b"Host", b"h:443")]), (b"h:443", [(b"Host", b"")]),
    (b"h:443", [(b"Host", b"h, h")]),
])
def test_connect_target_refused(url, headers):
    assert refused(connect_framing, url, headers, NO_BODY).status_hint == 400


@pytest.mark.parametrize("url,headers", [
    (b"h:443", []), (b"h:443", HOST_H), (b"h:80", HOST_H), (b"h:443", [(b"Host", b"H:443")]),
    (b"h:8443", [(b"Host", b"h:8443")]), (b"[::1]:443", [(b"Host", b"[::1]")]),
    (b"127.0.0.1:1", []), (b"u@h:443", HOST_H), (b"h:99999", [(b"Host", b"h:99999")]),
])
def test_connect_target_accepted(url, headers):
    assert connect_framing(url, headers, NO_BODY) == NO_BODY


def test_connect_has_no_content():
    """What follows a CONNECT's head is the tunnel's: a Content-Length over 0
    is not sent on (the server would wait for it), a chunked one refused."""
    assert connect_framing(b"h:443", HOST_H, Framing(LENGTH, 3)) == NO_BODY_NO_LENGTH
    assert connect_framing(b"h:443", HOST_H, Framing(LENGTH, 0)) == Framing(LENGTH, 0)
    error = refused(connect_framing, b"h:443", HOST_H, Framing(CHUNKED))
    assert (error.status_hint, error.field) == (400, b"transfer-encoding")


@pytest.mark.parametrize("head,found", [
    (b"BAN /a HTTP/1.1\r\n", (b"BAN", b" /a HTTP/1.1\r\n")),
    (b"get / HTTP/1.1\r\n", (b"get", b" / HTTP/1.1\r\n")),
    (b"\r\n\nM!#$%&'*+-.^_`|~0 /", (b"M!#$%&'*+-.^_`|~0", b" /")),
    # not whole yet
    (b"FO", (b"FO", None)), (b"\r\nabc", (b"abc", None)),
    # not a token, no method at all
    (b"M@X / HTTP/1.1\r\n", None), (b"GET\t/ HTTP/1.1\r\n", None), (b"M\xe9 /", None),
    (b"M@", None), (b" / HTTP/1.1\r\n", None), (b"\r\n", None),
])
def test_extension_method(head, found):
    assert extension_method(head) == found
