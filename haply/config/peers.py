"""`peers` sections of haproxy.cfg -> model.PeersSection (manual 3.5).

    peers lbs
        peer lb1 192.0.2.11:10000
        peer lb2 192.0.2.12:10000

    backend galera
        stick-table type ip size 1000 peers lbs
        stick on dst

Both spellings are read: `peer NAME ADDR:PORT` lines, where the one named like
the local peer (`localpeer`, `-L`, else the host name) is where this node
listens; and `bind ADDR:PORT` with `server NAME [ADDR:PORT]` lines, where the
local one has no address. The tables are synchronised by haply.peers.

The parser in haproxy.py dispatches lines of a peers section here through the
same keyword table; handlers share its signature (parser, state, args, line,
negated). haproxy.py is imported only inside functions: it imports this module
to build its table.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from haply.config.diagnostics import Location
from haply.config.model import Peer, PeersSection

NAME = re.compile(r"[A-Za-z0-9_.:-]+")


def _error(message: str) -> Exception:
    from haply.config.haproxy import ParseError

    return ParseError(message)


def _address(text: str, what: str) -> tuple[str, int]:
    from haply.config.haproxy import _host_port

    host, port = _host_port(text, what, True)
    return host or "0.0.0.0", int(port)


@dataclass
class PeersState:
    """A peers section while it is read."""

    name: str
    location: Location
    peers: dict[str, Peer] = field(default_factory=dict)
    bind: tuple[str, int] | None = None
    disabled: bool = False

    def freeze(self) -> PeersSection:
        return PeersSection(self.name, tuple(self.peers.values()), self.bind, self.disabled, self.location)


def open_section(args: list[str], location: Location) -> PeersState:
    if len(args) != 1:
        raise _error("'peers' expects a name")
    if not NAME.fullmatch(args[0]):
        raise _error(f"invalid peers section name '{args[0]}': use letters, digits, '-', '_', '.' and ':'")
    return PeersState(args[0], location)


def close_section(state: PeersState, known: dict[str, PeersSection]) -> PeersSection:
    if state.name in known:
        raise _error(f"peers section '{state.name}' is declared twice (first at {known[state.name].location})")
    if not state.peers:
        raise _error(f"peers section '{state.name}' has no peer")
    if state.bind is not None and sum(p.host is None for p in state.peers.values()) != 1:
        raise _error(f"peers section '{state.name}': a 'bind' line needs exactly one 'server NAME' "
                     "line without an address (the local peer)")
    section = known[state.name] = state.freeze()
    return section


def _peer(parser, state: PeersState, args, line, negated) -> None:
    """`peer NAME ADDR:PORT` and `server NAME [ADDR:PORT]`."""
    keyword = line.words[0].text
    words = [w.text for w in args]
    if not words or not NAME.fullmatch(words[0]):
        raise _error(f"'{keyword}' expects a peer name" + (", then its address" if keyword == "peer" else ""))
    name, rest = words[0], words[1:]
    if name in state.peers:
        raise _error(f"peer '{name}' is declared twice in peers section '{state.name}'")
    if keyword == "peer" and not rest:
        raise _error(f"'peer {name}' expects an address, as in 192.0.2.11:10000")
    host = port = None
    if rest:
        host, port = _address(rest[0], f"peer '{name}' address")
        rest = rest[1:]
    if rest:
        raise _error(f"'{keyword} {name}': option '{rest[0]}' is not supported by haply "
                     "(peers connect in plain TCP)")
    state.peers[name] = Peer(name, host, port, line.location)


def _bind(parser, state: PeersState, args, line, negated) -> None:
    words = [w.text for w in args]
    if len(words) != 1:
        raise _error("'bind' in a peers section expects one address" +
                     (f"; option '{words[1]}' is not supported by haply" if len(words) > 1 else ""))
    if state.bind is not None:
        raise _error(f"peers section '{state.name}' has two 'bind' lines")
    state.bind = _address(words[0], "peers bind address")


def _flag(value: bool):
    def handler(parser, state: PeersState, args, line, negated) -> None:
        if args:
            raise _error(f"'{line.words[0].text}' takes no argument")
        state.disabled = value
    return handler


HANDLERS = {"peer": _peer, "server": _peer, "bind": _bind, "disabled": _flag(True), "enabled": _flag(False)}

__all__ = ["HANDLERS", "PeersState", "close_section", "open_section"]
