"""The PROXY protocol header: the one a server connection starts with
(`send-proxy`, `send-proxy-v2`, `check-send-proxy`), and the one a client
connection must start with (`bind ... accept-proxy`, `tcp-request connection
expect-proxy layer4`), from the PROXY protocol specification
(haproxy.org/download/2.6/doc/proxy-protocol.txt, sections 2.1 and 2.2).

Pure: addresses in, bytes out (`header`); bytes in, the header's length and
addresses out (`parse`). A proxied connection carries the client's
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
import socket
import struct
from dataclasses import dataclass

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


# ------------------------------------------------------------------ receiving

# Section 2.1: a version 1 line is at most 107 bytes, CRLF included.
V1_MAX_LENGTH = 107
V1_PREFIX = b"PROXY "
V2_FIXED_LENGTH = 16  # signature, version and command, family, length
# Section 2.2: the address block of each family the PROXY command may carry
# (HAProxy 2.6 refuses any other family with the PROXY command, observed).
_V2_ADDRESSES = {_TCP4: (socket.AF_INET, 4), _TCP6: (socket.AF_INET6, 16)}
_TLV_HEADER = 3  # type, then a 16-bit length
# Section 2.2: the TLVs a receiver checks (HAProxy 2.6 refuses the header
# when one is wrong, observed): the largest AUTHORITY (HAProxy's limit: 256
# bytes are refused) and UNIQUE_ID (section 2.2.5), and the CRC32C of the
# whole header (section 2.2.3).
_AUTHORITY, _CRC32C, _UNIQUE_ID = 0x02, 0x03, 0x05
_LONGEST = {_AUTHORITY: 255, _UNIQUE_ID: 128}

# What HAProxy 2.6 logs for each fault (its words, observed on the wire).
NOT_A_HEADER = "Received something which does not look like a PROXY protocol header"
INVALID = "Received an invalid PROXY protocol header"
UNHANDLED = "Received an unhandled protocol in the PROXY protocol header"


class ProxyHeaderError(ValueError):
    """The bytes a connection began with are no acceptable PROXY header:
    `message` is what the log says (HAProxy's words), the exception's text
    says what exactly is wrong. `source` is the client's address when the
    header named it before the fault was found (HAProxy logs it then)."""

    def __init__(self, message: str, detail: str, source: tuple | None = None):
        super().__init__(f"{message}: {detail}")
        self.message = message
        self.source = source


@dataclass(frozen=True, slots=True)
class ReceivedHeader:
    """A whole header: its length in bytes, and the client's and the proxied
    destination's (host, port), both None when the header does not give them
    (LOCAL command, UNKNOWN protocol): the connection's own addresses stand."""

    length: int
    source: tuple[str, int] | None = None
    destination: tuple[str, int] | None = None


def parse(data: bytes) -> ReceivedHeader | None:
    """The PROXY header at the start of data, None when data is a beginning
    of one that needs more bytes, or ProxyHeaderError. What follows the
    header is the connection's own data and is not looked at."""
    if data.startswith(V1_PREFIX):
        return _parse_v1(data)
    # HAProxy 2.6 judges what is no v1 line by the fixed part of a v2 header,
    # so less than that is "need more", whatever it holds (observed: b"PROX"
    # and b"garbage\r\n" are logged as truncated headers, 18 bytes of a
    # request line as "does not look like a PROXY protocol header").
    if len(data) < V2_FIXED_LENGTH:
        return None
    return _parse_v2(data)


def _parse_v1(data: bytes) -> ReceivedHeader | None:
    end = data.find(b"\r\n", 0, V1_MAX_LENGTH)
    if end < 0:
        if len(data) >= V1_MAX_LENGTH:
            raise ProxyHeaderError(INVALID, f"no CRLF within the first {V1_MAX_LENGTH} bytes")
        return None
    words = data[len(V1_PREFIX):end].split(b" ")
    protocol = words[0]
    if protocol == b"UNKNOWN" and len(words) == 1:
        return ReceivedHeader(end + 2)
    family = {b"TCP4": socket.AF_INET, b"TCP6": socket.AF_INET6}.get(protocol)
    if family is None:
        # HAProxy 2.6 takes UNKNOWN only alone on its line (observed)
        raise ProxyHeaderError(UNHANDLED, f"protocol {bytes(protocol)[:16]!r} (expected TCP4, TCP6 "
                               "or UNKNOWN alone)")
    if len(words) != 5:
        raise ProxyHeaderError(INVALID, f"{len(words) - 1} fields after {protocol.decode()} (expected "
                               "source, destination, source port, destination port, one space apart)")
    source = _text_address(family, words[1], "source")
    destination = _text_address(family, words[2], "destination")
    return ReceivedHeader(end + 2, (source, _text_port(words[3], "source")),
                          (destination, _text_port(words[4], "destination")))


def _text_address(family: int, word: bytes, which: str) -> str:
    try:
        return socket.inet_ntop(family, socket.inet_pton(family, word.decode("ascii")))
    except (UnicodeDecodeError, OSError, ValueError):
        kind = "IPv4" if family == socket.AF_INET else "IPv6"
        raise ProxyHeaderError(INVALID, f"{which} address {bytes(word)[:40]!r} is not {kind}") from None


def _text_port(word: bytes, which: str) -> int:
    # Decimal digits only (int() would take "+1", " 1" or "1_0").
    if not word.isdigit() or len(word) > 5 or int(word) > 65535:
        raise ProxyHeaderError(INVALID, f"{which} port {bytes(word)[:16]!r} is not 0 to 65535")
    return int(word)


def _parse_v2(data: bytes) -> ReceivedHeader | None:
    if data[:12] != V2_SIGNATURE:
        raise ProxyHeaderError(NOT_A_HEADER, f"it starts with {bytes(data[:8])!r}")
    version, command = data[12] >> 4, data[12] & 0x0F
    if version != 2:
        raise ProxyHeaderError(NOT_A_HEADER, f"version {version} after the version 2 signature")
    length = V2_FIXED_LENGTH + struct.unpack_from("!H", data, 14)[0]
    if command > 1:
        raise ProxyHeaderError(INVALID, f"command {command} (expected 0, LOCAL, or 1, PROXY)")
    if len(data) < length:
        return None
    if command == 0:  # LOCAL: the sender's own connection; the rest is skipped
        return ReceivedHeader(length)
    family = data[13]
    known = _V2_ADDRESSES.get(family)
    if known is None:
        raise ProxyHeaderError(INVALID, f"family and protocol {family:#04x} with the PROXY command "
                               "(expected 0x11, TCP over IPv4, or 0x21, TCP over IPv6)")
    address_family, size = known
    addresses_end = V2_FIXED_LENGTH + 2 * size + 4
    if length < addresses_end:
        raise ProxyHeaderError(INVALID, f"{length - V2_FIXED_LENGTH} bytes of addresses for family "
                               f"{family:#04x} (expected at least {addresses_end - V2_FIXED_LENGTH})")
    start = V2_FIXED_LENGTH
    source_port, destination_port = struct.unpack_from("!HH", data, start + 2 * size)
    source = (socket.inet_ntop(address_family, data[start:start + size]), source_port)
    destination = (socket.inet_ntop(address_family, data[start + size:start + 2 * size]),
                   destination_port)
    _check_tlvs(data, addresses_end, length, source)
    return ReceivedHeader(length, source, destination)


def _check_tlvs(data: bytes, position: int, end: int, source: tuple) -> None:
    """Section 2.2.7: the TLVs after the addresses are skipped, but each must
    fit in the header (HAProxy refuses the header otherwise, observed), and
    those a receiver checks must pass."""
    while position < end:
        if end - position < _TLV_HEADER:
            raise ProxyHeaderError(INVALID, f"{end - position} byte(s) after the last TLV, too few "
                                   "for a type and a length", source)
        kind = data[position]
        size = struct.unpack_from("!H", data, position + 1)[0]
        value = position + _TLV_HEADER
        position = value + size
        if position > end:
            raise ProxyHeaderError(INVALID, f"a TLV of type {kind:#04x} and {size} bytes runs past "
                                   "the header's end", source)
        if size > _LONGEST.get(kind, size):
            raise ProxyHeaderError(INVALID, f"a TLV of type {kind:#04x} of {size} bytes (at most "
                                   f"{_LONGEST[kind]})", source)
        if kind == _CRC32C:
            _check_crc32c(data, value, size, end, source)


def _check_crc32c(data: bytes, value: int, size: int, end: int, source: tuple) -> None:
    """Section 2.2.3: the CRC32C of the header with the checksum's 4 bytes
    as zeros must be the checksum."""
    if size != 4:
        raise ProxyHeaderError(INVALID, f"a CRC32C TLV of {size} bytes (expected 4)", source)
    received = struct.unpack_from("!I", data, value)[0]
    computed = crc32c(bytes(data[:value]) + b"\0\0\0\0" + bytes(data[value + 4:end]))
    if computed != received:
        raise ProxyHeaderError(INVALID, f"CRC32C {received:#010x}, not the header's {computed:#010x}",
                               source)


def _crc32c_table() -> list[int]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1  # Castagnoli, reflected
        table.append(crc)
    return table


_CRC32C_TABLE = _crc32c_table()


def crc32c(data: bytes) -> int:
    """CRC32C (RFC 4960, appendix B), as the PROXY protocol's checksum TLV
    carries it; only headers that carry one pay for it."""
    crc = 0xFFFFFFFF
    table = _CRC32C_TABLE
    for byte in data:
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF
