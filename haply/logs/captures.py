"""`capture request header`, `capture response header` and `capture cookie`:
what a frontend's log lines show between braces (%hr, %hs) and as %CC / %CS.
The slots of `declare capture` and `http-request|http-response capture` sit
among the header ones, in the order of the lines, and are filled by those
rules (haply.proxy.samples.CaptureStep).

Pure: a request's or response's fields in, the captured texts out, stored on the
request for the log line. As in HAProxy 2.6 (tests/integration/test_logs.py
compares the lines): a header capture keeps the last occurrence of the field, cut
to its `len`; a cookie capture keeps "name=value" of the first cookie whose name
begins with the configured name, cut to `len`; in the log, bytes that would
break the line's structure or are not printable ASCII are written `#XX`.
"""

from __future__ import annotations

from haply.config.model import Capture

# HAProxy's encoding of captured text: control bytes, DEL and above, and the
# characters that delimit captures in a line.
_ESCAPED = frozenset(range(0x20)) | frozenset(range(0x7F, 0x100)) | frozenset(b'"#{|}')
_ENCODING = tuple(f"#{b:02X}" if b in _ESCAPED else chr(b) for b in range(256))


def encode(value: bytes, length: int) -> str:
    return "".join([_ENCODING[b] for b in value[:length]])


class Captures:
    """One frontend's capture lines, compiled."""

    __slots__ = ("request_headers", "response_headers", "cookie", "cookie_length")

    def __init__(self, captures: tuple[Capture, ...]):
        # every slot, in the order of the lines: (field name, or None for a
        # capture rule's slot, and its length)
        self.request_headers = tuple((c.name.lower().encode() or None, c.length)
                                     for c in captures if c.kind == "request")
        self.response_headers = tuple((c.name.lower().encode() or None, c.length)
                                      for c in captures if c.kind == "response")
        cookie = next((c for c in captures if c.kind == "cookie"), None)
        self.cookie = cookie.name.encode() if cookie is not None else None
        self.cookie_length = cookie.length if cookie is not None else 0

    @staticmethod
    def compile(captures: tuple[Capture, ...]) -> "Captures | None":
        return Captures(captures) if captures else None

    def on_request(self, request, fields: list[tuple[bytes, bytes]]) -> None:
        if self.request_headers:  # (a list: capture rules fill their slots later)
            request.captured_request = _headers(self.request_headers, fields)
        if self.cookie is not None:
            request.captured_cookie = self._cookie(fields, b"cookie", b";")

    def on_response(self, request, fields: list[tuple[bytes, bytes]]) -> None:
        if self.response_headers:
            request.captured_response = _headers(self.response_headers, fields)
        if self.cookie is not None:
            request.captured_set_cookie = self._cookie(fields, b"set-cookie", None)

    def _cookie(self, fields: list[tuple[bytes, bytes]], field_name: bytes,
                separator: bytes | None) -> str:
        """"name=value" of the first cookie whose name begins with ours ("" if none).
        A Cookie field lists pairs; a Set-Cookie field sets one, its attributes
        after the first ';'."""
        prefix = self.cookie
        for name, value in fields:
            if len(name) != len(field_name) or name.lower() != field_name:
                continue
            pairs = value.split(separator) if separator is not None else [value.split(b";", 1)[0]]
            for pair in pairs:
                pair = pair.strip()
                if pair.startswith(prefix) and b"=" in pair:
                    return encode(pair, self.cookie_length)
        return ""


def _headers(wanted: tuple[tuple[bytes | None, int], ...], fields: list[tuple[bytes, bytes]]
             ) -> list[str]:
    found: dict[bytes, bytes] = {}
    names = {name for name, _ in wanted}
    for name, value in fields:
        lname = name.lower()
        if lname in names:
            found[lname] = value  # the last occurrence wins
    return [encode(found[name], length) if name in found else ""
            for name, length in wanted]


# ------------------------------------------------------------------ log rendering


def escaped(text: str) -> str:
    """log-format's `+E`: '"', '\\' and ']' behind a backslash (the line's
    own quotes and brackets stay unambiguous)."""
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("]", "\\]")


def _values(values: tuple[str, ...] | None, count: int, escape: bool) -> tuple[str, ...]:
    if values is None:
        return ("",) * count
    if escape:  # value by value, inside the braces or quotes
        return tuple(map(escaped, values))
    return values


def braces(values: tuple[str, ...] | None, count: int, escape: bool = False) -> str:
    """%hr / %hs: {first|second}."""
    return "{" + "|".join(_values(values, count, escape)) + "}"


def spaced(values: tuple[str, ...] | None, count: int, escape: bool = False) -> str:
    """%hrl / %hsl: first second."""
    return " ".join(_values(values, count, escape))


def quoted(values: tuple[str, ...] | None, count: int, escape: bool = False) -> str:
    """%hrl / %hsl under `+Q` (as in CLF): "first" "second"."""
    return " ".join(f'"{v}"' for v in _values(values, count, escape))
