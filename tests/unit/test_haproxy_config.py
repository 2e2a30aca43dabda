"""haproxy.cfg parsing: every keyword, defaults inheritance, legacy forms,
validation, error messages with file:line, and the loader around it."""

import re
import textwrap
from pathlib import Path

import pytest

import haply.config as config_package
from haply.config import ConfigError, Dialect, detect, load
from haply.config.haproxy import HANDLERS
from haply.config.keywords import KEYWORDS, LEGACY, PREPROCESSOR, SUPPORTED, UNSUPPORTED
from haply.config.model import ForwardFor, HttpCheck, OriginalTo, SourceAddress, TcpCheckStep
from haply.proxy.samples import CONVERTER_NAMES

ERRORS_DIR = Path("/etc/haproxy/errors")  # shipped by Debian's haproxy package

DEFAULTS = """\
defaults
    mode http
    timeout connect 5s
    timeout client 10s
    timeout server 10s
"""


def write(tmp_path, text, name="haproxy.cfg"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def load_text(tmp_path, text, environ=None, name="haproxy.cfg"):
    return load([str(write(tmp_path, text, name))], environ or {})


def messages(tmp_path, text, environ=None):
    """Every error as 'LINE: message'."""
    with pytest.raises(ConfigError) as error:
        load_text(tmp_path, text, environ)
    return [f"{d.location.line}: {d.message}" for d in error.value.diagnostics if d.severity == "error"]


def warnings(loaded):
    return [f"{d.location.line}: {d.message}" for d in loaded.diagnostics.warnings]


# ----------------------------------------------------------------------- global


def test_global_keywords(tmp_path):
    loaded = load_text(tmp_path, """\
        global
            maxconn 4000
            daemon
            pidfile /run/haply.pid
            user haproxy
            group haproxy
            chroot /var/lib/haproxy
            nbthread 4
            spread-checks 5
            max-spread-checks 2500ms
            hard-stop-after 1m
            stats timeout 30s
            ssl-default-bind-ciphers ECDHE-RSA-AES128-GCM-SHA256
            ssl-default-bind-options ssl-min-ver TLSv1.2 no-tls-tickets
            ca-base /etc/ssl/certs
        """)
    g = loaded.config.global_
    assert (g.maxconn, g.daemon, g.pidfile, g.user, g.group, g.chroot, g.nbthread) == (
        4000, True, "/run/haply.pid", "haproxy", "haproxy", "/var/lib/haproxy", 4)
    assert (g.spread_checks, g.max_spread_checks, g.hard_stop_after, g.stats_timeout) == (
        5, 2.5, 60.0, 30.0)
    assert dict(g.extra) == {
        "ssl-default-bind-ciphers": ("ECDHE-RSA-AES128-GCM-SHA256",),
        "ssl-default-bind-options": ("ssl-min-ver", "TLSv1.2", "no-tls-tickets"),
        "ca-base": ("/etc/ssl/certs",),
    }


def test_global_keywords_kept_for_other_layers(tmp_path):
    g = load_text(tmp_path, """\
        global
            uid 100
            gid 100
            log-tag haply
            log-send-hostname lb1
            node lb1
            description edge balancer
            stats maxconn 20
            crt-base /etc/ssl/private
            ssl-default-bind-ciphersuites TLS_AES_128_GCM_SHA256
            ssl-default-server-ciphers ECDHE-RSA-AES128-GCM-SHA256
            ssl-default-server-ciphersuites TLS_AES_256_GCM_SHA384
            ssl-default-server-options no-tls-tickets
            ssl-server-verify required
            tune.ssl.default-dh-param 2048
            ulimit-n 65536
            master-worker
        """).config.global_
    assert [key for key, _ in g.extra] == [
        "uid", "gid", "log-tag", "log-send-hostname", "node", "description", "stats maxconn", "crt-base",
        "ssl-default-bind-ciphersuites", "ssl-default-server-ciphers", "ssl-default-server-ciphersuites",
        "ssl-default-server-options", "ssl-server-verify", "tune.ssl.default-dh-param", "ulimit-n", "master-worker",
    ]
    assert dict(g.extra)["description"] == ("edge", "balancer")


def test_proxy_flags_and_kept_keywords(tmp_path):
    config = load_text(tmp_path, """\
        defaults
            mode tcp
            log /dev/log local0
            option tcplog
            option tcpka
            timeout connect 1s
            timeout client 1s
            timeout server 1s
        listen a
            bind :1 backlog 10
            no log
            log-tag edge
            disabled
            id 42
            backlog 100
            option clitcpka
            option srvtcpka
            option log-health-checks
            stats show-desc Edge
            stats scope .
            stats scope b
        listen b
            bind :2
            disabled
            enabled
        """).config
    a, b = config.proxies
    assert (a.logs, a.log_format, a.tcpka, a.id) == ((), "tcplog", True, 42)
    assert {"disabled", "clitcpka", "srvtcpka", "log-health-checks", "tcpka"} <= a.options
    assert dict(a.extra) == {"log-tag": ("edge",), "backlog": ("100",)}
    assert (a.stats.show_desc, a.stats.scopes, a.stats.enabled) == ("Edge", (".", "b"), True)
    assert "disabled" not in b.options and b.tcpka  # from defaults
    assert [l.facility for l in b.logs] == ["local0"]


def test_global_log_lines(tmp_path):
    g = load_text(tmp_path, """\
        global
            log /dev/log local0
            log 127.0.0.1:514 len 2048 format rfc5424 local1 notice err
            log stdout format raw daemon
            log [::1]:514 local2 info
        """).config.global_
    first, second, third, fourth = g.logs
    assert (first.address, first.facility, first.level, first.length) == ("/dev/log", "local0", None, 1024)
    assert (second.address, second.facility, second.level, second.max_level, second.length, second.format) == (
        "127.0.0.1:514", "local1", "notice", "err", 2048, "rfc5424")
    assert (third.address, third.format, third.facility) == ("stdout", "raw", "daemon")
    assert fourth.address == "[::1]:514"
    assert first.location.line == 2


def test_stats_sockets(tmp_path):
    g = load_text(tmp_path, """\
        global
            stats socket /run/haproxy/admin.sock mode 660 level admin expose-fd listeners
            stats socket ipv4@127.0.0.1:9999 level user
            stats socket /tmp/plain
        """).config.global_
    admin, tcp, plain = g.stats_sockets
    assert (admin.path, admin.mode, admin.level, admin.options) == (
        "/run/haproxy/admin.sock", 0o660, "admin", (("expose-fd", "listeners"),))
    assert (tcp.path, tcp.level) == ("ipv4@127.0.0.1:9999", "user")
    assert (plain.mode, plain.level) == (None, "operator")


def test_several_global_sections_merge(tmp_path):
    g = load_text(tmp_path, """\
        global
            maxconn 100
            log /dev/log local0
        global
            daemon
            log /dev/log local1
        """).config.global_
    assert (g.maxconn, g.daemon, [l.facility for l in g.logs]) == (100, True, ["local0", "local1"])


# ---------------------------------------------------------------------- proxies


def test_bind_forms(tmp_path):
    proxy = load_text(tmp_path, DEFAULTS + """\
        frontend f
            bind 10.0.0.11:443
            bind *:80,:81
            bind :::8080 v4v6
            bind [::1]:9000
            bind ipv6@::1:9001
            bind 127.0.0.1:8000-8002 name web backlog 100
            bind fd@3
            default_backend b
        backend b
            server s 127.0.0.1:1
        """).config.proxy("f")
    assert [(b.host, b.port, b.fd) for b in proxy.binds] == [
        ("10.0.0.11", 443, None), ("*", 80, None), ("", 81, None), ("::", 8080, None),
        ("::1", 9000, None), ("::1", 9001, None), ("127.0.0.1", 8000, None), ("127.0.0.1", 8001, None),
        ("127.0.0.1", 8002, None), ("", 0, 3),
    ]
    assert proxy.binds[3].options == (("v4v6", ""),)
    assert proxy.binds[6].options == (("name", "web"), ("backlog", "100"))
    assert proxy.binds[0].location.line == 7


def test_bind_errors(tmp_path):
    assert messages(tmp_path, DEFAULTS + """\
        frontend f
            bind 10.0.0.11
            bind 10.0.0.11:70000
            bind 10.0.0.11:90-80
            bind <Virtual IP>:443
            bind 10.0.0.1:80 accept-netscaler-cip 1
            bind 10.0.0.1:80 frobnicate
            bind 10.0.0.1:80 ssl crt /nonexistent/cert.pem
            bind unix@/run/x.sock
        """) == [
        "7: missing port in bind address '10.0.0.11': expected ADDR:PORT such as 10.0.0.11:443 or *:80",
        "8: port in '10.0.0.11:70000' '70000' is out of range: expected between 1 and 65535",
        "9: invalid port range '90-80' in '10.0.0.11:90-80': the first port is higher than the last",
        "10: invalid bind address '<Virtual IP>:443': it looks like a placeholder; replace it with an address such as 10.0.0.11:443",
        "11: bind option 'accept-netscaler-cip' is not supported by haply",
        "12: unknown bind option 'frobnicate'",
        "13: bind option 'crt /nonexistent/cert.pem': no such file or directory",
        "14: bind address 'unix@/run/x.sock' is not supported by haply: only TCP over IPv4/IPv6 and fd@N are",
    ]


def test_proxy_keywords(tmp_path):
    loaded = load_text(tmp_path, """\
        defaults
            mode http
            timeout connect 5s
            timeout client 1m
            timeout server 1m
            timeout queue 30s
            timeout http-request 10s
            timeout http-keep-alive 2s
            timeout tunnel 1h
            timeout check 3s
            timeout client-fin 1s
            timeout server-fin 2s
            retries 2
            retry-on conn-failure empty-response 503
            option redispatch
            option forwardfor except 127.0.0.0/8 header X-Real-IP if-none
            option http-server-close
            option httplog clf
            option dontlognull
            log global
        frontend f
            bind :80
            maxconn 1000
            monitor-uri /healthz
            description Public entry
            log-format "%ci %ST"
            default_backend b
        backend b
            balance url_param session check_post
            hash-type consistent djb2 avalanche
            option allbackups
            server s 127.0.0.1:81
        """)
    f, b = loaded.config.proxies
    t = f.timeouts
    assert (t.connect, t.client, t.server, t.queue, t.http_request, t.http_keep_alive, t.tunnel, t.check,
            t.client_fin, t.server_fin) == (5, 60, 60, 30, 10, 2, 3600, 3, 1, 2)
    assert (f.maxconn, f.monitor_uri, f.description, f.log_format, f.dontlognull) == (
        1000, "/healthz", "Public entry", "%ci %ST", True)
    assert f.forward_for == ForwardFor("X-Real-IP", "127.0.0.0/8", True)
    assert f.http_connection_mode == "server-close"
    assert [l.address for l in f.logs] == ["global"]
    assert (b.retries, b.retry_on, b.redispatch, b.allbackups) == (
        2, frozenset({"conn-failure", "empty-response", "503"}), True, True)
    assert (b.balance, b.balance_arg, b.balance_options) == ("url_param", "session", ("check_post",))
    assert (b.hash_type, b.hash_function, b.hash_modifier) == ("consistent", "djb2", "avalanche")
    assert b.log_format == "%ci %ST" or b.log_format == "httplog clf"
    assert f.default_backend == "b" and f.default_backend_location.line == 27


@pytest.mark.parametrize(
    "line, algorithm, arg, options",
    [
        ("balance roundrobin", "roundrobin", None, ()),
        ("balance static-rr", "static-rr", None, ()),
        ("balance leastconn", "leastconn", None, ()),
        ("balance first", "first", None, ()),
        ("balance source", "source", None, ()),
        ("balance uri whole depth 3", "uri", None, ("whole", "depth", "3")),
        ("balance hdr(Host) use_domain_only", "hdr", "Host", ("use_domain_only",)),
        ("balance random", "random", None, ()),
        ("balance random(3)", "random", "3", ()),
    ],
)
def test_balance(tmp_path, line, algorithm, arg, options):
    b = load_text(tmp_path, DEFAULTS + f"backend b\n    {line}\n").config.proxy("b")
    assert (b.balance, b.balance_arg, b.balance_options) == (algorithm, arg, options)


def test_retry_on_special_values(tmp_path):
    text = DEFAULTS + "backend a\n    retry-on all-retryable-errors\nbackend b\n    retry-on none\n"
    a, b = load_text(tmp_path, text).config.proxies
    assert a.retry_on == frozenset({"conn-failure", "empty-response", "junk-response", "response-timeout",
                                     "0rtt-rejected", "500", "502", "503", "504"})
    assert b.retry_on == frozenset()


def test_connection_modes_and_no_option(tmp_path):
    text = DEFAULTS.replace("mode http", "mode http\n    option httpclose\n    option dontlognull") + """\
        listen a
        listen b
            no option httpclose
            no option dontlognull
        backend c
            option http-keep-alive
        """
    a, b, c = load_text(tmp_path, text).config.proxies
    assert (a.http_connection_mode, a.dontlognull) == ("close", True)
    assert (b.http_connection_mode, b.dontlognull) == ("keep-alive", False)
    assert ("dontlognull" in a.options, "dontlognull" in b.options) == (True, False)
    assert c.http_connection_mode == "keep-alive"


def test_http_rules_and_switching(tmp_path):
    f = load_text(tmp_path, DEFAULTS + """\
        frontend f
            bind :80
            acl api path_beg /api
            acl secure ssl_fc
            http-request set-header X-Forwarded-Proto https if secure
            http-request add-header X-Test "a b" unless { src 127.0.0.1 }
            http-request del-header X-Secret
            http-request use-service prometheus-exporter if { path /metrics }
            http-response set-header X-Frame-Options DENY
            http-response add-header X-A b
            http-response del-header Server
            redirect scheme https code 301 if !secure
            redirect location /new drop-query if { path /old }
            use_backend api if api
            default_backend web
        backend api
        backend web
        """).config.proxy("f")
    rules = [(r.action, r.name, r.value, r.condition is not None) for r in f.http_request_rules]
    assert rules == [
        ("set-header", "X-Forwarded-Proto", "https", True), ("add-header", "X-Test", "a b", True),
        ("del-header", "X-Secret", None, False), ("use-service", "prometheus-exporter", None, True),
    ]
    assert f.http_request_rules[1].condition.unless
    assert [(r.action, r.name, r.value) for r in f.http_response_rules] == [
        ("set-header", "X-Frame-Options", "DENY"), ("add-header", "X-A", "b"), ("del-header", "Server", None)]
    scheme, location = f.redirects
    assert (scheme.kind, scheme.target, scheme.code, scheme.condition.any_of[0][0].negated) == ("scheme", "https", 301, True)
    assert (location.kind, location.target, location.code, location.options) == ("location", "/new", 302, ("drop-query",))
    assert [(s.backend, s.condition.any_of[0][0].acl.name) for s in f.backend_switches] == [("api", "api")]
    assert [a.name for a in f.acls] == ["api", "secure"]


def test_errorfile_is_read(tmp_path):
    page = tmp_path / "503.http"
    page.write_bytes(b"HTTP/1.0 503 Service Unavailable\r\nContent-Type: text/plain\r\n\r\ndown\n")
    bad = tmp_path / "bad.http"
    bad.write_bytes(b"<html>not a response</html>")
    b = load_text(tmp_path, DEFAULTS + f"backend b\n    errorfile 503 {page}\n").config.proxy("b")
    # kept as HAProxy sends it: read and written again, names in lower case
    assert b.errorfiles == ((503, page.read_bytes().replace(b"Content-Type", b"content-type")),)
    assert messages(tmp_path, DEFAULTS + f"""\
        backend b
            errorfile 503 {tmp_path}/missing.http
            errorfile 503 {bad}
            errorfile 302 {page}
        """) == [
        f"7: cannot read errorfile '{tmp_path}/missing.http': No such file or directory",
        f"8: errorfile '{bad}' does not look like an HTTP response: it must start with a status line such as 'HTTP/1.0 503 Service Unavailable'",
        "9: errorfile status 302 cannot be customised: expected one of 200, 400, 401, 403, 404, 405, 407, 408, 410, 413, 425, 429, 500, 501, 502, 503, 504",
    ]


def test_http_request_deny_rules(tmp_path):
    page = tmp_path / "403.http"
    page.write_bytes(b"HTTP/1.0 403 Forbidden\r\nContent-Type: text/plain\r\n\r\nno\n")
    body = tmp_path / "down.txt"
    body.write_bytes(b"down\n")
    f = load_text(tmp_path, DEFAULTS + f"""\
        frontend f
            http-request set-header X-A 1
            http-request deny if {{ path_beg /admin }}
            http-request deny deny_status 429 unless {{ src 10.0.0.0/8 }}
            http-request deny status 404 content-type text/plain string "gone away"
            http-request deny errorfile {page}
            http-request deny status 500 hdr X-Why maintenance content-type text/plain file {body}
        """).config.proxy("f")
    header, admin, limited, string, errorfile, built = f.http_request_rules
    assert header.action == "set-header"
    assert (admin.action, admin.status, admin.response, admin.closes) == ("deny", 403, None, False)
    assert admin.condition.any_of[0][0].acl.patterns == ("/admin",)
    assert (limited.status, limited.condition.unless) == (429, True)
    assert string.response == (b"HTTP/1.1 404 Not Found\r\ncontent-length: 9\r\n"
                               b"content-type: text/plain\r\n\r\ngone away")
    assert (errorfile.response, errorfile.closes) == (
        page.read_bytes().replace(b"Content-Type", b"content-type"), True)
    assert built.response == (b"HTTP/1.1 500 Internal Server Error\r\nx-why: maintenance\r\n"
                              b"content-length: 5\r\ncontent-type: text/plain\r\n\r\ndown\n")
    assert messages(tmp_path, DEFAULTS + f"""\
        frontend f
            http-request deny deny_status 302
            http-request deny status 99 string x content-type text/plain
            http-request deny string x
            http-request deny lf-string %[src] content-type text/plain
            http-request deny errorfile {page} content-type text/plain
            http-request deny file {tmp_path}/missing content-type text/plain
            http-request deny tarpit
            http-request deny hdr X-A %[src] string x content-type text/plain
        """) == [
        "7: 'http-request deny' status 302 has no error page: use one of 200, 400, 401, 403, 404, "
        "405, 407, 408, 410, 413, 425, 429, 500, 501, 502, 503, 504, or give file or string",
        "8: 'http-request deny': invalid status code '99': expected 200 to 599",
        "9: 'http-request deny': 'string' needs 'content-type <type>'",
        "10: 'http-request deny ... lf-string' is not supported by haply: use errorfile, errorfiles, file or string",
        "11: 'http-request deny': an errorfile is a whole response; content-type and hdr go with "
        "file or string",
        f"12: 'http-request deny': cannot read file '{tmp_path}/missing': No such file or directory",
        "13: unexpected 'tarpit' in 'http-request deny': expected one of deny_status, status, "
        "content-type, default-errorfiles, errorfile, errorfiles, file, string, hdr, then optionally "
        "if|unless CONDITION",
        "14: 'http-request deny': 'hdr X-A' takes a plain value; log-format values are not "
        "supported by haply",
    ]


def test_http_request_tarpit_rules(tmp_path):
    config = load_text(tmp_path, DEFAULTS + """\
        frontend f
            timeout tarpit 2s
            http-request tarpit if { path_beg /login }
            http-request tarpit deny_status 429
        backend b
            http-request deny
        """).config
    tarpit, limited = config.proxy("f").http_request_rules
    assert (tarpit.action, tarpit.status, tarpit.tarpit) == ("deny", 500, True)
    assert (limited.status, limited.tarpit) == (429, True)
    assert config.proxy("b").http_request_rules[0].tarpit is False
    assert config.proxy("f").timeouts.tarpit == 2.0
    assert config.proxy("b").timeouts.tarpit is None  # its timeout connect serves
    assert messages(tmp_path, DEFAULTS + """\
        frontend f
            http-request tarpit deny_status 302
        """) == [
        "7: 'http-request tarpit' status 302 has no error page: use one of 200, 400, 401, 403, 404, "
        "405, 407, 408, 410, 413, 425, 429, 500, 501, 502, 503, 504, or give file or string",
    ]


def test_deny_after_an_edit_of_the_field_it_tests_is_warned(tmp_path):
    loaded = load_text(tmp_path, DEFAULTS + """\
        frontend f
            bind :80
            default_backend b
            http-request del-header X-Admin
            http-request deny if { hdr(x-admin) yes }
            http-request deny if { hdr(host) evil }
        backend b
            server s 10.0.0.1:80
        """)
    assert warnings(loaded) == [
        "10: http-request deny reads header 'x-admin', which an http-request rule above it "
        "edits: haply reads the field as the client sent it (HAProxy, as edited)"]


def test_http_error_sets_the_page_of_a_status(tmp_path):
    body = tmp_path / "down.txt"
    body.write_bytes(b"Sorry, we are down\n")
    loaded = load_text(tmp_path, DEFAULTS + f"""\
            http-error status 503 content-type text/plain file {body}
        backend b
            http-error status 429 content-type text/html string "<p>slow down</p>"
        backend c
            http-error status 503 default-errorfiles
        """).config
    b, c = loaded.proxy("b"), loaded.proxy("c")
    assert dict(b.errorfiles) == {
        503: b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 19\r\n"
             b"content-type: text/plain\r\n\r\nSorry, we are down\n",
        429: b"HTTP/1.1 429 Too Many Requests\r\ncontent-length: 16\r\n"
             b"content-type: text/html\r\n\r\n<p>slow down</p>"}
    assert c.errorfiles == ()  # back to HAProxy's page
    assert messages(tmp_path, DEFAULTS + """\
        backend b
            http-error status 302 content-type text/plain string x
            http-error content-type text/plain string x
            http-error status 503
        """) == [
        "7: http-error status 302 cannot be customised: expected one of 200, 400, 401, 403, 404, "
        "405, 407, 408, 410, 413, 425, 429, 500, 501, 502, 503, 504",
        "8: 'http-error' expects 'status <code>'",
        "9: 'http-error' expects errorfile, file or string (with content-type), or default-errorfiles",
    ]


def test_debian_errorfiles_load(tmp_path):
    assert ERRORS_DIR.is_dir(), "Debian's haproxy package provides /etc/haproxy/errors"
    b = load_text(tmp_path, DEFAULTS + f"backend b\n    errorfile 504 {ERRORS_DIR}/504.http\n").config.proxy("b")
    assert b.errorfiles[0][1].startswith(b"HTTP/1.0 504")


# ---------------------------------------------------------------------- servers


def test_server_keywords(tmp_path):
    b = load_text(tmp_path, DEFAULTS + """\
        backend b
            server a1 10.0.0.1:8080 weight 10 maxconn 100 maxqueue 5 check inter 2s fastinter 500ms downinter 5s rise 3 fall 2 port 8081 addr 10.0.0.100 slowstart 30s agent-check agent-port 9999 agent-inter 5s observe layer7 error-limit 5 on-error mark-down on-marked-down shutdown-sessions on-marked-up shutdown-backup-sessions id 7 init-addr last,libc,none
            server a2 api.example.com backup disabled
            server a3 [::1]:80 ssl verify none sni str(example.com)
        """).config.proxy("b")
    a1, a2, a3 = b.servers
    assert (a1.host, a1.port, a1.weight, a1.maxconn, a1.maxqueue, a1.check) == ("10.0.0.1", 8080, 10, 100, 5, True)
    assert (a1.inter, a1.fastinter, a1.downinter, a1.rise, a1.fall) == (2.0, 0.5, 5.0, 3, 2)
    assert (a1.check_port, a1.check_addr, a1.slowstart) == (8081, "10.0.0.100", 30.0)
    assert (a1.agent_check, a1.agent_port, a1.agent_inter) == (True, 9999, 5.0)
    assert (a1.observe, a1.error_limit, a1.on_error) == ("layer7", 5, "mark-down")
    assert (a1.on_marked_down, a1.on_marked_up, a1.id, a1.init_addr) == (
        "shutdown-sessions", "shutdown-backup-sessions", 7, ("last", "libc", "none"))
    assert (a2.host, a2.port, a2.backup, a2.disabled, a2.check) == ("api.example.com", None, True, True, False)
    assert (a3.host, a3.port, a3.extra) == ("::1", 80, (("ssl", ""), ("verify", "none"), ("sni", "str(example.com)")))
    assert a1.location.line == 7


def test_tls_servers_need_a_ca_file_unless_verify_none(tmp_path):
    ca = tmp_path / "ca.pem"
    ca.write_text("placeholder: only its existence is checked at load time\n")
    assert messages(tmp_path, DEFAULTS + f"""\
        backend b
            server s1 10.0.0.1:443 ssl
            server s2 10.0.0.1:443 ssl verify none
            server s3 10.0.0.1:443 ssl verify required ca-file {ca}
            server s4 10.0.0.1:443 ssl no-ssl
        backend c
            default-server ssl verify none
            server s5 10.0.0.1:443
            server s6 10.0.0.1:443 verify required
        """) == [
        "7: server 's1' verifies its TLS certificate but has no 'ca-file': add 'ca-file FILE', or 'verify none' if the network is trusted",
        "14: server 's6' verifies its TLS certificate but has no 'ca-file': add 'ca-file FILE', or 'verify none' if the network is trusted",
    ]
    config = load_text(tmp_path, "global\n    ssl-server-verify none\n" + DEFAULTS + "backend b\n    server s 10.0.0.1:443 ssl\n").config
    assert config.proxy("b").servers[0].extra == (("ssl", ""),)


def test_ssl_bind_needs_a_certificate(tmp_path):
    assert messages(tmp_path, DEFAULTS + "frontend f\n    bind :443 ssl alpn h2\n") == [
        "7: bind ':443' has 'ssl' but no certificate: add 'crt FILE'"
    ]


def test_default_server_and_template(tmp_path):
    text = DEFAULTS + """\
    default-server inter 3s fall 2
backend b
    default-server check rise 4
    server s1 10.0.0.1:80 fall 9
    server-template web 3 10.0.0.9:80
    server-template t 5-6 10.0.0.8:81 no-check
"""
    b = load_text(tmp_path, text).config.proxy("b")
    assert [(s.name, s.host, s.port, s.inter, s.fall, s.rise, s.check) for s in b.servers] == [
        ("s1", "10.0.0.1", 80, 3.0, 9, 4, True),
        ("web1", "10.0.0.9", 80, 3.0, 2, 4, True), ("web2", "10.0.0.9", 80, 3.0, 2, 4, True),
        ("web3", "10.0.0.9", 80, 3.0, 2, 4, True),
        ("t5", "10.0.0.8", 81, 3.0, 2, 4, False), ("t6", "10.0.0.8", 81, 3.0, 2, 4, False),
    ]


def test_server_errors(tmp_path):
    assert messages(tmp_path, DEFAULTS + """\
        backend b
            server s1 10.0.0.1:80 weight 257
            server s2 10.0.0.1:70000
            server s3 10.0.0.1:80 inter 2x
            server s4 10.0.0.1:80 proxy-v2-options ssl
            server s5 10.0.0.1:80 bogus
            server s6 10.0.0.1:+1
            server s7 10.0.0.1:80 observe layer9
            server s7 10.0.0.1:81
            server s7 10.0.0.1:82
            server s8
            server s9 10.0.0.1:80 agent-check
        """) == [
        "7: weight '257' is out of range: expected between 0 and 256",
        "8: port of server 's2' '70000' is out of range: expected between 1 and 65535",
        "9: invalid inter '2x': expected a whole number with an optional unit among us, ms, s, m, h, d (a bare number is milliseconds), e.g. 5s or 2000",
        "10: server option 'proxy-v2-options' is not supported by haply",
        "11: unknown server option 'bogus'",
        "12: port offsets such as '+1' are not supported by haply; give a fixed port",
        "13: invalid observe mode 'layer9': expected layer4 or layer7",
        f"15: backend 'b' already has a server named 's7' (at {tmp_path}/haproxy.cfg:14); use distinct names",
        "16: 'server' expects a name and an address, as in 'server web1 10.0.0.12:80 check'",
        "17: server 's9' has agent-check but no agent-port: add 'agent-port N'",
    ]


# --------------------------------------------------------------- health checks


def test_httpchk_send_expect(tmp_path):
    b = load_text(tmp_path, DEFAULTS + """\
        backend b
            option httpchk GET /health HTTP/1.1
            http-check send hdr Host api.example.com body ping
            http-check expect ! rstatus ^5
        backend legacy
            option httpchk HEAD / "HTTP/1.1\\r\\nHost: www"
        backend short
            option httpchk /ping
        """).config
    assert b.proxy("b").check_kind == "http"
    assert b.proxy("b").http_check == HttpCheck(
        "GET", "/health", "HTTP/1.1", (("Host", "api.example.com"),), "ping", ("rstatus", "^5"), True)
    assert b.proxy("legacy").http_check == HttpCheck("HEAD", "/", "HTTP/1.1", (("Host", "www"),))
    assert b.proxy("short").http_check == HttpCheck("OPTIONS", "/ping")


def test_mysql_ssl_hello_and_tcp_check(tmp_path):
    config = load_text(tmp_path, DEFAULTS.replace("mode http", "mode tcp") + """\
        backend m
            option mysql-check user haproxy post-41
        backend s
            option ssl-hello-chk
        backend r
            option tcp-check
            tcp-check connect port 6379
            tcp-check send "PING\\r\\n"
            tcp-check expect string +PONG
            tcp-check send-binary 50494e47
            tcp-check expect ! rstring ^-ERR
            tcp-check expect binary 2b4f4b
        """).config
    m, s, r = config.proxies
    assert (m.check_kind, m.mysql_check_user, m.mysql_check_post41) == ("mysql", "haproxy", True)
    assert s.check_kind == "ssl-hello"
    assert r.check_kind == "tcp-check"
    assert [(st.action, st.port, st.data, st.match, st.pattern, st.negated) for st in r.tcp_check_steps] == [
        ("connect", 6379, "", "", "", False), ("send", None, "PING\r\n", "", "", False),
        ("expect", None, "", "string", "+PONG", False), ("send-binary", None, "50494e47", "", "", False),
        ("expect", None, "", "rstring", "^-ERR", True), ("expect", None, "", "binary", "2b4f4b", False),
    ]
    assert r.tcp_check_steps[0].location.line == 12


def test_service_check_options(tmp_path):
    config = load_text(tmp_path, DEFAULTS.replace("mode http", "mode tcp") + """\
        backend redis
            option redis-check
        backend smtp
            option smtpchk EHLO example.org
        backend smtp_default
            option smtpchk
        backend pgsql
            option pgsql-check user haproxy
        backend ldap
            option ldap-check
        """).config
    kinds = {p.name: p.check_kind for p in config.proxies}
    assert kinds == {"redis": "redis", "smtp": "smtp", "smtp_default": "smtp", "pgsql": "pgsql",
                     "ldap": "ldap"}
    assert config.proxy("smtp").smtp_check_hello == ("EHLO", "example.org")
    assert config.proxy("smtp_default").smtp_check_hello == ()
    assert config.proxy("pgsql").pgsql_check_user == "haproxy"


def test_service_check_option_errors(tmp_path):
    """Refused where HAProxy 2.6's `haproxy -c` refuses them, in its words."""
    cases = {
        "option redis-check x": "'option redis-check' cannot handle unexpected argument 'x'",
        "option ldap-check x": "'option ldap-check' cannot handle unexpected argument 'x'",
        "option smtpchk HELO a b": "'option smtpchk' cannot handle unexpected argument 'b'",
        "option pgsql-check": "'option pgsql-check' expects 'user <username>' as argument",
        "option pgsql-check user": "'option pgsql-check' expects 'user <username>' as argument",
        "option pgsql-check usr a": "'option pgsql-check' only supports optional values: 'user'",
        "option pgsql-check user a b": "'option pgsql-check' cannot handle unexpected argument 'b'",
    }
    for line, wanted in cases.items():
        found = messages(tmp_path, DEFAULTS + f"backend b\n    {line}\n    server s 127.0.0.1:1 check\n")
        assert any(wanted in m for m in found), (line, found)


# The check options, and the other options HAProxy 2.6 refuses to negate.
UNNEGATABLE = ["httpchk", "mysql-check", "redis-check", "smtpchk", "pgsql-check", "ldap-check",
               "tcp-check", "ssl-hello-chk", "external-check", "spop-check", "httplog",
               "httpslog", "tcplog", "forwardfor", "tcpka"]


@pytest.mark.parametrize("option", UNNEGATABLE)
def test_no_option_refused_in_defaults_and_in_a_backend(tmp_path, option):
    """`no option httpchk` is an error at its line, in HAProxy's words, in a
    defaults section as in a backend: it does not take back a check type
    inherited from defaults."""
    wanted = f"negation/default is not supported for option '{option}'"
    in_defaults = DEFAULTS + f"    option httpchk\n    no option {option}\n" \
        "backend b\n    server s 127.0.0.1:1 check\n"
    assert messages(tmp_path, in_defaults) == [f"7: {wanted}"]
    in_backend = DEFAULTS + "    option httpchk\n" \
        f"backend b\n    no option {option}\n    server s 127.0.0.1:1 check\n"
    assert messages(tmp_path, in_backend) == [f"8: {wanted}"]


def test_negatable_options_still_negate(tmp_path):
    config = load_text(tmp_path, DEFAULTS + "    option log-health-checks\n    option httpchk\n"
                       "backend b\n    no option log-health-checks\n"
                       "    server s 127.0.0.1:1 check\n").config
    b = config.proxy("b")
    assert "log-health-checks" not in b.options and b.check_kind == "http"


def test_track(tmp_path):
    config = load_text(tmp_path, DEFAULTS + """\
        backend a
            server s1 127.0.0.1:1 check
        backend b
            server s1 127.0.0.1:1 track a/s1
            server s2 127.0.0.1:1 track s1
        backend c
            default-server track b/s2
            server s1 127.0.0.1:1
        """).config
    assert [s.track for p in config.proxies for s in p.servers] == [None, "a/s1", "b/s1", "b/s2"]


def test_track_errors(tmp_path):
    """HAProxy 2.6's `haproxy -c` messages, on the tracking server's line."""
    head = DEFAULTS + "backend a\n    server s1 127.0.0.1:1 check\n    server plain 127.0.0.1:1\n"
    cases = {
        "server s1 127.0.0.1:1 track a/nope":
            "10: 'server b/s1' : unable to find required server 'nope' for tracking.",
        "server s1 127.0.0.1:1 track nope/s1":
            "10: 'server b/s1' : unable to find required proxy 'nope' for tracking.",
        "server s1 127.0.0.1:1 track a/plain":
            "10: 'server b/s1' : unable to use a/plain for tracking as it does not have any check nor agent enabled.",
        "server s1 127.0.0.1:1 check track a/s1":
            "10: 'server b/s1' : unable to enable checks and tracking at the same time!",
        "server s1 127.0.0.1:1 track s1":
            "10: 'server b/s1' : unable to track b/s1 as it belongs to a tracking chain looping back to b/s1.",
    }
    for line, wanted in cases.items():
        assert messages(tmp_path, head + f"backend b\n    {line}\n") == [wanted], line
    loop = head + "backend b\n    server s1 127.0.0.1:1 track c/s1\nbackend c\n    server s1 127.0.0.1:1 track b/s1\n"
    assert messages(tmp_path, loop) == [
        "12: 'server c/s1' : unable to track b/s1 as it belongs to a tracking chain looping back to b/s1."]


def test_tcp_check_steps_replace_inherited_ones(tmp_path):
    config = load_text(tmp_path, DEFAULTS.replace("mode http", "mode tcp\n    option tcp-check\n    tcp-check send a") + """\
        backend inherits
        backend own
            tcp-check send b
        """).config
    assert [s.data for s in config.proxy("inherits").tcp_check_steps] == ["a"]
    assert config.proxy("own").tcp_check_steps == (TcpCheckStep("send", data="b", location=config.proxy("own").tcp_check_steps[0].location),)


# ------------------------------------------------------------------------ stats


def test_stats_page(tmp_path):
    p = load_text(tmp_path, DEFAULTS + """\
        listen stats
            bind :8404
            stats uri /stats
            stats realm HAProxy\\ Statistics
            stats auth admin:openstack
            stats auth ops:se:cret
            stats refresh 10s
            stats hide-version
            stats show-node
            stats show-legends
            stats admin if LOCALHOST
        """).config.proxy("stats")
    s = p.stats
    assert (s.enabled, s.uri, s.realm, s.auth, s.refresh) == (
        True, "/stats", "HAProxy Statistics", (("admin", "openstack"), ("ops", "se:cret")), 10.0)
    assert (s.hide_version, s.show_node, s.show_legends) == (True, "", True)
    assert s.admin.any_of[0][0].acl.name == "LOCALHOST"
    assert p.default_backend == "stats"


def test_stats_enable_alone(tmp_path):
    s = load_text(tmp_path, DEFAULTS + "listen x\n    bind :1\n    stats enable\n").config.proxy("x").stats
    assert (s.enabled, s.uri) == (True, "/haproxy?stats")


# ------------------------------------------------------------------- defaults


def test_last_defaults_apply_to_following_proxies(tmp_path):
    config = load_text(tmp_path, """\
        defaults
            mode http
            timeout client 1s
        backend a
        defaults
            timeout client 2s
        backend b
        """).config
    a, b = config.proxies
    assert (a.mode, a.timeouts.client) == ("http", 1.0)
    assert (b.mode, b.timeouts.client) == ("tcp", 2.0)  # a new defaults section resets everything


def test_named_defaults_and_from(tmp_path):
    config = load_text(tmp_path, """\
        defaults web
            mode http
            timeout server 5s
        defaults tcp from web
            mode tcp
        defaults
            timeout server 9s
        backend a from web
        backend b from tcp
        backend c
        """).config
    a, b, c = config.proxies
    assert (a.mode, a.timeouts.server) == ("http", 5.0)
    assert (b.mode, b.timeouts.server) == ("tcp", 5.0)
    assert (c.mode, c.timeouts.server) == ("tcp", 9.0)


def test_defaults_carry_over_to_the_next_file(tmp_path):
    write(tmp_path, "defaults\n    mode http\n", "00-defaults.cfg")
    write(tmp_path, "global\n    maxconn 7\n", "05-global.cfg")
    write(tmp_path, "backend b\n", "10-b.cfg")
    write(tmp_path, "backend ignored\n", "not-a-config.txt")
    loaded = load([str(tmp_path)], {})
    assert [p.name for p in loaded.config.proxies] == ["b"]
    assert loaded.config.proxy("b").mode == "http"
    assert loaded.config.global_.maxconn == 7
    assert [Path(s).name for s in loaded.config.sources] == ["00-defaults.cfg", "05-global.cfg", "10-b.cfg"]


def test_references_across_files(tmp_path):
    first = write(tmp_path, DEFAULTS + "frontend f\n    bind :80\n    use_backend api if TRUE\n    default_backend web\n", "a.cfg")
    second = write(tmp_path, "backend api\nbackend web\n", "b.cfg")
    loaded = load([str(first), str(second)], {})
    assert [p.name for p in loaded.config.proxies] == ["f", "api", "web"]
    with pytest.raises(ConfigError) as error:
        load([str(first)], {})
    assert [str(d) for d in error.value.diagnostics if d.severity == "error"] == [
        f"{first}:8: error: use_backend 'api': no backend or listen section named 'api'",
        f"{first}:9: error: default_backend 'web': no backend or listen section named 'web'",
    ]


def test_unknown_defaults_name(tmp_path):
    assert messages(tmp_path, "backend b from nope\n") == ["1: no defaults section named 'nope' before this line"]


# ------------------------------------------------------------------ legacy forms


def test_legacy_forms_warn_and_work(tmp_path):
    loaded = load_text(tmp_path, """\
        defaults
            mode http
            contimeout 5000
            clitimeout 50000
            srvtimeout 50000
            redispatch
        listen stats 127.0.0.1:8080
            option forceclose
        """)
    p = loaded.config.proxy("stats")
    assert (p.timeouts.connect, p.timeouts.client, p.timeouts.server, p.redispatch) == (5.0, 50.0, 50.0, True)
    assert [(b.host, b.port) for b in p.binds] == [("127.0.0.1", 8080)]
    assert p.http_connection_mode == "close"
    assert warnings(loaded) == [
        "3: 'contimeout' is deprecated; write 'timeout connect' instead",
        "4: 'clitimeout' is deprecated; write 'timeout client' instead",
        "5: 'srvtimeout' is deprecated; write 'timeout server' instead",
        "6: 'redispatch' is deprecated; write 'option redispatch' instead",
        "7: 'listen stats 127.0.0.1:8080' is the old form, which HAProxy 2.6 rejects; write 'listen stats' followed by 'bind 127.0.0.1:8080'",
        "8: 'option forceclose' is deprecated; write 'option httpclose' instead",
    ]


def test_removed_keywords_name_the_replacement(tmp_path):
    assert messages(tmp_path, DEFAULTS + """\
        frontend f
            reqadd X-Foo:\\ bar
            rspdel ^Server:.*
            block if TRUE
        """) == [
        "7: 'reqadd' is not supported by haply; use 'http-request add-header' instead",
        "8: 'rspdel' is not supported by haply; use 'http-response del-header' instead",
        "9: 'block' is not supported by haply; use 'http-request deny' instead",
    ]


# ------------------------------------------------------------- keyword errors


def test_unknown_and_unsupported_keywords(tmp_path):
    assert messages(tmp_path, """\
        global
            maxconnn 10
            lua-load /x.lua
        defaults
            timeout conect 5s
            optoin httplog
            option httpclse
            stick-table type ip size 1m
        frontend f
            tcp-request connection expect-netscaler-cip layer4
            http-request silent-drop
            http-request lua.foo
            server s 1.2.3.4:80
        backend b
            default_backend x
        ring buf
            size 32764
        listen
        """) == [
        "2: unknown keyword 'maxconnn' in 'global' section; did you mean 'maxconn'?",
        "3: 'lua-load' is not supported by haply",
        "5: unknown keyword 'timeout conect' in 'defaults' section; did you mean 'timeout connect'?",
        "6: unknown keyword 'optoin' in 'defaults' section; did you mean 'option'?",
        "7: unknown keyword 'option httpclse' in 'defaults' section; did you mean 'option httpclose'?",
        "8: 'stick-table' is not allowed in a 'defaults' section (allowed in: frontend, listen, backend)",
        "10: 'tcp-request connection expect-netscaler-cip' is not supported by haply (accept, reject, "
        "track-sc0|1|2, sc-inc-gpc0|1, sc-set-gpt0 and, in tcp-request connection, expect-proxy layer4 are)",
        "11: 'http-request silent-drop' is not supported by haply",
        "12: 'http-request lua' is not supported by haply",
        "13: 'server' is not allowed in a 'frontend' section (allowed in: listen, backend, peers)",
        # (15: default_backend in a backend is ignored with a warning, as in HAProxy)
        "16: 'ring' sections are not supported by haply",
        "18: 'listen' needs a name",
    ]


def test_a_broken_section_header_skips_its_lines(tmp_path):
    assert messages(tmp_path, """\
        backend bad/name
            mode http
        listen
            mode tcp
        frontend f x y
            mode http
        backend b from nowhere
            mode http
        listen l 10.0.0.1
            mode http
        """) == [
        "1: invalid backend name 'bad/name': use letters, digits, '-', '_', '.' and ':'",
        "3: 'listen' needs a name",
        "5: unexpected 'x' after the frontend name: expected 'frontend NAME [from DEFAULTS]'",
        "7: no defaults section named 'nowhere' before this line",
        "9: missing port in bind address '10.0.0.1': expected ADDR:PORT such as 10.0.0.11:443 or *:80",
    ]


def test_keyword_outside_section_and_bad_values(tmp_path):
    assert messages(tmp_path, """\
        maxconn 10
        defaults
            mode ftp
            timeout client 10x
            retries many
            retry-on sometimes
            balance fastest
            hash-type magic
            maxconn
        """) == [
        "1: 'maxconn' outside of any section: a file starts with a section keyword (global, defaults, frontend, backend or listen)",
        "3: unknown mode 'ftp': expected tcp or http",
        "4: invalid timeout client '10x': expected a whole number with an optional unit among us, ms, s, m, h, d (a bare number is milliseconds), e.g. 5s or 2000",
        "5: invalid retries 'many': expected a whole number",
        "6: unknown retry-on event 'sometimes': expected one of 0rtt-rejected, 401, 403, 404, 408, 425, 500, 501, 502, 503, 504, all-retryable-errors, conn-failure, empty-response, junk-response, none, response-timeout",
        "7: unknown balance algorithm 'fastest': expected roundrobin, static-rr, leastconn, first, source, uri, url_param, hdr(NAME) or random",
        "8: 'hash-type' expects map-based or consistent",
        "9: 'maxconn' expects a number (got nothing)",
    ]


def test_lexer_errors_carry_file_and_line(tmp_path):
    path = write(tmp_path, 'global\n    pidfile "/run/x\n')
    with pytest.raises(ConfigError) as error:
        load([str(path)], {})
    assert str(error.value) == f"{path}:2: error: unterminated double quote starting at column 13"


def test_environment_is_expanded_in_quotes(tmp_path):
    g = load_text(tmp_path, 'global\n    pidfile "${RUN-/run}/haply.pid"\n    user "$WHO"\n', {"WHO": "haproxy"}).config.global_
    assert (g.pidfile, g.user) == ("/run/haply.pid", "haproxy")


def test_accounts_must_exist(tmp_path):
    """As in HAProxy, a user or group this machine does not know is an error
    when the file is read, not when privileges are dropped after binding."""
    assert messages(tmp_path, """\
        global
            user no-such-user
            group no-such-group
            stats socket /tmp/haply-test.sock mode 660 group no-such-group
        """) == ["2: cannot find user id for 'no-such-user'", "3: cannot find group id for 'no-such-group'",
                 "4: cannot find group id for 'no-such-group'"]


# ------------------------------------------------------------------- validation


def test_references_modes_and_names(tmp_path):
    assert messages(tmp_path, DEFAULTS + """\
        frontend f
            bind :80
            use_backend missing if TRUE
            default_backend tcpback
        backend tcpback
            mode tcp
        backend dup
        backend dup
        frontend dup
            bind :81
            default_backend web
        """) == [
        "8: use_backend 'missing': no backend or listen section named 'missing'",
        "9: frontend 'f' is in mode http but its backend 'tcpback' is in mode tcp; set 'mode http' on the backend (or 'mode tcp' on the frontend)",
        f"13: backend 'dup' has the same name as the backend at {tmp_path}/haproxy.cfg:12; proxies with backend capability need distinct names",
        "16: default_backend 'web': no backend or listen section named 'web'",
    ]


def test_did_you_mean_for_backends(tmp_path):
    assert messages(tmp_path, DEFAULTS + "frontend f\n    bind :80\n    default_backend webb\nbackend web\n") == [
        "8: default_backend 'webb': no backend or listen section named 'webb'; did you mean 'web'?"
    ]


def test_frontend_and_backend_may_share_a_name(tmp_path):
    config = load_text(tmp_path, DEFAULTS + "frontend app\n    bind :80\n    default_backend app\nbackend app\n").config
    assert [p.kind for p in config.proxies] == ["frontend", "backend"]


def test_listen_default_backend_is_itself(tmp_path):
    p = load_text(tmp_path, DEFAULTS + "listen l\n    bind :80\n    server s 127.0.0.1:81\n").config.proxy("l")
    assert (p.default_backend, p.is_frontend, p.is_backend) == ("l", True, True)


def test_missing_timeouts_warn(tmp_path):
    loaded = load_text(tmp_path, "defaults\n    timeout client 5s\nfrontend f\n    bind :80\n    default_backend b\nbackend b\n")
    assert warnings(loaded) == [
        "6: missing timeouts for backend 'b': set 'timeout connect', 'timeout server' (here or in defaults) "
        "so that stuck connections are closed",
    ]


def test_http_settings_fall_back_in_tcp_mode(tmp_path):
    loaded = load_text(tmp_path, DEFAULTS.replace("mode http", "mode tcp") + """\
        listen l
            bind :1
            option httplog
            balance hdr(host)
            http-request set-header X y
            stats enable
            monitor-uri /up
        """)
    l = loaded.config.proxy("l")
    assert (l.log_format, l.balance, l.balance_arg) == ("tcplog", "roundrobin", None)
    assert warnings(loaded) == [
        "6: 'option httplog' needs 'mode http' in 'l': falling back to 'option tcplog'",
        "6: 'balance hdr' needs 'mode http' in 'l': falling back to roundrobin",
        "6: log format ignored for proxy 'l' since it has no log address",
        "6: monitor-uri of 'l' has no effect in mode tcp",
        "10: HTTP rule in 'l' has no effect in mode tcp",
        "11: the statistics page of 'l' needs 'mode http'",
    ]


def test_all_errors_are_collected(tmp_path):
    assert len(messages(tmp_path, "global\n  bogus1\n  bogus2\ndefaults\n  bogus3\n")) == 3


# ------------------------------------------------------------------ the loader


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError) as error:
        load([str(tmp_path / "nope.cfg")], {})
    assert "nope.cfg:0: error: cannot read configuration file: No such file or directory" in str(error.value)


