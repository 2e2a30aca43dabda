"""`option external-check` against HAProxy 2.6: the program's arguments and
environment, and what its exit status, its silence past `inter` and a
missing program make of the servers' check columns.
"""

from __future__ import annotations

import time

import pytest

from tests.interop.test_proxy_oracle import run_both
from tests.support.admin_cli import ask, stat_rows as all_stat_rows
from tests.support.haproxy_oracle import haproxy_available

pytestmark = pytest.mark.skipif(not haproxy_available(), reason="HAProxy oracle not installed")

# PATH is empty for the program (`external-check path` unset): full paths only.
# Each file is written aside and renamed into place: a check runs every 300 ms,
# and the test must never read one that the next run has just truncated.
SCRIPT = """#!/bin/sh
/usr/bin/env | /usr/bin/sort > {calls}/.$4.env.$$ && /bin/mv {calls}/.$4.env.$$ {calls}/$4.env
echo "$@" > {calls}/.$4.args.$$ && /bin/mv {calls}/.$4.args.$$ {calls}/$4.args
case $4 in
    *1) exit 0 ;;
    *2) exit 3 ;;
    *) /bin/sleep 3 ;;
esac
"""


def config(tmp_path, sock: str) -> str:
    return f"""\
global
    external-check
    insecure-fork-wanted
    stats socket {sock} level admin
defaults
    mode http
    timeout connect 1s
    timeout client 1s
    timeout server 1s
listen app
    bind 127.0.0.1:@PORT@
    option external-check
    external-check command {tmp_path}/check.sh
    server ok 127.0.0.1:41001 check inter 300ms
    server failing 127.0.0.1:41002 check inter 300ms maxconn 7
    server silent 127.0.0.1:41003 check inter 300ms ssl verify none
backend missing
    option external-check
    external-check command {tmp_path}/nowhere
    server s 127.0.0.1:41004 check inter 300ms
"""


def stat_rows(sock: str) -> dict:
    return {row["svname"]: (row["status"], row["check_status"].lstrip("* "), row["check_code"],
                            row["last_chk"])
            for row in all_stat_rows(sock) if row["svname"] in ("ok", "failing", "silent", "s")}


def check_states(sock: str) -> dict:
    """show servers state: srv_check_status, HAProxy's number for it."""
    lines = ask(sock, "show servers state").splitlines()
    header = lines[1].lstrip("# ").split()
    return {row["srv_name"]: row["srv_check_status"]
            for row in (dict(zip(header, line.split())) for line in lines[2:] if line.strip())}


def test_external_checks_as_haproxy(tmp_path):
    calls = tmp_path / "calls"
    calls.mkdir()
    script = tmp_path / "check.sh"
    script.write_text(SCRIPT.format(calls=calls))
    script.chmod(0o755)
    sock = str(tmp_path / "admin.sock")

    def exercise(port: int) -> dict:
        for old in calls.iterdir():
            old.unlink(missing_ok=True)  # a check may be renaming its file now
        time.sleep(1.5)  # ok: up; failing and silent: down (one failure from the start)
        seen = {}
        for path in sorted(calls.glob("[!.]*")):
            text = path.read_text()
            if path.suffix == ".env":  # the shell adds PWD; the port of the listener varies
                text = "\n".join(line for line in text.splitlines()
                                 if not line.startswith(("PWD=", "HAPROXY_PROXY_PORT=")))
            else:
                text = text.replace(str(port), "PORT")
            seen[path.name] = text
        return {"calls": seen, "stats": stat_rows(sock), "states": check_states(sock)}

    results = run_both(config(tmp_path, sock), exercise)
    assert results["haply"] == results["haproxy"]
    found = results["haply"]
    assert found["stats"] == {
        "ok": ("UP", "PROCOK", "0", ""), "failing": ("DOWN", "PROCERR", "3", ""),
        "silent": ("DOWN", "PROCTOUT", "0", ""), "s": ("DOWN", "PROCERR", "255", "")}
    assert found["states"] == {"ok": "20", "failing": "18", "silent": "19", "s": "18"}
    assert found["calls"]["41002.args"] == "127.0.0.1 PORT 127.0.0.1 41002\n"
    environment = found["calls"]["41002.env"].splitlines()
    assert "HAPROXY_SERVER_MAXCONN=7" in environment and "PATH=" in environment
    assert "HAPROXY_SERVER_SSL=1" in found["calls"]["41003.env"].splitlines()
