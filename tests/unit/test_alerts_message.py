"""The text of an e-mail alert and the levels changes are mailed at
(haply.alerts.message). The expected bytes are those HAProxy 2.6 sent for
the same change (captured with a recording SMTP server)."""

from __future__ import annotations

import os
import time

import pytest

from haply.alerts.message import alert_text, compose, date_header, wanted

DOWN = ('Server app/s1 is DOWN, reason: Layer4 connection problem, info: "Connection refused", '
        'check duration: 0ms. 0 active and 0 backup servers left. 0 sessions active, 0 requeued, '
        '0 remaining in queue.')


@pytest.fixture
def utc():
    before = os.environ.get("TZ")
    os.environ["TZ"] = "UTC"
    time.tzset()
    yield
    if before is None:
        del os.environ["TZ"]
    else:
        os.environ["TZ"] = before
    time.tzset()


def test_the_message_is_the_log_line_as_subject_and_body(utc):
    when = 1796473040.5  # Sat, 05 Dec 2026 12:17:20 UTC
    text = alert_text(DOWN)
    assert compose("haproxy@example.org", "ops@example.org", text, when) == (
        b"From: haproxy@example.org\r\n"
        b"To: ops@example.org\r\n"
        b"Date: Sat, 05 Dec 2026 12:17:20 +0000 (UTC)\r\n"
        b"Subject: [HAProxy Alert] " + text.encode() + b"\r\n"
        b"\r\n" + text.encode() + b"\r\n"
        b"\r\n"
        b".\r\n")
    assert text == DOWN[:-1]  # HAProxy's mail has no final period


def test_the_date_is_local_time_with_its_zone(utc):
    assert date_header(0) == "Thu, 01 Jan 1970 00:00:00 +0000 (UTC)"
    os.environ["TZ"] = "CET-1"
    time.tzset()
    assert date_header(0) == "Thu, 01 Jan 1970 01:00:00 +0100 (CET)"


def test_a_line_break_cannot_add_headers_or_end_the_data(utc):
    data = compose("a@example.org", "b@example.org", ".odd\r\n.\r\nX-Injected: yes", 0)
    lines = data.split(b"\r\n")
    assert b"Subject: [HAProxy Alert] .odd  .  X-Injected: yes" in lines
    assert b"..odd  .  X-Injected: yes" in lines  # RFC 5321 4.5.2 dot-stuffing
    assert lines.count(b".") == 1 and data.endswith(b"\r\n.\r\n")


@pytest.mark.parametrize("configured, mailed", [
    ("emerg", set()), ("alert", {"alert"}), ("crit", {"alert"}), ("err", {"alert"}),
    ("warning", {"alert"}), ("notice", {"alert", "notice"}), ("info", {"alert", "notice", "info"}),
    ("debug", {"alert", "notice", "info"}),
])
def test_levels_filter_as_the_manual_says(configured, mailed):
    # a server DOWN is logged at alert, UP and drain at notice, the health
    # check lines of option log-health-checks at info
    assert {level for level in ("alert", "notice", "info") if wanted(level, configured)} == mailed
    assert {level for level in ("alert", "notice", "info") if wanted(level)} == {"alert"}  # the default
