"""E-mail alerts: HAProxy 2.6 and haply on the same configuration, each with
its own real SMTP server (aiosmtpd), checking the same backends.

One backend is stopped, then started again. Both programs must mail the same
changes (`email-alert level notice`: the DOWN and the UP) with the same
envelope (HELO or EHLO and its name, MAIL FROM, RCPT TO) and the same
message (From, To, Date's form, Subject, body lines), the date and the check
duration normalised. A mailer that is down gets nothing: haply logs why and
keeps serving, as HAProxy keeps serving.
"""

from __future__ import annotations

import re
import time

import pytest

from tests.support.haply_process import run_haply
from tests.support.haproxy_oracle import (DEFAULT_PRELUDE, echo_backends, free_port, haproxy_available,
                                          http_get, run_haproxy)
from tests.support.health_backends import BackendThread
from tests.support.mail_inbox import Inbox, smtp_server

pytestmark = [pytest.mark.oracle,
              pytest.mark.skipif(not haproxy_available(), reason="HAProxy oracle not installed")]

# Long enough for two failed checks at 200 ms and the mail, on a loaded machine.
MAIL_WAIT = 10.0
DATE = re.compile(r"^Date: [A-Z][a-z]{2}, \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} [+-]\d{4} \([A-Za-z0-9+-]+\)$")


def config(port: int, mailer_port: int, servers) -> str:
    lines = "\n".join(f"    server {b.name} {b.address} check inter 200 fall 2 rise 2" for b in servers)
    return DEFAULT_PRELUDE + f"""
mailers ops
    mailer smtp1 127.0.0.1:{mailer_port}
    timeout mail 2s

listen app
    bind 127.0.0.1:{port}
    email-alert mailers ops
    email-alert from haproxy@example.org
    email-alert to ops@example.org
    email-alert level notice
{lines}
"""


def normalised(mail: dict) -> dict:
    """A mail with its date and check durations (timings) made comparable, and
    a reset taken for a refusal: a check that reaches the backend as it
    stops is reset by its closing listener, whichever proxy sent it."""
    lines = []
    for line in mail["lines"]:
        if line.startswith("Date: "):
            assert DATE.match(line), line
            line = "Date: <date>"
        line = line.replace('info: "Connection reset by peer"', 'info: "Connection refused"')
        lines.append(re.sub(r"check duration: \d+ms", "check duration: <n>ms", line))
    return {**mail, "lines": lines}


def wait_for(condition, bound: float) -> bool:
    deadline = time.monotonic() + bound
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


def test_down_and_up_are_mailed_as_haproxy_mails_them():
    thread = BackendThread()
    inboxes = {"haproxy": Inbox(), "haply": Inbox()}
    servers = {}
    try:
        for name, inbox in inboxes.items():
            servers[name] = smtp_server(thread, inbox)
        with echo_backends(["s1", "s2"]) as backends:
            ports = {name: free_port() for name in inboxes}
            with run_haproxy(config(ports["haproxy"], servers["haproxy"][1], backends)) as haproxy, \
                    run_haply(config(ports["haply"], servers["haply"][1], backends)) as haply:
                time.sleep(0.6)  # both have seen every server UP
                backends[0].stop()
                assert wait_for(lambda: all(len(i.mails) >= 1 for i in inboxes.values()), MAIL_WAIT), \
                    (haproxy.output()[-2000:], haply.output()[-2000:])
                backends[0].start()
                assert wait_for(lambda: all(len(i.mails) >= 2 for i in inboxes.values()), MAIL_WAIT), \
                    (haproxy.output()[-2000:], haply.output()[-2000:])
                time.sleep(0.5)  # nothing more comes
                assert http_get(ports["haply"]).status == 200
                haply_log = haply.output()
    finally:
        for server, _ in servers.values():
            thread.loop.call_soon_threadsafe(server.close)
        thread.close()
    theirs = [normalised(m) for m in inboxes["haproxy"].mails]
    ours = [normalised(m) for m in inboxes["haply"].mails]
    assert ours == theirs, f"haply: {ours}\nhaproxy: {theirs}"
    down, up = theirs  # what HAProxy 2.6 sent, as observed
    assert down["hello"][0] == "HELO" and down["from"] == "haproxy@example.org" and down["to"] == ["ops@example.org"]
    assert down["lines"][:3] == ["From: haproxy@example.org", "To: ops@example.org", "Date: <date>"]
    assert down["lines"][3] == (
        'Subject: [HAProxy Alert] Server app/s1 is DOWN, reason: Layer4 connection problem, info: '
        '"Connection refused", check duration: <n>ms. 1 active and 0 backup servers left. 0 sessions '
        'active, 0 requeued, 0 remaining in queue')
    assert down["lines"][4:] == ["", down["lines"][3].removeprefix("Subject: [HAProxy Alert] "), "", ""]
    assert up["lines"][3] == (
        "Subject: [HAProxy Alert] Server app/s1 is UP, reason: Layer4 check passed, check duration: <n>ms. "
        "2 active and 0 backup servers online. 0 sessions requeued, 0 total in queue")
    assert "email alert" not in haply_log  # nothing failed


