"""log-format strings (HAProxy manual 8.2.4), compiled once into a renderer.

A format is compiled at start into a list of literals and field getters; a
line is built only when a log target exists and the exchange has ended, so a
request that is not logged costs nothing here.

The built-in formats are HAProxy's own definitions of `option tcplog`,
`option httplog` and `option httplog clf` (manual 8.2.2 - 8.2.3), so the lines
have the same fields in the same places. `log-format json` (a haply extension)
writes one JSON object with the httplog fields.
"""

from __future__ import annotations

import ast
import ipaddress
import json
import re
import time
from typing import Callable

from haply.logs import captures as captures_module
from haply.http.maps import split_arguments
from haply.logs import json_text
from haply.tls.sni import client_sni

TCPLOG = "%ci:%cp [%t] %ft %b/%s %Tw/%Tc/%Tt %B %ts %ac/%fc/%bc/%sc/%rc %sq/%bq"
HTTPLOG = ("%ci:%cp [%tr] %ft %b/%s %TR/%Tw/%Tc/%Tr/%Ta %ST %B %CC %CS %tsc "
           "%ac/%fc/%bc/%sc/%rc %sq/%bq %hr %hs %{+Q}r")
CLF = ("%{+Q}o %{-Q}ci - - [%trg] %r %ST %B \"\" \"\" %cp %ms %ft %b %s %TR %Tw %Tc %Tr "
       "%Ta %tsc %ac %fc %bc %sc %rc %sq %bq %CC %CS %hrl %hsl")
NAMED = {"tcplog": TCPLOG, "httplog": HTTPLOG, "httplog clf": CLF}
# A proxy that logs without choosing a format writes HAProxy's default line
# as its streams start (manual 8.2.1, haply.logs.hooks.connect_logged_session),
# not a line per stream's end: this renders nothing it sends.
DEFAULT = "%ci:%cp [%t] %ft %b/%s"
JSON_FIELDS = (
    ("client_ip", "ci"), ("client_port", "cp"), ("accept_date", "tr"), ("frontend", "ft"),
    ("backend", "b"), ("server", "s"), ("TR", "TR"), ("Tw", "Tw"), ("Tc", "Tc"),
    ("Tr", "Tr"), ("Ta", "Ta"), ("status", "ST"), ("bytes_read", "B"),
    ("termination_state", "tsc"), ("actconn", "ac"), ("feconn", "fc"), ("beconn", "bc"),
    ("srv_conn", "sc"), ("retries", "rc"), ("srv_queue", "sq"), ("backend_queue", "bq"),
    ("method", "HM"), ("uri", "HU"), ("http_version", "HV"),
)

MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


# ".000" to ".999": a date's milliseconds by index, not formatted per line.
_MILLIS = tuple(f".{n:03d}" for n in range(1000))


class _DateCache:
    """Dates change once a second: format the second once, add the milliseconds;
    a line in the same millisecond as the one before reuses its text."""

    __slots__ = ("second", "text", "milli", "milli_text", "gmt_second", "gmt_text")

    def __init__(self) -> None:
        self.second = self.gmt_second = self.milli = -1
        self.text = self.gmt_text = self.milli_text = ""

    def local(self, now: float) -> str:
        """dd/Mmm/yyyy:hh:mm:ss.mmm"""
        milli = int(now * 1000)
        if milli == self.milli:
            return self.milli_text
        second = milli // 1000
        text = self.text if second == self.second else self._second_text(second)
        self.milli = milli
        text = self.milli_text = text + _MILLIS[milli - second * 1000]
        return text

    def seconds(self, now: float) -> str:
        """dd/Mmm/yyyy:hh:mm:ss"""
        second = int(now)
        return self.text if second == self.second else self._second_text(second)

    def _second_text(self, second: int) -> str:
        t = time.localtime(second)
        self.second = second
        self.text = (f"{t.tm_mday:02d}/{MONTHS[t.tm_mon - 1]}/{t.tm_year}:"
                     f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d}")
        return self.text

    def zoned(self, now: float) -> str:
        """dd/Mmm/yyyy:hh:mm:ss +zzzz, in local time"""
        second = int(now)
        text = self.text if second == self.second else self._second_text(second)
        return f"{text} {time.strftime('%z', time.localtime(second))}"

    def gmt(self, now: float) -> str:
        second = int(now)
        if second != self.gmt_second:
            t = time.gmtime(second)
            self.gmt_second = second
            self.gmt_text = (f"{t.tm_mday:02d}/{MONTHS[t.tm_mon - 1]}/{t.tm_year}:"
                             f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} +0000")
        return self.gmt_text


