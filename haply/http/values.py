"""The values inside header fields, as HAProxy's fetches read them: the
comma-separated values of `hdr()` and `req.hdr()` (manual 7.3.6: "considers
any comma as a delimiter for distinct values"), and the cookies of `cook()`.

A comma inside a double-quoted string does not separate (RFC 9110 §5.6.4;
HAProxy 2.6 keeps `"x, y"` whole), and the spaces and tabs around each value
go. A field without a quote, the usual case, is one split.
"""

from __future__ import annotations

from collections.abc import Iterable

_OWS = " \t"


def comma_values(fields: Iterable[str]) -> list[str]:
    values: list[str] = []
    for field in fields:
        if '"' not in field:
            values.extend(part.strip(_OWS) for part in field.split(","))
            continue
        start, quoted, index, size = 0, False, 0, len(field)
        while index < size:
            char = field[index]
            if char == '"':
                quoted = not quoted
            elif char == "\\" and quoted:
                index += 1  # a quoted pair: the next character is taken as is
            elif char == "," and not quoted:
                values.append(field[start:index].strip(_OWS))
                start = index + 1
            index += 1
        values.append(field[start:].strip(_OWS))
    return values


def cookie_values(fields: Iterable[str], name: str) -> list[str]:
    """The value of every cookie called name in Cookie fields, in order."""
    found = []
    for field in fields:
        for pair in field.split(";"):
            key, equals, value = pair.partition("=")
            if equals and key.strip(_OWS) == name:
                found.append(value.strip(_OWS))
    return found
