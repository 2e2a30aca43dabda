"""E-mail alerts on real sockets (haply.alerts.sender): a real SMTP server
(aiosmtpd) receives them; a mailer that refuses, says nothing or says no is
given up, logged, and the next mail still goes; the queue is bounded."""

from __future__ import annotations

import asyncio
import logging
import socket

from aiosmtpd import smtp as aiosmtpd

from haply.alerts.sender import MAX_PENDING_MAILS, EmailAlerts, Mail, MailerQueue
from haply.config.model import Config, EmailAlert, Mailer, MailersSection, Proxy


class Inbox:
    """aiosmtpd handler keeping each envelope with the HELO name."""

    def __init__(self) -> None:
        self.mails: list[tuple[str, str, list[str], bytes]] = []
        self.arrived = asyncio.Event()

    async def handle_DATA(self, server, session, envelope):
        self.mails.append((session.host_name, envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
        self.arrived.set()
        return "250 OK"


async def smtp_server(inbox: Inbox):
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: aiosmtpd.SMTP(inbox), "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


async def silent_server():
    """Accepts and never says a word."""
    held = []

    def accepted():
        protocol = asyncio.Protocol()
        held.append(protocol)
        return protocol
    server = await asyncio.get_running_loop().create_server(accepted, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def config(ports: list[int], timeout: float = 2.0, level: str = "alert") -> Config:
    mailers = tuple(Mailer(f"smtp{n}", "127.0.0.1", port) for n, port in enumerate(ports, 1))
    alert = EmailAlert("ops", "haproxy@example.org", "ops@example.org", level, "lb1.example.org")
    return Config(proxies=(Proxy("app", "backend", email_alert=alert), Proxy("quiet", "backend")),
                  mailers=(MailersSection("ops", mailers, timeout),))


async def drained(alerts: EmailAlerts, bound: float = 5.0) -> None:
    async with asyncio.timeout(bound):
        while any(queue.task is not None for queues in alerts.queues.values() for queue in queues):
            await asyncio.sleep(0.01)


def test_each_mailer_gets_its_copy_and_levels_filter(caplog):
    async def main():
        first, second = Inbox(), Inbox()
        server1, port1 = await smtp_server(first)
        server2, port2 = await smtp_server(second)
        alerts = EmailAlerts(config([port1, port2]), asyncio.get_running_loop(), clock=lambda: 0.0)
        assert alerts.alert("app", "alert", "Server app/s1 is DOWN. 0 active and 0 backup servers left.") == 2
        assert alerts.alert("app", "notice", "Server app/s1 is UP.") == 0  # level alert: DOWN only
        assert alerts.alert("quiet", "alert", "Server quiet/s1 is DOWN.") == 0  # no email-alert
        await drained(alerts)
        await alerts.close()
        server1.close()
        server2.close()
        return first.mails, second.mails
    first, second = asyncio.run(main())
    assert first == second and len(first) == 1
    helo, sender, recipients, content = first[0]
    assert (helo, sender, recipients) == ("lb1.example.org", "haproxy@example.org", ["ops@example.org"])
    lines = content.split(b"\r\n")
    assert lines[0:2] == [b"From: haproxy@example.org", b"To: ops@example.org"]
    assert lines[3] == b"Subject: [HAProxy Alert] Server app/s1 is DOWN. 0 active and 0 backup servers left"
    assert lines[4:6] == [b"", b"Server app/s1 is DOWN. 0 active and 0 backup servers left"]


def test_a_failing_mailer_is_logged_and_given_up(caplog):
    async def main():
        inbox = Inbox()
        good, good_port = await smtp_server(inbox)
        silent, silent_port = await silent_server()
        alerts = EmailAlerts(config([free_port(), silent_port, good_port], timeout=0.3),
                             asyncio.get_running_loop())
        loop = asyncio.get_running_loop()
        began = loop.time()
        alerts.alert("app", "alert", "Server app/s1 is DOWN.")
        # the loop keeps running while the mailers are tried
        ticks = 0
        while not inbox.mails and ticks < 100:
            await asyncio.sleep(0.01)
            ticks += 1
        assert inbox.mails and loop.time() - began < 0.3  # the good one is not held up by the others
        await drained(alerts)
        took = loop.time() - began
        await alerts.close()
        good.close()
        silent.close()
        return took, [q.failed for q in alerts.queues["ops"]], [q.sent for q in alerts.queues["ops"]]
    with caplog.at_level(logging.WARNING, logger="haply.alerts"):
        took, failed, sent = asyncio.run(main())
    assert 0.3 <= took < 2.0
    assert (failed, sent) == ([1, 1, 0], [0, 0, 1])
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 2
    assert messages[0].startswith("email alert of proxy 'app' to mailer ops/smtp1 not sent: cannot connect to 127.0.0.1:")
    assert messages[0].endswith("Connection refused")
    assert messages[1] == ("email alert of proxy 'app' to mailer ops/smtp2 not sent: timeout mail (0.3s) "
                           "expired waiting for the greeting")


def test_a_refusal_is_named_and_the_connection_dropped(caplog):
    async def main():
        lines = []

        async def refusing(reader, writer):
            writer.write(b"220 ready\r\n")
            while line := await reader.readline():
                lines.append(line)
                writer.write(b"550 5.1.1 no such user\r\n" if line.startswith(b"RCPT") else b"250 ok\r\n")
            writer.close()
        server = await asyncio.start_server(refusing, "127.0.0.1", 0)
        queue = MailerQueue(asyncio.get_running_loop(), "ops", Mailer("smtp1", "127.0.0.1",
                            server.sockets[0].getsockname()[1]), 2.0)
        dialogue = await queue.send(Mail("app", "lb1", "a@example.org", "b@example.org", b".\r\n"))
        await asyncio.sleep(0.05)
        server.close()
        return dialogue, lines
    with caplog.at_level(logging.WARNING, logger="haply.alerts"):
        dialogue, lines = asyncio.run(main())
    assert str(dialogue.failed) == "RCPT TO answered 550 5.1.1 no such user"
    assert lines == [b"HELO lb1\r\n", b"MAIL FROM:<a@example.org>\r\n", b"RCPT TO:<b@example.org>\r\n"]
    assert [r.getMessage() for r in caplog.records] == [
        "email alert of proxy 'app' to mailer ops/smtp1 not sent: RCPT TO answered 550 5.1.1 no such user"]


def test_the_queue_of_a_mailer_is_bounded(caplog):
    async def main():
        silent, port = await silent_server()
        queue = MailerQueue(asyncio.get_running_loop(), "ops", Mailer("smtp1", "127.0.0.1", port), 5.0)
        mail = Mail("app", "lb1", "a@example.org", "b@example.org", b".\r\n")
        accepted = [queue.put(mail) for _ in range(MAX_PENDING_MAILS + 5)]
        await asyncio.sleep(0)  # the first is taken out to be sent
        assert queue.put(mail)
        await queue.close()
        silent.close()
        return accepted, queue.dropped
    with caplog.at_level(logging.WARNING, logger="haply.alerts"):
        accepted, dropped = asyncio.run(main())
    assert accepted.count(False) == dropped == 5 and all(accepted[:MAX_PENDING_MAILS])
    assert caplog.records[0].getMessage() == (
        f"email alert of proxy 'app' for mailer ops/smtp1 dropped: {MAX_PENDING_MAILS} alerts already wait for it")


def test_a_stop_sends_what_waits_and_a_failing_mailer_holds_it_one_timeout(caplog):
    """flush(): every queued mail is sent before it returns; a mailer that
    fails while stopping gets no further try; close() says what it drops."""
    async def main():
        loop = asyncio.get_running_loop()
        inbox = Inbox()
        good, good_port = await smtp_server(inbox)
        silent, silent_port = await silent_server()
        alerts = EmailAlerts(config([good_port, silent_port], timeout=0.3), loop)
        for n in range(3):
            alerts.alert("app", "alert", f"Server app/s{n} is DOWN.")
        began = loop.time()
        async with asyncio.timeout(5):
            await alerts.flush()
        took = loop.time() - began
        mailed = len(inbox.mails)
        # a grace that ran out: one mail on its way and one waiting, per mailer
        for n in (8, 9):
            alerts.alert("app", "alert", f"Server app/s{n} is DOWN.")
        await asyncio.sleep(0)
        await alerts.close()
        good.close()
        silent.close()
        return took, mailed
    with caplog.at_level(logging.WARNING, logger="haply.alerts"):
        took, mailed = asyncio.run(main())
    assert mailed == 3
    assert 0.3 <= took < 0.9  # one timeout mail for the silent mailer, not three
    assert [r.getMessage() for r in caplog.records] == [
        "email alert of proxy 'app' to mailer ops/smtp2 not sent: timeout mail (0.3s) expired waiting for the greeting",
        "2 email alert(s) for mailer ops/smtp2 not sent: its mailer failed while stopping",
        "2 email alert(s) for mailer ops/smtp1 not sent: stopped",
        "2 email alert(s) for mailer ops/smtp2 not sent: stopped",
    ]
