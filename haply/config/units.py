"""Numbers with units, as HAProxy writes them.

Times (manual 2.5): an integer followed by one of us, ms, s, m, h, d; a bare
number is milliseconds. The model stores seconds as float. Sizes: an integer
optionally followed by k, m or g (powers of 1024, as HAProxy's size parser
uses), stored as bytes.

Every function raises `UnitError` whose message names the bad value and says what
was expected; the parser adds file:line.
"""

from __future__ import annotations

import re

# Seconds per unit, manual section 2.5 "Time format".
TIME_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
SIZE_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}

_TIME = re.compile(r"([0-9]+)(us|ms|s|m|h|d)?")
_SIZE = re.compile(r"([0-9]+)([kKmMgG]?)")


class UnitError(ValueError):
    pass


def parse_time(text: str, what: str = "time") -> float:
    """'10s' -> 10.0, '2000' -> 2.0, '1m' -> 60.0, '500us' -> 0.0005."""
    match = _TIME.fullmatch(text)
    if not match:
        raise UnitError(
            f"invalid {what} '{text}': expected a whole number with an optional unit "
            "among us, ms, s, m, h, d (a bare number is milliseconds), e.g. 5s or 2000"
        )
    value, unit = match.groups()
    return int(value) * TIME_UNITS[unit or "ms"]


def parse_size(text: str, what: str = "size") -> int:
    """'16k' -> 16384, '1m' -> 1048576, '512' -> 512."""
    match = _SIZE.fullmatch(text)
    if not match:
        raise UnitError(
            f"invalid {what} '{text}': expected a whole number of bytes with an "
            "optional unit among k, m, g, e.g. 16k"
        )
    value, unit = match.groups()
    return int(value) * SIZE_UNITS[unit.lower()]


def parse_int(text: str, what: str = "number", low: int | None = None, high: int | None = None) -> int:
    """A decimal integer, optionally bounded (both bounds included)."""
    if not re.fullmatch(r"-?[0-9]+", text):
        raise UnitError(f"invalid {what} '{text}': expected a whole number")
    value = int(text)
    if (low is not None and value < low) or (high is not None and value > high):
        bounds = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise UnitError(f"{what} '{text}' is out of range: expected {bounds}")
    return value


def parse_port(text: str, what: str = "port") -> int:
    """A TCP/UDP port, 1-65535."""
    return parse_int(text, what, 1, 65535)


__all__ = ["SIZE_UNITS", "TIME_UNITS", "UnitError", "parse_int", "parse_port", "parse_size", "parse_time"]
