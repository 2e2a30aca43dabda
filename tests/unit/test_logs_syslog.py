"""Syslog framing (RFC 3164 as HAProxy sends it, RFC 5424, raw)."""

from __future__ import annotations

import re

from hypothesis import given, strategies as st

from haply.logs import syslog

WHEN = 1795309474.5

RFC3164 = re.compile(r"<(\d{1,3})>([A-Z][a-z]{2}) ([ \d]\d) (\d\d):(\d\d):(\d\d) haproxy\[(\d+)\]: (.*)")
RFC5424 = re.compile(r"<(\d{1,3})>1 (\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}[+-]\d\d:\d\d) (\S+) "
                     r"haproxy (\d+) - - (.*)")


def test_priority():
    assert syslog.priority("local0", "info") == 134
    assert syslog.priority("kern", "emerg") == 0
    assert syslog.priority("local7", "debug") == 191


def test_rfc3164_line():
    data = syslog.frame("rfc3164", "local0", "info", "hello world", WHEN, "haproxy", 42, "h", 1024)
    match = RFC3164.fullmatch(data.decode().rstrip("\n"))
    assert match and match.group(1) == "134" and match.group(7) == "42"
    assert match.group(8) == "hello world"


def test_rfc5424_line():
    data = syslog.frame("rfc5424", "local1", "notice", "x y", WHEN, "haproxy", 7, "node", 1024)
    match = RFC5424.fullmatch(data.decode().rstrip("\n"))
    assert match and match.group(1) == str(17 * 8 + 5) and match.group(3) == "node"
    assert match.group(5) == "x y"


def test_raw_and_truncation():
    assert syslog.frame("raw", "local0", "info", "abc", WHEN, "haproxy", 1, "h", 1024) == b"abc\n"
    data = syslog.frame("rfc3164", "local0", "info", "x" * 500, WHEN, "haproxy", 1, "h", 100)
    assert len(data) == 100 and data.endswith(b"\n")


@given(st.sampled_from(sorted(syslog.FACILITIES)), st.sampled_from(sorted(syslog.SEVERITIES)),
       st.text(max_size=200), st.integers(min_value=80, max_value=2000))
def test_frames_always_parse(facility, severity, message, length):
    data = syslog.frame("rfc3164", facility, severity, message, WHEN, "haproxy", 9, "h", length)
    assert len(data) <= length
    assert data.startswith(b"<%d>" % syslog.priority(facility, severity))


def test_framer_matches_frame_and_sends_hostname():
    framer = syslog.Framer("rfc3164", "local0", "haproxy", 42, "h", 1024)
    assert framer.frame("info", "msg", WHEN) == syslog.frame(
        "rfc3164", "local0", "info", "msg", WHEN, "haproxy", 42, "h", 1024)
    named = syslog.Framer("rfc3164", "local0", "lb", 42, "h", 1024, send_hostname="node7")
    line = named.frame("info", "msg", WHEN).decode()
    assert re.fullmatch(r"<134>[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d node7 lb\[42\]: msg\n", line)
