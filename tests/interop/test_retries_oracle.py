"""Connection retries against HAProxy 2.6: how many, how long between them,
when a retry moves to another server (`option redispatch [interval]`), and
what the log says about it.

A server whose port refuses connections stands for a controller that is down
and not yet marked DOWN by checks. Compared for each case: what the client
got (status line, or nothing), how long it took in whole seconds (a retry on
the same server waits min(timeout connect, 1 s) in HAProxy, none when it
moves), and the log line's server, termination state (with the cookie
flags) and `ac/fc/bc/sc/rc`, where rc is "+N" once the request moved.
"""

from __future__ import annotations

import os
import socket
import tempfile
import time

import pytest

from tests.interop.test_proxy_oracle import PRELUDE
from tests.support.admin_cli import wait_no_sessions, wait_socket
from tests.support.haply_process import PROXIES
from tests.support.haproxy_oracle import echo_backends, free_port, haproxy_available, run_haproxy
from tests.support.syslog_receiver import Receiver

pytestmark = pytest.mark.skipif(not haproxy_available(), reason="HAProxy oracle not installed")

COOKIE_TO_GONE = b"GET / HTTP/1.0\r\nCookie: SRV=g\r\n\r\n"
PLAIN = b"GET / HTTP/1.0\r\n\r\n"
COOKIE_SERVERS = """    cookie SRV insert
    server gone {gone} cookie g
    server live {live} cookie l
"""

# name: (mode, backend lines, request)
CASES = {
    # No redispatch: every retry on the same server, each after a pause.
    "same-server-http": ("http", "    retries 2\n    server gone {gone}\n", PLAIN),
    "same-server-tcp": ("tcp", "    retries 2\n    server gone {gone}\n", PLAIN),
    # The pause is min(timeout connect, 1 s).
    "short-connect-timeout": ("tcp", "    retries 2\n    timeout connect 300ms\n"
                                     "    server gone {gone}\n", PLAIN),
    # A balanced request leaves a failed server at once for another active one.
    "balanced-moves-at-once-tcp": ("tcp", "    retries 3\n    balance first\n    option redispatch\n"
                                          "    server gone {gone}\n    server live {live}\n", PLAIN),
    "balanced-moves-at-once-http": ("http", "    retries 3\n    balance first\n    option redispatch\n"
                                            "    server gone {gone}\n    server live {live}\n", PLAIN),
    # ... but not to a backup while the active server is not DOWN.
    "no-move-to-backup": ("http", "    retries 2\n    option redispatch\n"
                                  "    server gone {gone}\n    server live {live} backup\n", PLAIN),
    # A cookie holds the request to its server until the retry that redispatches.
    "cookie-last-retry": ("http", "    retries 2\n    option redispatch\n" + COOKIE_SERVERS,
                          COOKIE_TO_GONE),
    "cookie-every-retry": ("http", "    retries 3\n    option redispatch 1\n" + COOKIE_SERVERS,
                           COOKIE_TO_GONE),
    "cookie-every-second": ("http", "    retries 3\n    option redispatch 2\n" + COOKIE_SERVERS,
                            COOKIE_TO_GONE),
    "cookie-two-before-last": ("http", "    retries 3\n    option redispatch -2\n" + COOKIE_SERVERS,
                               COOKIE_TO_GONE),
    "redispatch-off": ("http", "    retries 2\n    option redispatch 0\n" + COOKIE_SERVERS,
                       COOKIE_TO_GONE),
}


def outcome(port: int, request: bytes) -> tuple[bytes, int]:
    """The status line (b"" if the connection closed without one) and the
    time to the end of the connection, in whole seconds."""
    began = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    return received.split(b"\r\n", 1)[0], round(time.monotonic() - began)


def logged(message: str, mode: str) -> tuple[str, ...]:
    """The log line's fields but its byte count: backend/server, the timers
    in whole seconds (a retry's pause is a second: the failed attempts count
    in Tc on one server, in Tw once the request moved), the status,
    termination state, ac/fc/bc/sc/rc."""
    words = message.split("] ", 1)[1].split()
    timers = "/".join(str(round(int(t) / 1000)) if t != "-1" else t for t in words[2].split("/"))
    if mode == "http":
        return words[1], timers, words[3], words[7], words[8]
    return words[1], timers, words[4], words[5]


@pytest.mark.parametrize("case", sorted(CASES))
def test_retries_as_haproxy(case):
    mode, backend_lines, request = CASES[case]
    seen = {}
    for name, binary in PROXIES.items():
        receiver = Receiver()
        directory = tempfile.mkdtemp(prefix="retries-")
        sock = os.path.join(directory, "admin.sock")
        port = free_port()
        with echo_backends(["live"]) as (live,):
            lines = backend_lines.format(gone=f"127.0.0.1:{free_port()}", live=live.address)
            config = PRELUDE.replace("mode http", f"mode {mode}").replace(
                "    maxconn 1000\n", f"    maxconn 1000\n    stats socket {sock} level admin\n") + f"""
frontend fe
    bind 127.0.0.1:{port}
    log 127.0.0.1:{receiver.port} local2 info
    option {'httplog' if mode == 'http' else 'tcplog'}
    default_backend be

backend be
{lines}"""
            try:
                with run_haproxy(config, binary):
                    wait_socket(sock)
                    wait_no_sessions(sock, timeout=8)  # the start-up probe's session
                    receiver.lines(5, timeout=0.3)  # and its line
                    result = outcome(port, request)
                    messages = receiver.messages(1, timeout=5)
            finally:
                receiver.close()
        assert messages, f"{name} logged nothing"
        seen[name] = result, logged(messages[0], mode)
    assert seen["haply"] == seen["haproxy"]
