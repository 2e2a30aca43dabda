"""HAProxy's small-object cache (manual section 6), pure: the store and the
decisions around it. No I/O; time comes in as `now` (seconds, monotonic).

What HAProxy 2.6 does, as documented and as it was seen doing on the wire:

- The key is a SHA-1 of "https://" + Host + the request target (an
  absolute-form target is hashed as it is); `show cache` prints its first four
  bytes as a little-endian number. A request without Host has no key.
- A request is looked up when it is a GET or a HEAD in HTTP/1.1, has a key and
  no Authorization. `Cache-Control: no-cache`, `Cache-Control: max-age=0` or
  `Pragma: no-cache` skip the lookup, but the answer is stored, replacing the
  object the cache held. Other methods than GET, HEAD, OPTIONS and TRACE
  remove the object (RFC 9111 section 4.4).
- A response is stored when it answers a GET with 200, has no Cache-Control
  no-cache, no-store or private, no Pragma no-cache, has an expiry (s-maxage,
  else max-age, else Expires) or a validator (ETag, Last-Modified), is still
  fresh given its Age, and fits max-object-size. Its lifetime is the expiry,
  at most the cache's max-age. An object already held for the key stays (the
  new answer is dropped) unless the request skipped the lookup.
- Vary: without process-vary a response with Vary is not stored; with it,
  only accept-encoding and referer may be named. The variant's secondary key
  is the response's Content-Encoding (a bit per registered coding; an unknown
  one is not stored) and a CRC-32 of the request's Referer. A request matches
  a variant that carries a coding it accepts (identity unless refused) and the
  same Referer. HAProxy 2.6 finds again no variant stored for a Vary naming
  referer without accept-encoding: those are stored and never served, as
  there.
- A hit is the stored head (its fields as the http-response rules above
  cache-store left them, without Age) with `age: N` added, N being the
  server's Age plus the seconds the object has been held; a HEAD gets the head
  alone; an If-None-Match that matches the ETag (weakly, or `*`), else an
  If-Modified-Since not older than Last-Modified, gets a 304 with the same
  fields and no body.
- Memory: the cache is split into 1 kB blocks; an object takes what its size
  needs, and the least recently used objects are dropped to make room.
"""

from __future__ import annotations

import hashlib
import zlib
from collections import OrderedDict
from email.utils import parsedate_to_datetime
from typing import NamedTuple

from haply.http.framing import CHUNKED, LENGTH, UNTIL_CLOSE, Framing
from haply.http.trailers import last_chunk

BLOCK_SIZE = 1024  # manual 6: "split in 1kB blocks"
# The size `show cache` reports and max-object-size bounds is that of
# HAProxy's stored representation: a fixed part, the status line's words,
# each field and the body with 4 bytes each, and 4 for the end of the head
# (fitted on HAProxy 2.6's `show cache`: a 12-byte body with two fields is 216).
FIXED_OVERHEAD = 137
BLOCK_INFO = 4
# A field HAProxy removes before storing (Age) still takes its 4 bytes.
REMOVED_FIELD = 4

SAFE_METHODS = frozenset({b"GET", b"HEAD", b"OPTIONS", b"TRACE"})
LOOKUP_METHODS = frozenset({b"GET", b"HEAD"})
# Fields of the connection, not of the object (RFC 9110 section 7.6.1).
HOP_BY_HOP = frozenset({b"connection", b"keep-alive", b"proxy-connection", b"te", b"trailer",
                        b"upgrade"})
VARY_MANAGED = frozenset({b"accept-encoding", b"referer"})
# The codings of the IANA registry HAProxy 2.6 knows, with the bit each has in
# the secondary key (as `show cache` prints it); identity is accepted unless
# refused.
CODING_BITS = {
    b"gzip": 0x1, b"x-gzip": 0x1, b"deflate": 0x2, b"br": 0x4, b"compress": 0x8,
    b"x-compress": 0x8, b"aes128gcm": 0x10, b"exi": 0x20, b"pack200-gzip": 0x40, b"zstd": 0x80,
    b"identity": 0x100,
}
IDENTITY = 0x100
ALL_CODINGS = 0x1FF


