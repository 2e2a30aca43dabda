"""What a TLS client's first bytes say, read without terminating TLS.

Pure: each reader takes the bytes a connection has sent so far and answers
NEED_MORE (the answer may still come with more bytes), None (these bytes
will never give one: not TLS, not a ClientHello, or the value is absent) or
the value. The caller keeps the bytes and asks again when more arrive; once
an answer is not NEED_MORE it cannot change, so it may be kept.

The formats are RFC 5246 section 6.2.1 (the record: type, version, length),
section 7.4 and RFC 8446 section 4.1.2 (the handshake header and the
ClientHello), RFC 6066 section 3 (server_name), RFC 7301 section 3.1 (ALPN),
RFC 4492 section 5.1 (elliptic curves, RFC 8446's supported_groups) and
RFC 5077 section 3.2 (SessionTicket). How much of the stream each fetch waits
for follows what HAProxy 2.6 does on the wire (probed, see
tests/interop/test_tcp_sni_oracle.py):

- the ClientHello's fields (server name, ALPN, extensions) are read from the
  first record only, once it is complete: a hello split over several records
  has none;
- the hello type needs the handshake header and as many bytes after it as
  the handshake's length says, whatever the record boundaries, and takes any
  record type from change_cipher_spec (20) to application_data (23);
- the version is the ClientHello's (3.3 for TLS 1.2 and 1.3, whose record
  says 3.1), or an SSLv2-format hello's.
"""

from __future__ import annotations

from dataclasses import dataclass


class _NeedMore:
    __slots__ = ()

    def __repr__(self) -> str:
        return "NEED_MORE"


NEED_MORE = _NeedMore()

HANDSHAKE = 22  # record content types (RFC 5246 section 6.2.1)
CHANGE_CIPHER_SPEC, APPLICATION_DATA = 20, 23
CLIENT_HELLO = 1  # handshake type
RECORD_HEADER = 5  # type, version (2), length (2)
HANDSHAKE_HEADER = 4  # type, length (3)
# Extension numbers (IANA TLS ExtensionType registry)
SERVER_NAME, SUPPORTED_GROUPS, ALPN, SESSION_TICKET = 0, 10, 16, 35
HOST_NAME = 0  # server_name's NameType


@dataclass(frozen=True, slots=True)
class ClientHello:
    version: int  # major * 65536 + minor, as req.ssl_ver gives it
    server_name: str | None  # the first host_name, None without server_name
    alpn: tuple[str, ...]  # the protocols offered, in the client's order
    elliptic_curves: bool  # supported_groups (elliptic_curves) sent
    session_ticket: int  # 0: no SessionTicket extension, 1: an empty one, 2: a ticket


def hello_type(data: bytes):
    """req.ssl_hello_type: the handshake type of the first message."""
    size = len(data)
    if not size:
        return NEED_MORE
    if not (CHANGE_CIPHER_SPEC <= data[0] <= APPLICATION_DATA or data[0] == 0xFF):
        return None
    if size < RECORD_HEADER + HANDSHAKE_HEADER:
        return NEED_MORE
    if data[1] < 3 or int.from_bytes(data[3:5], "big") < HANDSHAKE_HEADER:
        return None
    length = int.from_bytes(data[6:9], "big")
    if size < RECORD_HEADER + HANDSHAKE_HEADER + length:
        return NEED_MORE
    return data[5]


def version(data: bytes):
    """req.ssl_ver: the ClientHello's version (SSLv2 or SSLv3 and later format)."""
    size = len(data)
    if not size:
        return NEED_MORE
    first = data[0]
    if first & 0x80:  # SSLv2 format: 2-byte length with the high bit set, then the message
        if size < 2:
            return NEED_MORE
        length = ((first & 0x7F) << 8) | data[1]
        if length < 3:
            return None
        if size < 2 + length:
            return NEED_MORE
        if data[2] != CLIENT_HELLO or data[3] < 3:  # SSLv3 at least, as HAProxy reads it
            return None
        return (data[3] << 16) | data[4]
    if not (CHANGE_CIPHER_SPEC <= first <= APPLICATION_DATA or first == 0xFF):
        return None
    if size < RECORD_HEADER:
        return NEED_MORE
    if data[1] < 3:
        return None
    if first != HANDSHAKE:
        # HAProxy 2.6 keeps waiting on any other record: no version before
        # the inspection ends
        return NEED_MORE
    record = _first_record(data)
    if record is None or record is NEED_MORE:
        return record
    if len(record) < HANDSHAKE_HEADER + 2:
        return None
    return (record[4] << 16) | record[5]


