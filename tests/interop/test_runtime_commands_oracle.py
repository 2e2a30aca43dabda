"""Runtime API commands operators script maintenance with, against HAProxy
2.6 on the same configuration: `disable|enable|shutdown frontend`, `set
maxconn frontend|server|global`, `set rate-limit`.

Each command's answer, its errors and the levels it needs are compared text
for text; then the effect on real clients. What HAProxy 2.6 does, observed
on Linux: a disabled frontend stops listening while staying bound, so a new
connection is refused (not held in a backlog), an established one is served
on, the FRONTEND row says PAUSED; enable serves again; shutdown closes the
listeners for good (STOP). A lowered maxconn leaves a connection over the
frontend's limit unanswered (accepted by the kernel, not served) and a
request over a server's limit queued, until an earlier one ends.
"""

from __future__ import annotations

import errno
import http.client
import socket
import time

import pytest

from tests.support.admin_cli import ask, cli, stat_rows, wait_socket
from tests.support.haply_process import PROXIES, run_haply
from tests.support.haproxy_oracle import (echo_backends, free_port, haproxy_available, http_get,
                                          run_haproxy)

pytestmark = [pytest.mark.oracle,
              pytest.mark.skipif(not haproxy_available(), reason="HAProxy oracle not installed")]

# Sent in this order to each proxy: later ones depend on what earlier ones did.
COMMANDS = (
    "disable frontend",
    "disable frontend nope",
    "disable frontend app",
    "disable frontend fe",
    "disable frontend fe",
    "enable frontend #2",
    "enable frontend fe",
    "enable frontend",
    "enable frontend nope",
    "set maxconn frontend",
    "set maxconn frontend nope",
    "set maxconn frontend fe",
    "set maxconn frontend fe -1",
    "set maxconn frontend fe 50",
    "set maxconn frontend #2 40",
    "set maxconn server",
    "set maxconn server app",
    "set maxconn server app/x",
    "set maxconn server x/s1",
    "set maxconn server app/s1",
    "set maxconn server app/s1 x",
    "set maxconn server app/s1 5",
    "set maxconn server app/s2 0",
    "set maxconn global",
    "set maxconn global 5000",
    "set maxconn global 500",
    "set rate-limit",
    "set rate-limit connections",
    "set rate-limit foo global 1",
    "set rate-limit sessions global",
    "set rate-limit sessions global -1",
    "shutdown frontend",
    "shutdown frontend nope",
    "shutdown frontend spare",
    "shutdown frontend spare",
    "disable frontend spare",
    "enable frontend spare",
    "set maxconn frontend spare 10",
    "disable agent",
    "disable agent app",
    "disable agent app/x",
    "disable agent x/s1",
    "disable agent app/s2",
    "enable agent app/s2",
    "disable agent app/s1",
    "disable agent app/s1",
    "enable agent app/s1",
    "shutdown session",
    "shutdown session 0x1234",
    "shutdown session zz",
    "shutdown sessions server",
    "shutdown sessions server app",
    "shutdown sessions server app/x",
    "shutdown sessions server app/s1",
)
ADMIN_ONLY = (
    "disable frontend fe", "enable frontend fe", "shutdown frontend fe",
    "set maxconn frontend fe 5", "set maxconn server app/s1 5", "set maxconn global 900",
    "set rate-limit sessions global 5",
    "disable agent app/s1", "enable agent app/s1", "shutdown session 0x1234",
    "shutdown sessions server app/s1",
)
# Over a lowered limit, how long a connection is watched for an answer that must not come.
HELD = 0.5


def config(sock: str, port: int, spare: int, backends, mode: str = "http", first: str = "") -> str:
    """first: options of the first server only."""
    servers = "\n".join(f"    server {b.name} {b.address}" + (f" {first}" if i == 0 else "")
                        for i, b in enumerate(backends))
    return f"""\
global
    maxconn 1000
    stats socket {sock} level admin
    stats socket {sock}.operator level operator
    stats socket {sock}.user level user

defaults
    mode {mode}
    timeout connect 2s
    timeout client 5s
    timeout server 5s
    timeout queue 5s

frontend fe
    bind 127.0.0.1:{port}
    default_backend app

frontend spare
    bind 127.0.0.1:{spare}
    default_backend app

backend app
{servers}
"""


def run(name: str, text: str):
    return run_haply(text) if name == "haply" else run_haproxy(text)


