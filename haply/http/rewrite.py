"""Rewriting in place: the request line (`http-request set-method|set-path|
set-pathq|set-query|set-uri|replace-path|replace-pathq|replace-uri`) and a
field's value (`replace-header`, `replace-value`, requests and responses).

Pure: the values come from `haply.http.headers.compile_value` (literal text
or a function of the request), the regular expressions are compiled once at
load time. As in HAProxy, a match-regex is searched for anywhere in its
subject, and on a match the whole subject becomes the replacement: the
replace-fmt is evaluated first (log-format), then its back-references
(\\1 ... \\9) take the groups of the match.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# The request-line actions, and which of them take a match-regex.
LINE_ACTIONS = frozenset({"set-method", "set-path", "set-pathq", "set-query", "set-uri",
                          "replace-path", "replace-pathq", "replace-uri"})
REGEX_LINE_ACTIONS = frozenset({"replace-path", "replace-pathq", "replace-uri"})
FIELD_ACTIONS = frozenset({"replace-header", "replace-value"})

_ESCAPES = {ord("r"): b"\r", ord("n"): b"\n", ord("t"): b"\t", ord("\\"): b"\\"}
# What a request target or a method may hold once rewritten: no space and no
# control character, which would break the request line sent to the server.
_LINE_OK = bytes(range(0x21, 0x7F)) + bytes(range(0x80, 0x100))


def compile_regex(pattern: str) -> re.Pattern[bytes]:
    """A match-regex from configuration, or ValueError saying why not."""
    try:
        return re.compile(pattern.encode("latin-1"))
    except (re.error, UnicodeEncodeError) as exc:
        raise ValueError(f"invalid regular expression {pattern!r}: {exc}") from None


def expand(template: bytes, match: re.Match[bytes]) -> bytes:
    """The replacement: \\N is group N (empty when it did not take part),
    \\r \\n \\t \\\\ and \\xHH are the bytes they name, a backslash before
    any other character stands for that character."""
    if b"\\" not in template:
        return template
    out = bytearray()
    i, size = 0, len(template)
    while i < size:
        byte = template[i]
        if byte != 0x5C or i + 1 == size:  # not a backslash, or a last one
            out.append(byte)
            i += 1
            continue
        nxt = template[i + 1]
        if 0x30 <= nxt <= 0x39:
            group = nxt - 0x30
            if group <= (match.re.groups or 0):
                out += match.group(group) or b""
            i += 2
        elif nxt == 0x78 and _is_hex(template[i + 2:i + 4]):  # \xHH
            out.append(int(template[i + 2:i + 4], 16))
            i += 4
        else:
            out += _ESCAPES.get(nxt, bytes((nxt,)))
            i += 2
    return bytes(out)


def _is_hex(pair: bytes) -> bool:
    return len(pair) == 2 and all(c in b"0123456789abcdefABCDEF" for c in pair)


def _value(value, request) -> bytes:
    return value if value.__class__ is bytes else value(request)


# ------------------------------------------------------------- request line


def split_target(url: bytes) -> tuple[bytes, bytes, bytes]:
    """(scheme and authority, path, "?query") of a request target: an
    absolute form keeps its "http://host" apart, as HAProxy's path does."""
    start = 0
    if not url.startswith(b"/"):
        scheme = url.find(b"://")
        if scheme > 0:
            slash = url.find(b"/", scheme + 3)
            start = len(url) if slash < 0 else slash
    cut = url.find(b"?", start)
    if cut < 0:
        return url[:start], url[start:], b""
    return url[:start], url[start:cut], url[cut:]


@dataclass(frozen=True, slots=True)
class LineRewrite:
    """One compiled request-line rule; `apply` changes the request (not when
    the result would be empty or hold a space or a control character)."""

    kind: str
    value: object  # bytes, or a function of the request
    regex: re.Pattern[bytes] | None = None
    action = "rewrite"  # what the rule lists that hold it see (haply.proxy.conditions)

    def apply(self, request) -> None:
        kind = self.kind
        if kind == "set-method":
            method = _value(self.value, request)
            if method and not method.translate(None, _LINE_OK):
                request.method_bytes = method
                request.plain = False
            return
        url = request.url
        prefix, path, query = split_target(url)
        if kind == "set-uri":
            url = _value(self.value, request)
        elif kind == "set-path":
            url = prefix + _value(self.value, request) + query
        elif kind == "set-pathq":
            url = prefix + _value(self.value, request)
        elif kind == "set-query":
            url = prefix + path + b"?" + _value(self.value, request)
        else:
            subject = url if kind == "replace-uri" else \
                path if kind == "replace-path" else path + query
            match = self.regex.search(subject)
            if match is None:
                return
            new = expand(_value(self.value, request), match)
            url = new if kind == "replace-uri" else \
                prefix + new + query if kind == "replace-path" else prefix + new
        if url != request.url and url and not url.translate(None, _LINE_OK):
            request.url = url
            request.plain = False  # the head can no longer go out as received


# ------------------------------------------------------------------- fields


def replace_header(value: bytes, regex: re.Pattern[bytes], replacement, request) -> bytes | None:
    """replace-header: the field's new value, or None when the regex does
    not match it."""
    match = regex.search(value)
    if match is None:
        return None
    return expand(_value(replacement, request), match)


def replace_values(value: bytes, regex: re.Pattern[bytes], replacement, request) -> bytes | None:
    """replace-value: each comma-separated value (quoted commas excepted) is
    matched without the spaces around it; a matching one is replaced, spaces
    included, the others are kept as they were. None when none matched."""
    pieces = _split_values(value)
    changed = False
    for index, piece in enumerate(pieces):
        match = regex.search(piece.strip(b" \t"))
        if match is not None:
            pieces[index] = expand(_value(replacement, request), match)
            changed = True
    return b",".join(pieces) if changed else None


def _split_values(value: bytes) -> list[bytes]:
    pieces = []
    start = 0
    quoted = False
    i = 0
    size = len(value)
    while i < size:
        byte = value[i]
        if byte == 0x22:  # "
            quoted = not quoted
        elif byte == 0x5C and quoted:  # a quoted-pair
            i += 1
        elif byte == 0x2C and not quoted:  # ,
            pieces.append(value[start:i])
            start = i + 1
        i += 1
    pieces.append(value[start:])
    return pieces
