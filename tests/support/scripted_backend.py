"""A TCP server on 127.0.0.1 whose every connection is handled by a test function.

Proxy tests need servers that misbehave on purpose (close before answering, never
answer, answer 101 and echo raw bytes, stream a body slowly) and servers that report
exactly what reached them (head, decoded body, number of connections). A handler is
a plain function `handler(conn: Conn)`, run in its own thread per connection;
`Conn.read_request()` parses one request with httptools, chunked bodies included.
"""

from __future__ import annotations

import contextlib
import hashlib
import socket
import threading
from dataclasses import dataclass, field
from typing import Callable, Iterator

import httptools

# Every blocking read in a handler gives up after this long, so a broken test can
# never hang the suite.
HANDLER_TIMEOUT = 10.0


@dataclass
class Request:
    method: str
    url: str
    version: str
    headers: list[tuple[str, str]]
    body: bytes
    raw_head: bytes = b""

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key.lower() == name.lower():
                return value
        return None

    def headers_named(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k.lower() == name.lower()]


class _RequestReader:
    def __init__(self):
        self.parser = httptools.HttpRequestParser(self)
        self.done: list[Request] = []
        self.url = b""
        self.headers: list[tuple[str, str]] = []
        self.body: list[bytes] = []
        self.headers_done = False

    def on_message_begin(self):
        self.url = b""
        self.headers = []
        self.body = []
        self.headers_done = False

    def on_url(self, url):
        self.url += url

    def on_header(self, name, value):
        self.headers.append((name.decode("latin-1"), value.decode("latin-1")))

    def on_headers_complete(self):
        self.headers_done = True

    def on_body(self, body):
        self.body.append(body)

    def on_message_complete(self):
        self.headers_done = False  # of the next request, not yet begun
        self.done.append(Request(self.parser.get_method().decode(), self.url.decode("latin-1"),
                                 self.parser.get_http_version(), self.headers,
                                 b"".join(self.body)))


class Conn:
    def __init__(self, sock: socket.socket, server: "ScriptedBackend"):
        self.sock = sock
        self.server = server
        self.reader = _RequestReader()
        self.leftover = b""

    def read_request(self, until_head_only: bool = False) -> Request | None:
        """The next request on this connection, or None if the peer closed."""
        reader = self.reader
        while not reader.done:
            if until_head_only and reader.headers_done:
                return Request(reader.parser.get_method().decode(), reader.url.decode(),
                               reader.parser.get_http_version(), reader.headers, b"")
            try:
                data = self.sock.recv(65536)
            except (ConnectionError, TimeoutError, OSError):
                return None
            if not data:
                return None
            try:
                reader.parser.feed_data(data)
            except httptools.HttpParserUpgrade as upgrade:
                self.leftover = data[upgrade.args[0]:]
                reader.done.clear()  # returned here, not again
                return Request(reader.parser.get_method().decode(), reader.url.decode(),
                               reader.parser.get_http_version(), reader.headers, b"")
        request = reader.done.pop(0)
        self.server.record(request)
        return request

    def http_again(self) -> None:
        """After refusing an upgrade: what follows is HTTP again, read by a
        new parser from the bytes that came after the upgrade request."""
        self.reader = _RequestReader()
        rest, self.leftover = self.leftover, b""
        if rest:
            self.reader.parser.feed_data(rest)

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def respond(self, status: int = 200, body: bytes = b"", headers: list[tuple[str, str]] = (),
                reason: str = "OK") -> None:
        lines = [f"HTTP/1.1 {status} {reason}"]
        names = {k.lower() for k, _ in headers}
        lines += [f"{k}: {v}" for k, v in headers]
        if "content-length" not in names and "transfer-encoding" not in names:
            lines.append(f"Content-Length: {len(body)}")
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode() + body)

    def recv(self, size: int = 65536) -> bytes:
        if self.leftover:
            data, self.leftover = self.leftover, b""
            return data
        return self.sock.recv(size)


@dataclass
class ScriptedBackend:
    handler: Callable[[Conn], None]
    name: str = "backend"
    host: str = "127.0.0.1"
    port: int = 0
    connections: int = 0
    requests: list[Request] = field(default_factory=list)
    _sock: socket.socket | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _stopped: bool = False

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def record(self, request: Request) -> None:
        with self._lock:
            self.requests.append(request)

    def start(self) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self.port))
        sock.listen(512)
        self.port = sock.getsockname()[1]
        self._sock = sock
        threading.Thread(target=self._accept_loop, daemon=True).start()

    def _accept_loop(self) -> None:
        while not self._stopped:
            try:
                client, _ = self._sock.accept()
            except OSError:
                return
            with self._lock:
                self.connections += 1
            client.settimeout(HANDLER_TIMEOUT)
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        try:
            self.handler(Conn(client, self))
        except (OSError, ConnectionError):
            pass
        finally:
            with contextlib.suppress(OSError):
                client.close()

    def stop(self) -> None:
        self._stopped = True
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.shutdown(socket.SHUT_RDWR)
            self._sock.close()


@contextlib.contextmanager
def scripted_backend(handler: Callable[[Conn], None], name: str = "backend") -> Iterator[ScriptedBackend]:
    backend = ScriptedBackend(handler, name)
    backend.start()
    try:
        yield backend
    finally:
        backend.stop()


# ------------------------------------------------------------- common handlers


def keepalive_echo(conn: Conn) -> None:
    """Answer every request with its name, method, path, body length and digest."""
    while True:
        request = conn.read_request()
        if request is None:
            return
        digest = hashlib.sha256(request.body).hexdigest()
        body = f"{conn.server.name} {request.method} {request.url} {len(request.body)} {digest}\n".encode()
        if request.method == "HEAD":
            conn.send(f"HTTP/1.1 200 OK\r\nContent-Length: {len(body)}\r\n\r\n".encode())
        else:
            conn.respond(200, body)
        if (request.header("Connection") or "").lower() == "close":
            return


def close_without_answer(conn: Conn) -> None:
    """Read the request and close: what a controller killed mid-request looks like."""
    conn.read_request()
