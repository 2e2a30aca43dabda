"""The check columns of servers in maintenance, drain, tracking and without
checks, compared with HAProxy 2.6 on the same file and the same commands.

HAProxy stops a server's checks in maintenance and shows none of their
results there (check_status, check_code, check_duration, check_desc,
last_chk, check_rise/fall/health empty; the stats page's last check cell
empty), while its counters stay: chkfail, chkdown (going into maintenance
counts as going down) and downtime. Each state is reached the way operators
reach it: `disable server`, `set server ... state maint`, `disabled` in the
file, `set server ... state drain`, a `track` of a server in maintenance, a
server without `check`, and checks an operator stopped (`disable health`:
"no check", or "DOWN" for a server they had marked DOWN). The same rows are
read three ways: `show stat` on the socket, `;csv` and the HTML page.
"""

from __future__ import annotations

import html
import os
import re
import shutil
import tempfile
import time

import pytest

from tests.support.admin_cli import cli, wait_socket
from tests.support.haply_process import PROXIES
from tests.support.haproxy_oracle import echo_backends, free_port, haproxy_available, http_get, run_haproxy

pytestmark = pytest.mark.skipif(not haproxy_available(), reason="HAProxy oracle not installed")

COMMANDS = [
    "disable server be/dis",
    "set server be/smaint state maint",
    "set server be/drain state drain",
    "set server be/deadmaint state maint",
    "set server be/nochkmaint state maint",
    "set server tr/t_own state maint",
    # in and out and in again: two downs
    "disable server be/twice", "enable server be/twice", "disable server be/twice",
    # checks stopped by an operator: the state they left, and no check columns
    "disable health be/nohealth", "disable health be/deadnohealth",
]
# compared as they are
EXACT = ("status", "chkfail", "chkdown", "check_status", "check_code", "check_desc", "last_chk",
         "check_rise", "check_fall", "check_health", "tracked", "agent_status")
# seconds or milliseconds: whether they are shown, and their value within a
# margin (a check's duration stretches on a busy machine)
TIMED = {"downtime": 2, "check_duration": 100}
# how long the checks run before the commands, and after (every server
# checked at least once at 300 ms, none caught in the middle of a check)
SETTLE = 0.8


def config(sock: str, web: str, dead: int, stats_port: int) -> str:
    return f"""global
    stats socket {sock} level admin
defaults
    mode http
    timeout connect 1s
    timeout client 5s
    timeout server 5s
backend be
    option httpchk GET /
    server up {web} check inter 300
    server dis {web} check inter 300
    server smaint {web} check inter 300
    server cfgdis {web} check inter 300 disabled
    server drain {web} check inter 300
    server nochk {web}
    server nochkdis {web} disabled
    server nochkmaint {web}
    server dead 127.0.0.1:{dead} check inter 300
    server deadmaint 127.0.0.1:{dead} check inter 300
    server twice {web} check inter 300
    server nohealth {web} check inter 300
    server deadnohealth 127.0.0.1:{dead} check inter 300
backend tr
    server t_up {web} track be/up
    server t_dis {web} track be/dis
    server t_cfgdis {web} track be/cfgdis
    server t_drain {web} track be/drain
    server t_dead {web} track be/dead
    server t_own {web} track be/up
    server t_nohealth {web} track be/nohealth
listen stats
    bind 127.0.0.1:{stats_port}
    stats enable
    stats uri /
"""


@pytest.fixture(scope="module")
def answers():
    found = {}
    with echo_backends(["web"]) as (web,):
        dead = free_port()
        for name, binary in sorted(PROXIES.items()):
            directory = tempfile.mkdtemp(prefix=f"maint-{name}-")
            sock = os.path.join(directory, "admin.sock")
            port = free_port()
            try:
                with run_haproxy(config(sock, web.address, dead, port), binary):
                    wait_socket(sock)
                    time.sleep(SETTLE)
                    for command in COMMANDS:
                        assert cli(sock, command).strip() == "", command
                    time.sleep(SETTLE)
                    found[name] = {"show stat": cli(sock, "show stat"),
                                   ";csv": http_get(port, "/;csv").body.decode(),
                                   "page": http_get(port, "/").body.decode()}
            finally:
                shutil.rmtree(directory, ignore_errors=True)
    return found


