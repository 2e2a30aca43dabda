"""`cache` sections of haproxy.cfg -> model.CacheSection (manual 6.2.1).

    cache static
        total-max-size 64
        max-object-size 1048576
        max-age 300

    backend horizon
        http-request cache-use static
        http-response cache-store static

The limits and the messages follow `haproxy -c` (2.6): the size is
mandatory, at most 4095 MB; max-object-size at most half of it (a 256th by
default); max-secondary-entries strictly positive. HAProxy only warns about a
`max-age` or `process-vary` it cannot read and keeps its default; so does
haply.

The parser in haproxy.py dispatches the lines of such a section here through
the same keyword table; haproxy.py is imported only inside functions, because
it imports this module to build its table.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from haply.config.diagnostics import Location
from haply.config.model import CacheSection

NAME = re.compile(r"[A-Za-z0-9_.:-]+")
MAX_TOTAL_MB = 4095  # manual 6.2.1 "total-max-size"
MEGABYTE = 1024 * 1024
DEFAULT_MAX_AGE = 60
DEFAULT_SECONDARY_ENTRIES = 10
# "If not set, it equals to a 256th of the cache size."
DEFAULT_OBJECT_SHARE = 256


def _error(message: str) -> Exception:
    from haply.config.haproxy import ParseError

    return ParseError(message)


@dataclass
class CacheState:
    name: str
    location: Location
    total_mb: int = 0
    max_object_size: int = 0
    max_age: int = DEFAULT_MAX_AGE
    process_vary: bool = False
    max_secondary_entries: int = DEFAULT_SECONDARY_ENTRIES

    def freeze(self) -> CacheSection:
        total = self.total_mb * MEGABYTE
        return CacheSection(self.name, total, self.max_object_size or total // DEFAULT_OBJECT_SHARE,
                            self.max_age, self.process_vary, self.max_secondary_entries, self.location)


def open_section(args: list[str], location: Location) -> CacheState:
    if not args:
        raise _error("'cache' expects a <name> argument")
    if len(args) > 1:
        raise _error(f"'cache' cannot handle unexpected argument '{args[1]}'")
    if not NAME.fullmatch(args[0]):
        raise _error(f"invalid cache name '{args[0]}': use letters, digits, '-', '_', '.' and ':'")
    return CacheState(args[0], location)


def close_section(state: CacheState, known: dict[str, CacheSection]) -> CacheSection:
    if state.name in known:
        raise _error(f"Duplicate cache name '{state.name}' (first at {known[state.name].location})")
    if not state.total_mb:
        raise _error(f"Size not specified for cache '{state.name}': 'total-max-size' is mandatory")
    section = state.freeze()
    if section.max_object_size > section.total_max_size // 2:
        raise _error(f"cache '{state.name}': \"max-object-size\" is limited to an half of "
                     f"\"total-max-size\" => {section.total_max_size // 2}")
    known[state.name] = section
    return section


def _number(keyword: str, args) -> int:
    words = [w.text for w in args]
    if not words:
        raise _error(f"'{keyword}' expects a number")
    if len(words) > 1:
        raise _error(f"'{keyword}' cannot handle unexpected argument '{words[1]}'")
    if not words[0].isdigit():
        raise _error(f"{keyword} wrong value '{words[0]}': expected a number")
    return int(words[0])


def _total_max_size(parser, state: CacheState, args, line, negated) -> None:
    size = _number("total-max-size", args)
    if size > MAX_TOTAL_MB:
        raise _error(f"\"total-max-size\" ({size}) must not be greater than {MAX_TOTAL_MB}")
    state.total_mb = size


def _max_object_size(parser, state: CacheState, args, line, negated) -> None:
    state.max_object_size = _number("max-object-size", args)


def _max_age(parser, state: CacheState, args, line, negated) -> None:
    words = [w.text for w in args]
    if not words or not words[0].isdigit():
        parser.diagnostics.warning(line.location, "'max-age' expects an age parameter in seconds "
                                   f"(keeping {state.max_age})")
        return
    state.max_age = _number("max-age", args)


def _process_vary(parser, state: CacheState, args, line, negated) -> None:
    words = [w.text for w in args]
    if words not in (["on"], ["off"]):
        parser.diagnostics.warning(line.location, "'process-vary' expects \"on\" or \"off\" "
                                   "(enable or disable vary processing)")
        return
    state.process_vary = words == ["on"]


def _max_secondary_entries(parser, state: CacheState, args, line, negated) -> None:
    count = _number("max-secondary-entries", args)
    if count < 1:
        raise _error(f"max-secondary-entries wrong value '{count}': it must be strictly positive")
    state.max_secondary_entries = count


HANDLERS = {
    "total-max-size": _total_max_size, "max-object-size": _max_object_size, "max-age": _max_age,
    "process-vary": _process_vary, "max-secondary-entries": _max_secondary_entries,
}

__all__ = ["CacheState", "HANDLERS", "close_section", "open_section"]
