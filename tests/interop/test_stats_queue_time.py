"""qtime and qtime_max of `show stat` after requests waited in a queue, haply
and HAProxy 2.6 on the same config and the same traffic.

One server with maxconn 1 that answers after DELAY: of two simultaneous
requests, the second waits about DELAY in the backend's queue. Both proxies
must show that wait: qtime_max about DELAY, qtime (the average over the two
sessions) about half of it, on the server and on the backend.
"""

from __future__ import annotations

import http.server
import os
import shutil
import tempfile
import threading

import pytest

from tests.support.admin_cli import cli, wait_socket
from tests.support.haply_process import PROXIES
from tests.support.haproxy_oracle import free_port, haproxy_available, http_get, run_haproxy

pytestmark = pytest.mark.skipif(not haproxy_available(), reason="HAProxy oracle not installed")

DELAY = 0.4  # seconds the server takes per answer
SLACK = 0.15  # scheduling and connect time on a shared machine


class Slow(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        threading.Event().wait(DELAY)
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args):
        pass


def config(sock: str, port: int, server_port: int) -> str:
    return f"""global
    stats socket {sock} level admin
defaults
    mode http
    timeout connect 2s
    timeout client 5s
    timeout server 5s
    timeout queue 5s
frontend fe
    bind 127.0.0.1:{port}
    default_backend be
backend be
    server s1 127.0.0.1:{server_port} maxconn 1
"""


def stat_rows(text: str) -> dict[str, dict[str, str]]:
    lines = [line for line in text.split("\n") if line]
    header = lines[0][2:].split(",")
    return {row[1]: dict(zip(header, row)) for row in (line.split(",") for line in lines[1:])}


@pytest.mark.parametrize("name", sorted(PROXIES))
def test_queue_time_after_two_simultaneous_requests(name):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Slow)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    directory = tempfile.mkdtemp(prefix=f"qtime-{name}-")
    sock = os.path.join(directory, "admin.sock")
    port = free_port()
    try:
        with run_haproxy(config(sock, port, server.server_address[1]), PROXIES[name]):
            wait_socket(sock)
            answers = []
            clients = [threading.Thread(target=lambda: answers.append(http_get(port).status))
                       for _ in range(2)]
            for client in clients:
                client.start()
            for client in clients:
                client.join(10)
            assert answers == [200, 200]
            rows = stat_rows(cli(sock, "show stat"))
    finally:
        server.shutdown()
        server.server_close()
        shutil.rmtree(directory, ignore_errors=True)
    delay_ms = DELAY * 1000
    for svname in ("s1", "BACKEND"):
        row = rows[svname]
        assert abs(int(row["qtime_max"]) - delay_ms) <= SLACK * 1000, (svname, row["qtime_max"])
        assert abs(int(row["qtime"]) - delay_ms / 2) <= SLACK * 1000, (svname, row["qtime"])
        assert int(row["ctime"]) <= SLACK * 1000
