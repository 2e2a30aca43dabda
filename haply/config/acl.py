"""ACL declarations and `if|unless` conditions (manual sections 7.1, 7.2, 7.4).

`acl NAME FETCH [flags] PATTERN...` becomes a `model.Acl`; a condition becomes a
`model.Condition`: OR-ed groups of AND-ed terms, each term a named ACL (resolved
here, so it must be declared earlier in the same proxy, as HAProxy requires), a
predefined ACL (TRUE, LOCALHOST, ...) or an anonymous `{ FETCH [flags] PATTERN... }`,
optionally negated with `!`. `||` and `or` separate groups; AND is implicit.

haply knows a small set of fetches, listed in FETCHES with what their patterns
are. A `-m METHOD` on path, url or hdr is folded into the fetch name
(`hdr(host) -m beg www.` is `hdr_beg(host) www.`), so the evaluator sees one
spelling per test.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace

from haply.config.diagnostics import Location
from haply.config.lexer import Word
from haply.config.model import STICKY_SLOTS, Acl, Condition, Term
from haply.proxy.variables import parse_name as parse_variable_name


class AclError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class Fetch:
    argument: str  # "none" | "optional" | "required"
    patterns: str  # "string" | "regex" | "ip" | "port" | "integer" | "version" | "hex" | "none" (a boolean)
    description: str


FETCHES: dict[str, Fetch] = {
    "path": Fetch("none", "string", "request path equals a pattern"),
    "path_beg": Fetch("none", "string", "request path starts with a pattern"),
    "path_end": Fetch("none", "string", "request path ends with a pattern"),
    "path_sub": Fetch("none", "string", "request path contains a pattern"),
    "path_dir": Fetch("none", "string", "a '/'-delimited part of the path equals a pattern"),
    "path_reg": Fetch("none", "regex", "request path matches a regular expression"),
    "url": Fetch("none", "string", "request URI equals a pattern"),
    "url_beg": Fetch("none", "string", "request URI starts with a pattern"),
    "url_end": Fetch("none", "string", "request URI ends with a pattern"),
    "url_sub": Fetch("none", "string", "request URI contains a pattern"),
    "url_reg": Fetch("none", "regex", "request URI matches a regular expression"),
    "hdr": Fetch("optional", "string", "a header value (each comma-separated value) equals a pattern"),
    "hdr_beg": Fetch("optional", "string", "a header value starts with a pattern"),
    "hdr_end": Fetch("optional", "string", "a header value ends with a pattern"),
    "hdr_sub": Fetch("optional", "string", "a header value contains a pattern"),
    "hdr_dom": Fetch("optional", "string", "a '.'-delimited part of a header value equals a pattern"),
    "hdr_reg": Fetch("optional", "regex", "a header value matches a regular expression"),
    "method": Fetch("none", "string", "request method equals a pattern"),
    "src": Fetch("none", "ip", "client address is in a network"),
    "dst": Fetch("none", "ip", "local address the client connected to is in a network"),
    "dst_port": Fetch("none", "port", "local port the client connected to is in a range"),
    "status": Fetch("none", "integer",
                    "the response's status (http-response rules): N, LOW:HIGH, or eq|ge|gt|le|lt N"),
    "ssl_fc": Fetch("none", "none", "the client connection uses TLS"),
    "nbsrv": Fetch("optional", "integer",
                   "the usable servers of a backend (nbsrv(NAME); without NAME, the proxy's own), "
                   "as the balancer counts them: N, LOW:HIGH, or eq|ge|gt|le|lt N"),
    "srv_is_up": Fetch("required", "none",
                       "a server is up (srv_is_up([BACKEND/]SERVER); without BACKEND, of the proxy's "
                       "own servers), draining or not, and not in maintenance"),
    "http_auth": Fetch("required", "none", "the request's Basic credentials are an account of the userlist"),
    "http_auth_group": Fetch("required", "string",
                             "the request's Basic credentials are an account of the userlist in one of the groups"),
    "always_true": Fetch("none", "none", "always matches"),
    "always_false": Fetch("none", "none", "never matches"),
    "hdr_cnt": Fetch("optional", "integer", "how many values (comma-separated) a header has: N, LOW:HIGH, "
                     "or eq|ge|gt|le|lt N"),
    "cook_cnt": Fetch("optional", "integer", "how many cookies of that name the request sends: N, LOW:HIGH, "
                      "or eq|ge|gt|le|lt N"),
}

# The string samples an acl can test (manual 7.1.3): with their argument,
# what they read, and the spelled match methods HAProxy derives from them
# (`urlp_beg(id)` is `urlp(id) -m beg`). Any of them takes `-m str|beg|end|
# sub|reg|dir|dom|len|found`.
STRING_SAMPLES: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "path": ("none", "the request's path", ("beg", "end", "sub", "dir", "dom", "reg", "len")),
    "url": ("none", "the request's target", ("beg", "end", "sub", "dir", "dom", "reg", "len")),
    "hdr": ("optional", "a header's values (each comma-separated one; hdr(NAME,OCC): the OCCth, -1 the last)",
            ("beg", "end", "sub", "dir", "dom", "reg", "len", "ip", "val")),
    "query": ("none", "the request's query string (after '?'; none without one)", ()),
    "urlp": ("required", "a query parameter's values (urlp(NAME))",
             ("beg", "end", "sub", "dir", "dom", "reg", "len", "val")),
    "cook": ("required", "a cookie's values (cook(NAME))", ("beg", "end", "sub", "dir", "dom", "reg", "len", "val")),
    "base": ("none", "the first Host field's value followed by the path", ("beg", "end", "sub", "dir", "dom", "reg", "len")),
    "ssl_fc_sni": ("none", "the name the client asked for in its TLS handshake (none without one)", ("end", "reg")),
    "method": ("none", "the request's method", ()),
    "var": ("required", "a variable's value (var(SCOPE.NAME[,DEFAULT]), with -m)", ()),
    "req.ssl_sni": ("none", "the server name of the TLS ClientHello a mode tcp connection starts with "
                    "(tcp-request inspect-delay)", ()),
    "req.ssl_alpn": ("none", "a protocol the TLS ClientHello offers (ALPN) on a mode tcp connection", ()),
}
_METHOD_WORDS = {"beg": "starts with", "end": "ends with", "sub": "contains", "dir": "has a '/'-delimited part equal to",
                 "dom": "has a '.'-delimited part equal to", "reg": "matches a regular expression",
                 "len": "has a length of", "ip": "is an address in", "val": "is an integer of"}
_METHOD_PATTERNS = {"reg": "regex", "len": "integer", "val": "integer", "ip": "ip"}
_PATTERN_HINTS = {"integer": " (N, LOW:HIGH, or eq|ge|gt|le|lt N)", "ip": " (an address or network)"}
# `-m METHOD` on a sample that has no spelled form for it: names of haply's
# own (not keywords), one per sample and method, so that the evaluator still
# sees one spelling per test.
DERIVED_FETCHES: dict[str, Fetch] = {}
for _sample, (_argument, _what, _methods) in STRING_SAMPLES.items():
    if _sample not in FETCHES:
        FETCHES[_sample] = Fetch(_argument, "string", f"{_what} equals a pattern")
    DERIVED_FETCHES[f"{_sample}_found"] = Fetch(_argument, "none", f"{_what} is there (-m found)")
    for _method, _words in _METHOD_WORDS.items():
        _fetch, _patterns = f"{_sample}_{_method}", _METHOD_PATTERNS.get(_method, "string")
        if _fetch in FETCHES:
            continue
        if _method in _methods:  # HAProxy spells it
            FETCHES[_fetch] = Fetch(_argument, _patterns,
                                    f"{_what} {_words} a pattern{_PATTERN_HINTS.get(_patterns, '')}")
        else:
            DERIVED_FETCHES[_fetch] = Fetch(_argument, _patterns, f"{_what} {_words} a pattern "
                                            f"(-m {'int' if _method == 'val' else _method})")
# Fetches of the bytes a mode tcp connection has sent so far (manual 7.3.5),
# which tcp-request content rules wait for (haply.proxy.inspection); the
# string ones are in STRING_SAMPLES.
PAYLOAD_FETCHES: dict[str, Fetch] = {
    "req.len": Fetch("none", "integer", "how many bytes the connection has sent so far: N, LOW:HIGH, "
                     "or eq|ge|gt|le|lt N"),
    "req.ssl_hello_type": Fetch("none", "integer", "the type of the TLS handshake message the connection "
                                "starts with (1: a ClientHello)"),
    "req.ssl_ver": Fetch("none", "version", "the version of the TLS ClientHello, as MAJOR.MINOR (3.3: TLS 1.2 "
                         "and 1.3), or LOW:HIGH"),
    "req.ssl_ec_ext": Fetch("none", "none", "the TLS ClientHello sends the supported groups (elliptic curves) "
                            "extension"),
    "req.ssl_st_ext": Fetch("none", "integer", "the TLS ClientHello's SessionTicket extension: 0 none, "
                            "1 empty, 2 with a ticket"),
    "req.payload": Fetch("required", "hex", "the LENGTH bytes at OFFSET (req.payload(OFFSET,LENGTH); LENGTH 0: "
                         "all from OFFSET) equal a hexadecimal pattern"),
}
PAYLOAD_STRINGS = ("req.ssl_sni", "req.ssl_alpn")
FETCHES.update(PAYLOAD_FETCHES)
for _fetch in PAYLOAD_FETCHES:
    DERIVED_FETCHES[f"{_fetch}_found"] = Fetch(PAYLOAD_FETCHES[_fetch].argument, "none",
                                               f"{_fetch} has a value (-m found)")
# Every fetch name, spelled or derived, that reads the connection's bytes.
READS_PAYLOAD = frozenset(name for name in (*FETCHES, *DERIVED_FETCHES)
                          if name.startswith((*PAYLOAD_FETCHES, *PAYLOAD_STRINGS)))

# The samples that read the request (with method, mode http only).
REQUEST_SAMPLES = ("path", "url", "hdr", "query", "urlp", "cook", "base")
# Other spellings of the same fetch in an acl.
ALIASES = {"req.hdr": "hdr", "req.cook": "cook", "url_param": "urlp", "req.hdr_cnt": "hdr_cnt",
           "req.cook_cnt": "cook_cnt", "req_ssl_sni": "req.ssl_sni", "req_ssl_hello_type": "req.ssl_hello_type",
           "req_ssl_ver": "req.ssl_ver", "req_len": "req.len", "payload": "req.payload"}

# Sticky counters (haply.proxy.counters): `sc_NAME(N[,TABLE])`,
# `scN_NAME([TABLE])` read the entry sticky counter N tracks (no match when
# it tracks none); `src_NAME([TABLE])` the entry of the client's address in
# the proxy's table or TABLE (0 when there is none). A parsed acl has one
# spelling: fetch `sc_NAME` with arg "N,TABLE" (TABLE may be empty), or
# fetch `src_NAME` with arg TABLE.
COUNTER_FETCHES = ("conn_cnt", "conn_cur", "conn_rate", "sess_cnt", "sess_rate", "http_req_cnt",
                   "http_req_rate", "http_err_cnt", "http_err_rate", "get_gpc0", "get_gpc1",
                   "gpc0_rate", "gpc1_rate", "get_gpt0", "inc_gpc0", "inc_gpc1", "clr_gpc0", "clr_gpc1",
                   "bytes_in_rate", "bytes_out_rate", "kbytes_in", "kbytes_out", "http_fail_cnt",
                   "http_fail_rate")
for _name in COUNTER_FETCHES:
    FETCHES[f"sc_{_name}"] = Fetch("required", "integer", f"{_name} of the entry sticky counter N tracks: "
                                   f"sc_{_name}(N[,TABLE])")
    for _slot in range(STICKY_SLOTS):
        FETCHES[f"sc{_slot}_{_name}"] = Fetch("optional", "integer",
                                              f"the same as sc_{_name}({_slot}[,TABLE])")
    FETCHES[f"src_{_name}"] = Fetch("optional", "integer", f"{_name} of the client address's entry in the "
                                    f"proxy's stick-table (or TABLE), 0 without one: src_{_name}([TABLE])")
FETCHES["sc_tracked"] = Fetch("required", "none", "sticky counter N tracks an entry: sc_tracked(N[,TABLE])")
FETCHES["sc_trackers"] = Fetch("required", "integer",
                               "the sessions tracking the entry sticky counter N tracks: sc_trackers(N[,TABLE])")
for _slot in range(STICKY_SLOTS):
    FETCHES[f"sc{_slot}_tracked"] = Fetch("optional", "none", f"the same as sc_tracked({_slot}[,TABLE])")
    FETCHES[f"sc{_slot}_trackers"] = Fetch("optional", "integer", f"the same as sc_trackers({_slot}[,TABLE])")
_STICKY_PREFIX = re.compile(r"sc([0-9])_")

# Fetches that read the request's target, fields or credentials. HAProxy
# cannot evaluate them in an http-response rule (the request has gone out)
# and warns that such an acl never matches there; haply does the same.
REQUEST_ONLY_FETCHES = frozenset(
    name for name in (*FETCHES, *DERIVED_FETCHES) if name.startswith((*REQUEST_SAMPLES, "http_auth")))

# And the one that reads the response, which only http-response rules have.
RESPONSE_ONLY_FETCHES = frozenset({"status"})
INTEGER_OPERATORS = frozenset({"eq", "ge", "gt", "le", "lt"})

# `-m METHOD` folded into the fetch name, for the fetch families that have
# suffixed spellings (manual 7.1.3).
MATCH_SUFFIXES = {"str": "", "beg": "_beg", "end": "_end", "sub": "_sub", "reg": "_reg", "dom": "_dom", "dir": "_dir",
                  "len": "_len", "found": "_found", "ip": "_ip", "int": "_val"}
FLAGS = frozenset({"-i"})

# Manual section 7.4, the ones haply can evaluate.
PREDEFINED: dict[str, tuple[str, tuple[str, ...]]] = {
    "TRUE": ("always_true", ()),
    "FALSE": ("always_false", ()),
    "LOCALHOST": ("src", ("127.0.0.1/8", "::1")),
    "HTTP_URL_SLASH": ("url_beg", ("/",)),
    "HTTP_URL_STAR": ("url", ("*",)),
    "METH_CONNECT": ("method", ("CONNECT",)),
    "METH_DELETE": ("method", ("DELETE",)),
    "METH_GET": ("method", ("GET", "HEAD")),
    "METH_HEAD": ("method", ("HEAD",)),
    "METH_OPTIONS": ("method", ("OPTIONS",)),
    "METH_POST": ("method", ("POST",)),
    "METH_PUT": ("method", ("PUT",)),
    "METH_TRACE": ("method", ("TRACE",)),
}
UNSUPPORTED_PREDEFINED = frozenset({
    "HTTP", "HTTP_1.0", "HTTP_1.1", "HTTP_2.0", "HTTP_CONTENT", "HTTP_URL_ABS", "RDP_COOKIE",
    "REQ_CONTENT", "WAIT_END",
})

_VERSION = r"[0-9]+(?:\.[0-9]+)?"
_VERSION_RANGE = f"{_VERSION}(?::{_VERSION})?"

_FETCH = re.compile(r"([a-z0-9_.]+)(?:\((.*)\))?", re.S)


def parse_acl(name: str, words: Sequence[str], location: Location, owner: str | None = None) -> Acl:
    """An ACL from its fetch word and what follows (flags then patterns);
    owner: the proxy it is written in (what `nbsrv` without a name counts)."""
    if not words:
        raise AclError(f"acl '{name}' needs a fetch such as path_beg, hdr(host) or src")
    match = _FETCH.fullmatch(words[0])
    if not match:
        raise AclError(f"invalid fetch '{words[0]}' in acl '{name}'")
    fetch, arg = match.group(1), match.group(2)
    if fetch.startswith("req.hdr_"):
        fetch = fetch[4:]  # the same request field as hdr() in an acl
    fetch = ALIASES.get(fetch, fetch)
    flags: set[str] = set()
    i = 1
    while i < len(words) and words[i].startswith("-"):
        flag = words[i]
        if flag == "--":
            i += 1
            break
        if flag == "-m":
            if i + 1 >= len(words):
                raise AclError("'-m' needs a match method such as beg, end, sub, reg")
            method = words[i + 1]
            if fetch in PAYLOAD_FETCHES and method == "found":
                fetch += "_found"
                i += 2
                continue
            if fetch == "req.payload" and method == "bin":  # its only match besides found
                i += 2
                continue
            if fetch not in STRING_SAMPLES or method not in MATCH_SUFFIXES:
                raise AclError(
                    f"'-m {method}' on '{fetch}' is not supported by haply: it supports "
                    f"'-m {'|'.join(MATCH_SUFFIXES)}' on {', '.join(STRING_SAMPLES)}"
                )
            if fetch == "method" and method not in ("str", "found"):
                raise AclError(f"'-m {method}' cannot be used with 'method'")
            fetch += MATCH_SUFFIXES[method]
            i += 2
            continue
        if flag not in FLAGS:
            raise AclError(f"acl flag '{flag}' is not supported by haply: it supports -i, -m and --")
        flags.add(flag)
        i += 1
    if fetch == "var" and "-m" not in words[1:i]:
        # its type is the stored value's: HAProxy wants the match said
        raise AclError("fetch 'var' needs a match method, as in var(txn.NAME) -m str VALUE "
                       "(-m str|beg|end|sub|reg|dom|dir|len|found|ip|int)")
    if fetch == "req.payload" and "-m" not in words[1:i]:
        raise AclError(f"fetch '{words[0]}' is binary: say how to match it, as in "
                       f"{words[0]} -m bin 160301 (HAProxy asks for -m too)")
    spec = FETCHES.get(fetch) or (DERIVED_FETCHES.get(fetch) if "-m" in words[1:i] else None)
    if spec is None:
        listed = sorted(name for name in FETCHES if not name.startswith(("sc", "src_")))
        raise AclError(f"fetch '{fetch}' is not supported by haply in acls; supported: {', '.join(listed)} "
                       "and the sticky counter fetches sc_*, sc0_*..sc2_*, src_*")
    if fetch.startswith("var") and arg is not None:
        try:
            parse_variable_name(arg.partition(",")[0].strip())
        except ValueError as error:
            raise AclError(str(error)) from None
    elif fetch.startswith("req.payload"):
        if arg is None or not re.fullmatch(r"[0-9]+,[0-9]+", arg.replace(" ", "")):
            raise AclError(f"fetch '{words[0]}' expects an offset and a length, as in req.payload(0,3)")
    elif arg is not None and "," in arg and not fetch.startswith(("sc", "src_")):  # (a counter's table)
        second = arg.partition(",")[2]
        if not fetch.startswith("hdr") or fetch == "hdr_cnt":
            raise AclError(f"fetch '{fetch}({arg})': a second argument is not supported by haply")
        if not re.fullmatch(r"-?[0-9]+", second.strip()):
            raise AclError(f"fetch '{fetch}({arg})': the occurrence '{second}' is not an integer "
                           "(1 the first, -1 the last)")
    if arg is not None and spec.argument == "none":
        raise AclError(f"fetch '{fetch}' takes no argument")
    if arg is None and spec.argument == "required":
        raise AclError(f"fetch '{fetch}' needs an argument, as in {fetch}(NAME)")
    patterns = tuple(words[i:])
    _check_patterns(fetch, spec, patterns)
    if fetch == "nbsrv" and not arg:
        arg = owner
    if fetch.startswith("src_"):
        arg = arg or owner
    elif fetch.startswith("sc"):
        fetch, arg = _sticky_counter_fetch(fetch, arg)
    if fetch == "srv_is_up" and "/" not in arg:
        arg = f"{owner}/{arg}"
    return Acl(name, fetch, arg or None, frozenset(flags), patterns, location)


def _sticky_counter_fetch(fetch: str, arg: str | None) -> tuple[str, str]:
    """scN_NAME([TABLE]) and sc_NAME(N[,TABLE]) as sc_NAME with "N,TABLE"."""
    numbered = _STICKY_PREFIX.match(fetch)
    if numbered:
        slot, table = numbered.group(1), arg or ""
        fetch = "sc_" + fetch[numbered.end():]
    else:
        slot, _, table = arg.partition(",")
        if not slot.isdigit() or int(slot) >= STICKY_SLOTS:
            raise AclError(f"'{fetch}({arg})': the first argument is a sticky counter, 0 to {STICKY_SLOTS - 1}")
    if "," in table:
        raise AclError(f"'{fetch}': unexpected argument '{table.split(',', 1)[1]}' after the table name")
    return fetch, f"{slot},{table}"


def _check_patterns(fetch: str, spec: Fetch, patterns: tuple[str, ...]) -> None:
    if spec.patterns == "none":
        if patterns:
            raise AclError(f"fetch '{fetch}' is a boolean and takes no pattern (got '{patterns[0]}')")
        return
    if not patterns:
        raise AclError(f"fetch '{fetch}' needs at least one pattern")
    for pattern in patterns:
        if spec.patterns == "regex":
            try:
                re.compile(pattern)
            except re.error as error:
                raise AclError(f"invalid regular expression '{pattern}': {error}") from None
        elif spec.patterns == "ip":
            try:
                ipaddress.ip_network(pattern, strict=False)
            except ValueError:
                raise AclError(
                    f"invalid address '{pattern}' for '{fetch}': expected an IP address or network such as 10.0.0.0/8"
                ) from None
        elif spec.patterns == "version":
            if pattern not in INTEGER_OPERATORS and not re.fullmatch(_VERSION_RANGE, pattern):
                raise AclError(f"invalid version '{pattern}' for '{fetch}': expected MAJOR.MINOR (3.1 is TLS 1.0), "
                               "LOW:HIGH or eq|ge|gt|le|lt MAJOR.MINOR")
        elif spec.patterns == "hex":
            if not re.fullmatch(r"(?:[0-9a-fA-F]{2})+", pattern):
                raise AclError(f"invalid pattern '{pattern}' for '{fetch}': expected bytes in hexadecimal, "
                               "as in 160301")
        elif spec.patterns == "port":
            if not re.fullmatch(r"[0-9]+(:[0-9]+)?", pattern):
                raise AclError(f"invalid port '{pattern}' for '{fetch}': expected N or LOW:HIGH")
        elif spec.patterns == "integer":
            if pattern not in INTEGER_OPERATORS and not re.fullmatch(r"[0-9]+(:[0-9]+)?", pattern):
                raise AclError(f"invalid integer '{pattern}' for '{fetch}': expected N, LOW:HIGH "
                               "or eq|ge|gt|le|lt N")
    if spec.patterns in ("integer", "version") and patterns[-1] in INTEGER_OPERATORS:
        raise AclError(f"'{patterns[-1]}' in '{fetch}' needs a number after it")


class AclTable:
    """The named ACLs of one proxy, in declaration order."""

    def __init__(self) -> None:
        self._by_name: dict[str, list[Acl]] = {}

    def add(self, acl: Acl) -> None:
        entries = self._by_name.setdefault(acl.name, [])
        for index, known in enumerate(entries):
            if (known.fetch, known.arg, known.flags) == (acl.fetch, acl.arg, acl.flags):
                entries[index] = replace(known, patterns=known.patterns + acl.patterns)
                return
        entries.append(acl)

    def all(self) -> tuple[Acl, ...]:
        return tuple(acl for entries in self._by_name.values() for acl in entries)

    def term(self, name: str, negated: bool, location: Location) -> Term:
        entries = self._by_name.get(name)
        if entries:
            return Term(entries[0], negated, tuple(entries[1:]))
        if name in PREDEFINED:
            fetch, patterns = PREDEFINED[name]
            return Term(Acl(name, fetch, None, frozenset(), patterns, location), negated)
        if name in UNSUPPORTED_PREDEFINED:
            raise AclError(f"predefined acl '{name}' is not supported by haply")
        raise AclError(f"no such acl '{name}': declare it with 'acl {name} ...' before this line")


def split_condition(words: Sequence[Word]) -> tuple[list[Word], Word | None, list[Word]]:
    """Cut a rule's words at its `if`/`unless`: (before, the if/unless word, after)."""
    for index, word in enumerate(words):
        if word.text in ("if", "unless") and not word.quoted:
            return list(words[:index]), word, list(words[index + 1 :])
    return list(words), None, []


