"""LocalProxyControl over a real (unbound) Engine: state changes go through
the runtime API's set_admin and are passed on like an operator's command."""

import asyncio

import pytest

from haply.programs.control import LocalProxyControl
from haply.runtime.registry import DRAIN, MAINT, READY
from tests.support.admin_engine import engine_from

CONFIG = """
defaults
    mode http
    timeout connect 1s
    timeout client 1s
    timeout server 1s
backend be
    server api-1 127.0.0.1:9001
"""


def test_set_state_and_status(tmp_path):
    loop = asyncio.new_event_loop()
    try:
        engine = engine_from(CONFIG, loop, str(tmp_path))
        relayed = []
        engine.on_operator_change = relayed.append
        control = LocalProxyControl(engine)
        state = engine.registry.get("be", "api-1")
        run = loop.run_until_complete
        run(control.set_server_state("be", "api-1", "drain"))
        assert state.admin == DRAIN and run(control.server_status("be", "api-1")) == ("UP", 0)
        state.current_sessions = 3
        run(control.set_server_state("be", "api-1", "maint"))
        assert state.admin == MAINT and run(control.server_status("be", "api-1")) == ("MAINT", 3)
        run(control.set_server_state("be", "api-1", "ready"))
        assert state.admin == READY
        assert relayed == ["set server be/api-1 state drain", "set server be/api-1 state maint",
                           "set server be/api-1 state ready"]
        with pytest.raises(ValueError):
            run(control.set_server_state("be", "api-1", "up"))
        with pytest.raises(KeyError):
            run(control.server_status("be", "nope"))
    finally:
        loop.close()


def test_ctl_renders_show_programs():
    from haply.ctl import _short_uptime, render_programs

    text = ("#<program>  <state>  <pid>  <port>  <uptime>     <restarts>  <last exit>\n"
            "api:1       RUNNING  28605  38625   0d01h02m05s  1           signal SIGTERM\n"
            "api:2       FATAL    -      38626   -            4           spawn failed: cannot run x: no such file\n")
    lines = render_programs(text).splitlines()
    assert lines[0].split() == ["INSTANCE", "STATE", "PID", "PORT", "UPTIME", "RESTARTS", "LAST", "EXIT"]
    assert lines[2].split() == ["api:1", "RUNNING", "28605", "38625", "1h02m", "1", "signal", "SIGTERM"]
    assert lines[3].endswith("4         spawn failed: cannot run x: no such file")
    assert [_short_uptime(t) for t in ("0d00h00m07s", "0d00h03m07s", "2d05h00m00s", "-")] == \
        ["7s", "3m07s", "2d05h", "-"]
    with pytest.raises(ValueError):
        render_programs("No programs are supervised by this process.\n")
