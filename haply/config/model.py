"""The one configuration model every dialect produces.

haproxy.cfg, pound.cfg, keepalived.conf and monitrc are all parsed into these frozen
dataclasses. The model only describes: it never binds, opens files for serving,
sets up logging or exits. Durations are seconds (float), sizes are bytes (int),
`None` means "not set" so that defaults can be applied by whoever knows them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

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
    """A named or anonymous ACL in a condition, possibly negated with `!`.

    A name declared on several `acl` lines matches when any of them matches
    (HAProxy ORs them). Lines with the same fetch, argument and flags are merged
    into `acl`'s patterns; others land in `alternatives`. Evaluate `acls`.
    """

    acl: Acl
    negated: bool = False
    alternatives: tuple[Acl, ...] = ()

    @property
    def acls(self) -> tuple[Acl, ...]:
        return (self.acl, *self.alternatives)


@dataclass(frozen=True, slots=True)
class Condition:
    """`if|unless` followed by ORed groups of ANDed terms (HAProxy's precedence)."""

    unless: bool
    any_of: tuple[tuple[Term, ...], ...]
    location: Location = NOWHERE


# ------------------------------------------------------------------------- rules


@dataclass(frozen=True, slots=True)
class HeaderRule:
    """http-request / http-response rule that edits the message.

    action: "set-header" | "add-header" | "del-header" | "replace-header" |
    "replace-value" (name: the field), or for requests "set-method" |
    "set-path" | "set-pathq" | "set-query" | "set-uri" | "replace-path" |
    "replace-pathq" | "replace-uri" (name: ""), or "use-service"; value is the
    raw log-format string; pattern the match-regex of the replace-* actions.
    """

    action: str
    name: str
    value: str | None = None
    condition: Condition | None = None
    location: Location = NOWHERE
    pattern: str | None = None


@dataclass(frozen=True, slots=True)
class DenyRule:
    """http-request deny: answer `status` and forward nothing.

    response: the whole answer, built at load time from the rule's own content
    options (errorfile, file or string, content-type, hdr); None means the
    proxy's page for that status (its errorfile or http-error, else HAProxy's).
    It sits among the http-request rules so that their order is kept.
    """

    status: int = 403
    response: bytes | None = None
    condition: Condition | None = None
    location: Location = NOWHERE
    # The response's end is the connection's (an unframed errorfile).
    closes: bool = False
    # `http-request tarpit`: the answer (500 by default) comes only after the
    # proxy's `timeout tarpit`, to slow down a robot that waits for it.
    tarpit: bool = False
    action: ClassVar[str] = "deny"


@dataclass(frozen=True, slots=True)
class ReturnRule:
    """http-request return: answer the request from the configuration (a
    health endpoint, a maintenance page) instead of forwarding it; the same
    content options as DenyRule, status 200 by default, not counted as denied."""

    status: int = 200
    response: bytes | None = None  # None: the proxy's page (`default-errorfiles`)
    condition: Condition | None = None
    location: Location = NOWHERE
    closes: bool = False
    action: ClassVar[str] = "return"


@dataclass(frozen=True, slots=True)
class StatusRule:
    """http-response set-status: the status (and reason phrase) the client
    sees instead of the server's."""

    status: int
    reason: str | None = None  # None: HAProxy's phrase for the status
    condition: Condition | None = None
    location: Location = NOWHERE
    action: ClassVar[str] = "set-status"


@dataclass(frozen=True, slots=True)
class VariableRule:
    """`http-request|http-response set-var(NAME[,COND...]) EXPR`,
    `set-var-fmt(NAME[,COND...]) FMT` and `unset-var(NAME)`: keep a value
    (a sample expression's, or a log-format text's) in a variable
    (haply.proxy.variables), or forget it."""

    action: str  # "set-var" | "set-var-fmt" | "unset-var"
    name: str  # SCOPE.NAME
    value: str = ""  # the expression or the log-format text
    conditions: tuple[str, ...] = ()  # ifexists, ifnotempty, ifgt ...
    condition: Condition | None = None
    location: Location = NOWHERE


@dataclass(frozen=True, slots=True)
class AuthRule:
    """http-request auth: answer the proxy's 401 page (its errorfile, else
    HAProxy's) with a Basic challenge for `realm`."""

    realm: str
    condition: Condition | None = None
    location: Location = NOWHERE
    status: int = 401
    action: ClassVar[str] = "auth"


@dataclass(frozen=True, slots=True)
class User:
    """An account of a userlist: a crypt(3) hash, or the password itself when
    written `insecure-password`."""

    name: str
    password: str | None  # None: nobody can authenticate as this user
    insecure: bool = False
    groups: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Userlist:
    """A `userlist` section: accounts for the http_auth and http_auth_group
    fetches. `groups` has every group, each with all of its members (those its
    `group ... users` line names and those whose `user ... groups` names it)."""

    name: str
    users: tuple[User, ...] = ()
    groups: tuple[tuple[str, tuple[str, ...]], ...] = ()
    location: Location = NOWHERE


@dataclass(frozen=True, slots=True)
class Redirect:
    """`redirect scheme|location|prefix TARGET [code N] [option]... [if|unless COND]`.

    options holds the flags HAProxy allows after the target, as written:
    "drop-query", "append-slash", "ignore-empty" (set-cookie/clear-cookie are
    refused by the parser).
    """

    action: ClassVar[str] = "redirect"  # as an http-request rule (`http-request redirect`)
    kind: str  # "scheme" | "location" | "prefix"
    target: str
    code: int = 302
    options: tuple[str, ...] = ()
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
class OriginalTo:
    """`option originalto`: the address the client connected to, in a field."""

    header: str = "X-Original-To"
    except_network: str | None = None  # "10.0.0.0/8" style, None = always add


@dataclass(frozen=True, slots=True)
class Compression:
    """`compression algo|type|offload` of a proxy, with what it inherited from
    defaults (HAProxy 2.6, observed: a proxy's lines add to the inherited lists).

    algorithms and types are in HAProxy's order of preference, the reverse of
    the order written: each word goes to the front of the list, in front of what
    was inherited (haply.http.compression explains what the order decides).
    offload is never inherited (HAProxy ignores it in defaults). location: the
    proxy's own first `compression` line, NOWHERE when it only inherited one.
    """

    algorithms: tuple[str, ...] = ()  # identity | gzip | deflate | raw-deflate
    types: tuple[str, ...] = ()  # Content-Type prefixes, matched case-insensitively
    offload: bool = False
    location: Location = NOWHERE


@dataclass(frozen=True, slots=True)
class HttpCheck:
    """option httpchk [METHOD] [URI] [VERSION] plus http-check send/expect."""

    method: str = "OPTIONS"
    uri: str = "/"
    version: str = "HTTP/1.0"
    headers: tuple[tuple[str, str], ...] = ()
    body: str = ""
    expect: tuple[str, str] | None = None  # ("status", "200"), ("rstring", "ok")
    expect_negated: bool = False  # `http-check expect ! string ...`


@dataclass(frozen=True, slots=True)
class TcpCheckStep:
    """One `tcp-check` rule, in file order.

    action "connect": port (None = server's check port) and options as
    written ("ssl", "linger", "sni NAME", "alpn LIST"). action "send" / "send-binary": data (for
    send-binary the hexadecimal string as written). action "expect": match is
    "string" | "rstring" | "binary", pattern the text, negated for `!`.
    """

    action: str
    port: int | None = None
    data: str = ""
    match: str = ""
    pattern: str = ""
    negated: bool = False
    options: tuple[str, ...] = ()
    location: Location = NOWHERE


# ----------------------------------------------------------------------- servers


@dataclass(frozen=True, slots=True)
class SourceAddress:
    """`source ADDR[:PORT[-HIGH]] [interface NAME]` (a backend's or a
    server's): the address, ports and interface connections to servers, and
    their health checks, are made from (haply.proxy.outbound). Port 0: any,
    the kernel's choice at connect time."""

    host: str
    low: int = 0
    high: int = 0  # above low: a range, each connection taking a free port
    interface: str | None = None


@dataclass(frozen=True, slots=True)
class Server:
    name: str
    host: str  # literal address or host name, resolved at start
    port: int | None  # None: same port as the one the client connected to
    weight: int = 1
    maxconn: int = 0  # 0 = unlimited
    # above 0 (and below maxconn): the limit in force follows the backend's
    # load, from minconn up to maxconn at the backend's fullconn
    minconn: int = 0
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
    agent_check: bool = False
    agent_port: int | None = None
    agent_inter: float | None = None  # None: same as inter
    agent_addr: str | None = None
    agent_send: str | None = None
    observe: str | None = None  # "layer4" | "layer7"
    error_limit: int = 10  # HAProxy's default for observe/on-error
    on_error: str = "fail-check"  # fastinter | fail-check | sudden-death | mark-down
    on_marked_down: str | None = None  # "shutdown-sessions"
    on_marked_up: str | None = None  # "shutdown-backup-sessions"
    id: int | None = None  # `id N`; None = position in the backend
    init_addr: tuple[str, ...] = ()  # methods as written: "last", "libc", "none", an IP
    cookie: str | None = None  # its value for the backend's persistence cookie
    # the PROXY protocol version its connections start with (0: none), and
    # whether health checks send it too (haply.proxy.proxy_header)
    send_proxy: int = 0
    check_send_proxy: bool = False
    # `track [<proxy>/]<server>`, always "proxy/server": the server takes that
    # server's health instead of checking its own (haply.health.tracking)
    track: str | None = None
    source: SourceAddress | None = None  # None: the backend's, if it has one
    # runtime DNS resolution (manual 5.3): the resolvers section that resolves
    # the host name, the address family asked first, the networks preferred
    # among the answers, and whether servers of a backend may share an address
    resolvers: str | None = None
    resolve_prefer: str = "ipv6"
    resolve_net: tuple[str, ...] = ()
    resolve_opts: tuple[str, ...] = ()
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
    tarpit: float | None = None  # `http-request tarpit`'s hold; `timeout connect` when unset


# ------------------------------------------------------------------------ proxies


@dataclass(frozen=True, slots=True)
class LogTarget:
    address: str  # "/dev/log", "127.0.0.1:514", "stdout", "stderr", "global"
    facility: str = "local0"
    level: str | None = None
    max_level: str | None = None
    length: int = 1024
    # None: not given, which is HAProxy's "local" (RFC 3164 without a host
    # name), or "rfc3164" once `log-send-hostname` is set
    format: str | None = None
    location: Location = NOWHERE


@dataclass(frozen=True, slots=True)
class CookiePersistence:
    """`cookie NAME [insert|rewrite|prefix] [indirect] [nocache] [postonly]
    [preserve] [httponly] [secure] [domain D]* [attr A]*` of a backend; the
    servers' own values are `Server.cookie`. mode "passive" is a cookie line
    without insert, rewrite or prefix: persistence read from the client's
    cookie, nothing written."""

    name: str
    mode: str = "passive"  # "passive" | "insert" | "rewrite" | "prefix"
    indirect: bool = False
    nocache: bool = False
    postonly: bool = False
    preserve: bool = False
    httponly: bool = False
    secure: bool = False
    domains: tuple[str, ...] = ()
    attrs: tuple[str, ...] = ()
    location: Location = NOWHERE


@dataclass(frozen=True, slots=True)
class TcpRequestRule:
    """`tcp-request connection|session|content accept|reject [if|unless COND]`:
    a frontend's verdict on a connection from its addresses alone; or, with
    `counter`, an action on sticky counters that does not end the stage; or
    (connection stage) `expect-proxy layer4`: the connection starts with a
    PROXY header, which does not end the stage either."""

    stage: str  # "connection" | "session" | "content"
    action: str  # "accept" | "reject" | "counter" | "expect-proxy"
    condition: Condition | None = None
    location: Location = NOWHERE
    counter: CounterRule | None = None


@dataclass(frozen=True, slots=True)
class CounterRule:
    """`track-scN KEY [table NAME]` (start tracking an entry of a stick-table
    in sticky counter N, for the session or, in http-request, the request),
    `sc-inc-gpc0(N)` / `sc-inc-gpc1(N)` (add one to a general purpose
    counter of the entry counter N tracks) or `sc-set-gpt0(N) VALUE`: an
    action of tcp-request connection|session or http-request rules."""

    action: str  # "track" | "inc-gpc0" | "inc-gpc1" | "set-gpt0"
    slot: int  # the sticky counter: 0, 1 or 2
    key: str = ""  # track: the sample the entry is keyed by (src, req.hdr(NAME), ...)
    table: str = ""  # track: the proxy whose stick-table is used
    value: int = 0  # set-gpt0
    condition: Condition | None = None
    location: Location = NOWHERE


@dataclass(frozen=True, slots=True)
class LogLevelRule:
    """`http-request|http-response set-log-level <level>`: the syslog level of
    the request's log line, or "silent" for none (the last rule that applies
    wins)."""

    level: str
    condition: Condition | None = None
    location: Location = NOWHERE
    action: ClassVar[str] = "set-log-level"


@dataclass(frozen=True, slots=True)
class CaptureRule:
    """`http-request capture <sample> len N|id N` and `http-response capture
    <sample> id N`: the sample's text, cut to the slot's length, in capture
    slot `slot` of the frontend's request or response captures (the %hr/%hs
    of its log lines, capture.req.hdr(N) and capture.res.hdr(N))."""

    side: str  # "request" | "response"
    slot: int
    expression: str
    length: int
    condition: Condition | None = None
    location: Location = NOWHERE
    action: ClassVar[str] = "capture"


@dataclass(frozen=True, slots=True)
class Capture:
    """`capture request header NAME len N`, `capture response header NAME len N`
    or `capture cookie NAME len N` (kind "request", "response", "cookie"): what
    a frontend's log lines show in %hr/%hs (and %hrl/%hsl) and %CC/%CS."""

    kind: str
    name: str  # a header name, the beginning of a cookie name, or "" for a slot that
    # `declare capture` or `http-request capture ... len N` made for capture rules
    length: int
    location: Location = NOWHERE


# Every data type HAProxy 2.6 stores, in the order `show table` prints them,
# with whether it takes a period. haply counts those in STICK_COUNTED (haply.proxy.counters);
# the configuration check refuses the others.
STICK_DATA_TYPES: dict[str, bool] = {
    "server_id": False, "gpt0": False, "gpc0": False, "gpc0_rate": True,
    "conn_cnt": False, "conn_rate": True, "conn_cur": False,
    "sess_cnt": False, "sess_rate": True,
    "http_req_cnt": False, "http_req_rate": True, "http_err_cnt": False, "http_err_rate": True,
    "bytes_in_cnt": False, "bytes_in_rate": True, "bytes_out_cnt": False, "bytes_out_rate": True,
    "gpc1": False, "gpc1_rate": True, "server_key": False,
    "http_fail_cnt": False, "http_fail_rate": True, "gpt": False, "gpc": False, "gpc_rate": False,
}
STICK_COUNTED = ("gpt0", "gpc0", "gpc0_rate", "conn_cnt", "conn_rate", "conn_cur", "sess_cnt", "sess_rate",
                 "http_req_cnt", "http_req_rate", "http_err_cnt", "http_err_rate",
                 "bytes_in_cnt", "bytes_in_rate", "bytes_out_cnt", "bytes_out_rate", "gpc1", "gpc1_rate",
                 "http_fail_cnt", "http_fail_rate")
# The data types whose counting needs each session's byte counts.
STICK_BYTES = frozenset(("bytes_in_cnt", "bytes_in_rate", "bytes_out_cnt", "bytes_out_rate"))
STICKY_SLOTS = 3  # sc0, sc1, sc2


@dataclass(frozen=True, slots=True)
class StickTableSpec:
    """`stick-table type ip|ipv6|integer|string [len N] size N [expire T]
    [nopurge] [store DATA,...]` of a proxy; the table is named after it."""

    name: str
    kind: str  # "ip" | "ipv6" | "integer" | "string" | "binary"
    size: int
    length: int = 32  # string tables: characters kept; binary tables: bytes
    expire: float | None = None  # seconds; None: entries never expire
    nopurge: bool = False
    location: Location = NOWHERE
    # `store`: the counters each entry keeps, (name, period in seconds for a
    # rate, else None), in the order written (haply.proxy.counters)
    store: tuple[tuple[str, float | None], ...] = ()
    # `peers NAME`: the peers section its entries are shared with
    peers: str | None = None


@dataclass(frozen=True, slots=True)
class UseServerRule:
    """`use-server NAME if|unless COND`: the server for a request the
    condition holds for, ahead of cookies and stick tables."""

    server: str
    condition: Condition
    location: Location = NOWHERE


@dataclass(frozen=True, slots=True)
class StickRule:
    """`stick on | match | store-request PATTERN [if|unless COND]`."""

    kind: str  # "on" | "match" | "store-request"
    pattern: str  # src, dst, src_port, dst_port, req.hdr(NAME), req.cook(NAME)
    condition: Condition | None = None
    location: Location = NOWHERE


@dataclass(frozen=True, slots=True)
class StatsRule:
    """`stats http-request allow|deny|auth [realm R] [if|unless COND]`."""

    action: str  # "allow" | "deny" | "auth"
    realm: str | None = None  # auth: the realm the client is asked for
    condition: Condition | None = None
    location: Location = NOWHERE


@dataclass(frozen=True, slots=True)
class ProxyStats:
    """The `stats` keywords of a proxy: the statistics page (served later by the
    admin layer). HAProxy enables the page with any of uri, realm, auth, refresh,
    scope, hide-version, admin as well as with `stats enable`."""

    enabled: bool = False
    uri: str = "/haproxy?stats"  # HAProxy's default prefix
    realm: str | None = None
    auth: tuple[tuple[str, str], ...] = ()  # (user, password)
    refresh: float | None = None
    hide_version: bool = False
    show_node: str | None = None  # "" = the host name
    show_desc: str | None = None  # "" = the proxy's description
    show_legends: bool = False
    scopes: tuple[str, ...] = ()
    admin: Condition | None = None
    # `stats http-request` rules, first match wins (not with auth or realm)
    rules: tuple[StatsRule, ...] = ()
    location: Location = NOWHERE


@dataclass(frozen=True, slots=True)
class EmailAlert:
    """A proxy's complete `email-alert` settings: mail the server state
    changes logged at `level` or more severe to `to`, through each mailer of
    the mailers section named `mailers`."""

    mailers: str
    sender: str  # email-alert from: the envelope's MAIL FROM and the From header
    recipient: str  # email-alert to: RCPT TO and the To header
    level: str = "alert"
    myhostname: str | None = None  # the HELO name; None: the system's host name
    location: Location = NOWHERE


@dataclass(frozen=True, slots=True)
class SocketOptions:
    """What a proxy asks of one side's TCP connections: the client side's
    (a frontend's accepted connections) or the server side's (a backend's)."""

    keepalive: bool = False  # option tcpka, clitcpka or srvtcpka
    keepalive_count: int | None = None  # clitcpka-cnt / srvtcpka-cnt: TCP_KEEPCNT
    keepalive_idle: int | None = None  # seconds; clitcpka-idle / srvtcpka-idle: TCP_KEEPIDLE
    keepalive_interval: int | None = None  # seconds; ...-intvl: TCP_KEEPINTVL
    # option tcp-smart-accept (on by default in mode http) / tcp-smart-connect:
    # the ACK of the first data or of the handshake waits for data to carry it
    delayed_ack: bool = False

    @property
    def plain(self) -> bool:
        """Nothing asked: the system's defaults."""
        return self == PLAIN_SOCKET


PLAIN_SOCKET = SocketOptions()


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
    rate_limit_sessions: int = 0  # new sessions accepted per second (0: no limit)
    acls: tuple[Acl, ...] = ()
    backend_switches: tuple[BackendSwitch, ...] = ()
    default_backend: str | None = None
    http_request_rules: tuple[HeaderRule | DenyRule | ReturnRule | Redirect, ...] = ()
    http_response_rules: tuple[HeaderRule, ...] = ()
    # backend side
    servers: tuple[Server, ...] = ()
    # the backend load at which servers reach their maxconn (0: derived from
    # the frontends' maxconn, haply.runtime.dynamic_limit.backend_fullconn)
    fullconn: int = 0
    balance: str = "roundrobin"
    balance_arg: str | None = None  # hdr(NAME) -> NAME, url_param NAME
    hash_type: str = "map-based"  # "map-based" | "consistent"
    retries: int = 3
    source: SourceAddress | None = None  # `source`: connections to servers from there
    external_check_command: str | None = None  # `external-check command` (option external-check)
    external_check_path: str = ""  # `external-check path`: the program's PATH
    # None: haply's default retry policy (see README "What haply retries and why")
    retry_on: frozenset[str] | None = None
    redispatch: bool = False
    # `option redispatch <interval>`: every interval-th retry goes back to the
    # balancer (> 0), or the retry that many before the last (< 0; -1: the last).
    redispatch_every: int = -1
    allbackups: bool = False
    # `option prefer-last-server`: a keep-alive client's next request goes to
    # the server whose connection its session still holds.
    prefer_last_server: bool = False
    # `option abortonclose`: a request whose client closed is dropped while it
    # waits for a server slot or a connection, instead of being sent.
    abort_on_close: bool = False
    http_check: HttpCheck | None = None
    # "tcp" | "http" | "mysql" | "ssl-hello" | "tcp-check" | "redis" | "smtp" | "pgsql" | "ldap"
    check_kind: str = "tcp"
    # both
    timeouts: Timeouts = Timeouts()
    http_connection_mode: str = "keep-alive"  # "keep-alive" | "server-close" | "close"
    forward_for: ForwardFor | None = None
    original_to: OriginalTo | None = None
    # `option http-buffer-request`: the request body (up to a buffer) is read
    # before a server is chosen.
    buffer_request: bool = False
    tcpka: bool = False
    client_socket: SocketOptions = PLAIN_SOCKET
    server_socket: SocketOptions = PLAIN_SOCKET
    logs: tuple[LogTarget, ...] = ()
    log_format: str | None = None  # None | "tcplog" | "httplog" | "httplog clf" | custom
    # `unique-id-format` (a log-format string) and `unique-id-header` (haply.logs.unique_id)
    unique_id_format: str | None = None
    unique_id_header: str | None = None
    dontlognull: bool = False
    errorfiles: tuple[tuple[int, bytes], ...] = ()  # status -> full HTTP response
    options: frozenset[str] = frozenset()  # every `option X` seen, for layers to read
    extra: tuple[tuple[str, tuple[str, ...]], ...] = ()  # other directives, raw
    location: Location = NOWHERE
    # added with the haproxy.cfg parser
    balance_options: tuple[str, ...] = ()  # uri: whole/len N/depth N/path-only; hdr: use_domain_only; url_param: check_post
    hash_function: str | None = None  # sdbm | djb2 | wt6 | crc32
    hash_modifier: str | None = None  # avalanche
    redirects: tuple[Redirect, ...] = ()
    tcp_check_steps: tuple[TcpCheckStep, ...] = ()
    mysql_check_user: str | None = None
    mysql_check_post41: bool = False
    pgsql_check_user: str | None = None  # option pgsql-check user NAME
    smtp_check_hello: tuple[str, ...] = ()  # the words after option smtpchk
    stats: ProxyStats | None = None
    monitor_uri: str | None = None
    # `monitor fail` conditions: the monitor-uri answers 503 while one holds
    monitor_fail: tuple[Condition, ...] = ()
    description: str | None = None
    id: int | None = None
    default_backend_location: Location = NOWHERE
    cookie: CookiePersistence | None = None
    stick_table: StickTableSpec | None = None
    stick_rules: tuple[StickRule, ...] = ()
    use_server_rules: tuple[UseServerRule, ...] = ()
    captures: tuple[Capture, ...] = ()
    http_reuse: str | None = None  # never | safe | aggressive | always; None: haply's default
    # `option http-restrict-req-hdr-names`: what happens to a request field whose
    # name holds a character outside [A-Za-z0-9-] (haply.proxy.header_names)
    restrict_header_names: str = "preserve"  # preserve | delete | reject
    tcp_request_rules: tuple[TcpRequestRule, ...] = ()
    inspect_delay: float | None = None  # tcp-request inspect-delay (rules read no payload)
    compression: Compression | None = None  # None: no `compression` line here or in defaults
    email_alert: EmailAlert | None = None  # None: no mail (incomplete settings are warned about)
    cache_filters: tuple[CacheRule, ...] = ()  # explicit `filter cache NAME` lines

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
    options: tuple[tuple[str, str], ...] = ()  # other bind options, raw (expose-fd, user, ...)


@dataclass(frozen=True, slots=True)
class Global:
    maxconn: int | None = None
    daemon: bool = False
    external_check: bool = False  # `external-check`: proxies may run external checks
    insecure_fork_wanted: bool = False
    pidfile: str | None = None
    user: str | None = None
    group: str | None = None
    chroot: str | None = None
    nbthread: int = 1
    logs: tuple[LogTarget, ...] = ()
    stats_sockets: tuple[StatsSocket, ...] = ()
    extra: tuple[tuple[str, tuple[str, ...]], ...] = ()
    spread_checks: int = 0  # percent
    max_spread_checks: float | None = None  # seconds: bound on the first checks' spread
    hard_stop_after: float | None = None
    stats_timeout: float | None = None
    bufsize: int = 16384  # tune.bufsize
    maxrewrite: int = 1024  # tune.maxrewrite
    http_maxhdr: int = 101  # tune.http.maxhdr, the start line included
    cpu_map: tuple = ()  # haply.config.cpu_map.CpuMapping, in file order
    localpeer: str | None = None  # the local peer's name in peers sections (default: the host name)


@dataclass(frozen=True, slots=True)
class Program:
    """A supervised program: HAProxy's `program` section plus haply's extensions
    for the monit pattern (N instances on consecutive ports, restarts).

    command is the argv as written; `%p` / `%i` in it (and in pidfile, stdout,
    stderr) become the instance's port and number. instances > 1 needs port:
    instance i (1-based) gets port + i - 1. daemon: the command forks and
    leaves the process id in pidfile (monit's `start program`), so the process
    watched is the one named there and stop_command, when set, stops it.
    """

    name: str
    command: tuple[str, ...] = ()
    user: str | None = None
    group: str | None = None
    start_on_reload: bool = True  # HAProxy's default (`option start-on-reload`)
    instances: int = 1
    port: int | None = None  # the first instance's port
    environment: tuple[tuple[str, str], ...] = ()
    directory: str | None = None
    stdout: str | None = None
    stderr: str | None = None
    pidfile: str | None = None
    daemon: bool = False
    stop_command: tuple[str, ...] = ()
    stop_timeout: float = 10.0
    backoff: float = 1.0  # first restart delay, doubled per consecutive crash
    backoff_max: float = 60.0
    crash_limit: int = 5  # this many exits within crash_window -> FATAL
    crash_window: float = 60.0
    service_group: str | None = None  # monit's `group`: commands may name it
    location: Location = NOWHERE

    def port_of(self, instance: int) -> int | None:
        return None if self.port is None else self.port + instance - 1


@dataclass(frozen=True, slots=True)
class Peer:
    """A `peer NAME ADDR:PORT` (or `server NAME [ADDR:PORT]`) of a peers
    section: the local one is where haply listens, the others where it
    connects."""

    name: str
    host: str | None
    port: int | None
    location: Location = NOWHERE


@dataclass(frozen=True, slots=True)
class PeersSection:
    """A `peers NAME` section: the load balancers that share the stick
    tables naming it (`stick-table ... peers NAME`)."""

    name: str
    peers: tuple[Peer, ...] = ()
    # `bind ADDR:PORT` of the local peer, for the `server NAME` form
    bind: tuple[str, int] | None = None
    disabled: bool = False
    location: Location = NOWHERE

    def peer(self, name: str) -> Peer | None:
        for peer in self.peers:
            if peer.name == name:
                return peer
        return None


@dataclass(frozen=True, slots=True)
class Mailer:
    """`mailer NAME ADDR:PORT` of a mailers section: an SMTP server."""

    name: str
    host: str
    port: int
    location: Location = NOWHERE


# Manual 3.6 "timeout mail": "If not defined the default value is 10 seconds."
DEFAULT_MAIL_TIMEOUT = 10.0


@dataclass(frozen=True, slots=True)
class MailersSection:
    """`mailers NAME` (manual 3.6): the SMTP servers proxies send alerts to."""

    name: str
    mailers: tuple[Mailer, ...] = ()
    timeout: float = DEFAULT_MAIL_TIMEOUT  # timeout mail: one mail's whole dialogue
    location: Location = NOWHERE


@dataclass(frozen=True, slots=True)
class Nameserver:
    """`nameserver NAME ADDR:PORT` of a resolvers section: a DNS server over UDP."""

    name: str
    host: str
    port: int
    location: Location = NOWHERE


# Manual 5.3.2: the defaults of `hold`, `timeout resolve|retry`,
# `resolve_retries` and `accepted_payload_size`.
DEFAULT_HOLD = (("nx", 30.0), ("other", 30.0), ("refused", 30.0), ("timeout", 30.0),
                ("valid", 10.0), ("obsolete", 0.0))


@dataclass(frozen=True, slots=True)
class ResolversSection:
    """`resolvers NAME` (manual 5.3.2): the name servers that resolve the host
    names of the servers pointing at this section, and how often."""

    name: str
    nameservers: tuple[Nameserver, ...] = ()
    resolve_retries: int = 3
    timeout_resolve: float = 1.0  # between two resolutions of a name
    timeout_retry: float = 1.0  # between two queries without a valid answer
    hold: tuple[tuple[str, float], ...] = DEFAULT_HOLD  # status -> seconds
    accepted_payload_size: int = 512
    location: Location = NOWHERE

    def held(self, status: str) -> float:
        return dict(self.hold)[status]


@dataclass(frozen=True, slots=True)
class CacheSection:
    """A `cache NAME` section (manual 6.2.1): a store of small objects that
    proxies fill with `http-response cache-store NAME` and answer from with
    `http-request cache-use NAME` (haply.http.cache)."""

    name: str
    total_max_size: int  # bytes (the section says megabytes)
    max_object_size: int  # bytes; a 256th of the total when not set
    max_age: int = 60  # seconds
    process_vary: bool = False
    max_secondary_entries: int = 10
    location: Location = NOWHERE


@dataclass(frozen=True, slots=True)
class CacheRule:
    """`http-request cache-use NAME` or `http-response cache-store NAME`
    (action "cache-use" | "cache-store"), or an explicit `filter cache NAME`
    (action "filter", kept for the reference checks only)."""

    action: str
    cache: str
    condition: Condition | None = None
    location: Location = NOWHERE


@dataclass(frozen=True, slots=True)
class Config:
    global_: Global = Global()
    proxies: tuple[Proxy, ...] = ()
    # other dialects add their parts here (vrrp instances, programs, ...)
    vrrp: tuple = ()
    programs: tuple = ()
    userlists: tuple[Userlist, ...] = ()
    peers: tuple[PeersSection, ...] = ()
    mailers: tuple[MailersSection, ...] = ()
    caches: tuple[CacheSection, ...] = ()
    resolvers: tuple[ResolversSection, ...] = ()
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

    def will_listen(self, local_peer: str) -> bool:
        """Whether serving this configuration listens anywhere or has a job
        of its own. HAProxy will not start with no listener: no bind line
        of an enabled frontend, no stats socket, no peers section naming
        the local peer (observed: `-c` says it "will not start" and exits
        2). haply's programs and VRRP instances are jobs too."""
        return bool(
            self.vrrp or self.programs or self.global_.stats_sockets
            or any(proxy.binds and "disabled" not in proxy.options for proxy in self.frontends)
            or any(not section.disabled and section.peer(local_peer) is not None
                   for section in self.peers))

    def proxy_ids(self) -> dict[str, int]:
        """HAProxy's proxy numbers (stats iid, `show servers state` be_id, an
        external check's HAPROXY_PROXY_ID): `id N` where given, the others
        from 1 in order, skipping those taken; a `stats socket` makes HAProxy
        a proxy of its own for the CLI, numbered first (observed)."""
        taken = {proxy.id for proxy in self.proxies if proxy.id is not None}
        ids: dict[str, int] = {}
        number = 1

        def next_free() -> int:
            nonlocal number
            while number in taken:
                number += 1
            number += 1
            return number - 1

        if self.global_.stats_sockets:
            next_free()
        for proxy in self.proxies:
            ids[proxy.name] = proxy.id if proxy.id is not None else next_free()
        return ids


__all__ = [
    "Acl", "AuthRule", "Bind", "BackendSwitch", "CacheRule", "CacheSection", "Condition", "Config", "EmailAlert",
    "ForwardFor", "Global", "Mailer", "MailersSection", "Nameserver", "OriginalTo", "Peer", "PeersSection",
    "HeaderRule", "HttpCheck", "Location", "LogTarget", "Program", "Proxy", "ProxyStats",
    "Redirect", "ResolversSection", "Server", "StatsSocket", "TcpCheckStep", "Term", "Timeouts", "User", "Userlist", "field",
]


def used_acls(proxy: Proxy) -> list[Acl]:
    """The proxy's named acls and those its rules' conditions hold."""
    conditions = [rule.condition for rule in (
        *proxy.http_request_rules, *proxy.http_response_rules, *proxy.backend_switches,
        *proxy.redirects, *proxy.tcp_request_rules, *proxy.use_server_rules, *proxy.stick_rules)]
    conditions.extend(proxy.monitor_fail)
    acls = list(proxy.acls)
    for condition in conditions:
        for group in condition.any_of if condition is not None else ():
            for term in group:
                acls.extend(term.acls)
    return acls
