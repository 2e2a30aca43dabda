"""The request head haply sends to a server, and the response head it sends back.

A `RequestHeadWriter` / `ResponseHeadWriter` is compiled once per route (a
frontend and the backend it picked) from the proxies' rules; per message it
does one pass over the header list and one b"".join. What it does, in order:

1. hop-by-hop fields go (RFC 9110 §7.6.1): Connection and every field it
   names, Keep-Alive, Proxy-Connection, TE, Upgrade (kept when the proxy
   tunnels an upgrade), and Transfer-Encoding / Content-Length, which the
   writer re-emits itself from the decided `Framing`: the server sees exactly
   the framing haply decided ("Content-Length: 3" for "0003 ", "chunked" for
   "CHUNKED"), so no parser behind can read the body differently from us.
   HAProxy 2.6 forwards these fields as received (observed); haply follows
   the RFC's MUST. Connection options cannot remove Host.
2. http-request (or http-response) del-header / set-header / add-header /
   replace-header / replace-value, in configuration order; names
   case-insensitive; set = delete all, then add; the replace rules rewrite a
   field where it stands (haply.http.rewrite).
   HAProxy runs frontend request rules then backend ones, and backend
   response rules then frontend ones; `for_route` keeps that order.
3. `option forwardfor`: appends "X-Forwarded-For: <client ip>" (or the
   configured name) after the rules, so "del-header X-Forwarded-For" followed
   by forwardfor leaves only haply's value; `except NET` skips clients in NET;
   `if-none` adds only if no such field is present. Then `option originalto`:
   "X-Original-To: <the address the client connected to>", `except NET`
   skipping those addresses; a field the client sent is kept, as HAProxy
   keeps it (the manual tells servers to read the last one).
4. the Connection field for the side: what HAProxy 2.6 sends (observed):
   to a server kept alive, nothing for HTTP/1.1 and "keep-alive" for 1.0; to
   a server closed after the response, "close" for 1.1 and nothing for 1.0;
   to a client, "close" when haply will close, "keep-alive" to a 1.0 client
   it keeps, nothing otherwise; "upgrade" while tunnelling an upgrade. A
   response whose status line says HTTP/1.0 gets "keep-alive" when the client
   is kept and nothing when it is closed, whatever the client's version.

Values of set-header/add-header are HAProxy log-format strings; see
`compile_value` for the supported subset. Rules with an ACL condition take
a predicate from the caller (`compile_condition`), which receives the same
`ctx` object passed to write().
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any, Callable, Iterable, Sequence

from haply.config.model import ForwardFor, HeaderRule, OriginalTo, Proxy
from haply.http import maps
from haply.http.values import comma_values
from haply.http.errors import LocalProtocolError
from haply.http.rewrite import FIELD_ACTIONS, compile_regex, replace_header, replace_values
from haply.http.framing import (
    CHUNKED, LENGTH, TCHAR, UNTIL_CLOSE, Framing, connection_options, minor_version_above,
)

Headers = Sequence[tuple[bytes, bytes]]


def parse_fields(head: bytes) -> list[tuple[bytes, bytes]]:
    """The fields of a raw head (start line, fields, blank line) that llhttp has
    already accepted, as its on_header callback reports them: name as sent,
    value without its leading whitespace (llhttp keeps the trailing one).

    llhttp in its strict mode (httptools' default) refuses bare LF, obs-fold
    and whitespace before the colon, and a head it refused that the proxy
    reads is written anew without them (haply.http.repair), so a split on CRLF
    and on the first colon is the whole grammar here. The proxy asks for this list only when a rule,
    a condition or an unusual head needs it; the common head is rewritten
    from its bytes (`_HeadWriter.raw_fields`).
    """
    fields = []
    for line in head.split(b"\r\n")[1:]:
        if not line:
            break
        name, _, value = line.partition(b":")
        fields.append((name, value.lstrip(b" \t")))
    return fields

# ----------------------------------------------------------------- sample context


class SampleContext:
    """Per-connection facts that header values may print (%[src] ...).

    The proxy may subclass it to carry what its ACL predicates need: the
    writers pass the same object to the rule conditions.

    Built once per client connection by the proxy; addresses are kept as the
    bytes they print as. IPv4-mapped IPv6 peers (a dual-stack "::" listener)
    print and match as IPv4, so "except 10.0.0.0/8" works there too. Values
    printed from here are addresses, ports and 0/1: they cannot carry CR/LF,
    so dynamic header values need no check per request.
    """

    # (and "vars": the connection's sess. variables, from the first set-var)
    vars: dict  # declared: a compiled build (setup.py) has no other attributes
    __slots__ = ("src", "src_port", "dst", "dst_port", "ssl_fc", "_src_ip", "_dst_ip", "tracking", "sni",
                 "vars")

    def __init__(self, src: str = "", src_port: int = 0, dst: str = "", dst_port: int = 0,
                 ssl_fc: bool = False):
        # Built for every connection: only IPv6 text can need normalising (an
        # IPv4-mapped peer prints as IPv4), so plain IPv4 skips the ipaddress
        # module, whose parse costs more than the rest of a request's set-up.
        self.src = _printable(src) if ":" in src else src.encode()
        self.src_port = str(src_port).encode()
        self.dst = _printable(dst) if ":" in dst else dst.encode()
        self.dst_port = str(dst_port).encode()
        self.ssl_fc = b"1" if ssl_fc else b"0"
        # parsed on first use (an "except")
        self._src_ip: Any = False
        self._dst_ip: Any = False
        # The connection's sticky counters (haply.proxy.counters.Tracking), if tracked.
        self.tracking: Any = None
        # ssl_fc_sni: the name a TLS client asked for (haply.tls.sni), when known.
        self.sni: str | None = None

    @property
    def src_ip(self) -> Any:
        if self._src_ip is False:
            self._src_ip = _parse_ip(self.src.decode())
        return self._src_ip

    @property
    def dst_ip(self) -> Any:
        if self._dst_ip is False:
            self._dst_ip = _parse_ip(self.dst.decode())
        return self._dst_ip

    @classmethod
    def from_sockets(cls, peername, sockname, ssl_fc: bool = False) -> "SampleContext":
        """From transport.get_extra_info("peername"/"sockname"); unix sockets print ""."""
        src, src_port = peername[:2] if isinstance(peername, tuple) else ("", 0)
        dst, dst_port = sockname[:2] if isinstance(sockname, tuple) else ("", 0)
        return cls(src, src_port, dst, dst_port, ssl_fc)


def _printable(address: str) -> bytes:
    """An IPv6 address as it prints (SampleContext does IPv4 inline)."""
    ip = _parse_ip(address)
    return (str(ip) if ip is not None else address).encode()


def _parse_ip(text: str):
    try:
        ip = ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return None
    if ip.version == 6 and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


# ----------------------------------------------------------------- log-format values

# The sample fetches and log-format variables a header value may use. The
# log-format aliases (%ci ...) are the ones of the configuration manual,
# section 8.2.4 (client ip/port, frontend ip/port).
_FETCHES = {
    "src": "src", "src_port": "src_port", "dst": "dst", "dst_port": "dst_port",
    "ssl_fc": "ssl_fc",
}
_ALIASES = {"ci": "src", "cp": "src_port", "fi": "dst", "fp": "dst_port"}
# What else a request rule may read of its request (the ctx is the Request).
_REQUEST_FETCHES: dict[str, Callable[[object], bytes]] = {
    "path": lambda request: request.path.encode("latin-1"),
    "query": lambda request: request.query.encode("latin-1"),
    "url": lambda request: request.url,
    "method": lambda request: request.method_bytes,
    # `unique-id-format`'s identifier (nothing without one), with the bytes of
    # the fields it holds as they came (haply.logs.formats._wire_text)
    "unique-id": lambda request: getattr(request, "unique_id", "").encode("utf-8", "surrogateescape"),
}
_HEADER_FETCH = re.compile(r"(req\.)?(f?)hdr\(([!#$%&'*+.^_`|~0-9A-Za-z-]+)(?:,(-?[0-9]+))?\)")
SUPPORTED_VALUE_SEQUENCES = ("%%", *(f"%[{f}]" for f in _FETCHES), *(f"%{a}" for a in _ALIASES))
REQUEST_VALUE_SEQUENCES = (*(f"%[{f}]" for f in _REQUEST_FETCHES), "%[hdr(<name>[,<occ>])]",
                           "%[req.hdr(<name>[,<occ>])]", "%[req.fhdr(<name>[,<occ>])]")

# Bytes a header value may hold (RFC 9110 §5.5): VCHAR, obs-text, SP, HTAB.
_VALUE_OK = bytes([0x09, 0x20]) + bytes(range(0x21, 0x7F)) + bytes(range(0x80, 0x100))


def compile_value(fmt: str, request: bool = False) -> "bytes | Callable[[Any], bytes]":
    """Compile a set-header/add-header log-format value, or raise ValueError.

    Supported: literal text, "%%" for a percent sign, the sample fetches
    %[src] %[src_port] %[dst] %[dst_port] %[ssl_fc] (prints 1 or 0), and the
    log-format variables %ci %cp %fi %fp; in a request rule (`request`)
    also %[path] %[query] %[url] %[method] and %[hdr(NAME)] (the last value,
    commas separating values), %[req.hdr(NAME)], %[req.fhdr(NAME)] (the last
    field whole). Anything else starting with "%" (other fetches, converters
    such as %[src,ipmask(24)], %{+Q} flags, a lone "%") raises ValueError with
    a message the config layer prefixes with file:line. A value without %
    sequences compiles to bytes; otherwise to a callable taking the
    SampleContext (the Request).
    """
    parts: list[bytes | Callable[[Any], bytes]] = []
    literal: list[str] = []
    i, size = 0, len(fmt)
    while i < size:
        char = fmt[i]
        if char != "%":
            literal.append(char)
            i += 1
            continue
        if fmt.startswith("%%", i):
            literal.append("%")
            i += 2
            continue
        if fmt.startswith("%[", i):
            end = fmt.find("]", i)
            if end < 0:
                raise ValueError(f"unterminated sample fetch in {fmt!r} (missing ']')")
            expr = fmt[i + 2:end].strip()
            i = end + 1
            fetch_text, *converters = maps.split_arguments(expr)
            fetch = _request_fetch(fetch_text) if request else None
            if fetch is None and fetch_text in _FETCHES:
                fetch = _getter(_FETCHES[fetch_text])
            if fetch is not None and all(c in ("lower", "upper") or c.startswith("map") for c in converters):
                for converter in converters:
                    fetch = _converted(fetch, converter, fmt)
            else:  # any other expression: haply.proxy.samples evaluates it
                fetch = _expression(expr, fmt, request)
            if literal:
                parts.append(_literal("".join(literal), fmt))
                literal.clear()
            parts.append(fetch)
            continue
        else:
            name = ""
            j = i + 1
            while j < size and fmt[j].isalpha():
                name += fmt[j]
                j += 1
            if name not in _ALIASES:
                raise ValueError(_unsupported(fmt[i:max(j, i + 2)] if j < size or name else "%",
                                              fmt, request))
            attr = _ALIASES[name]
            i = j
        if literal:
            parts.append(_literal("".join(literal), fmt))
            literal.clear()
        parts.append(_getter(attr))
    if literal:
        parts.append(_literal("".join(literal), fmt))
    if not parts:
        return b""
    if len(parts) == 1:
        return parts[0]
    frozen = tuple(parts)
    return lambda ctx: b"".join([p if p.__class__ is bytes else p(ctx) for p in frozen])


def _converted(fetch: Callable[[object], bytes], converter: str, fmt: str
               ) -> Callable[[object], bytes]:
    """fetch followed by a converter: lower, upper, or a map lookup (a map
    that finds nothing and has no default gives nothing)."""
    if converter == "lower":
        return lambda ctx: fetch(ctx).lower()
    if converter == "upper":
        return lambda ctx: fetch(ctx).upper()
    try:
        find = maps.map_converter(converter)
    except maps.MapError as error:
        raise ValueError(f"{error} (in {fmt!r})") from None
    if find is None:
        raise ValueError(f"converter '{converter}' in {fmt!r} is not supported by haply "
                         "(lower, upper and the map converters are)")

    def mapped(ctx) -> bytes:
        value = find(fetch(ctx).decode("latin-1"))
        return value.encode("latin-1") if value is not None else b""
    return mapped


def _expression(expr: str, fmt: str, request: bool) -> Callable[[object], bytes]:
    """A %[...] sample expression as a value: its text (nothing without a
    sample), without the control characters a decoded value may hold (a
    field cannot carry them)."""
    from haply.proxy import samples  # imported here: it reads the headers' helpers

    try:
        sample = samples.compile_expression(expr, response=not request)
    except samples.SampleError as error:
        raise ValueError(f"{error} (in {fmt!r})") from None
    as_text = samples.as_text

    def value(ctx) -> bytes:
        text = as_text(sample(ctx))
        if not text:
            return b""
        data = text.encode("latin-1", "replace")
        return data if not data.translate(None, _VALUE_OK) else data.translate(None, _CONTROL)
    return value


_CONTROL = bytes(range(0x09)) + bytes(range(0x0A, 0x20)) + b"\x7f"


def _request_fetch(expr: str) -> Callable[[object], bytes] | None:
    fetch = _REQUEST_FETCHES.get(expr)
    if fetch is not None:
        return fetch
    match = _HEADER_FETCH.fullmatch(expr)
    if match is None:
        return None
    name = match.group(3).lower()
    # HAProxy's occurrence: 1 the first, -1 (or 0, or none) the last, -2 the
    # one before; one that is not there gives nothing
    occurrence = int(match.group(4) or 0)
    index = occurrence - 1 if occurrence > 0 else occurrence or -1
    if match.group(2):  # fhdr: whole fields, commas and all
        return lambda request: _nth(request.header(name), index).encode("latin-1")
    return lambda request: _nth(comma_values(request.header(name)), index).encode("latin-1")


def _nth(values: list[str], index: int) -> str:
    try:
        return values[index]
    except IndexError:
        return ""


def _unsupported(sequence: str, fmt: str, request: bool = False) -> str:
    supported = SUPPORTED_VALUE_SEQUENCES + (REQUEST_VALUE_SEQUENCES if request else ())
    return (f"unsupported log-format sequence {sequence!r} in value {fmt!r}; "
            f"supported: {', '.join(supported)} (write %% for a literal percent sign)")


def _literal(text: str, fmt: str) -> bytes:
    data = text.encode()
    if data.translate(None, _VALUE_OK):
        raise ValueError(f"header value {fmt!r} contains a control character "
                         "(CR, LF, NUL ...)")
    return data


def _getter(attr: str) -> Callable[[Any], bytes]:
    def get(ctx: Any) -> bytes:
        return getattr(ctx, attr)
    get.__name__ = f"fetch_{attr}"
    return get


def compile_name(name: str) -> bytes:
    """A header name from configuration as bytes, or ValueError if not a token."""
    data = name.encode("ascii", "replace")
    if not data or data.translate(None, TCHAR):
        raise ValueError(f"invalid header name {name!r}")
    return data


# ------------------------------------------------------------------- header rules

SET, ADD, DEL = "set-header", "add-header", "del-header"
REPLACE_HEADER, REPLACE_VALUE = "replace-header", "replace-value"
_ACTIONS = (SET, ADD, DEL, REPLACE_HEADER, REPLACE_VALUE)
Condition = Callable[[object], bool]


class HeaderOp:
    """One compiled header rule."""

    __slots__ = ("action", "name", "lname", "value", "condition", "regex")

    def __init__(self, action: str, name: bytes, value=None, condition: Condition | None = None,
                 regex: re.Pattern[bytes] | None = None):
        if action not in _ACTIONS:
            raise ValueError(f"unsupported header action {action!r}")
        self.action = action
        self.name = name
        self.lname = name.lower()
        self.value = value
        self.condition = condition
        self.regex = regex  # replace-header, replace-value

    @property
    def static(self) -> bool:
        """Whether its effect is the same for every message (then computed once)."""
        return self.condition is None and not callable(self.value) and self.regex is None


def compile_header_rules(rules: Iterable[HeaderRule],
                         compile_condition: Callable[[object], Condition] | None = None,
                         request: bool = False) -> tuple[HeaderOp, ...]:
    """The rules that edit fields (set/add/del-header, replace-header/value)
    as HeaderOps; other actions are skipped. `request`: the rules of requests,
    whose values may read the request (compile_value).

    ValueError names the rule's location, for `haply -c`.
    """
    ops = []
    for rule in rules:
        if rule.action not in _ACTIONS:
            continue  # deny, redirect ... belong to other layers
        try:
            name = compile_name(rule.name)
            value = regex = None
            if rule.action in FIELD_ACTIONS:
                regex = compile_regex(rule.pattern)
            if rule.action != DEL:
                value = compile_value(rule.value or "", request)
            condition = None
            if rule.condition is not None:
                if compile_condition is None:
                    raise ValueError("conditions need an ACL evaluator")
                condition = compile_condition(rule.condition)
        except ValueError as exc:
            raise ValueError(f"{rule.location}: {rule.action}: {exc}") from None
        ops.append(HeaderOp(rule.action, name, value, condition, regex))
    return tuple(ops)


def _apply_in_order(ops: Sequence[HeaderOp], headers: Headers, ctx) -> list[tuple[bytes, bytes]]:
    """The fields once every rule has run, in order, on the message's own:
    for writers with replace rules, which edit fields where they stand. A
    replacement that would put a control character in a field is not made."""
    fields = list(headers)
    for op in ops:
        if op.condition is not None and not op.condition(ctx):
            continue
        action = op.action
        lname = op.lname
        if action == SET or action == DEL:
            fields = [field for field in fields if field[0].lower() != lname]
        if action == SET or action == ADD:
            fields.append((op.name, op.value if op.value.__class__ is bytes else op.value(ctx)))
        elif action != DEL:
            replace = replace_header if action == REPLACE_HEADER else replace_values
            for index, (name, value) in enumerate(fields):
                if name.lower() == lname:
                    new = replace(value, op.regex, op.value, ctx)
                    if new is not None and not new.translate(None, _VALUE_OK):
                        fields[index] = (name, new)
    return fields


# The fields a prefix of the rules leaves (the cache stores them, haply.proxy.caching).
apply_in_order = _apply_in_order


def _run_ops(ops: Sequence[HeaderOp], ctx) -> tuple[set[bytes], list[tuple[bytes, bytes]]]:
    """Apply rules in order: (names deleted from the message, fields appended)."""
    deleted: set[bytes] = set()
    added: list[tuple[bytes, bytes]] = []  # (lname, b"Name: value\r\n")
    for op in ops:
        if op.condition is not None and not op.condition(ctx):
            continue
        if op.action != ADD:  # del and set delete every field of that name first
            deleted.add(op.lname)
            if added:
                added = [field for field in added if field[0] != op.lname]
        if op.action != DEL:
            value = op.value if op.value.__class__ is bytes else op.value(ctx)
            added.append((op.lname, op.name + b": " + value + b"\r\n"))
    return deleted, added


# ------------------------------------------------------- forwardfor, originalto


class CompiledAddressField:
    """`option forwardfor` (the client's address) or `option originalto` (the
    address the client connected to) of a route, merged from frontend and
    backend."""

    __slots__ = ("name", "lname", "prefix", "excepts", "if_none", "destination")

    def __init__(self, name: bytes, excepts: tuple, if_none: bool = False,
                 destination: bool = False):
        self.name = name
        self.lname = name.lower()
        self.prefix = name + b": "
        self.excepts = excepts  # the `except` networks of the enabling proxies
        self.if_none = if_none
        self.destination = destination  # print dst (originalto), else src

    def value(self, ctx: Any) -> bytes | None:
        """The field's value for this connection, None when an enabling proxy
        excepts the address (HAProxy skips the field if any of them does)."""
        address = ctx.dst if self.destination else ctx.src
        if not self.excepts:
            return address  # no `except`: the address is never parsed
        ip = ctx.dst_ip if self.destination else ctx.src_ip
        if ip is not None:
            for network in self.excepts:
                if ip.version == network.version and ip in network:
                    return None
        return address


def compile_forward_for(frontend: ForwardFor | None, backend: ForwardFor | None
                        ) -> CompiledAddressField | None:
    """Merge per the manual ("option forwardfor"): added if either proxy enables
    it; the backend's header name wins; if-none only when every enabling proxy
    says if-none. Not added when either enabling proxy's `except` holds the
    client (observed on HAProxy 2.6, which the manual leaves unsaid)."""
    enabled = [ff for ff in (frontend, backend) if ff is not None]
    if not enabled:
        return None
    return CompiledAddressField(compile_name((backend or frontend).header),
                                _except_networks("forwardfor", enabled),
                                all(ff.if_none for ff in enabled))


def compile_original_to(frontend: OriginalTo | None, backend: OriginalTo | None
                        ) -> CompiledAddressField | None:
    """`option originalto`, merged as forwardfor is (manual: added if either
    enables it, the backend's header name wins); it has no if-none."""
    enabled = [ot for ot in (frontend, backend) if ot is not None]
    if not enabled:
        return None
    return CompiledAddressField(compile_name((backend or frontend).header),
                                _except_networks("originalto", enabled), destination=True)


def _except_networks(option: str, enabled: list) -> tuple:
    networks = []
    for setting in enabled:
        if setting.except_network:
            try:
                networks.append(ipaddress.ip_network(setting.except_network, strict=False))
            except ValueError:
                raise ValueError(f"option {option}: invalid network "
                                 f"{setting.except_network!r}") from None
    return tuple(networks)


# ------------------------------------------------------------------ the writers

_HOP_BY_HOP = frozenset((b"connection", b"keep-alive", b"proxy-connection", b"te",
                         b"upgrade"))
_FRAMING_FIELDS = frozenset((b"content-length", b"transfer-encoding"))
# Connection options that never remove a field (RFC 9110 §7.6.1 abuse such as
# "Connection: close, Host"); framing fields are re-emitted anyway.
_PROTECTED = frozenset((b"host", b"content-length", b"transfer-encoding"))
# Connection options that are not field names to remove (or are protected).
_NOT_FIELD_OPTIONS = _PROTECTED | {b"close", b"keep-alive", b"upgrade"}
# Connection values that name no field (lower-cased, as `scan` reports them).
_PLAIN_CONNECTION = frozenset((b"close", b"keep-alive"))
_VERSIONS = {"1.1": b"HTTP/1.1", "1.0": b"HTTP/1.0"}
_RAW_VERSIONS = frozenset(_VERSIONS.values())
_CONN_CLOSE = b"Connection: close\r\n"
_CONN_KEEP_ALIVE = b"Connection: keep-alive\r\n"
_CONN_UPGRADE = b"Connection: upgrade\r\n"
_TE_CHUNKED = b"Transfer-Encoding: chunked\r\n"


_FRAMING_FIELDS = frozenset({b"content-length", b"transfer-encoding"})


class _HeadWriter:
    """What both writers share: rules, drop sets, the single pass."""

    def __init__(self, ops: Sequence[HeaderOp] = ()):
        self.ops = tuple(ops)
        self.static = all(op.static for op in self.ops)
        # With a replace rule every rule runs on the message's own fields
        # (_apply_in_order); without, they come down to names to drop and
        # lines to append (_run_ops), computed once when static.
        self.in_order = any(op.regex is not None for op in self.ops)
        # Precomputed when no rule depends on the request: the per-message work
        # is then a set lookup per field and appending one ready-made tail.
        deleted, added = _run_ops(self.ops, None) if self.static else (set(), [])
        self._static_deleted = frozenset(deleted)
        self._static_added = added
        base = _HOP_BY_HOP | self._static_deleted
        # (framed?, upgrade?) -> names dropped from the received fields
        drops = {
            (False, False): base,
            (True, False): base | _FRAMING_FIELDS,
            (False, True): base - {b"upgrade"},
            (True, True): (base | _FRAMING_FIELDS) - {b"upgrade"},
        }
        # (framed?, upgrade?) -> (names dropped, lengths of those names)
        self._drop = {key: (names, frozenset(map(len, names))) for key, names in drops.items()}
        # The raw path (`raw_fields`) looks only at the fields it may drop or
        # rewrite, found by one regular expression over the lower-cased head
        # (faster than a case-insensitive one); llhttp has already refused
        # whitespace before a colon, so "\r\nname:" starts such a field.
        names = sorted(base | _FRAMING_FIELDS | self._watched(), key=len, reverse=True)
        self._special = re.compile(
            rb"\r\n(" + b"|".join(map(re.escape, names)) + rb"):[ \t]*([^\r\n]*)")
        # What raw_fields searches the lower-cased head for, per name it reports.
        self._line_starts = {name: b"\r\n" + name + b":" for name in names}
        self._static_lines = [line for _, line in added]

    def _watched(self) -> frozenset[bytes]:
        """Names the raw path must also report to the caller (not dropped)."""
        return frozenset()

    def scan(self, head: bytes) -> tuple[bytes, list[tuple[bytes, bytes]]]:
        """(head lower-cased, fields): the fields of a raw head this writer may
        drop or rewrite, plus the framing fields, in head order, as (name,
        value) lower-cased, the value as llhttp reports it. Enough for
        `framing.request_framing` / `response_framing`, which only read those."""
        low = head.lower()
        return low, self._special.findall(low)

    def raw_fields(self, out: list, head: bytes, low: bytes,
                   fields: list[tuple[bytes, bytes]], framing: Framing,
                   upgrade: bool) -> bool | None:
        """Append head without its blank line as slices, the dropped fields cut
        out and the framing field rewritten in place (what `_fields` does field
        by field, for the same result), then the static rules' lines; return
        whether the framing field was written, or None when a Connection option
        names another field to remove (rare: the caller then takes the
        field-list path). `low` and `fields` come from `scan(head)`.

        Only for writers whose rules are static (`self.static`).
        """
        kind = framing.kind
        framed = kind == LENGTH or kind == CHUNKED
        # a 1xx or 204 loses its framing fields, as the duplicates of a framed one
        drop = self._drop[framed or framing.length < 0, upgrade][0]
        pos = 0  # head[:pos] is written
        search = 0  # fields before this offset are found
        placed = False
        connection = None
        line_starts = self._line_starts
        for lname, value in fields:
            if framed and lname in _FRAMING_FIELDS:
                start = low.find(line_starts[lname], search)
                search = start + 2
                if placed:
                    end = search = low.find(b"\r\n", search)
                    out.append(head[pos:start])
                    pos = end
                    continue
                placed = True
                canonical = b"%d" % framing.length if kind == LENGTH else b"chunked"
                # "\r\nName: value" with one space, no trailing blank and the
                # value in canonical case (chunked, not Chunked) is kept as the
                # server wrote it (the name's case too)
                at = start + len(lname) + 4  # where the value starts, after ": "
                if value != canonical or not head.startswith(canonical, at) or \
                        not low.startswith(b"\r\n", at + len(value)):
                    end = search = low.find(b"\r\n", search)
                    out += (head[pos:start], b"\r\n", head[start + 2:start + 2 + len(lname)],
                            b": ", canonical)
                    pos = end
            elif lname in drop:
                start = low.find(line_starts[lname], search)
                end = search = low.find(b"\r\n", start + 2)
                out.append(head[pos:start])
                pos = end
                if lname == b"connection" and value not in _PLAIN_CONNECTION:
                    if connection is None:
                        connection = []
                    connection.append((lname, value))
        if connection is not None and connection_options(connection) - _NOT_FIELD_OPTIONS:
            return None
        out.append(head[pos:-2])
        out += self._static_lines
        return placed

    def _fields(self, out: list, headers: Headers, framing: Framing, upgrade: bool,
                ctx, options: frozenset[bytes] | None, ff_lname: bytes | None
                ) -> tuple[list[tuple[bytes, bytes]], bool, bool]:
        """Append kept fields to out; return (fields the rules add, ff name seen,
        framing field written).

        The framing field (Content-Length or Transfer-Encoding) is rewritten from
        the decided framing where the message had it, so the field order the
        server sees is the client's, as with HAProxy.

        A field name is lower-cased only when its length is that of a name to
        drop (or of the forwardfor name), so most fields cost a len() and a
        set lookup. Connection options are gathered in the same pass unless
        the caller passes them; the rare options naming other fields are then
        applied by filtering `out` afterwards.
        """
        framed = framing.kind == LENGTH or framing.kind == CHUNKED
        drop, lengths = self._drop[framed or framing.length < 0, upgrade]
        if self.static:
            added = self._static_added
        elif self.in_order:
            headers = _apply_in_order(self.ops, headers, ctx)
            added = []
        else:
            deleted, added = _run_ops(self.ops, ctx)
            if deleted:
                drop = drop | deleted
                lengths = lengths | set(map(len, deleted))
        if options is not None:
            extra = options - _NOT_FIELD_OPTIONS
            if extra:
                drop = drop | extra
                lengths = lengths | set(map(len, extra))
        ff_size = len(ff_lname) if ff_lname is not None else -1
        collected: list[bytes] | None = None
        start = len(out)
        seen = False
        placed = False
        for name, value in headers:
            size = len(name)
            if size in lengths:
                lname = name.lower()
                if framed and lname in _FRAMING_FIELDS and not placed:
                    out += (name, b": ", self._framing_value(framing), b"\r\n")
                    placed = True
                    continue
                if lname in drop:
                    if options is None and size == 10 and lname == b"connection":
                        if collected is None:
                            collected = []
                        collected.append(value)
                    continue
            if size == ff_size and name.lower() == ff_lname:
                seen = True
            out += (name, b": ", value, b"\r\n")
        if collected is not None:
            extra = connection_options([(b"connection", v) for v in collected]) \
                - _NOT_FIELD_OPTIONS
            if extra:
                kept = out[start:]
                del out[start:]
                for i in range(0, len(kept), 4):
                    if kept[i].lower() not in extra:
                        out += kept[i:i + 4]
                if ff_lname is not None:
                    seen = any(out[i].lower() == ff_lname for i in range(start, len(out), 4))
        return added, seen, placed

    @staticmethod
    def _framing_value(framing: Framing) -> bytes:
        return b"%d" % framing.length if framing.kind == LENGTH else b"chunked"

    @staticmethod
    def _framing_line(framing: Framing) -> bytes:
        if framing.kind == LENGTH:
            return b"Content-Length: %d\r\n" % framing.length
        if framing.kind == CHUNKED:
            return _TE_CHUNKED
        return b""


# Field names a request head must not pass unchanged (hop-by-hop, framing), and
# their lengths: the proxy flags a request carrying one while its parser reports
# fields, so a request without any can pass as received (`write_plain`).
REWRITTEN = _HOP_BY_HOP | _FRAMING_FIELDS
REWRITTEN_SIZES = frozenset(map(len, REWRITTEN))
# A Connection field with one of these values names no other field: the proxy
# may cut it from a plain request (its own Connection field follows).
PLAIN_CONNECTION_VALUES = frozenset((b"keep-alive", b"close"))


class RequestHeadWriter(_HeadWriter):
    """Builds the request head sent to a server."""

    def __init__(self, ops: Sequence[HeaderOp] = (), forward_for: CompiledAddressField | None = None,
                 original_to: CompiledAddressField | None = None):
        super().__init__(ops)
        self.forward_for = forward_for
        self.original_to = original_to
        # write_plain applies: rules that only add fields, and a forwardfor
        # that needs not know whether the request already has the field.
        self.plain = self.static and not self._static_deleted and not (
            forward_for is not None and forward_for.if_none)

    def write_plain(self, head: bytes, cut: bytes | None, version: str, keep_alive: bool,
                    ctx: Any) -> bytes | None:
        """What `write` returns for a request without body whose head, as
        received (request line to blank line, checked by llhttp), has no field
        to drop or rewrite except at most one `cut`: "Name: value" of a plain
        Connection field (PLAIN_CONNECTION_VALUES), removed as written. The
        client's field lines pass as they came; the rules' lines, forwardfor,
        originalto and haply's Connection field are inserted before the blank
        line.

        Only when `self.plain`; the caller checked the fields and the framing.
        None when `cut` is not found as written (then `write` does it).
        """
        if cut is not None:
            at = head.find(b"\r\n" + cut + b"\r\n")
            if at < 0:
                return None  # spaced otherwise: `write` cuts it
            head = head[:at] + head[at + len(cut) + 2:]
        out = [head[:-2]]
        out += self._static_lines
        ff = self.forward_for
        if ff is not None:
            value = ff.value(ctx)
            if value is not None:
                out += (ff.prefix, value, b"\r\n")
        if self.original_to is not None:
            self._add_original_to(out, ctx)
        if keep_alive:
            if version == "1.0":
                out.append(_CONN_KEEP_ALIVE)
        elif version == "1.1":
            out.append(_CONN_CLOSE)
        out.append(b"\r\n")
        return b"".join(out)

    def write(self, method: bytes, url: bytes, version: str, headers: Headers,
              framing: Framing, keep_alive: bool, ctx: Any,
              upgrade: bool = False, options: frozenset[bytes] | None = None) -> bytes:
        """The complete head, ending with the blank line.

        keep_alive: haply keeps the server connection after the response
        (framing.server_keep_alive(server mode)). upgrade: the proxy tunnels
        this request's Upgrade. options: connection_options(headers) if the
        caller already has it.
        """
        version_bytes = _VERSIONS.get(version)
        if version_bytes is None:
            raise LocalProtocolError(f"cannot forward HTTP version {version!r}")
        out = [method, b" ", url, b" ", version_bytes, b"\r\n"]
        ff = self.forward_for
        ff_check = ff is not None and ff.if_none
        added, seen, placed = self._fields(out, headers, framing, upgrade, ctx, options,
                                   ff.lname if ff_check else None)
        for lname, line in added:
            out.append(line)
            if ff_check and lname == ff.lname:
                seen = True
        if ff is not None and not (ff_check and seen):
            value = ff.value(ctx)
            if value is not None:
                out += (ff.prefix, value, b"\r\n")
        if self.original_to is not None:
            self._add_original_to(out, ctx)
        if upgrade:
            out.append(_CONN_UPGRADE)
        elif keep_alive:
            if version == "1.0":
                out.append(_CONN_KEEP_ALIVE)
        elif version == "1.1":
            out.append(_CONN_CLOSE)
        out += (b"" if placed else self._framing_line(framing), b"\r\n")
        return b"".join(out)


    def _add_original_to(self, out: list, ctx: Any) -> None:
        # After X-Forwarded-For, as HAProxy 2.6 places them (observed).
        ot = self.original_to
        value = ot.value(ctx)
        if value is not None:
            out += (ot.prefix, value, b"\r\n")


class ResponseHeadWriter(_HeadWriter):
    """Builds the response head sent back to the client."""

    def write(self, version: str, status: int, reason: bytes, headers: Headers,
              framing: Framing, keep_alive: bool, request_version: str,
              ctx: Any, upgrade: bool = False,
              options: frozenset[bytes] | None = None) -> bytes:
        """The complete head, ending with the blank line.

        keep_alive: haply keeps the client connection after this response
        (framing.keep_alive on the client side). A response running until
        close forces "Connection: close" whatever keep_alive says.
        """
        version_bytes = _VERSIONS.get(version)
        if version_bytes is None:
            if not minor_version_above(version):
                raise LocalProtocolError(f"cannot forward HTTP version {version!r}")
            version_bytes = b"HTTP/1.1"  # a server's 1.2 to 1.9, read as 1.1 (RFC 9112 §2.6)
        out = [version_bytes, b" %d " % status, reason, b"\r\n"]
        added, _, placed = self._fields(out, headers, framing, upgrade, ctx, options, None)
        for _, line in added:
            out.append(line)
        return self._tail(out, status, framing, keep_alive, request_version, upgrade, placed,
                          version == "1.0")

    def write_raw(self, head: bytes, low: bytes, fields: list, status: int,
                  framing: Framing, keep_alive: bool, request_version: str) -> bytes | None:
        """What `write` returns, built from the server's raw head (llhttp-checked,
        leading CRLFs removed) and `scan(head)`'s low and fields; None when only `write` can do it
        (rules that depend on the message, a Connection option naming a field,
        an upgrade, a status line without a reason phrase).

        The server's field lines pass as they came (its spacing after the
        colon included): the usual response costs two slices and a join.
        """
        if not self.static or head[12:13] != b" " or head[:8] not in _RAW_VERSIONS:
            return None
        out: list[bytes] = []
        placed = self.raw_fields(out, head, low, fields, framing, False)
        if placed is None:
            return None
        return self._tail(out, status, framing, keep_alive, request_version, False, placed,
                          head[7] == 48)  # HTTP/1.0

    def _tail(self, out: list, status: int, framing: Framing, keep_alive: bool,
              request_version: str, upgrade: bool, placed: bool, response_10: bool) -> bytes:
        """The Connection field and the framing line. An HTTP/1.0 status line
        means close unless it says keep-alive (RFC 9112 §9.3), whatever the
        client's version: HAProxy says keep-alive on it when it keeps the
        connection, and nothing when it closes it."""
        if upgrade:
            out.append(_CONN_UPGRADE)
        elif status < 200:
            pass  # an interim response (100 Continue ...) says nothing about the connection
        elif keep_alive and framing.kind != UNTIL_CLOSE:
            if request_version == "1.0" or response_10:
                out.append(_CONN_KEEP_ALIVE)
        elif not response_10:
            out.append(_CONN_CLOSE)
        out += (b"" if placed else self._framing_line(framing), b"\r\n")
        return b"".join(out)


def _same(frontend: Proxy, backend: Proxy) -> bool:
    return frontend is backend or frontend.name == backend.name and frontend.kind == backend.kind


def response_rules_of(frontend: Proxy, backend: Proxy) -> tuple:
    """The http-response rules of a pair, in HAProxy's order: the backend's,
    then the frontend's (once for a listen section)."""
    return (() if _same(frontend, backend) else backend.http_response_rules) + \
        frontend.http_response_rules


def for_route(frontend: Proxy, backend: Proxy,
              compile_condition: Callable[[object], Condition] | None = None,
              compile_response_condition: Callable[[object], Condition] | None = None
              ) -> tuple[RequestHeadWriter, ResponseHeadWriter]:
    """The two writers of a frontend/backend pair (the same proxy for a listen).
    The response rules' conditions are compiled by compile_response_condition
    when given (an http-response rule cannot read everything a request rule can).

    Request rules: frontend's then backend's; response rules: backend's then
    frontend's (HAProxy's evaluation order). Raises ValueError for rules the
    config layer should have refused.
    """
    same = _same(frontend, backend)
    request_rules = frontend.http_request_rules + (() if same else backend.http_request_rules)
    if frontend.unique_id_header is not None:
        # added (a field the client sent stays) after every rule, as HAProxy adds it
        request_rules += (HeaderRule("add-header", frontend.unique_id_header, "%[unique-id]"),)
    response_rules = response_rules_of(frontend, backend)
    forward_for = compile_forward_for(frontend.forward_for,
                                      None if same else backend.forward_for)
    original_to = compile_original_to(frontend.original_to,
                                      None if same else backend.original_to)
    return (RequestHeadWriter(compile_header_rules(request_rules, compile_condition, request=True),
                              forward_for, original_to),
            ResponseHeadWriter(compile_header_rules(response_rules,
                                                    compile_response_condition or compile_condition)))


__all__ = [
    "ADD", "DEL", "SET", "CompiledAddressField", "HeaderOp", "RequestHeadWriter",
    "ResponseHeadWriter", "SUPPORTED_VALUE_SEQUENCES", "SampleContext",
    "compile_forward_for", "compile_header_rules", "compile_original_to", "compile_name", "compile_value",
    "for_route",
]
