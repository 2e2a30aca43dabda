"""The peers protocol's wire format (HAProxy's doc/peers.txt, protocol 2.1),
encoded and decoded without I/O.

After a text handshake (a three-line hello, a status line), peers exchange
binary messages: a class byte, a type byte and, for types of 128 and above,
an encoded length and that many bytes. Numbers inside are HAProxy's encoded
integers: values below 240 take one byte; larger ones set the high nibble of
the first byte and continue seven bits at a time.

What an entry update carries was read from HAProxy 2.6 on the wire: the
update's 32-bit number, the key (4 or 16 address bytes, a 32-bit integer, a
length and the text, or the table's fixed binary length), then each data type
of the table's definition in the order of their bits: counters and ids as
encoded integers, a rate as three (the milliseconds since its current period
began, the current period's count, the previous one's), and the server's name
(`server_key`) as a small dictionary entry.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

PROTOCOL = "HAProxyS"
VERSION = "2.1"

# Message classes and types.
CONTROL, ERROR, TABLE = 0, 1, 10
RESYNC_REQUEST, RESYNC_FINISHED, RESYNC_PARTIAL, RESYNC_CONFIRM, HEARTBEAT = 0, 1, 2, 3, 4
PROTOCOL_ERROR, SIZE_LIMIT = 0, 1
UPDATE, INCREMENTAL_UPDATE, DEFINITION, SWITCH, ACK, UPDATE_TIMED, INCREMENTAL_UPDATE_TIMED = \
    128, 129, 130, 131, 132, 133, 134

# Status codes of the handshake.
SUCCEEDED, TRY_AGAIN, BAD_PROTOCOL, BAD_VERSION, LOCAL_MISMATCH, REMOTE_MISMATCH = \
    200, 300, 501, 502, 503, 504

# Key types of a table definition.
KEY_TYPES = {"integer": 2, "ip": 4, "ipv6": 5, "string": 6, "binary": 7}
KEY_KINDS = {number: kind for kind, number in KEY_TYPES.items()}

# Data types by bit, and how each is encoded: "int", "rate" (three integers),
# "dict" (the server's name). haply stores those of 0-21 but the arrays.
DATA_TYPES = ("server_id", "gpt0", "gpc0", "gpc0_rate", "conn_cnt", "conn_rate", "conn_cur",
              "sess_cnt", "sess_rate", "http_req_cnt", "http_req_rate", "http_err_cnt",
              "http_err_rate", "bytes_in_cnt", "bytes_in_rate", "bytes_out_cnt", "bytes_out_rate",
              "gpc1", "gpc1_rate", "server_key", "http_fail_cnt", "http_fail_rate",
              "gpt", "gpc", "gpc_rate")
BIT = {name: bit for bit, name in enumerate(DATA_TYPES)}
ARRAYS = frozenset({"gpt", "gpc", "gpc_rate"})

# A message longer than this is refused (HAProxy sends entries one by one).
MAX_MESSAGE = 1 << 20


class PeerProtocolError(ValueError):
    """A peer sent something the protocol does not allow: the session ends."""


def encode_int(value: int) -> bytes:
    if value < 0:
        value &= (1 << 64) - 1  # a negative id or counter travels as its 64 bits
    if value < 0xF0:
        return bytes((value,))
    out = bytearray(((value | 0xF0) & 0xFF,))
    value = (value - 0xF0) >> 4
    while value >= 0x80:
        out.append((value | 0x80) & 0xFF)
        value = (value - 0x80) >> 7
    out.append(value)
    return bytes(out)


def decode_int(data: bytes | memoryview, offset: int) -> tuple[int, int]:
    """(value, offset after it); PeerProtocolError when data ends first."""
    try:
        value = data[offset]
        offset += 1
        if value < 0xF0:
            return value, offset
        shift = 4
        while True:
            byte = data[offset]
            offset += 1
            value += byte << shift
            shift += 7
            if byte < 0x80:
                return value, offset
            if shift > 70:
                raise PeerProtocolError("an encoded integer longer than 64 bits")
    except IndexError:
        raise PeerProtocolError("a message ends inside an encoded integer") from None


# ------------------------------------------------------------------ handshake


def hello(remote: str, local: str, pid: int) -> bytes:
    return f"{PROTOCOL} {VERSION}\n{remote}\n{local} {pid} 0\n".encode()


def read_hello(lines: list[bytes], local: str, known: set[str]) -> tuple[int, str | None]:
    """The status a hello (its three lines, without their line feeds) gets,
    and the peer it names when it is one of known."""
    try:
        first, remote, third = (line.decode("ascii") for line in lines)
    except (UnicodeDecodeError, ValueError):
        return BAD_PROTOCOL, None
    protocol, _, version = first.partition(" ")
    if protocol != PROTOCOL:
        return BAD_PROTOCOL, None
    major = version.split(".")[0]
    if major != VERSION.split(".")[0]:
        return BAD_VERSION, None
    if remote != local:
        return LOCAL_MISMATCH, None
    sender = third.split(" ")[0]
    if sender not in known:
        return REMOTE_MISMATCH, None
    return SUCCEEDED, sender


# ------------------------------------------------------------------- messages


def control(kind: int) -> bytes:
    return bytes((CONTROL, kind))


def table_message(kind: int, body: bytes) -> bytes:
    return bytes((TABLE, kind)) + encode_int(len(body)) + body


@dataclass
class Definition:
    """A table as one side announces it: its number on that side, its name,
    its key, the data types its updates carry (in bit order) and the periods
    of its rates (milliseconds)."""

    table_id: int
    name: str
    key_kind: str
    key_length: int
    types: tuple[str, ...]
    expire_ms: int = 0
    periods: dict[str, int] = field(default_factory=dict)


def encode_definition(definition: Definition) -> bytes:
    bits = 0
    for name in definition.types:
        bits |= 1 << BIT[name]
    name = definition.name.encode()
    body = [encode_int(definition.table_id), encode_int(len(name)), name,
            encode_int(KEY_TYPES[definition.key_kind]), encode_int(definition.key_length),
            encode_int(bits), encode_int(definition.expire_ms)]
    for data_type in definition.types:
        if data_type in definition.periods:
            body += (encode_int(BIT[data_type]), encode_int(definition.periods[data_type]))
    return table_message(DEFINITION, b"".join(body))


def decode_definition(body: bytes) -> Definition:
    table_id, i = decode_int(body, 0)
    length, i = decode_int(body, i)
    name = body[i:i + length].decode("latin-1")
    i += length
    key_type, i = decode_int(body, i)
    key_length, i = decode_int(body, i)
    bits, i = decode_int(body, i)
    kind = KEY_KINDS.get(key_type)
    if kind is None:
        raise PeerProtocolError(f"table '{name}': unknown key type {key_type}")
    types = tuple(name_ for bit, name_ in enumerate(DATA_TYPES) if bits >> bit & 1)
    if bits >> len(DATA_TYPES):
        raise PeerProtocolError(f"table '{name}': unknown data type in bitfield {bits:#x}")
    expire = 0
    periods: dict[str, int] = {}
    if i < len(body):
        expire, i = decode_int(body, i)
        while i < len(body):
            bit, i = decode_int(body, i)
            period, i = decode_int(body, i)
            if bit < len(DATA_TYPES):
                periods[DATA_TYPES[bit]] = period
    return Definition(table_id, name, kind, key_length, types, expire, periods)


def encode_key(kind: str, length: int, key: str) -> bytes:
    if kind == "ip":
        return ipaddress.IPv4Address(key).packed
    if kind == "ipv6":
        return ipaddress.IPv6Address(key).packed
    if kind == "integer":
        return (int(key) & 0xFFFFFFFF).to_bytes(4, "big")
    if kind == "binary":
        return bytes.fromhex(key)[:length].ljust(length, b"\0")
    data = key.encode("latin-1", "replace")[:length]
    return encode_int(len(data)) + data


def decode_key(kind: str, length: int, body: bytes, offset: int) -> tuple[str, int]:
    if kind == "string":
        size, offset = decode_int(body, offset)
        end = offset + size
        if end > len(body):
            raise PeerProtocolError("a key longer than its message")
        return body[offset:end].decode("latin-1"), end
    size = {"ip": 4, "ipv6": 16, "integer": 4}.get(kind, length)
    end = offset + size
    if end > len(body):
        raise PeerProtocolError("a key longer than its message")
    raw = body[offset:end]
    if kind == "ip":
        return str(ipaddress.IPv4Address(raw)), end
    if kind == "ipv6":
        return str(ipaddress.IPv6Address(raw)), end
    if kind == "integer":
        return str(int.from_bytes(raw, "big", signed=True)), end
    return raw.hex().upper(), end


@dataclass
class Update:
    """One entry's values: integers, (elapsed ms, current, previous) for a
    rate, the server's name for server_key; expire_ms when the update said."""

    update_id: int
    key: str
    values: dict[str, object]
    expire_ms: int | None = None


