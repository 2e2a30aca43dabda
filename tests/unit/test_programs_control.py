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
