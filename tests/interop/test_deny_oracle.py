"""`http-request deny` and `http-error` against HAProxy 2.6 on the same configuration.

Each case sends a denied request and then an allowed one on the same connection
(the second closes it). Both proxies must give the same status lines, the same
fields (names compared case-insensitively), the same bodies, and answer the
second request on the same connection, as HAProxy keeps it after a framed
denial. No denied request may reach the server, and `show stat` must count the
denials (dreq) on the same rows.
"""

from __future__ import annotations

import os
import re
import tempfile

import pytest

from tests.interop.test_proxy_oracle import PRELUDE, raw_exchange, run_both, split_head
from tests.support.admin_cli import cli, wait_socket
from tests.support.haproxy_oracle import haproxy_available
from tests.support.scripted_backend import keepalive_echo, scripted_backend

pytestmark = pytest.mark.skipif(not haproxy_available(), reason="HAProxy oracle not installed")

ALLOWED = b"GET /ok HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"
CASES = ("/admin", "/slow", "/str", "/hdr", "/be-deny", "/ef")


def config(directory: str, backend: str, sock: str) -> str:
    with open(os.path.join(directory, "down.txt"), "w") as handle:
        handle.write("Sorry, we are down\n")
    with open(os.path.join(directory, "deny.http"), "w") as handle:
        handle.write("HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n"
                     "\r\nnope\n")
    return PRELUDE.replace("    maxconn 1000\n", f"    maxconn 1000\n    stats socket {sock} level admin\n") + f"""
frontend fe
    bind 127.0.0.1:@PORT@
    http-request deny if {{ path_beg /admin }}
    http-request deny deny_status 429 if {{ path_beg /slow }}
    http-request deny status 404 content-type text/plain string "gone away" if {{ path_beg /str }}
    http-request deny status 500 hdr X-Why maintenance content-type text/plain file {directory}/down.txt if {{ path_beg /hdr }}
    http-request deny errorfile {directory}/deny.http if {{ path_beg /ef }}
    default_backend be

backend be
    http-request deny deny_status 503 if {{ path_beg /be-deny }}
    http-error status 503 content-type text/plain file {directory}/down.txt
    server s {backend}
"""


def normalised(reply: bytes) -> list[tuple[bytes, list, bytes]]:
    """Each answer on the connection as (status line, sorted fields, body)."""
    answers = []
    for part in re.split(rb"(?=HTTP/1\.[01] \d{3} )", reply):
        if not part:
            continue
        line, fields = split_head(part)
        body = part.split(b"\r\n\r\n", 1)[1] if b"\r\n\r\n" in part else b""
        answers.append((line, sorted(fields), body))
    return answers


@pytest.fixture(scope="module")
def answers():
    found = {}
    with scripted_backend(keepalive_echo) as backend:
        directory = tempfile.mkdtemp(prefix="deny-")
        sock = os.path.join(directory, "admin.sock")

        def exercise(port):
            wait_socket(sock)
            replies = {path: normalised(raw_exchange(
                port, b"GET %s HTTP/1.1\r\nHost: h\r\n\r\n" % path.encode() + ALLOWED))
                for path in CASES}
            stat = cli(sock, "show stat")
            os.unlink(sock)
            return replies, stat

        found = run_both(config(directory, backend.address, sock), exercise)
        reached = [request.url for request in backend.requests]
    found["reached"] = reached
    return found


@pytest.mark.parametrize("path", CASES)
def test_same_answers_and_connection_kept_alike(answers, path):
    ours, theirs = answers["haply"][0][path], answers["haproxy"][0][path]
    for reply in (ours, theirs):
        assert reply[0][0].split(b" ")[1] in (b"403", b"429", b"404", b"500", b"503"), reply
    # the date field aside, which only the echo server writes
    strip = [(line, [f for f in fields if f[0] != b"date"], body) for line, fields, body in ours]
    expected = [(line, [f for f in fields if f[0] != b"date"], body) for line, fields, body in theirs]
    assert strip == expected


