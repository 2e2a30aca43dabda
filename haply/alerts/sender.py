"""E-mail alerts on the wire: one queue per mailer, one SMTP connection at a
time, never in the proxy's way.

A change to mail becomes one `Mail` per mailer of the proxy's mailers
section (HAProxy sends each mailer its copy). Each mailer's queue sends its
mails one after the other; each gets `timeout mail` from the connection to
the end of the dialogue, after which the connection is dropped, the failure
logged and the next mail tried. A mailer that cannot keep up loses the mails
past MAX_PENDING_MAILS, with a log line, rather than haply's memory.

On a stop or a reload the process sends what is queued before it exits
(EmailAlerts.flush), within the stop's grace period, while its listeners are
already closed: a server that went down just before a reload is still
mailed, and the new workers, which inherit its state, do not mail it again.
A mailer that fails then gets no further try: the rest of its queue is
dropped with a log line, so a dead mailer holds a stopping process up for one
`timeout mail` at most.

The dialogue itself is haply.alerts.smtp (pure); SmtpClient only carries its
bytes. In master-worker mode only the worker that runs the health checks
mails (haply.proxy.engine), so each change is mailed once.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import os
import socket
import time
from dataclasses import dataclass

from haply.alerts import message
from haply.alerts.smtp import MailDialogue, ReplyReader, SmtpError
from haply.logs.events import admin_message
from haply.runtime.registry import DRAIN, READY

log = logging.getLogger("haply.alerts")

# Alerts waiting for one mailer. A server flapping every check interval on a
# busy backend makes a few changes a second; a hundred covers minutes of a
# mailer being slow without holding more than some kilobytes each.
MAX_PENDING_MAILS = 100


@dataclass(frozen=True, slots=True)
class Mail:
    proxy: str
    helo_name: str
    sender: str
    recipient: str
    data: bytes  # the message, as DATA sends it (message.compose)

    def dialogue(self) -> MailDialogue:
        return MailDialogue(self.helo_name, self.sender, self.recipient, self.data)


class SmtpClient(asyncio.Protocol):
    """Carries one dialogue's bytes; `finished` resolves when it is over."""

    def __init__(self, dialogue: MailDialogue, finished: asyncio.Future) -> None:
        self.dialogue = dialogue
        self.finished = finished
        self.reader = ReplyReader()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        try:
            for reply in self.reader.feed(data):
                out = self.dialogue.receive(reply)
                if out is None:
                    self.transport.close()
                    self._finish()
                    return
                self.transport.write(out)
        except SmtpError as error:
            # HAProxy resets the connection on a reply it did not expect
            if self.dialogue.failed is None:
                self.dialogue.fail(error)
            self.transport.abort()
            self._finish()

    def eof_received(self) -> bool:
        return False  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.dialogue.done:
            reason = f": {exc}" if exc else ""
            self.dialogue.fail(SmtpError(f"connection closed by the mailer while waiting for "
                                         f"{self.dialogue.awaited}{reason}"))
        self._finish()

    def _finish(self) -> None:
        if not self.finished.done():
            self.finished.set_result(None)


class MailerQueue:
    """The mails waiting for one mailer, sent one at a time."""

    def __init__(self, loop: asyncio.AbstractEventLoop, section: str, mailer, timeout: float) -> None:
        self.loop = loop
        self.name = f"{section}/{mailer.name}"
        self.host, self.port = mailer.host, mailer.port
        self.timeout = timeout
        self.pending: collections.deque[Mail] = collections.deque()
        self.task: asyncio.Task | None = None
        self.sent = 0
        self.failed = 0
        self.dropped = 0
        self.stopping = False  # the process is stopping: a failure ends the queue

    def put(self, mail: Mail) -> bool:
        if len(self.pending) >= MAX_PENDING_MAILS:
            self.dropped += 1
            log.warning("email alert of proxy '%s' for mailer %s dropped: %d alerts already wait for it",
                        mail.proxy, self.name, len(self.pending))
            return False
        self.pending.append(mail)
        if self.task is None:
            self.task = self.loop.create_task(self._run())
        return True

    async def _run(self) -> None:
        try:
            while self.pending:
                dialogue = await self.send(self.pending.popleft())
                if self.stopping and not dialogue.accepted:
                    self._drop_pending("its mailer failed while stopping")
        finally:
            self.task = None

    def _drop_pending(self, why: str, in_flight: int = 0) -> None:
        count = len(self.pending) + in_flight
        self.pending.clear()
        if count:
            log.warning("%d email alert(s) for mailer %s not sent: %s", count, self.name, why)

    async def send(self, mail: Mail) -> MailDialogue:
        dialogue = mail.dialogue()
        finished = self.loop.create_future()
        transport = None
        try:
            async with asyncio.timeout(self.timeout):
                transport, _ = await self.loop.create_connection(
                    lambda: SmtpClient(dialogue, finished), self.host, self.port)
                await finished
        except TimeoutError:
            what = "the connection" if transport is None else dialogue.awaited
            dialogue.fail(SmtpError(f"timeout mail ({self.timeout:g}s) expired waiting for {what}"))
        except OSError as error:
            reason = os.strerror(error.errno) if error.errno else str(error)
            dialogue.fail(SmtpError(f"cannot connect to {self.host}:{self.port}: {reason}"))
        finally:
            if transport is not None and not transport.is_closing():
                transport.abort()
        if dialogue.accepted:
            self.sent += 1
        else:
            self.failed += 1
            log.warning("email alert of proxy '%s' to mailer %s not sent: %s", mail.proxy, self.name,
                        dialogue.failed)
        return dialogue

    async def close(self) -> None:
        """Stop sending: the mail being sent and those waiting are dropped,
        and said so."""
        self._drop_pending("stopped", in_flight=self.task is not None)
        if self.task is not None:
            self.task.cancel()
            try:
                await self.task
            except asyncio.CancelledError:
                pass


