"""pound.cfg -> model: Pound's listeners, services and back-ends as proxies.

Pound's file is a list of `Keyword args` lines with `ListenHTTP`, `ListenHTTPS`,
`Service`, `BackEnd`, `Emergency` and `Session` blocks closed by `End`
(keywords are case-insensitive, strings are double-quoted, `#` starts a
comment). The mapping, following pound(8):

- each ListenHTTP/ListenHTTPS becomes a frontend (mode http) binding Address:Port;
  ListenHTTPS's Cert lines become `ssl crt FILE` (several: chosen by SNI);
- Pound always adds X-Forwarded-For with the client address, after HeadRemove
  has removed what the client sent: `http-request del-header` rules, then
  `option forwardfor` (which haply and HAProxy apply after the rules);
- each Service becomes a backend; its URL/HeadRequire/HeadDeny patterns become
  the `use_backend` condition, in file order, the listener's own services first,
  then the global ones, as Pound tries them;
- BackEnd -> server (Priority is the weight, HTTPS re-encrypts without
  verification as Pound does), Emergency -> backup server; a back-end that
  refuses a connection is marked down at once and the request goes to another
  (observe layer4 + on-error mark-down, one retry per server + redispatch), as Pound does;
- Pound's timers: TimeOut (15 s) -> timeout server, ConnTO -> timeout connect,
  Client (10 s) -> timeout client, Alive (30 s) -> the check interval.

Unknown keywords are errors with file:line; keywords haply cannot honour are
errors too, unless ignoring them changes no traffic (then a warning).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from haply.config.diagnostics import Diagnostics, Location
from haply.config.model import (Acl, BackendSwitch, Bind, Condition, Config, DenyRule, ForwardFor,
                                Global, HeaderRule, Proxy, Redirect, Server, Term, Timeouts)

# pound(8) defaults.
DEFAULT_TIMEOUT = 15.0  # TimeOut: waiting for a back-end's response
DEFAULT_CLIENT = 10.0  # Client: waiting for the client's request
DEFAULT_ALIVE = 30.0  # Alive: how often dead back-ends are probed
DEFAULT_PRIORITY = 5  # BackEnd Priority 1..9
# xHTTP levels: the methods each level adds (pound(8), "xHTTP").
XHTTP_METHODS = (
    ("GET", "POST", "HEAD"),
    ("PUT", "PATCH", "DELETE"),
    ("LOCK", "UNLOCK", "PROPFIND", "PROPPATCH", "SEARCH", "MKCOL", "MOVE", "COPY", "OPTIONS",
     "TRACE", "MKACTIVITY", "CHECKOUT", "MERGE", "REPORT"),
    ("SUBSCRIBE", "UNSUBSCRIBE", "NOTIFY", "BPROPFIND", "BPROPPATCH", "POLL", "BMOVE", "BCOPY",
     "BDELETE", "CONNECT"),
    ("RPC_IN_DATA", "RPC_OUT_DATA"),
)
REASONS = {414: "Request-URI Too Long", 500: "Internal Server Error", 501: "Not Implemented",
           503: "Service Unavailable"}
# Pound's Disable PROTO turns that version and every older one off.
DISABLE_NEXT = {"sslv2": "SSLv3", "sslv3": "TLSv1.0", "tlsv1": "TLSv1.1", "tlsv1_1": "TLSv1.2",
                "tlsv1_2": "TLSv1.3"}
# Keywords that change no traffic haply carries: accepted with a warning.
IGNORED = {
    "loglevel": "haply logs through its own log settings",
    "logfacility": "haply logs through its own log settings",
    "ignorecase": None, "grace": "haply's stop grace comes from the signal handling",
    "threads": "haply runs one event loop", "anonymise": "haply logs full addresses",
    "anonymize": "haply logs full addresses", "rewritelocation": "Location headers pass unchanged",
    "rewritedestination": "Destination headers pass unchanged", "sslengine": None,
    "ecdhcurve": None, "dhparams": None, "sslhonorcipherorder": None, "wstimeout": None,
    "checkurl": None, "maxrequest": None, "nohttps11": None, "control": "no Pound control socket",
}


class _Error(Exception):
    pass


@dataclass
class Line:
    location: Location
    keyword: str  # lower case
    args: list[str]


_TOKEN = re.compile(r'"((?:[^"\\]|\\.)*)"|(\S+)')


def tokenize(text: str, filename: str) -> list[Line]:
    lines = []
    for number, raw in enumerate(text.splitlines(), 1):
        words: list[str] = []
        for match in _TOKEN.finditer(raw):
            if match.group(2) is not None and match.group(2).startswith("#"):
                break
            words.append(match.group(1).replace('\\"', '"') if match.group(1) is not None else match.group(2))
        if words:
            lines.append(Line(Location(filename, number), words[0].lower(), words[1:]))
    return lines


@dataclass
class _Listener:
    kind: str  # "ListenHTTP" | "ListenHTTPS"
    location: Location
    address: str | None = None
    port: int | None = None
    bind_options: list[tuple[str, str]] = field(default_factory=list)
    rules: list[HeaderRule] = field(default_factory=list)
    xhttp: int = 0
    errorfiles: list[tuple[int, bytes]] = field(default_factory=list)
    error_paths: list[tuple[str, tuple[str, ...]]] = field(default_factory=list)
    services: list["_Service"] = field(default_factory=list)
    client: float | None = None


@dataclass
class _Service:
    name: str
    location: Location
    terms: list[Term] = field(default_factory=list)
    servers: list[Server] = field(default_factory=list)
    redirect: Redirect | None = None
    balance: str = "roundrobin"
    balance_arg: str | None = None
    disabled: bool = False
    ignore_case: bool = False


class _Parser:
    def __init__(self, filename: str, diagnostics: Diagnostics):
        self.filename = filename
        self.diagnostics = diagnostics
        self.listeners: list[_Listener] = []
        self.services: list[_Service] = []
        self.global_: dict = {}
        self.timeout = DEFAULT_TIMEOUT
        self.conn_to: float | None = None
        self.client = DEFAULT_CLIENT
        self.alive = DEFAULT_ALIVE
        self.ignore_case = False
        self.service_count = 0

    # ----------------------------------------------------------------- helpers

    def error(self, location: Location, message: str) -> None:
        self.diagnostics.error(location, message)

    @staticmethod
    def one(line: Line, what: str) -> str:
        if len(line.args) != 1:
            raise _Error(f"'{line.keyword}' expects {what}")
        return line.args[0]

    def number(self, line: Line, low: int = 0, high: int | None = None) -> int:
        text = self.one(line, "a number")
        if not text.isdigit() or int(text) < low or (high is not None and int(text) > high):
            bounds = f" between {low} and {high}" if high is not None else ""
            raise _Error(f"'{line.keyword} {text}': expected a whole number{bounds}")
        return int(text)

    def block(self, lines: list[Line], index: int, opener: Line) -> tuple[list[Line], int]:
        """The lines up to the `End` matching opener, and the index after it."""
        depth, body = 0, []
        while index < len(lines):
            line = lines[index]
            index += 1
            if line.keyword in ("listenhttp", "listenhttps", "service", "backend", "emergency", "session"):
                depth += 1
            elif line.keyword == "end":
                if depth == 0:
                    return body, index
                depth -= 1
            body.append(line)
        raise _Error(f"'{opener.args and opener.keyword or opener.keyword}' block opened here has no matching End")

    # ------------------------------------------------------------------ global

    def run(self, lines: list[Line]) -> None:
        index = 0
        while index < len(lines):
            line = lines[index]
            index += 1
            try:
                if line.keyword in ("listenhttp", "listenhttps"):
                    body, index = self.block(lines, index, line)
                    self.listener(line, body)
                elif line.keyword == "service":
                    body, index = self.block(lines, index, line)
                    self.services.append(self.service(line, body))
                elif line.keyword == "end":
                    raise _Error("'End' without an open block")
                else:
                    self.global_keyword(line)
            except _Error as exc:
                self.error(line.location, str(exc))

    def global_keyword(self, line: Line) -> None:
        keyword = line.keyword
        if keyword == "user":
            self.global_["user"] = self.one(line, "a user name")
        elif keyword == "group":
            self.global_["group"] = self.one(line, "a group name")
        elif keyword == "rootjail":
            self.global_["chroot"] = self.one(line, "a directory")
        elif keyword == "daemon":
            self.global_["daemon"] = bool(self.number(line, 0, 1))
        elif keyword == "timeout":
            self.timeout = float(self.number(line, 1))
        elif keyword == "connto":
            self.conn_to = float(self.number(line, 1))
        elif keyword == "client":
            self.client = float(self.number(line, 1))
        elif keyword == "alive":
            self.alive = float(self.number(line, 1))
        elif keyword in IGNORED:
            self.ignored(line)
        else:
            raise _Error(f"unknown Pound keyword '{line.keyword}' at the top level")

    def ignored(self, line: Line) -> None:
        reason = IGNORED[line.keyword]
        if line.keyword == "ignorecase":
            self.ignore_case = self.number(line, 0, 1) == 1
            return
        self.diagnostics.warning(line.location, f"'{line.keyword}' is accepted and ignored"
                                 + (f": {reason}" if reason else ""))

    # --------------------------------------------------------------- listeners

    def listener(self, opener: Line, body: list[Line]) -> None:
        kind = "ListenHTTPS" if opener.keyword == "listenhttps" else "ListenHTTP"
        listener = _Listener(kind, opener.location)
        if kind == "ListenHTTPS":
            listener.bind_options.append(("ssl", ""))
        index = 0
        while index < len(body):
            line = body[index]
            index += 1
            try:
                if line.keyword == "service":
                    inner, index = self.block(body, index, line)
                    listener.services.append(self.service(line, inner))
                else:
                    self.listener_keyword(listener, line)
            except _Error as exc:
                self.error(line.location, str(exc))
        if listener.address is None:
            self.error(opener.location, f"{kind} has no Address")
            return
        if listener.port is None:
            self.error(opener.location, f"{kind} has no Port")
            return
        if kind == "ListenHTTPS" and not any(o == "crt" for o, _ in listener.bind_options):
            self.error(opener.location, "ListenHTTPS has no Cert: add Cert \"/path/to/cert-and-key.pem\"")
            return
        self.listeners.append(listener)

    def listener_keyword(self, listener: _Listener, line: Line) -> None:
        keyword = line.keyword
        https = listener.kind == "ListenHTTPS"
        if keyword == "address":
            listener.address = self.one(line, "an address")
        elif keyword == "port":
            listener.port = self.number(line, 1, 65535)
        elif keyword == "xhttp":
            listener.xhttp = self.number(line, 0, len(XHTTP_METHODS) - 1)
        elif keyword == "client":
            listener.client = float(self.number(line, 1))
        elif keyword == "headremove":
            name = self.header_name(self.one(line, "a header name in quotes"), line)
            listener.rules.append(HeaderRule("del-header", name, None, None, line.location))
        elif keyword == "addheader":
            text = self.one(line, "\"Name: value\"")
            name, colon, value = text.partition(":")
            if not colon or not re.fullmatch(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+", name):
                raise _Error(f"'AddHeader \"{text}\"': expected \"Name: value\"")
            # The model's values are log-format strings, where % is special.
            listener.rules.append(HeaderRule("add-header", name, value.strip().replace("%", "%%"), None,
                                             line.location))
        elif keyword in ("err414", "err500", "err501", "err503"):
            status = int(keyword[3:])
            path = self.one(line, "a file name")
            listener.errorfiles.append((status, self.error_page(status, path)))
            listener.error_paths.append((f"pound-err{status}", (path,)))
        elif keyword == "cert" and https:
            path = self.one(line, "a certificate file")
            listener.bind_options.append(("crt", path))
            if not os.path.exists(path):
                raise _Error(f"Cert '{path}': no such file or directory")
        elif keyword == "ciphers" and https:
            listener.bind_options.append(("ciphers", self.one(line, "a cipher list")))
        elif keyword == "disable" and https:
            proto = self.one(line, "SSLv2, SSLv3, TLSv1, TLSv1_1 or TLSv1_2").lower()
            if proto not in DISABLE_NEXT:
                raise _Error(f"'Disable {line.args[0]}': expected SSLv2, SSLv3, TLSv1, TLSv1_1 or TLSv1_2")
            listener.bind_options.append(("ssl-min-ver", DISABLE_NEXT[proto]))
        elif keyword == "clientcert" and https:
            if not line.args or line.args[0] not in "0123" or len(line.args[0]) != 1:
                raise _Error("'ClientCert' expects 0, 1, 2 or 3 and a depth")
            mode = {"0": "none", "1": "optional", "2": "required", "3": "optional"}[line.args[0]]
            listener.bind_options.append(("verify", mode))
        elif keyword in ("calist", "verifylist") and https:
            listener.bind_options.append(("ca-file", self.one(line, "a CA file")))
        elif keyword == "sslallowclientrenegotiation" and https:
            if self.number(line, 0, 2) != 0:
                raise _Error("'SSLAllowClientRenegotiation' other than 0: haply never allows client renegotiation")
        elif keyword in IGNORED:
            self.ignored(line)
        else:
            raise _Error(f"unknown Pound keyword '{line.args and line.keyword or line.keyword}' in {listener.kind}")

    @staticmethod
    def header_name(pattern: str, line: Line) -> str:
        """HeadRemove takes a regular expression on the header line; haply
        removes by name, so the pattern must be a plain name (optionally ^Name:)."""
        # Header-name characters that are not regex operators (".", "*", "^", "|", "$" are).
        match = re.fullmatch(r"\^?([!#%&'+_`~0-9A-Za-z-]+)(?::\s*(?:\.\*)?)?", pattern)
        if not match:
            raise _Error(f"'HeadRemove \"{pattern}\"': haply removes headers by name; "
                         "give the header name, such as \"X-Forwarded-For\"")
        return match.group(1)

    @staticmethod
    def error_page(status: int, path: str) -> bytes:
        try:
            with open(path, "rb") as handle:
                body = handle.read()
        except OSError as exc:
            raise _Error(f"error page '{path}' cannot be read: {exc.strerror}") from None
        head = (f"HTTP/1.0 {status} {REASONS[status]}\r\nCache-Control: no-cache\r\nConnection: close\r\n"
                f"Content-Type: text/html\r\nContent-Length: {len(body)}\r\n\r\n")
        return head.encode() + body

    # ---------------------------------------------------------------- services

    def service(self, opener: Line, body: list[Line]) -> _Service:
        self.service_count += 1
        name = opener.args[0] if opener.args else f"service{self.service_count}"
        name = re.sub(r"[^A-Za-z0-9_.:-]", "_", name)
        service = _Service(name, opener.location, ignore_case=self.ignore_case)
        index = 0
        while index < len(body):
            line = body[index]
            index += 1
            try:
                if line.keyword in ("backend", "emergency"):
                    inner, index = self.block(body, index, line)
                    server = self.backend(line, inner, service, backup=line.keyword == "emergency")
                    if server is not None:
                        service.servers.append(server)
                elif line.keyword == "session":
                    inner, index = self.block(body, index, line)
                    self.session(line, inner, service)
                else:
                    self.service_keyword(service, line)
            except _Error as exc:
                self.error(line.location, str(exc))
        if not service.servers and service.redirect is None:
            self.error(opener.location, f"Service '{name}' has no BackEnd")
        return service

    def service_keyword(self, service: _Service, line: Line) -> None:
        keyword = line.keyword
        flags = frozenset({"-i"}) if service.ignore_case else frozenset()
        if keyword == "url":
            pattern = self.one(line, "a regular expression in quotes")
            self.check_regex(pattern, line)
            service.terms.append(Term(Acl("", "url_reg", None, flags, (pattern,), line.location)))
        elif keyword in ("headrequire", "headdeny"):
            pattern = self.one(line, "a regular expression in quotes")
            match = re.fullmatch(r"\^?([!#$%&'*+.^_`|~0-9A-Za-z-]+):\s*(.*)", pattern)
            if not match:
                raise _Error(f"'{line.keyword} \"{pattern}\"': haply needs the header name first, "
                             "as in \"Host: .*example.com\"")
            value = match.group(2) or ".*"
            self.check_regex(value, line)
            acl = Acl("", "hdr_reg", match.group(1).lower(), frozenset({"-i"}), (value,), line.location)
            service.terms.append(Term(acl, negated=keyword == "headdeny"))
        elif keyword == "redirect":
            args = line.args
            code = 302
            if len(args) == 2 and args[0].isdigit():
                code = int(args[0])
                args = args[1:]
            if len(args) != 1 or code not in (301, 302, 307):
                raise _Error("'Redirect' expects [301|302|307] \"URL\"")
            target = args[0]
            parts = urlsplit(target)
            if parts.path in ("", "/"):
                # pound(8): a URL without a path gets the request's path appended.
                service.redirect = Redirect("prefix", target.rstrip("/"), code, (), None, line.location)
            else:
                service.redirect = Redirect("location", target, code, (), None, line.location)
        elif keyword == "disabled":
            service.disabled = self.number(line, 0, 1) == 1
        elif keyword == "ignorecase":
            service.ignore_case = self.number(line, 0, 1) == 1
        elif keyword in ("dynscale", "backendcookie"):
            raise _Error(f"'{line.keyword}' is not supported by haply")
        else:
            raise _Error(f"unknown Pound keyword '{line.keyword}' in Service")

    @staticmethod
    def check_regex(pattern: str, line: Line) -> None:
        try:
            re.compile(pattern)
        except re.error as exc:
            raise _Error(f"invalid regular expression \"{pattern}\": {exc}") from None

    def session(self, opener: Line, body: list[Line], service: _Service) -> None:
        """Pound keeps a table of session key -> back-end for TTL seconds; haply
        hashes the same key over the back-ends instead (HAProxy's `balance
        source | url_param | hdr`): the same key reaches the same back-end while
        the set of live back-ends does not change, with no table to expire, and
        a request without the key is balanced normally, as Pound does."""
        kind = identifier = None
        for line in body:
            if line.keyword == "type":
                kind = self.one(line, "IP, COOKIE, URL, PARM, BASIC or HEADER").upper()
            elif line.keyword == "id":
                identifier = self.one(line, "a parameter, cookie or header name")
            elif line.keyword == "ttl":
                continue
            else:
                raise _Error(f"unknown Pound keyword '{line.keyword}' in Session")
        if kind is None:
            raise _Error("Session has no Type")
        if kind == "IP":
            service.balance = "source"
        elif kind in ("URL", "HEADER"):
            if not identifier:
                what = "query parameter" if kind == "URL" else "header"
                raise _Error(f"Session Type {kind} needs ID \"NAME\" (the {what} holding the session)")
            service.balance, service.balance_arg = ("url_param" if kind == "URL" else "hdr"), identifier
        else:
            raise _Error(f"Session Type {kind} is not supported by haply (Types IP, URL and HEADER are)")

    def backend(self, opener: Line, body: list[Line], service: _Service, backup: bool) -> Server | None:
        address = port = None
        weight = DEFAULT_PRIORITY
        extra: list[tuple[str, str]] = []
        disabled = False
        check_port = None
        for line in body:
            keyword = line.keyword
            try:
                if keyword == "address":
                    address = self.one(line, "an address")
                elif keyword == "port":
                    port = self.number(line, 1, 65535)
                elif keyword == "priority":
                    weight = self.number(line, 1, 9)
                elif keyword == "timeout":
                    extra.append(("pound-timeout", str(self.number(line, 1))))
                elif keyword == "connto":
                    extra.append(("pound-connto", str(self.number(line, 1))))
                elif keyword == "haport":
                    check_port = self.number(line, 1, 65535)
                elif keyword == "https":
                    # Pound re-encrypts without checking the server's certificate.
                    extra += [("ssl", ""), ("verify", "none")]
                elif keyword == "disabled":
                    disabled = self.number(line, 0, 1) == 1
                elif keyword in ("cert", "ciphers", "disable"):
                    raise _Error(f"BackEnd '{line.keyword}' is not supported by haply")
                else:
                    raise _Error(f"unknown Pound keyword '{line.keyword}' in BackEnd")
            except _Error as exc:
                self.error(line.location, str(exc))
        kind = "Emergency" if backup else "BackEnd"
        if address is None:
            self.error(opener.location, f"{kind} has no Address")
            return None
        if address.startswith("/"):
            self.error(opener.location, f"{kind} Address '{address}': UNIX sockets are not supported by haply")
            return None
        if port is None:
            self.error(opener.location, f"{kind} has no Port")
            return None
        number = len(service.servers) + 1
        return Server(name=f"{'emergency' if backup else 'backend'}{number}", host=address, port=port,
                      weight=weight, backup=backup, disabled=disabled, check=True, inter=self.alive,
                      rise=1, fall=1, check_port=check_port, extra=tuple(extra), location=opener.location,
                      # Pound marks a back-end dead at its first failed connection.
                      observe="layer4", on_error="mark-down", error_limit=1)

    # ------------------------------------------------------------------ result

    def config(self) -> Config:
        backends: dict[str, Proxy] = {}
        frontends: list[Proxy] = []
        names: set[str] = set()
        connect = self.conn_to or self.timeout

        def backend_for(service: _Service) -> str:
            name = service.name
            while name in names and name not in backends:
                name += "_"
            if name not in backends:
                names.add(name)
                server_timeout = max([self.timeout] + [float(v) for s in service.servers
                                                        for k, v in s.extra if k == "pound-timeout"])
                service_connect = max([connect] + [float(v) for s in service.servers
                                                   for k, v in s.extra if k == "pound-connto"])
                servers = tuple(_strip_pound(s) for s in service.servers)
                backends[name] = Proxy(
                    name=name, kind="backend", mode="http", servers=servers, balance=service.balance,
                    balance_arg=service.balance_arg,
                    # Pound tries another back-end at once when one fails to connect.
                    retries=max(1, len(servers)), redispatch=True,
                    timeouts=Timeouts(connect=service_connect, server=server_timeout, check=service_connect),
                    redirects=(service.redirect,) if service.redirect else (),
                    location=service.location)
            return name

        for number, listener in enumerate(self.listeners, 1):
            base = f"{listener.kind.lower()}_{listener.port}"
            name = base
            while name in names:
                name = f"{base}_{number}"
            names.add(name)
            switches = []
            redirects = []
            for service in listener.services + self.services:
                if service.disabled:
                    continue
                condition = Condition(False, (tuple(service.terms),), service.location) if service.terms else None
                # A redirect-only Service is a frontend `redirect` while no Service
                # with back-ends comes before it: HAProxy evaluates redirect rules
                # before use_backend, Pound takes the first Service that matches.
                # After one, it is a back-end of its own whose only rule is the
                # redirect, so the order of the Services is kept.
                if service.redirect is not None and not service.servers and not switches:
                    redirects.append(Redirect(service.redirect.kind, service.redirect.target,
                                              service.redirect.code, (), condition, service.redirect.location))
                    continue
                switches.append(BackendSwitch(backend_for(service), condition, service.location))
            if not switches and not redirects:
                self.error(listener.location, f"{listener.kind} on port {listener.port} has no Service")
                continue
            rules = list(listener.rules)
            if listener.xhttp < len(XHTTP_METHODS) - 1:
                # xHTTP: methods above the level get 501, before any other rule.
                allowed = tuple(m for level in XHTTP_METHODS[:listener.xhttp + 1] for m in level)
                methods = Acl("", "method", None, frozenset(), allowed, listener.location)
                unless_allowed = Condition(True, ((Term(methods),),), listener.location)
                rules.insert(0, DenyRule(501, None, unless_allowed, listener.location))
            extra = tuple(listener.error_paths)
            frontends.append(Proxy(
                name=name, kind="frontend", mode="http",
                binds=(Bind(listener.address, listener.port, options=tuple(listener.bind_options),
                            location=listener.location),),
                backend_switches=tuple(switches), http_request_rules=tuple(rules),
                redirects=tuple(redirects), forward_for=ForwardFor(),
                timeouts=Timeouts(client=listener.client or self.client,
                                  http_request=listener.client or self.client),
                errorfiles=tuple(listener.errorfiles), extra=extra, location=listener.location))
        global_ = Global(**self.global_)
        return Config(global_=global_, proxies=tuple(frontends) + tuple(backends.values()),
                      sources=(self.filename,))


def _strip_pound(server: Server) -> Server:
    from dataclasses import replace

    return replace(server, extra=tuple((k, v) for k, v in server.extra if not k.startswith("pound-")))


def parse(text: str, filename: str, environ: Mapping[str, str] | None = None,
          diagnostics: Diagnostics | None = None) -> Config:
    """Parse one pound.cfg into a partial Config (errors go to diagnostics)."""
    diagnostics = diagnostics if diagnostics is not None else Diagnostics()
    parser = _Parser(filename, diagnostics)
    parser.run(_expand_includes(tokenize(text, filename), diagnostics, (os.path.abspath(filename),)))
    return parser.config()


# Includes may nest; a deeper chain is almost certainly a loop through symlinks.
MAX_INCLUDE_DEPTH = 16


def _expand_includes(lines: list[Line], diagnostics: Diagnostics, chain: tuple[str, ...]) -> list[Line]:
    """`Include "FILE"` replaced by FILE's lines (relative names from the
    including file's directory), located in FILE, as pound(8) reads them."""
    result: list[Line] = []
    for line in lines:
        if line.keyword != "include":
            result.append(line)
            continue
        if len(line.args) != 1:
            diagnostics.error(line.location, "'Include' expects a file name in quotes")
            continue
        path = line.args[0]
        if not os.path.isabs(path):
            path = os.path.join(os.path.dirname(line.location.file), path)
        real = os.path.abspath(path)
        if real in chain or len(chain) > MAX_INCLUDE_DEPTH:
            diagnostics.error(line.location, f"'Include \"{line.args[0]}\"' includes itself (through {' -> '.join(chain)})")
            continue
        try:
            with open(path, encoding="utf-8", errors="surrogateescape") as handle:
                text = handle.read()
        except OSError as exc:
            diagnostics.error(line.location, f"'Include \"{line.args[0]}\"': {exc.strerror}")
            continue
        result.extend(_expand_includes(tokenize(text, path), diagnostics, chain + (real,)))
    return result


__all__ = ["XHTTP_METHODS", "parse", "tokenize"]
