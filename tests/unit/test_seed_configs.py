"""The guides' haproxy.cfg files load; where cheap, HAProxy 2.6 (`haproxy -c`)
agrees with haply on which files are valid."""

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from haply.config import ConfigError, load

SHARED = Path(__file__).resolve().parents[2] / ".." / "shared"  # beside the repository
SEEDS = SHARED / "fixtures" / "seed-configs"
HAPROXY = shutil.which("haproxy") or "/usr/sbin/haproxy"
SEED_FILES = sorted(SEEDS.glob("*.haproxy.cfg"))


def test_seed_folder_is_there():
    assert {p.name for p in SEED_FILES} >= {
        "openstack-ha-guide.haproxy.cfg", "rdo-wiki.haproxy.cfg", "stats-page.haproxy.cfg"}


@pytest.mark.parametrize("path", SEED_FILES, ids=lambda p: p.name)
def test_seed_config_loads(path):
    loaded = load([str(path)], {})
    assert loaded.config.proxies
    assert not loaded.diagnostics.errors


def test_openstack_guide_model():
    config = load([str(SEEDS / "openstack-ha-guide.haproxy.cfg")], {}).config
    assert len(config.proxies) == 14
    galera = config.proxy("galera_cluster")
    assert (galera.kind, galera.mode, galera.balance, galera.check_kind) == ("listen", "tcp", "source", "mysql")
    assert [(b.host, b.port) for b in galera.binds] == [("10.0.0.11", 3306)]
    assert [(s.name, s.backup, s.check, s.check_port, s.inter, s.rise, s.fall) for s in galera.servers] == [
        ("controller1", False, True, 9200, 2.0, 2, 5),
        ("controller2", True, True, 9200, 2.0, 2, 5),
        ("controller3", True, True, 9200, 2.0, 2, 5),
    ]
    dashboard = config.proxy("dashboard_cluster")
    assert (dashboard.check_kind, dashboard.http_check.method, dashboard.http_check.uri) == ("http", "OPTIONS", "/")
    assert dashboard.tcpka and dashboard.redispatch and dashboard.log_format == "tcplog"
    t = dashboard.timeouts
    assert (t.http_request, t.queue, t.connect, t.client, t.server, t.check) == (10, 60, 10, 60, 60, 10)
    assert dashboard.maxconn == 4000 and [l.address for l in dashboard.logs] == ["global"]
    g = config.global_
    assert (g.chroot, g.daemon, g.group, g.maxconn, g.pidfile, g.user) == (
        "/var/lib/haproxy", True, "haproxy", 4000, "/var/run/haproxy.pid", "haproxy")


def test_rdo_wiki_model():
    config = load([str(SEEDS / "rdo-wiki.haproxy.cfg")], {}).config
    assert len(config.frontends) == 9 and len(config.backends) == 9
    front = config.proxy("keystone-admin-vip")
    assert (front.mode, front.maxconn, front.default_backend) == ("http", 10000, "keystone-admin-api")
    back = config.proxy("keystone-admin-api")
    assert [(s.host, s.port, s.inter) for s in back.servers][0] == ("10.15.85.141", 35357, 10.0)


def test_stats_page_loads_with_deprecation_warnings():
    path = SEEDS / "stats-page.haproxy.cfg"
    loaded = load([str(path)], {})
    assert [(d.location.line, d.message.split(";")[0]) for d in loaded.diagnostics.warnings] == [
        (16, "'contimeout' is deprecated"),
        (17, "'clitimeout' is deprecated"),
        (18, "'srvtimeout' is deprecated"),
        (27, "'listen stats 192.168.243.11:80' is the old form, which HAProxy 2.6 rejects"),
    ]
    stats = loaded.config.proxy("stats")
    assert [(b.host, b.port) for b in stats.binds] == [("192.168.243.11", 80)]
    assert (stats.timeouts.connect, stats.timeouts.client, stats.timeouts.server) == (5.0, 50.0, 50.0)
    assert (stats.stats.enabled, stats.stats.uri, stats.stats.realm, stats.stats.auth) == (
        True, "/stats", "HAProxy Statistics", (("admin", "openstack"),))
    assert [code for code, _ in stats.errorfiles] == [400, 403, 408, 500, 502, 503, 504]
    assert all(body.startswith(b"HTTP/1.0 ") for _, body in stats.errorfiles)
    assert stats.log_format == "httplog" and stats.dontlognull
    g = loaded.config.global_
    assert [(l.address, l.facility, l.level) for l in g.logs] == [
        ("/dev/log", "local0", None), ("/dev/log", "local1", "notice")]
    assert [(s.path, s.level) for s in g.stats_sockets] == [("/var/lib/haproxy/status", "operator")]


def test_placeholder_in_the_guide_is_rejected_with_its_line():
    path = SEEDS / "openstack-ha-guide.haproxy.cfg.orig"
    with pytest.raises(ConfigError) as error:
        load([str(path)], {})
    errors = [d for d in error.value.diagnostics if d.severity == "error"]
    assert errors[0].location.line == 22
    assert str(errors[0]) == (
        f"{path}:22: error: invalid bind address '<Virtual IP>:443': it looks like a placeholder; "
        "replace it with an address such as 10.0.0.11:443"
    )
    assert len(errors) == 14  # one per listen section


# --------------------------------------------------------------------- oracle

