"""The SMTP dialogue of an e-mail alert (haply.alerts.smtp), alone: replies
in, bytes out. The commands are those HAProxy 2.6 sent to a recording SMTP
server (tests/interop/test_mailers_oracle.py compares both on the wire)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from haply.alerts.smtp import (
    MAX_REPLY_BYTES, MAX_REPLY_LINE, MailDialogue, MailerProtocolError, MailerRefused, Reply, ReplyReader,
    SmtpError,
)

MESSAGE = b"From: a@example.org\r\nTo: b@example.org\r\n\r\nbody\r\n.\r\n"


def dialogue() -> MailDialogue:
    return MailDialogue("lb1.example.org", "a@example.org", "b@example.org", MESSAGE)


def replies(data: bytes) -> list[Reply]:
    return ReplyReader().feed(data)


def test_a_mail_goes_out_command_by_command():
    talk = dialogue()
    sent = [talk.receive(Reply(220, ("mail.example.org ESMTP",)))]
    for code in (250, 250, 250, 354, 250):
        assert not talk.done
        sent.append(talk.receive(Reply(code, ("ok",))))
    assert talk.accepted and not talk.done
    assert talk.receive(Reply(221, ("bye",))) is None
    assert talk.done and talk.failed is None
    assert sent == [b"HELO lb1.example.org\r\n", b"MAIL FROM:<a@example.org>\r\n",
                    b"RCPT TO:<b@example.org>\r\n", b"DATA\r\n", MESSAGE, b"QUIT\r\n"]


@pytest.mark.parametrize("answered, refused, text", [
    (0, Reply(554, ("no service",)), "greeting answered 554 no service"),
    (1, Reply(501, ("bad name",)), "HELO answered 501 bad name"),
    (3, Reply(550, ("5.1.1 no such user",)), "RCPT TO answered 550 5.1.1 no such user"),
    (4, Reply(250, ("ok",)), "DATA answered 250 ok"),  # DATA needs 354 to go on
    (5, Reply(452, ("4.3.1 disk full",)), "message answered 452 4.3.1 disk full"),
])
def test_an_unexpected_reply_ends_the_dialogue_naming_the_step(answered, refused, text):
    talk = dialogue()
    for code in (220, 250, 250, 250, 354)[:answered]:
        talk.receive(Reply(code, ("ok",)))
    with pytest.raises(MailerRefused) as error:
        talk.receive(refused)
    assert str(error.value) == text and talk.done and not talk.accepted
    assert talk.failed is error.value
    with pytest.raises(SmtpError):
        talk.receive(Reply(250, ("late",)))


def test_any_positive_completion_goes_on_and_quit_after_the_message_is_politeness():
    talk = dialogue()
    for code in (220, 250, 250, 251, 354, 250):  # 251: "user not local; will forward"
        talk.receive(Reply(code, ()))
    assert talk.accepted
    with pytest.raises(MailerRefused):
        talk.receive(Reply(500, ("what",)))
    assert talk.accepted  # the mailer took the message before the QUIT went wrong


def test_what_the_dialogue_waits_for_is_said_for_the_log():
    talk = dialogue()
    assert (talk.step, talk.awaited) == ("greeting", "the greeting")
    talk.receive(Reply(220, ()))
    assert (talk.step, talk.awaited) == ("HELO", "the reply to HELO")


def test_replies_single_multi_line_and_split_anywhere():
    data = b"220 mail ready\r\n250-mail.example.org\r\n250-SIZE 1000\r\n250 HELP\r\n354\r\n"
    expected = [Reply(220, ("mail ready",)), Reply(250, ("mail.example.org", "SIZE 1000", "HELP")),
                Reply(354, ("",))]
    assert replies(data) == expected
    reader = ReplyReader()
    got = []
    for byte in data:
        got.extend(reader.feed(bytes([byte])))
    assert got == expected
    assert replies(b"250 ok\n") == [Reply(250, ("ok",))]  # a bare LF ends a line too
    assert replies(b"250 ok") == []  # not yet a line


@pytest.mark.parametrize("data, error", [
    (b"hello\r\n", "not an SMTP reply: 'hello'"),
    (b"2500 ok\r\n", "not an SMTP reply: '2500 ok'"),
    (b"650 six\r\n", "not an SMTP reply: '650 six'"),
    (b"250-one\r\n251 two\r\n", "reply 250 continued by a line of reply 251"),
    (b"250 " + b"x" * MAX_REPLY_LINE + b"\r\n", f"reply line longer than {MAX_REPLY_LINE} bytes"),
    (b"250 " + b"x" * MAX_REPLY_LINE, f"reply line longer than {MAX_REPLY_LINE} bytes"),
    (b"250-" + b"x" * 900 + b"\r\n" + (b"250-" + b"x" * 900 + b"\r\n") * (MAX_REPLY_BYTES // 900),
     f"reply longer than {MAX_REPLY_BYTES} bytes"),
])
def test_bytes_that_are_no_reply_are_named(data, error):
    with pytest.raises(MailerProtocolError) as raised:
        replies(data)
    assert str(raised.value) == error


@given(chunks=st.lists(st.binary(max_size=80), max_size=20))
def test_any_bytes_give_replies_or_a_protocol_error(chunks):
    """Whatever a mailer sends, the reader returns well-formed replies or
    names the fault; it never raises anything else nor keeps unbounded data."""
    reader = ReplyReader()
    try:
        for chunk in chunks:
            for reply in reader.feed(chunk):
                assert 100 <= reply.code <= 599 and reply.lines
    except MailerProtocolError:
        return
    assert len(reader._buffer) <= MAX_REPLY_LINE


@given(codes=st.lists(st.sampled_from([220, 221, 250, 251, 354, 421, 450, 500, 550, 554]), max_size=10))
def test_any_reply_sequence_ends_in_a_mail_or_a_named_refusal(codes):
    talk = dialogue()
    for code in codes:
        if talk.done:
            break
        try:
            out = talk.receive(Reply(code, ("text",)))
        except MailerRefused as error:
            assert error.reply.code == code and talk.done
            break
        assert out is None or isinstance(out, bytes)
    if talk.done and talk.failed is None:
        assert talk.accepted