class EmailAlerts:
    """Each proxy's `email-alert` settings and the queues of their mailers."""

    def __init__(self, config, loop: asyncio.AbstractEventLoop, hostname: str | None = None,
                 clock=time.time) -> None:
        self.clock = clock
        self.hostname = hostname or socket.gethostname()
        self.settings = {proxy.name: proxy.email_alert for proxy in config.proxies
                         if proxy.email_alert is not None}
        self.queues: dict[str, list[MailerQueue]] = {
            section.name: [MailerQueue(loop, section.name, mailer, section.timeout)
                           for mailer in section.mailers]
            for section in config.mailers}

    @classmethod
    def for_config(cls, config, loop: asyncio.AbstractEventLoop) -> "EmailAlerts | None":
        """None when no proxy mails: nothing is subscribed then."""
        if not any(proxy.email_alert is not None for proxy in config.proxies):
            return None
        return cls(config, loop)

    def alert(self, proxy: str, level: str, log_line: str) -> int:
        """Mail one logged change of a proxy's server; how many mails were queued."""
        settings = self.settings.get(proxy)
        if settings is None or not message.wanted(level, settings.level):
            return 0
        text = message.alert_text(log_line)
        data = message.compose(settings.sender, settings.recipient, text, self.clock())
        mail = Mail(proxy, settings.myhostname or self.hostname, settings.sender, settings.recipient, data)
        return sum(queue.put(mail) for queue in self.queues.get(settings.mailers, ()))

    # -- the sources of changes

    def server_event(self, event) -> None:
        """A server went UP or DOWN (HealthChecker.subscribe)."""
        self.alert(event.backend, message.UP_LEVEL if event.up else message.DOWN_LEVEL, event.message)

    def check_line(self, backend: str, line: str) -> None:
        """A health check line of `option log-health-checks` (HealthChecker.subscribe_checks)."""
        self.alert(backend, message.CHECK_LEVEL, line)

    def admin_event(self, state, before: str, after: str, servers) -> None:
        """An operator changed a server's state (runtime API, stats page).
        HAProxy 2.6 mails a server entering drain, not maintenance nor the
        way back (observed)."""
        if after == DRAIN and before == READY:
            found = admin_message(state, before, after, servers)
            if found is not None:
                self.alert(state.backend, message.DRAIN_LEVEL, found[1])

    async def flush(self) -> None:
        """Return once every queue is empty: what waits is sent, each mail
        within its mailers' `timeout mail` (a stop's part; its caller bounds
        the whole by the grace period, then closes)."""
        queues = [queue for queues in self.queues.values() for queue in queues]
        for queue in queues:
            queue.stopping = True
        # a check may queue a mail while others are sent: look again
        while busy := [queue.task for queue in queues if queue.task is not None]:
            await asyncio.wait(busy)

    async def close(self) -> None:
        """Stop sending; what is not sent yet is dropped (and logged)."""
        for queues in self.queues.values():
            for queue in queues:
                await queue.close()


__all__ = ["EmailAlerts", "MAX_PENDING_MAILS", "Mail", "MailerQueue", "SmtpClient"]
