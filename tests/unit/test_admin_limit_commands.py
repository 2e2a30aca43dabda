"""Runtime limits and session settings against an unstarted engine: the
value each process applies (a worker's share), the severity prefixes."""

from __future__ import annotations

import pytest

from haply.admin.answers import Failure, Message, Notice, with_severity
from haply.admin.runtime_api import RuntimeApi
from haply.master.shares import share
from haply.proxy.gate import Gate
from tests.support.admin_engine import engine_from

CONFIG = """
global
    maxconn 100
defaults
    mode http
    timeout connect 1s
    timeout client 5s
    timeout server 5s
frontend fe
    bind 127.0.0.1:18997
    default_backend be
backend be
    server s1 127.0.0.1:9001 maxconn 10
"""


@pytest.fixture
def engine(tmp_path):
    engine = engine_from(CONFIG, directory=str(tmp_path))
    yield engine
    engine.loop.close()


def test_limits_set_whole_in_one_process(engine):
    api = RuntimeApi(engine)
    assert api.execute("set maxconn frontend fe 7") == ""
    assert api.execute("set maxconn server be/s1 3") == ""
    assert api.execute("set maxconn global 50") == ""
    assert engine.frontends["fe"].gate.limit == 7
    assert engine.registry.get("be", "s1").maxconn == 3
    assert engine.global_gate.limit == 50
    assert api.execute("set maxconn global 0") == ""  # back to the configured one
    assert engine.global_gate.limit == 100


def test_a_worker_applies_its_share(engine):
    engine.limit_share = lambda limit: share(limit, 1, 2)
    engine.whole_global_maxconn = 200  # the workers' configured limits add up to it
    api = RuntimeApi(engine)
    api.execute("set maxconn frontend fe 7")
    api.execute("set maxconn global 150")
    assert engine.frontends["fe"].gate.limit == 3
    assert engine.global_gate.limit == 75
    assert api.execute("set maxconn global 201") == "Value out of range.\n"


def test_raised_limit_admits_the_parked_at_once():
    gate = Gate(1)
    gate.enter()
    admitted = []

    def resume(name):
        def run():
            gate.enter()
            admitted.append(name)
            return True
        return run

    for name in ("a", "b", "c"):
        gate.park(resume(name))
    gate.set_limit(3)
    assert admitted == ["a", "b"] and gate.parked == 1


def test_severity_prefixes_messages_only():
    assert with_severity(Failure("No such frontend.\n"), "number") == "[3]: No such frontend.\n"
    assert with_severity(Notice("All sockets are already disabled.\n"), "string") == \
        "[notice]: All sockets are already disabled.\n"
    assert with_severity(Message("admin\n"), "none") == "admin\n"
    assert with_severity("# name\nbe\n", "number") == "# name\nbe\n"  # a dump
    assert with_severity(Failure(""), "number") == ""


class Session:
    timeout = 10.0
    severity_output = "none"

    def set_timeout(self, seconds):
        self.timeout = seconds


def test_session_settings_go_to_the_session(engine):
    api = RuntimeApi(engine)
    session = Session()
    assert api.execute("set timeout cli 2m", "user", session) == ""
    assert session.timeout == 120
    assert api.execute("set timeout cli 100ms", "user", session) == ""
    assert session.timeout == pytest.approx(0.1)
    assert api.execute("set severity-output string", "user", session) == ""
    assert session.severity_output == "string"
    assert api.execute("show cli level", "operator", session) == "operator\n"
