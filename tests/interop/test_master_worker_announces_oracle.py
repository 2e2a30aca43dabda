"""An operator's state changes with two workers (`nbthread 2`): HAProxy 2.6
(one process, two threads) and haply (a master and two worker processes) on
the same configuration, each logging to its own UDP syslog sink and mailing
its own SMTP server (aiosmtpd).

The same commands go to both: admin states, a weight, a forced check, on the
stats socket, and two admin actions on the stats page. haply's commands are
sent in turn to each of its workers (`@0`/`@1` on the master socket runs the
command in that worker, as the stats socket does in whichever worker accepts
it), so a change made on the worker that does not run the checks is covered
as surely as one made on the worker that does. Each change must be logged
once and mailed once, with HAProxy's words.
"""

from __future__ import annotations

import http.client
import time

import pytest

from tests.support.admin_cli import ask
from tests.support.haply_process import run_haply
from tests.support.haproxy_oracle import echo_backends, free_port, haproxy_available, run_haproxy
from tests.support.health_backends import BackendThread
from tests.support.mail_inbox import Inbox, smtp_server
from tests.support.syslog_receiver import Receiver

pytestmark = [pytest.mark.oracle,
              pytest.mark.skipif(not haproxy_available(), reason="HAProxy oracle not installed")]

COMMANDS = (
    "disable server app/s1",
    "enable server app/s1",
    "set server app/s1 state drain",
    "set server app/s1 state ready",
    "set server app/s1 state maint",
    "set server app/s1 state ready",
    "set weight app/s2 50",  # logged by neither
    "set server app/s2 health down",
    "set server app/s2 health up",
)
PAGE_ACTIONS = ("drain", "ready")  # on s2, from the stats page
LINES = 10  # what HAProxy logs for them
# Once the expected lines are in, how long a copy from another worker is waited for.
LATE = 0.5


def config(sock: str, port: int, page: int, syslog: int, mailer: int, backends) -> str:
    # checks every 10 s: none fails or passes into a change during the test
    servers = "\n".join(f"    server {b.name} {b.address} check inter 10s" for b in backends)
    return f"""\
global
    nbthread 2
    stats socket {sock} level admin
    log 127.0.0.1:{syslog} local0

defaults
    mode http
    timeout connect 2s
    timeout client 5s
    timeout server 5s

mailers ops
    mailer smtp1 127.0.0.1:{mailer}

listen app
    bind 127.0.0.1:{port}
    log global
    email-alert mailers ops
    email-alert from lb@example.org
    email-alert to ops@example.org
    email-alert level notice
{servers}

listen stats
    bind 127.0.0.1:{page}
    stats enable
    stats uri /
    stats admin if TRUE
"""


def page_action(port: int, server: str, action: str) -> str:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("POST", "/", body=f"b=app&s={server}&action={action}",
                     headers={"Content-Type": "application/x-www-form-urlencoded"})
        response = conn.getresponse()
        response.read()
        return response.getheader("Location", "")
    finally:
        conn.close()


def test_each_operator_change_is_logged_and_mailed_once_as_haproxy_does(tmp_path):
    thread = BackendThread()
    names = ("haproxy", "haply")
    inboxes = {name: Inbox() for name in names}
    sinks = {name: Receiver() for name in names}
    mailers = {}
    lines, mails, locations = {}, {}, {}
    try:
        for name in names:
            mailers[name] = smtp_server(thread, inboxes[name])
        with echo_backends(["s1", "s2"]) as backends:
            for name in names:
                sock, page = str(tmp_path / f"{name}.sock"), free_port()
                text = config(sock, free_port(), page, sinks[name].port, mailers[name][1], backends)
                run = run_haply if name == "haply" else run_haproxy
                with run(text):
                    time.sleep(0.3)
                    sinks[name].lines(100, timeout=0.3)  # start-up notices, not compared
                    for turn, command in enumerate(COMMANDS):
                        if name == "haply":
                            answer = ask(sock + ".master", f"@{turn % 2} {command}")
                        else:
                            answer = ask(sock, command)
                        assert answer.strip() == "", (command, answer)
                        time.sleep(0.15)  # the change is logged before the next one
                    locations[name] = []
                    for action in PAGE_ACTIONS:
                        locations[name].append(page_action(page, "s2", action))
                        time.sleep(0.15)
                    lines[name] = sinks[name].messages(LINES, timeout=5)
                    lines[name] += sinks[name].messages(100, timeout=LATE)
                    deadline = time.monotonic() + 5
                    while len(inboxes[name].mails) < 4 and time.monotonic() < deadline:
                        time.sleep(0.05)
                    time.sleep(LATE)
                    mails[name] = inboxes[name].subjects()
    finally:
        for server, _ in mailers.values():
            thread.loop.call_soon_threadsafe(server.close)
        thread.close()
        for sink in sinks.values():
            sink.close()
    assert locations["haply"] == locations["haproxy"] == ["/;st=DONE"] * 2
    assert lines["haply"] == lines["haproxy"], f"haply: {lines['haply']}\nhaproxy: {lines['haproxy']}"
    assert mails["haply"] == mails["haproxy"], f"haply: {mails['haply']}\nhaproxy: {mails['haproxy']}"
    # what HAProxy 2.6 logs and mails, as observed: once each
    assert lines["haproxy"] == [
        "Server app/s1 is going DOWN for maintenance. 1 active and 0 backup servers left. "
        "0 sessions active, 0 requeued, 0 remaining in queue.",
        "Server app/s1 is UP/READY (leaving forced maintenance).",
        "Server app/s1 enters drain state. 1 active and 0 backup servers online. "
        "0 sessions requeued, 0 total in queue.",
        "Server app/s1 is UP (leaving forced drain).",
        "Server app/s1 is going DOWN for maintenance. 1 active and 0 backup servers left. "
        "0 sessions active, 0 requeued, 0 remaining in queue.",
        "Server app/s1 is UP/READY (leaving forced maintenance).",
        "Server app/s2 is DOWN, changed from CLI. 1 active and 0 backup servers left. "
        "0 sessions active, 0 requeued, 0 remaining in queue.",
        "Server app/s2 is UP, changed from CLI. 2 active and 0 backup servers online. "
        "0 sessions requeued, 0 total in queue.",
        "Server app/s2 enters drain state. 1 active and 0 backup servers online. "
        "0 sessions requeued, 0 total in queue.",
        "Server app/s2 is UP (leaving forced drain).",
    ]
    assert [s.split(".")[0] for s in mails["haproxy"]] == [
        "Subject: [HAProxy Alert] Server app/s1 enters drain state",
        "Subject: [HAProxy Alert] Server app/s2 is DOWN, changed from CLI",
        "Subject: [HAProxy Alert] Server app/s2 is UP, changed from CLI",
        "Subject: [HAProxy Alert] Server app/s2 enters drain state",
    ]