def test_environment_defaults_to_the_process(tmp_path, monkeypatch):
    monkeypatch.setenv("HAPLY_TEST_PIDFILE", "/run/from-env.pid")
    path = write(tmp_path, 'global\n    pidfile "${HAPLY_TEST_PIDFILE}"\n')
    assert load([str(path)]).config.global_.pidfile == "/run/from-env.pid"


def test_empty_directory(tmp_path):
    with pytest.raises(ConfigError) as error:
        load([str(tmp_path)], {})
    assert str(error.value) == f"{tmp_path}:0: error: directory has no *.cfg file"


def test_dialect_detection():
    names = {
        ("/etc/keepalived/keepalived.conf", ""): "keepalived",
        ("dair.pound.cfg", ""): "pound",
        ("/etc/monit/monitrc", ""): "monit",
        ("x.conf", "vrrp_instance VI_1 {\n"): "keepalived",
        ("x.conf", "! Configuration File for keepalived\n\nglobal_defs {\n"): "keepalived",
        ("x.cfg", "# c\nListenHTTP\n"): "pound",
        ("x.cfg", "check process x\n"): "monit",
        ("x.cfg", "global\n"): "haproxy",
        ("haproxy.cfg", ""): "haproxy",
        # the content wins over a misleading name when it is unambiguous
        ("monit.cfg", "program api\n    command x\n"): "haproxy",
        ("/etc/haproxy/monitoring.cfg", "global\n"): "haproxy",
        ("keepalived-pound.cfg", "frontend fe\n"): "haproxy",
        # `include` starts both keepalived and monit files: the name decides
        ("/etc/monit/monitrc", "include /etc/monit/conf.d/*\n"): "monit",
        ("/etc/keepalived/keepalived.conf", "include /etc/keepalived/*.conf\n"): "keepalived",
    }
    for (path, text), dialect in names.items():
        assert detect(path, text).name == dialect, path