_DATES = _DateCache()


def _date(now: float, millis: bool = True) -> str:
    return _DATES.local(now) if millis else _DATES.seconds(now)


accept_date = _date  # %tr's text, for the lines that are no log-format's
date_text = _DATES.local  # %tr's text, one call (haply.logs.httplog_line)


def _gmt_date(now: float) -> str:
    return _DATES.gmt(now)


def retries_field(tally) -> int | str:
    """%rc: a request's or a connection's retries, "+N" once one of them took
    it to another server (HAProxy's redispatch mark)."""
    return f"+{tally.attempts}" if tally.redispatched else tally.attempts


def _dash(value) -> str:
    """HAProxy writes '-' for an empty text field."""
    return "-" if value is None or value == "" else str(value)


def _hex(value) -> str:
    """`+X`: a number as upper-case hexadecimal of at least 4 digits, an IPv4
    address as 8 digits, an IPv6 one as 32, as HAProxy writes them."""
    text = str(value)
    if "." in text or ":" in text:
        try:
            address = ipaddress.ip_address(text)
        except ValueError:
            return text
        return f"{int(address):0{address.max_prefixlen // 4}X}"
    try:
        return f"{int(text):04X}"
    except ValueError:
        return text


def _escape(value) -> str:
    """`+E` (captures_module.escaped) on any value."""
    return "" if value is None else captures_module.escaped(str(value))


def _transfer(total: int, *phases: int) -> int:
    """%Td: the time after the response head came (data transfer): the total
    less TR, Tw, Tc and Tr; -1 when the exchange never got a response."""
    if phases[-1] < 0:
        return -1
    return total - sum(phase for phase in phases if phase > 0)


def _encode(text: str) -> str:
    """Request text in a line: a '"' would end the quoted request early, so it
    is written #22, as HAProxy writes it (control characters and bytes above
    127 never reach here: such a request is refused)."""
    return text.replace('"', "#22") if '"' in text else text


BADREQ = "<BADREQ>"


def _line_part(line: str, which: str, method: str, uri: str, version: str) -> str:
    """%HM %HU %HP %HQ %HV: a part of the request line; each is <BADREQ>
    for a request that could not be parsed, as HAProxy writes them."""
    if line == BADREQ:
        return BADREQ
    if which == "HM":
        return method
    if which == "HV":
        return version
    uri = _encode(uri)
    if which == "HU":
        return uri
    path, mark, query = uri.partition("?")
    return path if which == "HP" else mark + query


def _request_part(request, which: str) -> str:
    """_line_part of the proxy's Request."""
    line = request_line(request)
    if line == BADREQ:
        return BADREQ
    return _line_part(line, which, method(request), request.uri, _version(request))


def _ssl(session, what: str) -> str:
    """%sslv and %sslc: the client connection's TLS version or cipher."""
    transport = getattr(session, "transport", None)
    tls = transport.get_extra_info("ssl_object") if transport is not None else None
    if tls is None:
        return ""
    return tls.version() if what == "version" else tls.cipher()[0]