VALID = {
    "minimal": """\
        defaults
            mode http
            timeout connect 5s
            timeout client 5s
            timeout server 5s
        frontend f
            bind 127.0.0.1:18080
            acl api path_beg /api
            use_backend b if api || { hdr(host) -i api.example }
            default_backend b
        backend b
            balance leastconn
            option httpchk GET /health
            http-check expect status 200
            server s1 127.0.0.1:19000 check inter 2s rise 2 fall 3 weight 10
        """,
    "tcp-listen": """\
        defaults
            mode tcp
            timeout connect 5s
            timeout client 5s
            timeout server 5s
        listen db
            bind 127.0.0.1:13306
            balance source
            option mysql-check user haproxy
            server db1 127.0.0.1:13307 check port 9200 backup
        """,
    "conditional": """\
        .if version_atleast(2.4) && !defined(HAPLY_TEST_UNSET)
        defaults
            mode tcp
            timeout connect 5s
            timeout client 5s
            timeout server 5s
        .else
            this line is dropped
        .endif
        listen l
            bind 127.0.0.1:18090
        .if streq("${HAPLY_TEST_UNSET}",)
            server s1 127.0.0.1:18091
        .endif
        """,
}
INVALID = {
    "alert": '.alert "refuse to start"\nglobal\n    daemon\n',
    "unclosed-if": ".if 1\nglobal\n    daemon\n",
    "missing-backend": """\
        defaults
            mode http
        frontend f
            bind 127.0.0.1:18080
            default_backend nope
        """,
    "mode-mismatch": """\
        defaults
            mode http
        frontend f
            bind 127.0.0.1:18080
            default_backend b
        backend b
            mode tcp
        """,
    "weight": "backend b\n    server s 127.0.0.1:1 weight 300\n",
    "missing-port": "frontend f\n    bind 127.0.0.1\n",
    "unknown-keyword": "global\n    maxconnn 10\n",
    "duplicate-server": "backend b\n    server s 127.0.0.1:1\n    server s 127.0.0.1:2\n",
    "undeclared-acl": "frontend f\n    bind :1\n    use_backend b if nope\nbackend b\n",
    "bad-time": "defaults\n    timeout client 5x\n",
    "tls-server-without-ca": "backend b\n    server s 127.0.0.1:1 ssl\n",
    "ssl-bind-without-crt": "frontend f\n    bind 127.0.0.1:18443 ssl\n",
    "agent-without-port": "backend b\n    server s 127.0.0.1:1 agent-check\n",
    "unterminated-quote": 'global\n    pidfile "/x\n',
}
# haply is deliberately more lenient than HAProxy 2.6 on the pre-2.1 spellings
# (it warns and carries on, so old guides still load) ...
LENIENT = {
    "legacy-timeouts": "defaults\n    mode http\n    contimeout 5000\n    clitimeout 5000\n    srvtimeout 5000\nlisten l\n    bind 127.0.0.1:18081\n",
    "legacy-listen": "defaults\n    mode tcp\n    timeout connect 1s\n    timeout client 1s\n    timeout server 1s\nlisten l 127.0.0.1:18082\n    server s 127.0.0.1:18083\n",
}
# ... and stricter where HAProxy only warns that it ignores a keyword.
IGNORED = {
    "default-backend-in-backend": "defaults\n    mode http\nbackend a\nbackend b\n    default_backend a\n",
    "timeout-client-in-backend": "defaults\n    mode http\nbackend b\n    timeout client 5s\n",
}


def haproxy_accepts(tmp_path, name, text):
    path = tmp_path / f"{name}.cfg"
    path.write_text(_dedent(text))
    result = subprocess.run([HAPROXY, "-c", "-q", "-f", str(path)], capture_output=True, text=True, timeout=30,
                            stdin=subprocess.DEVNULL)
    # exit 2: "Configuration file has no error but will not start (no listener)"
    return result.returncode in (0, 2), path


def haply_accepts(path):
    try:
        load([str(path)], {})
    except ConfigError:
        return False
    return True


def _dedent(text):
    import textwrap
    return textwrap.dedent(text)


@pytest.mark.oracle
@pytest.mark.parametrize("name", sorted(VALID) + sorted(INVALID))
def test_haproxy_and_haply_agree(tmp_path, name):
    assert os.access(HAPROXY, os.X_OK), "HAProxy 2.6 is the oracle (Debian package haproxy)"
    text = VALID.get(name) or INVALID[name]
    oracle, path = haproxy_accepts(tmp_path, name, text)
    assert oracle == (name in VALID), f"HAProxy itself judged {name} unexpectedly"
    assert haply_accepts(path) == oracle


@pytest.mark.oracle
@pytest.mark.parametrize("name", sorted(LENIENT))
def test_haply_accepts_legacy_forms_haproxy_rejects(tmp_path, name):
    oracle, path = haproxy_accepts(tmp_path, name, LENIENT[name])
    assert not oracle
    loaded = load([str(path)], {})
    assert loaded.diagnostics.warnings


@pytest.mark.oracle
@pytest.mark.parametrize("name", sorted(IGNORED))
def test_haply_ignores_with_a_warning_what_haproxy_ignores(tmp_path, name):
    """A keyword of the other capability (a frontend's in a backend): HAProxy
    ignores it with a warning, and so does haply."""
    oracle, path = haproxy_accepts(tmp_path, name, IGNORED[name])
    assert oracle
    found = [d.message for d in load([str(path)], {}).diagnostics.warnings]
    assert any("has no frontend capability" in message for message in found), found


@pytest.mark.oracle
def test_debian_default_config_agrees(tmp_path):
    path = Path("/etc/haproxy/haproxy.cfg")
    assert path.exists(), "Debian's haproxy package installs /etc/haproxy/haproxy.cfg"
    oracle = subprocess.run([HAPROXY, "-c", "-q", "-f", str(path)], capture_output=True, timeout=30,
                            stdin=subprocess.DEVNULL).returncode in (0, 2)
    assert haply_accepts(path) == oracle
