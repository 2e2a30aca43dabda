"""Servers that misbehave, request after request, compared with HAProxy 2.6.

The server chooses what to do from the request's number: answer well, close
without answering, send junk, cut its body short, stay silent past `timeout
server`, send more body than it announced, send 100 Continue first, close
right after answering without saying so, break its chunked framing (in the
read that carries the head, or later), put spaces after a chunk size. One client asks in turn, on one
keep-alive connection while the proxy keeps it; what it sees of each
request (status, whether the body is the one asked for, whether the
connection stayed open) is the same through haply as through HAProxy.

Then many clients at once, through haply alone: no client ever gets an
answer meant for another request (the body names the request it answers),
and once they are done no session is left.
"""

from __future__ import annotations

import hashlib
import re
import socket
import threading
import time

import pytest

from tests.support.admin_cli import cli, stat_counts, wait_no_sessions, wait_socket
from tests.support.haply_process import PROXIES, run_haply
from tests.support.haproxy_oracle import (free_port, haproxy_available, haproxy_config, run_haproxy,
                                          with_stats_socket)
from tests.support.scripted_backend import scripted_backend

pytestmark = pytest.mark.skipif(not haproxy_available(), reason="HAProxy oracle not installed")

COUNTED = ("req_tot", "hrsp_1xx", "hrsp_2xx", "hrsp_5xx", "eresp", "srv_abrt", "cli_abrt", "wretr")
BEHAVIOURS = ("good", "close", "junk", "short-body", "silent", "extra-body", "continue", "good",
              "close-after", "good", "bad-chunk", "bad-chunk-later", "chunk-size-spaces")


def behaviour(number: int) -> str:
    return BEHAVIOURS[number % len(BEHAVIOURS)]


def answer_body(number: int, body: bytes) -> bytes:
    return f"answer {number} {hashlib.sha256(body).hexdigest()[:16]}\n".encode()


def misbehaving_server(conn) -> None:
    while (request := conn.read_request()) is not None:
        number = int(request.url.rsplit("/", 1)[1])
        body = answer_body(number, request.body)
        what = behaviour(number)
        if what == "close":
            return
        if what == "junk":
            conn.send(b"this is not HTTP\r\n\r\n")
            return
        if what == "short-body":
            conn.send(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body) + 50, body))
            return
        if what == "silent":
            time.sleep(1.3)  # past timeout server (1 s)
            return
        if what == "extra-body":
            conn.send(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%sHTTP/1.1 200 OK\r\n"
                      b"Content-Length: 17\r\n\r\nanswer 0 smuggled" % (len(body), body))
            continue
        if what.startswith(("bad-chunk", "chunk-")):
            head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
            if what == "chunk-size-spaces":
                conn.send(head + b"%x  \r\n%s\r\n0 \r\n\r\n" % (len(body), body))
                continue
            if what == "bad-chunk-later":
                conn.send(head + b"%x\r\n%s\r\n" % (len(body) - 1, body[:-1]))
                time.sleep(0.2)
                head = b""
            # a chunk's data longer than its size said, in the read with the head
            conn.send(head + b"1\r\nxy\r\n0\r\n\r\n")
            return
        if what == "continue":
            conn.send(b"HTTP/1.1 100 Continue\r\n\r\n")
        conn.respond(200, body)
        if what == "close-after":
            return


def request_bytes(number: int) -> tuple[bytes, bytes]:
    """Even numbers GET, odd ones POST a body; (request, the body)."""
    if number % 2 == 0:
        return b"GET /r/%d HTTP/1.1\r\nHost: h\r\n\r\n" % number, b""
    body = (b"%d-" % number) * (number * 37 % 500 + 1)
    return (b"POST /r/%d HTTP/1.1\r\nHost: h\r\nContent-Length: %d\r\n\r\n%s" % (number, len(body), body)), body


def read_head(sock: socket.socket, data: bytes) -> tuple[bytes, bytes] | None:
    """(head, what follows it), reading on from data; None if the peer closed first."""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return None
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    return head, rest