class Settings(NamedTuple):
    """A cache section (model.CacheSection) as the store reads it."""

    name: str
    total_size: int
    max_object_size: int
    max_age: int = 60
    process_vary: bool = False
    max_secondary_entries: int = 10

    @classmethod
    def of(cls, section) -> "Settings":
        return cls(section.name, section.total_max_size, section.max_object_size, section.max_age,
                   section.process_vary, section.max_secondary_entries)


# ----------------------------------------------------------------- requests


class RequestPlan(NamedTuple):
    """What the cache does for a request (see `plan_request`)."""

    key: bytes | None  # the primary key; None: nothing to do
    lookup: bool  # answer from the cache if it can
    store: bool  # its answer may be stored (replacing: `replace`)
    replace: bool
    invalidate: bool  # an unsafe method: the object of this key goes
    accepted: int  # the codings it accepts (CODING_BITS)
    referer: int  # CRC-32 of its Referer, 0 without one


NOTHING = RequestPlan(None, False, False, False, False, 0, 0)


def primary_key(target: bytes, host: bytes | None) -> bytes | None:
    if target[:1] != b"/":
        return hashlib.sha1(target).digest()
    if host is None:
        return None
    return hashlib.sha1(b"https://" + host + target).digest()


def plan_request(method: bytes, version: str, target: bytes,
                 headers: list[tuple[bytes, bytes]]) -> RequestPlan:
    """The cache's part in a request: whether it is looked up, whether its
    answer may be stored, whether it removes an object."""
    if version != "1.1":
        return NOTHING
    host = None
    no_cache = authorized = False
    accept_encoding: list[bytes] | None = None
    referer = 0
    for name, value in headers:
        lname = name.lower()
        if lname == b"host":
            host = value
        elif lname == b"authorization":
            authorized = True
        elif lname == b"cache-control":
            directives = _directives(value)
            if b"no-cache" in directives or directives.get(b"max-age") == b"0":
                no_cache = True
        elif lname == b"pragma":
            if b"no-cache" in _directives(value):
                no_cache = True
        elif lname == b"accept-encoding":
            accept_encoding = (accept_encoding or []) + [value]
        elif lname == b"referer":
            referer = zlib.crc32(value)
    key = primary_key(target, host)
    if key is None:
        return NOTHING
    if method not in SAFE_METHODS:
        return RequestPlan(key, False, False, False, True, 0, 0)
    if method not in LOOKUP_METHODS or authorized:
        return NOTHING
    return RequestPlan(key, not no_cache, method == b"GET", no_cache, False,
                       accepted_codings(accept_encoding), referer)


def accepted_codings(values: list[bytes] | None) -> int:
    """The CODING_BITS a request's Accept-Encoding fields accept: every one
    without the field (RFC 9110 section 12.5.3) or for `*`; else those named
    with a q above 0, and identity unless `identity;q=0` refuses it (HAProxy
    2.6 reads no refusal of identity in `*;q=0`). Unknown codings count for
    none."""
    if values is None:
        return ALL_CODINGS
    accepted = IDENTITY
    refused = 0
    for value in values:
        for item in value.split(b","):
            coding, _, params = item.partition(b";")
            coding = coding.strip().lower()
            if not coding:
                continue
            if _q_is_zero(params):
                if coding != b"*":
                    refused |= CODING_BITS.get(coding, 0)
            elif coding == b"*":
                accepted |= ALL_CODINGS
            else:
                accepted |= CODING_BITS.get(coding, 0)
    return accepted & ~refused


def _q_is_zero(params: bytes) -> bool:
    for param in params.split(b";"):
        name, _, value = param.partition(b"=")
        if name.strip().lower() == b"q":
            try:
                return float(value.strip()) == 0
            except ValueError:
                return False
    return False


def _directives(value: bytes) -> dict[bytes, bytes | None]:
    """Cache-Control or Pragma directives, names lower-cased."""
    found: dict[bytes, bytes | None] = {}
    for item in value.split(b","):
        name, sep, argument = item.strip().partition(b"=")
        if name:
            found[name.lower()] = argument.strip().strip(b'"') if sep else None
    return found


