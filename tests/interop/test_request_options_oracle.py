"""Four request-side options against HAProxy 2.6: `option originalto`,
`option prefer-last-server`, `option abortonclose` and `option
http-buffer-request`. The same configuration runs through both proxies and
what the servers saw (fields, which server, how many connections, when they
opened) is compared.
"""

from __future__ import annotations

import socket
import time

import pytest

from tests.interop.test_proxy_oracle import PRELUDE, run_both
from tests.support.haproxy_oracle import haproxy_available
from tests.support.scripted_backend import keepalive_echo, scripted_backend

pytestmark = pytest.mark.skipif(not haproxy_available(), reason="HAProxy oracle not installed")


def exchange(sock: socket.socket, request: bytes) -> bytes:
    """Send one request and read its answer (a keepalive_echo body ends in LF)."""
    sock.sendall(request)
    reply = b""
    while b"\r\n\r\n" not in reply or not reply.endswith(b"\n"):
        chunk = sock.recv(65536)
        assert chunk, reply
        reply += chunk
    return reply


# ------------------------------------------------------------------ originalto

# (frontend lines, backend lines): what each proxy says about originalto.
ORIGINALTO_CASES = {
    "frontend": ("option originalto", ""),
    "backend-header": ("", "option originalto header X-Client-Dst"),
    "both-backend-name-wins": ("option originalto header X-Fe", "option originalto header X-Be"),
    "after-forwardfor-and-rules": ("option originalto\n    http-request set-header X-A 1",
                                   "option forwardfor\n    http-request set-header X-B 1"),
    "except-matches": ("option originalto except 127.0.0.0/8", ""),
    "except-other": ("option originalto except 10.0.0.0/8", ""),
    "frontend-except-wins": ("option originalto except 127.0.0.1", "option originalto"),
    "backend-except-wins": ("option originalto except 10.0.0.0/8",
                            "option originalto except 127.0.0.0/8"),
    # forwardfor merges its `except` the same way
    "forwardfor-frontend-except-wins": ("option forwardfor except 127.0.0.1", "option forwardfor"),
    "forwardfor-backend-except-wins": ("option forwardfor", "option forwardfor except 127.0.0.0/8"),
}


