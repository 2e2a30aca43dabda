"""Real servers for health-check tests, each on 127.0.0.1 in its own thread.

The servers run on an event loop in a background thread, so the loop under
test (the checker's) shares nothing with them but the kernel's sockets. Each can
be stopped (listening socket closed, connections reset) and started again on
the same port, the way a crashed and restarted API worker looks to a checker.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import threading
from typing import Awaitable, Callable

from tests.support.ports import free_port

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


class BackendThread:
    """An event loop in a thread that hosts any number of small servers."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()

    def run(self, coro, timeout: float = 5.0):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        async def _cancel_all():
            for task in asyncio.all_tasks():
                if task is not asyncio.current_task():
                    task.cancel()
        try:
            self.run(_cancel_all())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(5)
            self.loop.close()


class Backend:
    """One listening server on a BackendThread; stop() and start() keep the port."""

    def __init__(self, thread: BackendThread, handler: Handler,
                 ssl_context: ssl.SSLContext | None = None, port: int = 0) -> None:
        self.thread = thread
        self.handler = handler
        self.ssl_context = ssl_context
        self.port = port
        self.connections = 0
        self._server: asyncio.base_events.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def _handle(self, reader, writer) -> None:
        self.connections += 1
        self._writers.add(writer)
        try:
            await self.handler(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError,
                asyncio.CancelledError):
            pass  # the server is being stopped, or the checker hung up
        finally:
            self._writers.discard(writer)
            writer.close()

    def start(self) -> "Backend":
        async def _start():
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(("127.0.0.1", self.port))
            self.port = sock.getsockname()[1]
            self._server = await asyncio.start_server(self._handle, sock=sock,
                                                      ssl=self.ssl_context)
        self.thread.run(_start())
        return self

    def stop(self) -> None:
        async def _stop():
            if self._server is not None:
                self._server.close()
                self._server = None
            for writer in list(self._writers):
                writer.transport.abort()
        self.thread.run(_stop())


# ------------------------------------------------------------------ handlers


class HttpHealth:
    """/healthcheck answers `status` (switchable); other paths 404."""

    REASONS = {200: "OK", 404: "Not Found", 500: "Internal Server Error",
               503: "Service Unavailable"}

    def __init__(self, status: int = 200, body: bytes = b"ok\n") -> None:
        self.status = status
        self.body = body
        self.requests: list[bytes] = []

    async def __call__(self, reader, writer) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        self.requests.append(head)
        line = head.split(b"\r\n", 1)[0].split()
        path = line[1] if len(line) > 1 else b"/"
        status = self.status if path.startswith(b"/healthcheck") or path == b"/" else 404
        body = self.body if status == self.status else b""
        writer.write(b"HTTP/1.0 %d %s\r\nContent-Length: %d\r\n\r\n%s" % (
            status, self.REASONS.get(status, "X").encode(), len(body), body))
        await writer.drain()


async def black_hole(reader, writer) -> None:
    """Accept and never answer: the check must time out."""
    await asyncio.sleep(3600)


class Banner:
    """Send a banner on connect, then answer lines from a table (Redis/AMQP style)."""

    def __init__(self, banner: bytes = b"", replies: dict[bytes, bytes] | None = None) -> None:
        self.banner = banner
        self.replies = replies or {}

    async def __call__(self, reader, writer) -> None:
        if self.banner:
            writer.write(self.banner)
            await writer.drain()
        while True:
            line = await reader.readline()
            if not line:
                return
            reply = self.replies.get(line.strip())
            if reply is not None:
                writer.write(reply)
                await writer.drain()


class Agent:
    """An agent-check server: one line per connection, switchable."""

    def __init__(self, reply: str = "up 100%") -> None:
        self.reply = reply

    async def __call__(self, reader, writer) -> None:
        writer.write(self.reply.encode() + b"\n")
        await writer.drain()


