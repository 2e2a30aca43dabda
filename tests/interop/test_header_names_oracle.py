"""`option http-restrict-req-hdr-names` against HAProxy 2.6: fields whose
name holds a character outside [A-Za-z0-9-] pass (preserve), go (delete) or
get the request refused with a 403 (reject), per proxy, the frontend's then
the backend's, as counted (dreq) and logged by each proxy.
"""

from __future__ import annotations

import pytest

from tests.interop.test_proxy_oracle import raw_exchange
from tests.support.haply_process import PROXIES
from tests.support.admin_cli import stat_rows
from tests.support.haproxy_oracle import haproxy_available, run_haproxy
from tests.support.ports import free_port
from tests.support.scripted_backend import Conn, scripted_backend

pytestmark = pytest.mark.skipif(not haproxy_available(), reason="HAProxy oracle not installed")

SUSPECT = b"X_Forwarded-For: 10.9.9.9\r\nX.Trace: 1\r\nGood-Name: yes\r\n"


def answer(conn: Conn) -> None:
    while (request := conn.read_request()) is not None:
        names = ",".join(sorted(name.lower() for name, _ in request.headers))
        body = names.encode()
        conn.send(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))


def config(backend: str, sock: str) -> str:
    return f"""\
global
    stats socket {sock} level admin
defaults
    mode http
    timeout connect 1s
    timeout client 2s
    timeout server 2s
frontend rejecting
    bind 127.0.0.1:@PORT@
    option http-restrict-req-hdr-names reject
    default_backend plain
frontend deleting
    bind 127.0.0.1:@PORT2@
    option http-restrict-req-hdr-names delete
    default_backend strict
frontend preserving
    bind 127.0.0.1:@PORT3@
    use_backend strict if {{ path_beg /strict }}
    default_backend plain
backend plain
    server s {backend}
backend strict
    option http-restrict-req-hdr-names reject
    server s {backend}
"""


def outcome(port: int, path: str) -> tuple[bytes, bytes]:
    """(status, the field names the server saw, or the answer's body)."""
    reply = raw_exchange(port, b"GET " + path.encode() + b" HTTP/1.1\r\nHost: h\r\n" + SUSPECT
                         + b"Connection: close\r\n\r\n")
    head, _, body = reply.partition(b"\r\n\r\n")
    return head.split(b" ")[1], body if head.startswith(b"HTTP/1.1 200") else b""


def test_suspect_field_names_as_haproxy(tmp_path):
    sock = str(tmp_path / "admin.sock")
    with scripted_backend(answer) as backend:
        text = config(backend.address, sock)

        results = {}
        for name, binary in PROXIES.items():
            ports = [free_port() for _ in range(3)]
            cfg = text.replace("@PORT@", str(ports[0])).replace("@PORT2@", str(ports[1])) \
                .replace("@PORT3@", str(ports[2]))
            with run_haproxy(cfg, binary=binary):
                seen = {case: outcome(ports[at], path) for case, at, path in (
                    ("rejecting", 0, "/"), ("deleting", 1, "/"),
                    ("preserving", 2, "/"), ("preserving, strict backend", 2, "/strict"))}
                denied = {(row["pxname"], row["svname"]): row["dreq"] for row in stat_rows(sock)
                          if row["svname"] in ("FRONTEND", "BACKEND")}
            results[name] = {"outcomes": seen, "dreq": denied}
    assert results["haply"] == results["haproxy"]
    found = results["haply"]["outcomes"]
    assert found["rejecting"] == (b"403", b"")
    assert found["deleting"] == (b"200", b"good-name,host")  # X_Forwarded-For and X.Trace went
    assert found["preserving"] == (b"200", b"good-name,host,x.trace,x_forwarded-for")
    assert found["preserving, strict backend"] == (b"403", b"")
    assert results["haply"]["dreq"][("rejecting", "FRONTEND")] == "1"
