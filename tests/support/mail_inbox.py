"""SMTP servers on 127.0.0.1 that keep what the proxies mail them.

`Inbox` is an aiosmtpd handler (a real SMTP server, aiosmtpd being a test
extra); `smtp_server()` serves one on a BackendThread. `SlowMailer` is a
minimal SMTP server of its own that waits before its greeting, to hold a
proxy's mails in its queue for a known time.
"""

from __future__ import annotations

import asyncio
import time

from tests.support.health_backends import BackendThread


class Inbox:
    """What one SMTP server received: each mail's envelope and lines."""

    def __init__(self) -> None:
        self.mails: list[dict] = []

    async def handle_DATA(self, server, session, envelope):
        self.mails.append({
            "hello": ("EHLO" if session.extended_smtp else "HELO", session.host_name),
            "from": envelope.mail_from, "to": list(envelope.rcpt_tos),
            "lines": envelope.original_content.decode().split("\r\n"),
        })
        return "250 2.0.0 Ok: queued"

    def subjects(self) -> list[str]:
        return [line for mail in self.mails for line in mail["lines"] if line.startswith("Subject: ")]


def smtp_server(thread: BackendThread, inbox: Inbox) -> tuple[object, int]:
    """An aiosmtpd server for inbox on thread: (server, port)."""
    from aiosmtpd import smtp  # a test extra: missing, the test fails

    async def start():
        loop = asyncio.get_running_loop()
        server = await loop.create_server(lambda: smtp.SMTP(inbox), "127.0.0.1", 0)
        return server, server.sockets[0].getsockname()[1]
    return thread.run(start())


class SlowMailer:
    """Greets each connection `delay` seconds after accepting it (never, with
    delay None), then takes any mail. Keeps each connection's and each mail's
    time (time.monotonic) and each mail's Subject line."""

    def __init__(self, thread: BackendThread, delay: float | None) -> None:
        self.delay = delay
        self.connected: list[float] = []
        self.mails: list[tuple[float, str]] = []
        self.server = thread.run(asyncio.start_server(self._serve, "127.0.0.1", 0))
        self.port = self.server.sockets[0].getsockname()[1]

    def subjects(self) -> list[str]:
        return [subject for _, subject in self.mails]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connected.append(time.monotonic())
        try:
            if self.delay is None:
                await reader.read()  # until the client gives up
                return
            await asyncio.sleep(self.delay)
            writer.write(b"220 slow.example ESMTP\r\n")
            body: list[str] | None = None
            while line := await reader.readline():
                if body is not None:
                    if line == b".\r\n":
                        subject = next((l for l in body if l.startswith("Subject: ")), "")
                        self.mails.append((time.monotonic(), subject))
                        body = None
                        writer.write(b"250 2.0.0 Ok: queued\r\n")
                    else:
                        body.append(line.decode().rstrip("\r\n"))
                elif line[:4].upper() == b"DATA":
                    body = []
                    writer.write(b"354 End data with <CR><LF>.<CR><LF>\r\n")
                elif line[:4].upper() == b"QUIT":
                    writer.write(b"221 2.0.0 Bye\r\n")
                    await writer.drain()
                    return
                else:
                    writer.write(b"250 2.0.0 Ok\r\n")
        except (ConnectionError, asyncio.CancelledError):
            pass  # the proxy gave up, or the test's loop is closing
        finally:
            writer.close()

    def close(self) -> None:
        self.server.close()
