"""Sample expressions (manual 7.3): a fetch and the converters after it,
`req.hdr(host),lower,field(1,:)`, compiled once into a function of a view
(a request, as the http-request and http-response rules see it).

Pure. A sample is typed as HAProxy types it: text (`str`, one character
per byte as the wire carries it), integer (`int`, 64-bit signed), boolean
(`bool`) or address (`ipaddress` object); None is "no sample", which every
converter passes on. A converter casts its input as HAProxy casts it: an
integer prints in decimal, a boolean as 1 or 0, text reads as the integer it
starts with (0 without one), and the binary form of an integer is its eight
bytes in network order (what `hex` prints). Each converter's behaviour was
checked against HAProxy 2.6 on the same expressions
(tests/interop/test_variables_oracle.py).

`compile_expression` raises SampleError, with the fetch or converter named,
for anything it does not know; a configuration never starts with an
expression haply would evaluate otherwise than HAProxy.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import re
from typing import Callable
from urllib.parse import unquote_to_bytes

from haply.balance.hashing import avalanche, crc32, djb2, sdbm
from haply.config.acl import ALIASES, READS_PAYLOAD
from haply.http import maps
from haply.http.values import comma_values, cookie_values
from haply.logs import json_text
from haply.proxy import counters, variables
from haply.proxy.variables import as_text

Sample = Callable[[object], object]

_INT64 = (1 << 63) - 1


class SampleError(ValueError):
    pass


# ------------------------------------------------------------------ casts


_LEADING_INTEGER = re.compile(r"[+-]?[0-9]+")


def as_int(value) -> int | None:
    if value is None or value.__class__ is int:
        return value
    if value.__class__ is bool:
        return int(value)
    if value.__class__ is str:
        match = _LEADING_INTEGER.match(value)
        return _clamp(int(match.group())) if match is not None else 0
    if isinstance(value, ipaddress.IPv4Address):
        return int(value)
    return None


def as_binary(value) -> bytes | None:
    if value is None:
        return None
    if value.__class__ is str:
        return value.encode("latin-1", "replace")
    if value.__class__ is int:
        return (value & ((1 << 64) - 1)).to_bytes(8, "big")
    if isinstance(value, (ipaddress.IPv4Address, ipaddress.IPv6Address)):
        return value.packed
    return None


def _clamp(number: int) -> int:
    return max(-_INT64 - 1, min(_INT64, number))


def _address(text: str):
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if address.version == 6 and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


# ---------------------------------------------------------------- fetches


# What a backslash protects in an argument (any other backslash stays: a
# regsub replacement's \\1).
_ESCAPABLE = frozenset("\\'\",() ")
_NAME_CHARACTERS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-")


def parse_chain(text: str) -> list[tuple[str, list[str], str]]:
    """`fetch(a,b),conv(c),conv2` -> [(name, arguments, its text), ...], as
    HAProxy reads an expression: an argument list ends at the first ')'
    that is not quoted ('...' or "...") or escaped with a backslash, so a
    regular expression holding parentheses is written quoted."""
    chain = []
    i, size = 0, len(text)
    while True:
        start = i
        while i < size and text[i] in _NAME_CHARACTERS:
            i += 1
        name = text[start:i]
        if not name:
            raise SampleError(f"expected a sample fetch or converter name at '{text[start:] or text}'")
        args: list[str] = []
        if i < size and text[i] == "(":
            i += 1
            current: list[str] = []
            quote = None
            touched = False  # the list holds something, be it an empty quoted text
            while True:
                if i >= size:
                    raise SampleError(f"'{text[start:]}': missing ')'")
                char = text[i]
                touched = touched or char != ")"
                if char == "\\" and i + 1 < size and text[i + 1] in _ESCAPABLE:
                    current.append(text[i + 1])
                    i += 2
                    continue
                if quote is not None:
                    if char == quote:
                        quote = None
                    else:
                        current.append(char)
                elif char in "'\"":
                    quote = char
                elif char == ",":
                    args.append("".join(current))
                    current = []
                elif char == ")":
                    if touched:
                        args.append("".join(current))
                    i += 1
                    break
                else:
                    current.append(char)
                i += 1
        chain.append((name, args, text[start:i]))
        if i == size:
            return chain
        if text[i] != ",":
            raise SampleError(f"unexpected '{text[i:]}' after '{text[start:i]}' (a ')' ends "
                              "the arguments: quote one that holds parentheses)")
        i += 1


def _nth(values: list[str], occurrence: int) -> str | None:
    """HAProxy's occurrence: 1 the first, -1 (or 0) the last."""
    index = occurrence - 1 if occurrence > 0 else occurrence or -1
    try:
        return values[index]
    except IndexError:
        return None


