"""`resolvers` sections and the servers' resolution keywords: what is read,
and the errors, worded after `haproxy -c` where HAProxy refuses the same line."""

from __future__ import annotations

import textwrap

import pytest

from haply.config import ConfigError, load
from haply.config.model import DEFAULT_HOLD
from haply.config.resolvers import read_resolv_conf

DEFAULTS = """\
defaults
    mode http
    timeout connect 5s
    timeout client 10s
    timeout server 10s
"""


def load_text(tmp_path, text):
    path = tmp_path / "haproxy.cfg"
    path.write_text(textwrap.dedent(text))
    return load([str(path)], {})


def errors(tmp_path, text) -> list[str]:
    with pytest.raises(ConfigError) as error:
        load_text(tmp_path, text)
    return [f"{d.location.line}: {d.message}" for d in error.value.diagnostics if d.severity == "error"]


def test_a_resolvers_section_and_its_servers(tmp_path):
    loaded = load_text(tmp_path, """\
        resolvers dns
            nameserver ns1 127.0.0.1:5353
            nameserver ns2 udp@[::1]:53
            resolve_retries 2
            timeout resolve 200ms
            timeout retry 100ms
            hold nx 300ms
            hold refused 1s
            hold valid 2s
            hold timeout 400ms
            hold other 500ms
            hold obsolete 1s
            accepted_payload_size 4096
        resolvers quiet
            nameserver ns 192.0.2.53:53
        """ + DEFAULTS + """\
        backend be
            default-server resolvers dns init-addr none
            server s app.example.org:80 resolve-prefer ipv4 resolve-net 10.0.0.0/8,fd00::/8
            server t app.example.org:81 resolve-opts allow-dup-ip
            server u 127.0.0.1:82
        """)
    dns, quiet = (s for s in loaded.config.resolvers if s.name != "default")
    assert [(n.name, n.host, n.port, n.location.line) for n in dns.nameservers] == [
        ("ns1", "127.0.0.1", 5353, 2), ("ns2", "::1", 53, 3)]
    assert (dns.resolve_retries, dns.timeout_resolve, dns.timeout_retry, dns.accepted_payload_size) == (
        2, 0.2, 0.1, 4096)
    assert dict(dns.hold) == {"nx": 0.3, "refused": 1.0, "valid": 2.0, "timeout": 0.4, "other": 0.5,
                              "obsolete": 1.0}
    # manual 5.3.2: 3 retries, 1s timeouts, 512 bytes, 30s holds but valid 10s
    assert (quiet.resolve_retries, quiet.timeout_resolve, quiet.timeout_retry,
            quiet.accepted_payload_size, quiet.hold) == (3, 1.0, 1.0, 512, DEFAULT_HOLD)
    s, t, u = loaded.config.proxy("be").servers
    assert (s.resolvers, s.resolve_prefer, s.resolve_net, s.resolve_opts) == (
        "dns", "ipv4", ("10.0.0.0/8", "fd00::/8"), ())
    assert (t.resolvers, t.resolve_prefer, t.resolve_opts) == ("dns", "ipv6", ("allow-dup-ip",))
    assert u.resolvers == "dns"  # an IP address: never resolved (haply.resolvers.service)
    assert [d.message for d in loaded.diagnostics.warnings] == []


def test_parse_resolv_conf_names_each_server_after_its_address(tmp_path, monkeypatch):
    resolv = tmp_path / "resolv.conf"
    resolv.write_text("# local\nsearch example.org\nnameserver 192.0.2.1\n"
                      "nameserver fe80::1%eth0 ; link-local\noptions ndots:2\nnameserver dns.example.org\n")
    monkeypatch.setattr("haply.config.resolvers.RESOLV_CONF", str(resolv))
    loaded = load_text(tmp_path, """\
        resolvers dns
            nameserver first 127.0.0.1:53
            parse-resolv-conf
        """)
    assert [(n.name, n.host, n.port) for n in loaded.config.resolvers[0].nameservers] == [
        ("first", "127.0.0.1", 53), ("192.0.2.1", "192.0.2.1", 53), ("fe80::1", "fe80::1", 53)]
    assert [d.message for d in loaded.diagnostics.warnings] == [
        f"'parse-resolv-conf': {resolv} names 'dns.example.org', which is not an IP address: skipped"]


def test_read_resolv_conf():
    assert read_resolv_conf("nameserver 1.1.1.1\n#nameserver 2.2.2.2\n  nameserver   ::1  \nnameserver\n") == [
        "1.1.1.1", "::1"]


