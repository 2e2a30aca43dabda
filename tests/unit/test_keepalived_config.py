"""keepalived.conf parser: seeds, every supported keyword, errors with file:line."""

from __future__ import annotations

import glob
import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from haply.config.diagnostics import ConfigError, Diagnostics
from haply.config.keepalived import (
    KEYWORDS,
    load_keepalived,
    looks_like_keepalived,
    parse_keepalived,
)

SEEDS = sorted(glob.glob("/work/shared/fixtures/seed-configs/*.keepalived.conf")) or sorted(
    glob.glob(os.path.join(os.path.dirname(__file__), "../../../shared/fixtures/seed-configs/"
                           "*.keepalived.conf")))

FULL = """\
! a full configuration
global_defs {
    router_id lb-1
    vrrp_version 3
    vrrp_garp_master_delay 2
    vrrp_garp_master_repeat 3
    vrrp_garp_master_refresh 60
    vrrp_garp_master_refresh_repeat 2
    vrrp_garp_interval 0.01
    script_user nobody nogroup
    enable_script_security
}
vrrp_script chk_proxy {
    script "/usr/bin/test -e /run/proxy"   # comment after a value
    interval 0.5
    timeout 2
    weight -30
    rise 2
    fall 3
    user daemon
}
vrrp_script chk_db {
    script /bin/true
    weight 10 reverse
}
vrrp_instance VI_1 {
    state MASTER
    interface eth0
    virtual_router_id 51
    priority 150
    advert_int 0.1
    preempt_delay 5
    garp_master_repeat 7
    virtual_ipaddress {
        192.0.2.100/24 dev eth0 label eth0:vip brd 192.0.2.255 scope global
        192.0.2.101
    }
    virtual_ipaddress_excluded {
        198.51.100.7/32 dev eth1
    }
    unicast_src_ip 192.0.2.10
    unicast_peer {
        192.0.2.11
        192.0.2.12
    }
    track_script {
        chk_proxy
        chk_db weight 20
    }
    track_interface {
        eth0
        eth1 weight -10
    }
    track_proxy socket /run/haply/health.sock weight -50 interval 0.1 fall 2
    notify_master "/etc/ha/to-master.sh arg"
    notify_backup /etc/ha/to-backup.sh
    notify_fault /etc/ha/fault.sh nobody nogroup
    notify_stop /etc/ha/stop.sh
    notify /etc/ha/any.sh
}
vrrp_instance VI_2 {
    interface eth1
    virtual_router_id 52
    nopreempt
    version 2
    advert_int 2
    authentication {
        auth_type PASS
        auth_pass s3cret
    }
    virtual_ipaddress {
        198.51.100.10
    }
}
vrrp_sync_group G1 {
    group {
        VI_1
        VI_2
    }
    notify_master /etc/ha/group-master.sh
    track_interface {
        eth2 weight -5
    }
}
"""


def parse(text: str, name: str = "k.conf"):
    diags = Diagnostics()
    config = parse_keepalived(text, name, {}, diags)
    return config, diags


def errors(text: str) -> list[str]:
    return [str(d) for d in parse(text)[1].errors]


@pytest.mark.parametrize("path", SEEDS, ids=os.path.basename)
def test_seed_configs_load(path):
    assert SEEDS, "seed configs not found"
    config = load_keepalived([path])
    assert config.instances
    for inst in config.instances:
        assert inst.advertised_addresses
        assert inst.track_scripts and inst.track_scripts[0].script.script == "killall -0 haproxy"


def test_seed_values():
    rdo = next(p for p in SEEDS if "rdo" in p)
    inst = load_keepalived([rdo]).instances[0]
    assert (inst.name, inst.interface, inst.virtual_router_id, inst.priority) == (
        "openstack-vip", "eth0", 47, 102)
    assert inst.advert_int == 3 and inst.version == 2
    assert inst.addresses[0].address == "10.15.85.31"
    assert inst.track_scripts[0].weight == 10
    two = load_keepalived([next(p for p in SEEDS if "two-vips" in p)])
    assert [i.interface for i in two.instances] == ["eth0", "eth1"]
    assert two.instances[1].addresses[0].dev == "eth1"
    assert two.global_defs.router_id == "controller-0"