def test_dialect_without_parser_is_an_error(tmp_path, monkeypatch):
    row = Dialect("example", ("example-dialect",), (), "haply.config.no_such_dialect_module")
    monkeypatch.setattr(config_package, "DIALECTS", (row, *config_package.DIALECTS))
    path = write(tmp_path, "anything\n", "my.example-dialect.conf")
    with pytest.raises(ConfigError) as error:
        load([str(path)], {})
    assert "file is in example syntax, whose parser is not available in this haply yet" in str(error.value)


def test_dialect_table_plugs_in_a_parser(tmp_path, monkeypatch):
    from haply.config.model import Config

    def parse(text, filename, environ, diagnostics):
        return Config(sources=(filename,), programs=(text.strip(),))

    import types, sys
    module = types.ModuleType("haply_test_dialect")
    module.parse = parse
    monkeypatch.setitem(sys.modules, "haply_test_dialect", module)
    row = Dialect("toy", ("toy",), (), "haply_test_dialect")
    monkeypatch.setattr(config_package, "DIALECTS", (row, *config_package.DIALECTS))
    write(tmp_path, "hello\n", "a.toy")
    write(tmp_path, DEFAULTS + "backend b\n", "b.cfg")
    loaded = load([str(tmp_path / "a.toy"), str(tmp_path / "b.cfg")], {})
    assert loaded.config.programs == ("hello",)
    assert [p.name for p in loaded.config.proxies] == ["b"]


# --------------------------------------------------------------- keyword table


def test_every_keyword_has_a_handler_and_back():
    accepted = {name for name, row in KEYWORDS.items() if row.status == SUPPORTED}
    from haply.config.programs import HANDLERS as PROGRAM_HANDLERS
    from haply.config.userlists import HANDLERS as USERLIST_HANDLERS
    from haply.config.peers import HANDLERS as PEERS_HANDLERS
    from haply.config.http_errors import HANDLERS as HTTP_ERRORS_HANDLERS
    from haply.config.mailers import HANDLERS as MAILERS_HANDLERS
    from haply.config.caches import HANDLERS as CACHE_HANDLERS
    from haply.config.resolvers import HANDLERS as RESOLVERS_HANDLERS
    assert accepted - PREPROCESSOR == (set(HANDLERS) | set(PROGRAM_HANDLERS) | set(USERLIST_HANDLERS)
                                       | set(PEERS_HANDLERS) | set(HTTP_ERRORS_HANDLERS)
                                       | set(MAILERS_HANDLERS) | set(CACHE_HANDLERS)
                                       | set(RESOLVERS_HANDLERS))
    assert PREPROCESSOR <= accepted
    for row in KEYWORDS.values():
        if row.status == LEGACY:
            assert KEYWORDS[row.modern].status == SUPPORTED, row.name
        assert row.sections and set(row.sections) <= set("gdflbpuehmcr"), row.name
        assert row.description, row.name
    assert any(row.status == UNSUPPORTED for row in KEYWORDS.values())


# ------------------------------------------------------------------- robustness

from hypothesis import HealthCheck, given, settings, strategies as st  # noqa: E402

_WORDS = st.one_of(
    st.sampled_from(sorted({w for name in KEYWORDS for w in name.split()})),
    st.sampled_from(["if", "unless", "{", "}", "!", "||", "or", "-i", "-m", "beg", "TRUE", "x", "b",
                     "10s", "80", ":80", "*:8080", "127.0.0.1:81", "[::1]:80", "fd@3", "1-3", "check", "weight",
                     "ssl", "path_beg", "/a", "hdr(host)", '"a b"', "'c d'", "\\x41", "${X}", '"${X-1}"']),
    st.text(alphabet="abc:/.-_0123456789 \"'\\{}$#", max_size=8),
)
_LINE = st.lists(_WORDS, min_size=1, max_size=6).map(" ".join)
_SECTION = st.tuples(
    st.sampled_from(["global", "defaults", "frontend f", "backend b", "listen l", "defaults d", "backend c from d",
                     "backend bad/name", "listen", "frontend f x y", "backend e from nowhere", "listen m 1.2.3.4",
                     "listen n :80"]),
    st.lists(_LINE, max_size=6),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(_SECTION, min_size=1, max_size=4))
