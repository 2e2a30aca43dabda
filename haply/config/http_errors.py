"""`http-errors` sections of haproxy.cfg (manual 3.8): named sets of error
pages that proxies import with `errorfiles NAME [CODE...]` and that
`http-request deny|return` and `http-error` send with `errorfiles NAME`.

    http-errors openstack
        errorfile 503 /etc/haproxy/errors/503.http

    frontend horizon
        errorfiles openstack

Each file is read and checked when its line is read, as a proxy's `errorfile`
is. As in HAProxy, a proxy may name a section declared further down or in a
later file: haproxy.declare_http_errors reads them all first.

The parser in haproxy.py dispatches the lines of such a section here through
the same keyword table; haproxy.py is imported only inside functions, because
it imports this module to build its table.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from haply.config.diagnostics import Location

NAME = re.compile(r"[A-Za-z0-9_.:-]+")


def _error(message: str) -> Exception:
    from haply.config.haproxy import ParseError

    return ParseError(message)


@dataclass
class HttpErrorsState:
    name: str
    location: Location
    files: dict[int, bytes] = field(default_factory=dict)


def open_section(args: list[str], location: Location) -> HttpErrorsState:
    if len(args) != 1:
        raise _error("'http-errors' expects a name")
    if not NAME.fullmatch(args[0]):
        raise _error(f"invalid http-errors section name '{args[0]}': use letters, digits, '-', '_', '.' and ':'")
    return HttpErrorsState(args[0], location)


def close_section(state: HttpErrorsState, known: dict[str, dict[int, bytes]],
                  ahead: dict[str, Location], reading_ahead: bool = False) -> None:
    """Make the section known to proxies. `ahead` holds where the sections
    read before any proxy are (haproxy.declare_http_errors): reading one of
    them again in its turn is no second declaration."""
    if state.name in known and not (not reading_ahead and ahead.get(state.name) == state.location):
        raise _error(f"http-errors section '{state.name}' is declared twice")
    known[state.name] = dict(state.files)
    if reading_ahead:
        ahead[state.name] = state.location


def _errorfile(parser, state: HttpErrorsState, args, line, negated) -> None:
    from haply.config.haproxy import errorfile_line

    code, response = errorfile_line(parser, [w.text for w in args])
    state.files[code] = response


HANDLERS = {"errorfile": _errorfile}

__all__ = ["HANDLERS", "HttpErrorsState", "close_section", "open_section"]