def test_section_errors(tmp_path):
    assert errors(tmp_path, """\
        resolvers dns
            nameserver ns1 127.0.0.1:53
            nameserver ns1 127.0.0.2:53
            nameserver ns2 127.0.0.1
            nameserver ns3
            nameserver ns4 tcp@127.0.0.1:53
            nameserver ns5 dns.example.org:53
            hold foo 1s
            hold nx
            timeout foo 1s
            timeout resolve
            timeout retry 0
            resolve_retries 0
            accepted_payload_size 70000
            resolution_pool_size 10
            foo bar
        resolvers
        resolvers dns
        """) == [
        "3: nameserver 'ns1' has same name as another nameserver (declared at "
        f"{tmp_path}/haproxy.cfg:2)",
        "4: 'nameserver ns2' : missing port specification in '127.0.0.1'",
        "5: 'nameserver' expects <name> and <addr>[:<port>] as arguments",
        "6: 'nameserver ns4': name servers over TCP ('tcp@') are not supported by haply; use a UDP address",
        "7: 'nameserver ns5' expects an IP address, not 'dns.example.org'",
        "8: unknown keyword 'hold foo' in 'resolvers' section; did you mean 'hold other'?",
        "9: 'hold nx' expects a <time> as argument",
        "10: unknown keyword 'timeout foo' in 'resolvers' section; did you mean 'timeout resolve'?",
        "11: 'timeout resolve' expects <time> as argument",
        "12: 'timeout retry' must be more than 0",
        "13: 'resolve_retries' expects a number of queries, at least 1 (got '0')",
        "14: 'accepted_payload_size' must be between 12 and 65535 inclusive (was 70000)",
        "15: 'resolution_pool_size' is not supported by haply",
        "16: unknown keyword 'foo' in 'resolvers' section",
        "17: missing name for resolvers section",
        f"18: resolvers 'dns' has same name as another resolvers (declared at {tmp_path}/haproxy.cfg:1)",
    ]


def test_a_section_without_nameserver_is_warned_about(tmp_path):
    loaded = load_text(tmp_path, "resolvers dns\n    timeout resolve 1s\n")
    assert [(d.location.line, d.message) for d in loaded.diagnostics.warnings] == [
        (1, "resolvers 'dns' has no nameservers configured")]


def test_server_keyword_errors(tmp_path):
    assert errors(tmp_path, """\
        resolvers dns
            nameserver ns1 127.0.0.1:53
        """ + DEFAULTS + """\
        backend be
            server a 127.0.0.1:80 resolve-prefer ipv5
            server b 127.0.0.1:80 resolve-net 10.0.0.0/33
            server c 127.0.0.1:80 resolve-opts foo
            server d 127.0.0.1:80 resolve-opts ignore-weight
            server e 127.0.0.1:80 resolvers
            server f app.example.org:80 resolvers nope init-addr none
            server g _http._tcp.example.org resolvers dns init-addr none
        """) == [
        "9: 'resolve-prefer' expects either ipv4 or ipv6 as argument",
        "10: 'resolve-net' invalid network '10.0.0.0/33'",
        "11: 'resolve-opts' : unknown resolve-opts option 'foo', supported methods are 'allow-dup-ip', "
        "'ignore-weight', and 'prevent-dup-ip'",
        "12: 'resolve-opts ignore-weight' is not supported by haply (it concerns the weights of SRV "
        "records, which haply does not resolve)",
        "13: server option 'resolvers' needs an argument",
        "15: server 'g': SRV records ('_http._tcp.example.org') are not supported by haply; "
        "name an A/AAAA host",
        # found once every file is read, after the lines' own errors
        "14: backend 'be', server 'f': unable to find required resolvers 'nope'",
    ]


def test_haproxy_s_implicit_default_section(tmp_path, monkeypatch):
    """Without a section named default, one is made from resolv.conf (listed
    after the others, as `show resolvers` lists it); a server may name it."""
    resolv = tmp_path / "resolv.conf"
    resolv.write_text("nameserver 192.0.2.1\nnameserver 192.0.2.1\nnameserver ::1\n")
    monkeypatch.setattr("haply.config.resolvers.RESOLV_CONF", str(resolv))
    loaded = load_text(tmp_path, """\
        resolvers dns
            nameserver ns1 127.0.0.1:53
        """ + DEFAULTS + """\
        backend be
            server s app.example.org:80 resolvers default init-addr none
        """)
    assert [s.name for s in loaded.config.resolvers] == ["dns", "default"]
    default = loaded.config.resolvers[1]
    assert [(n.name, n.host, n.port) for n in default.nameservers] == [
        ("192.0.2.1", "192.0.2.1", 53), ("::1", "::1", 53)]
    assert (default.resolve_retries, default.timeout_resolve, default.hold) == (3, 1.0, DEFAULT_HOLD)
    # a section of that name is the user's; no resolv.conf, no section, no error
    named = load_text(tmp_path, "resolvers default\n    nameserver mine 127.0.0.1:53\n" + DEFAULTS)
    assert [n.name for s in named.config.resolvers for n in s.nameservers] == ["mine"]
    monkeypatch.setattr("haply.config.resolvers.RESOLV_CONF", str(tmp_path / "missing"))
    assert load_text(tmp_path, DEFAULTS + "backend be\n    server s 127.0.0.1:80\n").config.resolvers == ()
