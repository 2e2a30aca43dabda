"""haply against HAProxy 2.6 on the same configuration and the same requests.

For each case both proxies run the same config text in front of the same kind of
backend; the test compares what the client gets (status, and for errors the body)
and what reaches the server (request line and fields, compared case-insensitively:
HAProxy lower-cases field names, haply keeps the client's spelling, which HTTP
says is equivalent). Where haply is deliberately different, the case says so.
"""

from __future__ import annotations

import socket

import pytest

from tests.support.haply_process import PROXIES
from tests.support.haproxy_oracle import echo_backends, free_port, http_get, run_haproxy
from tests.support.scripted_backend import keepalive_echo, scripted_backend

PRELUDE = """\
global
    maxconn 1000

defaults
    mode http
    timeout connect 2s
    timeout client 5s
    timeout server 5s
    timeout http-request 2s
"""


def raw_exchange(port: int, data: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(data)
        chunks = []
        try:
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        except socket.timeout:
            pass
        return b"".join(chunks)


def split_head(raw: bytes) -> tuple[bytes, list[tuple[bytes, bytes]]]:
    head = raw.split(b"\r\n\r\n", 1)[0]
    lines = head.split(b"\r\n")
    fields = []
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        fields.append((name.strip().lower(), value.strip()))
    return lines[0], fields


def run_both(cfg: str, exercise):
    """exercise(port) under each proxy; returns {proxy name: result}."""
    results = {}
    for name, binary in PROXIES.items():
        port = free_port()
        with run_haproxy(cfg.replace("@PORT@", str(port)), binary=binary):
            results[name] = exercise(port)
    return results


HEAD_CASES = {
    "plain-1.1": b"GET /a?x=1 HTTP/1.1\r\nHost: h\r\nAccept: */*\r\n\r\n",
    "close-1.1": b"GET /b HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
    "http-1.0": b"GET /c HTTP/1.0\r\nHost: h\r\n\r\n",
    "keepalive-1.0": b"GET /d HTTP/1.0\r\nHost: h\r\nConnection: keep-alive\r\n\r\n",
    "existing-xff": b"GET /f HTTP/1.1\r\nHost: h\r\nX-Forwarded-For: 10.1.1.1\r\n\r\n",
    "post-body": b"POST /g HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello",
    "chunked-body": (b"POST /h HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
                     b"5\r\nhello\r\n0\r\n\r\n"),
    # printable characters RFC 3986 leaves out, which browsers send unescaped
    "unescaped-uri": b'GET /a{b}|c^d\\e`f?q="<x>" HTTP/1.1\r\nHost: h\r\n\r\n',
    # identical Host fields: one is forwarded
    "duplicate-host": b"GET /i HTTP/1.1\r\nHost: h\r\nAccept: */*\r\nhost: H\r\n\r\n",
    "absolute-form": b"GET http://h/j?k HTTP/1.1\r\nHost: h\r\n\r\n",
}


@pytest.mark.parametrize("case", sorted(HEAD_CASES))
def test_same_request_head_reaches_the_server(case):
    request = HEAD_CASES[case] + b"GET /end HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"

    seen = {}
    statuses = {}
    for name, binary in PROXIES.items():
        with scripted_backend(keepalive_echo) as backend:
            port = free_port()
            cfg = (PRELUDE + f"\nlisten app\n    bind 127.0.0.1:{port}\n    option forwardfor\n"
                   f"    http-request set-header X-Env test\n    server s {backend.address}\n")
            with run_haproxy(cfg, binary=binary):
                reply = raw_exchange(port, request)
            first = backend.requests[0]
            seen[name] = (first.method, first.url, first.version,
                          [(k.lower(), v) for k, v in first.headers], first.body)
            statuses[name] = [line.split(b" ")[1] for line in reply.split(b"\r\n")
                              if line.startswith(b"HTTP/1.")]
    assert seen["haply"] == seen["haproxy"]
    assert statuses["haply"] == statuses["haproxy"]


def test_same_response_head_reaches_the_client():
    def exercise(port):
        reply = raw_exchange(port, b"GET /x HTTP/1.0\r\nHost: h\r\nConnection: keep-alive\r\n\r\n"
                                   b"GET /y HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
        responses = reply.split(b"HTTP/1.1 ")[1:]
        return [split_head(b"HTTP/1.1 " + r) for r in responses]

    with scripted_backend(keepalive_echo) as backend:
        cfg = PRELUDE + f"\nlisten app\n    bind 127.0.0.1:@PORT@\n    server s {backend.address}\n"
        results = run_both(cfg, exercise)
    assert results["haply"] == results["haproxy"]


HTTP10_ANSWERS = {
    "until-close": b"HTTP/1.0 200 OK\r\n\r\nhello",
    "keep-alive": b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 5\r\n\r\nhello",
}
HTTP10_CLIENTS = {
    "1.1": b"GET /%s HTTP/1.1\r\nHost: h\r\n\r\n",
    "1.0": b"GET /%s HTTP/1.0\r\n\r\n",
    "1.0 keep-alive": b"GET /%s HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
    "1.1 close": b"GET /%s HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
    "HEAD 1.1": b"HEAD /%s HTTP/1.1\r\nHost: h\r\n\r\n",
}


def http10_server(conn) -> None:
    while (request := conn.read_request()) is not None:
        answer = request.url.strip("/")
        conn.send(HTTP10_ANSWERS[answer])
        if answer == "until-close":
            return


def test_same_connection_field_for_an_http10_server():
    """An HTTP/1.0 status line means close unless it says keep-alive (RFC 9112
    §9.3): the proxy says keep-alive when it keeps the client, whatever its
    version, and nothing when it closes."""
    def exercise(port):
        seen = {}
        for answer in HTTP10_ANSWERS:
            for client, request in HTTP10_CLIENTS.items():
                with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
                    sock.sendall(request % answer.encode())
                    reply = b""
                    try:
                        while chunk := sock.recv(65536):
                            reply += chunk
                        closed = True
                    except socket.timeout:
                        closed = False
                line, fields = split_head(reply)
                seen[answer, client] = line, sorted(fields), closed
        return seen

    with scripted_backend(http10_server) as backend:
        cfg = PRELUDE + f"\nlisten app\n    bind 127.0.0.1:@PORT@\n    server s {backend.address}\n"
        results = run_both(cfg, exercise)
    assert results["haproxy"]["keep-alive", "1.1"] == (
        b"HTTP/1.0 200 OK", [(b"connection", b"keep-alive"), (b"content-length", b"5")], False)
    assert results["haply"] == results["haproxy"]


ERROR_CASES = {
    "no-server": ("    server s 127.0.0.1:@DEAD@\n    retries 0\n",
                  b"GET / HTTP/1.1\r\nHost: h\r\n\r\n", 503),
    "garbage": ("    server s @BACKEND@\n", b"HELLO\r\n\r\n", 400),
    "bad-chunk": ("    server s @BACKEND@\n",
                  b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400),
    "absolute-form-other-host": ("    server s @BACKEND@\n",
                                 b"GET http://other/x HTTP/1.1\r\nHost: h\r\n\r\n", 400),
    "absolute-form-other-port": ("    server s @BACKEND@\n",
                                 b"GET http://h:81/x HTTP/1.0\r\nHost: h:82\r\n\r\n", 400),
    "differing-content-length": ("    server s @BACKEND@\n",
                                 b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\n"
                                 b"Content-Length: 2\r\n\r\nab", 400),
}


@pytest.mark.parametrize("case", sorted(ERROR_CASES))
def test_same_error_answers(case):
    lines, request, expected = ERROR_CASES[case]
    with scripted_backend(keepalive_echo) as backend:
        lines = lines.replace("@BACKEND@", backend.address).replace("@DEAD@", str(free_port()))
        cfg = PRELUDE + "\nlisten app\n    bind 127.0.0.1:@PORT@\n" + lines
        results = run_both(cfg, lambda port: raw_exchange(port, request))
        assert backend.requests == []
    for reply in results.values():
        assert reply.startswith(b"HTTP/1.1 %d" % expected)
    # Same status line and same body; haply may order a field differently.
    assert results["haply"].split(b"\r\n")[0] == results["haproxy"].split(b"\r\n")[0]
    assert results["haply"].split(b"\r\n\r\n", 1)[1] == results["haproxy"].split(b"\r\n\r\n", 1)[1]


def forwarded_heads(request: bytes) -> dict:
    """What the server got from each proxy for one raw request (None: nothing)."""
    seen = {}
    for name, binary in PROXIES.items():
        with scripted_backend(keepalive_echo) as backend:
            port = free_port()
            cfg = PRELUDE + f"\nlisten app\n    bind 127.0.0.1:{port}\n    server s {backend.address}\n"
            with run_haproxy(cfg, binary=binary):
                raw_exchange(port, request)
            seen[name] = ([(k.lower(), v) for k, v in backend.requests[0].headers]
                          if backend.requests else None)
    return seen


def test_hop_by_hop_fields_are_a_named_difference():
    """RFC 9110 §7.6.1: a proxy MUST remove the fields that Connection names, and
    Keep-Alive. HAProxy 2.6 consumes only Connection's close/keep-alive tokens and
    forwards the rest; haply removes them as the RFC requires."""
    seen = forwarded_heads(b"GET /e HTTP/1.1\r\nHost: h\r\nConnection: foo, close\r\n"
                           b"Foo: bar\r\nKeep-Alive: 300\r\n\r\n")
    assert seen["haproxy"] == [("host", "h"), ("connection", "foo"), ("foo", "bar"),
                               ("keep-alive", "300")]
    assert seen["haply"] == [("host", "h")]


def test_nul_in_a_header_value_is_a_named_difference():
    """HAProxy 2.6 forwards a NUL byte inside a header value to the server; haply
    refuses the request (400): RFC 9110 §5.5 forbids it and servers disagree on
    where such a value ends."""
    def capture(conn):
        raw = b""
        while b"\r\n\r\n" not in raw:
            data = conn.sock.recv(4096)
            if not data:
                return
            raw += data
        conn.server.raw.append(raw)
        conn.respond(200, b"ok", [("Connection", "close")])

    replies, raw_seen = {}, {}
    for name, binary in PROXIES.items():
        with scripted_backend(capture) as backend:
            backend.raw = []
            port = free_port()
            cfg = PRELUDE + f"\nlisten app\n    bind 127.0.0.1:{port}\n    server s {backend.address}\n"
            with run_haproxy(cfg, binary=binary):
                replies[name] = raw_exchange(port, b"GET / HTTP/1.1\r\nHost: h\r\nX: a\x00b\r\n"
                                                   b"Connection: close\r\n\r\n")
            raw_seen[name] = backend.raw
    assert replies["haproxy"].startswith(b"HTTP/1.1 200")
    assert any(b"a\x00b" in raw for raw in raw_seen["haproxy"])
    assert replies["haply"].startswith(b"HTTP/1.1 400") and raw_seen["haply"] == []


def test_content_length_with_transfer_encoding_is_a_named_difference():
    """HAProxy drops the Content-Length and forwards the chunked body; haply refuses
    the request outright (400), since two framings at once is how smuggling starts."""
    request = (b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n"
               b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
    forwarded = {}
    replies = {}
    for name, binary in PROXIES.items():
        with scripted_backend(keepalive_echo) as backend:
            port = free_port()
            cfg = PRELUDE + f"\nlisten app\n    bind 127.0.0.1:{port}\n    server s {backend.address}\n"
            with run_haproxy(cfg, binary=binary):
                replies[name] = raw_exchange(port, request)
            forwarded[name] = len(backend.requests)
    assert replies["haproxy"].startswith(b"HTTP/1.1 200") and forwarded["haproxy"] == 1
    assert replies["haply"].startswith(b"HTTP/1.1 400") and forwarded["haply"] == 0


@pytest.mark.parametrize("algorithm,weights", [
    ("roundrobin", (1, 1, 1)), ("roundrobin", (3, 2, 1)), ("roundrobin", (5, 1)),
    # static-rr matches HAProxy for these; for uneven mixes such as (2, 3, 4, 1)
    # the order inside a cycle differs (test_balance_oracle names it).
    ("static-rr", (3, 2, 1)), ("static-rr", (1, 1, 1)),
])
def test_same_server_sequence(algorithm, weights):
    names = [f"s{i}" for i in range(len(weights))]
    with echo_backends(names) as backends:
        servers = "".join(f"    server {b.name} {b.address} weight {w}\n"
                          for b, w in zip(backends, weights))
        cfg = PRELUDE + f"\nlisten app\n    bind 127.0.0.1:@PORT@\n    balance {algorithm}\n{servers}"
        count = 3 * sum(weights)
        results = run_both(cfg, lambda port: [http_get(port).backend for _ in range(count)])
    assert results["haply"] == results["haproxy"]