def _header_fetch(whole: bool) -> Callable[[list[str]], Sample]:
    def build(args: list[str]) -> Sample:
        if not args or not args[0]:
            raise SampleError("needs a header name, as in req.hdr(host)")
        name = args[0].lower()
        occurrence = _integer_argument(args[1], "occurrence") if len(args) > 1 else 0
        if whole:
            return lambda view: _nth(view.header(name), occurrence)
        return lambda view: _nth(comma_values(view.header(name)), occurrence)
    return build


def _header_count(args: list[str]) -> Sample:
    name = args[0].lower() if args and args[0] else None
    if name is None:
        return lambda view: sum(len(comma_values([v])) for _, v in _fields(view))
    return lambda view: len(comma_values(view.header(name)))


def _fields(view):
    return [(k, v.decode("latin-1")) for k, v in getattr(view, "headers", ())]


def _cookie(args: list[str]) -> Sample:
    if not args or not args[0]:
        raise SampleError("needs a cookie name, as in req.cook(SERVERID)")
    name = args[0]

    def last_cookie(view):
        values = cookie_values(view.header("cookie"), name)
        return values[-1] if values else None
    return last_cookie


def _query(view) -> str | None:
    uri = view.uri
    cut = uri.find("?")
    return uri[cut + 1:] if cut >= 0 else None


def _parameter(args: list[str]) -> Sample:
    if not args or not args[0]:
        raise SampleError("needs a parameter name, as in urlp(id)")
    prefix = args[0] + "="

    def first_parameter(view):
        query = _query(view)
        if not query:
            return None
        for part in re.split("[&;]", query):
            if part.startswith(prefix):
                return part[len(prefix):]
        return None
    return first_parameter


def _variable(args: list[str]) -> Sample:
    if not args or len(args) > 2:
        raise SampleError("expects a variable name, and optionally a default: var(txn.NAME[,DEFAULT])")
    name = _variable_name(args[0])
    read = variables.read
    if len(args) == 2:
        default = args[1]

        def with_default(view):
            value = read(view, name)
            return default if value is None else value
        return with_default
    return lambda view: read(view, name)


def _variable_name(text: str) -> str:
    try:
        return variables.parse_name(text)
    except ValueError as error:
        raise SampleError(str(error)) from None


def _constant(kind: str) -> Callable[[list[str]], Sample]:
    def build(args: list[str]) -> Sample:
        if kind == "str":
            if len(args) > 1:
                raise SampleError("takes one text (quote a text that holds a comma)")
            value: object = args[0] if args else ""
        elif kind == "int":
            if len(args) != 1:
                raise SampleError("expects an integer, as in int(10)")
            value = _integer_argument(args[0], "value")
        else:
            if len(args) != 1 or args[0] not in ("0", "1"):
                raise SampleError("expects 0 or 1")
            value = args[0] == "1"
        return lambda view: value
    return build


def _client_sni(view) -> str | None:
    context = getattr(view, "context", None)
    return getattr(context, "sni", None)


def _status(view):
    return getattr(view, "status", None)


