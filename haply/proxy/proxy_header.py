"""The PROXY protocol header a server connection starts with (`send-proxy`,
`send-proxy-v2`, `check-send-proxy`), from the PROXY protocol specification
(haproxy.org/download/2.6/doc/proxy-protocol.txt, sections 2.1 and 2.2).

Pure: addresses in, bytes out. A proxied connection carries the client's
address as source and the address the client connected to as destination. A
health check's connection has no client: version 1 then names the check's own
connection (as HAProxy does, observed), version 2 sends the LOCAL command
with no address.

    v1: b"PROXY TCP4 192.0.2.7 192.0.2.1 51234 443\\r\\n"
    v2: the 12-byte signature, version 2 and the command, the family and
        protocol, the length of the addresses, then the addresses and ports.
"""

from __future__ import annotations

import ipaddress
import struct

V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
_PROXY, _LOCAL = 0x21, 0x20  # version 2 with the PROXY or the LOCAL command
_TCP4, _TCP6 = 0x11, 0x21  # AF_INET or AF_INET6, over a stream
V2_LOCAL = V2_SIGNATURE + bytes([_LOCAL, 0]) + b"\x00\x00"
V1_UNKNOWN = b"PROXY UNKNOWN\r\n"


def _address(host: str):
    address = ipaddress.ip_address(host.split("%", 1)[0])
    if address.version == 6 and address.ipv4_mapped is not None:
        return address.ipv4_mapped  # a v4 client on a dual-stack socket
    return address


def header(version: int, source: tuple | None, destination: tuple | None) -> bytes:
    """The header of a connection from source to destination ((host, port)
    pairs, as sockets name them); without both, or of two families, the one
    that says the addresses are unknown."""
    try:
        src, dst = _address(source[0]), _address(destination[0])
    except (TypeError, ValueError, IndexError):
        return V1_UNKNOWN if version == 1 else V2_LOCAL
    if src.version != dst.version:
        return V1_UNKNOWN if version == 1 else V2_LOCAL
    sport, dport = int(source[1]), int(destination[1])
    if version == 1:
        return f"PROXY TCP{src.version} {src} {dst} {sport} {dport}\r\n".encode("ascii")
    addresses = src.packed + dst.packed + struct.pack("!HH", sport, dport)
    family = _TCP4 if src.version == 4 else _TCP6
    return V2_SIGNATURE + bytes([_PROXY, family]) + struct.pack("!H", len(addresses)) + addresses


def check_header(version: int, local: tuple | None, peer: tuple | None) -> bytes:
    """The header a health check sends on its own connection (local -> peer)."""
    return header(1, local, peer) if version == 1 else V2_LOCAL