class ClusterCheck:
    """clustercheck-style responder (Galera, port 9200): 200 when synced, 503 not."""

    def __init__(self, synced: bool = True) -> None:
        self.synced = synced

    async def __call__(self, reader, writer) -> None:
        await reader.readuntil(b"\r\n\r\n")
        if self.synced:
            body = b"Galera cluster node is synced.\r\n"
            status = b"200 OK"
        else:
            body = b"Galera cluster node is not synced.\r\n"
            status = b"503 Service Unavailable"
        writer.write(b"HTTP/1.1 " + status + b"\r\nContent-Type: text/plain\r\n"
                     b"Connection: close\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
        await writer.drain()


def closed_port() -> int:
    """A loopback port with nothing listening (bound then released)."""
    return free_port()


class SmtpServer:
    """The server side of an SMTP session's opening (RFC 5321 4.2-4.3): a
    greeting, a reply to HELO/EHLO, 221 to QUIT. Its replies are switchable,
    to play a busy relay (421 greeting) or one refusing the client (550)."""

    def __init__(self, greeting: bytes = b"220 mail.example.org ESMTP ready\r\n",
                 hello_reply: bytes = b"250-mail.example.org\r\n250 8BITMIME\r\n") -> None:
        self.greeting = greeting
        self.hello_reply = hello_reply
        self.commands: list[bytes] = []

    async def __call__(self, reader, writer) -> None:
        writer.write(self.greeting)
        await writer.drain()
        while True:
            line = await reader.readline()
            if not line:
                return
            self.commands.append(line)
            verb = line[:4].upper()
            if verb in (b"HELO", b"EHLO"):
                writer.write(self.hello_reply)
            elif verb == b"QUIT":
                writer.write(b"221 2.0.0 Bye\r\n")
                await writer.drain()
                return
            else:
                writer.write(b"502 5.5.2 Command not recognized\r\n")
            await writer.drain()


class PgsqlServer:
    """The first exchange of the PostgreSQL protocol: read the StartupMessage,
    answer an authentication request (MD5, as a server with `md5` in
    pg_hba.conf does) or, with `reject`, the FATAL ErrorResponse a server
    sends a host pg_hba.conf does not let in. Then wait for the client."""

    def __init__(self, reject: bool = False) -> None:
        self.reject = reject
        self.users: list[str] = []

    async def __call__(self, reader, writer) -> None:
        length = int.from_bytes(await reader.readexactly(4), "big")
        body = await reader.readexactly(length - 4)
        fields = body[4:].split(b"\x00")
        params = dict(zip(fields[0::2], fields[1::2]))
        self.users.append(params.get(b"user", b"").decode())
        if self.reject:
            message = (b"SFATAL\x00VFATAL\x00C28000\x00Mno pg_hba.conf entry for host "
                       b"\"127.0.0.1\", user \"" + params.get(b"user", b"") + b"\"\x00\x00")
            writer.write(b"E" + (4 + len(message)).to_bytes(4, "big") + message)
        else:
            writer.write(b"R\x00\x00\x00\x0c\x00\x00\x00\x05salt")
        await writer.drain()
        await reader.read(1)  # until the client goes


class LdapServer:
    """Answers an LDAP BindRequest (RFC 4511 4.2) with a BindResponse carrying
    `result` (0 success, 49 invalidCredentials, 53 unwillingToPerform, ...)
    for the request's message ID. BER lengths are taken short-form, as the
    bind requests checks send are."""

    def __init__(self, result: int = 0) -> None:
        self.result = result
        self.requests: list[bytes] = []

    async def __call__(self, reader, writer) -> None:
        head = await reader.readexactly(2)
        request = head + await reader.readexactly(head[1])
        self.requests.append(request)
        message_id = request[4]  # 30 LL 02 01 ID
        op = bytes([0x0A, 1, self.result, 4, 0, 4, 0])
        body = bytes([2, 1, message_id, 0x61, len(op)]) + op
        writer.write(bytes([0x30, len(body)]) + body)
        await writer.drain()
        await reader.read(1)
