"""`server-state-file` + `load-server-state-from-file`: states saved with the
runtime API's `show servers state` come back after a restart."""

from __future__ import annotations

from tests.support.admin_cli import ask as send
from tests.support.haproxy_oracle import echo_backends, free_port, http_get
from tests.support.haply_process import run_haply


def test_states_saved_before_a_restart_are_loaded(tmp_path):
    stats = str(tmp_path / "admin.sock")
    state_file = tmp_path / "servers.state"
    port = free_port()
    with echo_backends(["s1", "s2"]) as (s1, s2):
        config = f"""\
global
    stats socket {stats} level admin
    server-state-base {tmp_path}
    server-state-file servers.state
defaults
    mode http
    timeout connect 2s
    timeout client 5s
    timeout server 5s
    load-server-state-from-file global
listen app
    bind 127.0.0.1:{port}
    server s1 {s1.address}
    server s2 {s2.address} weight 4
"""
        with run_haply(config):
            send(stats, "set server app/s1 state maint")
            send(stats, "set server app/s2 weight 2")
            state_file.write_text(send(stats, "show servers state"))
        with run_haply(config) as proxy:
            rows = [l.split() for l in send(stats, "show servers state").splitlines()[2:]]
            lines = {r[3]: r for r in rows if len(r) > 8}
            assert lines["s1"][6] == "1" and lines["s2"][7] == "2"
            assert {http_get(port).backend for _ in range(10)} == {"s2"}
        state_file.write_text("7\n")
        with run_haply(config) as proxy:
            assert {http_get(port).backend for _ in range(10)} == {"s1", "s2"}
            assert "servers.state: line 1" in proxy.output()
