"""The runtime API over real stats sockets, driven by socat, under traffic."""

from __future__ import annotations

import os
import socket
import tempfile
import threading
import time

import pytest

from tests.support.admin_cli import cli, wait_socket
from tests.support.haply_process import run_haply
from tests.support.haproxy_oracle import echo_backends, free_port, haproxy_config, http_get


@pytest.fixture
def setup():
    directory = tempfile.mkdtemp(prefix="haply-cli-")
    admin = os.path.join(directory, "admin.sock")
    user = os.path.join(directory, "user.sock")
    tcp_port, port = free_port(), free_port()
    with echo_backends(["a", "b"]) as backends:
        sections = f"""
frontend fe
    bind 127.0.0.1:{port}
    default_backend be
backend be
    default-server weight 5
    server a {backends[0].address}
    server b {backends[1].address}
"""
        prelude = haproxy_config("").replace(
            "    nbthread 1\n",
            f"    nbthread 1\n    stats socket {admin} mode 600 level admin\n"
            f"    stats socket {user} level user\n"
            f"    stats socket ipv4@127.0.0.1:{tcp_port} level operator\n")
        with run_haply(prelude + sections) as proxy:
            wait_socket(admin)
            wait_socket(user)
            yield {"admin": admin, "user": user, "tcp": f"TCP:127.0.0.1:{tcp_port}",
                   "port": port, "backends": backends, "proxy": proxy}
    for name in os.listdir(directory):
        os.unlink(os.path.join(directory, name))
    os.rmdir(directory)


def test_one_shot_show_stat(setup):
    text = cli(setup["admin"], "show stat")
    lines = text.split("\n")
    assert lines[0].startswith("# pxname,svname,qcur,qmax,")
    assert [line.split(",")[1] for line in lines[1:5]] == ["FRONTEND", "a", "b", "BACKEND"]
    assert text.endswith("\n\n")  # the empty line that ends an answer
    assert oct(os.stat(setup["admin"]).st_mode & 0o777) == "0o600"


def test_state_change_moves_traffic(setup):
    port = setup["port"]
    assert cli(setup["admin"], "set server be/a state maint") == "\n"
    seen = {http_get(port).backend for _ in range(6)}
    assert seen == {"b"}
    status = {line.split(",")[1]: line.split(",")[17]
              for line in cli(setup["admin"], "show stat").splitlines()[1:] if line}
    assert status["a"] == "MAINT"
    cli(setup["admin"], "set server be/a state ready")
    seen = {http_get(port).backend for _ in range(6)}
    assert seen == {"a", "b"}


def test_levels_enforced(setup):
    assert cli(setup["user"], "set server be/a state maint") == "Permission denied\n\n"
    assert cli(setup["tcp"], "disable server be/a") == "Permission denied\n\n"
    assert "be" in cli(setup["user"], "show backend")
    assert "a" in cli(setup["tcp"], "show servers state be")
    # nothing changed
    assert {http_get(setup["port"]).backend for _ in range(6)} == {"a", "b"}


def test_interactive_prompt(setup):
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(3)
        sock.connect(setup["admin"])
        sock.sendall(b"prompt\n")
        assert _read_until(sock, b"> ") == b"> "
        sock.sendall(b"show backend\n")
        assert _read_until(sock, b"> ") == b"# name\nbe\n\n> "
        sock.sendall(b"get weight be/a; get weight be/b\n")
        assert _read_until(sock, b"> ") == b"5 (initial 5)\n\n5 (initial 5)\n\n> "
        # a session may lower its own level, never raise it
        sock.sendall(b"user\n")
        assert _read_until(sock, b"> ") == b"\n> "  # an empty answer, as HAProxy's
        sock.sendall(b"set server be/a state maint\n")
        assert _read_until(sock, b"> ") == b"Permission denied\n\n> "
        sock.sendall(b"quit\n")
        assert sock.recv(100) == b""


def _read_until(sock: socket.socket, end: bytes) -> bytes:
    data = b""
    while not data.endswith(end):
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