def test_a_mailer_that_is_down_gets_nothing_and_haply_keeps_serving():
    with echo_backends(["s1", "s2"]) as backends:
        mailer = free_port()  # nothing listens there
        ports = {"haproxy": free_port(), "haply": free_port()}
        with run_haproxy(config(ports["haproxy"], mailer, backends)) as haproxy, \
                run_haply(config(ports["haply"], mailer, backends)) as haply:
            time.sleep(0.6)
            backends[0].stop()
            failed = (f"email alert of proxy 'app' to mailer ops/smtp1 not sent: cannot connect to "
                      f"127.0.0.1:{mailer}: Connection refused")
            assert wait_for(lambda: failed in haply.output(), MAIL_WAIT), haply.output()[-2000:]
            # each checks at its own instants: both must have s1 DOWN before traffic is compared
            assert wait_for(lambda: "Server app/s1 is DOWN" in haproxy.output(), MAIL_WAIT)
            for name in ("haproxy", "haply"):
                answers = [http_get(ports[name]) for _ in range(4)]
                assert [a.status for a in answers] == [200] * 4
                assert {a.backend for a in answers} == {"s2"}
            assert "Server app/s1 is DOWN" in haply.output()
            assert "email alert" not in haproxy.output()  # HAProxy says nothing of it


def test_levels_health_check_lines_and_operator_changes_as_haproxy_mails_them(tmp_path):
    """`email-alert level info` with `option log-health-checks` mails each
    check that moves the health counter; an operator's drain is mailed, its
    maintenance and the ways back are not (HAProxy 2.6, observed); a backend
    at the default level gets its DOWN only."""
    from tests.support.admin_cli import ask
    from tests.support.haproxy_oracle import with_stats_socket

    thread = BackendThread()
    inboxes = {"haproxy": Inbox(), "haply": Inbox()}
    servers = {}

    def subjects(name):
        return [normalised(m)["lines"][3] for m in inboxes[name].mails]

    def both_have(text):
        return wait_for(lambda: all(any(text in s for s in subjects(n)) for n in inboxes), MAIL_WAIT)

    try:
        for name, inbox in inboxes.items():
            servers[name] = smtp_server(thread, inbox)
        with echo_backends(["s1", "o1"]) as (s1, o1):
            runs = {}
            for name in inboxes:
                text = config(free_port(), servers[name][1], [s1]).replace(
                    "    email-alert level notice\n", "    email-alert level info\n    option log-health-checks\n")
                text += (f"\nbackend other\n    email-alert mailers ops\n    email-alert from haproxy@example.org\n"
                         f"    email-alert to ops@example.org\n"
                         f"    server o1 {o1.address} check inter 200 fall 2 rise 2\n")
                runs[name] = with_stats_socket(text, str(tmp_path / f"{name}.sock"))
            with run_haproxy(runs["haproxy"]), run_haply(runs["haply"]):
                time.sleep(0.6)
                s1.stop()
                o1.stop()
                assert both_have("Server app/s1 is DOWN") and both_have("Server other/o1 is DOWN")
                s1.start()
                assert both_have("Server app/s1 is UP")
                for state in ("drain", "ready", "maint", "ready"):
                    for name in inboxes:
                        ask(str(tmp_path / f"{name}.sock"), f"set server app/s1 state {state}")
                    time.sleep(0.3)
                assert both_have("Server app/s1 enters drain state")
                time.sleep(1.0)  # the checks after maintenance, and nothing else
    finally:
        for server, _ in servers.values():
            thread.loop.call_soon_threadsafe(server.close)
        thread.close()
    ours, theirs = subjects("haply"), subjects("haproxy")
    # the two backends' changes interleave by timing: compare each one's own order
    for who in ("app/", "other/"):
        assert [s for s in ours if who in s] == [s for s in theirs if who in s], f"haply: {ours}\nhaproxy: {theirs}"
    assert [s for s in theirs if "other/" in s] == [
        'Subject: [HAProxy Alert] Server other/o1 is DOWN, reason: Layer4 connection problem, info: '
        '"Connection refused", check duration: <n>ms. 0 active and 0 backup servers left. 0 sessions '
        'active, 0 requeued, 0 remaining in queue']
    assert any(s.startswith("Subject: [HAProxy Alert] Health check for server app/s1 failed") for s in theirs)
    assert not any("maintenance" in s or "leaving" in s for s in theirs)
    assert len([s for s in theirs if "app/" in s]) == 9  # 6 check lines, DOWN, UP and the drain
