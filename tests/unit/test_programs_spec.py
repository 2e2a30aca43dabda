"""What an instance runs (haply.programs.spec) and the supervisor's pure parts:
server-to-instance matching and the `show programs` table."""

import asyncio
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from haply.config import load
from haply.config.model import Program
from haply.programs.policy import RUNNING
from haply.programs.spec import instance_servers, launch, substitute
from haply.programs.supervisor import ProgramSupervisor, format_uptime


def test_substitute():
    assert substitute("--port=%p --worker %i 100%% %x %", 8781, 2) == "--port=8781 --worker 2 100% %x %"
    assert substitute("%p", None, 1) == ""


@given(st.text(alphabet="ab%pi", max_size=30), st.integers(1, 65535), st.integers(1, 99))
def test_substitute_leaves_no_code_behind(text, port, instance):
    out = substitute(text, port, instance)
    # every %p/%i/%% is consumed left to right: re-reading the codes gives the same length
    expected, i = 0, 0
    while i < len(text):
        if text[i] == "%" and i + 1 < len(text) and text[i + 1] in "pi%":
            expected += {"p": len(str(port)), "i": len(str(instance)), "%": 1}[text[i + 1]]
            i += 2
        else:
            expected += 1
            i += 1
    assert len(out) == expected


def test_launch():
    program = Program("api", command=("serve", "--port", "%p"), instances=3, port=9000,
                      environment=(("LOG", "/var/log/api-%i"),), stdout="/log/%i.out", pidfile="/run/api-%p.pid",
                      stop_command=("stop", "%i"), directory="/srv")
    spec = launch(program, 3, {"PATH": "/bin", "HAPLY_PORT": "stale"})
    assert spec.argv == ("serve", "--port", "9002") and spec.stop_argv == ("stop", "3")
    assert spec.env == {"PATH": "/bin", "LOG": "/var/log/api-3", "HAPLY_PORT": "9002", "HAPLY_INSTANCE": "3",
                        "HAPLY_PROGRAM": "api"}
    assert (spec.stdout, spec.stderr, spec.pidfile, spec.cwd) == ("/log/3.out", None, "/run/api-9002.pid", "/srv")


def test_instance_servers(tmp_path: Path):
    path = tmp_path / "haproxy.cfg"
    path.write_text("""
program api
    command serve %p
    instances 2
    port 9000
defaults
    mode http
    timeout connect 1s
    timeout client 1s
    timeout server 1s
backend a
    program-servers api check
backend b
    program-servers api
    server api-3 127.0.0.1:9002
listen c
    bind 127.0.0.1:1
    server api-1 10.0.0.1:9000
""")
    config = load([str(path)], {}).config
    assert instance_servers(config) == {("api", 1): [("a", "api-1"), ("b", "api-1")],
                                        ("api", 2): [("a", "api-2"), ("b", "api-2")]}


def _supervisor(servers=None):
    loop = asyncio.new_event_loop()
    programs = [Program("api", command=("x",), instances=2, port=9000), Program("solo", command=("y",)),
                Program("ns:api", command=("z",), instances=2, port=9100, service_group="grp")]
    return ProgramSupervisor(programs, loop, servers=servers), loop


def test_server_to_instance_by_map_or_by_name():
    supervisor, loop = _supervisor({("api", 2): [("be", "second")]})
    try:
        assert supervisor._runner_of("be", "second").instance.name == "api:2"
        assert supervisor._runner_of("be", "api-2") is None  # a map is given: names do not count
    finally:
        loop.close()
    supervisor, loop = _supervisor()
    try:
        assert supervisor._runner_of("any", "api-2").instance.name == "api:2"
        assert supervisor._runner_of("any", "api-3") is None
        assert supervisor._runner_of("any", "solo-1") is None  # no port: not behind a proxy
    finally:
        loop.close()


def test_select_and_show():
    supervisor, loop = _supervisor()
    try:
        assert [r.instance.name for r in supervisor.select("api")] == ["api:1", "api:2"]
        assert [r.instance.name for r in supervisor.select("api:2")] == ["api:2"]
        assert supervisor.select("api:0") == supervisor.select("nope") == supervisor.select("api:x") == []
        assert [r.instance.name for r in supervisor.select("ns:api:2")] == ["ns:api:2"]
        assert [r.instance.name for r in supervisor.select("ns:api")] == ["ns:api:1", "ns:api:2"]
        assert [r.instance.name for r in supervisor.select("grp")] == ["ns:api:1", "ns:api:2"]
        first = supervisor.runners["api"][0].instance
        first.state, first.pid, first.started_at, first.restarts = RUNNING, 4242, loop.time() - 3725, 2
        lines = supervisor.show().splitlines()
        assert lines[0].split() == ["#<program>", "<state>", "<pid>", "<port>", "<uptime>", "<restarts>", "<last",
                                    "exit>"]
        assert lines[1].split() == ["api:1", "RUNNING", "4242", "9000", "0d01h02m05s", "2", "-"]
        assert lines[2].split() == ["api:2", "STOPPED", "-", "9001", "-", "0", "-"]
        assert lines[3].split() == ["solo:1", "STOPPED", "-", "-", "-", "0", "-"]
    finally:
        loop.close()


def test_format_uptime():
    assert format_uptime(0) == "0d00h00m00s"
    assert format_uptime(90061.9) == "1d01h01m01s"