def encode_update(definition: Definition, update: Update) -> bytes:
    body = [(update.update_id & 0xFFFFFFFF).to_bytes(4, "big")]
    if update.expire_ms is not None:
        body.append((update.expire_ms & 0xFFFFFFFF).to_bytes(4, "big"))
    body.append(encode_key(definition.key_kind, definition.key_length, update.key))
    for data_type in definition.types:
        value = update.values.get(data_type)
        if data_type == "server_key":
            body.append(_encode_name(value))
        elif data_type in definition.periods or data_type.endswith("_rate"):
            elapsed, current, previous = value if value is not None else (0, 0, 0)
            body += (encode_int(elapsed), encode_int(current), encode_int(previous))
        else:
            body.append(encode_int(value or 0))
    return table_message(UPDATE_TIMED if update.expire_ms is not None else UPDATE, b"".join(body))


def _encode_name(name: str | None) -> bytes:
    """A server_key as a dictionary entry sent whole each time (id 1, then
    the text); nothing when the entry names no server."""
    if not name:
        return encode_int(0)
    text = name.encode()
    inner = encode_int(1) + encode_int(len(text)) + text
    return encode_int(len(inner)) + inner


class Names:
    """The server_key dictionary a peer builds as it sends: an id first
    comes with its text, then alone."""

    def __init__(self) -> None:
        self.by_id: dict[int, str] = {}

    def decode(self, body: bytes, offset: int) -> tuple[str | None, int]:
        length, offset = decode_int(body, offset)
        if length == 0:
            return None, offset
        end = offset + length
        if end > len(body):
            raise PeerProtocolError("a server name longer than its message")
        entry_id, i = decode_int(body, offset)
        if i < end:
            size, i = decode_int(body, i)
            self.by_id[entry_id] = body[i:i + size].decode("latin-1")
        return self.by_id.get(entry_id), end