def _no_argument(getter: Sample) -> Callable[[list[str]], Sample]:
    def build(args: list[str]) -> Sample:
        if args:
            raise SampleError("takes no argument")
        return getter
    return build


# name -> (builder from the arguments, reads the request (not usable in http-response rules))
_FETCHES: dict[str, tuple[Callable[[list[str]], Sample], bool]] = {
    "src": (_no_argument(lambda view: _address(view.client_ip)), False),
    "dst": (_no_argument(lambda view: _address(view.local_ip)), False),
    "src_port": (_no_argument(lambda view: view.client_port), False),
    "dst_port": (_no_argument(lambda view: view.local_port), False),
    "ssl_fc": (_no_argument(lambda view: bool(view.ssl)), False),
    "ssl_fc_sni": (_no_argument(_client_sni), False),
    "status": (_no_argument(_status), False),
    "var": (_variable, False),
    "str": (_constant("str"), False),
    "int": (_constant("int"), False),
    "bool": (_constant("bool"), False),
    "always_true": (_no_argument(lambda view: True), False),
    "always_false": (_no_argument(lambda view: False), False),
    "path": (_no_argument(lambda view: view.path), True),
    "url": (_no_argument(lambda view: view.uri), True),
    "method": (_no_argument(lambda view: view.method), True),
    "query": (_no_argument(_query), True),
    "base": (_no_argument(counters.base), True),
    "hdr": (_header_fetch(False), True),
    "req.hdr": (_header_fetch(False), True),
    "req.fhdr": (_header_fetch(True), True),
    "hdr_cnt": (_header_count, True),
    "req.hdr_cnt": (_header_count, True),
    "cook": (_cookie, True),
    "req.cook": (_cookie, True),
    "urlp": (_parameter, True),
    "url_param": (_parameter, True),
}
FETCH_NAMES = tuple(_FETCHES)


# ------------------------------------------------------------- converters


