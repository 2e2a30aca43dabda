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

import json
import time
from typing import Callable

TCPLOG = "%ci:%cp [%t] %ft %b/%s %Tw/%Tc/%Tt %B %ts %ac/%fc/%bc/%sc/%rc %sq/%bq"
HTTPLOG = ("%ci:%cp [%tr] %ft %b/%s %TR/%Tw/%Tc/%Tr/%Ta %ST %B %CC %CS %tsc "
           "%ac/%fc/%bc/%sc/%rc %sq/%bq %hr %hs %{+Q}r")
CLF = ("%{+Q}o %{-Q}ci - - [%trg] %r %ST %B \"\" \"\" %cp %ms %ft %b %s %TR %Tw %Tc %Tr "
       "%Ta %tsc %ac %fc %bc %sc %rc %sq %bq %CC %CS %hrl %hsl")
NAMED = {"tcplog": TCPLOG, "httplog": HTTPLOG, "httplog clf": CLF}
# HAProxy's format when a proxy logs without choosing one (manual 8.2.1).
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


def _date(now: float, millis: bool = True) -> str:
    t = time.localtime(now)
    text = f"{t.tm_mday:02d}/{MONTHS[t.tm_mon - 1]}/{t.tm_year}:{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d}"
    if millis:
        text += f".{int(now % 1 * 1000):03d}"
    return text


def _gmt_date(now: float) -> str:
    t = time.gmtime(now)
    return (f"{t.tm_mday:02d}/{MONTHS[t.tm_mon - 1]}/{t.tm_year}:{t.tm_hour:02d}:"
            f"{t.tm_min:02d}:{t.tm_sec:02d} +0000")


# Each variable reads one attribute of a log record (haply.logs.logger.Record).
VARIABLES: dict[str, Callable] = {
    "ci": lambda r: r.client_ip, "cp": lambda r: r.client_port,
    "fi": lambda r: r.frontend_ip, "fp": lambda r: r.frontend_port,
    "f": lambda r: r.frontend, "ft": lambda r: r.frontend + ("~" if r.ssl else ""),
    "fc": lambda r: r.feconn, "b": lambda r: r.backend, "s": lambda r: r.server,
    "si": lambda r: r.server_ip, "sp": lambda r: r.server_port,
    "t": lambda r: _date(r.accept_time), "tr": lambda r: _date(r.request_time),
    "trg": lambda r: _gmt_date(r.request_time), "trl": lambda r: _date(r.request_time, False),
    "ms": lambda r: f"{int(r.accept_time % 1 * 1000):03d}",
    "Th": lambda r: 0, "Ti": lambda r: r.Ti, "TR": lambda r: r.TR, "Tq": lambda r: r.TR,
    "Tw": lambda r: r.Tw, "Tc": lambda r: r.Tc, "Tr": lambda r: r.Tr, "Ta": lambda r: r.Ta,
    "Tt": lambda r: r.Tt, "T": lambda r: r.Tt,
    "ST": lambda r: r.status, "B": lambda r: r.bytes_read, "U": lambda r: r.bytes_uploaded,
    "CC": lambda r: "", "CS": lambda r: "", "hr": lambda r: "", "hs": lambda r: "",
    "hrl": lambda r: "", "hsl": lambda r: "",
    "ts": lambda r: r.termination[:2], "tsc": lambda r: r.termination,
    "ac": lambda r: r.actconn, "bc": lambda r: r.beconn, "sc": lambda r: r.srv_conn,
    "rc": lambda r: r.retries, "sq": lambda r: r.srv_queue, "bq": lambda r: r.backend_queue,
    "r": lambda r: r.request_line, "HM": lambda r: r.method, "HU": lambda r: r.uri,
    "HP": lambda r: r.uri.split("?", 1)[0], "HQ": lambda r: ("?" + r.uri.split("?", 1)[1]) if "?" in r.uri else "",
    "HV": lambda r: r.http_version, "H": lambda r: r.hostname, "pid": lambda r: r.pid,
    "ID": lambda r: "", "o": lambda r: "", "lc": lambda r: 0, "rt": lambda r: r.request_counter,
    "rq": lambda r: r.request_counter, "ts_": lambda r: "",
}
# Variables HAProxy never quotes under +Q (numbers, dates, flags: observed on
# HAProxy 2.6's `option httplog clf` lines).
# Captures: when nothing was captured HAProxy writes nothing, not even the space.
OMITTED_WHEN_EMPTY = frozenset({"hr", "hs", "hrl", "hsl"})
NUMERIC = frozenset("cp fp sp fc TR Tq Tw Tc Tr Ta Tt T Th Ti ST B U ac bc sc rc sq bq pid lc "
                    "rt rq t tr trg trl ms ts tsc".split())


class FormatError(ValueError):
    pass


def compile_format(text: str) -> Callable[[object], str]:
    """A function record -> line for a log-format string (or a named format)."""
    if text == "json":
        return _json_renderer()
    text = NAMED.get(text, text)
    parts: list = []  # str literals or (getter, quote)
    literal: list[str] = []
    i, n = 0, len(text)
    quote = False  # a bare %o sets the default for following variables
    while i < n:
        char = text[i]
        if char == "\\" and i + 1 < n:
            literal.append(text[i + 1])
            i += 2
            continue
        if char != "%":
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
        if i < n and text[i] == "[":
            end = text.find("]", i)
            if end < 0:
                raise FormatError(f"unterminated '%[' in log-format: {text!r}")
            sample = text[i + 1:end]
            i = end + 1
            name = {"src": "ci", "src_port": "cp", "dst": "fi", "dst_port": "fp",
                    "status": "ST", "method": "HM"}.get(sample.split(",")[0])
            if name is None:
                literal.append("-")
                continue
        else:
            start = i
            while i < n and (text[i].isalnum() or text[i] == "_"):
                i += 1
            name = text[start:i]
            # longest known variable name that prefixes what was read
            while name and name not in VARIABLES:
                name = name[:-1]
                i -= 1
            if not name:
                raise FormatError(f"unknown variable at {text[start - 1:start + 8]!r} in log-format")
        item_quote = quote
        for flag in flags.split(","):
            if flag == "+Q":
                item_quote = True
            elif flag == "-Q":
                item_quote = False
        if name == "o":
            # %o only sets the default for what follows; its separator goes too
            quote = item_quote
            if i < n and text[i] == " ":
                i += 1
            continue
        if literal:
            parts.append("".join(literal))
            literal = []
        parts.append((VARIABLES[name], item_quote and name not in NUMERIC,
                      name in OMITTED_WHEN_EMPTY))
    if literal:
        parts.append("".join(literal))

    def render(record) -> str:
        out = []
        skip_space = False
        for part in parts:
            if part.__class__ is str:
                if skip_space and part.startswith(" "):
                    part = part[1:]
                skip_space = False
                out.append(part)
                continue
            getter, quoted, omit = part
            value = getter(record)
            if omit and not value:
                skip_space = True
                continue
            value = "-" if value is None or value == "" and not quoted else str(value)
            out.append(f'"{value}"' if quoted else value)
        return "".join(out)

    return render


def _json_renderer() -> Callable[[object], str]:
    getters = [(key, VARIABLES[name]) for key, name in JSON_FIELDS]

    def render(record) -> str:
        return json.dumps({key: getter(record) for key, getter in getters},
                          separators=(",", ":"), default=str)
    return render