def test_add_and_delete_server_without_reload(setup):
    admin, port = setup["admin"], setup["port"]
    with echo_backends(["c"]) as extra:
        assert cli(admin, f"add server be/c {extra[0].address}") == "New server registered.\n\n"
        assert cli(admin, "get weight be/c") == "5 (initial 5)\n\n"  # default-server
        assert {http_get(port).backend for _ in range(6)} == {"a", "b"}  # in maint
        cli(admin, "set server be/c state ready")
        seen = {http_get(port).backend for _ in range(12)}
        assert "c" in seen
        cli(admin, "set server be/c state maint")
        assert cli(admin, "del server be/c") == "Server deleted.\n"  # unframed, as HAProxy
        assert {http_get(port).backend for _ in range(6)} == {"a", "b"}
        assert ",c," not in cli(admin, "show stat")


def test_show_errors_records_rejected_requests(setup):
    with socket.create_connection(("127.0.0.1", setup["port"]), timeout=3) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n")
        assert sock.recv(100).startswith(b"HTTP/1.1 400")
    text = cli(setup["admin"], "show errors")
    assert text.startswith("Total events captured on [")
    assert "frontend fe (#" in text and "src 127.0.0.1:" in text
    assert "error at position 28" in text  # the space inside "Bad Header"
    assert "  00025  Bad Header\\r\\n" in text


def test_concurrent_commands_under_traffic(setup):
    admin, port = setup["admin"], setup["port"]
    failures: list[str] = []
    stop = threading.Event()

    def traffic() -> None:
        deadline = time.monotonic() + 3
        while not stop.is_set() and time.monotonic() < deadline:
            try:
                response = http_get(port)
                if response.status != 200:
                    failures.append(f"status {response.status}")
            except OSError as exc:
                failures.append(repr(exc))

    def drain_a() -> None:
        for _ in range(10):
            for state in ("drain", "ready", "maint", "ready"):
                answer = cli(admin, f"set server be/a state {state}")
                if answer != "\n":
                    failures.append(answer)
            cli(admin, "show stat")

    def weigh_b() -> None:
        # b always keeps a weight: one server stays usable, so no request may fail
        for weight in list(range(1, 11)) * 2:
            answer = cli(admin, f"set server be/b weight {weight}")
            if answer != "\n":
                failures.append(answer)
            cli(admin, "show servers state")

    threads = [threading.Thread(target=traffic) for _ in range(2)]
    threads += [threading.Thread(target=drain_a), threading.Thread(target=weigh_b)]
    for thread in threads:
        thread.start()
    for thread in threads[2:]:
        thread.join(timeout=20)
    stop.set()
    for thread in threads[:2]:
        thread.join(timeout=10)
    assert not failures
    states = cli(admin, "show servers state be").splitlines()[2:4]
    assert [line.split()[6] for line in states] == ["0", "0"]  # both ready
    assert cli(admin, "get weight be/b") == "10 (initial 5)\n\n"


# ------------------------------------------------------------------ haply ctl


def ctl(*args: str, env: dict | None = None):
    import subprocess
    import sys
    from tests.support.haply_process import REPO_ROOT
    environment = dict(os.environ, PYTHONPATH=str(REPO_ROOT), **(env or {}))
    environment.pop("HAPLY_SOCKET", None) if env is None else None
    return subprocess.run([sys.executable, "-m", "haply", "ctl", *args], capture_output=True,
                          text=True, timeout=20, env=environment, stdin=subprocess.DEVNULL)


def test_ctl_status_table_and_actions(setup):
    sock = setup["admin"]
    result = ctl("-S", sock, "drain", "be/a")
    assert result.returncode == 0, result.stderr
    result = ctl("-S", sock, "status")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split()[:4] == ["PROXY", "NAME", "STATUS", "WEIGHT"]
    rows = {tuple(line.split()[:2]): line.split() for line in lines[2:]}
    assert rows[("be", "a")][2] == "DRAIN"
    assert rows[("be", "b")][2] == "no"  # "no check"
    assert ("fe", "FRONTEND") in rows and ("be", "BACKEND") in rows
    result = ctl("-S", sock, "servers", "be")
    assert [line.split()[0] for line in result.stdout.splitlines()[2:]] == ["be/a", "be/b"]
    result = ctl("-S", sock, "ready", "be/a")
    assert result.returncode == 0
    assert "DRAIN" not in ctl("-S", sock, "status").stdout


