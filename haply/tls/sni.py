"""`server ... sni EXPR`: the name sent in the TLS server_name extension (RFC 6066 §3).

HAProxy evaluates a sample expression per connection (configuration manual 5.2,
"sni"). The common uses in front of name-based TLS servers are:

    sni str(api.internal)          a constant
    sni req.hdr(host)              the client's Host header, as written (port included)
    sni req.hdr(host),field(1,:)   the same without the port
    sni ssl_fc_sni                 the name the client sent to haply (bind ... ssl)

haply compiles the expression once into a function of (request, client), where
client is the client's transport, read only by ssl_fc_sni. Python's ssl has no
accessor for the name a client sent, so TLS binds record it during the handshake
(`record_client_sni`, installed as the context's sni_callback).
Supported fetches: str(), req.hdr()/hdr() (comma-separated values split, the
last one by default, as HAProxy), req.fhdr() (not split), ssl_fc_sni; converters
lower, upper and field(index,delimiters). A value the TLS library cannot send
(empty, a label over 63 bytes, a NUL byte, a non-ASCII byte) sends no SNI rather
than failing the connection: the Host header is the client's to write. HAProxy
2.6 sends the value untouched, IP literals included; Python's ssl sends no SNI for
an IP literal (RFC 6066 forbids them), so neither does haply.
"""

from __future__ import annotations

import re
from typing import Callable, Protocol

from haply.http.maps import split_arguments
from haply.http.values import comma_values

# RFC 1035 §2.3.4: labels of at most 63 octets, names of at most 255 (253 as text).
MAX_LABEL = 63
MAX_NAME = 253

_CALL = re.compile(r"([a-z_.0-9]+)(?:\((.*)\))?\Z", re.S)
SUPPORTED = ("str(NAME), req.hdr(NAME[,OCC]), hdr(NAME[,OCC]), req.fhdr(NAME[,OCC]) and ssl_fc_sni, "
             "with the converters lower, upper and field(INDEX,DELIMITERS)")


class SniSyntaxError(ValueError):
    """The expression is not one haply evaluates; the message says what is."""


class SampleSource(Protocol):
    def header(self, name: str) -> list[str]:
        """Every value of a request header (lower-case name); [] outside HTTP."""


Fetch = Callable[[SampleSource, object], "str | None"]
# Where a bind's sni_callback leaves the name the client asked for.
CLIENT_SNI_ATTRIBUTE = "haply_client_sni"


def record_client_sni(ssl_object, server_name: str | None, context) -> None:
    """sni_callback for server-side contexts: remember the requested name."""
    if server_name:
        try:
            setattr(ssl_object, CLIENT_SNI_ATTRIBUTE, server_name)
        except AttributeError:  # an SSL object without a __dict__: no ssl_fc_sni
            pass


def client_sni(transport) -> str | None:
    """ssl_fc_sni: the name the client sent on this TLS connection, if any."""
    if transport is None:
        return None
    ssl_object = transport.get_extra_info("ssl_object")
    return getattr(ssl_object, CLIENT_SNI_ATTRIBUTE, None) if ssl_object is not None else None


class SniExpression:
    """A compiled `sni` expression. `constant` is set when it never varies."""

    __slots__ = ("text", "constant", "evaluate")

    def __init__(self, text: str, constant: str | None, evaluate: Fetch):
        self.text = text
        self.constant = constant
        self.evaluate = evaluate

    def __call__(self, source: SampleSource, client=None) -> str | None:
        """The name to send, or None for no SNI."""
        return sendable(self.evaluate(source, client))


def sendable(name: str | None) -> str | None:
    """name if the TLS library can put it in server_name, else None."""
    if (not name or len(name) > MAX_NAME or not name.isascii() or name[0] == "." or "\0" in name
            or ".." in name):  # an empty label, which the TLS library's IDNA step refuses
        return None
    if len(name) > MAX_LABEL and any(len(label) > MAX_LABEL for label in name.split(".")):
        return None
    return name