def read_answer(sock: socket.socket) -> tuple[int | None, bytes, bool]:
    """(status or None, body, complete) of one final answer framed by
    Content-Length or chunked, after any interim (1xx) ones."""
    body, status = b"", 100
    while 100 <= status < 200:
        parts = read_head(sock, body)
        if parts is None:
            return None, b"", False
        head, body = parts
        status = int(head.split(None, 2)[1])
    if re.search(rb"(?i)\r\ntransfer-encoding: *chunked", head):
        return (status, *read_chunked(sock, body))
    length = re.search(rb"(?i)\r\ncontent-length: *(\d+)", head)
    wanted = int(length.group(1)) if length else None
    while wanted is None or len(body) < wanted:
        chunk = sock.recv(65536)
        if not chunk:
            return status, body, wanted is None
        body += chunk
    return status, body[:wanted], True


def read_chunked(sock: socket.socket, data: bytes) -> tuple[bytes, bool]:
    """(body, complete) of a chunked body whose first bytes are data."""
    body = b""
    while True:
        while b"\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                return body, False
            data += chunk
        size_line, _, data = data.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        while len(data) < size + 2:
            chunk = sock.recv(65536)
            if not chunk:
                return body + data[:size], False
            data += chunk
        if size == 0:
            return body, data[:2] == b"\r\n"
        body, data = body + data[:size], data[size + 2:]


class Client:
    """One keep-alive connection at a time; a new one when the proxy closes it."""

    def __init__(self, port: int):
        self.port = port
        self.sock: socket.socket | None = None

    def ask(self, number: int) -> tuple:
        request, body = request_bytes(number)
        if self.sock is None:
            self.sock = socket.create_connection(("127.0.0.1", self.port), timeout=5)
        try:
            self.sock.sendall(request)
            status, answer, complete = read_answer(self.sock)
        except OSError as exc:
            status, answer, complete = type(exc).__name__, b"", False
        right = answer == answer_body(number, body)
        if status != 200 or not complete or not self.still_open():
            self.close()
            closed = True
        else:
            closed = False
        return behaviour(number), status, right, complete, closed

    def still_open(self) -> bool:
        """Whether the proxy kept the connection (no close pending on it)."""
        self.sock.settimeout(0.05)
        try:
            return self.sock.recv(1, socket.MSG_PEEK) != b""
        except socket.timeout:
            return True
        except OSError:
            return False
        finally:
            self.sock.settimeout(5)

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None


def proxy_config(port: int, server: str, retry_on: str = "") -> str:
    config = haproxy_config(f"""
frontend fe
    bind 127.0.0.1:{port}
    default_backend be
backend be
    retries 1
    {retry_on}
    server s1 {server}
""")
    return config.replace("timeout server 5s", "timeout server 1s")


def test_each_misbehaviour_seen_by_the_client_as_through_haproxy(tmp_path):
    seen, counted = {}, {}
    for name, binary in PROXIES.items():
        with scripted_backend(misbehaving_server) as server:
            port = free_port()
            socket_path = str(tmp_path / f"{name}.sock")
            # HAProxy's retry policy for both (haply's own replays more)
            config = with_stats_socket(proxy_config(port, server.address, "retry-on conn-failure"),
                                       socket_path)
            with run_haproxy(config, binary):
                wait_socket(socket_path)
                client = Client(port)
                seen[name] = [client.ask(number) for number in range(1, 31)]
                client.close()
                wait_no_sessions(socket_path)
                counted[name] = stat_counts(socket_path, ("be",), COUNTED)
    # the servers' and the backend's counts too (requests, answers by class, errors, aborts)
    assert counted["haply"] == counted["haproxy"]
    by_behaviour = {}
    for outcome in seen["haproxy"]:
        by_behaviour.setdefault(outcome[0], set()).add(outcome[1:])
    # what HAProxy does, so that a change of the oracle's behaviour shows
    assert by_behaviour["good"] == {(200, True, True, False)}
    # a server closing on a request that is not the client connection's first
    # gets the client no answer: it retries, as after a keep-alive race
    assert by_behaviour["close"] == {(502, False, True, True), (None, False, False, True)}
    assert by_behaviour["silent"] == {(504, False, True, True)}
    assert by_behaviour["continue"] == {(200, True, True, False)}
    # a body that breaks its framing in the read with the head: the head is
    # not sent, the client gets a 502; later, the answer is cut off
    assert by_behaviour["bad-chunk"] == {(502, False, True, True)}
    assert by_behaviour["bad-chunk-later"] == {(200, False, False, True)}
    assert by_behaviour["chunk-size-spaces"] == {(200, True, True, False)}
    for number, (ours, theirs) in enumerate(zip(seen["haply"], seen["haproxy"]), start=1):
        assert ours == theirs, (number, ours, theirs)