def _fields_seen(cfg: str, host: str) -> dict:
    request = (b"GET / HTTP/1.1\r\nHost: h\r\nX-Original-To: 9.9.9.9\r\n\r\n"
               b"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
    with scripted_backend(keepalive_echo) as backend:
        def exercise(port):
            before = len(backend.requests)
            with socket.create_connection((host, port), timeout=5) as sock:
                sock.sendall(request)
                while sock.recv(65536):
                    pass
            return [[(k.lower(), v) for k, v in r.headers]
                    for r in backend.requests[before:]]

        return run_both(cfg.replace("@BACKEND@", backend.address), exercise)


@pytest.mark.parametrize("case", sorted(ORIGINALTO_CASES))
def test_originalto_fields_as_haproxy(case):
    frontend, backend = ORIGINALTO_CASES[case]
    cfg = PRELUDE + f"""
frontend fe
    bind 127.0.0.1:@PORT@
    {frontend}
    default_backend be
backend be
    {backend}
    server s @BACKEND@
"""
    seen = _fields_seen(cfg, "127.0.0.1")
    assert seen["haply"] == seen["haproxy"], seen
    assert ("x-original-to", "9.9.9.9") in seen["haproxy"][0]  # the client's own is kept


@pytest.mark.parametrize("options", ["option originalto", "option originalto except ::1/128"])
def test_originalto_ipv6_as_haproxy(options):
    probe = socket.socket(socket.AF_INET6)
    try:
        probe.bind(("::1", 0))
    except OSError:
        pytest.skip("no IPv6 loopback")
    finally:
        probe.close()
    cfg = PRELUDE + f"""
listen app
    bind ::1:@PORT@
    {options}
    server s @BACKEND@
"""
    seen = _fields_seen(cfg, "::1")
    assert seen["haply"] == seen["haproxy"], seen


# ---------------------------------------------------------- prefer-last-server


def _answer_and_close(conn) -> None:
    """One answer per connection, the server closing it: nothing left to prefer."""
    request = conn.read_request()
    if request is not None:
        conn.respond(200, f"{conn.server.name} x\n".encode(), headers=[("Connection", "close")])


# name -> (backend lines, urls one client sends on its connection, server handler,
# whether server connection counts are compared). HAProxy 2.6 keeps a server
# connection with the session only under `http-reuse never` (its other modes
# share it with every session), so that is where the option shows; a hash
# balance and a connection the server closed are where it does not apply.
# Counts are not compared where haply's reuse differs for reasons of its own:
# its default policy (not HAProxy's `safe`) reuses for a client's first
# request, and under `never` it keeps one connection per session where
# HAProxy keeps one per server (up to 5).
NEVER_PREFER = "http-reuse never\n    option prefer-last-server"
PREFER_LAST_CASES = {
    "roundrobin": ("", ("/",) * 4, keepalive_echo, False),
    "roundrobin-option": ("option prefer-last-server", ("/",) * 4, keepalive_echo, False),
    "never": ("http-reuse never", ("/",) * 4, keepalive_echo, False),
    "never-option": (NEVER_PREFER, ("/",) * 4, keepalive_echo, True),
    "never-option-static-rr": (NEVER_PREFER + "\n    balance static-rr", ("/",) * 4,
                               keepalive_echo, True),
    "never-option-leastconn": (NEVER_PREFER + "\n    balance leastconn", ("/",) * 4,
                               keepalive_echo, True),
    "never-option-url-param-fallback": (NEVER_PREFER + "\n    balance url_param id",
                                        ("/1", "/2", "/3", "/4"), keepalive_echo, False),
    "never-option-server-closes": (NEVER_PREFER, ("/",) * 4, _answer_and_close, True),
    "never-option-server-close-mode": (NEVER_PREFER + "\n    option http-server-close",
                                       ("/",) * 4, keepalive_echo, True),
}


@pytest.mark.parametrize("case", sorted(PREFER_LAST_CASES))
def test_prefer_last_server_as_haproxy(case):
    lines, urls, handler, compare_connections = PREFER_LAST_CASES[case]
    with scripted_backend(handler, "a") as a, scripted_backend(handler, "b") as b:
        cfg = PRELUDE + f"""
listen app
    bind 127.0.0.1:@PORT@
    {lines}
    server a {a.address}
    server b {b.address}
"""

        def exercise(port):
            before = (a.connections, b.connections)
            answered = []
            for _ in range(2):  # two clients in turn, each on one connection
                with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
                    answered.append([exchange(sock, f"GET {url} HTTP/1.1\r\nHost: h\r\n\r\n"
                                              .encode()).rsplit(b"\r\n\r\n", 1)[1].split()[0]
                                     for url in urls])
            return answered, (a.connections - before[0], b.connections - before[1])

        results = run_both(cfg, exercise)
    assert results["haply"][0] == results["haproxy"][0], results  # who answered
    if compare_connections:
        assert results["haply"][1] == results["haproxy"][1], results


def test_prefer_last_server_leaves_a_hash_balance_alone():
    """balance uri sends each request where its key says, with the option or
    without it, in both proxies (which hash these keys each their own way:
    what is compared is the option's effect)."""
    urls = ("/1", "/2", "/3", "/4", "/5", "/6")
    with scripted_backend(keepalive_echo, "a") as a, scripted_backend(keepalive_echo, "b") as b:
        def answers(lines):
            cfg = PRELUDE + f"""
listen app
    bind 127.0.0.1:@PORT@
    http-reuse never
    balance uri
    {lines}
    server a {a.address}
    server b {b.address}
"""

            def exercise(port):
                with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
                    return [exchange(sock, f"GET {url} HTTP/1.1\r\nHost: h\r\n\r\n".encode())
                            .rsplit(b"\r\n\r\n", 1)[1].split()[0] for url in urls]
            return run_both(cfg, exercise)

        without, with_option = answers(""), answers("option prefer-last-server")
    assert with_option == without
    assert all(len(set(seq)) == 2 for seq in without.values()), without  # both servers answered


# --------------------------------------------------------- http-buffer-request

# timeout http-request 2s: the exercise spends up to 1.5 s before sending the
# rest of a body, which must stay clear of it except in the slow cases (3 s).
BUFFER_PRELUDE = PRELUDE


def _wait_for(test, within: float) -> bool:
    deadline = time.monotonic() + within
    while not test():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def _post(length: int, extra: bytes = b"") -> bytes:
    return (b"POST /up HTTP/1.1\r\nHost: h\r\n" + extra
            + b"Content-Length: %d\r\n\r\n" % length)


CHUNKED_HEAD = b"POST /up HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"

# name -> (option line, head, body sent first, rest of the body, pause between).
BUFFER_CASES = {
    "no-option": ("", _post(10), b"x" * 5, b"y" * 5, 0),
    "small-body": ("option http-buffer-request", _post(10), b"x" * 5, b"y" * 5, 0),
    "chunked": ("option http-buffer-request", CHUNKED_HEAD, b"5\r\nhello\r\n", b"0\r\n\r\n", 0),
    "half-a-buffer": ("option http-buffer-request", _post(100000), b"x" * 8000,
                      b"y" * 92000, 0),
    "larger-than-the-buffer": ("option http-buffer-request", _post(100000), b"x" * 17000,
                               b"y" * 83000, 0),
    "expect-100-continue": ("option http-buffer-request",
                            _post(10, b"Expect: 100-continue\r\n"), b"", b"y" * 10, 0),
    # timeout http-request (2s) covers the body only with the option
    "slow-body-timeout": ("option http-buffer-request", _post(10), b"x" * 5, b"y" * 5, 3.0),
    "slow-body-no-option": ("", _post(10), b"x" * 5, b"y" * 5, 3.0),
}


@pytest.mark.parametrize("case", sorted(BUFFER_CASES))
def test_http_buffer_request_as_haproxy(case):
    """Does the server connection open before the rest of the body is sent,
    what does the client see in between and at the end, what reached the
    server."""
    option, head, first, rest, pause = BUFFER_CASES[case]
    with scripted_backend(keepalive_echo) as backend:
        cfg = BUFFER_PRELUDE + f"""
listen app
    bind 127.0.0.1:@PORT@
    {option}
    server s {backend.address}
"""

        def exercise(port):
            before = backend.connections
            with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
                sock.sendall(head + first)
                # A connection that opens does so at once; one that waits for
                # the body is given a second to show it does not.
                early = _wait_for(lambda: backend.connections > before, 1.0)
                time.sleep(pause)
                sock.settimeout(0.5)
                try:
                    interim = sock.recv(65536)  # 100 Continue, or 408 after the pause
                except TimeoutError:
                    interim = b""
                sock.settimeout(5)
                reply = b""
                try:
                    sock.sendall(rest)
                    while not reply.endswith(b"\n") and not interim.startswith(b"HTTP/1.1 408"):
                        chunk = sock.recv(65536)
                        if not chunk:
                            break
                        reply += chunk
                except ConnectionError:
                    pass
            received = [(r.method, r.url, len(r.body),
                         sorted(k.lower() for k, _ in r.headers)) for r in backend.requests]
            backend.requests.clear()
            return (early, interim.split(b"\r\n", 1)[0], reply.split(b"\r\n", 1)[0],
                    reply.rsplit(b"\r\n\r\n", 1)[-1], received)

        results = run_both(cfg, exercise)
    assert results["haply"] == results["haproxy"], results


# ----------------------------------------------------------------- abortonclose


def _slow_first(conn) -> None:
    """/slow takes a second: with `maxconn 1` the next request waits in the queue."""
    while True:
        request = conn.read_request()
        if request is None:
            return
        if request.url == "/slow":
            time.sleep(1.0)
        conn.respond(200, f"{request.url}\n".encode())


@pytest.mark.parametrize("option", ["", "option abortonclose"])
@pytest.mark.parametrize("how", ["half-close", "close"])
@pytest.mark.parametrize("mode", ["http", "tcp"])
def test_abortonclose_as_haproxy(mode, option, how):
    """A second client's request waits in the queue behind a slow one; it
    shuts its write side (or closes) there. Does it reach the server once the
    slot frees (in mode tcp: once the first client leaves), and what does a
    half-closed client read?"""
    with scripted_backend(_slow_first) as backend:
        cfg = PRELUDE + f"""
listen app
    mode {mode}
    bind 127.0.0.1:@PORT@
    timeout queue 5s
    {option}
    server s {backend.address} maxconn 1
"""

        def exercise(port):
            if mode == "tcp":
                time.sleep(0.3)  # the start-up probe's own server connection comes first
            before = (len(backend.requests), backend.connections)
            with socket.create_connection(("127.0.0.1", port), timeout=5) as first:
                first.sendall(b"GET /slow HTTP/1.1\r\nHost: h\r\n\r\n")
                assert _wait_for(lambda: len(backend.requests) > before[0], 3.0)
                second = socket.create_connection(("127.0.0.1", port), timeout=5)
                second.sendall(b"GET /queued HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
                time.sleep(0.2)  # in the queue by now: the slot is busy for a second
                if how == "close":
                    second.close()
                else:
                    second.shutdown(socket.SHUT_WR)
                assert exchange(first, b"").endswith(b"/slow\n")
            answer = b""
            if how == "half-close":
                while chunk := second.recv(65536):
                    answer += chunk
                second.close()
            # a request let through reaches the server within the second after
            _wait_for(lambda: len(backend.requests) > before[0] + 1, 1.0)
            return ([r.url for r in backend.requests[before[0]:]],
                    backend.connections - before[1], answer.split(b"\r\n", 1)[0])

        results = run_both(cfg, exercise)
    assert results["haply"] == results["haproxy"], results
    if option or how == "half-close":
        # Dropped with the option; forwarded without it (the client still reads).
        assert results["haply"][0] == (["/slow"] if option else ["/slow", "/queued"])
