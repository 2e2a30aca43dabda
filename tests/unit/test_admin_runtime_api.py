"""Runtime API commands against a real (unstarted) engine: answers, levels, and
state changes that go through the registry."""

from __future__ import annotations

import pytest

from haply.admin.runtime_api import PERMISSION_DENIED, RuntimeApi
from haply.runtime.registry import DRAIN, MAINT, READY
from tests.support.admin_engine import engine_from

CONFIG = """
defaults
    mode http
    timeout connect 1s
    timeout client 5s
    timeout server 5s
frontend fe
    bind 127.0.0.1:18998
    default_backend be
backend be
    default-server weight 7 maxconn 33
    server s1 127.0.0.1:9001
    server s2 127.0.0.1:9002 weight 2
backend other
    server o1 127.0.0.1:9003
"""


@pytest.fixture
def api(tmp_path):
    engine = engine_from(CONFIG, directory=str(tmp_path))
    api = RuntimeApi(engine, clock=lambda: 1000.0)
    yield api
    engine.loop.close()


def test_help_lists_commands(api):
    text = api.execute("help")
    assert text.startswith("The following commands are valid at this level:")
    assert "set server" in text and "show stat" in text


def test_user_level_hides_and_refuses_admin_commands(api):
    assert "set server" not in api.help_text("user")
    state = api.engine.registry.get("be", "s1")
    assert api.execute("set server be/s1 state maint", "user") == PERMISSION_DENIED
    assert api.execute("disable server be/s1", "operator") == PERMISSION_DENIED
    assert state.admin == READY
    assert api.execute("show stat", "user").startswith("# pxname,svname,")


def test_set_server_state_goes_through_registry(api):
    registry = api.engine.registry
    seen = []
    registry.subscribe("be", seen.append)
    assert api.execute("set server be/s1 state drain") == ""
    assert registry.get("be", "s1").admin == DRAIN
    assert api.execute("set server be/s1 state maint") == ""
    assert registry.get("be", "s1").admin == MAINT
    assert api.execute("enable server be/s1") == ""
    assert registry.get("be", "s1").admin == READY
    assert api.execute("disable server be/s2") == ""
    assert registry.get("be", "s2").admin == MAINT
    assert len(seen) == 4


def test_weights(api):
    assert api.execute("get weight be/s2") == "2 (initial 2)\n"
    assert api.execute("set server be/s2 weight 10") == ""
    assert api.execute("get weight be/s2") == "10 (initial 2)\n"
    assert api.execute("set weight be/s2 50%") == ""
    assert api.execute("get weight be/s2") == "1 (initial 2)\n"
    assert "between 0 and 256" in api.execute("set weight be/s2 999")


def test_errors_name_what_is_wrong(api):
    assert api.execute("set server nope/s1 state ready") == "No such backend.\n"
    assert api.execute("set server be/nope state ready") == "No such server.\n"
    assert "expects 'ready', 'drain' and 'maint'" in api.execute("set server be/s1 state sleepy")
    assert api.execute("frobnicate").startswith("Unknown command, but maybe one of")


def test_show_servers_state_format(api):
    api.execute("set server be/s1 state maint")
    lines = api.execute("show servers state be").splitlines()
    assert lines[0] == "1"
    assert lines[1].startswith("# be_id be_name srv_id srv_name srv_addr srv_op_state")
    fields = lines[2].split()
    assert len(fields) == len(lines[1].split()) - 1
    assert fields[1:5] == ["be", "1", "s1", "127.0.0.1"]
    assert fields[6] == "1"  # admin state: forced maintenance
    assert api.execute("show servers state nope") == "Can't find backend.\n"


def test_show_backend_and_info(api):
    assert api.execute("show backend") == "# name\nbe\nother\n"
    info = dict(line.split(": ", 1) for line in api.execute("show info").splitlines())
    assert info["Name"] == "haply" and "Uptime_sec" in info


