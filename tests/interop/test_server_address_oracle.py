"""A server's address: `init-addr` at start and `set server B/S addr` at run
time, against HAProxy 2.6 on the same configuration.

The servers named by host use names under .invalid, which never resolve
(RFC 6761), so the test does not depend on the machine's resolver.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile

import pytest

from tests.support.admin_cli import cli, wait_socket
from tests.support.haply_process import PROXIES, REPO_ROOT
from tests.support.haproxy_oracle import (EchoBackend, echo_backends, free_port, haproxy_available,
                                          http_get, run_haproxy)

pytestmark = pytest.mark.skipif(not haproxy_available(), reason="HAProxy oracle not installed")

UNRESOLVABLE = "controller-9.invalid"


def config(sock: str, port: int, servers: str, state_file: str | None = None) -> str:
    state = (f"    server-state-file {state_file}\n" if state_file else "")
    load = ("    load-server-state-from-file global\n" if state_file else "")
    return f"""global
    maxconn 100
    stats socket {sock} level admin
{state}defaults
    mode http
    timeout connect 2s
    timeout client 5s
    timeout server 5s
{load}frontend fe
    bind 127.0.0.1:{port}
    default_backend be
backend be
{servers}"""


def status_column(sock: str) -> dict[str, str]:
    lines = cli(sock, "show stat").splitlines()
    names = lines[0].lstrip("# ").split(",")
    rows = [dict(zip(names, line.split(","))) for line in lines[1:] if line]
    return {row["svname"]: row["status"] for row in rows if row["pxname"] == "be"}


def saved_state(sock: str) -> dict[str, tuple[str, str, str]]:
    """server -> (srv_addr, srv_admin_state, srv_fqdn) from `show servers state`."""
    rows = [line.split() for line in cli(sock, "show servers state be").splitlines()[2:] if line]
    return {row[3]: (row[4], row[6], row[17]) for row in rows}


def run_each(text_for, exercise):
    """exercise(socket, port) under each proxy on text_for(socket, port)."""
    results = {}
    for name, binary in PROXIES.items():
        directory = tempfile.mkdtemp(prefix="haply-addr-")
        sock, port = os.path.join(directory, "admin.sock"), free_port()
        with run_haproxy(text_for(sock, port), binary=binary):
            wait_socket(sock)
            results[name] = exercise(sock, port)
    return results


def test_set_server_addr_moves_new_connections():
    with echo_backends(["a", "b"]) as (a, b):
        # c listens on another loopback address with a's port: only the IP changes.
        c = EchoBackend("c", host="127.0.0.2", port=a.port)
        c.start()
        try:
            servers = f"    server s {a.address}\n"

            def exercise(sock, port):
                answers = [http_get(port).backend]
                said = [cli(sock, "set server be/s addr 127.0.0.2")]
                answers.append(http_get(port).backend)
                said.append(cli(sock, "set server be/s addr 127.0.0.2"))
                said.append(cli(sock, f"set server be/s addr 127.0.0.1 port {b.port}"))
                answers.append(http_get(port).backend)
                said += [cli(sock, "set server be/s addr nowhere"),
                         cli(sock, "set server be/s addr"),
                         cli(sock, "set server be/s addr 127.0.0.1 port x")]
                answers.append(http_get(port).backend)
                return answers, said, saved_state(sock)["s"][0]

            results = run_each(lambda sock, port: config(sock, port, servers), exercise)
        finally:
            c.stop()
    assert results["haply"] == results["haproxy"]
    answers, said, address = results["haply"]
    assert answers == ["a", "c", "b", "b"]
    assert said[0] == "IP changed from '127.0.0.1' to '127.0.0.2' by 'stats socket command'\n\n"
    assert address == "127.0.0.1"


def test_init_addr_none_and_ip():
    """`none` starts the server in maintenance (resolution); an IP is used as
    the address; neither proxy refuses to start."""
    with echo_backends(["a", "b"]) as (a, b):
        servers = (f"    server s {a.address}\n"
                   f"    server unknown {UNRESOLVABLE}:{b.port} init-addr last,libc,none\n"
                   f"    server fixed {UNRESOLVABLE}:{b.port} init-addr 127.0.0.1\n")

        def exercise(sock, port):
            seen = sorted(http_get(port).backend for _ in range(4))
            return seen, status_column(sock), saved_state(sock)

        results = run_each(lambda sock, port: config(sock, port, servers), exercise)
    assert results["haply"] == results["haproxy"]
    seen, status, state = results["haply"]
    assert seen == ["a", "a", "b", "b"]
    assert status["unknown"] == "MAINT (resolution)"
    assert state["unknown"] == ("-", "32", UNRESOLVABLE)
    assert state["fixed"] == ("127.0.0.1", "0", UNRESOLVABLE)


def test_init_addr_last_takes_the_saved_address(tmp_path):
    """With a server-state file that saved an address, `last` (part of the
    default) uses it for a host that does not resolve."""
    with echo_backends(["a"]) as (a,):
        state_file = tmp_path / "servers.state"
        state_file.write_text(
            "1\n# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight "
            "srv_iweight srv_time_since_last_change srv_check_status srv_check_result "
            "srv_check_health srv_check_state srv_agent_state bk_f_forced_id srv_f_forced_id "
            "srv_fqdn srv_port srvrecord\n"
            f"3 be 1 s 127.0.0.1 2 0 1 1 10 1 0 0 0 0 0 0 {UNRESOLVABLE} {a.port} -\n")
        servers = f"    server s {UNRESOLVABLE}:{a.port}\n"

        def exercise(sock, port):
            return http_get(port).backend, saved_state(sock)["s"][0]

        results = run_each(lambda sock, port: config(sock, port, servers, str(state_file)), exercise)
    assert results["haply"] == results["haproxy"] == ("a", "127.0.0.1")


def test_a_server_that_cannot_get_an_address_stops_the_start(tmp_path):
    cfg = tmp_path / "haproxy.cfg"
    cfg.write_text(config(str(tmp_path / "admin.sock"), free_port(),
                          f"    server s {UNRESOLVABLE}:80\n"))
    haproxy = subprocess.run([PROXIES["haproxy"], "-c", "-f", str(cfg)], capture_output=True,
                             text=True, timeout=30)
    assert haproxy.returncode != 0 and UNRESOLVABLE in haproxy.stderr
    haply = subprocess.run([sys.executable, "-m", "haply", "-db", "-f", str(cfg)], cwd=REPO_ROOT,
                           capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
    assert haply.returncode != 0
    assert (f"haproxy.cfg:13: server be/s: cannot resolve address '{UNRESOLVABLE}' "
            f"(init-addr last,libc): no saved address (last); the resolver failed (libc)") in haply.stderr


def test_a_server_without_address_leaves_maintenance_when_given_one():
    """haply lets `set server addr` give an address to a server that started
    without one (HAProxy 2.6 refuses: only through the configuration file)."""
    with echo_backends(["a", "b"]) as (a, b):
        servers = (f"    server s {a.address}\n"
                   f"    server later {UNRESOLVABLE}:{b.port} init-addr none\n")
        directory = tempfile.mkdtemp(prefix="haply-addr-")
        sock, port = os.path.join(directory, "admin.sock"), free_port()
        with run_haproxy(config(sock, port, servers), binary=PROXIES["haply"]):
            wait_socket(sock)
            assert {http_get(port).backend for _ in range(4)} == {"a"}
            assert cli(sock, "set server be/later addr 127.0.0.1") == (
                "IP changed from '-' to '127.0.0.1' by 'stats socket command'\n\n")
            assert status_column(sock)["later"] == "no check"
            assert sorted(http_get(port).backend for _ in range(4)) == ["a", "a", "b", "b"]
