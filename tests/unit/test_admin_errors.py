"""Where parsing failed, for `show errors`."""

from __future__ import annotations

from hypothesis import given, strategies as st

from haply.admin.errors import _fails, capture, dump, error_position

GOOD = b"GET /x HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc"


def test_known_positions():
    assert error_position(b"GET / HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n") == 28
    assert error_position(b"G@T / HTTP/1.1\r\n\r\n") == 1
    assert error_position(GOOD) is None
    assert error_position(b"") is None


@given(st.binary(max_size=80), st.integers(min_value=0, max_value=len(GOOD)))
def test_position_is_the_first_refused_byte(junk, cut):
    data = GOOD[:cut] + junk
    position = error_position(data)
    if position is None:
        assert not _fails(data)
    else:
        assert not _fails(data[:position])
        assert _fails(data[:position + 1])


def test_dump_escapes_and_offsets():
    assert dump(b"GET /\r\nA: \x01\r\n") == ["  00000  GET /\\r\\n", "  00007  A: \\x01\\r\\n"]


def test_capture_keeps_a_bounded_copy():
    error = capture("10.0.0.1", "bad", b"x" * 100000)
    assert len(error.data) == 16384 and error[0] == "10.0.0.1" and error[1] == "bad"