def _call(text: str) -> tuple[str, list[str]]:
    match = _CALL.match(text.strip())
    if not match:
        raise SniSyntaxError(f"'{text}' is not a sample fetch or converter")
    name, args = match.group(1), match.group(2)
    return name, ([a.strip() for a in args.split(",")] if args else [])


def _occurrence(args: list[str], what: str) -> int:
    if len(args) < 2:
        return -1  # the last occurrence, as HAProxy's req.hdr in a sample expression
    try:
        occurrence = int(args[1])
    except ValueError:
        raise SniSyntaxError(f"{what}: occurrence '{args[1]}' is not a number") from None
    if occurrence == 0:
        raise SniSyntaxError(f"{what}: occurrence 0 does not exist (1 is the first, -1 the last)")
    return occurrence


def _header_fetch(name: str, occurrence: int, split: bool) -> Fetch:
    name = name.lower()

    def fetch(source: SampleSource, client) -> str | None:
        values = source.header(name)
        if not values:
            return None
        if split:
            values = comma_values(values)
        index = occurrence - 1 if occurrence > 0 else occurrence
        try:
            return values[index]
        except IndexError:
            return None

    return fetch


def _fetch(text: str) -> tuple[Fetch, str | None]:
    name, args = _call(text)
    if name == "str":
        match = _CALL.match(text.strip())
        value = match.group(2) or ""
        return (lambda source, client: value), value
    if name in ("req.hdr", "hdr", "req.fhdr"):
        if not args or not args[0]:
            raise SniSyntaxError(f"{name}() needs a header name, such as {name}(host)")
        return _header_fetch(args[0], _occurrence(args, name), split=name != "req.fhdr"), None
    if name == "ssl_fc_sni":
        if args:
            raise SniSyntaxError("ssl_fc_sni takes no argument")
        return (lambda source, client: client_sni(client)), None
    raise SniSyntaxError(f"fetch '{name}' is not supported in 'sni'")


def _converter(text: str) -> Callable[[str], str | None]:
    name, args = _call(text)
    if name == "lower" and not args:
        return str.lower
    if name == "upper" and not args:
        return str.upper
    if name == "field":
        match = re.fullmatch(r"field\(\s*(-?[0-9]+)\s*,(.+)\)", text.strip(), re.S)
        if not match or int(match.group(1)) == 0:
            raise SniSyntaxError("field() needs an index (1 is the first, -1 the last) and delimiters")
        index, delimiters = int(match.group(1)), match.group(2)
        if "," in delimiters:
            raise SniSyntaxError("field() with a count is not supported in 'sni'")
        pattern = re.compile("[" + re.escape(delimiters) + "]")

        def field(value: str) -> str | None:
            parts = pattern.split(value)
            position = index - 1 if index > 0 else index
            try:
                return parts[position]
            except IndexError:
                return None

        return field
    raise SniSyntaxError(f"converter '{name}' is not supported in 'sni'")


def compile_sni(text: str) -> SniExpression:
    """Compile an `sni` expression; raises SniSyntaxError naming what is supported."""
    try:
        first, *rest = split_arguments(text)
        fetch, constant = _fetch(first)
        converters = [_converter(part) for part in rest]
    except SniSyntaxError as exc:
        raise SniSyntaxError(f"'sni {text}': {exc}; haply supports {SUPPORTED}") from None
    if constant is not None:
        for convert in converters:
            constant = convert(constant) if constant is not None else None
        value = constant
        return SniExpression(text, value or "", lambda source, client: value)
    if not converters:
        return SniExpression(text, None, fetch)

    def evaluate(source: SampleSource, client) -> str | None:
        value = fetch(source, client)
        for convert in converters:
            if value is None:
                return None
            value = convert(value)
        return value

    return SniExpression(text, None, evaluate)


__all__ = ["CLIENT_SNI_ATTRIBUTE", "SniExpression", "SniSyntaxError", "client_sni", "compile_sni",
           "record_client_sni", "sendable"]