# Each variable is a Python expression over a log record `r` (haply.logs.logger:
# HttpRecord, TcpRecord or Record); compile_format joins them into one f-string.
VARIABLES: dict[str, str] = {
    "ci": "r.client_ip", "cp": "r.client_port", "fi": "r.frontend_ip", "fp": "r.frontend_port",
    "f": "r.frontend", "ft": "r.frontend + ('~' if r.ssl else '')", "fc": "r.feconn",
    "b": "r.backend", "s": "r.server", "si": "r.server_ip", "sp": "r.server_port",
    "t": "_date(r.accept_time)", "tr": "_date(r.request_time)",
    "trg": "_gmt_date(r.request_time)", "trl": "_date_seconds(r.request_time)",
    "ms": "f'{int(r.accept_time % 1 * 1000):03d}'",
    "Th": "0", "Ti": "r.Ti", "TR": "r.TR", "Tq": "r.TR", "Tw": "r.Tw", "Tc": "r.Tc",
    "Tr": "r.Tr", "Ta": "r.Ta", "Tt": "r.Tt",
    "ST": "r.status", "B": "r.bytes_read", "U": "r.bytes_uploaded",
    # Captures: None is "not configured", written as nothing, not even the
    # space after it (with_captures fills them in for a frontend that captures).
    "CC": "''", "CS": "''", "hr": None, "hs": None, "hrl": None, "hsl": None,
    "ts": "r.termination[:2]", "tsc": "r.termination",
    "ac": "r.actconn", "bc": "r.beconn", "sc": "r.srv_conn", "rc": "r.retries",
    "sq": "r.srv_queue", "bq": "r.backend_queue",
    "r": "r.request_line",
    **{part: f"_line_part(r.request_line, {part!r}, r.method, r.uri, r.http_version)"
       for part in ("HM", "HU", "HP", "HQ", "HV")}, "H": "r.hostname", "pid": "r.pid", "ID": "r.unique_id", "o": "''",
    "lc": "r.log_counter", "rt": "r.request_counter", "rq": "r.request_counter",
    "T": "_gmt_date(r.accept_time)", "Tl": "_zoned_date(r.accept_time)",
    "Ts": "int(r.accept_time)", "Tu": "r.Tt", "Td": "_transfer(r.Tt, r.TR, r.Tw, r.Tc, r.Tr)",
    "sslv": "_ssl(getattr(r, 'session', None), 'version')",
    "sslc": "_ssl(getattr(r, 'session', None), 'cipher')",
}
# HAProxy variables haply does not write: an error that names them.
UNSUPPORTED = frozenset({"bi", "bp"})
# Variables that only an HTTP exchange has: HAProxy refuses them in a format
# a mode tcp frontend uses (`http_only` names them).
HTTP_ONLY = frozenset("CC CS HM HP HQ HU HV TR Ta Ti Tq Tr r tr trg trl".split())
# `+X` writes these in hexadecimal (HAProxy's choice: addresses, ports, the
# timestamp and the counters); the other numbers stay decimal.
HEX = frozenset("ci cp fi fp si sp Ts rt rq pid lc".split())
# Text variables that are never empty (names), so never '-'.
NEVER_EMPTY = frozenset({"f", "ft", "b", "s", "hr", "hs", "hrl", "hsl"})
# Variables HAProxy never quotes under +Q (numbers, dates, flags, and captures,
# which carry their own braces or quotes: observed on HAProxy 2.6's `option
# httplog clf` lines).
NUMERIC = frozenset("cp fp sp fc TR Tq Tw Tc Tr Ta Tt T Th Ti ST B U ac bc sc rc sq bq pid lc "
                    "rt rq t tr trg trl ms ts tsc Tl Ts Td Tu".split())
# Captures are quoted under `+Q` (%hr whole, %hrl value by value) but never
# '-' when empty.
CAPTURES = frozenset({"hr", "hs", "hrl", "hsl"})
# The same variables read straight from an HTTP exchange: s session, q request,
# x its Exchange, srv the server (or None), held 1 while the request still
# holds it (HAProxy counts after the release), log the ProxyLog.
HTTP_VARIABLES: dict[str, str] = {
    **VARIABLES,
    "ci": "q.client_ip", "cp": "q.context.src_port.decode()", "fi": "q.context.dst.decode()",
    "fp": "s.dest_port", "f": "s.frontend.name",
    "ft": "s.frontend.name + ('~' if q.ssl else '')", "fc": "s.frontend.gate.current",
    "b": "(q.backend.name if q.backend is not None else s.frontend.name)",
    "s": "(srv.name if srv is not None else '<NOSRV>')",
    "si": "(srv.host if srv is not None else '')", "sp": "(srv.port if srv is not None else '')",
    "t": "_date(x.wall)", "tr": "_date(x.wall)", "trg": "_gmt_date(x.wall)",
    "trl": "_date(x.wall, False)", "ms": "f'{int(x.wall % 1 * 1000):03d}'",
    "Ti": "0", "TR": "(int((x.headers_at - x.begin) * 1000) if x.headers_at else -1)",
    "Tq": "(int((x.headers_at - x.begin) * 1000) if x.headers_at else -1)",
    "Tw": "q.t_wait", "Tc": "q.t_connect",
    # Tr counts from when the server connection was ready: the queue and the
    # connect (Tw, Tc) are left out, as in HAProxy
    "Tr": "(int((x.response_at - (x.headers_at or x.begin)) * 1000) - max(q.t_wait, 0)"
          " - max(q.t_connect, 0) if x.response_at else -1)",
    "Ta": "int((now - x.begin) * 1000)", "Tt": "int((now - x.begin) * 1000)",
    "ST": "status",
    "B": "(s.transport.written - x.bytes_out)", "U": "(s.transport.received - x.bytes_in)",
    "ts": "term[:2]", "tsc": "term", "ac": "log.engine.global_gate.current",
    "bc": "(q.backend.current_sessions + q.backend.waiting - held if q.backend is not None else 0)",
    "sc": "(srv.current_sessions - held if srv is not None else 0)", "rc": "(f'+{q.attempts}' if q.redispatched else q.attempts)",
    "sq": "(q.queue_positions[0] if q.queue_positions else 0)",
    "bq": "(q.queue_positions[1] if q.queue_positions else 0)",
    "r": "_request_line(q)",
    **{part: f"_request_part(q, {part!r})" for part in ("HM", "HU", "HP", "HQ", "HV")}, "H": "log.logging.hostname", "pid": "log.logging.pid",
    "rt": "log.logging.request_counter", "rq": "log.logging.request_counter",
    "ID": "getattr(q, 'unique_id', '')",
    "lc": "log.lines", "T": "_gmt_date(x.wall)", "Tl": "_zoned_date(x.wall)",
    "Ts": "int(x.wall)", "Tu": "int((now - x.begin) * 1000)",
    "sslv": "_ssl(s, 'version')", "sslc": "_ssl(s, 'cipher')",
}
HTTP_VARIABLES["Td"] = "_transfer({Tt}, {TR}, {Tw}, {Tc}, {Tr})".format_map(HTTP_VARIABLES)