def test_any_file_loads_or_fails_with_config_error(tmp_path, sections):
    text = "".join(f"{head}\n" + "".join(f"    {line}\n" for line in lines) for head, lines in sections)
    path = tmp_path / "fuzz.cfg"
    path.write_text(text)
    try:
        loaded = load([str(path)], {"X": "1"})
    except ConfigError as error:
        errors = [d for d in error.diagnostics if d.severity == "error"]
        assert errors
        assert all(d.location.file == str(path) and d.location.line >= 1 for d in errors)
        assert all("internal error" not in d.message for d in errors)
    else:
        assert loaded.config.sources == (str(path),)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.integers(1, 65535), st.integers(0, 20), st.sampled_from(["", "*", "10.1.2.3", "::"]))
def test_port_ranges_expand(tmp_path, low, extra, host):
    high = min(low + extra, 65535)
    f = load_text(tmp_path, DEFAULTS + f"frontend f\n    bind {host}:{low}-{high}\n").config.proxy("f")
    assert [(b.host, b.port) for b in f.binds] == [(host, port) for port in range(low, high + 1)]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.integers(0, 10**6), st.sampled_from(["", "us", "ms", "s", "m", "h", "d"]), st.integers(0, 256))
def test_server_values_reach_the_model(tmp_path, value, unit, weight):
    scale = {"": 1e-3, "us": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600, "d": 86400}[unit]
    text = DEFAULTS + f"backend b\n    timeout check {value}{unit}\n    server s 10.0.0.1:80 weight {weight} slowstart {value}{unit}\n"
    b = load_text(tmp_path, text).config.proxy("b")
    assert b.timeouts.check == pytest.approx(value * scale)
    assert (b.servers[0].weight, b.servers[0].slowstart) == (weight, pytest.approx(value * scale))


def test_every_accepted_keyword_is_exercised_by_a_test():
    """A keyword added to the table without a test fails here."""
    here = Path(__file__).parent
    source = "".join((here / name).read_text() for name in ("test_haproxy_config.py", "test_seed_configs.py", "test_lexer.py",
                                                                    "test_programs_config.py", "test_server_state.py",
                                                                    "test_resolvers_config.py"))
    source += "".join(p.read_text() for p in (here.parents[1] / ".." / "shared" / "fixtures" / "seed-configs").glob("*.haproxy.cfg"))
    untested = [
        name for name, row in KEYWORDS.items()
        if row.status != UNSUPPORTED and not re.search(r"(^|[\s\"']|\\n)" + re.escape(name) + r"(\s|\\n|$|\"|\()", source, re.M)
    ]
    assert untested == []


# -------------------------------------------------------------- cookie persistence


def test_cookie_persistence(tmp_path):
    loaded = load_text(tmp_path, DEFAULTS + """\
        backend horizon
            cookie SERVERID insert indirect nocache httponly secure domain .example.org attr SameSite=Lax
            server controller-0 192.0.2.10:80 check cookie controller-0
            server controller-1 192.0.2.11:80 check cookie controller-1
        backend passive
            cookie JSESSIONID
            server a 192.0.2.10:80 cookie a
        """)
    horizon = loaded.config.proxy("horizon")
    cookie = horizon.cookie
    assert (cookie.name, cookie.mode, cookie.indirect, cookie.nocache, cookie.httponly,
            cookie.secure, cookie.postonly, cookie.preserve) == (
        "SERVERID", "insert", True, True, True, True, False, False)
    assert cookie.domains == (".example.org",) and cookie.attrs == ("SameSite=Lax",)
    assert [s.cookie for s in horizon.servers] == ["controller-0", "controller-1"]
    assert loaded.config.proxy("passive").cookie.mode == "passive"
    assert not loaded.diagnostics.warnings


@pytest.mark.parametrize("line, message", [
    ("cookie SRV insert rewrite", "'insert' and 'rewrite' cannot be combined"),
    ("cookie SRV rewrite indirect", "'indirect' cannot be used with 'rewrite'"),
    ("cookie SRV preserve", "'preserve' needs 'insert' or 'indirect'"),
    ("cookie SRV prefix nocache", "'nocache' only applies to 'insert'"),
    ("cookie SRV rewrite domain .x.org", "'domain' and 'attr' only apply to 'insert'"),
    ("cookie SRV insert maxidle 30m", "cookie option 'maxidle' is not supported by haply"),
    ("cookie SRV insert dynamic", "cookie option 'dynamic' is not supported by haply"),
    ("cookie SRV insert sticky", "unknown cookie option 'sticky'"),
    ("cookie SRV insert domain", "'domain' needs a value"),
    ("cookie SRV insert attr a;b", "may not contain ';'"),
    ("cookie S=V insert", "is not a valid cookie name"),
    ("cookie", "'cookie' expects a cookie name"),
])
def test_cookie_errors(tmp_path, line, message):
    found = messages(tmp_path, DEFAULTS + f"backend b\n    {line}\n    server s 192.0.2.1:80 cookie s\n")
    assert any(message in m and m.startswith("7:") for m in found), found


def test_cookie_warnings_and_server_option_errors(tmp_path):
    loaded = load_text(tmp_path, DEFAULTS + """\
        backend nocookies
            cookie SRV insert
            server s 192.0.2.1:80
        backend tcp
            mode tcp
            cookie SRV insert
            server s 192.0.2.1:80 cookie s
        """)
    found = warnings(loaded)
    assert any("no server has a 'cookie' value" in w for w in found), found
    assert any("has no effect in mode tcp" in w and w.startswith("11:") for w in found), found
    assert any("each server needs its own value" in m for m in messages(
        tmp_path, DEFAULTS + "backend b\n    default-server cookie x\n    server s 192.0.2.1:80\n"))
    # a backend's keyword in a frontend: ignored with a warning, as HAProxy does
    assert warnings(load_text(tmp_path, DEFAULTS + "frontend f\n    bind :80\n    cookie SRV insert\n")
                    ) == ["8: 'cookie' is ignored: frontend 'f' has no backend capability "
                          "(HAProxy ignores it too)"]


# --------------------------------------------------------------- stick tables


def test_stick_table_and_rules(tmp_path):
    loaded = load_text(tmp_path, DEFAULTS + """\
        listen mysql
            bind 192.0.2.5:3306
            mode tcp
            stick on dst
            stick-table type ip size 1k expire 30m
            server c0 192.0.2.13:3306 backup check port 9200
        backend web
            stick-table type string len 16 size 10 nopurge
            stick match req.cook(SESSION) table web
            stick store-request req.hdr(X-User) if { src 10.0.0.0/8 }
            server s 192.0.2.1:80
        backend per_url
            stick-table type binary len 20 size 10
            stick on base32+src
            server s 192.0.2.1:80
        backend by_hash
            stick-table type integer size 10
            stick on url32
            server s 192.0.2.1:80
        """)
    mysql, web = loaded.config.proxy("mysql"), loaded.config.proxy("web")
    per_url, by_hash = loaded.config.proxy("per_url"), loaded.config.proxy("by_hash")
    assert (per_url.stick_table.kind, per_url.stick_table.length) == ("binary", 20)
    assert [r.pattern for r in per_url.stick_rules + by_hash.stick_rules] == ["base32+src", "url32"]
    table = mysql.stick_table
    assert (table.name, table.kind, table.size, table.expire, table.nopurge) == ("mysql", "ip", 1024, 1800.0, False)
    assert [(r.kind, r.pattern) for r in mysql.stick_rules] == [("on", "dst")]
    assert (web.stick_table.kind, web.stick_table.length, web.stick_table.nopurge) == ("string", 16, True)
    assert [(r.kind, r.pattern, r.condition is not None) for r in web.stick_rules] == [
        ("match", "req.cook(SESSION)", False), ("store-request", "req.hdr(X-User)", True)]
    assert not loaded.diagnostics.warnings


@pytest.mark.parametrize("lines, message", [
    ("stick-table type ip", "needs 'type' and 'size'"),
    ("stick-table type binary len 0 size 10", "stick-table len"),
    ("stick-table type ip size 10 peers mypeers", "no peers section named 'mypeers'"),
    ("stick-table type ip size 10 peers p", "no peers section named 'p'"),
    ("stick-table type ip size 10 srvkey addr", "option 'srvkey' is not supported by haply"),
    ("stick-table type ip len 4 size 10", "'len' only applies to types string and binary"),
    ("stick-table type ip size 10 expire 30d", "at most 24 days"),
    ("stick-table type mac size 10", "expected ip, ipv6, integer, string or binary"),
    ("stick on src", "need a 'stick-table' in the same section"),
    ("stick-table type ip size 10\n    stick store-response src", "'stick store-response' is not supported"),
    ("stick-table type ip size 10\n    stick on url_param(x)", "stick pattern 'url_param(x)' is not supported"),
    ("stick-table type ip size 10\n    stick on src table other", "another proxy's table ('other')"),
    ("stick-table type ip size 10\n    stick on req.hdr(x)", "does not fit the ip table"),
    ("stick-table type integer size 10\n    stick on src", "does not fit the integer table"),
    ("stick-table type integer size 10\n    stick on base", "does not fit the integer table"),
    ("stick-table type ip size 10\n    stick on base32", "does not fit the ip table"),
    ("stick-table type ip size 10\n    stick", "expects on, match or store-request"),
])
def test_stick_errors(tmp_path, lines, message):
    found = messages(tmp_path, DEFAULTS + f"backend b\n    {lines}\n    server s 192.0.2.1:80\n")
    assert any(message in m for m in found), found


def test_stick_warnings(tmp_path):
    loaded = load_text(tmp_path, "global\n    nbthread 2\n" + DEFAULTS + """\
        backend b
            stick-table type ip size 10
            stick on src
            server s 192.0.2.1:80
        backend unused
            stick-table type ip size 10
            server s 192.0.2.1:80
        """)
    found = warnings(loaded)
    assert any("kept by each of the 2 worker processes" in w for w in found), found
    assert any("'unused' is not used by any stick rule, track-sc rule" in w for w in found), found
    assert not any("'b' is not used" in w for w in found), found
    assert any("reads the HTTP request" in m for m in messages(tmp_path, DEFAULTS + (
        "backend t\n    mode tcp\n    stick-table type string size 10\n    stick on req.hdr(x)\n"
        "    server s 192.0.2.1:80\n")))


def test_http_request_redirect(tmp_path):
    loaded = load_text(tmp_path, DEFAULTS + """\
        frontend f
            bind :80
            http-request set-header Host example.org
            http-request redirect scheme https code 301 unless { ssl_fc }
            http-request deny if { path_beg /admin }
            redirect prefix /v2 if { path_beg /old }
            default_backend b
        backend b
            server s 10.0.0.1:80
        """)
    f = loaded.config.proxy("f")
    assert [r.action for r in f.http_request_rules] == ["set-header", "redirect", "deny"]
    redirect = f.http_request_rules[1]
    assert (redirect.kind, redirect.target, redirect.code) == ("scheme", "https", 301)
    assert [r.target for r in f.redirects] == ["/v2"]
    assert warnings(loaded) == [
        "9: http-request redirect reads header 'host', which an http-request rule above it "
        "edits: haply reads the field as the client sent it (HAProxy, as edited)"]
    assert any("log-format values" in m for m in messages(tmp_path, DEFAULTS + (
        "frontend f\n    bind :80\n    http-request redirect location https://%[hdr(host)]/x\n")))
    assert any("'http-request redirect' expects scheme|location|prefix" in m for m in messages(
        tmp_path, DEFAULTS + "frontend f\n    bind :80\n    http-request redirect to /x\n"))


def test_captures(tmp_path):
    loaded = load_text(tmp_path, DEFAULTS + """\
        frontend f
            bind :80
            option httplog
            capture request header Host len 32
            capture response header Content-Type len 20
            capture cookie JSESSIONID= len 40
            default_backend b
        backend b
            server s 10.0.0.1:80
        """)
    assert [(c.kind, c.name, c.length) for c in loaded.config.proxy("f").captures] == [
        ("request", "Host", 32), ("response", "Content-Type", 20), ("cookie", "JSESSIONID=", 40)]
    for line, message in [
        ("capture request Host len 3", "expects 'request header', 'response header' or 'cookie'"),
        ("capture request header Host", "expects a name and 'len N'"),
        ("capture cookie SRV len 64", "expected between 1 and 63"),
        ("capture cookie A len 5\n    capture cookie B len 5", "only one 'capture cookie'"),
    ]:
        found = messages(tmp_path, DEFAULTS + f"frontend f\n    bind :80\n    {line}\n")
        assert any(message in m for m in found), (line, found)
    assert warnings(load_text(tmp_path, DEFAULTS + "backend b\n    capture request header Host len 3\n"
                              "    server s 10.0.0.1:80\n")) == [
        "7: 'capture' is ignored: backend 'b' has no frontend capability (HAProxy ignores it too)"]


def test_http_reuse(tmp_path):
    loaded = load_text(tmp_path, DEFAULTS.replace("defaults\n", "defaults\n    http-reuse safe\n") + """\
        backend b
            server s 10.0.0.1:80
        backend n
            http-reuse never
            server s 10.0.0.1:80
        """)
    assert loaded.config.proxy("b").http_reuse == "safe"
    assert loaded.config.proxy("n").http_reuse == "never"
    assert any("expected never, safe, aggressive or always" in m for m in messages(
        tmp_path, DEFAULTS + "backend b\n    http-reuse sometimes\n"))


def test_compression(tmp_path):
    """Lists in HAProxy 2.6's order (each word to the front, after what was
    inherited), offload not inherited and refused in defaults with a warning,
    as HAProxy warns and ignores it."""
    loaded = load_text(tmp_path, DEFAULTS + """\
            compression algo gzip
            compression type text/html
            compression offload
        frontend f
            bind :80
            compression algo deflate raw-deflate
            compression type text/plain application/json
            default_backend b
        backend b
            compression offload
            server s 10.0.0.1:80
        listen l
            bind :81
            compression algo identity
            compression offload extra
            server s 10.0.0.1:80
        listen t
            mode tcp
            bind :82
            server s 10.0.0.1:80
        """)
    f, b, l, t = (loaded.config.proxy(name).compression for name in "fblt")
    assert (f.algorithms, f.types, f.offload) == (
        ("raw-deflate", "deflate", "gzip"), ("application/json", "text/plain", "text/html"), False)
    assert (b.algorithms, b.types, b.offload) == (("gzip",), ("text/html",), True)
    assert (l.algorithms, l.offload) == (("identity", "gzip"), True)
    assert (t.algorithms, t.location.line) == (("gzip",), 0)  # inherited: no warning for it
    assert f.location.line == 11 and b.location.line == 15
    assert warnings(loaded) == [
        "8: 'compression offload' is ignored in a defaults section (as HAProxy ignores it): "
        "set it in the frontend, listen or backend",
        "20: 'compression offload' takes no argument; 'extra' is ignored (as HAProxy ignores it)"]
    assert loaded.config.proxy("f").compression is not None
    assert load_text(tmp_path, DEFAULTS + "backend b\n    server s 10.0.0.1:80\n"
                     ).config.proxy("b").compression is None
    tcp = load_text(tmp_path, DEFAULTS + "listen t\n    mode tcp\n    bind :80\n"
                    "    compression algo gzip\n    server s 10.0.0.1:80\n")
    assert warnings(tcp) == ["9: compression in 't' has no effect in mode tcp"]
    for line, message in [
        ("compression algo br", "'compression algo': 'br' is not a supported algorithm "
                                "(expected identity, gzip, deflate, raw-deflate)"),
        ("compression algo", "'compression algo' expects one or more algorithms"),
        ("compression type", "'compression type' expects one or more MIME types"),
        ("compression", "'compression' expects one of: algo, offload, type"),
        ("compression gzip", "unknown keyword 'compression gzip'"),
    ]:
        found = messages(tmp_path, DEFAULTS + f"listen l\n    bind :80\n    {line}\n")
        assert any(message in m for m in found), (line, found)
    # the global settings: the level is accepted (Debian's HAProxy compresses at
    # one level whatever it says), the limits are refused
    loaded = load_text(tmp_path, "global\n    tune.comp.maxlevel 9\n" + DEFAULTS)
    assert ("tune.comp.maxlevel", ("9",)) in loaded.config.global_.extra
    assert messages(tmp_path, "global\n    tune.comp.maxlevel 0\n    maxzlibmem 10\n"
                    "    maxcomprate 100\n    maxcompcpuusage 50\n") == [
        "2: tune.comp.maxlevel '0' is out of range: expected between 1 and 9",
        "3: 'maxzlibmem' is not supported by haply",
        "4: 'maxcomprate' is not supported by haply",
        "5: 'maxcompcpuusage' is not supported by haply"]


def test_http_request_return(tmp_path):
    loaded = load_text(tmp_path, DEFAULTS + """\
        frontend f
            bind :80
            http-request return if { path /healthz }
            http-request return status 204 if { path /204 }
            http-request return status 503 default-errorfiles if { path /maint }
            http-request return content-type text/plain string ok hdr X-A b if { path /ok }
            default_backend b
        backend b
            server s 10.0.0.1:80
        """)
    rules = loaded.config.proxy("f").http_request_rules
    assert [(r.action, r.status) for r in rules] == [("return", 200), ("return", 204),
                                                      ("return", 503), ("return", 200)]
    assert rules[0].response == b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"
    assert rules[1].response == b"HTTP/1.1 204 No Content\r\n\r\n"
    assert rules[2].response is None  # the proxy's page for 503
    assert rules[3].response.endswith(b"content-type: text/plain\r\n\r\nok")
    assert any("status 418 has no error page" in m for m in messages(tmp_path, DEFAULTS + (
        "frontend f\n    bind :80\n    http-request return status 418 default-errorfiles\n")))


@pytest.mark.parametrize("option", ["forwardfor", "originalto"])
def test_header_options_in_mode_tcp_are_warned_about(tmp_path, option):
    loaded = load_text(tmp_path, DEFAULTS.replace("mode http", "mode tcp") + f"""\
        listen mysql
            bind :3306
            option {option}
            server s 10.0.0.1:3306
        """)
    assert any(f"'option {option}' in 'mysql' has no effect in mode tcp" in w
               for w in warnings(loaded)), warnings(loaded)


def test_logging_options_for_problems_only(tmp_path):
    loaded = load_text(tmp_path, DEFAULTS + """\
        frontend f
            bind :80
            option httplog
            option dontlog-normal
            option log-separate-errors
            default_backend b
        backend b
            server s 10.0.0.1:80
        """)
    assert {"dontlog-normal", "log-separate-errors"} <= loaded.config.proxy("f").options


