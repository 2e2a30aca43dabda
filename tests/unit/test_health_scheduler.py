"""The scheduler's pure parts: settings from the model, and log wording."""

from __future__ import annotations

from haply.config.model import (
    Config, Global, HttpCheck, Proxy, Server, TcpCheckStep, Timeouts,
)
from haply.health.scheduler import spec_for, spread_checks_of, transition_message
from haply.health.state import Transition
from haply.runtime.registry import DOWN, Registry


def test_unchecked_server_has_no_spec():
    assert spec_for(Proxy("b", "backend"), Server("s", "127.0.0.1", 80)) is None


def test_spec_from_typed_fields():
    proxy = Proxy("b", "backend", check_kind="http",
                  http_check=HttpCheck("GET", "/h", expect=("string", "down"),
                                       expect_negated=True),
                  timeouts=Timeouts(connect=3.0, check=1.0))
    server = Server("s", "10.0.0.1", 80, check=True, check_port=9200, inter=2.0,
                    agent_check=True, agent_port=8000, agent_send="hello\n",
                    observe="layer7", error_limit=5, on_error="sudden-death")
    spec = spec_for(proxy, server)
    assert spec.target.port == 9200 and spec.target.host == "10.0.0.1"
    assert spec.http.expect == ("!string", "down")
    # manual, timeout check: connect bounded by min(timeout connect, inter)
    assert (spec.deadlines.connect, spec.deadlines.read) == (2.0, 1.0)
    assert spec.agent.target.port == 8000 and spec.agent.send == b"hello\n"
    assert spec.agent.inter == 2.0
    assert spec.passive.error_limit == 5 and spec.passive.on_error == "sudden-death"


def test_spec_tcp_check_steps_and_mysql_user():
    proxy = Proxy("r", "backend", check_kind="tcp-check", tcp_check_steps=(
        TcpCheckStep("send", data="PING\r\n"),
        TcpCheckStep("expect", match="string", pattern="+PONG"),
        TcpCheckStep("send-binary", data="0a0b"),
    ))
    spec = spec_for(proxy, Server("s", "127.0.0.1", 6379, check=True))
    assert [s.data for s in spec.tcp_steps] == [b"PING\r\n", b"+PONG", b"\x0a\x0b"]
    proxy = Proxy("g", "backend", check_kind="mysql", mysql_check_user="haproxy")
    assert spec_for(proxy, Server("s", "127.0.0.1", 3306, check=True)).mysql_user == "haproxy"


def test_spread_checks_is_capped():
    assert spread_checks_of(Config(global_=Global(spread_checks=5))) == 5
    assert spread_checks_of(Config(global_=Global(spread_checks=80))) == 50


def test_down_message_counts_what_is_left():
    registry = Registry()
    proxy = Proxy("b", "backend", servers=(
        Server("s1", "h", 1), Server("s2", "h", 2), Server("s3", "h", 3, backup=True)))
    registry.add_backend(proxy)
    s1, _, s3 = registry.servers("b")
    registry.set_operational(s1, DOWN, 1.0)
    t = Transition(False, 1.0, "L4CON", 'Layer4 connection problem, info: "Connection refused"', 0.0)
    assert transition_message(s1, t, registry.servers("b")) == (
        'Server b/s1 is DOWN, reason: Layer4 connection problem, info: "Connection refused", '
        "check duration: 0ms. 1 active and 1 backup servers left. 0 sessions active, "
        "0 requeued, 0 remaining in queue.")
    t = Transition(True, 2.0, "L7OK", "Layer7 check passed, code: 200", 0.002)
    assert transition_message(s3, t, registry.servers("b")) == (
        "Backup Server b/s3 is UP, reason: Layer7 check passed, code: 200, check duration: "
        "2ms. 1 active and 1 backup servers online. 0 sessions requeued, 0 total in queue.")
    # the last active server gone, HAProxy 2.6 says so
    s2 = registry.get("b", "s2")
    registry.set_operational(s2, DOWN, 3.0)
    t = Transition(False, 3.0)
    assert transition_message(s2, t, registry.servers("b"), via="a/s2") == (
        "Server b/s2 is DOWN via a/s2. 0 active and 1 backup servers left. Running on backup. "
        "0 sessions active, 0 requeued, 0 remaining in queue.")


def test_check_tls_follows_the_manual():
    from haply.health.scheduler import check_tls
    base = dict(name="s", host="10.0.0.1", port=443, check=True)
    assert check_tls(Server(**base)) == (False, None)
    assert check_tls(Server(**base, extra=(("ssl", ""),))) == (True, None)
    # another check port: TLS is not inherited ...
    assert check_tls(Server(**base, check_port=8080, extra=(("ssl", ""),))) == (False, None)
    # ... unless check-ssl forces it
    assert check_tls(Server(**base, check_port=8080,
                            extra=(("check-ssl", ""), ("check-sni", "api")))) == (True, "api")
    assert check_tls(Server(**base, extra=(("ssl", ""), ("no-check-ssl", "")))) == (False, None)
