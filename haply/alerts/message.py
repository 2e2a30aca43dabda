"""What an e-mail alert says, and which changes are mailed at which level.

The text is the log line of the change without its final period; HAProxy 2.6
sends it as the subject, after "[HAProxy Alert] ", and as the one line of the
body (observed):

    From: haproxy@lb1.example.org
    To: ops@example.org
    Date: Sat, 05 Dec 2026 12:17:20 +0000 (UTC)
    Subject: [HAProxy Alert] Server app/s1 is DOWN, reason: Layer4 connection problem, ...

    Server app/s1 is DOWN, reason: Layer4 connection problem, ...

The levels are those HAProxy logs the changes at: a server going DOWN is
alert, one coming UP or entering drain is notice, the health check lines of
`option log-health-checks` are info. `email-alert level L` mails what is
logged at L or a more severe level (manual 4.2).
"""

from __future__ import annotations

import time

from haply.config.mailers import DEFAULT_LEVEL

SUBJECT_PREFIX = "[HAProxy Alert] "
# Most severe first, as syslog numbers them (RFC 5424 6.2.1).
LEVELS = ("emerg", "alert", "crit", "err", "warning", "notice", "info", "debug")
RANK = {name: rank for rank, name in enumerate(LEVELS)}

DOWN_LEVEL = "alert"
UP_LEVEL = "notice"
DRAIN_LEVEL = "notice"
CHECK_LEVEL = "info"


def wanted(level: str, configured: str = DEFAULT_LEVEL) -> bool:
    """Whether a change logged at `level` is mailed under `email-alert level configured`."""
    return RANK[level] <= RANK[configured]


def alert_text(log_line: str) -> str:
    """The log line as the mail says it: without its final period."""
    return log_line[:-1] if log_line.endswith(".") else log_line


def date_header(when: float) -> str:
    """RFC 5322 3.3 date in local time, with the zone's name after it as
    HAProxy writes it: "Sat, 05 Dec 2026 12:17:20 +0000 (UTC)"."""
    return time.strftime("%a, %d %b %Y %H:%M:%S %z (%Z)", time.localtime(when))


def compose(sender: str, recipient: str, text: str, when: float) -> bytes:
    """The DATA of one alert, up to and with its final "." line.

    A line starting with "." is doubled (RFC 5321 4.5.2); an alert's text is
    one line, cut at any line break so that it cannot end the data early or
    add headers.
    """
    text = text.replace("\r", " ").replace("\n", " ")
    body = "." + text if text.startswith(".") else text
    lines = (
        f"From: {sender}",
        f"To: {recipient}",
        f"Date: {date_header(when)}",
        f"Subject: {SUBJECT_PREFIX}{text}",
        "",
        body,
        "",
        ".",
    )
    return ("\r\n".join(lines) + "\r\n").encode("utf-8", "replace")


__all__ = ["CHECK_LEVEL", "DOWN_LEVEL", "DRAIN_LEVEL", "LEVELS", "SUBJECT_PREFIX", "UP_LEVEL", "alert_text",
           "compose", "date_header", "wanted"]