# HTTP_VARIABLES whose values are the same for every request of a connection:
# the client's and the frontend's addresses, the frontend and whether it is TLS.
CONNECTION_VARIABLES = frozenset({"ci", "cp", "fi", "fp", "f", "ft"})


def _text(value) -> str:
    return value.decode("latin-1") if value.__class__ is bytes else value


def method(request) -> str:
    try:
        return request.method
    except AttributeError:  # rejected before the request line was read
        return ""


def _version(request) -> str:
    return f"HTTP/{getattr(request, 'version', '1.1') or '1.1'}"


def request_line(request) -> str:
    """%r: the proxy's Request, read directly (no property per part);
    <BADREQ>, as HAProxy writes it, for a head that could not be parsed."""
    try:
        if request.error is None:
            url = request.url.decode("latin-1")
            if '"' in url:
                url = _encode(url)
            return (f"{request.method_bytes.decode('ascii', 'replace')} "
                    f"{url} HTTP/{request.version or '1.1'}")
    except AttributeError:  # rejected before the request line was read
        pass
    return BADREQ


def with_captures(variables: dict[str, str | None], captures, request: str
                  ) -> dict[str, str | None]:
    """variables with the capture variables of a frontend that captures
    (haply.logs.captures.Captures, or None); `request` is the expression for
    the proxy's Request in those variables."""
    if captures is None:
        return variables
    out = dict(variables)
    for short, configured, attribute in (
            ("r", captures.request_headers, "captured_request"),
            ("s", captures.response_headers, "captured_response")):
        if configured:
            values = f"getattr({request}, {attribute!r}, None)"
            count = len(configured)
            out[f"h{short}"] = f"_braces({values}, {count})"
            out[f"h{short}+E"] = f"_braces({values}, {count}, True)"
            out[f"h{short}l"] = f"_spaced({values}, {count})"
            out[f"h{short}l+E"] = f"_spaced({values}, {count}, True)"
            out[f"h{short}l+Q"] = f"_quoted({values}, {count})"
            out[f"h{short}l+Q+E"] = f"_quoted({values}, {count}, True)"
    if captures.cookie is not None:
        out["CC"] = f"getattr({request}, 'captured_cookie', '')"
        out["CS"] = f"getattr({request}, 'captured_set_cookie', '')"
    return out


_NAMESPACE = {"_text": _text, "_method": method, "_version": _version,
              "_braces": captures_module.braces, "_quoted": captures_module.quoted,
              "_spaced": captures_module.spaced,
              # the cache's methods themselves: one call per date, not two
              "_request_line": request_line, "_date": date_text, "_gmt_date": _DATES.gmt,
              "_date_seconds": _DATES.seconds, "_zoned_date": _DATES.zoned,
              "_hex": _hex, "_escape": _escape, "_encode": _encode, "_ssl": _ssl,
              "_transfer": _transfer, "_line_part": _line_part,
              "_request_part": _request_part,
              "_dash": _dash, "json": json,
              "_header": lambda r, name: _header(r, name),
              "_captured": lambda r, attribute, index: _captured(r, attribute, index),
              # a converter passes on a failed sample (None: written '-')
              "_json": lambda value, code: None if value is None else json_text.json_text(value, code),
              "_client_sni": lambda transport: client_sni(transport),
              "_sample": lambda r, index: _sample_text(r, index),
              "_lower": lambda value: None if value is None else value.lower(),
              "_upper": lambda value: None if value is None else value.upper()}
