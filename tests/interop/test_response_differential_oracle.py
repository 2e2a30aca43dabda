"""What a client receives when the server's answer is unusual, through haply
and through HAProxy 2.6 on the same configuration.

A scripted server answers each request with the bytes its path names (odd
status lines, interim answers, framing that HAProxy accepts or refuses); a
raw client sends a GET, HEAD or HTTP/1.0 request, reads what comes back and,
if the proxy keeps its connection, asks a second time on it. What is
compared: the status lines, the fields (names case-insensitively: HAProxy
lower-cases them), the body bytes, whether the connection stayed open, and
the answer to the second request.

A last test checks a few of the cases' points on HAProxy alone, so that a
change of the oracle shows. The differences haply keeps on purpose (hop-by-hop
fields, framing fields re-written, duplicate Content-Length) are named in
haply/http/framing.py and headers.py and are not among these cases.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time

import pytest

from tests.support.haply_process import PROXIES
from tests.support.haproxy_oracle import free_port, haproxy_available, run_haproxy
from tests.support.scripted_backend import scripted_backend

pytestmark = pytest.mark.skipif(not haproxy_available(), reason="HAProxy oracle not installed")

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
CHUNKED = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n"

# path: (what the server sends, as a list if in as many writes 50 ms apart,
# whether it closes after)
ANSWERS = {
    "plain": (OK, False),
    "chunked": (CHUNKED, False),
    "until-close": (b"HTTP/1.1 200 OK\r\n\r\nhello", True),
    "204-with-length": (b"HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n", False),
    "304-with-length": (b"HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\n", False),
    "103-early-hints": (b"HTTP/1.1 103 Early Hints\r\nLink: </a>; rel=preload\r\n\r\n" + OK, False),
    # interim answers that llhttp would take for the connection's end
    "100-connection-close": (b"HTTP/1.1 100 Continue\r\nConnection: close\r\n\r\n" + OK, False),
    "100-http10": (b"HTTP/1.0 100 Continue\r\n\r\n" + OK, False),
    "102-then-close": (b"HTTP/1.1 102 Processing\r\nConnection: close\r\n\r\n"
                       b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok", True),
    # an interim answer, then junk: the 100 goes out, then the 502
    "100-then-junk": (b"HTTP/1.1 100 Continue\r\n\r\nthis is not HTTP\r\n\r\n", True),
    # a switch of protocols the request did not ask for
    "101-unasked": (b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                    b"Connection: upgrade\r\n\r\nraw bytes", True),
    # minor versions above 1.1 are HTTP/1.1
    "http12": (b"HTTP/1.2 200 OK\r\nContent-Length: 2\r\n\r\nok", False),
    "http19-chunked": (b"HTTP/1.9 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n", False),
    # refused: the answer to HEAD is the 502's head alone
    "junk": (b"this is not HTTP\r\n\r\n", True),
    "nothing": (b"", True),
    "bad-length": (b"HTTP/1.1 200 OK\r\nContent-Length: -2\r\n\r\nok", True),
    # a transfer coding haply does not relay, even on an answer to HEAD
    "gzip-chunked": (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"
                     b"2\r\nok\r\n0\r\n\r\n", True),
    "chunked-gzip": (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\nok", True),
    "head-with-body": (OK, False),  # to HEAD: the proxies drop the "ok"
    # Heads llhttp refuses (haply.http.repair). Read as HAProxy reads them:
    # control characters kept in values, obs-fold joined (its CR and LF as
    # spaces), a bare LF as CRLF, tabs or spaces between the status line's
    # parts as one space (the reason phrase as sent)...
    "value-soh": (b"HTTP/1.1 200 OK\r\nX-A: a\x01b\r\nContent-Length: 2\r\n\r\nok", False),
    "value-del": (b"HTTP/1.1 200 OK\r\nX-A: a\x7fb\r\nContent-Length: 2\r\n\r\nok", False),
    "obs-fold": (b"HTTP/1.1 200 OK\r\nX-A: a\r\n b\r\nContent-Length: 2\r\n\r\nok", False),
    "obs-fold-htab": (b"HTTP/1.1 200 OK\r\nX-A: a\r\n\tb\r\n\t c\r\nContent-Length: 2\r\n\r\nok", False),
    "obs-fold-length": (b"HTTP/1.1 200 OK\r\nContent-Length:\r\n 2\r\n\r\nok", False),
    "htab-after-version": (b"HTTP/1.1\t200 OK\r\nContent-Length: 2\r\n\r\nok", False),
    "htab-after-status": (b"HTTP/1.1 200\tOK\r\nContent-Length: 2\r\n\r\nok", False),
    "spaces-in-status-line": (b"HTTP/1.1  200  OK\r\nContent-Length: 2\r\n\r\nok", False),
    "htab-in-reason": (b"HTTP/1.1 200 O\tK \r\nContent-Length: 2\r\n\r\nok", False),
    "bare-lf-status-line": (b"HTTP/1.1 200 OK\nContent-Length: 2\r\n\r\nok", False),
    "bare-lf-field": (b"HTTP/1.1 200 OK\r\nX-A: b\nContent-Length: 2\r\n\r\nok", False),
    "bare-lf-end": (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\nok", False),
    "bare-lf-all": (b"HTTP/1.1 200 OK\nX-A: b\nContent-Length: 2\n\nok", False),
    "bare-lf-chunked": (b"HTTP/1.1 200 OK\nTransfer-Encoding: chunked\n\n2\r\nok\r\n0\r\n\r\n", False),
    "bare-lf-until-close": (b"HTTP/1.1 200 OK\nX-A: b\n\nhello", True),
    "bare-lf-100": (b"HTTP/1.1 100 Continue\n\n" + OK, False),
    "bare-lf-after-100": (b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\nContent-Length: 2\n\nok", False),
    "bare-lf-304": (b"HTTP/1.1 304 Not Modified\nX-A: b\n\n", False),
    # ... and refused as HAProxy refuses them: 502
    "value-cr": (b"HTTP/1.1 200 OK\r\nX-A: a\rb\r\nContent-Length: 2\r\n\r\nok", True),
    "cr-ending-head": (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\r\nok", True),
    "name-soh": (b"HTTP/1.1 200 OK\r\nX-\x01A: b\r\nContent-Length: 2\r\n\r\nok", True),
    "name-del": (b"HTTP/1.1 200 OK\r\nX-\x7fA: b\r\nContent-Length: 2\r\n\r\nok", True),
    "name-space": (b"HTTP/1.1 200 OK\r\nX A: b\r\nContent-Length: 2\r\n\r\nok", True),
    "space-before-colon": (b"HTTP/1.1 200 OK\r\nX-A : b\r\nContent-Length: 2\r\n\r\nok", True),
    "htab-before-colon": (b"HTTP/1.1 200 OK\r\nX-A\t: b\r\nContent-Length: 2\r\n\r\nok", True),
    "space-before-colon-length": (b"HTTP/1.1 200 OK\r\nContent-Length : 2\r\n\r\nok", True),
    "space-before-colon-bare-lf": (b"HTTP/1.1 200 OK\nX-A : b\nContent-Length: 2\n\nok", True),
    "continued-status-line": (b"HTTP/1.1 200 OK\r\n X: y\r\nContent-Length: 2\r\n\r\nok", True),
    # junk that no line end follows: refused at once, not awaited
    "junk-unended": (b"\x16\x03\x01\x02\x00", False),
    "status-line-unended": (b"HTTP/1.1 2x0", False),
    # a head in two writes, what llhttp refuses in the second
    "split-bare-lf": ([b"HTTP/1.1 200 OK\r\nX-A: b\r\n", b"Content-Length: 2\n\nok"], False),
    "split-value-soh": ([b"HTTP/1.1 200 OK\r\n", b"X-A: a\x01b\r\nContent-Length: 2\r\n\r\nok"], False),
    "split-obs-fold": ([b"HTTP/1.1 200 OK\r\nX-A: a\r\n", b" b\r\nContent-Length: 2\r\n\r\nok"], False),
    "split-in-bare-lf-head": ([b"HTTP/1.1 200 OK\nX-A:", b" b\nContent-Length: 2\n\nok"], False),
    "split-space-before-colon": ([b"HTTP/1.1 200 OK\nX-A: b\n", b"X-B : c\n\nok"], True),
}
SECOND = b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nsecond"

CLIENTS = {
    "GET": b"GET /%s HTTP/1.1\r\nHost: h\r\n\r\n",
    "HEAD": b"HEAD /%s HTTP/1.1\r\nHost: h\r\n\r\n",
    "GET 1.0": b"GET /%s HTTP/1.0\r\n\r\n",
    "GET 1.0 keep-alive": b"GET /%s HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
}

CONFIG = """\
global
    maxconn 100

