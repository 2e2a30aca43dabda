"""The SMTP dialogue of one e-mail alert, without I/O: replies in, the next
bytes to send out (h11's shape; haply.alerts.sender carries the bytes).

HAProxy 2.6 speaks plain RFC 5321, one command at a time, and so does haply
(observed on the wire):

    S: 220 ...                     (haply waits for the greeting)
    C: HELO <myhostname>
    S: 250 ...
    C: MAIL FROM:<from>
    S: 250 ...
    C: RCPT TO:<to>
    S: 250 ...
    C: DATA
    S: 354 ...
    C: <the message, ending CRLF . CRLF>
    S: 250 ...                     (the mail is accepted here)
    C: QUIT
    S: 221 ...

HELO rather than EHLO: no extension is used, and HAProxy sends HELO. A reply
other than the one the step expects ends the dialogue with `MailerRefused`
naming the step and the reply; HAProxy then resets the connection, sending
nothing more, and the sender does the same. Positive replies are taken by
their class (RFC 5321 4.2.1: 2yz is success, so 251 "will forward" is a
yes); HAProxy looks for the exact "250 ", which only makes haply the more
lenient.
"""

from __future__ import annotations

from dataclasses import dataclass

# RFC 5321 4.5.3.1.5: a reply line is at most 512 octets with its CRLF. A
# few more are allowed (servers pad their texts), and a multi-line reply (an
# EHLO list) may have many lines: the whole reply is bounded instead.
MAX_REPLY_LINE = 1000
MAX_REPLY_BYTES = 16 * 1024


class SmtpError(Exception):
    """The dialogue cannot go on; the message says why, for the log."""


class MailerProtocolError(SmtpError):
    """The mailer sent bytes that are not an SMTP reply."""


class MailerRefused(SmtpError):
    """The mailer answered a step with another reply than the one expected."""

    def __init__(self, step: str, reply: "Reply") -> None:
        super().__init__(f"{step} answered {reply.text}")
        self.step = step
        self.reply = reply


@dataclass(frozen=True, slots=True)
class Reply:
    code: int
    lines: tuple[str, ...]  # each line's text after the code and its separator

    @property
    def text(self) -> str:
        return " ".join((str(self.code), *self.lines[-1:])).strip()


class ReplyReader:
    """Bytes from the mailer -> complete replies (RFC 5321 4.2: "250-..."
    lines continue a reply, "250 ..." or a bare "250" ends it)."""

    def __init__(self) -> None:
        self._buffer = b""
        self._lines: list[str] = []
        self._code: int | None = None
        self._size = 0

    def feed(self, data: bytes) -> list[Reply]:
        self._buffer += data
        replies = []
        while True:
            end = self._buffer.find(b"\n")
            if end < 0:
                if len(self._buffer) > MAX_REPLY_LINE:
                    raise MailerProtocolError(f"reply line longer than {MAX_REPLY_LINE} bytes")
                return replies
            raw, self._buffer = self._buffer[:end + 1], self._buffer[end + 1:]
            if len(raw) > MAX_REPLY_LINE:
                raise MailerProtocolError(f"reply line longer than {MAX_REPLY_LINE} bytes")
            reply = self._line(raw.rstrip(b"\r\n"))
            if reply is not None:
                replies.append(reply)

    def _line(self, line: bytes) -> Reply | None:
        digits, separator = line[:3], line[3:4]
        if len(digits) != 3 or not digits.isdigit() or digits[:1] not in b"12345" \
                or separator not in (b"", b" ", b"-"):
            shown = line[:40].decode("ascii", "backslashreplace")
            raise MailerProtocolError(f"not an SMTP reply: '{shown}'")
        code = int(digits)
        if self._code is not None and code != self._code:
            raise MailerProtocolError(f"reply {self._code} continued by a line of reply {code}")
        self._size += len(line)
        if self._size > MAX_REPLY_BYTES:
            raise MailerProtocolError(f"reply longer than {MAX_REPLY_BYTES} bytes")
        self._code = code
        self._lines.append(line[4:].decode("utf-8", "replace"))
        if separator == b"-":
            return None
        reply = Reply(code, tuple(self._lines))
        self._code, self._lines, self._size = None, [], 0
        return reply


# The steps: what the reply to each must be (its class, or the exact code),
# in order. The bytes sent after each are built by MailDialogue.
STEPS = (
    ("greeting", 220),
    ("HELO", 2),
    ("MAIL FROM", 2),
    ("RCPT TO", 2),
    ("DATA", 354),
    ("message", 2),
    ("QUIT", 2),
)


class MailDialogue:
    """One mail to one mailer. `receive(reply)` returns the bytes to send
    next, or None when the dialogue is over (`done`); `accepted` says the
    mailer took the message (the QUIT that follows is politeness)."""

    def __init__(self, helo_name: str, sender: str, recipient: str, message: bytes) -> None:
        self._next = (
            f"HELO {helo_name}\r\n".encode(),
            f"MAIL FROM:<{sender}>\r\n".encode(),
            f"RCPT TO:<{recipient}>\r\n".encode(),
            b"DATA\r\n",
            message,
            b"QUIT\r\n",
        )
        self._step = 0
        self.accepted = False
        self.done = False
        self.failed: SmtpError | None = None

    @property
    def step(self) -> str:
        """The step whose reply is awaited ("" once done)."""
        return STEPS[self._step][0] if self._step < len(STEPS) else ""

    @property
    def awaited(self) -> str:
        """What the dialogue waits for, in words for the log."""
        return "the greeting" if self._step == 0 else f"the reply to {self.step}"

    def receive(self, reply: Reply) -> bytes | None:
        if self.done:
            raise SmtpError(f"reply {reply.text} after the end of the dialogue")
        step, expected = STEPS[self._step]
        good = reply.code // 100 == expected if expected < 10 else reply.code == expected
        if not good:
            self.done = True
            self.failed = MailerRefused(step, reply)
            raise self.failed
        if step == "message":
            self.accepted = True
        self._step += 1
        if self._step == len(STEPS):
            self.done = True
            return None
        return self._next[self._step - 1]

    def fail(self, error: SmtpError) -> None:
        """The mailer broke the protocol, went away or took too long."""
        self.done = True
        self.failed = error


__all__ = ["MAX_REPLY_BYTES", "MAX_REPLY_LINE", "MailDialogue", "MailerProtocolError", "MailerRefused", "Reply",
           "ReplyReader", "STEPS", "SmtpError"]
