"""Where parsing failed, for `show errors`."""

from __future__ import annotations

from hypothesis import given, strategies as st

from haply.admin.errors import capture, dump, error_position, refused

GOOD = b"GET /x HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc"


def test_known_positions():
    assert error_position(b"GET / HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n") == 28
    assert error_position(b"G@T / HTTP/1.1\r\n\r\n") == 1
    assert error_position(GOOD) is None
    assert error_position(b"") is None


def test_positions_in_heads_the_proxy_writes_anew():
    """Where HAProxy 2.6 places these faults (its `show errors`, observed):
    past a bare LF, tabs or obs-fold that it reads, and at the byte after a
    CR that no LF follows."""
    assert error_position(b"GET / HTTP/1.1\nHost: x\nX-A\t: b\n\n") == 26
    assert error_position(b"GET / HTTP/1.1\nHost: x\nBad Header\n\n") == 26
    assert error_position(b"GET\t/ HTTP/1.1\nHost: x\nX-A: a\n b\nContent-Length: abc\n\n") == 49
    assert error_position(b"GET\t/a b HTTP/1.1\r\nHost: x\r\n\r\n") == 7
    assert error_position(b"GET / HTTP/1.1\r\nHost: x\r\n\r\r\n") == 26
    assert error_position(b"GET / HTTP/1.1 \r\nHost: x\r\n\r\n") == 14
    assert error_position(b"GET / HTTP/1.1\r\n X: y\r\nHost: x\r\n\r\n") == 16
    assert error_position(b"FOO / HTTP/1.1\r\nBad Header\r\n\r\n") == 19
    assert error_position(b"GET / HTTP/1.1\nHost: x\nX-A: \x01\n\n") is None


@given(st.binary(max_size=80), st.integers(min_value=0, max_value=len(GOOD)))
def test_position_is_the_first_refused_byte(junk, cut):
    data = GOOD[:cut] + junk
    position = error_position(data)
    if position is None:
        assert not refused(data)
    else:
        assert not refused(data[:position])
        assert refused(data[:position + 1])


@given(st.lists(st.sampled_from([b"\r\n", b"\n", b"\r", b" ", b"\t", b":", b"X", b"\x01", b"/",
                                 b"GET", b"FOO", b" HTTP/1.1", b"Host: a"]), max_size=30))
def test_position_is_the_first_refused_byte_of_unusual_heads(parts):
    data = b"".join(parts)
    position = error_position(data)
    if position is None:
        assert not refused(data)
    else:
        assert not refused(data[:position])
        assert refused(data[:position + 1])


def test_dump_escapes_and_offsets():
    assert dump(b"GET /\r\nA: \x01\r\n") == ["  00000  GET /\\r\\n", "  00007  A: \\x01\\r\\n"]


def test_capture_keeps_a_bounded_copy():
    error = capture("10.0.0.1", "bad", b"x" * 100000)
    assert len(error.data) == 16384 and error[0] == "10.0.0.1" and error[1] == "bad"
