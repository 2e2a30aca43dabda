"""option mysql-check against a real MariaDB (Debian's mariadb-server)."""

from __future__ import annotations

import pytest
import uvloop

from haply.health.probes import Deadlines, Target, mysql_check
from tests.support import mariadb

DEADLINES = Deadlines(connect=2.0, read=2.0)


@pytest.fixture(scope="module")
def server():
    if not mariadb.available():
        pytest.fail("mariadb-server is not installed (Debian package mariadb-server)")
    db = mariadb.MariaDB()
    try:
        db.start()
        yield db
    finally:
        db.stop()


def check(db, user):
    return uvloop.run(mysql_check(Target("127.0.0.1", db.port), DEADLINES, user))


def test_check_user_logs_in(server):
    result = check(server, server.check_user)
    assert result.status == "L7OK" and result.code == 0, result
    assert "MariaDB" in result.info  # the server version from the handshake
    assert result.reason.startswith("Layer7 check passed")


def test_no_user_only_reads_the_handshake(server):
    result = check(server, None)
    assert result.status == "L7OK" and "MariaDB" in result.info


def test_unknown_user_is_down_with_the_server_error(server):
    result = check(server, "nobody_here")
    assert result.status == "L7STS" and not result.ok
    assert result.code == 1045
    # HAProxy 2.6 against the same server logs: reason: Layer7 wrong status,
    # code: 1045, info: "#28000Access denied for user 'nobody_here'@'127.0.0.1'
    # (using password: NO)"
    assert result.reason == ("Layer7 wrong status, code: 1045, info: \"#28000Access denied"
                             " for user 'nobody_here'@'127.0.0.1' (using password: NO)\"")


def test_clean_disconnects_do_not_count_as_aborted(server):
    before = int(server.sql("SHOW GLOBAL STATUS LIKE 'Aborted_clients'").split()[1])
    for _ in range(5):
        assert check(server, server.check_user).ok
    after = int(server.sql("SHOW GLOBAL STATUS LIKE 'Aborted_clients'").split()[1])
    assert after == before


def test_stopped_server_is_down_then_back(server):
    server.pause()
    try:
        result = check(server, server.check_user)
        assert result.status == "L4CON"
        assert result.reason == 'Layer4 connection problem, info: "Connection refused"'
    finally:
        server.resume()
    assert check(server, server.check_user).ok
