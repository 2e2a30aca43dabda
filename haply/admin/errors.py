"""Rejected requests kept for `show errors`: who sent what, and the byte where
parsing failed.

Only the error path pays for this: the position is found after the fact by
reading growing prefixes of the captured bytes as the proxy reads them (a
binary search, about 14 parses of at most one buffer), never while parsing
traffic.
"""

from __future__ import annotations

import time
from typing import NamedTuple

import httptools

from haply.http.repair import passes_llhttp, refused

# HAProxy's buffer size (tune.bufsize): at most this much of a request is kept.
CAPTURE_LIMIT = 16384


class CapturedError(NamedTuple):
    client_ip: str
    reason: str
    when: float = 0.0
    frontend: str = ""
    frontend_id: int = -1
    client_port: int | str = ""
    data: bytes = b""
    position: int | None = None


def error_position(data: bytes) -> int | None:
    """Offset of the first byte refused (repair.refused), or None if every byte is
    accepted (the request was refused for another reason: size, timeout).
    The bytes that pass llhttp pass the proxy: those cost one parse."""
    if not data or passes_llhttp(data) or not refused(data):
        return None
    low, high = 0, len(data)  # data[:low] passes, data[:high] is refused
    while high - low > 1:
        middle = (low + high) // 2
        if refused(data[:middle]):
            high = middle
        else:
            low = middle
    return low


def capture(client_ip: str, reason: str, data: bytes = b"", session=None) -> CapturedError:
    data = bytes(data[:CAPTURE_LIMIT])
    frontend = getattr(session, "frontend", None)
    context = getattr(session, "context", None)
    port = getattr(context, "src_port", "") if context is not None else ""
    if isinstance(port, bytes):
        port = port.decode("latin-1")
    proxy = getattr(frontend, "proxy", None)
    return CapturedError(client_ip, reason, time.time(), getattr(frontend, "name", ""),
                         getattr(proxy, "id", None) or -1, port, data, error_position(data))


def dump(data: bytes) -> list[str]:
    """HAProxy's `show errors` dump: lines cut after each LF, offset first,
    non-printable bytes escaped."""
    lines, start = [], 0
    while start < len(data):
        end = data.find(b"\n", start)
        end = len(data) if end < 0 else end + 1
        chunk = data[start:end]
        text = "".join(
            {0x0d: "\\r", 0x0a: "\\n", 0x09: "\\t"}.get(b, chr(b) if 0x20 <= b < 0x7f else f"\\x{b:02x}")
            for b in chunk)
        lines.append(f"  {start:05d}  {text}")
        start = end
    return lines
