"""Sockets for connections to servers that leave from a configured source
(`source ADDR[:PORT[-HIGH]] [interface NAME]`, a backend's or a server's).

Such a socket is made, bound and connected here, then handed to the event
loop (`create_connection(sock=...)`): the loop's own connect has no room for
an interface or a port range. Without a source port the address is bound with
IP_BIND_ADDRESS_NO_PORT, so the kernel picks the port at connect time from
the whole 4-tuple, as HAProxy has it do; binding first would take a port per
connection from the source address alone and run out of them sooner.
"""

from __future__ import annotations

import asyncio
import errno
import itertools
import socket
from typing import Callable

from haply.config.model import SourceAddress

# Linux's value; the socket module has the name from Python 3.12 on
IP_BIND_ADDRESS_NO_PORT = getattr(socket, "IP_BIND_ADDRESS_NO_PORT", 24)

# A port range's next port to try, per range (shared by the servers that name
# the same one, as their connections compete for its ports).
_next_port: dict[tuple[str, int, int], itertools.cycle] = {}


def bound_socket(source: SourceAddress, family: int) -> socket.socket:
    """A non-blocking TCP socket bound to source, not connected yet. OSError
    when the address cannot be bound (not local, wrong family, no such
    interface)."""
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if source.interface:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE,
                            source.interface.encode() + b"\0")
        if source.low:
            # a port of its own: free again while its last connection is in
            # TIME_WAIT; another one in use only clashes at connect, for the
            # same server (connected_socket then takes the next port)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((source.host, next_port(source)))
        else:
            sock.setsockopt(socket.IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, 1)
            sock.bind((source.host, 0))
    except BaseException:
        sock.close()
        raise
    return sock


def next_port(source: SourceAddress) -> int:
    """The port of source the next connection takes: a range's ports in turn."""
    if source.high <= source.low:
        return source.low
    key = (source.host, source.low, source.high)
    ports = _next_port.get(key)
    if ports is None:
        ports = _next_port[key] = itertools.cycle(range(source.low, source.high + 1))
    return next(ports)


async def connected_socket(loop: asyncio.AbstractEventLoop, host: str, port: int,
                           source: SourceAddress | None,
                           prepare: Callable[[socket.socket], None] | None = None) -> socket.socket:
    """A TCP socket connected to host:port, from source when given; prepare
    sets what must be set before the connect."""
    family, kind, proto, _, target = (await loop.getaddrinfo(
        host, port, type=socket.SOCK_STREAM))[0]
    # a source port still connected to this server (from the range's last
    # round) cannot connect again: the range's next port then, each at most once
    tries = source.high - source.low + 1 if source is not None and source.low else 1
    for attempt in range(tries):
        if source is not None:
            sock = bound_socket(source, family)
        else:
            sock = socket.socket(family, kind, proto)
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            if prepare is not None:
                prepare(sock)
            await loop.sock_connect(sock, target)
            return sock
        except OSError as exc:
            sock.close()
            if exc.errno != errno.EADDRNOTAVAIL or attempt == tries - 1:
                raise
        except BaseException:
            sock.close()
            raise
    raise AssertionError("unreachable")  # the last attempt returned or raised


__all__ = ["IP_BIND_ADDRESS_NO_PORT", "bound_socket", "connected_socket", "next_port"]
