"""`option socket-stats` against HAProxy 2.6: a row per listening address in
`show stat` (type 3, named by the bind line's `name` or sock-N) and
haproxy_listener_* in the Prometheus exporter, counted from the same traffic:
a request, a bad request, a denied one, a connection refused by a tcp-request
connection rule.

Byte counts are left out: HAProxy counts request and response heads as it
re-encodes them (tests/interop/test_stats_oracle.py says the same of the
frontend's), and so is the highest number of sessions at once, which depends
on how fast each proxy lets a closed connection go.
"""

from __future__ import annotations

import csv
import os
import socket
import tempfile
import time
import urllib.request

import pytest

from tests.interop.test_proxy_oracle import run_both
from tests.interop.test_stats_oracle import metric_families
from tests.support.admin_cli import cli, wait_no_sessions, wait_socket
from tests.support.haproxy_oracle import echo_backends, free_port, haproxy_available

pytestmark = pytest.mark.skipif(not haproxy_available(), reason="HAProxy oracle not installed")

COMPARED = ("pxname", "svname", "scur", "slim", "stot", "dreq", "dresp", "ereq", "status", "iid", "sid",
            "type", "mode", "dcon", "dses", "wrew", "eint", "ssl_sess")


def get(port: int, path: str) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as reply:
            return reply.status
    except urllib.error.HTTPError as error:
        return error.code
    except (urllib.error.URLError, ConnectionError):
        return 0


def test_listener_rows_and_metrics_as_haproxy():
    with echo_backends(["s1"]) as (backend,):
        directory = tempfile.mkdtemp(prefix="socket-stats-")
        sock_path = os.path.join(directory, "admin.sock")
        ports = [free_port() for _ in range(3)]
        cfg = f"""global
    stats socket {sock_path} level admin

defaults
    mode http
    timeout connect 2s
    timeout client 5s
    timeout server 5s

frontend fe
    bind 127.0.0.1:@PORT@
    bind 127.0.0.1:{ports[0]},127.0.0.1:{ports[1]} name pair
    bind 127.0.0.1:{ports[2]} maxconn 50
    option socket-stats
    tcp-request connection reject if {{ dst_port {ports[1]} }}
    http-request deny if {{ path /deny }}
    http-request use-service prometheus-exporter if {{ path /metrics }}
    default_backend app

backend app
    server s1 {backend.address}
"""

        def exercise(port):
            wait_socket(sock_path)
            wait_no_sessions(sock_path)
            statuses = [get(ports[0], "/deny"), get(ports[1], "/"), get(ports[2], "/")]
            with socket.create_connection(("127.0.0.1", ports[2]), timeout=5) as bad:
                bad.sendall(b"GARBAGE\r\n\r\n")
                statuses.append(bad.recv(100)[:12])
            time.sleep(0.05)
            wait_no_sessions(sock_path)
            text = cli(sock_path, "show stat -1 8 -1")  # listeners alone
            rows = list(csv.DictReader(line.lstrip("# ") for line in text.splitlines() if line))
            shown = [{name: row[name] for name in COMPARED} for row in rows]
            addresses = [row["addr"] for row in rows]
            with urllib.request.urlopen(f"http://127.0.0.1:{ports[2]}/metrics", timeout=5) as reply:
                metrics = reply.read().decode()
            os.unlink(sock_path)
            return statuses, shown, addresses, metrics

        results = run_both(cfg, exercise)
    theirs, ours = results["haproxy"], results["haply"]
    assert ours[0] == theirs[0] == [403, 0, 200, b"HTTP/1.1 400"]
    # the first listener's port is chosen per proxy run
    assert ours[1][1:] == theirs[1][1:] and ours[1][0] | {"stot": ""} == theirs[1][0] | {"stot": ""}
    assert ours[2][1:] == theirs[2][1:] == [f"127.0.0.1:{port}" for port in ports]
    assert [row["svname"] for row in ours[1]] == ["sock-1", "pair", "pair", "sock-4"]
    # (the start-up probe, an empty connection to every address, counts as a
    # bad request, or a refused connection)
    assert [(row["dreq"], row["dcon"], row["ereq"], row["slim"]) for row in ours[1][1:]] == [
        ("1", "0", "1", "0"), ("0", "2", "0", "0"), ("0", "0", "2", "50")]
    listener_families = {name: kind for name, kind in metric_families(theirs[3]).items()
                         if name.startswith("haproxy_listener_")}
    assert len(listener_families) == 14
    assert {name: kind for name, kind in metric_families(ours[3]).items()
            if name.startswith("haproxy_listener_")} == listener_families