class FormatError(ValueError):
    pass


# %[fetch] samples haply can answer in logs (HAProxy manual 7.3), as expressions
# over the record; converters after ',' that change case are applied.
SAMPLE_FETCHES = {
    "src": "r.client_ip", "src_port": "r.client_port", "dst": "r.frontend_ip",
    "dst_port": "r.frontend_port", "status": "r.status", "method": "r.method",
    "path": "r.uri.split('?', 1)[0]", "url": "r.uri", "query": "r.uri.partition('?')[2]",
    "fe_name": "r.frontend", "be_name": "r.backend", "srv_name": "r.server",
    "ssl_fc": "int(bool(r.ssl))",
}
_CONVERTERS = {"lower": "_lower({})", "upper": "_upper({})"}
# capture.req.* / capture.res.*: what the frontend captured, as the client or
# server sent it (the captures keep the line's #XX form: see _captured).
_CAPTURE_LISTS = {"capture.req.hdr": "captured_request", "capture.res.hdr": "captured_response"}
_CAPTURED_REQUEST_LINE = {"capture.req.method": "r.method", "capture.req.uri": "r.uri",
                          "capture.req.ver": "r.http_version"}
# Fetches of the session or request that keep no field (no str(): '-' when absent).
_SESSION_FETCHES = {"unique-id": "getattr(r, 'unique_id', '')",
                    "ssl_fc_sni": "_client_sni(getattr(getattr(r, 'session', None), 'transport', None))"}


# Fetches that read the request's head, which HAProxy no longer holds when it
# writes a log line: its `log-format` refuses them ("needs 'HTTP request
# headers' which is not available here"). unique-id-format and header values,
# made while the head is there, take them.
REQUEST_HEAD_FETCHES = frozenset((
    "path", "url", "query", "base", "hdr", "req.hdr", "req.fhdr", "hdr_cnt", "req.hdr_cnt",
    "cook", "req.cook", "urlp", "url_param"))
_FETCH_NAME = re.compile(r"%(?:\{[^}]*\})?\[\s*([A-Za-z0-9_.-]+)")


def request_head_fetches(text: str) -> list[str]:
    """The fetches of a format that read the request's head (REQUEST_HEAD_FETCHES)."""
    return [name for name in _FETCH_NAME.findall(NAMED.get(text, text))
            if name in REQUEST_HEAD_FETCHES]


def sample_expression(sample: str) -> str:
    """The expression for one %[fetch(arg),converter(arg)...]."""
    fetch, *converters = split_arguments(sample)
    name, _, arg = fetch.partition("(")
    arg = arg.rstrip(")").strip()
    if name in ("req.hdr", "hdr", "req.fhdr") and arg:
        expression = f"_header(r, {arg.lower()!r})"
    elif name in _CAPTURE_LISTS and arg:
        if not arg.isdigit():
            raise FormatError(f"sample fetch '{fetch}': the capture's index is a number "
                              "(0 for the first capture line of its kind)")
        expression = f"_captured(r, {_CAPTURE_LISTS[name]!r}, {int(arg)})"
    elif name in _CAPTURED_REQUEST_LINE and not arg:
        expression = _CAPTURED_REQUEST_LINE[name]
    elif name in _SESSION_FETCHES and not arg:
        expression = _SESSION_FETCHES[name]
    elif name in SAMPLE_FETCHES and not arg and all(c in _CONVERTERS or c.startswith("json")
                                                    for c in converters):
        expression = f"str({SAMPLE_FETCHES[name]})"
    else:
        return _request_sample(sample, fetch)
    for converter in converters:
        expression = _converted(expression, converter)
    return expression


# The compiled expressions (haply.proxy.samples) log formats refer to by index.
_SAMPLES: list = []


def _request_sample(sample: str, fetch: str) -> str:
    """Any other expression, evaluated by haply.proxy.samples on the line's
    request (a mode tcp line has none: '-')."""
    from haply.proxy import samples  # imported here: it imports this package

    known = False
    try:
        known = samples.parse_chain(sample.strip())[0][0] in samples.FETCH_NAMES
        compiled = samples.compile_expression(sample)
    except samples.SampleError as error:
        if not known:
            raise FormatError(f"sample fetch '{fetch}' is not supported in haply's log-format "
                              f"(supported: {', '.join(samples.FETCH_NAMES)}, unique-id and the "
                              "capture.req.* and capture.res.* fetches)") from None
        raise FormatError(f"sample '{sample}': {error}") from None
    as_text = samples.as_text
    _SAMPLES.append(lambda request: as_text(compiled(request)))
    return f"_sample(r, {len(_SAMPLES) - 1})"


