"""HTTP compression as HAProxy 2.6 does it (`compression algo|type|offload`).

Pure decisions and a streaming encoder; the proxy (haply.proxy.http) calls them
at three points of an exchange:

    policy = policy_for(frontend.compression, backend.compression)   # once per route
    algorithm, accepted = select(policy, request_headers)   # request head (None:
        # never compress; accepted: chosen from Accept-Encoding, not implicit identity)
    fields = response_fields(policy, response_headers)   # response head, once the
        # status, versions and framing passed `compressible`; None: pass it as it is
    encoder = algorithm.encoder(chunked_input)      # then feed() per body piece,
        # flush() after every server read, flush(last=True) at the end of the body

The semantics are the configuration manual's ("compression algo", "compression
offload") and what HAProxy 2.6.12 was observed to do on the same traffic
(tests/interop/test_compression_oracle.py compares the two):

- Which algorithm: every Accept-Encoding element is read in order with its
  q-value (1 when absent or unreadable, capped at 1); an element counts only if
  its q is above the best so far, and then picks the first algorithm of the
  proxy's list that answers to its coding ("*" takes the first of the list).
  The list is in the reverse of the order written: each `compression algo`
  word goes to the front (`algo gzip deflate` offers deflate to "*"), and a
  proxy's words go in front of those it inherited from defaults. When no
  element matches, `identity` is taken if it is in the list ("implicit"). A User-Agent
  starting "Mozilla/4" gets nothing, unless it is MSIE 6 with SV1 (XP SP2) or
  MSIE 7 or later (the manual's rule, in the positions that browser family
  writes them).
- Which response: HTTP/1.1 request and response, status 200 to 203, a body
  with a Content-Length above 0 or chunked (not one running until close, not
  HEAD/204/304), no Content-Encoding field (even an empty one), no Cache-Control
  element "no-transform", at most one ETag field and a valid one, a
  Content-Type not starting "multipart" and, when `compression type` lists
  types, starting with one of them (no Content-Type then means no compression).
- What changes: every Content-Length goes, the body is sent chunked, a strong
  ETag becomes weak (W/ in front), and "Vary: Accept-Encoding" and
  "Content-Encoding: <coding>" are added after the other fields (identity
  adds no Content-Encoding, but is otherwise "compressed" the same way).
- Settings of a route: the backend's algorithms if it has any, else the
  frontend's; the same for types; offload if either says it. Offload removes
  every Accept-Encoding field from the request sent to the server, only when an
  Accept-Encoding element selected the algorithm (a request asking for "br"
  alone keeps its field, even when identity is taken implicitly).

Compression level: HAProxy's `tune.comp.maxlevel` defaults to 1, and Debian's
HAProxy compresses with libslz, which has no other level; zlib's level 1 is the
nearest, with zlib's default window (15 bits) and memory level (8), which are
HAProxy's tune.zlib defaults too. The gzip header is the same bytes (no name,
no time, "fastest" flag, Unix). A response being compressed holds one zlib
stream, 262 KiB, from its head to the end of its body (HAProxy built with zlib
holds the same; `maxzlibmem`, which bounds them there, is not read by haply).

Streaming: nothing is buffered beyond one server read. The encoder is flushed
(Z_SYNC_FLUSH) after every read, as HAProxy flushes per buffer it forwards, so a
body that trickles (a progress stream, a long poll) reaches the client as it
comes; a read's body pieces (one per chunk of a chunked response) share one
flush, so small chunks are not inflated by a flush marker each.
"""

from __future__ import annotations

import re
import zlib
from typing import Iterable, NamedTuple, Sequence

from haply.http.framing import CHUNKED, LENGTH
from haply.http.headers import parse_fields

Headers = Sequence[tuple[bytes, bytes]]

# HAProxy's tune.comp.maxlevel default (see the module docstring).
LEVEL = 1
# The statuses whose body may be compressed (configuration manual, "compression").
STATUSES = frozenset((200, 201, 202, 203))
# The response fields added when compressing, after the fields it had.
VARY_LINE = b"Vary: Accept-Encoding\r\n"
_WS = b" \t"
_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]*")
_DIGITS = b"0123456789"


