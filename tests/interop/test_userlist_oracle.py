"""`userlist` accounts, the http_auth / http_auth_group fetches and
`http-request auth`, against HAProxy 2.6 on the same configuration.

Hashed passwords are made by `openssl passwd` (SHA-512, SHA-256 and MD5 crypt),
as an operator makes them.
"""

from __future__ import annotations

import base64
import subprocess

import pytest

from tests.interop.test_proxy_oracle import PRELUDE, raw_exchange, run_both
from tests.support.haproxy_oracle import haproxy_available

pytestmark = pytest.mark.skipif(not haproxy_available(), reason="HAProxy oracle not installed")


def hashed(scheme: str, password: str) -> str:
    return subprocess.run(["openssl", "passwd", f"-{scheme}", "-salt", "haplysalt", password],
                          capture_output=True, text=True, check=True, timeout=10).stdout.strip()


def config(errorfile: str = "") -> str:
    return PRELUDE + f"""
userlist operators
    group ops users alice
    group devs
    user alice insecure-password wonder
    user bob password {hashed("6", "builder")} groups devs
    user carol password {hashed("5", "sesame")} groups devs,ops
    user dave password {hashed("1", "legacy")}

listen app
    bind 127.0.0.1:@PORT@
    acl known http_auth(operators)
    acl developer http_auth_group(operators) devs
    http-request auth if !known
    http-request auth realm Developers\\ only if !developer {{ path_beg /dev }}
    http-request return status 200 content-type text/plain string ok
{errorfile}"""


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


CREDENTIALS = {
    "none": None,
    "alice": basic("alice", "wonder"),
    "bob": basic("bob", "builder"),
    "carol": basic("carol", "sesame"),
    "dave": basic("dave", "legacy"),
    "bob-wrong-password": basic("bob", "builders"),
    "alice-hash-as-password": basic("alice", "wonderful"),
    "unknown-user": basic("eve", "wonder"),
    "not-basic": "Bearer abc",
    "bad-base64": "Basic !!!",
    "no-colon": "Basic " + base64.b64encode(b"alice").decode(),
    "lowercase-scheme": "basic " + base64.b64encode(b"alice:wonder").decode(),
}


def answers(port: int) -> dict:
    seen = {}
    for name, authorization in CREDENTIALS.items():
        for path in ("/", "/dev"):
            field = f"Authorization: {authorization}\r\n" if authorization else ""
            reply = raw_exchange(port, f"GET {path} HTTP/1.1\r\nHost: h\r\n{field}"
                                       "Connection: close\r\n\r\n".encode())
            head, _, body = reply.partition(b"\r\n\r\n")
            lines = head.split(b"\r\n")
            challenge = [line.split(b":", 1)[1].strip() for line in lines[1:]
                         if line.lower().startswith(b"www-authenticate:")]
            seen[name, path] = (lines[0], challenge, body)
    return seen


def test_accounts_groups_and_challenges_as_haproxy():
    results = run_both(config(), answers)
    assert results["haply"] == results["haproxy"]
    seen = results["haply"]
    assert seen["none", "/"][0] == b"HTTP/1.1 401 Unauthorized"
    assert seen["none", "/"][1] == [b'Basic realm="app"']
    assert seen["alice", "/"][0] == seen["bob", "/"][0] == seen["dave", "/"][0] == b"HTTP/1.1 200 OK"
    assert seen["alice", "/dev"][1] == [b'Basic realm="Developers only"']
    assert seen["carol", "/dev"][0] == b"HTTP/1.1 200 OK"
    assert seen["bob-wrong-password", "/"][0] == b"HTTP/1.1 401 Unauthorized"


def test_the_401_errorfile_carries_the_challenge(tmp_path):
    page = tmp_path / "401.http"
    page.write_bytes(b"HTTP/1.0 401 Unauthorized\r\nCache-Control: no-cache\r\n"
                     b"Content-Type: text/plain\r\n\r\nsign in first\n")

    def first(port):
        reply = raw_exchange(port, b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
        head, _, body = reply.partition(b"\r\n\r\n")
        return sorted(head.lower().split(b"\r\n")), body

    results = run_both(config(f"    errorfile 401 {page}\n"), first)
    assert results["haply"] == results["haproxy"]
    assert b'www-authenticate: basic realm="app"' in results["haply"][0]
    assert results["haply"][1] == b"sign in first\n"
