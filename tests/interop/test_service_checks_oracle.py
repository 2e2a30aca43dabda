"""redis-check, smtpchk, pgsql-check and ldap-check: haply beside HAProxy 2.6.

Both programs check the same servers from the same file: a real redis-server
(one open, one with `requirepass`, which answers PING with -NOAUTH and keeps
the connection), and small servers speaking the opening of SMTP, PostgreSQL
and LDAP (tests/support/health_backends.py), each healthy and answering
wrongly, plus a closed port. Every server must end UP or DOWN with the same
check_status and check_code in both, and each DOWN server with the reason
HAProxy logs.
"""

from __future__ import annotations

import pytest

from tests.interop.test_health_oracle import DOWN_LINE, run_both, settled
from tests.support import redis
from tests.support.health_backends import (
    Backend, BackendThread, LdapServer, PgsqlServer, SmtpServer, closed_port,
)
from tests.support.haproxy_oracle import haproxy_available

pytestmark = [pytest.mark.oracle,
              pytest.mark.skipif(not haproxy_available(), reason="HAProxy oracle not installed")]


def test_service_checks_match_haproxy(tmp_path):
    if not redis.available():
        pytest.fail("redis-server is not installed (Debian package redis-server)")
    thread = BackendThread()
    open_redis, locked_redis = redis.Redis(), redis.Redis(password="secret")
    smtp_ok = SmtpServer()
    pgsql_ok = PgsqlServer()
    try:
        open_redis.start()
        locked_redis.start()
        smtp = {name: Backend(thread, server).start() for name, server in (
            ("ok", smtp_ok),
            ("busy", SmtpServer(greeting=b"421 4.3.2 Service not available, closing\r\n")),
            ("refusing", SmtpServer(hello_reply=b"550 5.7.1 Access denied\r\n")),
        )}
        pgsql = {"ok": Backend(thread, pgsql_ok).start(),
                 "rejecting": Backend(thread, PgsqlServer(reject=True)).start()}
        ldap = {"ok": Backend(thread, LdapServer(0)).start(),
                "invalid": Backend(thread, LdapServer(49)).start()}
        closed = closed_port()
        text = f"""global
    log stdout format raw local0

defaults
    log global
    timeout connect 1s
    timeout client 5s
    timeout server 5s
    timeout check 300ms

backend redis
    option redis-check
    server ok 127.0.0.1:{open_redis.port} check inter 200
    server locked 127.0.0.1:{locked_redis.port} check inter 200
    server closed 127.0.0.1:{closed} check inter 200

backend smtp
    option smtpchk EHLO lb.example.org
    server ok 127.0.0.1:{smtp['ok'].port} check inter 200
    server busy 127.0.0.1:{smtp['busy'].port} check inter 200
    server refusing 127.0.0.1:{smtp['refusing'].port} check inter 200

backend pgsql
    option pgsql-check user haproxy
    server ok 127.0.0.1:{pgsql['ok'].port} check inter 200
    server rejecting 127.0.0.1:{pgsql['rejecting'].port} check inter 200
    server closed 127.0.0.1:{closed} check inter 200

backend ldap
    option ldap-check
    server ok 127.0.0.1:{ldap['ok'].port} check inter 200
    server invalid 127.0.0.1:{ldap['invalid'].port} check inter 200
"""
        servers = [(p, s) for p, names in (
            ("redis", ("ok", "locked", "closed")), ("smtp", ("ok", "busy", "refusing")),
            ("pgsql", ("ok", "rejecting", "closed")), ("ldap", ("ok", "invalid")))
            for s in names]

        async def scenario(oracle, registry, checker):
            return await settled(oracle, registry, checker, servers, 1.2)

        ours, theirs, reasons, log = run_both(text, tmp_path, scenario)
    finally:
        thread.close()
        open_redis.stop()
        locked_redis.stop()
    assert ours == theirs, "\n".join(f"{k}: haply {ours[k]} haproxy {theirs[k]}"
                                     for k in servers if ours[k] != theirs[k])
    # what each server came to, as both programs judged it
    assert {k: v[:2] for k, v in ours.items()} == {
        ("redis", "ok"): ("UP", "L7OK"), ("redis", "locked"): ("DOWN", "L7TOUT"),
        ("redis", "closed"): ("DOWN", "L4CON"),
        ("smtp", "ok"): ("UP", "L7OK"), ("smtp", "busy"): ("DOWN", "L7STS"),
        ("smtp", "refusing"): ("DOWN", "L7TOUT"),
        ("pgsql", "ok"): ("UP", "L7OK"), ("pgsql", "rejecting"): ("DOWN", "L7RSP"),
        ("pgsql", "closed"): ("DOWN", "L4CON"),
        ("ldap", "ok"): ("UP", "L7OK"), ("ldap", "invalid"): ("DOWN", "L7STS"),
    }
    assert ours[("smtp", "ok")][2] == "221" and ours[("ldap", "invalid")][2] == "49"
    # the servers heard what the manual says each check sends
    assert smtp_ok.commands[:2] == [b"EHLO lb.example.org\r\n", b"QUIT\r\n"]
    assert set(pgsql_ok.users) == {"haproxy"}
    logged = {(m.group(1), m.group(2)): m.group(3)
              for m in map(DOWN_LINE.match, log.splitlines()) if m}
    assert set(logged) == set(reasons) == {k for k, v in ours.items() if v[0] == "DOWN"}
    for key, reason in logged.items():
        assert reasons[key] == reason, key