def client_hello(data: bytes):
    """The ClientHello of the first record (req.ssl_sni, req.ssl_alpn,
    req.ssl_ec_ext, req.ssl_st_ext), or None when it holds none that parses."""
    if not data:
        return NEED_MORE
    if data[0] != HANDSHAKE:
        return None
    record = _first_record(data)
    if record is None or record is NEED_MORE:
        return record
    try:
        return _parse_hello(record)
    except _Malformed:
        return None


def _first_record(data: bytes):
    if len(data) < RECORD_HEADER:
        return NEED_MORE
    if data[1] < 3:
        return None
    length = int.from_bytes(data[3:5], "big")
    if length < HANDSHAKE_HEADER:
        return None
    if len(data) < RECORD_HEADER + length:
        return NEED_MORE
    return data[RECORD_HEADER:RECORD_HEADER + length]


class _Malformed(Exception):
    pass


class _Cursor:
    """Reads length-prefixed parts of a message, refusing to run past its end."""

    __slots__ = ("data", "at", "end")

    def __init__(self, data: bytes, at: int = 0, end: int | None = None):
        self.data, self.at = data, at
        self.end = len(data) if end is None else end

    def take(self, size: int) -> bytes:
        if self.at + size > self.end:
            raise _Malformed
        start = self.at
        self.at += size
        return self.data[start:self.at]

    def number(self, size: int) -> int:
        return int.from_bytes(self.take(size), "big")

    def vector(self, length_size: int) -> "_Cursor":
        """The part whose length precedes it, as a cursor of its own."""
        length = self.number(length_size)
        start = self.at
        self.take(length)
        return _Cursor(self.data, start, start + length)

    @property
    def left(self) -> int:
        return self.end - self.at


def _parse_hello(record: bytes) -> ClientHello | None:
    message = _Cursor(record)
    if message.number(1) != CLIENT_HELLO:
        return None
    hello = message.vector(3)  # a hello longer than its record raises: not read across records
    major, minor = hello.take(2)
    if major < 3 or (major == 3 and minor < 1):  # TLS 1.0 at least, as HAProxy reads it
        return None
    hello.take(32)  # random
    session_id = hello.vector(1)
    if session_id.left > 32:
        return None
    hello.vector(2)  # cipher suites
    hello.vector(1)  # compression methods
    server_name, alpn, curves, ticket = None, (), False, 0
    if hello.left:
        extensions = hello.vector(2)
        while extensions.left:
            kind = extensions.number(2)
            body = extensions.vector(2)
            if kind == SERVER_NAME and server_name is None:
                server_name = _server_name(body)
            elif kind == ALPN and not alpn:
                alpn = _protocols(body)
            elif kind == SUPPORTED_GROUPS:
                curves = True
            elif kind == SESSION_TICKET:
                ticket = 2 if body.left else 1
    return ClientHello((major << 16) | minor, server_name, alpn, curves, ticket)


def _server_name(body: _Cursor) -> str | None:
    names = body.vector(2)
    while names.left:
        name_type = names.number(1)
        name = names.vector(2)
        if name_type == HOST_NAME:
            return name.take(name.left).decode("latin-1")
    return None


def _protocols(body: _Cursor) -> tuple[str, ...]:
    names = body.vector(2)
    found = []
    while names.left:
        name = names.vector(1)
        found.append(name.take(name.left).decode("latin-1"))
    return tuple(found)