# ---------------------------------------------------------------- responses


class Storable(NamedTuple):
    """A response the cache may keep (see `judge_response`)."""

    lifetime: int  # seconds it stays fresh from now
    age: int  # the server's Age
    varies: frozenset  # the managed fields its Vary names
    codings: int  # its Content-Encoding (CODING_BITS), with Vary


def judge_response(status: int, fields: list[tuple[bytes, bytes]], settings: Settings,
                   wall_now: float) -> Storable | None:
    """Whether a response to a GET may be stored, and for how long; None when
    not. wall_now: the time of day (for Expires)."""
    if status != 200:
        return None
    s_maxage = max_age = expires = None
    validator = False
    age = 0
    vary: list[bytes] = []
    encodings: list[bytes] = []
    for name, value in fields:
        lname = name.lower()
        if lname == b"cache-control":
            directives = _directives(value)
            if b"no-cache" in directives or b"no-store" in directives or b"private" in directives:
                return None
            if b"s-maxage" in directives:
                s_maxage = _seconds(directives[b"s-maxage"])
            if b"max-age" in directives:
                max_age = _seconds(directives[b"max-age"])
        elif lname == b"pragma":
            if b"no-cache" in _directives(value):
                return None
        elif lname == b"expires":
            expires = _date(value)
        elif lname == b"etag" or lname == b"last-modified":
            validator = True
        elif lname == b"age":
            age = _seconds(value) or 0
        elif lname == b"vary":
            vary += [item.strip().lower() for item in value.split(b",") if item.strip()]
        elif lname == b"content-encoding":
            encodings += [item.strip().lower() for item in value.split(b",") if item.strip()]
    if s_maxage is not None:
        lifetime = s_maxage
    elif max_age is not None:
        lifetime = max_age
    elif expires is not None:
        lifetime = int(expires - wall_now)
    elif validator:
        lifetime = settings.max_age
    else:
        return None
    lifetime = min(lifetime, settings.max_age)
    if lifetime <= 0 or age > lifetime:
        return None
    varies = frozenset(vary)
    codings = 0
    if varies:
        if not settings.process_vary or not varies <= VARY_MANAGED:
            return None
        for coding in encodings or [b"identity"]:
            bit = CODING_BITS.get(coding)
            if bit is None:
                if b"accept-encoding" in varies:
                    return None  # a coding the secondary key cannot name
                continue
            codings |= bit
    return Storable(lifetime, age, varies, codings)


def _seconds(value: bytes | None) -> int | None:
    if value is None:
        return None
    value = value.strip()
    return int(value) if value.isdigit() else None


def _date(value: bytes) -> float | None:
    try:
        return parsedate_to_datetime(value.decode("latin-1")).timestamp()
    except (TypeError, ValueError, IndexError):
        return None


def stored_size(status: int, reason: bytes, fields: list[tuple[bytes, bytes]],
                removed: int, body_size: int) -> int:
    """The size HAProxy 2.6 gives such an object (see FIXED_OVERHEAD)."""
    size = FIXED_OVERHEAD + len(b"HTTP/1.1") + len(b"%d" % status) + len(reason) + BLOCK_INFO
    for name, value in fields:
        size += len(name) + len(value) + BLOCK_INFO
    size += removed * REMOVED_FIELD
    if body_size:
        size += body_size + BLOCK_INFO
    return size


def stored_fields(fields: list[tuple[bytes, bytes]]) -> tuple[list[tuple[bytes, bytes]], int]:
    """The fields an object keeps (not the connection's, nor Age, which a hit
    writes anew), and how many were removed that HAProxy counts."""
    kept = []
    removed = 0
    for name, value in fields:
        lname = name.lower()
        if lname == b"age":
            removed += 1
        elif lname not in HOP_BY_HOP:
            kept.append((name, value))
    return kept, removed


# -------------------------------------------------------------------- store