def _sample_text(record, index: int) -> str | None:
    request = getattr(record, "request", None)
    if request is None:
        return None
    text = _SAMPLES[index](request)
    return None if text is None else _wire_text(text)


def _converted(expression: str, converter: str) -> str:
    name, _, arg = converter.partition("(")
    arg = arg.rstrip(")").strip()
    if name == "json":
        code = arg or "ascii"
        if code not in json_text.INPUT_CODES:
            raise FormatError(f"converter '{converter}': unknown input code {code!r} "
                              f"(expected {', '.join(json_text.INPUT_CODES)})")
        # a failed conversion is no sample: '-' (None) even under +Q
        return f"_json({expression}, {code!r})"
    template = _CONVERTERS.get(converter)
    if template is None:
        raise FormatError(f"converter '{converter}' is not supported in haply's log-format")
    return template.format(expression)


def _wire_text(value: str) -> str:
    """A field's value (its bytes as latin-1 text) as the log line writes it:
    the client's bytes, UTF-8 or not (syslog.py writes lines with
    surrogateescape)."""
    return value if value.isascii() else value.encode("latin-1").decode("utf-8", "surrogateescape")


def _header(record, name: str) -> str:
    """Last value of a request header (HAProxy's hdr() picks the last occurrence)."""
    lookup = getattr(record, "header", None)
    values = lookup(name) if lookup is not None else []
    return _wire_text(values[-1]) if values else ""


def _captured(record, attribute: str, index: int) -> str:
    """capture.req.hdr(index) / capture.res.hdr(index): the captured value as
    it was sent, cut to its length; "" (written '-') without it."""
    values = getattr(getattr(record, "request", None), attribute, None)
    if values is None or index >= len(values):
        return ""
    value = values[index]
    if "#" in value:  # every '#' the capture holds begins a #XX escape
        value = _UNESCAPE.sub(lambda match: chr(int(match[1], 16)), value)
    return _wire_text(value)


_UNESCAPE = re.compile("#([0-9A-F]{2})")


def compile_format(text: str, captures=None) -> Callable[[object], str]:
    """A function record -> line for a log-format string (or a named format);
    captures: the frontend's (haply.logs.captures.Captures) or None."""
    if text == "json":
        return _json_renderer()
    return _generate(parse_format(text), _with_variants(
        with_captures(VARIABLES, captures, "getattr(r, 'request', None)")))


def compile_http(text: str, captures=None) -> Callable | None:
    """The HTTP fast path: a function (session, request, exchange, now, status,
    termination, server, held, log) -> line reading the proxy's objects
    directly, without a record; None for formats it does not cover (json,
    %[samples]), which use compile_format and a record."""
    if text == "json":
        return None
    parts = parse_format(text)
    if any(part.__class__ is tuple and part[0].__class__ is tuple for part in parts):
        return None
    return _generate(parts, _with_variants(with_captures(HTTP_VARIABLES, captures, "q")),
                     "s, q, x, now, status, term, srv, held, log",
                     per_connection=(CONNECTION_VARIABLES, "s.log_constants"))


FLAGS = {"+Q": ("quote", True), "-Q": ("quote", False), "+X": ("hex", True),
         "-X": ("hex", False), "+E": ("escape", True), "-E": ("escape", False)}