def test_full_configuration():
    config, diags = parse(FULL)
    assert not diags.errors, diags.errors
    g = config.global_defs
    assert (g.router_id, g.vrrp_version, g.script_user, g.script_group) == ("lb-1", 3, "nobody", "nogroup")
    assert g.enable_script_security
    assert (g.garp.master_delay, g.garp.master_repeat, g.garp.master_refresh) == (2, 3, 60)
    assert (g.garp.master_refresh_repeat, g.garp.interval) == (2, 0.01)
    vi1, vi2 = config.instances
    assert vi1.version == 3 and vi1.advert_int == 0.1 and vi1.initial_state == "MASTER"
    assert vi1.preempt and vi1.preempt_delay == 5
    assert vi1.garp.master_repeat == 7 and vi1.garp.master_delay == 2  # instance overrides global
    a0, a1, ex = vi1.addresses
    assert (a0.address, a0.prefixlen, a0.dev, a0.label, a0.brd, a0.scope) == (
        "192.0.2.100", 24, "eth0", "eth0:vip", "192.0.2.255", "global")
    assert a1.prefixlen == 32 and not a1.excluded
    assert ex.excluded and ex.dev == "eth1"
    assert [a.address for a in vi1.advertised_addresses] == ["192.0.2.100", "192.0.2.101"]
    assert vi1.unicast_src_ip == "192.0.2.10" and vi1.unicast_peers == ("192.0.2.11", "192.0.2.12")
    chk_proxy, chk_db = vi1.track_scripts
    # members of a sync group track with weight 0 (keepalived.conf(5)), with a warning
    assert chk_proxy.weight == 0 and chk_db.weight == 0
    assert any("weights of chk_proxy, chk_db, eth1, track_proxy set to 0" in str(w) for w in diags.warnings)
    assert [(t.name, t.weight) for t in vi2.track_interfaces] == [("eth2", -5)]
    assert chk_proxy.script.weight == -30 and chk_proxy.script.rise == 2 and chk_proxy.script.fall == 3
    assert chk_proxy.script.script == "/usr/bin/test -e /run/proxy"
    assert chk_proxy.script.interval == 0.5 and chk_proxy.script.timeout == 2
    assert chk_proxy.script.user == "daemon"
    assert chk_db.script.weight == 10 and chk_db.script.weight_reverse
    assert [(t.name, t.weight) for t in vi1.track_interfaces] == [("eth0", 0), ("eth1", 0), ("eth2", -5)]
    tp = vi1.track_proxy
    assert (tp.target, tp.weight, tp.interval, tp.fall) == ("socket:/run/haply/health.sock", 0, 0.1, 2)
    assert vi1.notify.master == "/etc/ha/to-master.sh arg" and vi1.notify.any == "/etc/ha/any.sh"
    assert vi1.notify.stop == "/etc/ha/stop.sh" and vi1.notify.fault == "/etc/ha/fault.sh"
    assert vi1.notify.user_for("fault") == ("nobody", "nogroup")
    assert vi1.notify.user_for("master") == (None, None)
    assert vi1.sync_group.name == "G1" and vi2.sync_group == vi1.sync_group
    assert vi2.version == 2 and not vi2.preempt and vi2.auth_pass == "s3cret" and vi2.advert_int == 2
    assert config.sync_group("G1").notify.master == "/etc/ha/group-master.sh"
    assert config.sync_group("G1").members == ("VI_1", "VI_2")


@pytest.mark.parametrize("text, where, words", [
    ("global_defs {\n  vrrp_strict\n}\n", 2, "'vrrp_strict' in global_defs is not supported by haply"),
    ("virtual_server 10.0.0.1 80 {\n}\n", 1, "'virtual_server' in keepalived.conf is not supported"),
    ("vrrp_instance X {\n interface eth0\n virtual_router_id 1\n"
     " virtual_ipaddress {\n 10.0.0.1\n }\n use_vmac\n}\n", 7, "'use_vmac' in vrrp_instance X"),
    ("vrrp_script s {\n script /bin/true\n init_fail\n}\n", 3, "'init_fail' in vrrp_script s"),
])
def test_unsupported_keywords_are_errors_with_location(text, where, words):
    errs = errors(text)
    assert any(e.startswith(f"k.conf:{where}: error:") and words in e for e in errs), errs


