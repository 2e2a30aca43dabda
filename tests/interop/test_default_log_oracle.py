"""HAProxy's default log line, for a frontend that logs without a log
format option (manual 8.2.1), against HAProxy 2.6 on the same traffic.

"Connect from SRC:PORT to DST:PORT (FRONTEND/MODE)" at info, as each stream
starts: in mode tcp every accepted connection, even one that sends nothing
(`option dontlognull` does not apply); in mode http every request once its
head is whole (a keep-alive connection logs one line per request), and
nothing for a connection that sends no whole head. Nothing is logged as a
stream ends. Also: a backend's "has no server available!" line, at emerg,
whatever took its last server away.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import tempfile
import time

import pytest

from tests.support.admin_cli import cli, wait_socket
from tests.support.haply_process import PROXIES
from tests.support.haproxy_oracle import echo_backends, free_port, haproxy_available, run_haproxy
from tests.support.syslog_receiver import Receiver

pytestmark = pytest.mark.skipif(not haproxy_available(), reason="HAProxy oracle not installed")


def send(port: int, chunks: list[bytes], host: str = "127.0.0.1") -> None:
    """One connection that sends chunks (a pause after each) and reads what
    comes back until the proxy closes or a short wait ends."""
    with socket.create_connection((host, port), timeout=2) as conn:
        for chunk in chunks:
            conn.sendall(chunk)
            time.sleep(0.1)
        conn.shutdown(socket.SHUT_WR)
        conn.settimeout(0.5)
        try:
            while conn.recv(65536):
                pass
        except OSError:
            pass


def messages(receiver: Receiver, ports: dict[int, str]) -> list[str]:
    """The lines received so far, priority kept, the test's ports named."""
    found = []
    for line in receiver.lines(100, timeout=1.0):
        text = line.decode().rstrip("\n")
        priority = text[:text.index(">") + 1]
        message = text.split("]: ", 1)[1]
        message = re.sub(r":(\d+)(?=[ )])", lambda m: ":" + ports.get(int(m.group(1)), "CLIENT"), message)
        found.append(priority + message)
    return found


GET = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"


def run(binary: str, web: str) -> list[str]:
    receiver = Receiver()
    http, tcp, http_dnl, v6 = free_port(), free_port(), free_port(), free_port()
    ports = {http: "HTTP", tcp: "TCP", http_dnl: "HTTP_DNL", v6: "V6"}
    config = f"""global
    log 127.0.0.1:{receiver.port} local0
defaults
    mode http
    log global
    timeout connect 1s
    timeout client 2s
    timeout server 2s
frontend web
    bind 127.0.0.1:{http}
    bind [::1]:{v6}
    http-request deny if {{ path /denied }}
    default_backend app
frontend quiet
    bind 127.0.0.1:{http_dnl}
    option dontlognull
    default_backend app
listen raw
    mode tcp
    bind 127.0.0.1:{tcp}
    option dontlognull
    server a {web}
backend app
    server a {web}
"""
    try:
        with run_haproxy(config, binary):
            time.sleep(0.3)
            receiver.lines(100, timeout=0.3)  # the start's own lines, and run_haproxy's probes
            send(http, [GET, GET])  # keep-alive: two streams
            send(http, [])  # nothing at all
            send(http, [b"GET / HTTP/1.1\r\nHost"])  # a head never finished
            send(http, [b"GET /denied HTTP/1.1\r\nHost: x\r\n\r\n"])
            send(http, [b"\x01\x02 garbage\r\n\r\n"])
            send(http_dnl, [GET])
            send(v6, [GET], host="::1")
            send(tcp, [])  # nothing, under dontlognull
            send(tcp, [b"hello"])
            return messages(receiver, ports)
    finally:
        receiver.close()


@pytest.fixture(scope="module")
def lines():
    if not socket.has_ipv6:
        pytest.skip("no IPv6 on loopback")
    with echo_backends(["web"]) as (web,):
        return {name: run(binary, web.address) for name, binary in sorted(PROXIES.items())}


def test_default_log_lines_as_haproxy(lines):
    assert lines["haply"] == lines["haproxy"]
    # what both wrote, spelled out
    assert lines["haproxy"] == [
        "<134>Connect from 127.0.0.1:CLIENT to 127.0.0.1:HTTP (web/HTTP)",
        "<134>Connect from 127.0.0.1:CLIENT to 127.0.0.1:HTTP (web/HTTP)",
        "<134>Connect from 127.0.0.1:CLIENT to 127.0.0.1:HTTP (web/HTTP)",
        "<134>Connect from 127.0.0.1:CLIENT to 127.0.0.1:HTTP_DNL (quiet/HTTP)",
        "<134>Connect from ::1:CLIENT to ::1:V6 (web/HTTP)",
        "<134>Connect from 127.0.0.1:CLIENT to 127.0.0.1:TCP (raw/TCP)",
        "<134>Connect from 127.0.0.1:CLIENT to 127.0.0.1:TCP (raw/TCP)",
    ]


def test_a_backend_losing_its_last_server_is_logged_as_haproxy():
    """Maintenance, drain and weight 0 all take a backend's last server away."""
    found = {}
    with echo_backends(["web"]) as (web,):
        for name, binary in sorted(PROXIES.items()):
            receiver = Receiver()
            directory = tempfile.mkdtemp(prefix="no-server-")
            sock = os.path.join(directory, "admin.sock")
            config = f"""global
    stats socket {sock} level admin
    log 127.0.0.1:{receiver.port} local0
defaults
    mode http
    log global
    timeout connect 1s
    timeout client 2s
    timeout server 2s
backend both
    server a {web.address}
    server b {web.address}
backend dr
    server a {web.address}
backend w
    server a {web.address}
listen li
    bind 127.0.0.1:{free_port()}
    option dontlognull
    server a {web.address}
"""
            try:
                with run_haproxy(config, binary):
                    wait_socket(sock)
                    receiver.lines(100, timeout=0.3)
                    for command in ("disable server both/a", "disable server both/b",
                                    "set server dr/a state drain", "set weight w/a 0",
                                    "disable server li/a", "enable server both/a"):
                        assert cli(sock, command).strip() == "", command
                    found[name] = [line.decode().rstrip("\n").split("]: ", 1)[1]
                                   for line in receiver.lines(100, timeout=1.0)
                                   if line.startswith(b"<128>")]
            finally:
                receiver.close()
                shutil.rmtree(directory, ignore_errors=True)
    assert found["haply"] == found["haproxy"] == [
        "backend both has no server available!", "backend dr has no server available!",
        "backend w has no server available!", "proxy li has no server available!"]