def test_tcp_request_rules(tmp_path):
    loaded = load_text(tmp_path, DEFAULTS + """\
        frontend f
            bind :80
            tcp-request inspect-delay 5s
            tcp-request connection reject unless { src 10.0.0.0/8 }
            tcp-request session accept if { dst_port 80 }
            tcp-request content reject if { dst 192.0.2.1 }
            default_backend b
        backend b
            server s 10.0.0.1:80
        """)
    f = loaded.config.proxy("f")
    assert f.inspect_delay == 5.0
    assert [(r.stage, r.action, r.condition.unless) for r in f.tcp_request_rules] == [
        ("connection", "reject", True), ("session", "accept", False), ("content", "reject", False)]
    for line, message in [
        ("tcp-request connection set-mark 1", "'tcp-request connection set-mark' is not supported"),
        ("tcp-request content reject if { path_beg /x }", "reads 'path_beg', which only exists in mode http"),
        ("tcp-request inspect-delay", "expects a time"),
        ("tcp-request whenever reject", "expects connection, session, content or inspect-delay"),
        ("tcp-request connection reject now", "unexpected 'now'"),
    ]:
        found = messages(tmp_path, DEFAULTS + f"frontend f\n    bind :80\n    {line}\n")
        assert any(message in m for m in found), (line, found)
    # a backend has content rules of its own, but no connection or session stage
    loaded = load_text(tmp_path, DEFAULTS + "backend b\n    tcp-request content reject if { src 10.0.0.0/8 }\n"
                       "    server s 127.0.0.1:81\n")
    assert [r.stage for r in loaded.config.proxy("b").tcp_request_rules] == ["content"]
    assert messages(tmp_path, DEFAULTS + "backend b\n    tcp-request connection reject\n"
                    "    mode tcp\n    tcp-request content reject if { path /x }\n") == [
        "7: 'tcp-request connection' is not allowed in a backend, which has no frontend capability "
        "(HAProxy refuses it too): put the rule in the frontend",
        "9: tcp-request content condition reads 'path', which only exists in mode http: on a "
        "connection use src, dst or dst_port"]


def test_proxy_protocol_on_bind_lines_and_rules(tmp_path):
    loaded = load_text(tmp_path, DEFAULTS + """\
        frontend f
            bind :80 accept-proxy
            bind :81
            tcp-request connection expect-proxy layer4 if { src 10.0.0.0/8 }
            default_backend b
        backend b
            server s 10.0.0.1:80
        """)
    f = loaded.config.proxy("f")
    assert [dict(b.options) for b in f.binds] == [{"accept-proxy": ""}, {}]
    assert [(r.stage, r.action) for r in f.tcp_request_rules] == [("connection", "expect-proxy")]
    for line, message in [
        ("tcp-request connection expect-proxy", "'tcp-request connection expect-proxy' expects 'layer4'"),
        ("tcp-request connection expect-proxy layer7", "expects 'layer4' (then if|unless CONDITION), "
                                                       "not 'layer7'"),
        ("tcp-request session expect-proxy layer4", "'tcp-request session expect-proxy' is only valid "
                                                    "in 'tcp-request connection'"),
        ("tcp-request connection expect-proxy layer4 if { path /x }", "reads 'path'"),
    ]:
        found = messages(tmp_path, DEFAULTS + f"frontend f\n    bind :80\n    {line}\n")
        assert any(message in m for m in found), (line, found)
    assert messages(tmp_path, "global\n    stats socket 127.0.0.1:9999 accept-proxy\n") == [
        "2: 'stats socket' option 'accept-proxy' is not supported by haply: the runtime API reads its "
        "commands from the first byte"]


# ------------------------------------------------------------------ buffer sizes


def test_tune_buffer_sizes(tmp_path):
    assert load_text(tmp_path, DEFAULTS).config.global_.bufsize == 16384
    settings = load_text(tmp_path, """\
        global
            tune.bufsize 65536
            tune.maxrewrite 2048
            tune.http.maxhdr 200
        """ + DEFAULTS).config.global_
    assert (settings.bufsize, settings.maxrewrite, settings.http_maxhdr) == (65536, 2048, 200)
    assert messages(tmp_path, """\
        global
            tune.bufsize 100
            tune.bufsize 256m
            tune.http.maxhdr 0
            tune.http.maxhdr 32768
            tune.maxrewrite lots
        """) == [
        "2: tune.bufsize 100: expected 1024 to 268435455 bytes",
        "3: tune.bufsize 256m: expected 1024 to 268435455 bytes",
        "4: tune.http.maxhdr '0' is out of range: expected between 1 and 32767",
        "5: tune.http.maxhdr '32768' is out of range: expected between 1 and 32767",
        "6: invalid tune.maxrewrite 'lots': expected a whole number of bytes with an optional unit among k, m, g, e.g. 16k",
    ]


def test_files_may_fill_the_configured_buffer(tmp_path):
    """An errorfile or a `return file` body must fit the head budget of the
    buffer the global section configures (bufsize - maxrewrite)."""
    page = tmp_path / "503.http"
    page.write_bytes(b"HTTP/1.0 503 Service Unavailable\r\n\r\n" + b"x" * 20000)
    body = tmp_path / "body.txt"
    body.write_bytes(b"y" * 20000)
    proxy = f"""\
        backend b
            errorfile 503 {page}
            http-request return status 200 content-type text/plain file {body}
        """
    assert messages(tmp_path, DEFAULTS + proxy) == [
        f"7: errorfile '{page}' is larger than 15360 bytes (tune.bufsize - tune.maxrewrite)",
        f"8: 'http-request return': file '{body}' is larger than 15360 bytes (tune.bufsize - tune.maxrewrite)",
    ]
    b = load_text(tmp_path, "global\n    tune.bufsize 32768\n" + DEFAULTS + proxy).config.proxy("b")
    assert b.errorfiles == ((503, page.read_bytes()),)


# -------------------------------------------------------------------- userlists


def test_userlists_and_http_auth(tmp_path):
    loaded = load_text(tmp_path, DEFAULTS + """\
        userlist operators
            group admins users alice
            group readers
            user alice insecure-password wonder
            user bob password $6$salt$hash groups readers,admins
            user nobody
        frontend api
            acl known http_auth(operators)
            acl admin http_auth_group(operators) admins
            http-request auth realm OpenStack\\ API unless known
            http-request auth if !admin { path_beg /admin }
            default_backend b
        backend b
            server s 127.0.0.1:80
        """)
    (userlist,) = loaded.config.userlists
    assert [(u.name, u.password, u.insecure, u.groups) for u in userlist.users] == [
        ("alice", "wonder", True, ()), ("bob", "$6$salt$hash", False, ("readers", "admins")),
        ("nobody", None, False, ())]
    assert dict(userlist.groups) == {"admins": ("alice", "bob"), "readers": ("bob",)}
    rules = loaded.config.proxy("api").http_request_rules
    assert [(rule.action, rule.realm) for rule in rules] == [("auth", "OpenStack API"), ("auth", "api")]
    assert warnings(loaded)[0] == ("11: user 'nobody' has no password: nobody can authenticate "
                                   "as it (add password or insecure-password)")


def test_userlist_errors(tmp_path):
    assert messages(tmp_path, DEFAULTS + """\
        userlist a
            user x insecure-password p groups missing
        userlist b
            group g users y
        userlist c
            user z insecure-password p
            user z insecure-password q
            user w colour blue
        frontend f
            acl bad http_auth(nowhere)
            acl worse http_auth_group(c) nogroup
            http-request auth realm "say \\"hi\\""
            http-request auth somewhere
            default_backend bk
        backend bk
            server s 127.0.0.1:80
        """) == [
        "6: user 'x' of userlist 'a' names group 'missing', which no 'group' line of the userlist declares",
        "8: group 'g' of userlist 'b' names user 'y', which no 'user' line of the userlist declares",
        "12: user 'z' is declared twice in userlist 'c'",
        "13: unexpected 'colour' in 'user w': expected password, insecure-password or groups",
        "17: realm 'say \"hi\"' cannot hold quotes, backslashes or control characters",
        "18: 'http-request auth' expects [realm <realm>], then optionally if|unless CONDITION",
        # (references are checked once every file is read)
        "15: http_auth(nowhere): no userlist named 'nowhere'",
        "16: http_auth_group(c): userlist 'c' has no group 'nogroup'",
    ]


def test_originalto(tmp_path):
    loaded = load_text(tmp_path, DEFAULTS + """\
            option originalto except 10.0.0.0/8 header X-Client-Dst
        frontend f
            bind :80
            default_backend b
        backend b
            server s 127.0.0.1:81
        listen l
            bind :81
            option originalto
            server s 127.0.0.1:82
        """)
    f, b, l = loaded.config.proxies
    assert f.original_to == b.original_to == OriginalTo("X-Client-Dst", "10.0.0.0/8")
    assert l.original_to == OriginalTo("X-Original-To", None)


@pytest.mark.parametrize("line, expected", [
    ("option originalto if-none", "unexpected 'if-none' in option originalto: expected except NET or header NAME"),
    ("option originalto except foo", "invalid network 'foo' after 'except'"),
    ("option originalto header", "unexpected 'header' in option originalto"),
    ("no option originalto", "negation/default is not supported for option 'originalto'"),
])
def test_originalto_errors(tmp_path, line, expected):
    found = messages(tmp_path, DEFAULTS + f"backend b\n    {line}\n    server s 127.0.0.1:81\n")
    assert any(m.startswith("7: ") and expected in m for m in found), found  # the option's line


def test_prefer_last_server_and_its_negation(tmp_path):
    loaded = load_text(tmp_path, DEFAULTS + """\
            option prefer-last-server
        backend b
            server s 127.0.0.1:81
        backend c
            no option prefer-last-server
            server s 127.0.0.1:82
        """)
    assert [p.prefer_last_server for p in loaded.config.proxies] == [True, False]
    found = warnings(load_text(tmp_path, DEFAULTS + "frontend f\n    bind :80\n"
                               "    option prefer-last-server\n"))
    # HAProxy ignores it in a frontend with a warning, and so does haply
    assert found == ["8: 'option prefer-last-server' is ignored: frontend 'f' has no backend "
                     "capability (HAProxy ignores it too)"], found
    found = messages(tmp_path, DEFAULTS + "backend b\n    option prefer-last-server x\n")
    assert "7: 'option prefer-last-server' takes no argument (got 'x')" in found, found


def test_http_buffer_request_and_its_negation(tmp_path):
    loaded = load_text(tmp_path, DEFAULTS + """\
            option http-buffer-request
        frontend f
            bind :80
            no option http-buffer-request
            default_backend b
        backend b
            server s 127.0.0.1:81
        """)
    assert [p.buffer_request for p in loaded.config.proxies] == [False, True]
    found = messages(tmp_path, DEFAULTS + "frontend f\n    option http-buffer-request 1\n")
    assert "7: 'option http-buffer-request' takes no argument (got '1')" in found, found


def test_http_only_request_options_in_mode_tcp_are_warned_about(tmp_path):
    loaded = load_text(tmp_path, DEFAULTS.replace("mode http", "mode tcp") + """\
        listen mysql
            bind :3306
            option http-buffer-request
            option prefer-last-server
            server s 10.0.0.1:3306
        """)
    for option in ("http-buffer-request", "prefer-last-server"):
        assert any(f"'option {option}' in 'mysql' has no effect in mode tcp" in w
                   for w in warnings(loaded)), warnings(loaded)


def test_abortonclose_and_its_negation(tmp_path):
    loaded = load_text(tmp_path, DEFAULTS + """\
            option abortonclose
        frontend f
            bind :80
            default_backend b
        backend b
            server s 127.0.0.1:81
        listen l
            bind :81
            no option abortonclose
            server s 127.0.0.1:82
        """)
    f, b, l = loaded.config.proxies
    assert (b.abort_on_close, l.abort_on_close) == (True, False)
    found = warnings(load_text(tmp_path, DEFAULTS + "frontend f\n    bind :80\n    option abortonclose\n"))
    assert any("'option abortonclose' is ignored: frontend 'f'" in w for w in found), found
    found = messages(tmp_path, DEFAULTS + "backend b\n    option abortonclose now\n")
    assert "7: 'option abortonclose' takes no argument (got 'now')" in found, found


def test_abortonclose_in_mode_tcp(tmp_path):
    loaded = load_text(tmp_path, DEFAULTS.replace("mode http", "mode tcp") + """\
            option abortonclose
        frontend f
            bind :3306
            default_backend b
        backend b
            server s 10.0.0.1:3306
        """)
    assert loaded.config.proxy("b").abort_on_close


# ---------------------------------------------------------------------- cpu-map


def test_cpu_map(tmp_path):
    from haply.config.cpu_map import cpus_for_worker
    loaded = load_text(tmp_path, """\
        global
            nbthread 4
            cpu-map auto:1/1-4 0-3
            cpu-map 1/4 2 3
            cpu-map 1 0
            cpu-map 2/1 0
            cpu-map 1/3 0,1
        """ + DEFAULTS)
    mappings = loaded.config.global_.cpu_map
    assert [cpus_for_worker(mappings, worker) for worker in (1, 2, 3, 4, 5)] == [
        (0,), (1,), (0,), (2, 3), None]
    assert warnings(loaded) == [
        "5: cpu-map without a thread set binds no worker, as in HAProxy 2.6: write 1/all or 1/<threads>",
        "6: cpu-map for a process other than 1 binds nothing: haply runs one process of workers (write 1/<threads>)",
        "7: cpu-map: '0,1' means CPU 0 only, as HAProxy 2.6 reads it: separate CPUs with spaces",
    ]
    assert messages(tmp_path, """\
        global
            cpu-map x 0
            cpu-map auto:1/1-2 0-2
            cpu-map auto:1/all 0-1
            cpu-map auto:1/all 0-63
            cpu-map 1/1
            cpu-map 1/70 0
            cpu-map 1/1 64
        """) == [
        "2: cpu-map: 'x' is not a valid process number or range (a number, a-b, all, odd or even)",
        "3: cpu-map: 2 thread(s) and 3 CPUs: with auto: each thread takes one CPU, so give no more CPUs than threads",
        "4: cpu-map: auto:1/all is 64 threads and needs as many CPUs (got 2), as HAProxy 2.6 "
        "pairs them one to one",
        "6: cpu-map expects [auto:]<process>[/<thread>] and then CPUs",
        "7: cpu-map: thread range '70' must lie within 1-64",
        "8: cpu-map: CPU range '64' must lie within 0-63",
    ]


def test_option_redispatch_interval(tmp_path):
    loaded = load_text(tmp_path, DEFAULTS + """\
        defaults
            option redispatch 3
        backend every_third
            server a 127.0.0.1:1
        backend last
            option redispatch
            server a 127.0.0.1:1
        backend before_last
            option redispatch -2
            server a 127.0.0.1:1
        backend never
            option redispatch 0
            server a 127.0.0.1:1
        """)
    assert [(p.name, p.redispatch, p.redispatch_every) for p in loaded.config.proxies] == [
        ("every_third", True, 3), ("last", True, -1), ("before_last", True, -2), ("never", False, 0)]
    assert messages(tmp_path, DEFAULTS + """\
        backend b
            option redispatch often
            option redispatch 1 2
        """) == ["7: option redispatch expects an integer interval, not 'often'",
                 "8: unexpected '2' after option redispatch: expected one interval"]


def test_rewrite_rules_are_checked_where_written(tmp_path):
    assert messages(tmp_path, DEFAULTS + r"""
        backend b
            http-request replace-header X-A (unclosed x
            http-request replace-path /a
            http-request set-path
            http-request set-query %[path,sha1]
            http-response replace-value X-B a %[path]
            http-request replace-uri ^/a(.*) /b\1 extra
            http-request replace-value X-C a b if { path /x }
            http-request set-uri /u%[hdr(host)] unless { src 10.0.0.0/8 }
            server a 127.0.0.1:1
        """) == [
        "8: invalid regular expression '(unclosed': missing ), unterminated subpattern at position 0",
        "9: 'http-request replace-path' expects a regular expression and a replacement, "
        "then optionally if|unless CONDITION",
        "10: 'http-request set-path' expects a value, then optionally if|unless CONDITION",
        "11: converter 'sha1' is not supported by haply (supported: " + ", ".join(CONVERTER_NAMES)
        + ") (in '%[path,sha1]')",
        "12: sample fetch 'path' reads the request, which an http-response rule does not have: "
        "keep it in a txn. variable from an http-request rule (in '%[path]')",
        "13: 'http-request replace-uri' expects a regular expression and a replacement, "
        "then optionally if|unless CONDITION",
    ]


def test_rewrite_rules_in_the_model(tmp_path):
    loaded = load_text(tmp_path, DEFAULTS + r"""
        frontend f
            bind :80
            http-request set-method PUT if { path /put }
            http-request set-path /v2%[path]
            http-request set-pathq /q?x=1
            http-request set-query a=%[query]
            http-request set-uri /u
            http-request replace-path ^/a(.*) /b\1
            http-request replace-pathq ^/a(.*) /b\1
            http-request replace-uri ^/a(.*) /b\1
            http-request replace-header X-A ^(.*)$ <\1>
            http-request replace-value X-B ^b$ B
            http-response replace-header Location ^http://(.*)$ https://\1
            http-response replace-value Vary ^Cookie$ Accept
            default_backend b
        backend b
            server a 127.0.0.1:1
        """)
    f = loaded.config.proxy("f")
    assert [(r.action, r.name, r.pattern, r.value) for r in f.http_request_rules] == [
        ("set-method", "", None, "PUT"), ("set-path", "", None, "/v2%[path]"),
        ("set-pathq", "", None, "/q?x=1"), ("set-query", "", None, "a=%[query]"),
        ("set-uri", "", None, "/u"), ("replace-path", "", "^/a(.*)", r"/b\1"),
        ("replace-pathq", "", "^/a(.*)", r"/b\1"), ("replace-uri", "", "^/a(.*)", r"/b\1"),
        ("replace-header", "X-A", "^(.*)$", r"<\1>"), ("replace-value", "X-B", "^b$", "B")]
    assert f.http_request_rules[0].condition is not None
    assert [(r.action, r.name, r.pattern, r.value) for r in f.http_response_rules] == [
        ("replace-header", "Location", "^http://(.*)$", r"https://\1"),
        ("replace-value", "Vary", "^Cookie$", "Accept")]


