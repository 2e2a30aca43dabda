"""Syslog framing: HAProxy's formats (local, RFC 3164, RFC 5424, short,
priority, timed, iso, raw) as HAProxy 2.6 writes them."""

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


def test_local_line_has_no_host_name():
    data = syslog.frame("local", "local0", "info", "hello world", WHEN, "haproxy", 42, None, 1024)
    match = RFC3164.fullmatch(data.decode().rstrip("\n"))
    assert match and match.group(1) == "134" and match.group(7) == "42"
    assert match.group(8) == "hello world"
    # a name from log-send-hostname does not change an explicit local
    assert syslog.frame("local", "local0", "info", "m", WHEN, "haproxy", 42, "node7", 1024) == \
        syslog.frame("local", "local0", "info", "m", WHEN, "haproxy", 42, None, 1024)


def test_rfc3164_line_names_a_host():
    line = syslog.frame("rfc3164", "local0", "info", "m", WHEN, "haproxy", 42, None, 1024).decode()
    assert re.fullmatch(r"<134>[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d localhost haproxy\[42\]: m\n", line)
    line = syslog.frame("rfc3164", "local0", "info", "m", WHEN, "haproxy", 42, "node7", 1024).decode()
    assert " node7 haproxy[42]: m" in line


def test_rfc5424_line():
    data = syslog.frame("rfc5424", "local1", "notice", "x y", WHEN, "haproxy", 7, "node", 1024)
    match = RFC5424.fullmatch(data.decode().rstrip("\n"))
    assert match and match.group(1) == str(17 * 8 + 5) and match.group(3) == "node"
    assert match.group(5) == "x y"
    data = syslog.frame("rfc5424", "local1", "notice", "x y", WHEN, "haproxy", 7, None, 1024)
    assert RFC5424.fullmatch(data.decode().rstrip("\n")).group(3) == "-"


def test_timed_is_the_severity_and_an_iso_time():
    line = syslog.frame("timed", "local0", "err", "m", WHEN, "haproxy", 1, None, 1024).decode()
    assert re.fullmatch(r"<3>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}[+-]\d\d:\d\d m\n", line)


def test_raw_and_truncation():
    assert syslog.frame("raw", "local0", "info", "abc", WHEN, "haproxy", 1, None, 1024) == b"abc\n"
    data = syslog.frame("local", "local0", "info", "x" * 500, WHEN, "haproxy", 1, None, 100)
    assert len(data) == 100 and data.endswith(b"\n")


@given(st.sampled_from(sorted(syslog.FACILITIES)), st.sampled_from(sorted(syslog.SEVERITIES)),
       st.text(max_size=200), st.integers(min_value=80, max_value=2000))
def test_frames_always_parse(facility, severity, message, length):
    data = syslog.frame("local", facility, severity, message, WHEN, "haproxy", 9, None, length)
    assert len(data) <= length
    assert data.startswith(b"<%d>" % syslog.priority(facility, severity))


def test_framer_matches_frame_and_sends_hostname():
    for fmt in ("local", "rfc3164", "rfc5424", "timed", "iso", "short", "priority", "raw"):
        for name in (None, "node7"):
            framer = syslog.Framer(fmt, "local0", "haproxy", 42, name, 1024)
            assert framer.frame("info", "msg", WHEN) == syslog.frame(
                fmt, "local0", "info", "msg", WHEN, "haproxy", 42, name, 1024)
    named = syslog.Framer("rfc3164", "local0", "lb", 42, "node7", 1024)
    line = named.frame("info", "msg", WHEN).decode()
    assert re.fullmatch(r"<134>[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d node7 lb\[42\]: msg\n", line)
