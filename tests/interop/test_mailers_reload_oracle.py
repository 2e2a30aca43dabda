"""E-mail alerts still to send when a reload comes: HAProxy 2.6 and haply in
master-worker mode (`nbthread 2`) on the same configuration, each with its
own mailer that greets a connection only after MAILER_DELAY.

An operator drains two servers; the first drain's mail is on its way (the
mailer has not greeted yet), the second waits behind it; then SIGUSR2
reloads. HAProxy's old process sends the mail on its way, drops the one
waiting, and exits once it is sent (observed). haply's old worker sends both,
each bounded by `timeout mail`, then exits: same first mail, word for word,
and the second one HAProxy loses. Neither new process mails again (HAProxy's
forgets the drains, haply's inherits them). Both hand their listeners over at
once: the new process answers while the old one is still sending.
"""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.support.admin_cli import ask
from tests.support.haply_process import run_haply
from tests.support.haproxy_oracle import echo_backends, free_port, haproxy_available, http_get, run_haproxy
from tests.support.health_backends import BackendThread
from tests.support.mail_inbox import SlowMailer

pytestmark = [pytest.mark.oracle,
              pytest.mark.skipif(not haproxy_available(), reason="HAProxy oracle not installed")]

MAILER_DELAY = 1.0
DRAINED = ("Subject: [HAProxy Alert] Server app/s1 enters drain state. 2 active and 0 backup servers "
           "online. 0 sessions requeued, 0 total in queue",
           "Subject: [HAProxy Alert] Server app/s2 enters drain state. 1 active and 0 backup servers "
           "online. 0 sessions requeued, 0 total in queue")


def config(sock: str, port: int, mailer: int, backends) -> str:
    servers = "\n".join(f"    server {b.name} {b.address}" for b in backends)
    return f"""\
global
    master-worker
    nbthread 2
    stats socket {sock} level admin

defaults
    mode http
    timeout connect 2s
    timeout client 5s
    timeout server 5s

mailers ops
    mailer smtp1 127.0.0.1:{mailer}
    timeout mail 3s

listen app
    bind 127.0.0.1:{port}
    email-alert mailers ops
    email-alert from lb@example.org
    email-alert to ops@example.org
    email-alert level notice
{servers}
"""


def children(pid: int) -> set[int]:
    found = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True, timeout=5)
    return {int(word) for word in found.stdout.split()}


def alive(pid: int) -> bool:
    status = Path(f"/proc/{pid}/status")
    try:
        return "zombie" not in status.read_text()
    except OSError:
        return False


def wait_for(condition, bound: float) -> bool:
    deadline = time.monotonic() + bound
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return bool(condition())


def test_alerts_waiting_at_a_reload(tmp_path):
    thread = BackendThread()
    seen = {}
    try:
        with echo_backends(["s1", "s2", "s3"]) as backends:
            for name, run in (("haproxy", run_haproxy), ("haply", run_haply)):
                mailer = SlowMailer(thread, MAILER_DELAY)
                sock, port = str(tmp_path / f"{name}.sock"), free_port()
                with run(config(sock, port, mailer.port, backends)) as proxy:
                    master = proxy.process.pid
                    assert wait_for(lambda: len(children(master)) == (2 if name == "haply" else 1), 10)
                    old = children(master)
                    for server in ("s1", "s2"):
                        assert ask(sock, f"set server app/{server} state drain").strip() == ""
                    assert wait_for(lambda: mailer.connected, 5)
                    reloaded = time.monotonic()
                    proxy.process.send_signal(signal.SIGUSR2)
                    assert wait_for(lambda: children(master) - old, 10), proxy.output()  # the new process
                    assert wait_for(lambda: http_get(port).status == 200, 5)
                    answered = time.monotonic() - reloaded
                    assert wait_for(lambda: not any(alive(pid) for pid in old), 10)
                    exited = time.monotonic() - reloaded
                    time.sleep(MAILER_DELAY + 0.5)  # a mail from the new process would have come
                    seen[name] = (mailer.subjects(), answered, exited)
                mailer.close()
    finally:
        thread.close()
    (theirs, their_answer, their_exit), (ours, our_answer, our_exit) = seen["haproxy"], seen["haply"]
    assert theirs == [DRAINED[0]], theirs  # the waiting one is dropped
    assert ours == list(DRAINED), ours
    # the listeners are handed over before any mail is sent
    assert their_answer < MAILER_DELAY and our_answer < MAILER_DELAY, (their_answer, our_answer)
    # HAProxy's old process goes once its one mail is sent; haply's after its two
    assert their_exit < 2 * MAILER_DELAY, their_exit
    assert 1.5 * MAILER_DELAY < our_exit < 4 * MAILER_DELAY, our_exit
