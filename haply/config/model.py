"""The one configuration model every dialect produces.

haproxy.cfg, pound.cfg, keepalived.conf and monitrc are all parsed into these frozen
dataclasses. The model only describes: it never binds, opens files for serving,
sets up logging or exits. Durations are seconds (float), sizes are bytes (int),
`None` means "not set" so that defaults can be applied by whoever knows them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from haply.config.diagnostics import NOWHERE, Location

# --------------------------------------------------------------------- conditions


@dataclass(frozen=True, slots=True)
class Acl:
    """One ACL test: a sample fetch compared with patterns.

    fetch is the fetch name as written without its argument ("path", "path_beg",
    "hdr", "src", "ssl_fc", ...); arg is its parenthesised argument ("host" for
    hdr(host)); flags holds matching flags such as "-i". A fetch that yields a
    boolean (ssl_fc) has no patterns.
    """

    name: str  # "" for an anonymous { ... } condition
    fetch: str
    arg: str | None
    flags: frozenset[str]
    patterns: tuple[str, ...]
    location: Location = NOWHERE


@dataclass(frozen=True, slots=True)
class Term:
    acl: Acl
    negated: bool = False


@dataclass(frozen=True, slots=True)
class Condition:
    """`if|unless` followed by ORed groups of ANDed terms (HAProxy's precedence)."""

    unless: bool
    any_of: tuple[tuple[Term, ...], ...]
    location: Location = NOWHERE


# ------------------------------------------------------------------------- rules


@dataclass(frozen=True, slots=True)
class HeaderRule:
    """http-request / http-response header edit.

    action: "set-header" | "add-header" | "del-header" (more may follow:
    "redirect", "deny", "use-service" ...); value is the raw log-format string.
    """

    action: str
    name: str
    value: str | None = None
    condition: Condition | None = None
    location: Location = NOWHERE


@dataclass(frozen=True, slots=True)
class BackendSwitch:
    backend: str
    condition: Condition | None
    location: Location = NOWHERE


@dataclass(frozen=True, slots=True)
class ForwardFor:
    header: str = "X-Forwarded-For"
    except_network: str | None = None  # "10.0.0.0/8" style, None = always add
    if_none: bool = False


@dataclass(frozen=True, slots=True)
class HttpCheck:
    """option httpchk [METHOD] [URI] [VERSION] plus http-check send/expect."""

    method: str = "OPTIONS"
    uri: str = "/"
    version: str = "HTTP/1.0"
    headers: tuple[tuple[str, str], ...] = ()
    body: str = ""
    expect: tuple[str, str] | None = None  # ("status", "200"), ("rstring", "ok")


# ----------------------------------------------------------------------- servers


@dataclass(frozen=True, slots=True)
class Server:
    name: str
    host: str  # literal address or host name, resolved at start
    port: int | None  # None: same port as the one the client connected to
    weight: int = 1
    maxconn: int = 0  # 0 = unlimited
    maxqueue: int = 0
    backup: bool = False
    disabled: bool = False
    # health checks (behaviour belongs to the checks layer)
    check: bool = False
    inter: float = 2.0
    fastinter: float | None = None
    downinter: float | None = None
    rise: int = 2
    fall: int = 3
    check_port: int | None = None
    check_addr: str | None = None
    slowstart: float = 0.0
    # anything else parsed from the server line, keyword -> raw value(s); lets the
    # checks and TLS layers read their keywords without the model knowing them all
    extra: tuple[tuple[str, str], ...] = ()
    location: Location = NOWHERE


# ----------------------------------------------------------------------- binding


@dataclass(frozen=True, slots=True)
class Bind:
    """One listening address. A bind line with several addresses or a port range
    yields one Bind per address and port. fd is set for `bind fd@N`."""

    host: str  # "" or "*" = all IPv4; "::" = all IPv6
    port: int
    fd: int | None = None
    options: tuple[tuple[str, str], ...] = ()  # ssl, crt, alpn ... raw
    location: Location = NOWHERE


# ---------------------------------------------------------------------- timeouts


@dataclass(frozen=True, slots=True)
class Timeouts:
    connect: float | None = None
    client: float | None = None
    server: float | None = None
    queue: float | None = None
    http_request: float | None = None
    http_keep_alive: float | None = None
    tunnel: float | None = None
    check: float | None = None
    client_fin: float | None = None
    server_fin: float | None = None


# ------------------------------------------------------------------------ proxies


@dataclass(frozen=True, slots=True)
class LogTarget:
    address: str  # "/dev/log", "127.0.0.1:514", "stdout", "stderr", "global"
    facility: str = "local0"
    level: str | None = None
    max_level: str | None = None
    length: int = 1024
    format: str = "rfc3164"
    location: Location = NOWHERE


@dataclass(frozen=True, slots=True)
class Proxy:
    """A frontend, backend or listen section (a listen is both).

    For a listen section default_backend is its own name.
    """

    name: str
    kind: str  # "frontend" | "backend" | "listen"
    mode: str = "tcp"  # "tcp" | "http"
    # frontend side
    binds: tuple[Bind, ...] = ()
    maxconn: int | None = None
    acls: tuple[Acl, ...] = ()
    backend_switches: tuple[BackendSwitch, ...] = ()
    default_backend: str | None = None
    http_request_rules: tuple[HeaderRule, ...] = ()
    http_response_rules: tuple[HeaderRule, ...] = ()
    # backend side
    servers: tuple[Server, ...] = ()
    balance: str = "roundrobin"
    balance_arg: str | None = None  # hdr(NAME) -> NAME, url_param NAME
    hash_type: str = "map-based"  # "map-based" | "consistent"
    retries: int = 3
    retry_on: frozenset[str] = frozenset({"conn-failure"})
    redispatch: bool = False
    allbackups: bool = False
    http_check: HttpCheck | None = None
    check_kind: str = "tcp"  # "tcp" | "http" | "mysql" | "ssl-hello" | "tcp-check"
    # both
    timeouts: Timeouts = Timeouts()
    http_connection_mode: str = "keep-alive"  # "keep-alive" | "server-close" | "close"
    forward_for: ForwardFor | None = None
    tcpka: bool = False
    logs: tuple[LogTarget, ...] = ()
    log_format: str | None = None  # None | "tcplog" | "httplog" | "httplog clf" | custom
    dontlognull: bool = False
    errorfiles: tuple[tuple[int, bytes], ...] = ()  # status -> full HTTP response
    options: frozenset[str] = frozenset()  # every `option X` seen, for layers to read
    extra: tuple[tuple[str, tuple[str, ...]], ...] = ()  # other directives, raw
    location: Location = NOWHERE

    @property
    def is_frontend(self) -> bool:
        return self.kind in ("frontend", "listen")

    @property
    def is_backend(self) -> bool:
        return self.kind in ("backend", "listen")


@dataclass(frozen=True, slots=True)
class StatsSocket:
    path: str  # unix path, or "ipv4@ADDR:PORT" / "ADDR:PORT" for TCP
    mode: int | None = None
    level: str = "operator"
    location: Location = NOWHERE


@dataclass(frozen=True, slots=True)
class Global:
    maxconn: int | None = None
    daemon: bool = False
    pidfile: str | None = None
    user: str | None = None
    group: str | None = None
    chroot: str | None = None
    nbthread: int = 1
    logs: tuple[LogTarget, ...] = ()
    stats_sockets: tuple[StatsSocket, ...] = ()
    extra: tuple[tuple[str, tuple[str, ...]], ...] = ()


@dataclass(frozen=True, slots=True)
class Config:
    global_: Global = Global()
    proxies: tuple[Proxy, ...] = ()
    # other dialects add their parts here (vrrp instances, programs, ...)
    vrrp: tuple = ()
    programs: tuple = ()
    sources: tuple[str, ...] = ()

    def proxy(self, name: str) -> Proxy | None:
        for proxy in self.proxies:
            if proxy.name == name:
                return proxy
        return None

    @property
    def frontends(self) -> tuple[Proxy, ...]:
        return tuple(p for p in self.proxies if p.is_frontend)

    @property
    def backends(self) -> tuple[Proxy, ...]:
        return tuple(p for p in self.proxies if p.is_backend)


__all__ = [
    "Acl", "Bind", "BackendSwitch", "Condition", "Config", "ForwardFor", "Global",
    "HeaderRule", "HttpCheck", "Location", "LogTarget", "Proxy", "Server",
    "StatsSocket", "Term", "Timeouts", "field",
]