def test_use_server(tmp_path):
    loaded = load_text(tmp_path, DEFAULTS + """\
        backend b
            use-server db2 if { src 10.0.0.0/8 }
            use-server db1 unless { path_beg /api }
            server db1 127.0.0.1:3306
            server db2 127.0.0.1:3307
        """)
    rules = loaded.config.proxy("b").use_server_rules
    assert [(rule.server, rule.location.line) for rule in rules] == [("db2", 7), ("db1", 8)]
    assert messages(tmp_path, DEFAULTS + """\
        backend b
            use-server db1
            use-server nope if TRUE
            server db1 127.0.0.1:3306
        """) == ["7: 'use-server' expects a server name followed by if|unless CONDITION",
                 "8: use-server: no server 'nope' in 'b'"]


def test_errorloc_pages(tmp_path):
    loaded = load_text(tmp_path, DEFAULTS + """\
        frontend f
            bind :80
            errorloc 503 https://status.example.org/
            errorloc302 502 /busy
            errorloc303 403 /login
            default_backend b
        backend b
            server a 127.0.0.1:1
        """)
    pages = dict(loaded.config.proxy("f").errorfiles)
    assert pages[503] == (b"HTTP/1.1 302 Found\r\ncache-control: no-cache\r\ncontent-length: 0\r\n"
                          b"location: https://status.example.org/\r\n\r\n")
    assert pages[502].startswith(b"HTTP/1.1 302 Found\r\n") and b"location: /busy\r\n" in pages[502]
    assert pages[403].startswith(b"HTTP/1.1 303 See Other\r\n")
    assert messages(tmp_path, DEFAULTS + """\
        frontend f
            errorloc 418 /teapot
            errorloc303 503
        """) == ["7: errorloc status 418 cannot be customised: expected one of "
                 "200, 400, 401, 403, 404, 405, 407, 408, 410, 413, 425, 429, 500, 501, 502, 503, 504",
                 "8: 'errorloc303' expects a status code and a URL"]


def test_request_acls_in_response_rules_are_said_to_never_match(tmp_path):
    loaded = load_text(tmp_path, DEFAULTS + """\
        backend b
            acl api path_beg /api
            http-response set-header X-A 1 if api
            http-response set-header X-B 1 if { method GET } { hdr(host) h }
            http-response set-header X-C 1 if { src 10.0.0.0/8 }
            server a 127.0.0.1:1
        """)
    assert warnings(loaded) == [
        "8: acl 'api' will never match here: 'path_beg' reads the request, "
        "which is no longer at hand in an http-response rule (as in HAProxy)",
        "9: anonymous acl will never match here: 'hdr' reads the request, "
        "which is no longer at hand in an http-response rule (as in HAProxy)"]
    loaded = load_text(tmp_path, DEFAULTS + """\
        backend b
            acl failed status 500:599
            http-response set-header X-Failed 1 if failed
            http-request deny if failed
            server a 127.0.0.1:1
        """)
    assert warnings(loaded) == [
        "9: acl 'failed' will never match here: 'status' reads the response, "
        "which only http-response rules see (as in HAProxy)"]


def test_set_status(tmp_path):
    loaded = load_text(tmp_path, DEFAULTS + """\
        backend b
            http-response set-status 503
            http-response set-status 299 reason "All Fine" if { method POST }
            server a 127.0.0.1:1
        """)
    rules = loaded.config.proxy("b").http_response_rules
    assert [(r.action, r.status, r.reason, r.condition is not None) for r in rules] == [
        ("set-status", 503, None, False), ("set-status", 299, "All Fine", True)]
    assert messages(tmp_path, DEFAULTS + """\
        backend b
            http-response set-status 101
            http-response set-status 200 because
            server a 127.0.0.1:1
        """) == ["7: http-response set-status 101: haply sets a final status, 200 to 599",
                 "8: 'http-response set-status' expects a status, optionally 'reason TEXT', "
                 "then optionally if|unless CONDITION"]


def test_set_status_reasons_are_haproxys():
    from haply.http.responses import status_reason
    assert [status_reason(s) for s in (200, 299, 302, 404, 504, 599)] == [
        "OK", "Success", "Moved Temporarily", "Not Found", "Gateway Time-out", "Server Error"]


def test_http_ignore_probes(tmp_path):
    loaded = load_text(tmp_path, DEFAULTS + """\
        defaults
            mode http
            option http-ignore-probes
        frontend f
            bind :80
            default_backend b
        frontend g
            bind :81
            no option http-ignore-probes
            default_backend b
        backend b
            server a 127.0.0.1:1
        """)
    assert "http-ignore-probes" in loaded.config.proxy("f").options
    assert "http-ignore-probes" not in loaded.config.proxy("g").options


def test_unique_id_format_and_header(tmp_path):
    loaded = load_text(tmp_path, DEFAULTS + """\
            unique-id-format %{+X}o\\ %ci:%cp_%fi:%fp_%Ts_%rt:%pid
        frontend f
            bind :80
            unique-id-header X-Request-ID
            default_backend b
        backend b
            server s 127.0.0.1:81
        """)
    front = loaded.config.proxy("f")
    assert front.unique_id_format == "%{+X}o %ci:%cp_%fi:%fp_%Ts_%rt:%pid"  # from defaults
    assert front.unique_id_header == "X-Request-ID"
    found = messages(tmp_path, DEFAULTS + """\
        frontend f
            bind :80
            unique-id-format %ci_%Tz
            unique-id-header X:Bad
            default_backend b
        backend b
            server s 127.0.0.1:81
        """)
    assert "8: 'unique-id-format': no such log-format variable '%Tz'" in found, found
    assert "9: 'unique-id-header': 'X:Bad' is not a header name" in found, found


def test_log_formats_are_checked_at_their_line(tmp_path):
    """An unknown variable, and a variable only HTTP has in a format a mode tcp
    proxy uses (HAProxy refuses both): errors at the format's line, the
    defaults' line reported once for all the proxies that inherit it."""
    found = messages(tmp_path, DEFAULTS + """\
        log-format "%ci %HM %{+Q}r"
        listen galera
            mode tcp
            bind :3306
            server s 127.0.0.1:3307
        listen rabbit
            mode tcp
            bind :5672
            unique-id-format %ci_%HU
            server s 127.0.0.1:5673
        frontend api
            bind :80
            log-format "%ci %dst"
            default_backend b
        backend b
            server s 127.0.0.1:81
        """)
    assert sorted(found) == [
        "14: 'unique-id-format': variable '%HU' is reserved for mode http ('rabbit' is in mode tcp)",
        "18: 'log-format': no such log-format variable '%dst'",
        "6: 'log-format': variable '%HM' is reserved for mode http ('galera' is in mode tcp)",
        "6: 'log-format': variable '%r' is reserved for mode http ('galera' is in mode tcp)",
    ], found


def test_log_format_refuses_what_reads_the_request_head(tmp_path):
    """HAProxy no longer holds the request's head when it writes the line:
    its log-format refuses the fetches that read it (observed with `haproxy
    -c`), where unique-id-format and header values take them."""
    found = messages(tmp_path, DEFAULTS + """\
        frontend api
            bind :80
            log-format "%ci %{+Q}[path] %[capture.req.uri] %[method]"
            unique-id-format %[req.hdr(host)]_%rt
            http-request set-header X-Path %[path]
            default_backend b
        frontend other
            bind :81
            log-format "%[req.hdr(host),lower]"
            default_backend b
        backend b
            server s 127.0.0.1:81
        """)
    assert found == [
        "8: 'log-format': sample fetch 'path' may not be reliably used here because it needs "
        "'HTTP request headers' which is not available here",
        "14: 'log-format': sample fetch 'req.hdr' may not be reliably used here because it needs "
        "'HTTP request headers' which is not available here"], found


def test_monitor_fail_and_nbsrv(tmp_path):
    loaded = load_text(tmp_path, DEFAULTS + """\
        frontend fe
            bind :80
            acl degraded nbsrv(api) lt 2
            monitor-uri /healthz
            monitor fail if degraded
            monitor fail unless { nbsrv(api) ge 1 }
            default_backend api
        listen api
            bind :81
            http-request deny if { nbsrv eq 0 }
            server s 127.0.0.1:82
        """)
    front = loaded.config.proxy("fe")
    assert [term.acl.arg for condition in front.monitor_fail for group in condition.any_of
            for term in group] == ["api", "api"]
    assert front.monitor_fail[1].unless
    # without a name, nbsrv counts the servers of the section it is written in
    assert loaded.config.proxy("api").http_request_rules[0].condition.any_of[0][0].acl.arg == "api"
    found = messages(tmp_path, DEFAULTS + """\
        frontend fe
            bind :80
            monitor-uri /healthz
            monitor fail if { nbsrv(apj) lt 1 }
            monitor fail if { nbsrv lt 1 }
            monitor fail
            monitor pass if TRUE
            default_backend api
        backend api
            server s 127.0.0.1:82
        """)
    assert found == [  # the lines first, then what needs the whole configuration
        "11: 'monitor fail' expects 'if' or 'unless' and a condition",
        "12: 'monitor' expects 'fail if|unless CONDITION', as in 'monitor fail if { nbsrv(be) lt 1 }'",
        "9: nbsrv(apj): no backend or listen section named 'apj'; did you mean 'api'?",
        "10: nbsrv: frontend 'fe' has no servers; name a backend, as in nbsrv(NAME)",
    ], found


def test_srv_is_up_and_req_hdr_in_acls(tmp_path):
    loaded = load_text(tmp_path, DEFAULTS + """\
        backend api
            acl host_ok req.hdr(host) -i -m beg api.
            use-server s2 if { srv_is_up(s2) } host_ok
            server s1 127.0.0.1:81
            server s2 127.0.0.1:82
        """)
    rule = loaded.config.proxy("api").use_server_rules[0]
    up, host = (term.acl for term in rule.condition.any_of[0])
    assert (up.fetch, up.arg) == ("srv_is_up", "api/s2")  # its own backend's server
    assert (host.fetch, host.arg, host.patterns) == ("hdr_beg", "host", ("api.",))
    assert messages(tmp_path, DEFAULTS + """\
        frontend fe
            bind :80
            http-request deny if { srv_is_up(api/s9) } || { srv_is_up(s1) } || { srv_is_up(apx/s1) }
            default_backend api
        backend api
            server s1 127.0.0.1:81
        """) == [
        "8: srv_is_up(api/s9): backend 'api' has no server named 's9'",
        "8: srv_is_up: frontend 'fe' has no servers; name a backend, as in srv_is_up(NAME/SERVER)",
        "8: srv_is_up(apx/s1): no backend or listen section named 'apx'; did you mean 'api'?",
    ]


def test_a_keyword_of_the_other_capability_is_ignored_with_a_warning(tmp_path):
    loaded = load_text(tmp_path, DEFAULTS + """\
        frontend fe
            bind :80
            balance leastconn
            timeout server 3s
            default_backend api
        backend api
            option httplog
            monitor-uri /m
            balance
            server s1 127.0.0.1:81
        """)
    assert warnings(loaded) == [
        "8: 'balance' is ignored: frontend 'fe' has no backend capability (HAProxy ignores it too)",
        "9: 'timeout server' is ignored: frontend 'fe' has no backend capability (HAProxy ignores it too)",
        "12: 'option httplog' is ignored: backend 'api' has no frontend capability (HAProxy ignores it too)",
        "13: 'monitor-uri' is ignored: backend 'api' has no frontend capability (HAProxy ignores it too)",
    ]
    fe, api = loaded.config.proxy("fe"), loaded.config.proxy("api")
    assert api.monitor_uri is None and api.balance == "roundrobin"  # a bare balance: the default
    assert fe.timeouts.server == 10.0  # from the defaults, not the ignored line


def test_stats_http_request_rules(tmp_path):
    loaded = load_text(tmp_path, DEFAULTS + """\
        userlist ops
            user ops insecure-password secret
        listen stats
            bind :8404
            stats enable
            stats http-request allow if LOCALHOST
            stats http-request auth realm Ops\\ Area unless { http_auth(ops) }
            stats http-request deny
        """)
    rules = loaded.config.proxy("stats").stats.rules
    assert [(rule.action, rule.realm) for rule in rules] == [
        ("allow", None), ("auth", "Ops Area"), ("deny", None)]
    assert rules[1].condition.unless and rules[2].condition is None
    assert messages(tmp_path, DEFAULTS + """\
        listen stats
            bind :8404
            stats auth admin:pw
            stats http-request deny if { src 10.0.0.0/8 }
            stats http-request tarpit
            stats http-request auth realm
            stats http-request allow now
        """) == [
        "10: 'stats http-request' expects allow, deny or auth [realm REALM], then if|unless "
        "CONDITION or nothing",
        "11: unexpected 'realm' after 'stats http-request auth': expected realm REALM",
        "12: unexpected 'now' after 'stats http-request allow'",
        "9: 'stats': 'stats http-request' cannot be used with 'stats auth' or 'stats realm' "
        "(HAProxy 2.6 refuses them together): write an auth rule with a userlist",
    ]


def test_use_backend_with_a_name_made_per_request(tmp_path):
    (tmp_path / "hosts.map").write_text("keystone.example.com keystone_back\n")
    loaded = load_text(tmp_path, DEFAULTS + f"""\
        frontend external
            bind :443
            use_backend %[req.hdr(host),lower,map_dom({tmp_path}/hosts.map,default_back)]
            default_backend default_back
        backend default_back
            server s 127.0.0.1:81
        """)
    assert "%[" in loaded.config.proxy("external").backend_switches[0].backend
    found = messages(tmp_path, DEFAULTS + f"""\
        frontend external
            bind :443
            use_backend %[req.hdr(host),map_dom({tmp_path}/missing.map)]
            use_backend %[req.hdr(host),sha1]
            default_backend default_back
        listen db
            mode tcp
            bind :3306
            use_backend %[src,map({tmp_path}/hosts.map)]
            server s 127.0.0.1:3307
        backend default_back
            server s 127.0.0.1:81
        """)
    assert [line.split(":", 1)[0] for line in found] == ["8", "9", "14"], found
    assert "cannot read map file" in found[0] and "'sha1'" in found[1], found
    assert "not supported by haply in mode tcp" in found[2], found


def test_send_proxy_options(tmp_path):
    loaded = load_text(tmp_path, DEFAULTS + """\
        backend placement
            default-server send-proxy-v2
            server a 127.0.0.1:8778 check-send-proxy check
            server b 127.0.0.1:8779 send-proxy
        """)
    assert [(s.send_proxy, s.check_send_proxy) for s in loaded.config.proxy("placement").servers] == [
        (2, True), (1, False)]


def test_ssl_dh_param_file_is_read_at_its_line(tmp_path):
    (tmp_path / "junk.pem").write_text("not parameters\n")
    found = messages(tmp_path, f"""\
        global
            ssl-dh-param-file {tmp_path}/missing.pem
            ssl-dh-param-file {tmp_path}/junk.pem
        """)
    assert [line.split(":", 1)[0] for line in found] == ["2", "3"], found
    assert "cannot load DH parameters" in found[0] and "No such file" in found[0], found


def test_options_that_name_what_haply_always_does(tmp_path):
    """contstats (counters that move during a transfer) and http-no-delay (no
    waiting to fill packets: uvloop sets TCP_NODELAY on every connection and
    haply never holds a piece back) describe haply's only behaviour: accepted."""
    loaded = load_text(tmp_path, DEFAULTS + """\
        frontend fe
            bind :80
            option contstats
            option http-no-delay
            default_backend be
        backend be
            option http-no-delay
            server s 127.0.0.1:81
        """)
    assert {"contstats", "http-no-delay"} <= loaded.config.proxy("fe").options
    assert not warnings(loaded)


def test_option_logasap(tmp_path):
    loaded = load_text(tmp_path, DEFAULTS + """\
        frontend glance
            bind :9292
            option httplog
            option logasap
            default_backend be
        backend be
            option logasap
            server s 127.0.0.1:9293
        """)
    assert "logasap" in loaded.config.proxy("glance").options
    assert warnings(loaded) == ["12: 'option logasap' is ignored: backend 'be' has no frontend "
                                "capability (HAProxy ignores it too)",
                                "6: log format ignored for frontend 'glance' since it has no log address"]


def test_unix_bind_is_checked(tmp_path):
    load_text(tmp_path, "global\n    unix-bind prefix /run/haproxy mode 0660 group haproxy\n")
    assert messages(tmp_path, """\
        global
            unix-bind mode rw
            unix-bind owner root
            unix-bind group no-such-group
            unix-bind prefix
        """) == [
        "2: invalid unix-bind mode 'rw': expected an octal number such as 660",
        "3: unknown 'unix-bind' setting 'owner': expected prefix, mode, user, uid, group, gid",
        "4: cannot find group id for 'no-such-group'",
        "5: 'unix-bind' expects settings and their values: prefix, mode, user, uid, group, gid",
    ]


# ------------------------------------------------------------- sticky counters


RATE_LIMITED = DEFAULTS + """\
frontend f
    bind :80
    stick-table type ip size 100k expire 30s store http_req_rate(10s),conn_cur store gpc0,gpc0_rate(1m),gpt0
    tcp-request connection track-sc1 src table per_ip
    tcp-request connection reject if { sc1_conn_rate gt 20 }
    tcp-request session track-sc2 src table per_ip
    tcp-request session sc-inc-gpc1(2) if { src_conn_cnt(per_ip) gt 1000 }
    acl abuse sc_http_req_rate(0) gt 100
    http-request track-sc0 src
    http-request sc-inc-gpc0(0) if abuse
    http-request sc-set-gpt0(0) 1 if abuse
    http-request track-sc1 src table per_ip
    http-request track-sc2 req.hdr(x-auth-token) table per_ip
    http-request sc-inc-gpc1(1)
    http-request deny deny_status 429 if { sc0_get_gpc0 gt 0 } || { sc_tracked(1) } { sc_get_gpt0(1,per_ip) eq 1 }
    default_backend b
backend per_ip
    stick-table type ip size 1m expire 1m store conn_cnt,conn_rate(3s),sess_cnt,http_err_cnt,gpc1,gpt0
backend transfers
    stick-table type ip size 1m store bytes_in_cnt,bytes_in_rate(1m),bytes_out_cnt,bytes_out_rate(1m),http_fail_cnt,http_fail_rate(1m)
    http-request track-sc0 src
    http-request deny if { sc0_kbytes_in gt 1000 } || { sc_bytes_out_rate(0) gt 1000000 }
    http-request deny if { src_kbytes_out gt 1000 } || { src_http_fail_rate ge 10 } || { sc0_http_fail_cnt ge 100 }
    server s 192.0.2.1:80
backend b
    server s 192.0.2.1:80
"""