def test_many_clients_never_get_an_answer_meant_for_another(tmp_path):
    first = free_port()
    socket_path = str(tmp_path / "stats.sock")
    with scripted_backend(misbehaving_server) as one, scripted_backend(misbehaving_server) as two:
        config = proxy_config(first, one.address) + f"    server s2 {two.address}\n"
        config = with_stats_socket(config, socket_path)
        with run_haply(config):
            wait_socket(socket_path)
            wrong: list[tuple] = []
            counts: dict[str, int] = {}
            lock = threading.Lock()

            def run(offset: int) -> None:
                client = Client(first)
                deadline = time.monotonic() + 60
                for number in range(offset, offset + 8 * 60, 8):
                    if time.monotonic() > deadline:
                        break
                    what, status, right, complete, closed = client.ask(number)
                    with lock:
                        counts[what] = counts.get(what, 0) + 1
                        if status == 200 and complete and not right:
                            wrong.append((number, what))
                        if what in ("good", "continue", "close-after", "extra-body",
                                    "chunk-size-spaces") and \
                                not (status == 200 and right):
                            wrong.append((number, what, status))
                client.close()

            threads = [threading.Thread(target=run, args=(offset,)) for offset in range(1, 9)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(90)
            assert not any(thread.is_alive() for thread in threads)
            assert wrong == []
            assert sum(counts.values()) == 8 * 60
            deadline = time.monotonic() + 10
            while (current := cli(socket_path, "show info")) and "CurrConns: 0" not in current:
                assert time.monotonic() < deadline, current
                time.sleep(0.2)


NO_BODY_ANSWERS = {
    "204": b"HTTP/1.1 204 No Content\r\nContent-Length: 5\r\nX-Kept: yes\r\n\r\n",
    "304": b"HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\nX-Kept: yes\r\n\r\n",
    "103": b"HTTP/1.1 103 Early Hints\r\nContent-Length: 5\r\nLink: </a>\r\n\r\n"
           b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
}


def answers_without_body(conn) -> None:
    while (request := conn.read_request()) is not None:
        conn.send(NO_BODY_ANSWERS[request.url.strip("/")])


def test_framing_fields_of_answers_without_body_as_haproxy():
    """A 1xx or 204 may not carry Content-Length (RFC 9110 §8.6): it is
    removed, as HAProxy removes it; a 304's describes the representation and
    stays."""
    seen = {}
    for name, binary in PROXIES.items():
        with scripted_backend(answers_without_body) as server:
            port = free_port()
            with run_haproxy(proxy_config(port, server.address), binary), \
                    socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
                sock.settimeout(1)
                received = b""
                for status in NO_BODY_ANSWERS:
                    sock.sendall(b"GET /%s HTTP/1.1\r\nHost: h\r\n\r\n" % status.encode())
                    try:
                        while not received.endswith((b"\r\n\r\n", b"hello")):
                            received += sock.recv(65536)
                    except socket.timeout:
                        pass
                    received += b"|"
                seen[name] = [line.lower() for line in received.split(b"\r\n")
                              if line.lower().startswith((b"http/", b"content-length", b"x-kept", b"link"))]
    assert seen["haproxy"].count(b"content-length: 5") == 2  # the 304's and the final 200's
    assert seen["haply"] == seen["haproxy"]