def parse_condition(keyword: Word, words: Sequence[Word], table: AclTable,
                    owner: str | None = None) -> Condition:
    """The condition after `if` or `unless` (keyword is that word); owner:
    the proxy it is written in (see parse_acl)."""
    location = keyword.location
    if not words:
        raise AclError(f"missing condition after '{keyword.text}'")
    groups: list[tuple[Term, ...]] = []
    group: list[Term] = []
    i = 0
    while i < len(words):
        word = words[i]
        text = word.text
        if not word.quoted and text in ("||", "or"):
            if not group:
                raise AclError(f"'{text}' needs a test on each side")
            groups.append(tuple(group))
            group = []
            i += 1
            continue
        negated = False
        if not word.quoted and text.startswith("!"):
            negated = True
            text = text[1:]
            if not text:
                i += 1
                if i >= len(words):
                    raise AclError("'!' must be followed by an acl name or '{ ... }'")
                word = words[i]
                text = word.text
        if text == "{" and not word.quoted:
            end = next((j for j in range(i + 1, len(words)) if words[j].text == "}" and not words[j].quoted), None)
            if end is None:
                raise AclError("unterminated anonymous acl: expected '}'")
            inner = [w.text for w in words[i + 1 : end]]
            group.append(Term(parse_acl("", inner, location, owner), negated))
            i = end + 1
            continue
        if text == "}" and not word.quoted:
            raise AclError("'}' without a matching '{'")
        group.append(table.term(text, negated, location))
        i += 1
    if not group:
        raise AclError("condition ends with an operator")
    groups.append(tuple(group))
    return Condition(keyword.text == "unless", tuple(groups), location)


__all__ = [
    "AclError", "AclTable", "FETCHES", "PREDEFINED", "parse_acl", "parse_condition", "split_condition",
]