def _integer_argument(text: str, what: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise SampleError(f"the {what} must be an integer, not '{text}'") from None


def _operand(args: list[str], name: str) -> Sample:
    """An arithmetic converter's argument: an integer, or a variable's name
    (its value cast to an integer)."""
    if len(args) != 1 or not args[0]:
        raise SampleError(f"expects an integer or a variable name, as in {name}(1)")
    text = args[0]
    if _LEADING_INTEGER.fullmatch(text):
        number = int(text)
        return lambda view: number
    name = _variable_name(text)
    return lambda view: as_int(variables.read(view, name))


def _divide(a: int, b: int) -> int:
    if b == 0:
        return _INT64  # HAProxy's answer to a division by zero
    quotient = abs(a) // abs(b)
    return _clamp(quotient if (a < 0) == (b < 0) else -quotient)


def _remainder(a: int, b: int) -> int:
    if b == 0:
        return 0
    return a - b * int(a / b) if abs(a) < 2**52 else a - b * _divide(a, b)


_ARITHMETIC: dict[str, Callable[[int, int], int]] = {
    "add": lambda a, b: _clamp(a + b), "sub": lambda a, b: _clamp(a - b),
    "mul": lambda a, b: _clamp(a * b), "div": _divide, "mod": _remainder,
    "and": lambda a, b: a & b, "or": lambda a, b: a | b, "xor": lambda a, b: a ^ b,
}


def _arithmetic(name: str):
    operation = _ARITHMETIC[name]

    def build(inner: Sample, args: list[str]) -> Sample:
        operand = _operand(args, name)

        def apply(view):
            value = as_int(inner(view))
            other = operand(view)
            if value is None or other is None:
                return None
            return operation(value, other)
        return apply
    return build


def _unary(function: Callable, cast: Callable = as_text):
    """A converter without argument: function of the cast input."""
    def build(inner: Sample, args: list[str]) -> Sample:
        if args:
            raise SampleError("takes no argument")

        def apply(view):
            value = cast(inner(view))
            return None if value is None else function(value)
        return apply
    return build


def _field_like(words: bool):
    """field(INDEX,DELIMITERS[,COUNT]) and word(...): the INDEXth part (from
    the end when negative) and the COUNT-1 parts after it (before it from the
    end; 0: all of them), with the delimiters between them; word skips the
    empty parts, field keeps them."""
    def build(inner: Sample, args: list[str]) -> Sample:
        if len(args) not in (2, 3):
            raise SampleError("expects an index, delimiters and optionally a count")
        index = _integer_argument(args[0], "index")
        count = _integer_argument(args[2], "count") if len(args) == 3 else 1
        if index == 0:
            raise SampleError("the index counts from 1 (or from -1, the last)")
        if not args[1]:
            raise SampleError("needs at least one delimiter")
        delimiters = "[" + re.escape(args[1]) + "]"
        parts = re.compile(f"(?:(?!{delimiters}).)+" if words else f"(?:(?!{delimiters}).)*", re.S)

        def apply(view):
            text = as_text(inner(view))
            if text is None:
                return None
            spans = [m.span() for m in parts.finditer(text)] if words else _field_spans(text, delimiters)
            if index > 0:
                first = index - 1
                last = len(spans) - 1 if count == 0 else first + count - 1
            else:
                last = len(spans) + index
                first = 0 if count == 0 else last - count + 1
            first, last = max(first, 0), min(last, len(spans) - 1)
            if first > last or last < 0:
                return None
            return text[spans[first][0]:spans[last][1]]
        return apply
    return build


def _field_spans(text: str, delimiters: str) -> list[tuple[int, int]]:
    """Where each field of text is: empty ones count (`a..b` has three)."""
    spans, start = [], 0
    for match in re.finditer(delimiters, text):
        spans.append((start, match.start()))
        start = match.end()
    spans.append((start, len(text)))
    return spans


def _regsub(inner: Sample, args: list[str]) -> Sample:
    if len(args) not in (2, 3):
        raise SampleError("expects a regular expression, a replacement and optionally flags (i, g)")
    flags = args[2] if len(args) == 3 else ""
    if set(flags) - {"i", "g"}:
        raise SampleError(f"unknown flag in '{flags}' (i and g are the flags)")
    try:
        regex = re.compile(args[0], re.IGNORECASE if "i" in flags else 0)
    except re.error as error:
        raise SampleError(f"invalid regular expression '{args[0]}': {error}") from None
    replacement = re.sub(r"\\([0-9])", r"\\g<\1>", args[1].replace("\\\\", "\x00")).replace("\x00", "\\\\")
    count = 0 if "g" in flags else 1

    def apply(view):
        text = as_text(inner(view))
        return None if text is None else regex.sub(replacement, text, count=count)
    return apply


def _bytes(inner: Sample, args: list[str]) -> Sample:
    if len(args) not in (1, 2):
        raise SampleError("expects an offset and optionally a length")
    offset = _integer_argument(args[0], "offset")
    length = _integer_argument(args[1], "length") if len(args) == 2 else None

    def apply(view):
        data = as_binary(inner(view))
        if data is None or offset > len(data):
            return None
        piece = data[offset:] if length is None else data[offset:offset + length]
        return piece.decode("latin-1")
    return apply


def _trim(left: bool):
    def build(inner: Sample, args: list[str]) -> Sample:
        if len(args) != 1:
            raise SampleError("expects the characters to remove")
        characters = args[0]

        def apply(view):
            text = as_text(inner(view))
            if text is None:
                return None
            return text.lstrip(characters) if left else text.rstrip(characters)
        return apply
    return build


def _concat(inner: Sample, args: list[str]) -> Sample:
    if not 1 <= len(args) <= 3:
        raise SampleError("expects a prefix, a variable and a suffix (each may be empty)")
    start, name, end = (args + ["", ""])[:3]
    name = _variable_name(name) if name else None

    def apply(view):
        text = as_text(inner(view))
        if text is None:
            return None
        middle = as_text(variables.read(view, name)) if name else ""
        return text + start + (middle or "") + end
    return apply


def _hash(function: Callable[[bytes], int]):
    def build(inner: Sample, args: list[str]) -> Sample:
        if len(args) > 1 or (args and args[0] not in ("0", "1")):
            raise SampleError("takes an optional avalanche flag, 0 or 1")
        spread = bool(args) and args[0] == "1"

        def apply(view):
            data = as_binary(inner(view))
            if data is None:
                return None
            value = function(data)
            return avalanche(value) if spread else value
        return apply
    return build


def _ipmask(inner: Sample, args: list[str]) -> Sample:
    if len(args) not in (1, 2):
        raise SampleError("expects an IPv4 mask and optionally an IPv6 one, as in ipmask(24,64)")
    try:
        v4 = ipaddress.ip_network(f"0.0.0.0/{args[0]}").netmask
        v6 = ipaddress.ip_network(f"::/{args[1]}").netmask if len(args) == 2 else None
    except ValueError:
        raise SampleError(f"invalid mask in ipmask({','.join(args)})") from None

    def apply(view):
        value = inner(view)
        address = value if isinstance(value, (ipaddress.IPv4Address, ipaddress.IPv6Address)) \
            else _address(as_text(value) or "")
        if address is None:
            return None
        if address.version == 4:
            return ipaddress.IPv4Address(int(address) & int(v4))
        if v6 is None:
            return None
        return ipaddress.IPv6Address(int(address) & int(v6))
    return apply


def _json(inner: Sample, args: list[str]) -> Sample:
    code = args[0] if args else "ascii"
    if len(args) > 1 or code not in json_text.INPUT_CODES:
        raise SampleError(f"unknown input code '{code}' (expected {', '.join(json_text.INPUT_CODES)})")

    def apply(view):
        text = as_text(inner(view))
        if text is None:
            return None
        wire = text.encode("latin-1", "replace").decode("utf-8", "surrogateescape")
        return json_text.json_text(wire, code)
    return apply


def _url_decode(text: str) -> str:
    return unquote_to_bytes(text).decode("latin-1")


def _base64_decode(text: str) -> str | None:
    try:
        return base64.b64decode(text.encode("latin-1"), validate=True).decode("latin-1")
    except (binascii.Error, ValueError):
        return None


def _host_only(text: str) -> str:
    """The host of a Host value, lower-cased (as documented)."""
    if text.startswith("["):
        return (text[:text.find("]") + 1] if "]" in text else text).lower()
    return text.split(":", 1)[0].lower()


def _port_only(text: str) -> int | None:
    host_end = text.find("]") + 1 if text.startswith("[") else 0
    _, colon, port = text[host_end:].rpartition(":")
    return as_int(port) if colon else None


def _strcmp(inner: Sample, args: list[str]) -> Sample:
    if len(args) != 1:
        raise SampleError("expects a variable name")
    name = _variable_name(args[0])

    def apply(view):
        text, other = as_text(inner(view)), as_text(variables.read(view, name))
        if text is None or other is None:
            return None
        a, b = text.encode("latin-1", "replace"), other.encode("latin-1", "replace")
        return (a > b) - (a < b)
    return apply


def _if_else(inner: Sample, args: list[str]) -> Sample:
    if len(args) != 2:
        raise SampleError("expects two values, as in iif(yes,no)")
    yes, no = args

    def apply(view):
        value = inner(view)
        return None if value is None else (yes if _truth(value) else no)
    return apply


def _truth(value) -> bool:
    if value.__class__ is bool:
        return value
    number = as_int(value)
    return bool(number)


def _set_var(inner: Sample, args: list[str]) -> Sample:
    if not args:
        raise SampleError("expects a variable name")
    setter = variable_setter(args[0], args[1:])

    def apply(view):
        value = inner(view)
        if value is not None:
            setter(view, value)
        return value
    return apply


def _map(converter_text: str) -> Callable[[Sample, list[str]], Sample]:
    try:
        find = maps.map_converter(converter_text)
    except maps.MapError as error:
        raise SampleError(str(error)) from None

    def build(inner: Sample, args: list[str]) -> Sample:
        def apply(view):
            text = as_text(inner(view))
            return None if text is None else find(text)
        return apply
    return build


_CONVERTERS: dict[str, Callable[[Sample, list[str]], Sample]] = {
    "lower": _unary(str.lower),
    "upper": _unary(str.upper),
    "length": _unary(len),
    "base64": _unary(lambda data: base64.b64encode(data).decode("ascii"), as_binary),
    "b64dec": _unary(_base64_decode),
    "hex": _unary(lambda data: data.hex().upper(), as_binary),
    "url_dec": _unary(_url_decode),
    "host_only": _unary(_host_only),
    "port_only": _unary(_port_only),
    "neg": _unary(lambda n: _clamp(-n), as_int),
    "cpl": _unary(lambda n: ~n, as_int),
    "not": _unary(lambda truth: not truth, lambda value: None if value is None else _truth(value)),
    "bool": _unary(lambda truth: truth, lambda value: None if value is None else _truth(value)),
    "odd": _unary(lambda n: bool(n & 1), as_int),
    "even": _unary(lambda n: not n & 1, as_int),
    "field": _field_like(False),
    "word": _field_like(True),
    "regsub": _regsub,
    "bytes": _bytes,
    "ltrim": _trim(True),
    "rtrim": _trim(False),
    "concat": _concat,
    "ipmask": _ipmask,
    "json": _json,
    "sdbm": _hash(sdbm),
    "djb2": _hash(djb2),
    "crc32": _hash(crc32),
    "strcmp": _strcmp,
    "iif": _if_else,
    "set-var": _set_var,
    **{name: _arithmetic(name) for name in _ARITHMETIC},
}
CONVERTER_NAMES = tuple(_CONVERTERS) + ("map", "map_str", "map_beg", "map_sub", "map_dom", "map_reg")


# ------------------------------------------------------------- expressions


def compile_expression(text: str, response: bool = False) -> Sample:
    """The function of a view an expression `FETCH[,CONVERTER...]` makes;
    `response`: it is evaluated in an http-response rule, where what only
    the request holds cannot be read."""
    (name, args, fetch_text), *converters = parse_chain(text.strip())
    entry = _FETCHES.get(name)
    if entry is None and (name in READS_PAYLOAD or ALIASES.get(name) in READS_PAYLOAD):
        raise SampleError(f"sample fetch '{name}' reads the bytes a mode tcp connection starts with, which "
                          "haply reads in acls and stick rules only (and which a log-format no longer "
                          "has: HAProxy refuses it there too)")
    if entry is None:
        raise SampleError(f"sample fetch '{name}' is not supported by haply in expressions "
                          f"(supported: {', '.join(FETCH_NAMES)})")
    build, reads_request = entry
    if response and reads_request:
        raise SampleError(f"sample fetch '{name}' reads the request, which an http-response rule "
                          "does not have: keep it in a txn. variable from an http-request rule")
    try:
        sample = build(args)
    except SampleError as error:
        raise SampleError(f"sample fetch '{fetch_text}': {error}") from None
    for converter in converters:
        sample = _convert(sample, *converter)
    return sample


def _convert(inner: Sample, name: str, args: list[str], text: str) -> Sample:
    build = _CONVERTERS.get(name)
    if build is None and (name == "map" or name.startswith("map_")):
        build = _map(text)
    if build is None:
        raise SampleError(f"converter '{name}' is not supported by haply "
                          f"(supported: {', '.join(CONVERTER_NAMES)})")
    try:
        return build(inner, args)
    except SampleError as error:
        raise SampleError(f"converter '{text}': {error}") from None


# --------------------------------------------------------------- set-var

SET_CONDITIONS = ("ifexists", "ifnotexists", "ifempty", "ifnotempty", "ifset", "ifnotset",
                  "ifgt", "iflt")


def variable_setter(name_text: str, conditions: list[str] | tuple[str, ...] = ()
                    ) -> Callable[[object, object], None]:
    """(view, value) -> None: what `set-var(NAME[,COND...])` does with a
    sample, its conditions (all must hold) tested first."""
    name = _variable_name(name_text)
    for condition in conditions:
        if condition not in SET_CONDITIONS:
            raise SampleError(f"unknown set-var condition '{condition}' "
                              f"(expected {', '.join(SET_CONDITIONS)})")
    if len(conditions) > 4:
        raise SampleError("set-var takes at most four conditions")
    write = variables.write
    if not conditions:
        return lambda view, value: write(view, name, value)
    tests = tuple(conditions)

    def conditional_write(view, value) -> None:
        for test in tests:
            if not _set_condition(test, view, name, value):
                return
        write(view, name, value)
    return conditional_write


def _set_condition(test: str, view, name: str, value) -> bool:
    if test in ("ifexists", "ifset"):
        return variables.exists(view, name)
    if test in ("ifnotexists", "ifnotset"):
        return not variables.exists(view, name)
    if test in ("ifempty", "ifnotempty"):
        empty = value.__class__ is str and not value
        return empty if test == "ifempty" else not empty
    current = variables.read(view, name)
    if current.__class__ is not int or value.__class__ is not int:
        return True  # compared only between integers, as documented
    return current > value if test == "ifgt" else current < value


class VariableStep:
    """A set-var, set-var-fmt or unset-var rule (model.VariableRule) among
    the rules that run in place (haply.proxy.conditions.first_answer): apply
    keeps, or forgets, the variable for the view."""

    __slots__ = ("apply",)
    action = "rewrite"  # applied in place, as a line rewrite is

    def __init__(self, rule, response: bool = False):
        if rule.action == "unset-var":
            name, unset = rule.name, variables.unset
            self.apply = lambda view: unset(view, name)
            return
        setter = variable_setter(rule.name, rule.conditions)
        if rule.action == "set-var":
            sample = compile_expression(rule.value, response)

            def set_variable(view) -> None:
                value = sample(view)
                if value is not None:  # no sample: the variable is left as it was
                    setter(view, value)
        else:
            # imported here: haply.http.headers imports the configuration model
            from haply.http.headers import compile_value
            value_of = compile_value(rule.value, not response)
            text = value_of.decode("latin-1") if value_of.__class__ is bytes else None

            def set_variable(view) -> None:
                setter(view, text if text is not None else value_of(view).decode("latin-1"))
        self.apply = set_variable


class CaptureStep:
    """An http-request or http-response capture rule (model.CaptureRule)
    among the rules that run in place: the sample's text in its slot, cut to
    the slot's length and written as the log writes captures."""

    __slots__ = ("apply",)
    action = "rewrite"

    def __init__(self, rule):
        from haply.logs.captures import encode  # imported here: haply.logs reads this module

        sample = compile_expression(rule.expression, rule.side == "response")
        attribute, slot, length = f"captured_{rule.side}", rule.slot, rule.length

        def capture(view) -> None:
            text = as_text(sample(view))
            slots = getattr(view, attribute, None)
            if text is not None and slots is not None:
                slots[slot] = encode(text.encode("latin-1", "replace"), length)
        self.apply = capture


class LogLevelStep:
    """`set-log-level` among the rules that run in place: the request's log
    line goes out at that level (haply.logs.logger), or not at all."""

    __slots__ = ("apply",)
    action = "rewrite"

    def __init__(self, rule):
        level = rule.level

        def set_level(view) -> None:
            view.log_level = level
        self.apply = set_level