def decode_update(definition: Definition, body: bytes, timed: bool, previous_id: int | None,
                  names: Names, incremental: bool = False) -> Update:
    offset = 0
    if incremental:
        update_id = (previous_id or 0) + 1
    else:
        if len(body) < 4:
            raise PeerProtocolError("an update shorter than its number")
        update_id = int.from_bytes(body[:4], "big")
        offset = 4
    expire = None
    if timed:
        expire = int.from_bytes(body[offset:offset + 4], "big")
        offset += 4
    key, offset = decode_key(definition.key_kind, definition.key_length, body, offset)
    values: dict[str, object] = {}
    for data_type in definition.types:
        if data_type in ARRAYS:
            raise PeerProtocolError(f"table '{definition.name}': data type {data_type} is not supported by haply")
        if data_type == "server_key":
            values[data_type], offset = names.decode(body, offset)
        elif data_type.endswith("_rate"):
            elapsed, offset = decode_int(body, offset)
            current, offset = decode_int(body, offset)
            previous, offset = decode_int(body, offset)
            values[data_type] = (elapsed, current, previous)
        else:
            values[data_type], offset = decode_int(body, offset)
    return Update(update_id, key, values, expire)


def encode_ack(table_id: int, update_id: int) -> bytes:
    return table_message(ACK, encode_int(table_id) + (update_id & 0xFFFFFFFF).to_bytes(4, "big"))


def decode_ack(body: bytes) -> tuple[int, int]:
    table_id, offset = decode_int(body, 0)
    if len(body) < offset + 4:
        raise PeerProtocolError("an acknowledgement without its update number")
    return table_id, int.from_bytes(body[offset:offset + 4], "big")


def split_messages(buffer: bytes) -> tuple[list[tuple[int, int, bytes]], int]:
    """The whole messages at the start of buffer as (class, type, body), and
    how many bytes they took; the rest waits for more data."""
    messages = []
    offset, size = 0, len(buffer)
    while offset + 2 <= size:
        klass, kind = buffer[offset], buffer[offset + 1]
        if kind < 128:
            messages.append((klass, kind, b""))
            offset += 2
            continue
        try:
            length, start = decode_int(buffer, offset + 2)
        except PeerProtocolError:
            break  # the length itself is not all there yet
        if length > MAX_MESSAGE:
            raise PeerProtocolError(f"a message of {length} bytes")
        if start + length > size:
            break
        messages.append((klass, kind, bytes(buffer[start:start + length])))
        offset = start + length
    return messages, offset