def test_sticky_counters_reach_the_model(tmp_path):
    loaded = load_text(tmp_path, RATE_LIMITED)
    f = loaded.config.proxy("f")
    assert f.stick_table.store == (("http_req_rate", 10.0), ("conn_cur", None), ("gpc0", None),
                                   ("gpc0_rate", 60.0), ("gpt0", None))
    assert [(r.stage, r.action, r.counter and (r.counter.action, r.counter.slot, r.counter.key, r.counter.table))
            for r in f.tcp_request_rules] == [
        ("connection", "counter", ("track", 1, "src", "per_ip")), ("connection", "reject", None),
        ("session", "counter", ("track", 2, "src", "per_ip")), ("session", "counter", ("inc-gpc1", 2, "", "")),
    ]
    counters = [(r.action, r.slot, r.table, r.value) for r in f.http_request_rules if hasattr(r, "slot")]
    assert counters == [("track", 0, "f", 0), ("inc-gpc0", 0, "", 0), ("set-gpt0", 0, "", 1),
                        ("track", 1, "per_ip", 0), ("track", 2, "per_ip", 0), ("inc-gpc1", 1, "", 0)]
    deny = f.http_request_rules[-1].condition.any_of
    assert [(t.acl.fetch, t.acl.arg) for group in deny for t in group] == [
        ("sc_get_gpc0", "0,"), ("sc_tracked", "1,"), ("sc_get_gpt0", "1,per_ip")]
    assert not any("not used" in w for w in warnings(loaded))
    transfers = loaded.config.proxy("transfers")
    assert transfers.stick_table.store == (
        ("bytes_in_cnt", None), ("bytes_in_rate", 60.0), ("bytes_out_cnt", None), ("bytes_out_rate", 60.0),
        ("http_fail_cnt", None), ("http_fail_rate", 60.0))
    fetches = [t.acl.fetch for rule in transfers.http_request_rules[1:]
               for group in rule.condition.any_of for t in group]
    assert fetches == ["sc_kbytes_in", "sc_bytes_out_rate", "src_kbytes_out", "src_http_fail_rate",
                       "sc_http_fail_cnt"]


@pytest.mark.parametrize("line, message", [
    ("stick-table type ip size 10 store gpc(2)",
     "stick-table data type 'gpc' is not supported by haply (supported: gpt0, gpc0, gpc0_rate, "
     "conn_cnt, conn_rate, conn_cur, sess_cnt, sess_rate, http_req_cnt, http_req_rate, http_err_cnt, "
     "http_err_rate, bytes_in_cnt, bytes_in_rate, bytes_out_cnt, bytes_out_rate, gpc1, gpc1_rate, "
     "http_fail_cnt, http_fail_rate)"),
    ("stick-table type ip size 10 store bytes_out_rate", "stick-table data type 'bytes_out_rate' needs a period, "
     "as in bytes_out_rate(10s)"),
    ("stick-table type ip size 10 store http_req_rate", "stick-table data type 'http_req_rate' needs a period, "
     "as in http_req_rate(10s)"),
    ("stick-table type ip size 10 store conn_cur(10s)", "stick-table data type 'conn_cur' takes no argument"),
    ("stick-table type ip size 10 store req_rate(10s)", "unknown stick-table data type 'req_rate(10s)': "
     "expected one of gpt0, gpc0, gpc0_rate, conn_cnt, conn_rate, conn_cur, sess_cnt, sess_rate, http_req_cnt, "
     "http_req_rate, http_err_cnt, http_err_rate, bytes_in_cnt, bytes_in_rate, bytes_out_cnt, bytes_out_rate, "
     "gpc1, gpc1_rate, http_fail_cnt, http_fail_rate"),
    ("http-request track-sc3 src table t", "'track-sc3': there is no sticky counter '3' (sc0, sc1 and sc2 exist)"),
    ("http-request track-sc0 url_param(id) table t", "track key 'url_param(id)' is not supported by haply "
     "(supported: src, dst, src_port, dst_port, base, base32, base32+src, path, url, url32, url32+src, "
     "req.hdr(NAME), req.cook(NAME))"),
    ("tcp-request connection track-sc0 base32+src table t", "'track-sc0 base32+src' reads the HTTP request, "
     "which a tcp-request connection or session rule does not have: use http-request track-sc"),
    ("http-request track-sc0 src table", "'table' needs a table name"),
    ("http-request track-sc0 src t", "unexpected 't' after 'track-sc0 src': expected table NAME or if|unless CONDITION"),
    ("tcp-request connection track-sc0 req.hdr(x) table t", "'track-sc0 req.hdr(x)' reads the HTTP request, which "
     "a tcp-request connection or session rule does not have: use http-request track-sc"),
    ("http-request sc-set-gpt0(0) sc0_conn_cnt", "'sc-set-gpt0(0) sc0_conn_cnt': only an integer value is "
     "supported by haply (sample expressions are not)"),
    ("http-request sc-inc-gpc0(5)", "'sc-inc-gpc0(5)': there is no sticky counter '5' (sc0, sc1 and sc2 exist)"),
    ("http-request deny if { sc_conn_cur(7) gt 1 }", "'sc_conn_cur(7)': the first argument is a sticky counter, 0 to 2"),
    ("http-request track-sc0 src", "track-sc0: 'f' has no stick-table (name a proxy that declares one with 'table NAME')"),
    ("http-request deny if { src_conn_rate gt 1 }", "src_conn_rate: no stick-table 'f' (a proxy of that name "
     "declares one with 'stick-table')"),
    ("http-request deny if { sc0_conn_rate(nosuch) gt 1 }", "sc_conn_rate: no stick-table 'nosuch' (a proxy of "
     "that name declares one with 'stick-table')"),
])
def test_sticky_counter_errors(tmp_path, line, message):
    text = DEFAULTS + f"frontend f\n    bind :80\n    {line}\n    default_backend t\n" \
        "backend t\n    stick-table type ip size 10\n    server s 192.0.2.1:80\n"
    assert messages(tmp_path, text) == [f"8: {message}"]


def test_socket_stats_is_a_frontend_option(tmp_path):
    loaded = load_text(tmp_path, DEFAULTS + "frontend f\n    bind :80 name public\n    option socket-stats\n"
                       "    default_backend b\nbackend b\n    server s 192.0.2.1:80\n")
    assert "socket-stats" in loaded.config.proxy("f").options
    ignored = load_text(tmp_path, DEFAULTS + "backend b\n    option socket-stats\n    server s 192.0.2.1:80\n")
    assert any("'option socket-stats' is ignored: backend 'b' has no frontend capability" in w
               for w in warnings(ignored)), warnings(ignored)


def test_content_tracking_in_http_is_warned_about_as_haproxy_does(tmp_path):
    loaded = load_text(tmp_path, DEFAULTS + "frontend f\n    bind :80\n    stick-table type ip size 10\n"
                       "    tcp-request content track-sc0 src\n    default_backend b\n"
                       "backend b\n    server s 192.0.2.1:80\n")
    assert warnings(loaded) == [
        "9: a 'tcp-request content track-sc*' rule not depending on request contents for an HTTP frontend "
        "should be executed at the session level, using a 'tcp-request session' rule (mandatory to track "
        "invalid HTTP requests); haply tracks it for each request, as HAProxy does"]


# ------------------------------------------------------------------ variables


def test_variable_rules_in_the_model(tmp_path):
    loaded = load_text(tmp_path, DEFAULTS + r"""
        frontend f
            bind :80
            http-request set-var(txn.host) req.hdr(host),lower,field(1,:)
            http-request set-var(txn.once,ifnotset,ifnotempty) str(x) if { path /a }
            http-request set-var-fmt(txn.from) %[src]:%[src_port]
            http-request unset-var(txn.host)
            http-response set-var(res.code) status,add(1)
            http-response set-var-fmt(txn.line) s=%[status]
            http-response unset-var(res.code)
            default_backend b
        backend b
            server a 127.0.0.1:1
        """)
    proxy = loaded.config.proxy("f")
    assert [(r.action, r.name, r.value, r.conditions) for r in proxy.http_request_rules] == [
        ("set-var", "txn.host", "req.hdr(host),lower,field(1,:)", ()),
        ("set-var", "txn.once", "str(x)", ("ifnotset", "ifnotempty")),
        ("set-var-fmt", "txn.from", "%[src]:%[src_port]", ()),
        ("unset-var", "txn.host", "", ()),
    ]
    assert proxy.http_request_rules[1].condition is not None
    assert [(r.action, r.name, r.value) for r in proxy.http_response_rules] == [
        ("set-var", "res.code", "status,add(1)"), ("set-var-fmt", "txn.line", "s=%[status]"),
        ("unset-var", "res.code", "")]


def test_variable_rules_are_checked_where_written(tmp_path):
    found = messages(tmp_path, DEFAULTS + r"""
        frontend f
            bind :80
            http-request set-var(host) str(x)
            http-request set-var(txn.x)
            http-request set-var(txn.x,ifbig) str(x)
            http-request set-var(txn.x) rand(5)
            http-request set-var(txn.x) path,sha1
            http-request set-var(txn.x) req.hdr(host),regsub(^(a)$,b)
            http-request set-var(txn.x) str(a,b)
            http-request unset-var(txn.x) str(1)
            http-request set-var-fmt(txn.x) %[nothing]
            http-response set-var(txn.x) path
            acl unsaid var(txn.x) foo
            acl named var(x) -m str foo
            http-request set-var txn.x str(1)
            default_backend b
        backend b
            server a 127.0.0.1:1
        """)
    assert [line.split(":", 1)[0] for line in found] == [str(n) for n in range(9, 22)], found
    expected = [
        "needs a scope: proc., sess., txn., req. or res.",
        "expects a sample expression, then optionally if|unless CONDITION",
        "unknown set-var condition 'ifbig' (expected ifexists, ifnotexists, ifempty",
        "sample fetch 'rand' is not supported by haply in expressions",
        "converter 'sha1' is not supported by haply",
        "unexpected '$,b)' after 'regsub(^(a)' (a ')' ends the arguments: quote one that holds parentheses)",
        "sample fetch 'str(a,b)': takes one text (quote a text that holds a comma)",
        "'http-request unset-var(txn.x)' takes only a variable name",
        "sample fetch 'nothing' is not supported by haply",
        "sample fetch 'path' reads the request, which an http-response rule does not have",
        "fetch 'var' needs a match method, as in var(txn.NAME) -m str VALUE",
        "variable 'x' needs a scope",
        "expects a variable name in parentheses, as in set-var(txn.host)",
    ]
    for message, words in zip(found, expected, strict=True):
        assert words in message, (message, words)


# ---------------------------------------------------------------------- peers


def test_peers_sections(tmp_path):
    loaded = load_text(tmp_path, "global\n    localpeer lb1\n" + DEFAULTS + """\
        peers lbs
            peer lb1 192.0.2.11:10000
            peer lb2 192.0.2.12:10000
        peers newer
            bind 192.0.2.11:10001
            server lb1
            server lb2 192.0.2.12:10001
            disabled
            enabled
        backend galera
            mode tcp
            stick-table type ip size 1000 peers lbs
            stick on dst
            server db1 127.0.0.1:3306
        """)
    config = loaded.config
    assert config.global_.localpeer == "lb1"
    lbs, newer = config.peers
    assert [(p.name, p.host, p.port) for p in lbs.peers] == [("lb1", "192.0.2.11", 10000),
                                                             ("lb2", "192.0.2.12", 10000)]
    assert newer.bind == ("192.0.2.11", 10001) and newer.peer("lb1").host is None and not newer.disabled
    assert config.proxy("galera").stick_table.peers == "lbs"


def test_peers_errors_are_located(tmp_path):
    found = messages(tmp_path, "global\n    nbthread 2\n" + DEFAULTS + """\
        peers lbs
            peer lb1
            peer lb2 192.0.2.12:10000 ssl
            peer lb3 192.0.2.13:10000
            peer lb3 192.0.2.13:10000
            bind 192.0.2.11:1 alpn x
            table t type ip size 1
        peers empty
        peers both
            bind 192.0.2.11:10001
            server lb1 192.0.2.11:10001
        backend b
            stick-table type ip size 10 peers nowhere
            server s 127.0.0.1:1
        backend c
            stick-table type ip size 10 peers lbs
            server s 127.0.0.1:1
        """)
    assert found == [
        "9: 'peer lb1' expects an address, as in 192.0.2.11:10000",
        "10: 'peer lb2': option 'ssl' is not supported by haply (peers connect in plain TCP)",
        "12: peer 'lb3' is declared twice in peers section 'lbs'",
        "13: 'bind' in a peers section expects one address; option 'alpn' is not supported by haply",
        "14: 'table' in a peers section is not supported by haply",
        "15: peers section 'empty' has no peer",
        "16: peers section 'both': a 'bind' line needs exactly one 'server NAME' line without an "
        "address (the local peer)",
        "20: stick-table of 'b': no peers section named 'nowhere'",
        "23: stick-table of 'c' is shared with peers 'lbs': haply shares tables from one worker, set nbthread 1",
    ]


def test_addresses_take_environment_variables_even_unquoted(tmp_path):
    """HAProxy's address parser expands ${NAME} in bind, server, log and
    stats socket addresses outside double quotes (checked with haproxy -c);
    anywhere else an unquoted variable stays as written, with a warning."""
    environ = {"VIP": "192.0.2.10", "PORT": "5000", "DB": "192.0.2.21", "LOGHOST": "192.0.2.5"}
    loaded = load_text(tmp_path, "global\n    log ${LOGHOST}:514 local0\n" + DEFAULTS + """\
        frontend keystone
            bind ${VIP}:${PORT}
            http-request set-header X-Where ${VIP}
            default_backend db
        backend db
            server db1 ${DB}:3306
        """, environ)
    config = loaded.config
    assert config.global_.logs[0].address == "192.0.2.5:514"
    assert (config.proxy("keystone").binds[0].host, config.proxy("keystone").binds[0].port) == ("192.0.2.10", 5000)
    assert config.proxy("db").servers[0].host == "192.0.2.21"
    assert config.proxy("keystone").http_request_rules[0].value == "${VIP}"
    assert [d.location.line for d in loaded.diagnostics.warnings if "double quotes" in d.message] == [10]
    assert messages(tmp_path, DEFAULTS + "backend b\n    server s ${NOWHERE}:80\n") == [
        "7: server address '${NOWHERE}:80': environment variable 'NOWHERE' is not set"]


# ---------------------------------------------------------------- http-errors


