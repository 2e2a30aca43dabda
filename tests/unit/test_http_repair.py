"""Heads llhttp refuses, as HAProxy 2.6 reads them (haply.http.repair). The
proxies' behaviour itself is compared in tests/interop/
test_request_differential_oracle.py and test_response_differential_oracle.py."""

from __future__ import annotations

import pytest

from haply.http.repair import LEFT, Head, HeadError, refused, request_head, response_head


@pytest.mark.parametrize("raw,written", [
    (b"GET /a HTTP/1.1\nHost: h\n\n", b"GET /a HTTP/1.1\r\nHost: h\r\n\r\n"),
    (b"\r\n\nGET\t/a \t HTTP/1.1\r\nHost: h\r\n\r\n", b"GET /a HTTP/1.1\r\nHost: h\r\n\r\n"),
    (b"GET / HTTP/1.1\r\nX: a\r\n b\r\n\t c \r\n\r\n", b"GET / HTTP/1.1\r\nX: a   b  \t c\r\n\r\n"),
    (b"GET / HTTP/1.1\nX: a\n b\n\n", b"GET / HTTP/1.1\r\nX: a  b\r\n\r\n"),
    (b"GET / HTTP/1.1\r\nX:\r\n b\r\n\r\n", b"GET / HTTP/1.1\r\nX: b\r\n\r\n"),
    (b"GET / HTTP/1.1\r\nX: \x01\x7f \r\n\r\n", b"GET / HTTP/1.1\r\nX: \x01\x7f\r\n\r\n"),
    (b"FOO / HTTP/1.1\r\n\r\n", b"FOO / HTTP/1.1\r\n\r\n"),
])
def test_requests_written_anew(raw, written):
    head = request_head(raw + b"body")
    assert head == Head(written, len(raw))


@pytest.mark.parametrize("raw,written", [
    (b"HTTP/1.1\t200\tO\tK \n\n", b"HTTP/1.1 200 O\tK \r\n\r\n"),
    (b"HTTP/1.1  200  OK\r\n\r\n", b"HTTP/1.1 200 OK\r\n\r\n"),
    (b"HTTP/1.1 200\r\n\r\n", b"HTTP/1.1 200 \r\n\r\n"),
    (b"HTTP/1.1 200 OK\r\nX: a\r\n b\r\n\n", b"HTTP/1.1 200 OK\r\nX: a   b\r\n\r\n"),
])
def test_answers_written_anew(raw, written):
    assert response_head(raw) == Head(written, len(raw))


@pytest.mark.parametrize("raw,position,reason", [
    (b"GET / HTTP/1.1 \r\n\r\n", 14, "whitespace at the end"),
    (b"GET / HTTP/1.1\r\n X: y\r\n\r\n", 16, "continuation"),
    (b"GET / HTTP/1.1\r\nX : y\r\n\r\n", 17, "whitespace between"),
    (b"GET / HTTP/1.1\r\nX\t: y\r\n\r\n", 17, "whitespace between"),
    (b"GET / HTTP/1.1\r\nX Y: y\r\n\r\n", 17, "invalid character"),
    (b"GET / HTTP/1.1\r\nX\x00: y\r\n\r\n", 17, "invalid character"),
    (b"GET / HTTP/1.1\r\nX: a\x00b\r\n\r\n", 20, "NUL in a field value"),
    (b"GET / HTTP/1.1\r\n: y\r\n\r\n", 16, "empty field name"),
    (b"GET / HTTP/1.1\r\nXY\r\n\r\n", 18, "without colon"),
    (b"GET / HTTP/1.1\r\nX: a\rb\r\n\r\n", 21, "CR not followed by LF"),
    (b"GET / HTTP/1.1\r\n\r\r\n", 17, "CR not followed by LF"),
    (b"G(T / HTTP/1.1\r\n\r\n", 1, "method"),
])
def test_requests_refused(raw, position, reason):
    head = request_head(raw)
    assert isinstance(head, HeadError) and head.position == position and reason in head.reason


def test_what_is_not_repaired_is_left_to_llhttp():
    assert request_head(b"GET /a b HTTP/1.1\r\n\r\n") is LEFT
    assert request_head(b" GET / HTTP/1.1\r\n\r\n") is LEFT
    assert request_head(b"GET /\r\n\r\n") is LEFT
    assert response_head(b"HTTP/1.1\r\n\r\n") is LEFT


def test_a_head_not_whole_yet():
    assert request_head(b"GET / HTTP/1.1\nHost: h\n") is None
    assert request_head(b"GET / HTTP/1.1\nX: a\rb") == HeadError(20, "CR not followed by LF")
    assert not refused(b"GET\t/ HTTP/1.1\nHost: h\nX: a\n b")
    assert not refused(b"BAN /x HTTP/1.1\nX: \x01")
    assert refused(b"\x16\x03\x01\x02\x00")
    assert refused(b"GET / HTTP/1.1\n X")
    assert refused(b"GET / HTTP/1.1\nX : a")
    assert not refused(b"HTTP/1.1\t200 OK\nX: \x01", response=True)
    assert refused(b"HTTP/1.1 2x0", response=True)