def test_add_server_honours_default_server(api):
    answer = api.execute("add server be/s3 127.0.0.1:9010")
    assert answer == "New server registered.\n"
    state = api.engine.registry.get("be", "s3")
    assert state.weight == 7 and state.maxconn == 33  # from default-server
    assert state.admin == MAINT  # added in maintenance, as HAProxy does
    assert state.server_id == 3
    api.execute("set server be/s3 state ready")
    assert state.usable
    # the balancer sees it (rebuilt through the registry's listeners)
    backend = api.engine.backends["be"]
    picked = {backend.balancer.pick(None, None).name for _ in range(30)}
    assert "s3" in picked


def test_add_server_option_errors_and_duplicates(api):
    assert "Already exists" in api.execute("add server be/s1 127.0.0.1:9010")
    answer = api.execute("add server be/s4 127.0.0.1:9011 weight banana")
    assert api.engine.registry.get("be", "s4") is None
    assert answer.strip()


def test_del_server_needs_maintenance(api):
    assert "maintenance" in api.execute("del server be/s2")
    api.execute("set server be/s2 state maint")
    assert api.execute("del server be/s2") == "Server deleted.\n"
    assert api.engine.registry.get("be", "s2") is None
    assert "s2" not in api.execute("show stat")


def test_show_stat_filter(api):
    text = api.execute("show stat be 4 -1")
    lines = [line for line in text.splitlines() if line and not line.startswith("#")]
    assert [line.split(",")[1] for line in lines] == ["s1", "s2"]


from hypothesis import HealthCheck, example, given, settings, strategies as st  # noqa: E402

WORDS = ["show", "stat", "info", "servers", "state", "set", "server", "weight", "be/s1",
         "be/s2", "be/", "/s1", "nope/x", "ready", "drain", "maint", "add", "del", "get",
         "enable", "disable", "health", "127.0.0.1:9", "50%", "-1", "300", "json", "typed",
         "4", "-1", "errors", "sess", "backend", "weight", "'", '"', "\\", ";", "check"]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.one_of(st.sampled_from(WORDS), st.text(max_size=8)), max_size=7),
       st.sampled_from(["user", "operator", "admin"]))
@example(["show", "stat", "show", "show", "show"], "user")  # a mask that is not a number
def test_any_line_gets_an_answer_never_an_exception(api, words, level):
    answer = api.execute(" ".join(words), level)
    assert isinstance(answer, str)
    registry = api.engine.registry
    # whatever happened, the registry stayed consistent
    for backend in ("be", "other"):
        states = registry.servers(backend)
        assert len({s.name for s in states}) == len(states)
        assert all(0 <= s.effective_weight <= 256 for s in states)


def test_clear_counters(api):
    engine = api.engine
    s1 = engine.registry.get("be", "s1")
    s1.total_sessions, s1.bytes_out, s1.max_sessions = 9, 999, 4
    frontend = engine.frontends["fe"]
    frontend.bytes_in, frontend.http_responses[2] = 50, 7
    backend = engine.backends["be"]
    for counters in (frontend.comp, backend.comp):
        counters.add(True, 100, 20, last=True)
    assert api.execute("clear counters", "operator") == ""
    assert frontend.comp.comp_rsp == backend.comp.comp_in // 100 == 1
    assert s1.max_sessions == 0 and s1.total_sessions == 9  # only maximums
    assert api.execute("clear counters all", "operator") == PERMISSION_DENIED
    assert api.execute("clear counters all", "admin") == ""
    assert s1.total_sessions == 0 and s1.bytes_out == 0
    assert frontend.bytes_in == 0 and frontend.http_responses == {}
    for counters in (frontend.comp, backend.comp):
        assert (counters.comp_in, counters.comp_out, counters.comp_byp, counters.comp_rsp) == (0,) * 4


def test_show_stat_filter_reads_the_mask_as_haproxy_does(api):
    assert api.execute("show stat nowhere 4 -1", "user") == "No such proxy.\n"
    lines = api.execute("show stat -1 4x -1", "user").splitlines()[1:]
    assert lines and all(line.split(",")[1] not in ("FRONTEND", "BACKEND") for line in lines if line)
    assert api.execute("show stat -1 x -1", "user").splitlines()[1:] in ([], [""])
