"""The haproxy.cfg keyword table: the single source of truth for what haply reads.

One row per keyword (a keyword may be two words: "timeout connect"). The parser
dispatches on it, the error messages quote it, and docs/directives.md is
generated from it (`python -m haply.config.reference`). A keyword HAProxy has but
haply does not implement is listed too, with status "unsupported", so that the
user reads "not supported by haply" instead of "unknown keyword", and nothing is
ever silently ignored.

Sections are written as letters: g global, d defaults, f frontend, l listen,
b backend, p program, u userlist, e peers, h http-errors, m mailers, c cache, r resolvers. Synopses and meanings follow HAProxy 2.6's configuration manual.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass

SUPPORTED = "supported"
LEGACY = "legacy"  # accepted with a warning naming the modern form
UNSUPPORTED = "unsupported"  # HAProxy has it, haply refuses it with a clear error

SECTION_NAMES = {"g": "global", "d": "defaults", "f": "frontend", "l": "listen", "b": "backend", "p": "program",
                 "u": "userlist", "e": "peers", "h": "http-errors", "m": "mailers",
                 "c": "cache", "r": "resolvers"}
SECTION_LETTERS = {name: letter for letter, name in SECTION_NAMES.items()}

# Section-starting keywords (manual 2.1: valid everywhere, one word).
SECTIONS = ("global", "defaults", "frontend", "backend", "listen", "program", "userlist", "peers",
            "http-errors", "mailers", "cache", "resolvers")
# Handled by lexer.apply_conditions before the parser sees the lines.
PREPROCESSOR = frozenset({".if", ".elif", ".else", ".endif", ".notice", ".warning", ".alert", ".diag"})
UNSUPPORTED_SECTIONS = (
    "ring",
    "fcgi-app", "log-forward",
)


@dataclass(frozen=True, slots=True)
class Keyword:
    name: str
    sections: str  # letters, see SECTION_NAMES
    synopsis: str
    description: str
    status: str = SUPPORTED
    modern: str | None = None  # the form to write instead (legacy/removed keywords)

    def allowed_in(self, section: str) -> bool:
        return SECTION_LETTERS[section] in self.sections

    @property
    def section_list(self) -> str:
        return ", ".join(SECTION_NAMES[c] for c in SECTION_NAMES if c in self.sections)


def _rows() -> list[Keyword]:
    K = Keyword
    U, L = UNSUPPORTED, LEGACY
    rows = [
        # ------------------------------------------------------------ global
        K("maxconn", "gdfl", "<number>", "Maximum concurrent connections (process-wide in global, per frontend elsewhere)."),
        K("daemon", "g", "", "Run in the background."),
        K("external-check", "g", "", "Allow proxies to run external health checks (option external-check)."),
        K("insecure-fork-wanted", "g", "", "Let HAProxy fork, which its external checks need; haply runs them either way and warns without it."),
        K("pidfile", "gp", "<path>", "Write the process id to this file (program: %i and %p name the instance; see option daemon)."),
        K("user", "gpu", "<name> (userlist: <name> [password <crypt hash>|insecure-password <password>] [groups <group>[,...]])",
          "Drop privileges to this user after binding (program: run the command as this user; userlist: an account for http_auth)."),
        K("group", "gpu", "<name> (userlist: <name> [users <user>[,...]])",
          "Drop privileges to this group after binding (program: run the command with this group; userlist: a group of accounts)."),
        K("uid", "g", "<number>", "Drop privileges to this numeric user id."),
        K("gid", "g", "<number>", "Drop privileges to this numeric group id."),
        K("chroot", "g", "<dir>", "Change root to this directory after binding."),
        K("nbthread", "g", "<number>", "Number of proxy worker processes; more than 1 runs them under a master process (see docs/process-model.md)."),
        K("spread-checks", "g", "<0..50>", "Randomly spread health-check intervals by up to this percentage."),
        K("unix-bind", "g", "[prefix <p>] [mode <m>] [user <u>|uid <n>] [group <g>|gid <n>]", "Defaults of the UNIX sockets of bind lines (prefix, mode, owner, group): checked; haply binds TCP only (a UNIX bind is an error) and HAProxy does not apply them to stats sockets, so they change nothing."),
        K("max-spread-checks", "g", "<time>", "Upper bound on the time over which the first health checks are spread (by default each server's interval)."),
        K("hard-stop-after", "g", "<time>", "Upper bound for a soft stop before remaining connections are closed."),
        K("log", "gdflb", "<address> [len <n>] [format <f>] <facility> [<level> [<minlevel>]] | global",
          "Send logs to a syslog address, a UNIX socket, stdout/stderr, or the global loggers. A frontend that logs with no option httplog, tcplog or log-format writes HAProxy's default line, 'Connect from SRC to DST (FRONTEND/MODE)', as each connection (mode tcp) or request (mode http) starts."),
        K("no log", "dflb", "", "Forget the loggers inherited from defaults."),
        K("log-tag", "gdflb", "<string>", "Tag (program name) of the syslog header."),
        K("log-send-hostname", "g", "[<string>]", "Put a host name in the syslog header."),
        K("node", "g", "<name>", "Node name shown on the statistics page."),
        K("localpeer", "g", "<name>", "The local peer's name in peers sections (default: the host name; -L on the command line wins)."),
        K("description", "gflb", "<text>...", "Free text describing the process or the proxy."),
        K("stats socket", "g", "<path>|ipv4@<addr>:<port> [mode <octal>] [level user|operator|admin] [<bind options>]",
          "Runtime API socket."),
        K("stats timeout", "g", "<time>", "Idle timeout of runtime API connections."),
        K("stats maxconn", "g", "<number>", "Concurrent runtime API connections."),
        K("ca-base", "g", "<dir>", "Directory for relative CA file names."),
        K("crt-base", "g", "<dir>", "Directory for relative certificate file names."),
        K("ssl-default-bind-ciphers", "g", "<ciphers>", "Default TLS 1.2 cipher list of `bind ... ssl` (kept for the TLS layer)."),
        K("ssl-default-bind-ciphersuites", "g", "<suites>", "Default TLS 1.3 cipher suites of `bind ... ssl`."),
        K("ssl-default-bind-options", "g", "<option>...", "Default TLS options of `bind ... ssl` (ssl-min-ver, no-tls-tickets ...)."),
        K("ssl-default-server-ciphers", "g", "<ciphers>", "Default TLS 1.2 cipher list of `server ... ssl`."),
        K("ssl-default-server-ciphersuites", "g", "<suites>", "Default TLS 1.3 cipher suites of `server ... ssl`."),
        K("ssl-default-server-options", "g", "<option>...", "Default TLS options of `server ... ssl`."),
        K("ssl-server-verify", "g", "none|required", "Default certificate verification of `server ... ssl` (required unless set to none)."),
        K("cpu-map", "g", "[auto:]<process-set>[/<thread-set>] <cpu-set>...",
          "CPUs the proxy workers run on (thread n of the set is worker n of nbthread); auto: one CPU each, in order."),
        K("tune.bufsize", "g", "<bytes>", "Buffer size (default 16384): a request or response head larger than tune.bufsize - tune.maxrewrite is refused (431/414 or 502)."),
        K("tune.maxrewrite", "g", "<bytes>", "Room kept in the buffer for rules that add fields (default 1024, at most half of tune.bufsize)."),
        K("tune.http.maxhdr", "g", "<number>", "Most lines in a head, the start line included (default 101): more is refused (431 or 502)."),
        K("ssl-dh-param-file", "g", "<file>", "Diffie-Hellman parameters of the DHE key exchanges of every `bind ... ssl`."),
        K("tune.ssl.default-dh-param", "g", "<bits>", "Size of generated Diffie-Hellman parameters (kept for the TLS layer)."),
        K("ulimit-n", "g", "<number>", "Maximum number of open files (kept for the process manager)."),
        K("master-worker", "g", "", "Run a master process that supervises the proxy workers (as -W)."),
        K("server-state-file", "g", "<file>", "Server states saved with `show servers state`, loaded at start by backends with `load-server-state-from-file global`."),
        K("server-state-base", "g", "<dir>", "Directory for relative server state file names."),
        K("nbproc", "g", "<number>", "Removed in HAProxy 2.5.", U, "nbthread"),
        K("lua-load", "g", "<file>", "Lua scripting.", U),
        K("ssl-engine", "g", "<name>", "OpenSSL engines.", U),
        K("tune.comp.maxlevel", "g", "<1..9>",
          "Highest compression level. Accepted for compatibility: haply compresses at level 1, as Debian's HAProxy 2.6 "
          "(built with libslz) does whatever this says."),
        K("maxcompcpuusage", "g", "<percent>", "Stop compressing above this CPU usage.", U),
        K("maxcomprate", "g", "<kB/s>", "Stop compressing above this input rate.", U),
        K("maxzlibmem", "g", "<MB>", "Bound on the memory of compression streams.", U),
        # ----------------------------------------------------------- proxies
        K("mode", "dflb", "tcp|http", "Proxy mode: raw TCP relay or HTTP."),
        K("peer", "e", "<name> <addr>:<port>",
          "A load balancer sharing the section's stick tables: where haply listens when the name is the local "
          "peer's (`localpeer`, -L, else the host name), where it connects otherwise. TLS options are not supported."),
        K("bind", "fle", "<addr>:<port>[,...] [<option>...]",
          "Listening address(es): 1.2.3.4:80, *:80, :80, :::80, [::1]:80, ipv6@::1:80, ports 8000-8003, fd@N. Options: "
          "the TLS ones (ssl, crt, alpn ...); maxconn (this listener's own limit), backlog, v4v6, v6only, interface, "
          "transparent, mss, defer-accept, tfo, tcp-ut, name and id (its statistics row); accept-proxy (every "
          "connection starts with a PROXY protocol header, v1 or v2, whose addresses become the client's and the "
          "destination's everywhere but in tcp-request connection rules; read before TLS on an ssl bind); process, "
          "thread and nice are not supported. In a peers section: the local peer's address (with `server NAME` lines)."),
        K("disabled", "dflbe", "", "Start the proxy stopped (a peers section: share nothing)."),
        K("load-server-state-from-file", "dlb", "global|local|none",
          "Load this backend's server states at start: from the global server-state-file, from its own file, or not."),
        K("server-state-file-name", "dlb", "[<file>|use-backend-name]",
          "The backend's own state file for `load-server-state-from-file local` (default: the backend's name)."),
        K("enabled", "dflbe", "", "Start the proxy (the default)."),
        K("id", "flb", "<number>", "Numeric proxy id."),
        K("backlog", "dfl", "<number>", "Listen queue length of the listeners."),
        K("retries", "dlb", "<number>", "Connection attempts to a server after a failure."),
        K("clitcpka-cnt", "dfl", "<count>", "Keep-alive probes lost before a client connection is dropped (TCP_KEEPCNT)."),
        K("clitcpka-idle", "dfl", "<time>", "Idle time before the first keep-alive probe on a client connection "
          "(TCP_KEEPIDLE; a bare number is seconds)."),
        K("clitcpka-intvl", "dfl", "<time>", "Time between keep-alive probes on a client connection "
          "(TCP_KEEPINTVL; a bare number is seconds)."),
        K("srvtcpka-cnt", "dlb", "<count>", "Keep-alive probes lost before a server connection is dropped (TCP_KEEPCNT)."),
        K("srvtcpka-idle", "dlb", "<time>", "Idle time before the first keep-alive probe on a server connection "
          "(TCP_KEEPIDLE; a bare number is seconds)."),
        K("srvtcpka-intvl", "dlb", "<time>", "Time between keep-alive probes on a server connection "
          "(TCP_KEEPINTVL; a bare number is seconds)."),
        K("external-check command", "dlb", "<command>",
          "The program an external check runs, with <proxy_address> <proxy_port> <server_address> "
          "<server_port> and the HAPROXY_* variables; exit status 0 means up."),
        K("external-check path", "dlb", "<path>", "The PATH the external check's program runs with "
          "(empty by default, as in HAProxy)."),
        K("source", "dlb", "<addr>[:<port>] [interface <name>]",
          "The address (and port, and network interface) connections to the servers and their "
          "health checks are made from; a server's own `source` (a port range LOW-HIGH allowed) "
          "overrides it. `usesrc` (transparent proxying) is not supported."),
        K("fullconn", "dlb", "<conns>",
          "The backend load at which servers with minconn reach their maxconn (default: a tenth of the maxconn of "
          "the frontends that can use the backend, rounded up)."),
        K("rate-limit sessions", "dfl", "<rate>",
          "New sessions accepted per second; beyond it connections wait in the kernel's accept queue."),
        K("retry-on", "dlb", "<event>...",
          "When to retry: none, conn-failure, empty-response, junk-response, response-timeout, 0rtt-rejected, all-retryable-errors, 401, 403, 404, 408, 425, 500, 501, 502, 503, 504."),
        K("balance", "dlb", "roundrobin|static-rr|leastconn|first|source|uri [...]|url_param <name> [check_post]|hdr(<name>) [use_domain_only]|random[(<draws>)]",
          "Load-balancing algorithm."),
        K("hash-type", "dlb", "map-based|consistent [sdbm|djb2|crc32] [avalanche]",
          "How hashes map to servers: map-based as HAProxy maps them (same key, same server); consistent on haply's own ring. wt6 is not supported."),
        K("default_backend", "dfl", "<backend>", "Backend used when no use_backend rule matches."),
        K("use_backend", "fl", "<backend> [if|unless <condition>]", "Switch to a backend when the condition holds. The name may be made per request in mode http, as %[req.hdr(host),lower,map_dom(FILE,DEFAULT)] (converters lower, upper, map, map_str, map_beg, map_sub, map_dom, map_reg); a name that is no backend sends the request to the default backend, as in HAProxy."),
        K("acl", "flb", "<name> <fetch> [-i] [-m <method>] [--] <pattern>...",
          "Declare a named test: path, path_beg, path_end, path_reg, path_sub, path_dir, url, url_beg, hdr(<h>), hdr_beg, hdr_end, hdr_dom, hdr_reg, hdr_sub, src, dst_port, ssl_fc, method."),
        K("http-request set-header", "flb", "<name> <fmt> [if|unless <cond>]", "Replace a request header."),
        K("http-request add-header", "flb", "<name> <fmt> [if|unless <cond>]", "Append a request header."),
        K("http-request del-header", "flb", "<name> [if|unless <cond>]", "Remove a request header."),
        K("http-request use-service", "fl", "prometheus-exporter [if|unless <cond>]", "Answer with the Prometheus metrics exporter."),
        K("http-request deny", "flb",
          "[deny_status|status <code>] [content-type <type>] [default-errorfiles|errorfile <file>|file <file>|string <str>] [hdr <name> <value>]... [if|unless <cond>]",
          "Answer the request with an error (403 by default) instead of forwarding it."),
        K("http-request tarpit", "flb",
          "[deny_status|status <code>] [content-type <type>] [default-errorfiles|errorfile <file>|file <file>|string <str>] [hdr <name> <value>]... [if|unless <cond>]",
          "Hold the request for `timeout tarpit`, then answer it with an error (500 by default); counted as denied."),
        K("http-request return", "flb",
          "[status <code>] [content-type <type>] [default-errorfiles|errorfile <file>|file <file>|string <str>] [hdr <name> <value>]... [if|unless <cond>]",
          "Answer the request from the configuration (200 and no body by default) instead of forwarding it."),
        K("http-request auth", "flb", "[realm <realm>] [if|unless <cond>]",
          "Answer 401 with a Basic authentication challenge (realm: the proxy's name by default); with an http_auth acl, protects what follows."),
        K("http-request redirect", "flb", "scheme|location|prefix <target> [code <301|302|303|307|308>] [drop-query] [append-slash] [if|unless <cond>]",
          "A redirect evaluated in order among the http-request rules (literal targets; log-format values are not supported)."),
        K("http-request replace-header", "flb", "<name> <match-regex> <replace-fmt> [if|unless <cond>]",
          "Rewrite each field of that name the regex matches: its whole value becomes the replacement (\\1... the groups)."),
        K("http-request replace-value", "flb", "<name> <match-regex> <replace-fmt> [if|unless <cond>]",
          "As replace-header, for each comma-separated value of the fields."),
        K("http-request set-method", "flb", "<fmt> [if|unless <cond>]", "Change the request's method."),
        K("http-request set-path", "flb", "<fmt> [if|unless <cond>]", "Change the request's path (the query stays)."),
        K("http-request set-pathq", "flb", "<fmt> [if|unless <cond>]", "Change the request's path and query."),
        K("http-request set-query", "flb", "<fmt> [if|unless <cond>]", "Change the request's query (after '?')."),
        K("http-request set-uri", "flb", "<fmt> [if|unless <cond>]", "Change the request's whole target."),
        K("http-request replace-path", "flb", "<match-regex> <replace-fmt> [if|unless <cond>]",
          "Rewrite the path when the regex matches it (the query stays)."),
        K("http-request replace-pathq", "flb", "<match-regex> <replace-fmt> [if|unless <cond>]",
          "Rewrite the path and query when the regex matches them."),
        K("http-request replace-uri", "flb", "<match-regex> <replace-fmt> [if|unless <cond>]",
          "Rewrite the whole target when the regex matches it."),
        K("http-response set-header", "flb", "<name> <fmt> [if|unless <cond>]", "Replace a response header."),
        K("http-response add-header", "flb", "<name> <fmt> [if|unless <cond>]", "Append a response header."),
        K("http-response del-header", "flb", "<name> [if|unless <cond>]", "Remove a response header."),
        K("http-response replace-header", "flb", "<name> <match-regex> <replace-fmt> [if|unless <cond>]",
          "Rewrite each field of that name the regex matches (e.g. a Location from http:// to https://)."),
        K("http-response set-status", "flb", "<status> [reason <text>] [if|unless <cond>]",
          "Send the client this status (200 to 599) instead of the server's; the log shows it."),
        K("http-response replace-value", "flb", "<name> <match-regex> <replace-fmt> [if|unless <cond>]",
          "As replace-header, for each comma-separated value of the fields."),
        K("redirect", "flb", "scheme|location|prefix <target> [code <301|302|303|307|308>] [drop-query] [append-slash] [if|unless <cond>]",
          "Answer with an HTTP redirect."),
        K("errorfile", "dflbh", "<code> <file>", "Send this file (a full HTTP response) instead of the built-in error page; read at load time."),
        K("errorfiles", "dflb", "<name> [<code>...]",
          "Use the error pages of an http-errors section (those of the codes listed), over the proxy's own so far."),
        K("errorloc", "dflb", "<code> <url>", "Answer this error with a 302 redirect to the URL instead of the error page."),
        K("errorloc302", "dflb", "<code> <url>", "The same as errorloc."),
        K("errorloc303", "dflb", "<code> <url>", "Answer this error with a 303 redirect to the URL instead of the error page."),
        K("http-error", "dflb",
          "status <code> [content-type <type>] [default-errorfiles|errorfile <file>|file <file>|string <str>] [hdr <name> <value>]...",
          "The page sent for this status, as errorfile but with a body and content type; read at load time."),
        K("monitor", "fl", "fail if|unless <condition>", "The monitor-uri answers 503 while the condition holds (e.g. { nbsrv(be) lt 1 }), 200 otherwise."),
        K("monitor-uri", "dfl", "<uri>", "Answer 200 on this URI without forwarding (load-balancer health probe)."),
        K("cookie", "dlb", "<name> [insert|rewrite|prefix] [indirect] [nocache] [postonly] [preserve] [httponly] [secure] [domain <d>]* [attr <a>]*",
          "Cookie-based persistence: a client's requests go to the server named by its cookie (`server ... cookie <value>`). maxidle, maxlife and dynamic are not supported."),
        K("stick-table", "flb", "type ip|ipv6|integer|string|binary [len <n>] size <n> [expire <time>] [nopurge] [store <data>[,<data>...]]...",
          "The proxy's stick-table, for stick rules and sticky counters. store: gpt0, gpc0, gpc0_rate(<period>), gpc1, gpc1_rate(<period>), "
          "conn_cnt, conn_cur, conn_rate(<period>), sess_cnt, sess_rate(<period>), http_req_cnt, http_req_rate(<period>), "
          "http_err_cnt, http_err_rate(<period>), http_fail_cnt, http_fail_rate(<period>), bytes_in_cnt, "
          "bytes_in_rate(<period>), bytes_out_cnt, bytes_out_rate(<period>) (bytes as the connection carried them; "
          "the gpt and gpc arrays, peers and srvkey are not supported; each worker process keeps its own tables)."),
        K("http-request set-var", "flb", "(<var-name>[,<cond>...]) <expr> [if|unless <cond>]",
          "Keep a sample expression's value in a variable (proc., sess., txn., req. or res.); "
          "conditions: ifexists ifnotexists ifempty ifnotempty ifset ifnotset ifgt iflt."),
        K("http-request set-var-fmt", "flb", "(<var-name>[,<cond>...]) <fmt> [if|unless <cond>]",
          "Keep a log-format value's text in a variable."),
        K("http-request unset-var", "flb", "(<var-name>) [if|unless <cond>]", "Forget a variable."),
        K("http-response set-var", "flb", "(<var-name>[,<cond>...]) <expr> [if|unless <cond>]",
          "As http-request set-var, when the response comes."),
        K("http-response set-var-fmt", "flb", "(<var-name>[,<cond>...]) <fmt> [if|unless <cond>]",
          "As http-request set-var-fmt, when the response comes."),
        K("http-response unset-var", "flb", "(<var-name>) [if|unless <cond>]", "Forget a variable."),
        K("http-request track-sc0", "flb", "<key> [table <table>] [if|unless <cond>]",
          "Follow the key's entry (src, dst, src_port, dst_port, base, base32, base32+src, path, url, url32, url32+src, "
          "req.hdr(<name>), req.cook(<name>)) of the proxy's or the named "
          "stick-table in sticky counter 0 for this request; the request counts in it (see stick-table store)."),
        K("http-request track-sc1", "flb", "<key> [table <table>] [if|unless <cond>]", "As track-sc0, in sticky counter 1."),
        K("http-request track-sc2", "flb", "<key> [table <table>] [if|unless <cond>]", "As track-sc0, in sticky counter 2."),
        K("http-request sc-inc-gpc0", "flb", "(<sc-id>) [if|unless <cond>]",
          "Add one to gpc0 (and gpc0_rate) of the entry sticky counter <sc-id> tracks."),
        K("http-request sc-inc-gpc1", "flb", "(<sc-id>) [if|unless <cond>]",
          "Add one to gpc1 (and gpc1_rate) of the entry sticky counter <sc-id> tracks."),
        K("http-request sc-set-gpt0", "flb", "(<sc-id>) <integer> [if|unless <cond>]",
          "Set gpt0 of the entry sticky counter <sc-id> tracks."),
        K("use-server", "lb", "<server> if|unless <cond>",
          "Send a request the condition holds for to this server, ahead of cookies and stick tables, "
          "while it is usable (the first such rule wins)."),
        K("stick", "lb", "on|match|store-request <pattern> [table <own name>] [if|unless <cond>]",
          "Stick a client to a server by src, dst, src_port, dst_port, base, base32, base32+src, path, url, url32, "
          "url32+src, req.hdr(<name>) or req.cook(<name>)."),
        K("http-request set-log-level", "flb", "<level> [if|unless <cond>]",
          "The syslog level of the request's log line (emerg ... debug), or silent for no line."),
        K("http-response set-log-level", "flb", "<level> [if|unless <cond>]",
          "As http-request set-log-level, when the response comes."),
        K("declare", "fl", "capture request|response len <n>",
          "A capture slot for http-request|http-response capture ... id <n> (the log's %hr/%hs)."),
        K("http-request capture", "fl", "<sample> len <n> | <sample> id <n> [if|unless <cond>]",
          "Log the sample's text (cut to the length) in a new request capture slot, or in a declared one."),
        K("http-response capture", "fl", "<sample> id <n> [if|unless <cond>]",
          "Log the sample's text in a declared response capture slot."),
        K("capture", "fl", "request header <name> len <n> | response header <name> len <n> | cookie <name> len <n>",
          "Log a header's last value (%hr/%hs, %hrl/%hsl) or the first cookie whose name begins with <name> (%CC/%CS)."),
        K("http-reuse", "dlb", "never|safe|aggressive|always",
          "How idle server connections are shared: never (each client keeps its own), safe (not for a client's first request), aggressive (a first request only on a connection reused before), always. Without it haply shares them for requests it can replay."),
        K("compression algo", "dflb", "<algorithm> ...",
          "Compress responses (mode http) with the algorithm the request's Accept-Encoding prefers: identity, gzip, deflate, raw-deflate; "
          "a backend's algorithms take precedence over its frontend's. Responses already encoded, not 200-203, "
          "without Content-Length or chunked framing, multipart, marked no-transform, or to old Mozilla/4 clients stay as they are."),
        K("compression type", "dflb", "<mime type> ...",
          "Compress only responses whose Content-Type starts with one of these types (a backend's list takes precedence over its frontend's)."),
        K("compression offload", "dflb", "",
          "Remove Accept-Encoding from the requests that haply compresses the answer to, so that servers never compress (ignored in defaults, as in HAProxy)."),
        K("total-max-size", "c", "<megabytes>",
          "The cache's size in RAM (1 to 4095 MB), in 1 kB blocks; the least recently used objects make room."),
        K("max-object-size", "c", "<bytes>",
          "The largest object the cache stores, head included (at most half the total; a 256th of it by default)."),
        K("max-age", "c", "<seconds>",
          "The longest an object stays (default 60): the response's s-maxage, max-age or Expires, at most this."),
        K("process-vary", "c", "on|off",
          "Store responses with a Vary on accept-encoding and referer (off: a response with Vary is not stored)."),
        K("max-secondary-entries", "c", "<number>",
          "The most variants of one URL the cache keeps with process-vary on (default 10)."),
        K("http-request cache-use", "flb", "<cache> [if|unless <cond>]",
          "Answer a GET or HEAD from the cache when it holds a fresh object for its host and URI (a hit is logged "
          "with server <CACHE>); a 304 for a matching If-None-Match or If-Modified-Since. Also computes the key "
          "cache-store needs."),
        K("http-response cache-store", "flb", "<cache> [if|unless <cond>]",
          "Store a cacheable 200 answer to a GET (with an expiry or a validator, without no-cache, no-store or "
          "private, not too large), with the fields the http-response rules above it left."),
        K("filter cache", "flb", "<cache>",
          "Declare the cache filter explicitly (optional: cache-use and cache-store imply it); other filters are "
          "not supported."),
        K("tcp-request", "flb", "connection|session|content accept|reject|track-sc0|1|2 <key> [table <table>]"
          "|sc-inc-gpc0|1(<sc-id>)|sc-set-gpt0(<sc-id>) <integer>|expect-proxy layer4 [if|unless <cond>] "
          "| inspect-delay <time>",
          "Accept or refuse a connection by its addresses (src, dst, dst_port) and sticky counters, in order; rejects count in "
          "dcon (connection, session) or dreq (content). track-sc follows the key's (src, dst, src_port, dst_port) "
          "stick-table entry for the session; in mode http the content rules are evaluated again for each request, "
          "and what they track is the request's. `tcp-request connection expect-proxy layer4` makes the connections "
          "it picks (by their real addresses) start with a PROXY header, as `accept-proxy` does. Other actions are "
          "not supported."),
        K("log-format", "dfl", "<format>", "Custom log line format (HAProxy 2.6's variables and flags; checked at its line, HTTP-only variables refused in a mode tcp proxy as HAProxy does)."),
        K("unique-id-format", "dfl", "<format>",
          "An identifier per HTTP request (a log-format string, e.g. %{+X}o %ci:%cp_%fi:%fp_%Ts_%rt:%pid): %ID in logs, %[unique-id] in header values; a mode tcp session's is rendered for its log line."),
        K("unique-id-header", "dfl", "<name>",
          "Send the request's unique-id-format identifier to the server in this header."),
        K("server", "lbe", "<name> <addr>[:<port>] [<option>...]",
          "A server: weight, maxconn, minconn (maxconn follows the backend's load, see fullconn), maxqueue, backup, disabled, check, inter, fastinter, downinter, rise, fall, port, addr, slowstart, agent-check, agent-port, agent-inter, agent-addr, agent-send, observe, error-limit, on-error, on-marked-down, on-marked-up, id, init-addr, resolvers, resolve-prefer, resolve-net, resolve-opts (allow-dup-ip, prevent-dup-ip), cookie, send-proxy, send-proxy-v2 (the PROXY protocol header first, with the client's address; such a connection serves that client alone), check-send-proxy, source (see `source`); TLS options kept for the TLS layer."),
        K("default-server", "dlb", "[<option>...]", "Options applied to the following server lines."),
        K("server-template", "lb", "<prefix> <num>|<from>-<to> <addr>[:<port>] [<option>...]", "Servers <prefix>1..N sharing one address."),
        K("http-check send", "dlb", "[meth <m>] [uri <u>] [ver <v>] [hdr <name> <value>]... [body <string>]", "The HTTP health-check request."),
        K("http-check expect", "dlb", "[!] status|rstatus|string|rstring <pattern>", "What a healthy HTTP check response looks like."),
        K("tcp-check connect", "dlb", "[port <n>] [ssl] [send-proxy] ...", "tcp-check rule: open the connection."),
        K("tcp-check send", "dlb", "<string>", "tcp-check rule: send a string."),
        K("tcp-check send-binary", "dlb", "<hex>", "tcp-check rule: send bytes written in hexadecimal."),
        K("tcp-check expect", "dlb", "[!] string|rstring|binary <pattern>", "tcp-check rule: wait for a reply matching the pattern."),
        K("stats enable", "dflb", "", "Serve the statistics page."),
        K("stats uri", "dflb", "<prefix>", "URI prefix of the statistics page (default /haproxy?stats)."),
        K("stats realm", "dflb", "<realm>", "Basic-auth realm of the statistics page."),
        K("stats auth", "dflb", "<user>:<password>", "An account allowed on the statistics page."),
        K("stats refresh", "dflb", "<time>", "Auto-refresh period of the statistics page."),
        K("stats hide-version", "dflb", "", "Do not show the version on the statistics page."),
        K("stats show-node", "dflb", "[<name>]", "Show the node name on the statistics page."),
        K("stats show-desc", "dflb", "[<text>]", "Show a description on the statistics page."),
        K("stats show-legends", "dflb", "", "Show extra details on the statistics page."),
        K("stats scope", "dflb", "<proxy>|.", "Limit the statistics page to these proxies."),
        K("stats admin", "flb", "if|unless <cond>", "Allow server state changes from the statistics page."),
        K("stats http-request", "flb", "allow|deny|auth [realm <realm>] [if|unless <cond>]",
          "Access rules of the statistics page, the first that matches decides: allow serves it, deny answers 403, auth asks for credentials (401). Not with stats auth or stats realm, as in HAProxy."),
    ]
    rows += [K(f"timeout {name}", sections, "<time>", text) for name, sections, text in (
        ("connect", "dlb", "Time to establish a connection to a server."),
        ("client", "dfl", "Client inactivity timeout."),
        ("server", "dlb", "Server inactivity timeout."),
        ("queue", "dlb", "Time a request may wait for a free server slot."),
        ("http-request", "dflb", "Time to receive a complete request head."),
        ("http-keep-alive", "dflb", "Idle time allowed between two requests on one connection."),
        ("tunnel", "dlb", "Inactivity timeout of tunnels (WebSocket, CONNECT, TCP after upgrade)."),
        ("check", "dlb", "Extra read timeout of health checks once connected."),
        ("client-fin", "dfl", "Inactivity timeout after the client half-closed."),
        ("server-fin", "dlb", "Inactivity timeout after the server half-closed."),
        ("tarpit", "dflb", "How long http-request tarpit holds a request (timeout connect if unset)."),
    )]
    options = (
        ("tcplog", "dflb", "", "Log in the TCP format."),
        ("httplog", "dfl", "[clf]", "Log in the HTTP format (or the Common Log Format)."),
        ("dontlognull", "dfl", "", "Do not log connections that sent no data."),
        ("http-ignore-probes", "dfl", "",
         "A connection that sends nothing (a browser's pre-connect) is neither logged nor counted as "
         "an error, and is closed without a 408 at `timeout http-request`."),
        ("dontlog-normal", "dfl", "", "Log only what went wrong: a termination other than a normal end, or a 5xx status."),
        ("log-separate-errors", "dfl", "", "Log what went wrong at level err instead of info."),
        ("tcpka", "dflb", "", "TCP keep-alive on both sides."),
        ("clitcpka", "dfl", "", "TCP keep-alive on the client side."),
        ("srvtcpka", "dlb", "", "TCP keep-alive on the server side."),
        ("tcp-smart-accept", "dfl", "", "No bare ACK for a client's first data: the answer carries it "
         "(on by default in mode http; `no option tcp-smart-accept` turns it off)."),
        ("tcp-smart-connect", "dlb", "", "No bare ACK ending the handshake with a server: the request "
         "carries it."),
        ("redispatch", "dlb", "[<interval>]", "Let a retry go to another server when the chosen one fails "
         "(every interval-th retry; negative: that many before the last; 0: never)."),
        ("forwardfor", "dflb", "[except <network>] [header <name>] [if-none]", "Add the client address in X-Forwarded-For."),
        ("originalto", "dflb", "[except <network>] [header <name>]", "Add the address the client connected to in X-Original-To."),
        ("abortonclose", "dlb", "", "Drop a request whose client closed while it waits in the queue or for its connection."),
        ("http-buffer-request", "dflb", "", "Read the request body (up to one 16 kB buffer) before choosing a server; timeout http-request then covers the body."),
        ("prefer-last-server", "dlb", "", "Send a keep-alive client's next request to the server whose connection it still holds (not with hash balancing)."),
        ("http-keep-alive", "dflb", "", "Keep both connections open between requests (the default)."),
        ("http-server-close", "dflb", "", "Close the server connection after each response."),
        ("httpclose", "dflb", "", "Close both connections after each response."),
        ("httpchk", "dlb", "[<method>] [<uri>] [<version>]", "HTTP health checks."),
        ("mysql-check", "dlb", "[user <name> [post-41]]", "MySQL handshake health checks."),
        ("external-check", "dlb", "", "Health checks by a program (external-check command), judged by its exit status; needs the global external-check."),
        ("ssl-hello-chk", "dlb", "", "TLS ClientHello health checks."),
        ("redis-check", "dlb", "", "Redis health checks: PING must be answered +PONG."),
        ("smtpchk", "dlb", "[HELO|EHLO <domain>]", "SMTP health checks: a 2xx greeting, a 2xx reply to "
         "HELO (or EHLO) <domain> (HELO localhost by default), then QUIT."),
        ("pgsql-check", "dlb", "user <username>", "PostgreSQL health checks: a StartupMessage for the user "
         "must be answered by an authentication request, not an error."),
        ("ldap-check", "dlb", "", "LDAPv3 health checks: an anonymous simple bind must succeed."),
        ("tcp-check", "dlb", "", "Health checks scripted with tcp-check rules."),
        ("allbackups", "dlb", "", "Use all backup servers at once when no active server is up."),
        ("log-health-checks", "dlb", "", "Log health-check state changes in detail."),
        ("logasap", "dfl", "", "Log a request as soon as its response head has gone to the client ('+' before the time and the bytes so far)."),
        ("contstats", "dfl", "", "Count the bytes of a transfer as they flow: what haply's counters always do."),
        ("http-no-delay", "dflb", "", "Send every piece of a message at once, never waiting to fill packets: what haply always does."),
        ("http-restrict-req-hdr-names", "dflb", "preserve|delete|reject",
         "A request field whose name holds a character outside [A-Za-z0-9-] (X_Forwarded-For, which a "
         "WSGI application reads as X-Forwarded-For) is kept (preserve, the default), removed "
         "(delete) or refused with a 403 (reject), after the proxy's http-request rules."),
        ("socket-stats", "dfl", "", "Give each listening address its own row in the statistics (show stat, the stats page, "
         "Prometheus' haproxy_listener_*), named by its bind line's `name` or sock-<n>."),
    )
    rows += [K(f"option {name}", sections, synopsis, text) for name, sections, synopsis, text in options]
    rows.append(K("option forceclose", "dflb", "", "Old name of option httpclose.", L, "option httpclose"))
    for name in (
        "accept-invalid-http-request", "accept-invalid-http-response", "checkcache",
        "disable-h2-upgrade", "h1-case-adjust-bogus-client", "h1-case-adjust-bogus-server",
        "http-pretend-keepalive", "http-use-proxy-header", "httpslog",
        "independent-streams",
        "nolinger", "persist",
        "splice-auto", "splice-request", "splice-response", "spop-check",
        "transparent", "idle-close-on-response",
    ):
        rows.append(K(f"option {name}", "dflb", "", "HAProxy option not implemented by haply.", U))
    for name, modern in (("http-tunnel", None), ("http_proxy", None)):
        rows.append(K(f"option {name}", "dflb", "", "Removed from HAProxy.", U, modern))
    # resolvers sections (manual 5.3.2): runtime DNS resolution of servers (haply.resolvers)
    rows += [
        K("nameserver", "r", "<name> [udp@]<address>:<port>",
          "A DNS server queried over UDP for the servers pointing at this section (tcp@ is not supported by haply)."),
        K("parse-resolv-conf", "r", "", "Add each nameserver of /etc/resolv.conf (port 53), named after its address."),
        K("resolve_retries", "r", "<nb>", "Queries sent to resolve a name before giving up (default 3)."),
        K("timeout resolve", "r", "<time>", "Time between two resolutions of a server's name (default 1s)."),
        K("timeout retry", "r", "<time>", "Time between two queries without a valid answer (default 1s)."),
        K("accepted_payload_size", "r", "<nb>", "Largest answer announced to the name servers (EDNS0; default 512 bytes)."),
        K("resolution_pool_size", "r", "<nb>", "Removed from HAProxy (it never appeared in a stable release).", U),
    ]
    rows += [K(f"hold {status}", "r", "<period>", text) for status, text in (
        ("nx", "After NXDOMAIN, a server keeps its address this long after the last valid answer, then enters maintenance (default 30s)."),
        ("refused", "As hold nx, after REFUSED (default 30s)."),
        ("timeout", "As hold nx, after every query timed out (default 30s)."),
        ("other", "As hold nx, after any other invalid answer (default 30s)."),
        ("valid", "For do-resolve actions only (not supported by haply); no effect on servers, as in HAProxy (default 10s)."),
        ("obsolete", "For SRV records only (not supported by haply); no effect on servers (default 0s)."),
    )]
    # mailers sections (manual 3.6) and the proxies' e-mail alerts (haply.alerts)
    rows += [
        K("mailer", "m", "<name> <addr>:<port>", "An SMTP server the proxies of `email-alert mailers` send alerts to."),
        K("timeout mail", "m", "<time>",
          "Time one alert has to reach a mailer, from the connection to the end of the SMTP dialogue (default 10s)."),
        K("email-alert mailers", "dflb", "<mailersect>",
          "Mail this proxy's server state changes through each mailer of this mailers section."),
        K("email-alert from", "dflb", "<emailaddr>", "The sender of the alerts (MAIL FROM and the From header)."),
        K("email-alert to", "dflb", "<emailaddr>", "The recipient of the alerts (RCPT TO and the To header)."),
        K("email-alert level", "dflb", "emerg|alert|crit|err|warning|notice|info|debug",
          "Mail the changes logged at this level or a more severe one (default alert: a server going DOWN; "
          "notice adds UP and drain, info the health check lines of `option log-health-checks`)."),
        K("email-alert myhostname", "dflb", "<hostname>", "The name said in HELO (default: the system's host name)."),
    ]
    # conditional blocks and messages (manual 2.4), applied before sections are read
    rows += [
        K(".if", "gdflb", "<condition>", "Keep the following lines if the condition holds: 0/1, defined(VAR), feature(OPENSSL), streq(a,b), strneq(a,b), version_atleast(V), version_before(V), !, &&, ||, ( )."),
        K(".elif", "gdflb", "<condition>", "Alternative branch of a .if block."),
        K(".else", "gdflb", "", "Last branch of a .if block."),
        K(".endif", "gdflb", "", "End of a .if block."),
        K(".notice", "gdflb", "<message>", "Report a message (shown as a warning)."),
        K(".warning", "gdflb", "<message>", "Report a warning."),
        K(".alert", "gdflb", "<message>", "Report an error: the configuration is refused."),
        K(".diag", "gdflb", "<message>", "Message for HAProxy's diagnostic mode; haply drops it."),
    ]
    # legacy spellings, accepted with a warning
    rows += [
        K("contimeout", "dlb", "<time>", "Old spelling of timeout connect (removed from HAProxy 2.1).", L, "timeout connect"),
        K("clitimeout", "dfl", "<time>", "Old spelling of timeout client (removed from HAProxy 2.1).", L, "timeout client"),
        K("srvtimeout", "dlb", "<time>", "Old spelling of timeout server (removed from HAProxy 2.1).", L, "timeout server"),
        K("redispatch", "dlb", "", "Old spelling of option redispatch.", L, "option redispatch"),
    ]
    # removed in HAProxy 2.1 (the regex header rewriting family) and other refusals
    for name, modern in (
        ("reqadd", "http-request add-header"), ("rspadd", "http-response add-header"),
        ("reqdel", "http-request del-header"), ("rspdel", "http-response del-header"),
        ("reqidel", "http-request del-header"), ("rspidel", "http-response del-header"),
        ("reqrep", "http-request replace-header"), ("rsprep", "http-response replace-header"),
        ("reqirep", "http-request replace-header"), ("rspirep", "http-response replace-header"),
        ("reqallow", "http-request allow"), ("reqiallow", "http-request allow"),
        ("reqdeny", "http-request deny"), ("reqideny", "http-request deny"),
        ("reqpass", "http-request allow"), ("reqipass", "http-request allow"),
        ("reqtarpit", "http-request tarpit"), ("reqitarpit", "http-request tarpit"),
        ("reqsetbe", "use_backend"), ("reqisetbe", "use_backend"),
        ("rspdeny", "http-response deny"), ("rspideny", "http-response deny"),
        ("block", "http-request deny"), ("monitor-net", "monitor-uri or an acl on src"),
    ):
        rows.append(K(name, "dflb", "...", "Removed from HAProxy (2.1 and later).", U, modern))
    for name, sections in (
        ("tcp-response", "dlb"),
        ("filter", "flb"),
        ("dispatch", "lb"), ("http-send-name-header", "dlb"), ("http-after-response", "dflb"),
        ("error-log-format", "dfl"), ("force-persist", "lb"), ("ignore-persist", "lb"),
        ("log-format-sd", "dfl"), ("max-keep-alive-queue", "dlb"),
        ("persist", "dlb"), ("use-fcgi-app", "lb"),
        ("transparent", "dlb"), ("bind-process", "dflb"),
        ("http-check connect", "dlb"), ("http-check disable-on-404", "dlb"), ("http-check send-state", "dlb"),
        ("http-check comment", "dlb"), ("http-check set-var", "dlb"), ("http-check unset-var", "dlb"),
        ("tcp-check comment", "dlb"), ("tcp-check send-lf", "dlb"), ("tcp-check send-binary-lf", "dlb"),
        ("tcp-check set-var", "dlb"), ("tcp-check unset-var", "dlb"),
        ("stats show-modules", "dflb"), ("stats bind-process", "g"),
    ):
        rows.append(K(name, sections, "...", "HAProxy keyword not implemented by haply.", U))
    # The rest of HAProxy 2.6's global section (`haproxy -dKcfg` and the
    # manual's section 3): refused by name, never taken for a typo.
    known = {row.name for row in rows}
    for name in (
        "busy-polling close-spread-time cluster-secret default-path expose-experimental-directives "
        "fd-hard-limit grace h1-accept-payload-with-any-method h1-case-adjust "
        "h1-case-adjust-file h2-workaround-bogus-websocket-clients httpclient.resolvers.id "
        "httpclient.resolvers.prefer httpclient.ssl.ca-file httpclient.ssl.verify "
        "insecure-setuid-wanted issuers-chain-path localpeer "
        "lua-load-per-thread lua-prepend-path maxconnrate maxpipes maxsessrate "
        "maxsslconn maxsslrate mworker-max-reloads no-memory-trimming noepoll noevports "
        "nogetaddrinfo nokqueue nopoll noreuseport nosplice numa-cpu-mapping pp2-never-send-local "
        "presetenv profiling.tasks quiet resetenv set-dumpable set-var set-var-fmt setenv "
        "ssl-default-bind-curves ssl-default-bind-sigalgs ssl-default-bind-client-sigalgs "
        "ssl-default-server-curves ssl-default-server-sigalgs ssl-default-server-client-sigalgs "
        "ssl-load-extra-del-ext ssl-load-extra-files ssl-mode-async "
        "ssl-propquery ssl-provider ssl-provider-path ssl-skip-self-issued-ca strict-limits "
        "thread-group thread-groups unsetenv zero-warning tune.chksize tune.fail-alloc "
        "tune.fd.edge-triggered tune.h2.header-table-size tune.h2.initial-window-size "
        "tune.h2.max-concurrent-streams tune.h2.max-frame-size tune.idle-pool.shared "
        "tune.listener.multi-queue tune.lua.forced-yield tune.lua.maxmem tune.lua.service-timeout "
        "tune.lua.session-timeout tune.lua.task-timeout tune.peers.max-updates-at-once "
        "tune.pool-high-fd-ratio tune.pool-low-fd-ratio tune.sched.low-latency tune.ssl.cachesize "
        "tune.ssl.capture-buffer-size tune.ssl.capture-cipherlist-size tune.ssl.force-private-cache "
        "tune.ssl.hard-maxrecord tune.ssl.keylog tune.ssl.lifetime tune.ssl.maxrecord "
        "tune.ssl.ssl-ctx-cache-size tune.vars.check-max-size tune.vars.global-max-size "
        "tune.vars.proc-max-size tune.vars.reqres-max-size tune.vars.sess-max-size "
        "tune.vars.txn-max-size tune.buffers.limit tune.buffers.reserve tune.comp.maxlevel "
        "tune.http.cookielen tune.http.logurilen tune.idletimer tune.maxaccept tune.maxpollevents "
        "tune.pattern.cache-size tune.pipesize tune.rcvbuf.client tune.rcvbuf.server "
        "tune.recv_enough tune.runqueue-depth tune.sndbuf.client tune.sndbuf.server "
        "tune.zlib.memlevel tune.zlib.windowsize tune.ssl.default-dh-param tune.bufsize "
        "tune.maxrewrite tune.http.maxhdr"
    ).split():
        if name not in known:
            rows.append(K(name, "g", "...", "HAProxy 2.6 keyword not implemented by haply.", U))
    SUPPORTED_ACTIONS = {row.name for row in rows}
    for action in (
        "allow", "deny", "auth", "redirect", "tarpit", "return", "reject", "silent-drop",
        "set-path", "set-pathq", "set-query", "set-uri", "set-method", "set-var", "unset-var",
        "replace-header", "replace-value", "replace-path", "replace-pathq", "replace-uri",
        "set-log-level", "set-nice", "set-mark", "set-tos", "set-src", "set-src-port", "set-dst",
        "set-dst-port", "set-timeout", "set-priority-class", "set-priority-offset", "set-map",
        "del-map", "add-acl", "del-acl", "capture", "track-sc0", "track-sc1", "track-sc2",
        "sc-inc-gpc0", "sc-inc-gpc1", "sc-set-gpt0", "cache-use", "cache-store", "early-hint",
        "normalize-uri", "wait-for-handshake", "wait-for-body", "disable-l7-retry", "do-resolve",
        "send-spoe-group", "strict-mode", "lua", "set-status", "set-bandwidth-limit",
    ):
        for family in ("http-request", "http-response"):
            name = f"{family} {action}"
            if action == "cache-use" and family == "http-response" or action == "cache-store" and family == "http-request":
                continue
            if name in SUPPORTED_ACTIONS:
                continue
            rows.append(K(name, "dflb", "...", "HAProxy action not implemented by haply.", U))
    # program sections (manual 3.9) and haply's supervision extensions
    rows += [
        K("command", "p", "<command> [<argument>...]",
          "The program to run (no shell); %p and %i become the instance's port and number, and "
          "HAPLY_PORT / HAPLY_INSTANCE are set in its environment."),
        K("option start-on-reload", "p", "",
          "On a reload, start new instances (the default); `no option start-on-reload` keeps the running ones."),
        K("instances", "p", "<count>", "haply: run this many instances of the command (default 1)."),
        K("port", "p", "<first port>", "haply: port of instance 1; instance i gets port + i - 1."),
        K("setenv", "p", "<name> <value>", "haply: set an environment variable for the command."),
        K("directory", "p", "<dir>", "haply: working directory of the command."),
        K("stdout", "p", "<file>", "haply: append the command's standard output to this file (%i, %p allowed)."),
        K("stderr", "p", "<file>", "haply: append the command's standard error to this file (%i, %p allowed)."),
        K("option daemon", "p", "",
          "haply: the command forks and leaves the process id in `pidfile` (monit's start program); "
          "that process is the one supervised."),
        K("stop-command", "p", "<command> [<argument>...]",
          "haply: run this to stop an instance (monit's stop program) instead of sending SIGTERM."),
        K("timeout stop", "p", "<time>", "haply: time between SIGTERM (or stop-command) and SIGKILL (default 10s)."),
        K("restart-backoff", "p", "<first> [<max>]",
          "haply: delay before restarting an instance that exited, doubled per consecutive crash (default 1s 60s)."),
        K("crash-limit", "p", "<exits> <window>",
          "haply: after this many exits within the window the instance is FATAL and not restarted (default 5 60s)."),
        K("service-group", "p", "<name>", "haply: monit's group; control commands may name the group."),
        K("program-servers", "lb", "<program> [<server option>...]",
          "haply: one server per instance of the program, named <program>-1..N at 127.0.0.1:<port>, "
          "with default-server settings and these options; an instance its checks mark DOWN is restarted."),
    ]
    return rows


KEYWORDS: dict[str, Keyword] = {row.name: row for row in _rows()}

# Families whose second word selects the keyword ("timeout connect").
FAMILIES = frozenset(name.split(" ", 1)[0] for name in KEYWORDS if " " in name)


def lookup(words: list[str] | tuple[str, ...]) -> tuple[Keyword | None, int]:
    """The keyword a line starts with and how many words its name takes.

    Two-word keywords win over one-word ones; `lua.*` style prefixes are not
    special. Returns (None, 1) when no keyword matches.
    """
    if len(words) >= 2:
        two = f"{words[0]} {words[1]}"
        if two in KEYWORDS:
            return KEYWORDS[two], 2
        if words[0] in ("http-request", "http-response") and words[1].startswith("lua."):
            return KEYWORDS[f"{words[0]} lua"], 2
        if words[0] == "http-request" and words[1].startswith("track-sc") and words[1][8:].isdigit():
            return KEYWORDS["http-request track-sc0"], 2  # its handler says which counters exist
        if (words[0] == "http-request" and words[1].startswith("sc-")
                or words[0] in ("http-request", "http-response")
                and words[1].startswith(("set-var", "unset-var"))) and "(" in words[1]:
            # sc-inc-gpc0(0), set-var(txn.x): the counter or the variable is an argument
            named = f"{words[0]} {words[1].split('(', 1)[0]}"
            if named in KEYWORDS:
                return KEYWORDS[named], 2
        if words[0] in ("http-request", "http-response", "tcp-check") and words[1].startswith(("track-sc", "sc-")):
            return Keyword(two, "dflb", "...", "HAProxy action not implemented by haply.", UNSUPPORTED), 2
    if words and words[0] in KEYWORDS:
        return KEYWORDS[words[0]], 1
    return None, 1


def suggest(name: str, section: str) -> str | None:
    """The closest keyword allowed in this section, for "did you mean"."""
    letter = SECTION_LETTERS.get(section, "")
    candidates = [k for k, row in KEYWORDS.items() if letter in row.sections and row.status != UNSUPPORTED]
    if " " not in name:
        if name in FAMILIES:
            return None
        candidates += [family for family in FAMILIES if any(k.startswith(family + " ") for k in candidates)]
        candidates += list(SECTIONS)
    family = name.split(" ", 1)[0]
    if " " in name and family in FAMILIES:
        candidates = [k for k in candidates if k.startswith(family + " ")] or candidates
    found = difflib.get_close_matches(name, candidates, n=1, cutoff=0.6)
    return found[0] if found else None


__all__ = [
    "FAMILIES", "KEYWORDS", "Keyword", "LEGACY", "PREPROCESSOR", "SECTIONS", "SECTION_LETTERS", "SECTION_NAMES",
    "SUPPORTED", "UNSUPPORTED", "UNSUPPORTED_SECTIONS", "lookup", "suggest",
]
