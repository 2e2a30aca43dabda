"""monitrc -> programs (haply.config.monit) and `haply convert` of a monitrc."""

import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from haply.config import ConfigError, load
from haply.config.diagnostics import NOWHERE
from haply.config.monit import tokenize

SEED = Path(__file__).resolve().parents[2] / ".." / "shared" / "fixtures" / "seed-configs" / "dair.monitrc"


def _load(tmp_path, text, name="monitrc"):
    path = tmp_path / name
    path.write_text(text)
    return load([str(path)], {})


def _strip(programs):
    from dataclasses import replace
    return [replace(p, location=NOWHERE) for p in programs]


def test_seed_loads_as_programs():
    loaded = load([str(SEED)], {})
    assert not loaded.diagnostics.errors
    programs = loaded.config.programs
    assert [p.name for p in programs] == ["pound", "nova-api-8781", "nova-api-8782", "nova-api-8783", "nova-api-8784"]
    nova = programs[1]
    assert nova.command == ("/usr/local/bin/nova-lb-api", "start", "8781", "8788")
    assert nova.stop_command == ("/usr/local/bin/nova-lb-api", "stop", "8781", "8788")
    assert (nova.pidfile, nova.daemon, nova.service_group) == ("/var/run/nova/nova_api_8781.pid", True, "nova-api")
    assert programs[0].service_group is None
    assert nova.location.line == 6


def test_seed_check_mode_and_convert_round_trip(tmp_path):
    check = subprocess.run([sys.executable, "-m", "haply", "-c", "-f", str(SEED)], capture_output=True, text=True,
                           timeout=60)
    assert check.returncode == 0, check.stderr
    converted = subprocess.run([sys.executable, "-m", "haply", "convert", str(SEED)], capture_output=True,
                               text=True, timeout=60)
    assert converted.returncode == 0, converted.stderr
    assert "program nova-api-8784\n    command /usr/local/bin/nova-lb-api start 8784 8785\n" in converted.stdout
    assert "    stop-command /usr/local/bin/nova-lb-api stop 8784 8785\n" in converted.stdout
    assert "    option daemon\n" in converted.stdout and "    service-group nova-api\n" in converted.stdout
    out = tmp_path / "haproxy.cfg"
    out.write_text(converted.stdout)
    assert _strip(load([str(out)], {}).config.programs) == _strip(load([str(SEED)], {}).config.programs)


def test_full_syntax(tmp_path):
    loaded = _load(tmp_path, """
set daemon 10 with start delay 5
set logfile syslog facility log_daemon   # ignored with a warning
check process api with pidfile '/run/api.pid'
    start program = "/usr/bin/api --port 8000" as uid nobody and gid nogroup with timeout 30 seconds
    stop program="/usr/bin/api-stop" with timeout 2 minutes
    if failed host 127.0.0.1 port 8000 protocol http then restart
    if 3 restarts within 6 cycles then unmonitor
    if does not exist then restart
    if cpu > 90% for 5 cycles then alert
    group nova
    depends on db, cache
    mode active
check system host1
    if loadavg (1min) > 4 then alert
""")
    (program,) = loaded.config.programs
    assert (program.user, program.group, program.port) == ("nobody", "nogroup", 8000)
    assert (program.stop_timeout, program.crash_limit, program.crash_window) == (120.0, 3, 60.0)
    assert program.stop_command == ("/usr/bin/api-stop",) and program.service_group == "nova"
    warnings = " ".join(str(w) for w in loaded.diagnostics.warnings)
    assert "'set logfile'" in warnings and "cpu > 90%" in warnings and "check system" in warnings
    assert "depends on" in warnings and "exist" not in warnings


def test_include(tmp_path):
    (tmp_path / "conf.d").mkdir()
    (tmp_path / "conf.d" / "b.conf").write_text('check process b with pidfile /run/b.pid\n start "/b"\n')
    (tmp_path / "conf.d" / "a.conf").write_text('check process a with pidfile /run/a.pid\n start "/a"\n')
    config = _load(tmp_path, "set daemon 30\ninclude conf.d/*.conf\n").config
    assert [p.name for p in config.programs] == ["a", "b"]


@pytest.mark.parametrize("text, message", [
    ('check process a\n  start program = "/a"\n', "has no 'with pidfile'"),
    ("check process a with pidfile /run/a.pid\n", "has no 'start program'"),
    ('check process a matching "a.*"\n  start program = "/a"\n', "'matching' is not supported"),
    ('check host web with address 10.0.0.1\n  if failed port 80 then alert\n', "'check host' is not supported"),
    ('check process a with pidfile /r\n start "/a\n', "unterminated string"),
    ('check process a with pidfile /r\n  start "/a"\n  frobnicate\n', "'frobnicate' is not a statement"),
    ("set daemon soon\n", "set daemon expects a number"),
    ('check process "my api" with pidfile /r\n start "/a"\n', "cannot name a program"),
    ('check process a with pidfile /r\n start "/a" as uid no-such-user-here\n', "cannot find user id"),
    ('bogus\ncheck process a with pidfile /r start "/a"\n', "unexpected 'bogus'"),
    ('check process a with pidfile /r start "/a"\ncheck process a with pidfile /s start "/b"\n', "already defined"),
])
def test_errors(tmp_path, text, message):
    with pytest.raises(ConfigError) as info:
        _load(tmp_path, text)
    errors = [str(d) for d in info.value.diagnostics if d.severity == "error"]
    assert any(message in e and "monitrc:" in e for e in errors), errors


def test_an_error_does_not_hide_the_next_check(tmp_path):
    with pytest.raises(ConfigError) as info:
        _load(tmp_path, 'check process a\n start "/a"\ncheck process b with pidfile /r\n frob\n')
    errors = [str(d) for d in info.value.diagnostics if d.severity == "error"]
    assert len(errors) == 2 and "monitrc:1" in errors[0] and "monitrc:4" in errors[1]


_text = st.text(st.characters(min_codepoint=32, max_codepoint=126, blacklist_characters="\"'#"), max_size=30)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.one_of(_text.map(lambda t: f'"{t}"'), _text), max_size=6))
def test_tokenizer_keeps_quoted_strings_whole(parts):
    line = " ".join(parts)
    tokens = tokenize(line + " # trailing comment", "f")
    quoted = [t.text for t in tokens if t.quoted]
    assert quoted == [p[1:-1] for p in parts if p.startswith('"')]
    assert all(t.location.line == 1 for t in tokens)
    assert "comment" not in [t.text for t in tokens if not t.quoted] or "comment" in line


_WORDS = ["check", "process", "system", "host", "set", "daemon", "include", "with", "pidfile", "start", "stop",
          "restart", "program", "=", "as", "uid", "gid", "and", "timeout", "seconds", "group", "if", "failed",
          "port", "then", "else", "alert", "restarts", "within", "cycles", "unmonitor", "depends", "on", ",",
          "mode", "active", "matching", "5", "8080", "0", "nova", '"/bin/x start"', "'/bin/y'", '"', "#", "\n"]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(_WORDS), max_size=40))
def test_any_token_soup_is_parsed_or_refused_with_a_location(tmp_path_factory, words):
    path = tmp_path_factory.mktemp("soup") / "monitrc"
    path.write_text(" ".join(words))
    try:
        loaded = load([str(path)], {})
    except ConfigError as error:
        errors = [d for d in error.diagnostics if d.severity == "error"]
        assert errors and all(d.location.file in (str(path), "<command line>") for d in errors)
        assert all(d.location.line >= 1 for d in errors if d.location.file == str(path))
    else:
        for program in loaded.config.programs:
            assert program.command and program.pidfile and program.daemon
