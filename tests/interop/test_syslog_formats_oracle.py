"""The syslog header of each `log ... format F` as HAProxy 2.6 writes it,
with and without `log-send-hostname`: the same line from both proxies once
the time, the pid and the ports are masked.

Observed: no format is HAProxy's "local" (no host name), or "rfc3164" once
`log-send-hostname` is set; an explicit "local" never names a host;
"rfc3164" names "localhost" unless `log-send-hostname` gives a name;
"rfc5424" has "-" for no name; "timed" is the severity alone and an ISO time.
"""

from __future__ import annotations

import re
import socket
import time

import pytest

from tests.support.haply_process import PROXIES
from tests.support.haproxy_oracle import echo_backends, free_port, haproxy_available, run_haproxy
from tests.support.syslog_receiver import Receiver

pytestmark = pytest.mark.skipif(not haproxy_available(), reason="HAProxy oracle not installed")

FORMATS = (None, "local", "rfc3164", "rfc5424", "short", "priority", "timed", "iso", "raw")
MASKS = ((rb"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}[+-]\d\d:\d\d", b"ISO"),
         (rb"[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d", b"DATE"),
         (rb"haproxy\[\d+\]", b"haproxy[PID]"), (rb"haproxy \d+ ", b"haproxy PID "),
         (rb":\d+\b", b":PORT"))


def first_line(binary: str, web: str, fmt: str | None, hostname: str | None) -> bytes:
    receiver = Receiver()
    port = free_port()
    send_hostname = f"    log-send-hostname {hostname}\n" if hostname else ""
    config = f"""global
    log 127.0.0.1:{receiver.port}{f' format {fmt}' if fmt else ''} local0
{send_hostname}defaults
    mode tcp
    log global
    timeout connect 1s
    timeout client 2s
    timeout server 2s
listen li
    bind 127.0.0.1:{port}
    server a {web}
"""
    try:
        with run_haproxy(config, binary):
            time.sleep(0.2)
            receiver.lines(100, timeout=0.3)  # the start-up probe's line
            socket.create_connection(("127.0.0.1", port)).close()
            lines = receiver.lines(1, timeout=3.0)
    finally:
        receiver.close()
    assert lines, "no log line"
    line = lines[0]
    for pattern, replacement in MASKS:
        line = re.sub(pattern, replacement, line)
    return line


@pytest.fixture(scope="module")
def web():
    with echo_backends(["web"]) as (backend,):
        yield backend.address


@pytest.mark.parametrize("hostname", [None, "node7"])
@pytest.mark.parametrize("fmt", FORMATS)
def test_header_as_haproxy(web, fmt, hostname):
    theirs = first_line(PROXIES["haproxy"], web, fmt, hostname)
    ours = first_line(PROXIES["haply"], web, fmt, hostname)
    assert ours == theirs
    if fmt == "rfc3164":
        assert theirs.startswith(b"<134>DATE " + (hostname or "localhost").encode() + b" haproxy[PID]: ")
    if fmt == "timed":
        assert theirs.startswith(b"<6>ISO Connect from")
