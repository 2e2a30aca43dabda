"""The TCP socket options a proxy asks for, compared with HAProxy 2.6 where
the kernel shows them: keep-alive (`option tcpka`, `clitcpka`, `srvtcpka`
and their -cnt/-idle/-intvl settings) by the keep-alive timers `ss` prints
for the proxy's sockets, and the delayed ACKs (`option tcp-smart-accept`,
on by default in mode http, and `option tcp-smart-connect`) by the packets
tcpdump sees on the loopback.
"""

from __future__ import annotations

import re
import shutil
import signal
import socket
import subprocess
import time

import pytest

from tests.support.haply_process import PROXIES
from tests.support.haproxy_oracle import echo_backends, free_port, haproxy_available, run_haproxy

pytestmark = pytest.mark.skipif(not haproxy_available(), reason="HAProxy oracle not installed")

TIMEOUTS = """defaults
    mode http
    timeout connect 1s
    timeout client 30s
    timeout server 30s
"""
GET = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"


def keepalive_timers(port: int, server_port: int) -> dict[str, int | None]:
    """The proxy's two sockets of one exchange, its client side (local port
    `port`) and its server side (remote port `server_port`): seconds left on
    each one's keep-alive timer, None without one."""
    found: dict[str, int | None] = {"client": None, "server": None}
    listing = subprocess.run(
        ["ss", "-tnoH", "state", "established", f"( sport = :{port} or dport = :{server_port} )"],
        capture_output=True, text=True, timeout=10).stdout
    for line in listing.splitlines():
        local = line.split()[2]
        side = "client" if local.endswith(f":{port}") else "server"
        timer = re.search(r"timer:\(keepalive,(?:(\d+)min)?(\d+)(?:\.\d+)?sec", line)
        if timer:
            found[side] = int(timer.group(1) or 0) * 60 + int(timer.group(2))
    return found


def timers_through(binary: str, web, frontend: str, backend: str) -> dict[str, int | None]:
    port = free_port()
    config = TIMEOUTS + f"""frontend fe
    bind 127.0.0.1:{port}
{frontend}    default_backend be
backend be
    http-reuse always
{backend}    server s {web.address}
"""
    with run_haproxy(config, binary):
        with socket.create_connection(("127.0.0.1", port), timeout=5) as client:
            client.sendall(GET)
            client.recv(65536)
            time.sleep(0.2)
            return keepalive_timers(port, int(web.address.rsplit(":", 1)[1]))


KEEPALIVE_CASES = {
    "none": ("", ""),
    "clitcpka with its settings": ("    option clitcpka\n    clitcpka-idle 77\n    clitcpka-intvl 13\n"
                                   "    clitcpka-cnt 4\n", ""),
    "srvtcpka with its idle time": ("", "    option srvtcpka\n    srvtcpka-idle 99s\n"),
    "tcpka in the frontend": ("    option tcpka\n    clitcpka-idle 55\n", ""),
    "tcpka in the backend": ("", "    option tcpka\n    srvtcpka-idle 44\n"),
}


@pytest.fixture(scope="module")
def web():
    with echo_backends(["web"]) as (backend,):
        yield backend


@pytest.mark.parametrize("case", sorted(KEEPALIVE_CASES))
def test_keepalive_timers_as_haproxy(web, case):
    frontend, backend = KEEPALIVE_CASES[case]
    theirs = timers_through(PROXIES["haproxy"], web, frontend, backend)
    ours = timers_through(PROXIES["haply"], web, frontend, backend)
    assert {side: value is None for side, value in ours.items()} == \
        {side: value is None for side, value in theirs.items()}
    for side, value in theirs.items():
        if value is not None:
            assert abs(ours[side] - value) <= 1, (side, ours, theirs)
    expected = {"none": (None, None), "clitcpka with its settings": (76, None),
                "srvtcpka with its idle time": (None, 98), "tcpka in the frontend": (54, None),
                "tcpka in the backend": (None, 43)}[case]
    for side, seconds in zip(("client", "server"), expected):
        assert (theirs[side] is None) == (seconds is None), (side, theirs)
        if seconds is not None:
            assert seconds - 1 <= theirs[side] <= seconds + 1, (side, theirs)