def server_rows(text: str) -> dict[str, dict[str, str]]:
    lines = [line for line in text.split("\n") if line]
    header = lines[0].lstrip("# ").split(",")
    rows = (dict(zip(header, line.split(","))) for line in lines[1:])
    return {f"{r['pxname']}/{r['svname']}": r for r in rows
            if r["pxname"] in ("be", "tr") and r["svname"] not in ("FRONTEND", "BACKEND")}


@pytest.mark.parametrize("surface", ["show stat", ";csv"])
def test_check_columns_as_haproxy(answers, surface):
    theirs = server_rows(answers["haproxy"][surface])
    ours = server_rows(answers["haply"][surface])
    assert list(ours) == list(theirs)
    differences = []
    for server, their in theirs.items():
        our = ours[server]
        if their["check_status"].startswith("* "):
            # HAProxy caught in the middle of a check: it marks the status so
            # and shows the code, duration and words of none yet
            their = dict(their, check_status=their["check_status"][2:],
                         **{c: our[c] for c in ("check_code", "check_duration", "last_chk")})
        for column in EXACT:
            if our[column] != their[column]:
                differences.append(f"{server}.{column}: haproxy {their[column]!r} haply {our[column]!r}")
        for column, margin in TIMED.items():
            a, b = their[column], our[column]
            if (a == "") != (b == "") or (a and abs(int(a) - int(b)) > margin):
                differences.append(f"{server}.{column}: haproxy {a!r} haply {b!r}")
    assert not differences, "\n".join(differences)
    # what both show, spelled out for the states of the brief
    assert [their["status"] for their in theirs.values()] == [
        "UP", "MAINT", "MAINT", "MAINT", "DRAIN", "no check", "MAINT", "MAINT", "DOWN", "MAINT",
        "MAINT", "no check", "DOWN", "UP", "MAINT (via be/dis)", "MAINT (via be/cfgdis)", "DRAIN",
        "DOWN", "MAINT", "no check"]
    assert (theirs["be/dis"]["check_status"], theirs["be/dis"]["chkdown"]) == ("", "1")
    assert (theirs["be/twice"]["chkdown"], theirs["be/deadmaint"]["chkdown"]) == ("2", "1")
    assert (theirs["be/deadmaint"]["chkfail"], theirs["be/deadmaint"]["last_chk"]) == ("1", "")
    assert theirs["be/drain"]["check_status"] == "L7OK"
    assert (theirs["be/deadnohealth"]["check_status"], theirs["be/deadnohealth"]["chkfail"]) == ("", "")


# A check status as both pages write it: "L7OK/200 in 1ms", "L4CON in 0ms"
CHECK_WORD = re.compile(r"\b(?:L[4-7][A-Z]+|INI|SOCKERR|UNK)\b")


def their_last_checks(page: str) -> dict[str, str]:
    """server -> the check status its row shows ("" for none), on HAProxy's page."""
    page = re.sub(r"<div class=tips>.*?</div>", "", page, flags=re.S)
    found = {}
    for proxy, server, row in re.findall(
            r'<a name="(be|tr)/([^"]+)"></a>(.*?)</tr>', page, flags=re.S):
        word = CHECK_WORD.search(row)
        if server != "Backend":
            found[f"{proxy}/{server}"] = word.group(0) if word else ""
    return found


def our_last_checks(page: str) -> dict[str, str]:
    """The same on haply's page: its "Last check" cell."""
    found = {}
    for section in re.findall(r'<section class="proxy" id="px-(be|tr)">(.*?)</section>', page, flags=re.S):
        proxy, body = section
        for server, cell in re.findall(
                r'data-server="([^"]+)".*?<td class="check">(.*?)</td>', body, flags=re.S):
            word = CHECK_WORD.search(html.unescape(cell))
            if server != "BACKEND":
                found[f"{proxy}/{server}"] = word.group(0) if word else ""
    return found


def test_page_shows_the_last_check_where_haproxy_does(answers):
    theirs = their_last_checks(answers["haproxy"]["page"])
    ours = our_last_checks(answers["haply"]["page"])
    assert ours == theirs and len(ours) == 20
    assert theirs["be/up"] == "L7OK" and theirs["be/dis"] == theirs["be/cfgdis"] == ""
