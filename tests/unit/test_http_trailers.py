"""haply.http.trailers: writing a trailer section, and reading a response's
back from its last bytes. The expected writing is HAProxy 2.6's (compared on
the wire in tests/interop/test_trailers_oracle.py)."""

from __future__ import annotations

import httptools
import pytest
from hypothesis import given, strategies as st

from haply.http import framing, trailers
from haply.http.errors import RemoteProtocolError

HEAD = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"


def test_no_fields_is_the_plain_last_chunk():
    assert trailers.last_chunk(None) == b"0\r\n\r\n"
    assert trailers.last_chunk([]) == b"0\r\n\r\n"


def test_fields_are_written_as_haproxy_writes_a_head():
    fields = [(b"X-Trail", b"one"), (b"Connection", b"close"), (b"x-sp", b"  a b \t")]
    assert trailers.last_chunk(fields) == (b"0\r\nx-trail: one\r\nconnection: close\r\n"
                                           b"x-sp: a b\r\n\r\n")


def test_limits_are_the_heads():
    assert trailers.section_error(framing.MAX_HEADERS, framing.MAX_HEAD_SIZE, 400) is None
    error = trailers.section_error(framing.MAX_HEADERS + 1, 10, 400)
    assert error.status_hint == 400 and "fields" in str(error)
    error = trailers.section_error(1, framing.MAX_HEAD_SIZE + 1, 502)
    assert error.status_hint == 502 and "larger" in str(error)


@pytest.mark.parametrize("tail, fields", [
    (HEAD + b"2\r\nok\r\n0\r\n\r\n", []),
    (HEAD + b"0\r\n\r\n", []),
    (HEAD + b"2\r\nok\r\n0\r\nX-A: 1\r\nx-b:2\r\n\r\n", [(b"X-A", b" 1"), (b"x-b", b"2")]),
    # the last chunk with spaces and an extension whose quoted value has a colon
    (HEAD + b"2\r\nok\r\n000 ;e=\"a:b\"\r\nX: y\r\n\r\n", [(b"X", b" y")]),
    # a field named like a chunk size is still a field
    (HEAD + b"2\r\nok\r\n0\r\n0: zero\r\n\r\n", [(b"0", b" zero")]),
    # chunk data that looks like fields is not read: the last chunk comes first
    (HEAD + b"8\r\nA: b\r\n\r\n\r\n0\r\nC: d\r\n\r\n", [(b"C", b" d")]),
    (b"0\r\nA: b\r\n\r\n", [(b"A", b" b")]),
])
def test_the_section_is_read_back_from_the_last_bytes(tail, fields):
    assert trailers.read_section(tail, True) == fields


def test_bytes_after_the_answer_are_not_taken_for_trailers():
    # a server that sent a second answer unasked: it ends the bytes
    assert trailers.read_section(HEAD + b"0\r\n\r\nHTTP/1.1 200 OK\r\nA: b\r\n\r\n", True) == []
    assert trailers.read_section(HEAD + b"0\r\nA: b\r\n\r\nxyz", True) == []


def test_a_section_whose_start_was_dropped_is_refused():
    # tail no longer holds the body from its start: the first line may be cut
    with pytest.raises(RemoteProtocolError) as raised:
        trailers.read_section(b"0\r\nA: b\r\n\r\n", False)
    assert raised.value.status_hint == 502
    assert trailers.read_section(b"x\r\n0\r\nA: b\r\n\r\n", False) == [(b"A", b" b")]


def test_a_section_over_the_limits_is_refused():
    many = b"".join(b"X-%d: v\r\n" % i for i in range(framing.MAX_HEADERS + 1))
    with pytest.raises(RemoteProtocolError):
        trailers.read_section(HEAD + b"0\r\n" + many + b"\r\n", True)
    large = b"X: " + b"a" * framing.MAX_HEAD_SIZE + b"\r\n"
    with pytest.raises(RemoteProtocolError):
        trailers.read_section(HEAD + b"0\r\n" + large + b"\r\n", True)


class _Reader:
    def __init__(self):
        self.fields = []
        self.done = False

    def on_header(self, name, value):
        self.fields.append((name, value))

    def on_message_complete(self):
        self.done = True


_name = st.text("abcXYZ-_09!#", min_size=1, max_size=8).map(str.encode)
_value = st.text("abc xyz:;=\"09", max_size=12).map(lambda text: text.strip().encode())
_chunks = st.lists(st.binary(min_size=1, max_size=20), max_size=4)


@given(_chunks, st.lists(st.tuples(_name, _value), max_size=6), st.sampled_from([b"0", b"00", b"0;x=1"]))
def test_read_back_as_llhttp_reads_them(chunks, fields, last):
    """Whatever the chunk data, what is read back is what llhttp reported."""
    body = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for chunk in chunks)
    message = HEAD + body + last + b"\r\n" + b"".join(
        name + b": " + value + b"\r\n" for name, value in fields) + b"\r\n"
    reader = _Reader()
    parser = httptools.HttpResponseParser(reader)
    parser.feed_data(message)
    assert reader.done
    expected = reader.fields[1:]  # after the head's Transfer-Encoding
    got = [(name, value.strip(b" \t")) for name, value in trailers.read_section(message, True)]
    assert got == expected