# --------------------------------------------------------------- delayed ACKs

needs_tcpdump = pytest.mark.skipif(shutil.which("tcpdump") is None, reason="tcpdump not installed")


def packets(binary: str, web, frontend: str, backend: str, mode: str = "http") -> list[tuple[str, str, int]]:
    """(direction, TCP flags, payload length) of one exchange's packets:
    "c>p" client to proxy, "p>c", "p>s" proxy to server, "s>p"."""
    port = free_port()
    server_port = web.address.rsplit(":", 1)[1]
    config = TIMEOUTS.replace("mode http", f"mode {mode}") + f"""frontend fe
    bind 127.0.0.1:{port}
{frontend}    default_backend be
backend be
{backend}    server s {web.address}
"""
    with run_haproxy(config, binary):
        dump = subprocess.Popen(["tcpdump", "-i", "lo", "-nn", "-l", "-S",
                                 f"tcp port {port} or tcp port {server_port}"],
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        try:
            time.sleep(0.5)  # tcpdump listens
            with socket.create_connection(("127.0.0.1", port), timeout=5) as client:
                client.sendall(GET)
                client.recv(65536)
            time.sleep(0.3)
        finally:
            dump.send_signal(signal.SIGINT)
            output = dump.communicate(timeout=10)[0]
    found = []
    for line in output.splitlines():
        match = re.search(r"127\.0\.0\.1\.(\d+) > 127\.0\.0\.1\.(\d+): Flags \[([^\]]*)\].*length (\d+)", line)
        if not match:
            continue
        source, destination, flags, length = match.groups()
        if destination == str(port):
            direction = "c>p"
        elif source == str(port):
            direction = "p>c"
        else:
            direction = "s>p" if source == server_port else "p>s"
        found.append((direction, flags, int(length)))
    return found


def bare_ack_after_request(exchange) -> bool:
    """Whether the proxy acknowledged the client's request with a packet of
    its own before its answer."""
    request = next(i for i, (d, _, n) in enumerate(exchange) if d == "c>p" and n)
    for direction, flags, length in exchange[request + 1:]:
        if direction == "p>c":
            return length == 0 and flags == "."
    return False


def bare_ack_ending_handshake(exchange) -> bool:
    """Whether the proxy's handshake with the server ended with a bare ACK
    rather than with the request."""
    syn_ack = next(i for i, (d, f, _) in enumerate(exchange) if d == "s>p" and f == "S.")
    direction, flags, length = next(p for p in exchange[syn_ack + 1:] if p[0] == "p>s")
    return length == 0 and flags == "."


def most(binary, web, frontend, backend, test, mode="http", tries=3) -> bool:
    """test's answer on most of a few exchanges: a delayed ACK goes bare
    after 40 ms, which a loaded machine may take to answer once."""
    answers = [test(packets(binary, web, frontend, backend, mode)) for _ in range(tries)]
    return answers.count(True) > tries // 2


@needs_tcpdump
@pytest.mark.parametrize("case,frontend,mode", [
    ("mode http: smart accept by default", "", "http"),
    ("no option tcp-smart-accept", "    no option tcp-smart-accept\n", "http"),
    ("mode tcp: quick ACKs by default", "", "tcp"),
    ("option tcp-smart-accept in mode tcp", "    option tcp-smart-accept\n", "tcp"),
])
def test_smart_accept_as_haproxy(web, case, frontend, mode):
    theirs = most(PROXIES["haproxy"], web, frontend, "", bare_ack_after_request, mode)
    ours = most(PROXIES["haply"], web, frontend, "", bare_ack_after_request, mode)
    assert ours == theirs
    assert theirs == (case in ("no option tcp-smart-accept", "mode tcp: quick ACKs by default"))


@needs_tcpdump
def test_smart_connect_sends_the_request_with_the_last_ack(web):
    """As the manual describes it (HAProxy 2.6 itself still sends the ACK
    bare on this kernel: compared with haply without the option instead)."""
    assert most(PROXIES["haply"], web, "", "", bare_ack_ending_handshake)
    assert not most(PROXIES["haply"], web, "", "    option tcp-smart-connect\n", bare_ack_ending_handshake)