class Entry:
    """One stored object."""

    __slots__ = ("key", "secondary", "varies", "codings", "referer", "reason", "fields", "framing",
                 "body", "size", "blocks", "stored_at", "expires", "age", "etag", "last_modified",
                 "trailers")

    def __init__(self, key: bytes, storable: Storable, referer: int, reason: bytes,
                 fields: list[tuple[bytes, bytes]], framing_kind: str, body: bytes, size: int,
                 now: float, trailers: list[tuple[bytes, bytes]] | None = None):
        self.key = key
        self.varies = storable.varies
        self.codings = storable.codings if storable.varies else 0
        self.referer = referer if b"referer" in storable.varies else 0
        self.secondary = (self.codings, self.referer)
        self.reason = reason
        self.fields = fields
        self.framing = framing_kind
        self.body = body
        # a chunked answer's trailer fields: HAProxy's cache keeps them and
        # sends them again after the body of each hit
        self.trailers = trailers
        self.size = size
        self.blocks = -(-size // BLOCK_SIZE)
        self.stored_at = now
        self.expires = now + storable.lifetime
        self.age = storable.age
        self.etag = self.last_modified = None
        for name, value in fields:
            lname = name.lower()
            if lname == b"etag":
                self.etag = value.strip()
            elif lname == b"last-modified":
                self.last_modified = _date(value)

    def matches(self, plan: RequestPlan) -> bool:
        varies = self.varies
        if not varies:
            return True
        if b"accept-encoding" not in varies:
            return False  # HAProxy 2.6 never finds these again (module docstring)
        if not self.codings & plan.accepted:
            return False
        return b"referer" not in varies or self.referer == plan.referer

    def vary_text(self) -> str:
        """The secondary key as `show cache` prints it: the codings, then the
        Referer's CRC, each as four little-endian bytes."""
        data = self.codings.to_bytes(4, "little") + self.referer.to_bytes(4, "little")
        return "0x" + data.hex()


class Store:
    """A cache section's objects, bounded by its size in 1 kB blocks; the
    least recently used go first when room is needed."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.total_blocks = settings.total_size // BLOCK_SIZE
        self.used_blocks = 0
        # (primary key, secondary key) -> Entry, least recently used first
        self.entries: OrderedDict[tuple, Entry] = OrderedDict()
        self.variants: dict[bytes, int] = {}  # primary key -> entries held

    def lookup(self, plan: RequestPlan, now: float) -> Entry | None:
        if not self.variants.get(plan.key):
            return None
        for ident, entry in list(self.entries.items()):
            if entry.key != plan.key:
                continue
            if entry.expires <= now:
                self._remove(ident)
            elif entry.matches(plan):
                self.entries.move_to_end(ident)
                return entry
        return None

    def invalidate(self, key: bytes) -> None:
        if self.variants.get(key):
            for ident in [ident for ident in self.entries if ident[0] == key]:
                self._remove(ident)

    def admits(self, plan: RequestPlan, storable: Storable, now: float) -> bool:
        """Whether an answer may start filling (before its body is read)."""
        if not self.variants.get(plan.key):
            return True
        secondary = self._secondary(storable, plan)
        held = 0
        for ident, entry in list(self.entries.items()):
            if entry.key != plan.key:
                continue
            if entry.expires <= now:
                self._remove(ident)
                continue
            if ident[1] == secondary and not plan.replace:
                return False  # the object held stays
            held += ident[1] != secondary
        return held < self.settings.max_secondary_entries

    @staticmethod
    def _secondary(storable: Storable, plan: RequestPlan) -> tuple[int, int]:
        if not storable.varies:
            return (0, 0)
        return (storable.codings, plan.referer if b"referer" in storable.varies else 0)

    def store(self, plan: RequestPlan, storable: Storable, reason: bytes,
              fields: list[tuple[bytes, bytes]], framing_kind: str, body: bytes, size: int,
              now: float, trailers: list[tuple[bytes, bytes]] | None = None) -> Entry | None:
        """Keep an answer whose body is complete; None when it cannot be."""
        if size > self.settings.max_object_size or not self.admits(plan, storable, now):
            return None
        entry = Entry(plan.key, storable, plan.referer, reason, fields, framing_kind, body, size, now,
                      trailers)
        ident = (plan.key, entry.secondary)
        if ident in self.entries:
            self._remove(ident)
        if entry.blocks > self.total_blocks:
            return None
        while self.used_blocks + entry.blocks > self.total_blocks:
            self._remove(next(iter(self.entries)))
        self.entries[ident] = entry
        self.used_blocks += entry.blocks
        self.variants[plan.key] = self.variants.get(plan.key, 0) + 1
        return entry

    def _remove(self, ident: tuple) -> None:
        entry = self.entries.pop(ident)
        self.used_blocks -= entry.blocks
        left = self.variants[entry.key] - 1
        if left:
            self.variants[entry.key] = left
        else:
            del self.variants[entry.key]

    def purge(self, now: float) -> None:
        for ident in [ident for ident, entry in self.entries.items() if entry.expires <= now]:
            self._remove(ident)


# --------------------------------------------------------------------- hits


class Answer(NamedTuple):
    status: int
    reason: bytes
    fields: list[tuple[bytes, bytes]]
    framing: Framing
    body: bytes  # as it goes on the wire (chunked if the framing is)


NOT_MODIFIED = b"Not Modified"


def answer(entry: Entry, method: bytes, headers: list[tuple[bytes, bytes]], now: float) -> Answer:
    """What a hit sends: the stored head with its age, and the body unless
    the request is a HEAD or its validators make it a 304."""
    fields = entry.fields + [(b"age", b"%d" % (entry.age + int(now - entry.stored_at)))]
    kind = entry.framing
    framing = (Framing(LENGTH, len(entry.body)) if kind == LENGTH
               else Framing(CHUNKED) if kind == CHUNKED else Framing(UNTIL_CLOSE))
    if _not_modified(entry, headers):
        return Answer(304, NOT_MODIFIED, fields, framing, b"")
    if method == b"HEAD":
        return Answer(200, entry.reason, fields, framing, b"")
    body = entry.body
    if kind == CHUNKED:
        body = (b"%x\r\n" % len(body) + body + b"\r\n" if body else b"") + last_chunk(entry.trailers)
    return Answer(200, entry.reason, fields, framing, body)


def _not_modified(entry: Entry, headers: list[tuple[bytes, bytes]]) -> bool:
    none_match = modified_since = None
    for name, value in headers:
        lname = name.lower()
        if lname == b"if-none-match":
            none_match = (none_match or []) + [tag.strip() for tag in value.split(b",")]
        elif lname == b"if-modified-since":
            modified_since = value
    if none_match is not None:
        if b"*" in none_match:
            return True
        if entry.etag is None:
            return False
        own = _weak(entry.etag)
        return any(_weak(tag) == own for tag in none_match)
    if modified_since is not None and entry.last_modified is not None:
        since = _date(modified_since)
        return since is not None and since >= entry.last_modified
    return False


def _weak(tag: bytes) -> bytes:
    return tag[2:] if tag[:2] == b"W/" else tag


# --------------------------------------------------------------- show cache


def show(stores: list[Store], now: float) -> str:
    """HAProxy's `show cache`: each cache, then its objects by hash. The
    addresses are identities, not pointers (there are none to show)."""
    lines = []
    for store in stores:
        store.purge(now)
        ident = id(store)
        lines.append(f"0x{ident:012x}: {store.settings.name} (shctx:0x{ident - 0x3a:012x}, "
                     f"available blocks:{store.total_blocks})\n")
        for entry in sorted(store.entries.values(), key=hash_of):
            lines.append(f"0x{id(entry):012x} hash:{hash_of(entry)} vary:{entry.vary_text()} "
                         f"size:{entry.size} ({entry.blocks} blocks), refcount:0, "
                         f"expire:{int(entry.expires - now)}\n")
    return "".join(lines)


def hash_of(entry: Entry) -> int:
    return int.from_bytes(entry.key[:4], "little")


__all__ = [
    "Answer", "BLOCK_SIZE", "Entry", "RequestPlan", "Settings", "Storable", "Store", "accepted_codings",
    "answer", "hash_of", "judge_response", "plan_request", "primary_key", "show", "stored_fields",
    "stored_size",
]