def test_http_errors_sections(tmp_path):
    page = tmp_path / "503.http"
    page.write_bytes(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 4\r\n\r\nbusy")
    other = tmp_path / "403.http"
    other.write_bytes(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 2\r\n\r\nno")
    loaded = load_text(tmp_path, DEFAULTS + f"""\
        http-errors site
            errorfile 503 {page}
            errorfile 403 {other}
        frontend f
            bind :80
            errorfile 503 {other}
            errorfiles site 503 404
            http-request deny deny_status 403 errorfiles site if {{ path /x }}
            http-request return status 429 errorfiles site if {{ path /y }}
            default_backend b
        backend b
            errorfiles site
            server s 127.0.0.1:1
        """)
    front, back = loaded.config.proxy("f"), loaded.config.proxy("b")
    pages = dict(back.errorfiles)  # (as read: names in lower case, as HAProxy sends them)
    assert sorted(pages) == [403, 503] and pages[503].endswith(b"busy") and pages[403].endswith(b"no")
    assert dict(front.errorfiles) == {503: pages[503]}  # the section's, over the proxy's own
    deny, answer = front.http_request_rules
    assert deny.response == pages[403]
    assert answer.response == b"HTTP/1.1 429 Too Many Requests\r\ncontent-length: 0\r\n\r\n"
    assert [(d.location.line, d.message) for d in loaded.diagnostics.warnings] == [
        (12, "status 404 is not declared in http-errors section 'site'"),
        (14, "'http-request return': status 429 is not declared in http-errors section 'site': "
             "the answer has no content")]
    assert messages(tmp_path, DEFAULTS + f"""\
        frontend f
            errorfiles later
            errorfiles nowhere
        http-errors later
            errorfile 999 {page}
        http-errors later
        """) == ["8: unknown http-errors section 'nowhere'",
                 "10: errorfile status 999 cannot be customised: expected one of 200, 400, 401, 403, 404, "
                 "405, 407, 408, 410, 413, 425, 429, 500, 501, 502, 503, 504",
                 "11: http-errors section 'later' is declared twice"]


def test_http_errors_named_before_their_declaration(tmp_path):
    """As in HAProxy: a section further down, or in a later file, is found."""
    page = tmp_path / "503.http"
    page.write_bytes(b"HTTP/1.0 503 Service Unavailable\r\ncontent-type: text/plain\r\n\r\nlater")
    first = write(tmp_path, DEFAULTS + """\
        frontend f
            errorfiles early
            http-request deny deny_status 503 errorfiles late
            default_backend b
        backend b
            server s 127.0.0.1:1
        """, "10-proxies.cfg")
    second = write(tmp_path, f"""\
        http-errors late
            errorfile 503 {page}
        """, "20-errors.cfg")
    with pytest.raises(ConfigError) as error:  # 'early' is declared nowhere
        load([str(first), str(second)], {})
    assert [d.message for d in error.value.diagnostics if d.severity == "error"] == [
        "unknown http-errors section 'early'"]
    first.write_text(first.read_text().replace("errorfiles early", "errorfiles late"))
    front = load([str(first), str(second)], {}).config.proxy("f")
    assert dict(front.errorfiles)[503].endswith(b"later")
    assert front.http_request_rules[0].response.endswith(b"later")


# -------------------------------------------------------------------- mailers


def test_mailers_and_email_alerts(tmp_path):
    loaded = load_text(tmp_path, DEFAULTS + """\
            email-alert mailers ops
            email-alert from haproxy@lb1.example.org
            email-alert to ops@example.org
        mailers ops
            mailer smtp1 192.0.2.25:25
            mailer smtp2 mail.example.org:587
            timeout mail 20s
        mailers quiet
        backend keystone
            email-alert level notice
            email-alert myhostname lb1.example.org
            server s 127.0.0.1:1 check
        backend glance
            server s 127.0.0.1:2 check
        """)
    ops, quiet = loaded.config.mailers
    assert (ops.name, ops.timeout, [(m.name, m.host, m.port, m.location.line) for m in ops.mailers]) == (
        "ops", 20.0, [("smtp1", "192.0.2.25", 25, 10), ("smtp2", "mail.example.org", 587, 11)])
    assert (quiet.mailers, quiet.timeout) == ((), 10.0)  # manual 3.6: 10 seconds by default
    keystone = loaded.config.proxy("keystone").email_alert
    assert (keystone.mailers, keystone.sender, keystone.recipient, keystone.level, keystone.myhostname) == (
        "ops", "haproxy@lb1.example.org", "ops@example.org", "notice", "lb1.example.org")
    glance = loaded.config.proxy("glance").email_alert  # all from defaults: level alert, the host's name
    assert (glance.level, glance.myhostname, glance.location.line) == ("alert", None, 6)
    assert warnings(loaded) == []


def test_email_alert_errors_and_warnings(tmp_path):
    loaded = load_text(tmp_path, DEFAULTS + """\
        mailers ops
            mailer smtp1 192.0.2.25:25
        mailers unused
            mailer smtp1 192.0.2.26:25
        backend b
            email-alert mailers ops
            email-alert level info
            server s 127.0.0.1:1 check
        backend c
            email-alert mailers ops
            email-alert from a@example.org
            email-alert to b@example.org
        """)
    assert loaded.config.proxy("b").email_alert is None
    assert warnings(loaded) == [
        "10: 'email-alert' will be ignored for backend 'b': 'email-alert from', 'email-alert mailers' and "
        "'email-alert to' are each needed once any email-alert line is given (missing: from, to); "
        "HAProxy ignores it too",
        "8: mailers section 'unused' is not used by any proxy's complete email-alert settings "
        "(HAProxy removes it as incomplete)"]
    assert messages(tmp_path, DEFAULTS + """\
        mailers ops
            mailer smtp1 192.0.2.25
            mailer smtp2
            mailer smtp3 192.0.2.25:25 extra
            timeout mail soon
            timeout connect 1s
            bogus
        mailers ops
        backend b
            email-alert
            email-alert level verbose
            email-alert from
            email-alert to a@example.org b@example.org
            email-alert frm a@example.org
            email-alert mailers nowhere
            email-alert from a@example.org
            email-alert to <b@example.org>
            email-alert myhostname -bad-
        """) == [
        "7: missing port in mailer 'smtp1' address '192.0.2.25': expected ADDR:PORT such as 10.0.0.11:443 or *:80",
        "8: 'mailer' expects <name> and <addr>:<port> as arguments",
        "9: 'mailer smtp3': unexpected 'extra' after the address",
        "10: invalid timeout mail 'soon': expected a whole number with an optional unit among us, ms, s, m, h, d "
        "(a bare number is milliseconds), e.g. 5s or 2000",
        "11: 'timeout connect' is not allowed in a 'mailers' section (allowed in: defaults, listen, backend)",
        "12: unknown keyword 'bogus' in 'mailers' section",
        "13: mailers section 'ops' has the same name as another mailers section declared at "
        f"{tmp_path / 'haproxy.cfg'}:6",
        "15: 'email-alert' expects one of: from, level, mailers, myhostname, to",
        "16: 'email-alert level' expects one of emerg, alert, crit, err, warning, notice, info, debug "
        "(got 'verbose')",
        "17: 'email-alert from' expects one argument",
        "18: 'email-alert to' expects one argument (got 'a@example.org b@example.org')",
        "19: unknown keyword 'email-alert frm' in 'backend' section; did you mean 'email-alert from'?",
        "22: 'email-alert to' expects an e-mail address (got '<b@example.org>')",
        "23: 'email-alert myhostname' expects a host name (got '-bad-')",
    ]
    assert messages(tmp_path, DEFAULTS + """\
        backend b
            email-alert mailers nowhere
            email-alert from a@example.org
            email-alert to b@example.org
        """) == ["7: proxy 'b': unable to find mailers 'nowhere' (no mailers section has that name)"]
# --------------------------------------------------------------------- caches


def test_cache_sections_and_rules(tmp_path):
    loaded = load_text(tmp_path, DEFAULTS + """\
        listen app
            bind :80
            filter cache static
            http-request cache-use static if { path_beg /static }
            http-response add-header X-A a
            http-response cache-store static unless { status 404 }
            server s 127.0.0.1:1
        cache static
            total-max-size 4
            max-object-size 10000
            max-age 240
            process-vary on
            max-secondary-entries 3
        cache small
            total-max-size 1
        """)
    config = loaded.config
    static, small = config.caches
    assert (static.name, static.total_max_size, static.max_object_size, static.max_age,
            static.process_vary, static.max_secondary_entries) == ("static", 4 << 20, 10000, 240, True, 3)
    # a 256th of the size by default, HAProxy's other defaults
    assert (small.max_object_size, small.max_age, small.process_vary, small.max_secondary_entries) == (
        4096, 60, False, 10)
    app = config.proxy("app")
    use, = [rule for rule in app.http_request_rules if rule.action == "cache-use"]
    store = app.http_response_rules[-1]
    assert (use.cache, store.action, store.cache, store.condition.unless) == ("static", "cache-store", "static", True)
    assert [rule.cache for rule in app.cache_filters] == ["static"]


def test_cache_errors_as_haproxy(tmp_path):
    """The messages follow `haproxy -c` (2.6); a name is checked once every
    section is read, as HAProxy finds caches declared after the proxy."""
    assert messages(tmp_path, DEFAULTS + """\
        cache c1
            total-max-size 4
        cache c1
            total-max-size 4
        cache
        cache c2 extra
        cache c3
            max-age 3
        cache c4
            total-max-size 4096
        cache c5
            total-max-size 4
            max-object-size 3000000
            max-secondary-entries 0
            max-age 10 20
        listen app
            bind :80
            http-request cache-use
            http-request cache-use c1 foo
            http-request cache-use nosuch
            http-response cache-store missing if { status 200 }
            filter cache c1
            filter cache c1
            filter cache gone
            filter compression
            server s 127.0.0.1:1
        """) == [
        "8: Duplicate cache name 'c1' (first at " + str(tmp_path / "haproxy.cfg") + ":6)",
        "10: 'cache' expects a <name> argument",
        "11: 'cache' cannot handle unexpected argument 'extra'",
        "12: Size not specified for cache 'c3': 'total-max-size' is mandatory",
        "15: \"total-max-size\" (4096) must not be greater than 4095",
        "14: Size not specified for cache 'c4': 'total-max-size' is mandatory",
        "19: max-secondary-entries wrong value '0': it must be strictly positive",
        "20: 'max-age' cannot handle unexpected argument '20'",
        "16: cache 'c5': \"max-object-size\" is limited to an half of \"total-max-size\" => 2097152",
        "23: 'http-request cache-use' expects a cache name",
        "24: 'http-request cache-use' expects either 'if' or 'unless' followed by a condition but found 'foo'",
        "28: 'filter' : 'app: multiple explicit declarations of the cache filter 'c1''",
        "30: 'filter' is not supported by haply",
        # once every file is read
        "25: proxy 'app': unable to find the cache 'nosuch' referenced by 'cache-use'",
        "26: proxy 'app': unable to find the cache 'missing' referenced by 'cache-store'",
        "29: proxy 'app': unable to find the cache 'gone' referenced by the filter 'cache'",
    ]


def test_cache_settings_haproxy_only_warns_about(tmp_path):
    loaded = load_text(tmp_path, DEFAULTS + """\
        cache c
            total-max-size 2
            max-age soon
            process-vary yes
        """)
    cache, = loaded.config.caches
    assert (cache.max_age, cache.process_vary) == (60, False)
    assert warnings(loaded) == ["8: 'max-age' expects an age parameter in seconds (keeping 60)",
                                "9: 'process-vary' expects \"on\" or \"off\" (enable or disable vary processing)"]


def test_capture_rules(tmp_path):
    loaded = load_text(tmp_path, DEFAULTS + """\
        frontend f
            bind :80
            capture request header Host len 10
            declare capture request len 5
            http-request capture method len 3
            http-request capture path id 1 if { path_beg /a }
            declare capture response len 6
            http-response capture status id 0
            default_backend b
        backend b
            server s 127.0.0.1:1
        """)
    proxy = loaded.config.proxy("f")
    assert [(c.kind, c.name, c.length) for c in proxy.captures] == [
        ("request", "Host", 10), ("request", "", 5), ("request", "", 3), ("response", "", 6)]
    assert [(r.side, r.slot, r.expression, r.length) for r in proxy.http_request_rules] == [
        ("request", 2, "method", 3), ("request", 1, "path", 5)]
    assert [(r.side, r.slot, r.length) for r in proxy.http_response_rules] == [("response", 0, 6)]
    assert messages(tmp_path, DEFAULTS + """\
        frontend f
            bind :80
            http-request capture path id 0
            http-request capture path
            http-response capture status len 4
            http-response capture path id 0
            declare capture request 5
            default_backend b
        backend b
            server s 127.0.0.1:1
        """) == [
        "8: 'http-request capture ... id 0': 'f' has 0 request capture slot(s) so far "
        "(declare capture request len N makes one)",
        "9: 'http-request capture' expects a sample expression, then len N or id N",
        "10: 'http-response capture' expects a sample expression, then id N",
        "11: 'http-response capture': sample fetch 'path' reads the request, which an http-response "
        "rule does not have: keep it in a txn. variable from an http-request rule",
        "12: 'declare' expects 'capture request len N' or 'capture response len N'",
    ]


def test_set_log_level_rules(tmp_path):
    loaded = load_text(tmp_path, DEFAULTS + """\
        frontend f
            bind :80
            http-request set-log-level silent if { path /healthcheck }
            http-response set-log-level err if { status 500:599 }
            default_backend b
        backend b
            server s 127.0.0.1:1
        """)
    proxy = loaded.config.proxy("f")
    assert [(r.action, r.level) for r in proxy.http_request_rules + proxy.http_response_rules] == [
        ("set-log-level", "silent"), ("set-log-level", "err")]
    assert messages(tmp_path, DEFAULTS + "frontend f\n    http-request set-log-level loud\n") == [
        "7: 'http-request set-log-level' expects one of emerg, alert, crit, err, warning, notice, info, "
        "debug, silent, then optionally if|unless CONDITION"]


def test_server_limits_and_session_rate_reach_the_model(tmp_path):
    text = DEFAULTS + ("frontend f\n    bind :80\n    rate-limit sessions 25\n    default_backend b\n"
                       "backend b\n    fullconn 300\n    server s 10.0.0.1:80 minconn 10 maxconn 50\n")
    config = load_text(tmp_path, text).config
    assert config.proxy("f").rate_limit_sessions == 25
    b = config.proxy("b")
    assert (b.fullconn, b.servers[0].minconn, b.servers[0].maxconn) == (300, 10, 50)


# ---------------------------------------------------------------------- source


def test_source_of_a_backend_and_of_its_servers(tmp_path):
    loaded = load_text(tmp_path, DEFAULTS + """\
        source 10.0.0.1
        backend b
            server s1 127.0.0.1:81
            server s2 127.0.0.1:82 source 127.0.0.3:20000-20010
            server s3 127.0.0.1:83 source [::1] interface lo
        backend c
            source 127.0.0.2:0
            server s 127.0.0.1:81
        backend d
            source localhost:5000
            server s 127.0.0.1:81
        """)
    b, c, d = (loaded.config.proxy(name) for name in "bcd")
    assert b.source == SourceAddress("10.0.0.1")  # from the defaults
    assert [s.source for s in b.servers] == [
        None, SourceAddress("127.0.0.3", 20000, 20010), SourceAddress("::1", interface="lo")]
    assert c.source == SourceAddress("127.0.0.2")
    assert d.source == SourceAddress("127.0.0.1", 5000, 5000)  # a name is resolved once


def test_source_errors(tmp_path):
    assert messages(tmp_path, DEFAULTS + """\
        backend b
            source 127.0.0.2 usesrc clientip
            source 127.0.0.2:1000-2000
            source 127.0.0.2 bogus
            source
            server s1 127.0.0.1:81 source 127.0.0.3:20010-20000
            server s2 127.0.0.1:82 source 127.0.0.3 interface
        """) == [
        "7: 'source': 'usesrc' (transparent proxying) is not supported by haply",
        "8: 'source': port ranges are not supported here (only on a server line, as in HAProxy)",
        "9: 'source': unexpected 'bogus' (expected 'interface NAME')",
        "10: 'source' needs an address, such as 10.0.0.5 or 10.0.0.5:0",
        "11: server option 'source': invalid port range '20010-20000' (expected LOW-HIGH, LOW <= HIGH)",
        "12: server option 'source': 'interface' needs an interface name"]


# --------------------------------------------------------------- external-check


def test_external_check(tmp_path):
    loaded = load_text(tmp_path, """\
        global
            external-check
            insecure-fork-wanted
        defaults
            timeout connect 1s
            timeout client 1s
            timeout server 1s
            option external-check
            external-check path "/usr/bin:/bin"
        backend galera
            external-check command /usr/local/bin/clustercheck
            server db1 192.0.2.21:3306 check
        """)
    galera = loaded.config.proxy("galera")
    assert galera.check_kind == "external"
    assert (galera.external_check_command, galera.external_check_path) == (
        "/usr/local/bin/clustercheck", "/usr/bin:/bin")
    assert loaded.config.global_.external_check and loaded.config.global_.insecure_fork_wanted


def test_external_check_needs_what_haproxy_needs(tmp_path):
    """HAProxy 2.6's errors and warning, observed with `haproxy -c`."""
    body = """\
        defaults
            timeout connect 1s
            timeout client 1s
            timeout server 1s
        backend a
            option external-check
            external-check command /bin/true
            server s 192.0.2.1:80 check
        backend b
            option external-check
            server s 192.0.2.1:80 check
        """
    assert messages(tmp_path, body) == [
        "5: Proxy 'a' : 'option external-check' unable to find required 'global.external-check'.",
        "9: Proxy 'b' : 'option external-check' unable to find required 'global.external-check'."]
    assert messages(tmp_path, "global\n    external-check\n" + textwrap.dedent(body)) == [
        "11: Proxy 'b' : 'option external-check' unable to find required 'external-check command'."]
    loaded = load_text(tmp_path, "global\n    external-check\n" + textwrap.dedent(body).replace(
        "backend b\n    option external-check\n", "backend b\n"))
    assert warnings(loaded) == [
        "7: Proxy 'a' : 'insecure-fork-wanted' not enabled in the global section, 'option "
        "external-check' will likely fail with HAProxy (haply runs the checks)"]


def test_restricted_request_header_names(tmp_path):
    loaded = load_text(tmp_path, DEFAULTS + """\
        option http-restrict-req-hdr-names delete
        frontend f
            bind :80
            option http-restrict-req-hdr-names reject
            default_backend b
        backend b
            server s 127.0.0.1:81
        """)
    assert loaded.config.proxy("f").restrict_header_names == "reject"
    assert loaded.config.proxy("b").restrict_header_names == "delete"  # from the defaults
    assert messages(tmp_path, DEFAULTS + """\
        frontend f
            bind :80
            option http-restrict-req-hdr-names drop
            no option http-restrict-req-hdr-names
            default_backend b
        backend b
            server s 127.0.0.1:81
        """) == [
        "8: invalid parameter 'drop'. option 'http-restrict-req-hdr-names' expects 'preserve', "
        "'reject' or 'delete' option.",
        "9: negation/default is not supported for option 'http-restrict-req-hdr-names'"]


def test_a_log_format_is_one_word_and_not_empty(tmp_path):
    """As HAProxy 2.6 reads them: `log-format ""` is no format, and a format
    with unescaped spaces is several arguments."""
    found = messages(tmp_path, DEFAULTS + """\
        frontend f
            bind :80
            log-format ""
            unique-id-format %ci %cp
            default_backend b
        backend b
            server s 127.0.0.1:81
        """)
    assert "8: 'log-format' expects a log-format string (got nothing)" in found, found
    assert ("9: 'unique-id-format' expects only one argument, don't forget to escape spaces!"
            in found), found


def test_a_log_format_without_a_log_address_is_a_warning(tmp_path):
    """As HAProxy 2.6 warns: a frontend's format (its own or the defaults')
    with no `log` line, or `log global` and no global one, logs nothing."""
    loaded = load_text(tmp_path, DEFAULTS + """        frontend fe
            bind :80
            option httplog
            default_backend be
        listen li
            bind :81
            log global
            option tcplog
            server s 127.0.0.1:1
        frontend logged
            bind :82
            log 127.0.0.1:514 local0
            option httplog
            default_backend be
        backend be
            server s 127.0.0.1:1
        """)
    assert warnings(loaded) == [
        "6: log format ignored for frontend 'fe' since it has no log address",
        "10: log format ignored for proxy 'li' since it has no log address"]


def test_socket_options_of_each_side(tmp_path):
    """tcpka asks keep-alive of both sides, clitcpka and srvtcpka of one;
    their settings are seconds unless a unit says otherwise; tcp-smart-accept
    is on by default in mode http and can be turned off."""
    loaded = load_text(tmp_path, DEFAULTS + """\
        frontend web
            bind :80
            option clitcpka
            clitcpka-idle 2m
            clitcpka-intvl 15
            clitcpka-cnt 3
            default_backend app
        frontend quick
            bind :81
            no option tcp-smart-accept
            default_backend app
        backend app
            option tcpka
            srvtcpka-idle 90
            srvtcpka-intvl 20
            srvtcpka-cnt 5
            option tcp-smart-connect
            server s 127.0.0.1:1
        """)
    web, quick, app = (loaded.config.proxy(name) for name in ("web", "quick", "app"))
    assert (web.client_socket.keepalive, web.client_socket.keepalive_idle,
            web.client_socket.keepalive_interval, web.client_socket.keepalive_count) == (True, 120, 15, 3)
    assert web.client_socket.delayed_ack and not quick.client_socket.delayed_ack
    assert not quick.client_socket.keepalive
    assert (app.server_socket.keepalive, app.server_socket.keepalive_idle,
            app.server_socket.keepalive_interval, app.server_socket.keepalive_count,
            app.server_socket.delayed_ack) == (True, 90, 20, 5, True)
    found = messages(tmp_path, DEFAULTS + """\
        backend app
            srvtcpka-idle 1m30s
            srvtcpka-cnt none
            server s 127.0.0.1:1
        """)
    assert any("7: invalid srvtcpka-idle '1m30s'" in line and "a bare number is seconds" in line
               for line in found), found
    assert any(line.startswith("8: ") and "srvtcpka-cnt" in line for line in found), found