class Algorithm(NamedTuple):
    """One `compression algo` name: the coding it answers to in Accept-Encoding
    (and writes in Content-Encoding) and zlib's window bits for its format
    (None: identity, which changes no byte)."""

    name: str
    coding: bytes
    wbits: int | None
    # What the response head gets after its fields (Vary, Content-Encoding).
    lines: bytes

    def encoder(self, chunked_input: bool) -> "Encoder":
        return Encoder(self.wbits, chunked_input)


def _algorithm(name: str, coding: bytes, wbits: int | None) -> Algorithm:
    lines = VARY_LINE if wbits is None else VARY_LINE + b"Content-Encoding: " + coding + b"\r\n"
    return Algorithm(name, coding, wbits, lines)


# gzip: RFC 1952 (zlib's wbits 16 + 15); deflate: the zlib format of RFC 1950,
# which "deflate" means in HTTP (RFC 9110 §8.4.1.2); raw-deflate: RFC 1951
# alone, which old browsers expected for "deflate" (the manual's advice).
ALGORITHMS: dict[str, Algorithm] = {
    "identity": _algorithm("identity", b"identity", None),
    "gzip": _algorithm("gzip", b"gzip", 31),
    "deflate": _algorithm("deflate", b"deflate", 15),
    "raw-deflate": _algorithm("raw-deflate", b"deflate", -15),
}


class Policy:
    """The compression settings of one route (frontend and backend merged)."""

    __slots__ = ("algorithms", "types", "offload", "identity")

    def __init__(self, algorithms: Iterable[str], types: Iterable[str] = (),
                 offload: bool = False):
        self.algorithms = tuple(ALGORITHMS[name] for name in algorithms)
        self.types = tuple(t.lower().encode() for t in types)
        self.offload = offload
        # Taken when no Accept-Encoding element matches ("identity is implicit").
        self.identity = ALGORITHMS["identity"] if "identity" in algorithms else None

    def __repr__(self) -> str:
        return (f"Policy({[a.name for a in self.algorithms]}, types={list(self.types)}, "
                f"offload={self.offload})")


def policy_for(frontend, backend) -> Policy | None:
    """A route's policy from its proxies' `model.Compression` (None: not set;
    a listen section is both). None when no algorithm is configured on either
    side: types or offload alone do nothing."""
    algorithms = (backend.algorithms if backend is not None and backend.algorithms
                  else frontend.algorithms if frontend is not None else ())
    if not algorithms:
        return None
    types = (backend.types if backend is not None and backend.types
             else frontend.types if frontend is not None else ())
    offload = any(side is not None and side.offload for side in (frontend, backend))
    return Policy(algorithms, types, offload)


# ------------------------------------------------------------------- request


def select(policy: Policy, headers: Headers) -> tuple[Algorithm | None, bool]:
    """The algorithm for this request's response or None, and whether an
    Accept-Encoding element chose it (see the module docstring): only then does
    offload remove the field. headers: the request's fields as llhttp reports them."""
    accepted: list[bytes] = []
    agent = None
    for name, value in headers:
        size = len(name)
        if size == 15 and name.lower() == b"accept-encoding":
            accepted.append(value)
        elif size == 10 and agent is None and name.lower() == b"user-agent":
            agent = value
    if agent is not None and old_mozilla(agent):
        return None, False
    chosen = None
    best = 0
    for value in accepted:
        for element in list_elements(value):
            coding = _TOKEN.match(element).group()
            q = qvalue(element[len(coding):])
            if q <= best:
                continue
            coding = b"*" if coding[:1] == b"*" else coding.lower()
            for algorithm in policy.algorithms:
                if coding == b"*" or coding == algorithm.coding:
                    chosen, best = algorithm, q
                    break
    if chosen is not None:
        return chosen, True
    return policy.identity, False


def old_mozilla(agent: bytes) -> bool:
    """A "Mozilla/4" browser that mishandles compressed answers: all but MSIE 6
    with SV1 and MSIE 7 and later, as "Mozilla/4.0 (compatible; MSIE 6.0;
    Windows NT 5.1; SV1)" writes them (the version at offset 30, SV1 at 51)."""
    if not agent.startswith(b"Mozilla/4"):
        return False
    agent = agent.rstrip(_WS)
    if len(agent) < 31 or agent[25:30] != b"MSIE ":
        return True
    version = agent[30:31]
    if version < b"6":
        return True
    return version == b"6" and agent[51:54] != b"SV1"