def test_ctl_errors_and_raw(setup):
    result = ctl("-S", setup["user"], "maint", "be/a")
    assert result.returncode == 1 and "Permission denied" in result.stdout
    result = ctl("-S", setup["admin"], "--raw", "show", "backend")
    assert result.stdout == "# name\nbe\n"
    result = ctl("-S", setup["tcp"].removeprefix("TCP:"), "info")
    assert result.returncode == 0 and "Uptime_sec" in result.stdout
    result = ctl("-S", "/nonexistent/haply.sock", "status")
    assert result.returncode == 1 and "cannot talk to the stats socket" in result.stderr


def test_unbindable_stats_socket_stops_start_with_its_line(tmp_path):
    import subprocess
    import sys
    from tests.support.haply_process import REPO_ROOT
    port = free_port()
    config = tmp_path / "haproxy.cfg"
    config.write_text(haproxy_config("").replace(
        "    nbthread 1\n", "    nbthread 1\n    stats socket /nonexistent-dir/admin.sock\n")
        + f"frontend fe\n    bind 127.0.0.1:{port}\n")
    result = subprocess.run([sys.executable, "-m", "haply", "-db", "-f", str(config)],
                            capture_output=True, text=True, timeout=20,
                            env=dict(os.environ, PYTHONPATH=str(REPO_ROOT)),
                            stdin=subprocess.DEVNULL)
    assert result.returncode == 1
    assert f"{config}:4: cannot bind stats socket /nonexistent-dir/admin.sock" in result.stderr
    # nothing was left listening
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()


def test_socket_file_removed_at_exit(setup):
    # the fixture's haply is still running: its socket exists and answers
    assert os.path.exists(setup["admin"])
    setup["proxy"].stop()
    assert not os.path.exists(setup["admin"])
    assert not os.path.exists(setup["user"])


def test_ctl_finds_the_socket_in_the_config(setup):
    result = ctl("-f", setup["proxy"].config_path, "servers")
    assert result.returncode == 0, result.stderr
    assert [line.split()[0] for line in result.stdout.splitlines()[2:]] == ["be/a", "be/b"]
    result = ctl("-S", setup["admin"], "weight", "be/b", "9")
    assert result.returncode == 0
    assert cli(setup["admin"], "get weight be/b") == "9 (initial 5)\n\n"


def test_show_sess_lists_live_client_sessions(setup):
    with socket.create_connection(("127.0.0.1", setup["port"]), timeout=3) as client:
        client.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert client.recv(100).startswith(b"HTTP/1.1 200")  # kept alive, still a session
        port = client.getsockname()[1]
        text = cli(setup["admin"], "show sess")
    lines = [line for line in text.splitlines() if f"src=127.0.0.1:{port} " in line]
    assert len(lines) == 1, text
    assert " fe=fe " in lines[0]
    assert cli(setup["user"], "show sess") == "Permission denied\n\n"


def test_unix_bind_leaves_stats_sockets_as_haproxy_does(tmp_path):
    """HAProxy 2.6 applies `unix-bind` to the UNIX sockets of bind lines, not
    to stats sockets (observed here): a stats socket keeps its own path and
    mode, with haply as with HAProxy."""
    import stat as stat_module

    from tests.support.haply_process import PROXIES
    from tests.support.haproxy_oracle import run_haproxy

    seen = {}
    for name, binary in PROXIES.items():
        directory = tmp_path / name
        directory.mkdir()
        config = f"""
global
    unix-bind prefix {tmp_path}/prefix mode 640 group haproxy
    stats socket {directory}/admin.sock level admin
    stats socket {directory}/own.sock mode 600 level admin
defaults
    mode http
    timeout connect 1s
    timeout client 5s
    timeout server 5s
frontend fe
    bind 127.0.0.1:{free_port()}
"""
        with run_haproxy(config, binary=binary):
            wait_socket(str(directory / "admin.sock"))
            wait_socket(str(directory / "own.sock"))
            seen[name] = [(stat_module.S_IMODE(info.st_mode), info.st_gid)
                          for info in (os.stat(directory / "admin.sock"), os.stat(directory / "own.sock"))]
    assert seen["haply"] == seen["haproxy"]
    assert seen["haproxy"][1] == (0o600, 0), seen
