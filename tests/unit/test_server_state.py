import pytest
from hypothesis import given, strategies as st

from haply.config.model import Proxy, Server
from haply.runtime import server_state
from haply.runtime.registry import DOWN, DRAIN, MAINT, READY, UP, Registry

HEADER = "1\n# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight ...\n"


def registry(weight=1):
    reg = Registry()
    reg.add_backend(Proxy(name="be", kind="backend", servers=(
        Server("s1", "127.0.0.1", 1, weight=weight), Server("s2", "127.0.0.1", 2, weight=weight),
        Server("s3", "127.0.0.1", 3, weight=weight))))
    return reg


def line(name, op, admin, uweight, iweight):
    return f"3 be 1 {name} 127.0.0.1 {op} {admin} {uweight} {iweight} 5 6 3 4 6 0 0 0 - 1 - 0 0 - - 0\n"


def test_forced_maintenance_drain_weights_and_down_carry_over():
    reg = registry()
    text = HEADER + line("s1", 0, 1, 1, 1) + line("s2", 2, 8, 5, 1) + line("s3", 0, 0, 1, 1) \
        + line("gone", 2, 0, 1, 1)
    assert server_state.apply(reg, server_state.parse(text), 10.0) == 3
    s1, s2, s3 = (reg.get("be", n) for n in ("s1", "s2", "s3"))
    assert (s1.admin, s2.admin, s3.admin) == (MAINT, DRAIN, READY)
    assert s2.effective_weight == 5
    assert s3.operational == DOWN and s2.operational == UP


def test_a_changed_configured_weight_wins_over_the_saved_one():
    reg = registry(weight=10)
    server_state.apply(reg, server_state.parse(HEADER + line("s1", 2, 0, 5, 1)), 0.0)
    assert reg.get("be", "s1").effective_weight == 10


def test_maintenance_from_the_old_configuration_is_not_carried():
    reg = registry()
    server_state.apply(reg, server_state.parse(HEADER + line("s1", 0, 4, 1, 1)), 0.0)
    assert reg.get("be", "s1").admin == READY


def test_bad_input_names_the_line():
    with pytest.raises(server_state.StateFileError, match="version"):
        server_state.parse("2\n")
    with pytest.raises(server_state.StateFileError, match="line 3"):
        server_state.parse(HEADER + "3 be 1 s1\n")
    with pytest.raises(server_state.StateFileError, match="line 3"):
        server_state.parse(HEADER + "3 be 1 s1 addr x 0 1 1\n")
    assert server_state.parse("") == []


@given(st.text(max_size=300))
def test_any_text_parses_or_fails_cleanly(text):
    try:
        server_state.parse(text)
    except server_state.StateFileError:
        pass


def test_what_show_servers_state_prints_reads_back(tmp_path):
    """The runtime API's own output is the format (a real Engine's answer)."""
    import asyncio
    from haply.admin.runtime_api import RuntimeApi
    from haply.config import load
    from haply.proxy.engine import Engine
    cfg = tmp_path / "h.cfg"
    cfg.write_text("defaults\n    mode http\nbackend be\n    server s1 127.0.0.1:1\n"
                   "    server s2 127.0.0.1:2 weight 4\n")
    loop = asyncio.new_event_loop()
    try:
        engine = Engine(load([str(cfg)]).config, loop)
        engine.prepare()
        api = RuntimeApi(engine, clock=lambda: 0.0)
        api.execute("set server be/s1 state maint")
        api.execute("set server be/s2 weight 2")
        saved = server_state.parse(api.execute("show servers state"))
        fresh = Engine(load([str(cfg)]).config, loop)
        fresh.prepare()
        server_state.apply(fresh.registry, saved, 0.0)
        assert fresh.registry.get("be", "s1").admin == MAINT
        assert fresh.registry.get("be", "s2").effective_weight == 2
        engine.close_sockets()
        fresh.close_sockets()
    finally:
        loop.close()


def test_which_file_each_backend_loads(tmp_path):
    from haply.config import load
    cfg = tmp_path / "h.cfg"
    cfg.write_text("""
global
    server-state-base /var/lib/haply
    server-state-file global.state
defaults
    mode http
    load-server-state-from-file global
backend a
    server s1 127.0.0.1:1
backend b
    load-server-state-from-file local
    server s1 127.0.0.1:1
backend c
    load-server-state-from-file local
    server-state-file-name /etc/c.state
    server s1 127.0.0.1:1
backend d
    load-server-state-from-file none
    server s1 127.0.0.1:1
""")
    files = server_state.configured_files(load([str(cfg)]).config)
    assert files == {"a": "/var/lib/haply/global.state", "b": "/var/lib/haply/b",
                     "c": "/etc/c.state"}


def test_bad_mode_is_a_config_error_with_its_line(tmp_path):
    from haply.config import ConfigError, load
    cfg = tmp_path / "h.cfg"
    cfg.write_text("defaults\n    load-server-state-from-file sometimes\n")
    with pytest.raises(ConfigError) as error:
        load([str(cfg)])
    assert "h.cfg:2" in str(error.value.diagnostics[0]) and "global, local or none" in str(error.value.diagnostics[0])


def test_the_saved_address_is_read_for_init_addr_last():
    saved = server_state.parse(HEADER + line("s1", 2, 0, 1, 1)
                               + "3 be 2 s2 - 0 32 1 1 5 6 3 4 6 0 0 0 name.invalid 1 - 0 0 - - 0\n")
    assert [entry.address for entry in saved] == ["127.0.0.1", None]


def test_a_server_without_address_stays_in_maintenance():
    reg = registry()
    reg.get("be", "s1").unresolved = True
    reg.set_admin(reg.get("be", "s1"), MAINT, 0.0)
    server_state.apply(reg, server_state.parse(HEADER + line("s1", 2, 0, 1, 1)), 0.0)
    assert reg.get("be", "s1").admin == MAINT
