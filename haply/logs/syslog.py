"""Syslog framing, pure: a message and a time in, the datagram's bytes out.

HAProxy's formats, as HAProxy 2.6 writes them (observed):

* local, its default: RFC 3164 without a host name, "<PRI>Mmm dd hh:mm:ss
  TAG[PID]: MSG";
* rfc3164: the same with a HOSTNAME field, `log-send-hostname`'s name, else
  "localhost" (`log-send-hostname` makes it the default format);
* rfc5424: "<PRI>1 TIMESTAMP HOST APP PROCID MSGID SD MSG", HOST "-" unless
  `log-send-hostname` names one;
* short "<SEVERITY>MSG", priority "<PRI>MSG", timed "<SEVERITY>TIMESTAMP
  MSG", iso "TIMESTAMP MSG" (RFC 5424's time stamp), raw (the message alone,
  for stdout in containers).

PRI = facility * 8 + severity (RFC 5424 §6.2.1). A line longer than `len` is
truncated, as HAProxy truncates it.
"""

from __future__ import annotations

import time

FACILITIES = {
    "kern": 0, "user": 1, "mail": 2, "daemon": 3, "auth": 4, "syslog": 5, "lpr": 6,
    "news": 7, "uucp": 8, "cron": 9, "auth2": 10, "ftp": 11, "ntp": 12, "audit": 13,
    "alert": 14, "cron2": 15, "local0": 16, "local1": 17, "local2": 18, "local3": 19,
    "local4": 20, "local5": 21, "local6": 22, "local7": 23,
}
SEVERITIES = {"emerg": 0, "alert": 1, "crit": 2, "err": 3, "warning": 4, "notice": 5,
              "info": 6, "debug": 7}
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def priority(facility: str, severity: str) -> int:
    return FACILITIES[facility] * 8 + SEVERITIES[severity]


def rfc3164_time(now: float) -> str:
    t = time.localtime(now)
    return f"{MONTHS[t.tm_mon - 1]} {t.tm_mday:2d} {t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d}"


def rfc5424_time(now: float) -> str:
    t = time.localtime(now)
    micro = int((now % 1) * 1_000_000)
    offset = t.tm_gmtoff
    sign = "+" if offset >= 0 else "-"
    offset = abs(offset)
    return (f"{t.tm_year:04d}-{t.tm_mon:02d}-{t.tm_mday:02d}T{t.tm_hour:02d}:{t.tm_min:02d}:"
            f"{t.tm_sec:02d}.{micro:06d}{sign}{offset // 3600:02d}:{offset % 3600 // 60:02d}")


def encode_line(line: str) -> bytes:
    """A line's bytes: what came from the wire is written as it came (its
    bytes that are not UTF-8 are in the text as lone surrogates)."""
    try:
        return line.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # a surrogate no wire byte makes
        return line.encode("utf-8", "replace")


def frame(fmt: str, facility: str, severity: str, message: str, now: float, tag: str,
          pid: int, hostname: str | None, length: int) -> bytes:
    """The bytes of one syslog line, ending with a newline as HAProxy's do;
    hostname: `log-send-hostname`'s name (None when not set)."""
    if fmt == "raw":
        line = message
    elif fmt == "rfc5424":
        line = (f"<{priority(facility, severity)}>1 {rfc5424_time(now)} {hostname or '-'} "
                f"{tag} {pid} - - {message}")
    elif fmt == "short":
        line = f"<{SEVERITIES[severity]}>{message}"
    elif fmt == "priority":
        line = f"<{priority(facility, severity)}>{message}"
    elif fmt == "timed":
        line = f"<{SEVERITIES[severity]}>{rfc5424_time(now)} {message}"
    elif fmt == "iso":
        line = f"{rfc5424_time(now)} {message}"
    else:
        line = _rfc3164_head(fmt, facility, severity, now, tag, pid, hostname) + message
    data = encode_line(line)
    if len(data) >= length:
        data = data[:length - 1]
    return data + b"\n"


def _rfc3164_head(fmt: str, facility: str, severity: str, now: float, tag: str, pid: int,
                  hostname: str | None) -> str:
    host = f"{hostname or 'localhost'} " if fmt == "rfc3164" else ""
    return f"<{priority(facility, severity)}>{rfc3164_time(now)} {host}{tag}[{pid}]: "


class Framer:
    """frame() for one target, with the RFC 3164 header text kept for the
    current second (a busy proxy writes thousands of lines with the same
    time stamp)."""

    __slots__ = ("fmt", "facility", "tag", "pid", "hostname", "length", "_from", "_until",
                 "_heads", "kept")

    def __init__(self, fmt: str, facility: str, tag: str, pid: int, hostname: str | None,
                 length: int):
        self.fmt = fmt
        self.facility = facility
        self.tag = tag
        self.pid = pid
        self.hostname = hostname  # `log-send-hostname`'s name, or None
        self.length = length
        # The second whose heads are kept, as times: [_from, _until).
        self._from = self._until = 0.0
        self._heads: dict[str, str] = {}
        self.kept = fmt in ("rfc3164", "local")

    def frame(self, severity: str, message: str, now: float) -> bytes:
        if not self.kept:
            return frame(self.fmt, self.facility, severity, message, now, self.tag, self.pid,
                         self.hostname, self.length)
        if not self._from <= now < self._until:  # compared as times: no int() per line
            second = int(now)
            self._from = float(second)
            self._until = second + 1.0
            self._heads = {}
        head = self._heads.get(severity)
        if head is None:
            head = self._heads[severity] = _rfc3164_head(
                self.fmt, self.facility, severity, self._from, self.tag, self.pid, self.hostname)
        data = encode_line(f"{head}{message}\n")
        if len(data) > self.length:
            data = data[:self.length - 1] + b"\n"
        return data