def refused(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            return False
    except OSError as exc:
        return exc.errno == errno.ECONNREFUSED


def row(sock: str, proxy: str, name: str) -> dict:
    return next(r for r in stat_rows(sock) if r["pxname"] == proxy and r["svname"] == name)


def maxconn_info(sock: str) -> tuple[str, str]:
    info = dict(line.split(": ", 1) for line in cli(sock, "show info").splitlines() if ": " in line)
    return info["Maxconn"], info["Hard_maxconn"]


def test_answers_and_levels_as_haproxy(tmp_path):
    answers, levels, limits = {}, {}, {}
    with echo_backends(["s1", "s2"]) as backends:
        for name in PROXIES:
            sock = str(tmp_path / f"{name}.sock")
            agent = f"check inter 10s agent-check agent-port {free_port()} agent-inter 10s"
            with run(name, config(sock, free_port(), free_port(), backends, first=agent)):
                wait_socket(sock)
                answers[name] = [(command, cli(sock, command)) for command in COMMANDS]
                levels[name] = [(level, command, cli(f"{sock}.{level}", command))
                                for level in ("operator", "user") for command in ADMIN_ONLY]
                limits[name] = (row(sock, "fe", "FRONTEND")["slim"], row(sock, "app", "s1")["slim"],
                                row(sock, "app", "s2")["slim"], row(sock, "spare", "FRONTEND")["status"],
                                maxconn_info(sock))
    assert answers["haply"] == answers["haproxy"]
    assert levels["haply"] == levels["haproxy"]
    assert all(answer == "Permission denied\n\n" for _, _, answer in levels["haproxy"])
    assert limits["haply"] == limits["haproxy"] == ("40", "5", "", "STOP", ("500", "1000"))


def test_rate_limits_haply_lacks_are_refused_plainly(tmp_path):
    with echo_backends(["s1"]) as backends:
        sock = str(tmp_path / "haply.sock")
        with run_haply(config(sock, free_port(), free_port(), backends)):
            wait_socket(sock)
            answer = cli(sock, "set rate-limit sessions global 10")
    assert answer == ("haply does not limit the process-wide sessions rate "
                      "(global 'maxsessrate' is not supported); nothing was changed.\n\n")


def status_of(connection: http.client.HTTPConnection, path: str) -> int:
    connection.request("GET", path)
    response = connection.getresponse()
    response.read()
    return response.status


def exercise_disabled_frontend(sock: str, port: int) -> dict:
    seen = {}
    wait_socket(sock)
    kept = http.client.HTTPConnection("127.0.0.1", port, timeout=5)  # keep-alive
    try:
        seen["before"] = status_of(kept, "/before")
        seen["disable"] = cli(sock, "disable frontend fe")
        seen["status"] = row(sock, "fe", "FRONTEND")["status"]
        seen["refused"] = refused(port)
        seen["during"] = status_of(kept, "/during")  # established before the pause: served on
    finally:
        kept.close()
    seen["enable"] = cli(sock, "enable frontend fe")
    seen["after"] = [http_get(port).status for _ in range(3)]
    seen["reopened"] = row(sock, "fe", "FRONTEND")["status"]
    seen["shutdown"] = cli(sock, "shutdown frontend fe")
    seen["closed"] = refused(port)
    seen["stopped"] = row(sock, "fe", "FRONTEND")["status"]
    return seen


def test_disabled_frontend_refuses_new_connections_and_serves_again_once_enabled(tmp_path):
    seen = {}
    with echo_backends(["s1"]) as backends:
        for name in PROXIES:
            sock, port = str(tmp_path / f"{name}.sock"), free_port()
            with run(name, config(sock, port, free_port(), backends)):
                seen[name] = exercise_disabled_frontend(sock, port)
    assert seen["haply"] == seen["haproxy"]
    assert seen["haproxy"] == {
        "before": 200, "disable": "\n", "status": "PAUSED", "refused": True,
        "during": 200, "enable": "\n", "after": [200, 200, 200], "reopened": "OPEN",
        "shutdown": "\n", "closed": True, "stopped": "STOP"}


def answered_within(sock: socket.socket, delay: float) -> bytes:
    sock.settimeout(delay)
    try:
        return sock.recv(4096)
    except socket.timeout:
        return b""


def exercise_frontend_maxconn(sock_path: str, port: int) -> dict:
    seen = {}
    wait_socket(sock_path)
    seen["set"] = cli(sock_path, "set maxconn frontend fe 1")
    first = socket.create_connection(("127.0.0.1", port), timeout=5)
    first.sendall(b"GET /1 HTTP/1.1\r\nHost: h\r\n\r\n")
    seen["first"] = first.recv(4096).split(b"\r\n")[0]
    second = socket.create_connection(("127.0.0.1", port), timeout=5)  # the kernel takes it
    second.sendall(b"GET /2 HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
    seen["held"] = answered_within(second, HELD)
    first.close()  # the frontend's only slot frees: the held one is served
    seen["second"] = answered_within(second, 5).split(b"\r\n")[0]
    second.close()
    return seen


def test_lowered_frontend_maxconn_holds_connections_over_it(tmp_path):
    seen = {}
    with echo_backends(["s1"]) as backends:
        for name in PROXIES:
            sock, port = str(tmp_path / f"{name}.sock"), free_port()
            with run(name, config(sock, port, free_port(), backends)):
                seen[name] = exercise_frontend_maxconn(sock, port)
    assert seen["haply"] == seen["haproxy"] == {
        "set": "\n", "first": b"HTTP/1.1 200 OK", "held": b"", "second": b"HTTP/1.1 200 OK"}


def exercise_server_maxconn(sock_path: str, port: int) -> dict:
    """In mode tcp a connection holds its server until it closes."""
    seen = {}
    wait_socket(sock_path)
    seen["set"] = cli(sock_path, "set maxconn server app/s1 1")
    first = socket.create_connection(("127.0.0.1", port), timeout=5)
    first.sendall(b"GET /1 HTTP/1.1\r\nHost: h\r\n\r\n")
    seen["first"] = first.recv(4096).split(b"\r\n")[0]
    second = socket.create_connection(("127.0.0.1", port), timeout=5)
    second.sendall(b"GET /2 HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
    seen["held"] = answered_within(second, HELD)
    seen["queued"] = row(sock_path, "app", "BACKEND")["qcur"]  # waiting for any server
    first.close()
    seen["second"] = answered_within(second, 5).split(b"\r\n")[0]
    second.close()
    return seen


def test_lowered_server_maxconn_queues_connections_over_it(tmp_path):
    seen = {}
    with echo_backends(["s1"]) as backends:
        for name in PROXIES:
            sock, port = str(tmp_path / f"{name}.sock"), free_port()
            with run(name, config(sock, port, free_port(), backends, mode="tcp")):
                seen[name] = exercise_server_maxconn(sock, port)
    assert seen["haply"] == seen["haproxy"] == {
        "set": "\n", "first": b"HTTP/1.1 200 OK", "held": b"", "queued": "1",
        "second": b"HTTP/1.1 200 OK"}


# ------------------------------------------------------------ several workers


def until(check, timeout: float = 5.0):
    """check() once it is true (the master relays a change to the other workers)."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.05)


def test_two_workers_apply_frontend_and_maxconn_changes(tmp_path):
    """haply with `nbthread 2` runs two worker processes; a change made on
    the stats socket (in whichever worker accepts it) applies to both, each
    taking its share of a limit, as HAProxy's one process applies it to
    both threads."""
    with echo_backends(["s1"]) as backends:
        sock, port = str(tmp_path / "haply.sock"), free_port()
        text = config(sock, port, free_port(), backends).replace(
            "global\n", "global\n    nbthread 2\n", 1)
        with run_haply(text):
            wait_socket(sock)
            master = sock + ".master"
            wait_socket(master)  # the master's own, opened apart from the workers' sockets
            assert cli(sock, "disable frontend fe") == "\n"
            for worker in ("@0", "@1"):
                assert until(lambda: "All sockets are already disabled." in
                             ask(master, f"{worker} disable frontend fe")), worker
            # no worker listens: every attempt is refused, whichever socket the kernel picks
            assert all(refused(port) for _ in range(20))
            assert cli(sock, "enable frontend fe") == "\n"
            for worker in ("@0", "@1"):
                assert until(lambda: "already enabled" in ask(master, f"{worker} enable frontend fe"))
            assert [http_get(port).status for _ in range(20)] == [200] * 20

            assert cli(sock, "set maxconn frontend fe 7") == "\n"
            assert cli(sock, "set maxconn server app/s1 9") == "\n"
            assert cli(sock, "set maxconn global 500") == "\n"

            def shares(worker: str) -> tuple:
                rows = {(r.split(",")[0], r.split(",")[1]): r.split(",")[6]
                        for r in ask(master, f"{worker} show stat").splitlines()[1:] if r}
                info = ask(master, f"{worker} show info")
                maxconn = next(line for line in info.splitlines() if line.startswith("Maxconn:"))
                return rows[("fe", "FRONTEND")], rows[("app", "s1")], maxconn

            # each worker its share, the shares adding up to the value set
            assert until(lambda: shares("@0") == ("4", "5", "Maxconn: 250"))
            assert until(lambda: shares("@1") == ("3", "4", "Maxconn: 250"))
            # the merged view shows the whole, whichever worker answers (the
            # kernel picks one per connection to the shared stats socket)
            by_worker = {}

            def merged_limits() -> set:
                for _ in range(10):
                    pid, limits = merged_limits_of_one_worker(sock)
                    by_worker[pid] = limits
                return set(by_worker.values()) if len(by_worker) == 2 else set()

            assert until(lambda: merged_limits() == {("7", "9")}, timeout=10)


def merged_limits_of_one_worker(sock: str) -> tuple[str, tuple[str, str]]:
    """The pid of the worker that answered and the (frontend, server) slim
    of its merged view."""
    text = ask(sock, "show info;show stat")
    pid = next(line for line in text.splitlines() if line.startswith("Pid:"))
    slim = {tuple(line.split(",")[:2]): line.split(",")[6]
            for line in text.splitlines() if line.count(",") > 6}
    return pid, (slim[("fe", "FRONTEND")], slim[("app", "s1")])


def state_within(sock: socket.socket, delay: float) -> str:
    """"closed" if the proxy closes sock within delay (what it still had to
    send is read and dropped), else "open"."""
    deadline = time.monotonic() + delay
    try:
        while True:
            sock.settimeout(max(0.01, deadline - time.monotonic()))
            if not sock.recv(65536):
                return "closed"
    except socket.timeout:
        return "open"
    except ConnectionResetError:
        return "closed"


def exercise_session_shutdowns(sock_path: str, port: int) -> dict:
    """Two tcp connections through app/s1: one ended by its `show sess` id,
    the other with every session of the server."""
    seen = {}
    wait_socket(sock_path)
    clients = []
    for path in ("/1", "/2"):
        client = socket.create_connection(("127.0.0.1", port), timeout=5)
        client.sendall(f"GET {path} HTTP/1.1\r\nHost: h\r\n\r\n".encode())
        client.recv(4096)
        clients.append(client)
    ids = [line.split(":")[0] for line in cli(sock_path, "show sess").splitlines()
           if " fe=fe " in line]
    seen["listed"] = len(ids)
    seen["one"] = cli(sock_path, f"shutdown session {ids[0]}")
    seen["again"] = cli(sock_path, f"shutdown session {ids[0]}")
    seen["ended by id"] = sorted(state_within(client, HELD) for client in clients)
    seen["server"] = cli(sock_path, "shutdown sessions server app/s1")
    seen["all ended"] = [state_within(client, 2) for client in clients]
    for client in clients:
        client.close()
    return seen


def test_sessions_shut_down_by_id_and_by_server(tmp_path):
    seen = {}
    with echo_backends(["s1"]) as backends:
        for name in PROXIES:
            sock, port = str(tmp_path / f"{name}.sock"), free_port()
            with run(name, config(sock, port, free_port(), backends, mode="tcp")):
                seen[name] = exercise_session_shutdowns(sock, port)
    assert seen["haply"] == seen["haproxy"] == {
        "listed": 2, "one": "\n", "again": "No such session (use 'show sess').\n\n",
        "ended by id": ["closed", "open"], "server": "\n", "all ended": ["closed", "closed"]}


# Lines sent on one connection each, at each level: the session's own settings
# hold for the rest of the line.
SESSION_LINES = (
    "show cli level",
    "operator; show cli level; user; show cli level; operator",
    "show env HAPLY_TEST_VARIABLE",
    "show env HAPLY_NO_SUCH_VARIABLE",
    "set timeout",
    "set timeout foo 5",
    "set timeout cli",
    "set timeout cli x",
    "set timeout cli 0",
    "set timeout cli -1",
    "set timeout cli 1.5",
    "set timeout cli 5; set timeout cli 5s; set timeout cli 100ms; set timeout cli 2d",
    "set severity-output",
    "set severity-output foo",
    "set severity-output number; disable frontend nope; show cli level; disable frontend spare; "
    "disable frontend spare; enable frontend spare; set maxconn global 5000; set timeout cli x; "
    "set maxconn server app/s1 x; show env HAPLY_NO_SUCH_VARIABLE; set rate-limit; "
    "show env HAPLY_TEST_VARIABLE; user; operator",
    "set severity-output string; disable frontend nope; enable frontend spare; "
    "set weight app/s1 x; add server app/extra 127.0.0.1:1; del server app/extra; "
    "get weight app/s1; show cli level",
)


def test_session_commands_as_haproxy(tmp_path, monkeypatch):
    monkeypatch.setenv("HAPLY_TEST_VARIABLE", "some value")
    answers = {}
    with echo_backends(["s1", "s2"]) as backends:
        for name in PROXIES:
            sock = str(tmp_path / f"{name}.sock")
            with run(name, config(sock, free_port(), free_port(), backends)):
                wait_socket(sock)
                answers[name] = [(path, line, cli(sock + path, line))
                                 for path in ("", ".operator", ".user") for line in SESSION_LINES]
    assert answers["haply"] == answers["haproxy"]
    by_line = {(path, line): answer for path, line, answer in answers["haproxy"]}
    assert by_line[(".user", "show env HAPLY_TEST_VARIABLE")] == "Permission denied\n\n"
    assert by_line[(".operator", "show env HAPLY_TEST_VARIABLE")] == \
        "HAPLY_TEST_VARIABLE=some value\n\n"