defaults
    mode http
    timeout connect 2s
    timeout client 5s
    timeout server 2s
    timeout http-request 2s
    # one attempt each: haply replays a junk answer by default, HAProxy does not
    retries 0

listen app
    bind 127.0.0.1:{port}
    server s {server}
"""


def answering(conn) -> None:
    while (request := conn.read_request()) is not None:
        name = request.url.lstrip("/")
        if name == "second":
            conn.send(SECOND)
            continue
        data, close = ANSWERS[name]
        for part in data if isinstance(data, list) else [data]:
            conn.send(part)
            time.sleep(0.05 if isinstance(data, list) else 0)
        if close:
            return


@pytest.fixture(scope="module")
def ports():
    """Both proxies, on one configuration, in front of the same server."""
    with scripted_backend(answering) as server, contextlib.ExitStack() as stack:
        found = {}
        for name, binary in PROXIES.items():
            port = free_port()
            stack.enter_context(run_haproxy(CONFIG.format(port=port, server=server.address),
                                            binary=binary))
            found[name] = port
        yield found


def read_until_quiet(sock: socket.socket, quiet: float) -> tuple[bytes, bool]:
    """What arrives until nothing more does for `quiet` seconds; and whether
    the peer closed."""
    sock.settimeout(quiet)
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
        return data, True
    except socket.timeout:
        return data, False
    except OSError:
        return data, True


def messages(data: bytes) -> tuple[list, bytes]:
    """The heads at the start of data ((status line, sorted (lower-cased name,
    value))), up to the first final one, and the bytes after it."""
    heads = []
    while data.startswith(b"HTTP/") and b"\r\n\r\n" in data:
        head, data = data.split(b"\r\n\r\n", 1)
        line, *fields = head.split(b"\r\n")
        heads.append((line, sorted((name.strip().lower(), value.strip())
                                   for name, _, value in (f.partition(b":") for f in fields))))
        if not line[9:10] == b"1":
            break
    return heads, data


def exchange(port: int, request: bytes) -> tuple:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(request)
        first, closed = read_until_quiet(sock, 0.4)
        second = None
        if not closed:
            with contextlib.suppress(OSError):
                sock.sendall(b"GET /second HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
            data, _ = read_until_quiet(sock, 3)
            second = messages(data)
    return messages(first), closed, second


def through_both(ports: dict, request: bytes) -> dict:
    """The same exchange with each proxy, at the same time."""
    results = {}
    threads = [threading.Thread(target=lambda name=name: results.__setitem__(
        name, exchange(ports[name], request))) for name in ports]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(15)
    return results


SAME = [(answer, client) for answer in ANSWERS for client in CLIENTS
        if answer != "head-with-body" or client == "HEAD"]


@pytest.mark.parametrize("answer,client", SAME)
def test_the_client_gets_what_haproxy_gives_it(ports, answer, client):
    results = through_both(ports, CLIENTS[client] % answer.encode())
    assert results["haply"] == results["haproxy"]


def test_the_oracle_still_does_what_the_cases_expect(ports):
    """A few of the cases' points, on HAProxy alone: if the oracle changes,
    the comparisons above may no longer test what they name."""
    (heads, body), closed, second = exchange(ports["haproxy"], CLIENTS["GET"] % b"100-connection-close")
    assert [line for line, _ in heads] == [b"HTTP/1.1 100 Continue", b"HTTP/1.1 200 OK"]
    assert body == b"ok" and not closed and second[0][0][0] == b"HTTP/1.1 200 OK"
    (heads, body), _, _ = exchange(ports["haproxy"], CLIENTS["HEAD"] % b"junk")
    assert heads[0][0] == b"HTTP/1.1 502 Bad Gateway" and body == b""
    (heads, _), _, _ = exchange(ports["haproxy"], CLIENTS["GET"] % b"101-unasked")
    assert heads[0][0] == b"HTTP/1.1 502 Bad Gateway"
    (heads, body), _, _ = exchange(ports["haproxy"], CLIENTS["GET"] % b"http12")
    assert heads[0][0] == b"HTTP/1.1 200 OK" and body == b"ok"
    (heads, _), _, _ = exchange(ports["haproxy"], CLIENTS["HEAD"] % b"gzip-chunked")
    assert heads[0][0] == b"HTTP/1.1 502 Bad Gateway"
    (heads, body), _, _ = exchange(ports["haproxy"], CLIENTS["GET"] % b"bare-lf-all")
    assert heads[0][0] == b"HTTP/1.1 200 OK" and (b"x-a", b"b") in heads[0][1] and body == b"ok"
    (heads, _), _, _ = exchange(ports["haproxy"], CLIENTS["GET"] % b"obs-fold")
    assert (b"x-a", b"a   b") in heads[0][1]
    (heads, _), _, _ = exchange(ports["haproxy"], CLIENTS["GET"] % b"value-soh")
    assert (b"x-a", b"a\x01b") in heads[0][1]
    (heads, _), _, _ = exchange(ports["haproxy"], CLIENTS["GET"] % b"htab-after-status")
    assert heads[0][0] == b"HTTP/1.1 200 OK"
    (heads, _), _, _ = exchange(ports["haproxy"], CLIENTS["GET"] % b"space-before-colon")
    assert heads[0][0] == b"HTTP/1.1 502 Bad Gateway"
    (heads, body), _, _ = exchange(ports["haproxy"], CLIENTS["GET"] % b"split-in-bare-lf-head")
    assert (b"x-a", b"b") in heads[0][1] and body == b"ok"


@pytest.mark.parametrize("first", ["value-soh", "bare-lf-all", "obs-fold"])
def test_a_head_read_again_leaves_the_next_one_strict(ports, first):
    """After an answer whose head llhttp refused and haply read again, the
    next answer on the same connections is read as strictly as any: a field
    with whitespace before its colon is still refused."""
    def ask(port):
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.sendall(CLIENTS["GET"] % first.encode())
            one, _ = read_until_quiet(sock, 0.4)
            sock.sendall(CLIENTS["GET"] % b"space-before-colon")
            two, _ = read_until_quiet(sock, 0.4)
        return messages(one), messages(two)

    results = {name: ask(port) for name, port in ports.items()}
    assert results["haproxy"][1][0][0][0] == b"HTTP/1.1 502 Bad Gateway"
    assert results["haply"] == results["haproxy"]


def answer_once(conn) -> None:
    """Answers a connection's first request, and closes on the next without
    answering: a server whose idle timeout fell as a request came."""
    if conn.read_request() is not None:
        conn.send(OK)
        conn.read_request()


def test_a_first_request_does_not_go_where_it_could_not_be_replayed():
    """With `retries 0` nothing can replay a request lost on an idle server
    connection that the server closed meanwhile: a client's first request
    then goes on a new connection, as HAProxy's default (`http-reuse safe`)
    sends it, and is answered instead of getting a 502."""
    def exercise(port):
        replies = []
        for _ in range(3):  # each on a new client connection, one after the other
            with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
                sock.sendall(b"GET /plain HTTP/1.1\r\nHost: h\r\n\r\n")
                reply, _ = read_until_quiet(sock, 0.3)
                replies.append(reply.split(b"\r\n", 1)[0])
            time.sleep(0.05)
        return replies

    results = {}
    for name, binary in PROXIES.items():
        with scripted_backend(answer_once) as server:
            port = free_port()
            with run_haproxy(CONFIG.format(port=port, server=server.address), binary=binary):
                results[name] = exercise(port)
    assert results["haproxy"] == [b"HTTP/1.1 200 OK"] * 3
    assert results["haply"] == results["haproxy"]