def test_denied_requests_never_reach_the_server(answers):
    # The allowed request after each denial got through, on both proxies, and
    # nothing else did.
    assert answers["reached"] == ["/ok"] * len(CASES) * 2


def test_denials_are_counted_on_the_same_rows(answers):
    def dreq(stat: str) -> dict[str, str]:
        lines = [line for line in stat.splitlines() if line]
        header = lines[0][2:].split(",")
        column = header.index("dreq")
        return {f"{r[0]}/{r[1]}": r[column] for r in (line.split(",") for line in lines[1:])}

    ours, theirs = dreq(answers["haply"][1]), dreq(answers["haproxy"][1])
    assert ours["fe/FRONTEND"] == theirs["fe/FRONTEND"] == str(len(CASES))
    assert ours["be/BACKEND"] == theirs["be/BACKEND"]


def test_http_request_redirect_in_rule_order_as_haproxy():
    """`http-request redirect` is evaluated in file order with `http-request
    deny`; the legacy `redirect` lines come after all http-request rules."""
    requests = ["/both", "/r/deny", "/r/x?q=1", "/leg/a", "/ok"]
    with scripted_backend(keepalive_echo) as backend:
        cfg = PRELUDE + f"""
frontend fe
    bind 127.0.0.1:@PORT@
    http-request deny if {{ path_beg /both }}
    http-request redirect location /moved code 301 if {{ path_beg /both }} || {{ path_beg /r }}
    http-request deny deny_status 429 if {{ path_beg /r/deny }}
    redirect prefix /legacy if {{ path_beg /r }}
    redirect scheme https code 308 if {{ path_beg /leg }}
    http-request redirect prefix /v2 drop-query if {{ path_beg /leg }}
    default_backend be

backend be
    server s {backend.address}
"""

        def exercise(port):
            answers = []
            for path in requests:
                reply = raw_exchange(port, b"GET %s HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"
                                     % path.encode())
                line, fields = split_head(reply)
                answers.append((line, dict(fields).get(b"location")))
            return answers

        results = run_both(cfg, exercise)
    assert results["haply"] == results["haproxy"]
    assert [line.split()[1] for line, _ in results["haply"]] == [b"403", b"301", b"301", b"302", b"200"]


def test_http_request_return_as_haproxy():
    """`http-request return`: an empty answer (none at all for 204), a string
    with fields, a default page; each answered on a connection that stays
    open, the next request forwarded."""
    paths = ["/empty", "/204", "/string", "/503", "/404", "/400", "/418", "/212", "/502", "/599"]
    with scripted_backend(keepalive_echo) as backend:
        cfg = PRELUDE + f"""
frontend fe
    bind 127.0.0.1:@PORT@
    http-request return if {{ path /empty }}
    http-request return status 204 if {{ path /204 }}
    http-request return status 200 content-type text/plain string "OK" hdr X-A b if {{ path /string }}
    http-request return status 503 default-errorfiles if {{ path /503 }}
    http-request return status 404 if {{ path /404 }}
    # HAProxy's own reason phrases: its list, else the status class's
    http-request return status 400 content-type text/plain string "no" if {{ path /400 }}
    http-request return status 418 if {{ path /418 }}
    http-request return status 212 if {{ path /212 }}
    http-request return status 502 content-type text/plain string "x" if {{ path /502 }}
    http-request return status 599 if {{ path /599 }}
    default_backend be

backend be
    server s {backend.address}
"""

        def exercise(port):
            return {path: normalised(raw_exchange(
                port, b"GET %s HTTP/1.1\r\nHost: h\r\n\r\n" % path.encode() + ALLOWED))
                for path in paths}

        results = run_both(cfg, exercise)
        forwarded = [r.url for r in backend.requests]
    for path in paths:
        ours, theirs = results["haply"][path], results["haproxy"][path]
        assert ours[0] == theirs[0], path  # the answer, byte for byte but the field order
        assert len(ours) == len(theirs) == 2, (path, ours)  # and the next request's answer
    # Only the follow-up requests reached the server, under both proxies.
    assert forwarded == ["/ok"] * (2 * len(paths)), forwarded
