"""`program` sections and `program-servers` (haply.config.programs)."""

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from haply.config import ConfigError, load
from haply.config.reference import render
from haply.convert import render as convert
from haply.config.model import Program

DEFAULTS = """
defaults
    mode http
    timeout connect 1s
    timeout client 5s
    timeout server 5s
"""


def _load(tmp_path: Path, text: str, name: str = "haproxy.cfg"):
    path = tmp_path / name
    path.write_text(text)
    return load([str(path)], {})


def _errors(tmp_path: Path, text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        _load(tmp_path, text)
    return [str(d) for d in info.value.diagnostics if d.severity == "error"] or [str(info.value)]


def test_haproxy_keywords(tmp_path):
    config = _load(tmp_path, """
program agent
    command /usr/bin/agent --config "/etc/agent conf" -v
    user nobody
    group nogroup
    no option start-on-reload
""").config
    (program,) = config.programs
    assert program.command == ("/usr/bin/agent", "--config", "/etc/agent conf", "-v")
    assert (program.user, program.group, program.start_on_reload) == ("nobody", "nogroup", False)
    assert (program.instances, program.port, program.daemon, program.stop_timeout) == (1, None, False, 10.0)


def test_start_on_reload_is_the_default_and_can_be_set_again(tmp_path):
    config = _load(tmp_path, "program a\n    command true\nprogram b\n    command true\n"
                             "    no option start-on-reload\n    option start-on-reload\n").config
    assert [p.start_on_reload for p in config.programs] == [True, True]


def test_extensions(tmp_path):
    (program,) = _load(tmp_path, """
program api
    command python3 -m http.server %p
    instances 4
    port 8781
    setenv A 1
    setenv B "two words"
    setenv A 3
    directory /tmp
    stdout /tmp/api-%i.out
    stderr /tmp/api-%i.err
    pidfile /tmp/api-%i.pid
    timeout stop 3s
    restart-backoff 500ms 20s
    crash-limit 3 30s
    service-group nova
    stop-command /usr/bin/api-stop --port %p
""").config.programs
    assert program.stop_command == ("/usr/bin/api-stop", "--port", "%p")
    assert program.environment == (("B", "two words"), ("A", "3"))
    assert (program.instances, program.port, program.port_of(4)) == (4, 8781, 8784)
    assert (program.stop_timeout, program.backoff, program.backoff_max) == (3.0, 0.5, 20.0)
    assert (program.crash_limit, program.crash_window, program.service_group) == (3, 30.0, "nova")
    assert (program.directory, program.stdout, program.pidfile) == ("/tmp", "/tmp/api-%i.out", "/tmp/api-%i.pid")


def test_program_servers_expand_with_default_server(tmp_path):
    config = _load(tmp_path, """
program api
    command serve %p
    instances 3
    port 9001
""" + DEFAULTS + """
backend be
    default-server check inter 1s fall 2
    server other 10.0.0.1:80
    program-servers api weight 7
""").config
    servers = config.proxy("be").servers
    assert [(s.name, s.host, s.port) for s in servers] == [
        ("other", "10.0.0.1", 80), ("api-1", "127.0.0.1", 9001), ("api-2", "127.0.0.1", 9002),
        ("api-3", "127.0.0.1", 9003)]
    assert all(s.check and s.inter == 1.0 and s.fall == 2 and s.weight == 7 for s in servers[1:])


def test_program_servers_across_files(tmp_path):
    (tmp_path / "a.cfg").write_text("program api\n    command serve %p\n    port 9001\n")
    (tmp_path / "b.cfg").write_text(DEFAULTS + "backend be\n    program-servers api check\n")
    config = load([str(tmp_path)], {}).config
    assert [(s.name, s.port, s.check) for s in config.proxy("be").servers] == [("api-1", 9001, True)]


@pytest.mark.parametrize("text, message", [
    ("program a\n    user x\n", "has no 'command' line"),
    ("program a\n    command x\n    instances 2\n", "but no 'port'"),
    ("program a\n    command x\n    option daemon\n", "but no 'pidfile'"),
    ("program a\n    command x --port %p\n", "uses %p but has no 'port'"),
    ("program a\n    command x\n    instances 2\n    port 80\n    pidfile /run/x.pid\n", "share the pidfile"),
    ("program a\n    command x\n    instances 3\n    port 65534\n", "beyond 65535"),
    ("program a\n    command x\n    instances 0\n", "out of range"),
    ("program a\n    command x\n    timeout stop 0\n", "greater than zero"),
    ("program a\n    command x\n    setenv 1A x\n", "invalid environment variable name"),
    ("program a\n    command x\n    crash-limit 3\n", "'crash-limit' expects"),
    ("program a\n    command x\n    restart-backoff 10s 1s\n", "maximum is below"),
    ("program a\n    command x\n    bind :80\n", "not allowed in a 'program' section"),
    ("program a\n    command x\n    user no-such-user-here\n", "cannot find user id for 'no-such-user-here'"),
    ("program a\n    command x\n    group no-such-group-here\n", "cannot find group id"),
    ("program a\n    command x\n    comand y\n", "did you mean 'command'"),
    ("program a b\n    command x\n", "expects one name"),
    ("program a\n    command x\nprogram a\n    command y\n", "already defined"),
    (DEFAULTS + "backend be\n    program-servers api\nprogram api\n    command x\n    port 80\n",
     "no program section named 'api' before this line"),
    ("program api\n    command x\n" + DEFAULTS + "backend be\n    program-servers api\n", "has no 'port'"),
])
def test_errors_are_located(tmp_path, text, message):
    errors = _errors(tmp_path, text)
    assert any(message in e for e in errors), errors
    assert all(":" in e.split(" ", 1)[0] for e in errors)


def test_error_in_program_does_not_lose_the_next_section(tmp_path):
    errors = _errors(tmp_path, "program a\n    user x\n" + DEFAULTS + "backend be\n    bogus 1\n")
    assert any("haproxy.cfg:1" in e and "no 'command'" in e for e in errors)
    assert any("unknown keyword 'bogus'" in e for e in errors)


def test_directives_reference_lists_program_keywords():
    text = render()
    assert "| `program-servers` | listen, backend |" in text
    assert "| `instances` | program |" in text
    assert "| `user` | global, program, userlist |" in text


_word = st.text(st.characters(min_codepoint=33, max_codepoint=126, blacklist_characters="\"'\\#$"),
                min_size=1, max_size=12)


@settings(max_examples=60, deadline=None)
@given(
    command=st.lists(_word, min_size=1, max_size=4),
    instances=st.integers(1, 8), port=st.integers(1, 60000), stop=st.integers(1, 600),
    env=st.lists(st.tuples(st.from_regex(r"[A-Z_][A-Z0-9_]{0,8}", fullmatch=True), _word), max_size=3,
                 unique_by=lambda kv: kv[0]),
    daemon=st.booleans(), start_on_reload=st.booleans(), group=st.none() | _word,
)
def test_convert_round_trip(tmp_path_factory, command, instances, port, stop, env, daemon, start_on_reload,
                            group):
    """render_program writes what the parser reads back to the same model."""
    program = Program(
        name="p", command=tuple(command), instances=instances, port=port, stop_timeout=float(stop),
        environment=tuple(env), daemon=daemon, pidfile="/run/p-%i.pid", start_on_reload=start_on_reload,
        service_group=group,
    )
    path = tmp_path_factory.mktemp("rt") / "haproxy.cfg"
    path.write_text(convert(__import__("haply.config.model", fromlist=["Config"]).Config(programs=(program,))))
    (back,) = load([str(path)], {}).config.programs
    assert back == Program(**{**{f: getattr(program, f) for f in program.__dataclass_fields__},
                              "location": back.location})


_LINES = ["command /bin/x %p", "command", "instances 3", "instances 0", "port 9000", "port 70000",
          "setenv A b", "setenv", "directory /tmp", "stdout /tmp/%i", "stderr", "pidfile /run/x-%i.pid",
          "pidfile /run/x.pid", "option daemon", "no option daemon", "stop-command /bin/stop",
          "timeout stop 5s", "timeout stop x", "restart-backoff 1s", "restart-backoff 2s 1s", "crash-limit 3 10s",
          "crash-limit 0 1s", "service-group g", "user nobody", "group nogroup", "option start-on-reload",
          "no option start-on-reload", "bind :80", "server s 1.2.3.4:80", "program-servers p"]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(_LINES), max_size=12), st.booleans())
def test_any_program_section_is_parsed_or_refused_with_a_location(tmp_path_factory, lines, with_backend):
    text = "program p\n" + "".join(f"    {line}\n" for line in lines)
    if with_backend:
        text += DEFAULTS + "backend be\n    program-servers p check\n"
    path = tmp_path_factory.mktemp("fuzz") / "haproxy.cfg"
    path.write_text(text)
    try:
        config = load([str(path)], {}).config
    except ConfigError as error:
        errors = [d for d in error.diagnostics if d.severity == "error"]
        assert errors and all(d.location.file == str(path) and d.location.line >= 1 for d in errors)
        assert all("internal error" not in d.message for d in errors)
    else:
        (program,) = config.programs
        assert program.command and (program.instances == 1 or program.port is not None)
        if with_backend:
            assert len(config.proxy("be").servers) == program.instances