def list_elements(value: bytes) -> list[bytes]:
    """The comma-separated elements of a field value, trimmed, commas inside
    quoted strings kept (RFC 9110 §5.6.1, §5.6.4)."""
    if b'"' not in value:
        return [element.strip(_WS) for element in value.split(b",")]
    elements = []
    start = 0
    quoted = escaped = False
    for i, byte in enumerate(value):
        if escaped:
            escaped = False
        elif quoted:
            if byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:
                quoted = False
        elif byte == 0x22:
            quoted = True
        elif byte == 0x2C:
            elements.append(value[start:i].strip(_WS))
            start = i + 1
    elements.append(value[start:].strip(_WS))
    return elements


def qvalue(parameters: bytes) -> int:
    """The q parameter of an Accept-Encoding element (what follows its coding),
    in thousandths: 1000 when there is none or it does not read as a number
    (HAProxy's reading: one digit, a dot, up to three digits, capped at 1000;
    "Q=" is not q)."""
    rest = parameters
    while True:
        rest = rest.lstrip(_WS)
        if rest[:1] != b";":
            return 1000
        rest = rest[1:].lstrip(_WS)
        if not rest:
            return 1000
        if rest[:2] == b"q=" or rest == b"q":
            break
        cut = rest.find(b";")
        if cut < 0:
            return 1000
        rest = rest[cut:]
    text = rest[2:]
    if not text[:1] or text[:1] not in _DIGITS:
        return 1000
    q = (text[0] - 48) * 1000
    if text[1:2] == b".":
        for position, weight in ((2, 100), (3, 10), (4, 1)):
            digit = text[position:position + 1]
            if not digit or digit not in _DIGITS:
                break
            q += (digit[0] - 48) * weight
    return min(q, 1000)


# ------------------------------------------------------------------ response


def compressible(status: int, request_version: str, response_version: str,
                 kind: str, length: int) -> bool:
    """What the response line and framing allow (the fields are read apart, by
    `response_fields`, only when this holds). kind, length: the response's
    haply.http.framing.Framing."""
    return (status in STATUSES and request_version == "1.1" and response_version == "1.1"
            and (kind == CHUNKED or kind == LENGTH and length > 0))


def response_fields(policy: Policy, headers: Headers) -> list[tuple[bytes, bytes]] | None:
    """The response's fields as they go to the client compressed (every
    Content-Length removed, a strong ETag made weak), or None when a field
    forbids compression. The caller adds chunked framing and `Algorithm.lines`."""
    content_type = None
    etag = -1
    lengths = False
    for index, (name, value) in enumerate(headers):
        size = len(name)
        if size == 4:
            if name.lower() == b"etag":
                if etag >= 0:
                    return None  # more than one ETag field
                etag = index
        elif size == 12:
            if content_type is None and name.lower() == b"content-type":
                content_type = value
        elif size == 13:
            if name.lower() == b"cache-control" and any(
                    element.lower() == b"no-transform" for element in list_elements(value)):
                return None
        elif size == 14:
            if name.lower() == b"content-length":
                lengths = True
        elif size == 16 and name.lower() == b"content-encoding":
            return None  # already encoded
    if content_type is not None:
        lowered = content_type.lower()
        if lowered.startswith(b"multipart"):
            return None
        if policy.types and not lowered.startswith(policy.types):
            return None
    elif policy.types:
        return None  # a type is required and there is none
    weak = None
    if etag >= 0:
        value = headers[etag][1].rstrip(_WS)
        if len(value) < 2 or value[-1:] != b'"' or not (
                value[:1] == b'"' or value[:3] == b'W/"'):
            return None  # not an entity tag
        if value[:1] == b'"':
            weak = (headers[etag][0], b"W/" + value)
    if not lengths and weak is None:
        return list(headers)
    fields = []
    for index, field in enumerate(headers):
        if index == etag and weak is not None:
            fields.append(weak)
        elif len(field[0]) != 14 or field[0].lower() != b"content-length":
            fields.append(field)
    return fields