def parse_format(text: str) -> list:
    """Literals and (variable, quoted) pairs of a log-format string. A
    variable written in hexadecimal (`+X`) or escaped (`+E`) is named with
    that suffix ("cp+X"): `_with_variants` gives those names their values."""
    text = NAMED.get(text, text)
    parts: list = []  # str literals or (getter, quote)
    literal: list[str] = []
    i, n = 0, len(text)
    # a bare %o sets the defaults for the variables that follow
    defaults = {"quote": False, "hex": False, "escape": False}
    while i < n:
        char = text[i]
        if char == "\\" and i + 1 < n:
            char = text[i + 1]
            i += 2
            if char != " " or not literal or literal[-1] != " ":
                literal.append(char)
            continue
        if char != "%":
            # A run of spaces is one separator, written as one space (HAProxy's rule)
            if char != " " or not literal or literal[-1] != " ":
                literal.append(char)
            i += 1
            continue
        if i + 1 < n and text[i + 1] == "%":
            literal.append("%")
            i += 2
            continue
        i += 1
        flags = ""
        if i < n and text[i] == "{":
            end = text.find("}", i)
            if end < 0:
                raise FormatError(f"unterminated '%{{' in log-format: {text!r}")
            flags = text[i + 1:end]
            i = end + 1
        options = dict(defaults)
        for flag in filter(None, flags.split(",")):
            if flag not in FLAGS:
                raise FormatError(f"unknown flag '{flag}' in '%{{{flags}}}' in log-format "
                                  "(expected +Q, -Q, +X, -X, +E or -E)")
            option, value = FLAGS[flag]
            options[option] = value
        if i < n and text[i] == "[":
            end = text.find("]", i)
            if end < 0:
                raise FormatError(f"unterminated '%[' in log-format: {text!r}")
            sample = text[i + 1:end]
            i = end + 1
            expression = sample_expression(sample)
            if options["escape"]:
                expression = f"_escape({expression})"
            if literal:
                parts.append("".join(literal))
                literal = []
            parts.append((("expr", expression), options["quote"]))
            continue
        start = i
        while i < n and text[i].isalnum():
            i += 1
        name = text[start:i]
        if name == "o":
            # %o only sets the defaults for what follows: it writes nothing and
            # leaves the separators around it to the rule for runs of them
            defaults = options
            continue
        if name in UNSUPPORTED:
            raise FormatError(f"log-format variable '%{name}' is not supported by haply")
        if name not in VARIABLES:
            raise FormatError(f"no such log-format variable '%{name}'" if name else
                              f"'%' without a variable name at {text[start - 1:start + 8]!r} "
                              "in log-format (write '%%' for a '%')")
        quoted = options["quote"] and name not in NUMERIC
        if quoted and name in ("hrl", "hsl"):
            name += "+Q"  # each value in its quotes
            quoted = False
        if options["hex"] and name in HEX:
            name += "+X"
        elif options["escape"] and name not in NUMERIC:
            name += "+E"
        if literal:
            parts.append("".join(literal))
            literal = []
        parts.append((name, quoted))
    if literal:
        parts.append("".join(literal))
    return parts


def http_only(text: str) -> list[str]:
    """The variables of a log-format string that need an HTTP exchange, in order."""
    names = (part[0].partition("+")[0] for part in parse_format(text)
             if part.__class__ is tuple and part[0].__class__ is str)
    return list(dict.fromkeys(name for name in names if name in HTTP_ONLY))


def _with_variants(variables: dict[str, str | None]) -> dict[str, str | None]:
    """variables and their `+X` and `+E` forms (those that captures make
    themselves are kept)."""
    out = dict(variables)
    for name, expression in variables.items():
        if "+" in name:
            continue
        if expression is None:  # not configured: every form writes nothing
            for suffix in ("+X", "+E", "+Q", "+Q+E"):
                out.setdefault(name + suffix, None)
            continue
        if name in HEX:
            out.setdefault(name + "+X", f"_hex({expression})")
        if name not in NUMERIC:
            out.setdefault(name + "+E", f"_escape({expression})")
    return out


def _separated(parts: list, variables: dict[str, str | None]) -> list:
    """parts as HAProxy writes them: a capture the frontend does not make
    writes nothing, and a separator (a space: parse_format made each run of
    them one) is not written after another one, nor at the start of the line.
    So "%sq/%bq %hr %hs %{+Q}r" has one space before the request, and
    "hr=%hr hs=%hs" keeps both of its own."""
    out: list = []
    after_separator = True
    for part in parts:
        if part.__class__ is str:
            if after_separator and part.startswith(" "):
                part = part[1:]
            if part:
                out.append(part)
                after_separator = part.endswith(" ")
        elif part[0].__class__ is tuple or variables[part[0]] is not None:
            out.append(part)
            after_separator = False
    return out