@pytest.mark.parametrize("snippet, message", [
    ("virtual_router_id 0", "0 is outside 1..255"),
    ("virtual_router_id 256", "256 is outside 1..255"),
    ("priority 0", "outside 1..255"),
    ("priority high", "'high' is not an integer"),
    ("state LEADER", "state must be MASTER or BACKUP"),
    ("advert_int 0", "outside"),
    ("authentication {\n auth_type AH\n auth_pass x\n }", "auth_type AH is not supported"),
    ("virtual_ipaddress_excluded {\n 10.0.0.300\n }", "'10.0.0.300' is not an IPv4 or IPv6 address"),
    ("virtual_ipaddress_excluded {\n 10.0.0.3 nodev eth0\n }", "option 'nodev' is not supported"),
    ("virtual_ipaddress_excluded {\n 10.0.0.3/33\n }", "outside 0..32"),
    ("virtual_ipaddress_excluded {\n 2001:db8::1/129\n }", "outside 0..128"),
    ("virtual_ipaddress_excluded {\n 2001:db8::1 brd 2001:db8::ff\n }", "IPv6 has no broadcast"),
    ("virtual_ipaddress {\n 2001:db8::1\n }", "mixes IPv4 and IPv6 (2001:db8::1)"),
    ("unicast_src_ip fe80::1", "unicast_src_ip fe80::1 is IPv6, the virtual addresses are IPv4"),
    ("unicast_peer {\n 2001:db8::2\n }", "unicast_peer 2001:db8::2 is IPv6"),
    ("track_script {\n missing\n }", "no vrrp_script named 'missing'"),
    ("track_proxy tcp 1.2.3.4", "track_proxy expects socket PATH"),
    ("notify_master /bin/echo a b c", "notify_master expects SCRIPT [USER [GROUP]]"),
    ("virtual_ipaddress_excluded {\n 10.0.0.3 label vip0\n }", "label vip0 must begin with the device name eth0"),
    ("unicast_peer {\n 10.0.0.2 min_ttl 3\n }", "unicast_peer option 'min_ttl' is not supported"),
])
def test_bad_values(snippet, message):
    text = ("vrrp_instance X {\n interface eth0\n virtual_router_id 1\n"
            f" virtual_ipaddress {{\n 10.0.0.1\n }}\n {snippet}\n}}\n")
    errs = errors(text)
    assert any(message in e and e.startswith("k.conf:") for e in errs), errs


def test_missing_required_and_structure_errors():
    assert any("has no interface" in e for e in errors("vrrp_instance X {\n virtual_router_id 1\n}\n"))
    assert any("has no virtual_ipaddress" in e for e in errors(
        "vrrp_instance X {\n interface eth0\n virtual_router_id 1\n}\n"))
    assert any("k.conf:1:" in e and "not closed" in e for e in errors("global_defs {\n router_id a\n"))
    assert any("k.conf:3:" in e and "'}' without" in e for e in errors("global_defs {\n}\n}\n"))
    dup = ("vrrp_instance A {\n interface eth0\n virtual_router_id 1\n virtual_ipaddress {\n 10.0.0.1\n }\n}\n"
           "vrrp_instance B {\n interface eth0\n virtual_router_id 1\n virtual_ipaddress {\n 10.0.0.2\n }\n}\n")
    assert any("k.conf:8:" in e and "already used by vrrp_instance A" in e for e in errors(dup))


def test_version_rules():
    base = "vrrp_instance X {{\n interface eth0\n virtual_router_id 1\n {0}\n virtual_ipaddress {{\n 10.0.0.1\n }}\n}}\n"
    config, diags = parse(base.format("advert_int 1.5"))  # v2: rounded up with a warning
    assert config.instances[0].advert_int == 2 and diags.warnings and not diags.errors
    config, diags = parse(base.format("version 3\n advert_int 0.05"))
    assert config.instances[0].advert_int == 0.05 and not diags.items
    assert any("0.01..40.95" in e for e in errors(base.format("version 3\n advert_int 50")))
    assert any("not part of VRRPv3" in e for e in errors(base.format(
        "version 3\n authentication {\n auth_pass x\n }")))
    config, _ = parse(base.format("priority 255"))
    assert config.instances[0].initial_state == "MASTER"  # the address owner
    config, diags = parse(base.format("state MASTER\n nopreempt"))
    assert config.instances[0].initial_state == "BACKUP" and diags.warnings


