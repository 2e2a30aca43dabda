"""`monitor fail` and the nbsrv and srv_is_up fetches against HAProxy 2.6:
the monitor-uri answers 503 while a backend has too few usable servers, and
`use_backend` falls back to a spare backend when the main one has none, as
servers are taken out one by one through the runtime socket."""

from __future__ import annotations

import pytest

from tests.interop.test_tls_oracle import raw_exchange
from tests.support.admin_cli import cli
from tests.support.haply_process import PROXIES
from tests.support.haproxy_oracle import (echo_backends, free_port, haproxy_available,
                                          haproxy_config, http_get, run_haproxy,
                                          with_stats_socket)

pytestmark = pytest.mark.skipif(not haproxy_available(), reason="HAProxy oracle not installed")


def config(port: int, socket_path: str, a, b, backup, spare) -> str:
    return with_stats_socket(haproxy_config(f"""
frontend fe
    bind 127.0.0.1:{port}
    acl degraded nbsrv(api) lt 2
    monitor-uri /healthz
    monitor fail if degraded
    monitor fail unless {{ nbsrv(spare) ge 1 }}
    http-request return status 200 content-type text/plain string up if {{ path /a1 }} {{ srv_is_up(api/a1) }}
    http-request return status 503 content-type text/plain string down if {{ path /a1 }}
    use_backend spare if {{ nbsrv(api) eq 0 }} || {{ req.hdr(x-spare) -i yes }}
    default_backend api
backend api
    server a1 {a.address}
    server a2 {b.address}
    server b1 {backup.address} backup
    server b2 {backup.address} backup
backend spare
    server s1 {spare.address}
listen all
    bind 127.0.0.1:{port + 1}
    option allbackups
    http-request return status 200 content-type text/plain string up if {{ nbsrv ge 2 }}
    http-request return status 503 content-type text/plain string down
    server a1 {a.address}
    server b1 {b.address} backup
    server b2 {b.address} backup
"""), socket_path)


def exchange(port: int, request: bytes) -> bytes:
    """The answer to request, with '<open>' when the proxy kept the connection."""
    return raw_exchange(port, request, wait=0.3)


STEPS = ["", "disable server api/a1", "disable server api/a2", "disable server api/b1",
         "disable server api/b2", "disable server all/a1", "disable server all/b1",
         "enable server api/a1"]


def observe(port: int) -> tuple:
    return (exchange(port, b"GET /healthz HTTP/1.1\r\nHost: lb\r\n\r\n"),
            exchange(port, b"GET /healthz HTTP/1.0\r\n\r\n"),
            http_get(port).backend, http_get(port + 1).status, http_get(port, "/a1").status,
            http_get(port, headers={"X-Spare": "YES"}).backend)


def test_monitor_fail_and_nbsrv_follow_the_servers_as_haproxy(tmp_path):
    seen = {}
    with echo_backends(["a", "b", "backup", "spare"]) as (a, b, backup, spare):
        for name, binary in PROXIES.items():
            port = free_port()
            socket_path = str(tmp_path / f"{name}.sock")
            with run_haproxy(config(port, socket_path, a, b, backup, spare), binary=binary):
                seen[name] = []
                for command in STEPS:
                    if command:
                        cli(socket_path, command)
                    seen[name].append((command, observe(port)))
    for (command, haply), (_, haproxy) in zip(seen["haply"], seen["haproxy"]):
        assert haply == haproxy, command
    statuses = [(command, healthz[9:12], backend, all_status)
                for command, (healthz, _, backend, all_status, _, _) in seen["haproxy"]]
    assert [(a1, spare) for _, (*_, a1, spare) in seen["haproxy"]] == (
        [(200, "spare")] + [(503, "spare")] * 6 + [(200, "spare")])
    assert statuses == [
        ("", b"200", "a", 503), ("disable server api/a1", b"503", "b", 503),
        ("disable server api/a2", b"503", "backup", 503),  # the first backup: one server
        ("disable server api/b1", b"503", "backup", 503),
        ("disable server api/b2", b"503", "spare", 503),  # none: use_backend spare
        ("disable server all/a1", b"503", "spare", 200),  # allbackups: both backups count
        ("disable server all/b1", b"503", "spare", 503),
        ("enable server api/a1", b"503", "a", 503)], statuses
