"""The `json(<input-code>)` converter of log-format samples: a value as the
inside of a JSON string, in ASCII.

Pure. The value is a log line's text: bytes that came from the wire are in it
as UTF-8, and bytes that are not UTF-8 as lone surrogates ("surrogateescape"),
so that the line is written with the bytes the client sent. The converter works
on those bytes, as HAProxy 2.6's does (its documentation, section 7.3.1, and
its output on the same values, compared in tests/interop/test_log_format_oracle.py):

- `ascii` (the default) takes each byte as a character;
- `utf8` decodes UTF-8 and fails on any error: a bad sequence (a lone
  continuation byte, a sequence cut short), a value in a forbidden range (a
  surrogate, above U+10FFFF), an overlong form, or a character above U+FFFF,
  which a JSON `\\uXXXX` escape cannot hold;
- `utf8s` removes what is in error instead of failing; `utf8p` decodes an
  overlong form as its value and fails on the other errors; `utf8ps` does both.

A failed conversion is None: the log writes '-' for it, as for a missing
sample. The five- and six-byte forms of the original UTF-8 are decoded (and
then are overlong or out of range).
"""

from __future__ import annotations

INPUT_CODES = ("ascii", "utf8", "utf8s", "utf8p", "utf8ps")

_SHORT = {0x22: '\\"', 0x5C: "\\\\", 0x2F: "\\/", 0x08: "\\b", 0x0C: "\\f", 0x0A: "\\n",
          0x0D: "\\r", 0x09: "\\t"}
# The JSON text of each character a byte can be: itself, a short escape, or \u00XX.
_BYTE_TEXT = tuple(_SHORT.get(b) or (chr(b) if 0x20 <= b < 0x7F else f"\\u{b:04x}")
                   for b in range(256))
# A lead byte's sequence length and the least value that needs that length.
_LEADS = {**{b: (2, 0x80) for b in range(0xC0, 0xE0)},
          **{b: (3, 0x800) for b in range(0xE0, 0xF0)},
          **{b: (4, 0x10000) for b in range(0xF0, 0xF8)},
          **{b: (5, 0x200000) for b in range(0xF8, 0xFC)},
          **{b: (6, 0x4000000) for b in range(0xFC, 0xFE)}}


def json_text(value: str, input_code: str = "ascii") -> str | None:
    data = value.encode("utf-8", "surrogateescape")
    if input_code == "ascii" or data.isascii():
        return "".join([_BYTE_TEXT[b] for b in data])
    remove = input_code.endswith("s")  # else an error fails the conversion
    fix_overlong = input_code in ("utf8p", "utf8ps")
    out: list[str] = []
    i, n = 0, len(data)
    while i < n:
        byte = data[i]
        if byte < 0x80:
            out.append(_BYTE_TEXT[byte])
            i += 1
            continue
        decoded, i = _decode(data, i)
        if decoded is not None:
            code_point, least = decoded
            if code_point < least and fix_overlong:
                least = 0
            if code_point >= least and not 0xD800 <= code_point <= 0xDFFF and code_point <= 0xFFFF:
                out.append(_BYTE_TEXT[code_point] if code_point < 0x80 else f"\\u{code_point:04x}")
                continue
        if not remove:
            return None
    return "".join(out)


def _decode(data: bytes, start: int) -> tuple[tuple[int, int] | None, int]:
    """The sequence at start (its lead byte is not ASCII): ((value, least value
    of its length), next index), or (None, next index) for a bad sequence,
    which ends before the first byte that does not continue it."""
    lead = data[start]
    shape = _LEADS.get(lead)
    if shape is None:  # a continuation byte alone, or 0xFE / 0xFF
        return None, start + 1
    length, least = shape
    value = lead & (0x7F >> length)
    i = start + 1
    end = start + length
    while i < end:
        if i >= len(data) or data[i] & 0xC0 != 0x80:
            return None, i
        value = (value << 6) | (data[i] & 0x3F)
        i += 1
    return (value, least), i