def compress_whole(policy: Policy, algorithm: Algorithm, request_version: str,
                   message: bytes) -> tuple[bytes, int, int] | None:
    """A complete response haply answers itself (the statistics page, the
    Prometheus exporter: HAProxy compresses what its services answer too), with
    its body compressed in one chunk, and the counts (bytes in, bytes out); None
    when it is not to be compressed. message: head and Content-Length body."""
    end = message.find(b"\r\n\r\n") + 4
    head, body = message[:end], message[end:]
    if not compressible(int(head[9:12]), request_version, head[5:8].decode("latin-1"),
                        LENGTH, len(body)):
        return None
    fields = response_fields(policy, parse_fields(head))
    if fields is None:
        return None
    encoder = algorithm.encoder(False)
    encoder.feed(body)
    data, taken, made = encoder.flush(last=True)
    out = [head[:head.find(b"\r\n") + 2]]
    for name, value in fields:
        out += (name, b": ", value, b"\r\n")
    out += (b"Transfer-Encoding: chunked\r\n", algorithm.lines, b"\r\n",
            b"%x\r\n" % len(data), data, b"\r\n0\r\n\r\n")
    return b"".join(out), taken, made


# ------------------------------------------------------------------- counters


class Counters:
    """A frontend's or backend's comp_in, comp_out, comp_byp and comp_rsp
    (`show stat`). One object rather than four attributes of the runtime: a
    runtime past 30 attributes loses CPython's shared-key instance dict, and
    every attribute read on the request path gets slower."""

    __slots__ = ("comp_in", "comp_out", "comp_byp", "comp_rsp")

    def __init__(self):
        self.clear()

    def clear(self) -> None:
        self.comp_in = self.comp_out = self.comp_byp = self.comp_rsp = 0

    def add(self, compresses: bool, taken: int, made: int, last: bool) -> None:
        """One flush of an encoder: identity counts what went through as
        bypassing the compressor, as HAProxy does; the last one counts the
        response."""
        if compresses:
            self.comp_in += taken
            self.comp_out += made
        else:
            self.comp_byp += taken
        if last:
            self.comp_rsp += 1


# ------------------------------------------------------------------- encoders


class Encoder:
    """One response body compressed as it streams.

    feed() takes each piece of body the server sent; flush() returns what the
    pieces fed since the last flush became, made complete for the client
    (Z_SYNC_FLUSH), with the counts HAProxy adds to comp_in and comp_out; the
    last flush (last=True) ends the stream. A flush with nothing fed returns
    nothing, so a read without body adds no flush marker.

    wbits None is `compression algo identity`: the body passes unchanged, but
    framed and counted as a compressed one (HAProxy counts it in comp_byp:
    `compresses` is False). HAProxy counts one byte more in and out at the end
    of a chunked body (the block that ends its trailers), so the counts do too.
    """

    __slots__ = ("compresses", "_compress", "_flush", "_parts", "_taken", "_chunked")

    def __init__(self, wbits: int | None, chunked_input: bool):
        self.compresses = wbits is not None
        if self.compresses:
            compressor = zlib.compressobj(LEVEL, zlib.DEFLATED, wbits)
            self._compress = compressor.compress
            self._flush = compressor.flush
        self._parts: list[bytes] = []
        self._taken = 0
        self._chunked = chunked_input

    def feed(self, data: bytes) -> None:
        self._taken += len(data)
        if self.compresses:
            data = self._compress(data)
        if data:
            self._parts.append(data)

    def flush(self, last: bool = False) -> tuple[bytes, int, int]:
        """(bytes for the client, bytes in, bytes out as HAProxy counts them)."""
        taken = self._taken
        if not taken and not last:
            return b"", 0, 0
        parts = self._parts
        if self.compresses:
            parts.append(self._flush(zlib.Z_FINISH if last else zlib.Z_SYNC_FLUSH))
        data = parts[0] if len(parts) == 1 else b"".join(parts)
        parts.clear()
        self._taken = 0
        extra = 1 if last and self._chunked else 0
        return data, taken + extra, len(data) + extra


__all__ = [
    "ALGORITHMS", "Algorithm", "Counters", "Encoder", "LEVEL", "Policy", "STATUSES",
    "VARY_LINE", "compress_whole", "compressible", "list_elements", "old_mozilla", "policy_for", "qvalue",
    "response_fields", "select",
]
