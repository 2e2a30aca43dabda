"""A backend's own state columns (status, chkdown, lastchg, downtime) as
HAProxy 2.6 shows them, on the same file and the same events.

HAProxy reads a backend's state off its servers' usable weight: it is DOWN
once no server can take traffic, whether the last one failed its checks,
went into maintenance, was drained or stands at weight 0. Each going down
counts in chkdown and restarts lastchg; downtime adds a down period when a
server's checks end it, not when an operator does, and counts a backend
that is down from the start (its only server `disabled`) from the start.
HAProxy's clock for these columns counts whole seconds of the wall clock,
so its figures may be one above a difference of a fraction of a second:
lastchg and downtime are compared within one second.
"""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
import time

import pytest

from tests.support.admin_cli import cli, stat_rows, wait_socket
from tests.support.haply_process import PROXIES
from tests.support.haproxy_oracle import echo_backends, free_port, haproxy_available, run_haproxy

pytestmark = pytest.mark.skipif(not haproxy_available(), reason="HAProxy oracle not installed")

BACKENDS = ("both", "dead", "cfgdis", "bk", "none", "flip", "dr", "w0")


def config(sock: str, web: str, dead: int, flip: int) -> str:
    return f"""global
    stats socket {sock} level admin
defaults
    mode http
    timeout connect 1s
    timeout client 5s
    timeout server 5s
backend both
    server a {web} check inter 200
    server b {web} check inter 200
backend dead
    server d 127.0.0.1:{dead} check inter 200 fall 2
backend cfgdis
    server x {web} disabled
backend bk
    server a {web} check inter 200
    server k {web} check inter 200 backup
backend none
backend flip
    server d 127.0.0.1:{flip} check inter 200 fall 1 rise 1
backend dr
    server a {web} check inter 200
backend w0
    server a {web} check inter 200 weight 0
"""


def backend_rows(sock: str) -> dict[str, tuple[str, ...]]:
    return {r["pxname"]: (r["status"], r["chkdown"], r["lastchg"], r["downtime"])
            for r in stat_rows(sock) if r["svname"] == "BACKEND" and r["pxname"] in BACKENDS}


def run(binary: str, web: str) -> list[dict[str, tuple[str, ...]]]:
    """The backend rows after each step of one sequence of events."""
    directory = tempfile.mkdtemp(prefix="backend-state-")
    sock = os.path.join(directory, "admin.sock")
    dead, flip = free_port(), free_port()
    seen = []
    try:
        with run_haproxy(config(sock, web, dead, flip), binary):
            wait_socket(sock)
            time.sleep(0.7)  # dead's and flip's checks fail
            seen.append(backend_rows(sock))
            for command in ("disable server both/a", "disable server both/b",
                            "disable server bk/a", "set server dr/a state drain"):
                assert cli(sock, command).strip() == "", command
            time.sleep(1.2)
            seen.append(backend_rows(sock))
            # an operator brings both back; flip's checks bring it back
            listener = socket.create_server(("127.0.0.1", flip))
            try:
                for command in ("enable server both/a", "disable server bk/k"):
                    assert cli(sock, command).strip() == "", command
                time.sleep(1.2)
                seen.append(backend_rows(sock))
            finally:
                listener.close()
            assert cli(sock, "disable server both/a").strip() == ""
            time.sleep(1.2)  # flip's checks fail again
            seen.append(backend_rows(sock))
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    return seen


@pytest.fixture(scope="module")
def sequences():
    with echo_backends(["web"]) as (web,):
        return {name: run(binary, web.address) for name, binary in sorted(PROXIES.items())}


def test_backend_rows_as_haproxy(sequences):
    theirs, ours = sequences["haproxy"], sequences["haply"]
    differences = []
    for step, (their_rows, our_rows) in enumerate(zip(theirs, ours)):
        for backend in BACKENDS:
            (status, chkdown, *timed), (our_status, our_chkdown, *our_timed) = \
                their_rows[backend], our_rows[backend]
            if (status, chkdown) != (our_status, our_chkdown):
                differences.append(f"step {step} {backend}: haproxy {their_rows[backend]} "
                                   f"haply {our_rows[backend]}")
            for a, b in zip(timed, our_timed):
                if (a == "") != (b == "") or (a and abs(int(a) - int(b)) > 1):
                    differences.append(f"step {step} {backend}: haproxy {their_rows[backend]} "
                                       f"haply {our_rows[backend]}")
    assert not differences, "\n".join(differences)
    # what both show, spelled out
    status = [{b: row[b][0] for b in BACKENDS} for row in theirs]
    assert status[1] == {"both": "DOWN", "dead": "DOWN", "cfgdis": "DOWN", "bk": "UP", "none": "UP",
                         "flip": "DOWN", "dr": "DOWN", "w0": "DOWN"}
    assert (status[2]["both"], status[2]["flip"], status[2]["bk"]) == ("UP", "UP", "DOWN")
    chkdown = [{b: row[b][1] for b in BACKENDS} for row in theirs]
    assert (chkdown[3]["both"], chkdown[3]["flip"], chkdown[3]["cfgdis"], chkdown[3]["w0"]) == \
        ("2", "2", "0", "0")
    # an operator's comeback adds nothing to downtime, the checks' does
    assert theirs[2]["both"][3] == "0" and int(theirs[2]["flip"][3]) >= 1