def _generate(parts: list, variables: dict[str, str] | None = None,
              arguments: str = "r", fstring: bool = True,
              per_connection: tuple[frozenset[str], str] | None = None
              ) -> Callable[[object], str]:
    """One generated expression for the whole line: a line costs one call.
    per_connection: the variables whose values a connection keeps, and where
    the text they make is kept (see _connection_constants)."""
    variables = variables or VARIABLES
    parts = _separated(parts, variables)
    pieces: list[str] = []
    for part in parts:
        if part.__class__ is str:
            pieces.append(repr(part))
            continue
        name, quoted = part
        if name.__class__ is tuple:  # a %[sample]: text
            expression = name[1]
            pieces.append(f"'\"' + _dash({expression}) + '\"'" if quoted else f"_dash({expression})")
            continue
        expression = variables[name]
        if quoted:
            pieces.append(f"'\"' + str({expression}) + '\"'")
        elif name in NUMERIC or name.partition("+")[0] in NEVER_EMPTY:
            pieces.append(f"str({expression})")
        else:
            pieces.append(f"_dash({expression})")
    body = " + ".join(pieces) if pieces else "''"
    fpieces = _fstring(parts, variables) if fstring else None
    # One f-string builds the line in one allocation; the concatenation is kept
    # for the rare expression an f-string cannot hold (a backslash, '"""').
    prelude = ""
    if fpieces and per_connection:
        prelude, fpieces = _connection_constants(fpieces, per_connection)
    expression = " ".join(piece for piece, _ in fpieces) if fpieces else body
    source = f"def render({arguments}):\n{prelude}    return {expression}\n"
    namespace = dict(_NAMESPACE)
    exec(compile(source, "<log-format>", "exec"), namespace)  # noqa: S102 (built from a fixed table)
    return namespace["render"]


# _fstring's pieces: a literal, a variable a connection keeps, any other value.
LITERAL, CONNECTION, VALUE = 0, 1, 2


def _fstring(parts: list, variables: dict[str, str]) -> list[tuple[str, int]] | None:
    """The line as f-string pieces, joined by spaces into one expression (the
    same text as the concatenation `_generate` builds), each with its kind;
    None when an expression cannot go in one."""
    pieces: list[tuple[str, int]] = []
    kind = VALUE

    def literal(text: str) -> None:
        if text:
            pieces.append(("f" + repr(text.replace("{", "{{").replace("}", "}}")), LITERAL))

    def value(expression: str) -> bool:
        if "\\" in expression or '"""' in expression or expression.endswith('"'):
            return False
        pieces.append((f'f"""{{{expression}}}"""', kind))
        return True

    for part in parts:
        if part.__class__ is str:
            literal(part)
            continue
        name, quoted = part
        kind = VALUE
        if name.__class__ is tuple:  # a %[sample]: text
            expression = f"_dash({name[1]})"
        else:
            expression = variables[name]
            try:
                constant = ast.literal_eval(expression)  # %CC, %sq ...: written once here
            except (ValueError, SyntaxError):
                pass
            else:
                text = str(constant) if quoted or name in NUMERIC else _dash(constant)
                literal(f'"{text}"' if quoted else text)
                continue
            kind = CONNECTION if name in CONNECTION_VARIABLES else VALUE
            if quoted:
                expression = f"str({expression})"
            elif name in NUMERIC or name.partition("+")[0] in NEVER_EMPTY:
                expression = f"({expression})"
            else:
                expression = f"_dash({expression})"
        if quoted:
            literal('"')
        if not value(expression):
            return None
        if quoted:
            literal('"')
    return pieces or None


def _connection_constants(pieces: list[tuple[str, int]], per_connection: tuple[frozenset[str], str]
                          ) -> tuple[str, list[tuple[str, int]]]:
    """Each run of literals and per-connection values (`%ci:%cp [`) becomes one
    text, made at the connection's first line and kept where per_connection
    names (an attribute): a keep-alive connection's later lines take it whole.
    Returns the statements that make or fetch the texts and the new pieces."""
    runs: list[str] = []
    out: list[tuple[str, int]] = []
    run: list[tuple[str, int]] = []

    def end_run() -> None:
        if any(kind == CONNECTION for _, kind in run):
            out.append((f'f"""{{_c[{len(runs)}]}}"""', VALUE))
            runs.append(" ".join(piece for piece, _ in run))
        else:
            out.extend(run)
        run.clear()

    for piece in pieces:
        if piece[1] == VALUE:
            end_run()
            out.append(piece)
        else:
            run.append(piece)
    end_run()
    if not runs:
        return "", pieces
    kept = per_connection[1]
    prelude = (f"    _c = {kept}\n"
               f"    if _c is None:\n"
               f"        _c = {kept} = ({', '.join(runs)},)\n")
    return prelude, out


def _json_renderer() -> Callable[[object], str]:
    items = ", ".join(f"{key!r}: ({VARIABLES[name]})" for key, name in JSON_FIELDS)
    source = ("def render(r):\n    return json.dumps({" + items +
              "}, separators=(',', ':'), default=str)\n")
    namespace = dict(_NAMESPACE)
    exec(compile(source, "<log-format json>", "exec"), namespace)  # noqa: S102
    return namespace["render"]