def test_ipv6_instances():
    text = ("vrrp_instance V6 {\n interface eth0\n virtual_router_id 7\n advert_int 0.5\n"
            " virtual_ipaddress {\n 2001:DB8:0::10/64 dev eth1\n 2001:db8::11\n }\n"
            " virtual_ipaddress_excluded {\n 192.0.2.10/24\n }\n"
            " unicast_src_ip 2001:db8::2\n unicast_peer {\n 2001:db8::3\n }\n}\n")
    config, diags = parse(text)
    inst = config.instances[0]
    # VRRPv2 is IPv4 only: the default version 2 becomes 3, with a warning.
    assert inst.ipv6 and inst.version == 3 and inst.advert_int == 0.5
    assert any("VRRPv2 is IPv4 only" in str(w) for w in diags.warnings) and not diags.errors
    first, second, excluded = inst.addresses
    assert (first.address, first.prefixlen, first.dev) == ("2001:db8::10", 64, "eth1")
    assert (second.address, second.prefixlen) == ("2001:db8::11", 128)
    assert excluded.excluded and excluded.address == "192.0.2.10"  # the other family is allowed
    assert inst.unicast_src_ip == "2001:db8::2" and inst.unicast_peers == ("2001:db8::3",)
    config, diags = parse(text.replace(" advert_int 0.5\n", " version 3\n"))
    assert config.instances[0].version == 3 and not diags.items


def test_include(tmp_path):
    (tmp_path / "inst.conf").write_text(
        "vrrp_instance I {\n interface eth0\n virtual_router_id 9\n"
        " virtual_ipaddress {\n 10.0.0.9\n }\n bogus_kw\n}\n")
    main = tmp_path / "keepalived.conf"
    main.write_text("global_defs {\n router_id r\n}\ninclude inst.conf\n")
    with pytest.raises(ConfigError) as exc:
        load_keepalived([str(main)])
    assert f"{tmp_path / 'inst.conf'}:7: error: 'bogus_kw'" in str(exc.value)


def test_dialect_detection():
    for path in SEEDS:
        assert looks_like_keepalived(open(path).read())
    assert looks_like_keepalived("# c\n\nvrrp_instance X {\n")
    assert not looks_like_keepalived("global\n    daemon\nfrontend f\n")
    assert not looks_like_keepalived("")


def test_keyword_table_lists_blocks():
    assert "track_proxy" in KEYWORDS["vrrp_instance"]
    assert "vrrp_garp_master_refresh" in KEYWORDS["global_defs"]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(list("{}\"#! \n\tabc_019./") + [
    "vrrp_instance ", "global_defs ", "interface ", "virtual_ipaddress ", "priority ",
    "track_script ", "vrrp_script ", "state ", "10.0.0.1"]), max_size=80).map("".join))
def test_arbitrary_text_only_produces_diagnostics(text):
    # nothing raises; every problem is a diagnostic pointing at a real line
    config, diags = parse(text)
    lines = max(1, len(text.splitlines()))
    assert all(d.location.file == "k.conf" and 1 <= d.location.line <= lines for d in diags.items)


def test_tracking_weights_outside_a_sync_group():
    text = FULL[:FULL.index("vrrp_sync_group")]
    config, diags = parse(text)
    assert not diags.errors and not diags.warnings, diags.items
    vi1 = config.instance("VI_1")
    assert [(t.script.name, t.weight) for t in vi1.track_scripts] == [("chk_proxy", -30), ("chk_db", 20)]
    assert [(t.name, t.weight) for t in vi1.track_interfaces] == [("eth0", 0), ("eth1", -10)]
    assert vi1.track_proxy.weight == -50 and vi1.sync_group is None
