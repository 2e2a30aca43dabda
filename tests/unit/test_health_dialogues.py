"""The service checks' requests and judges (haply.health.dialogues), alone.

The expected verdicts are what HAProxy 2.6 showed in `show stat` and logged
for the same answers (tests/interop/test_service_checks_oracle.py runs both).
"""

from __future__ import annotations

import struct

from hypothesis import given
from hypothesis import strategies as st

from haply.health.dialogues import (
    LDAP_BIND_REQUEST, PASS, REDIS_PING, Verdict, judge_ldap, judge_pgsql, judge_redis,
    judge_smtp_greeting, judge_smtp_hello, judge_smtp_quit, ldap_dialogue, pgsql_dialogue,
    pgsql_startup, redis_dialogue, smtp_dialogue, smtp_hello,
)

ANSWERS = st.binary(max_size=64)
JUDGES = (judge_redis, judge_smtp_greeting, judge_smtp_hello, judge_smtp_quit, judge_pgsql,
          judge_ldap)


@given(data=ANSWERS)
def test_every_judge_decides_on_a_final_answer(data):
    """Whatever the server sent, once it can send no more each judge gives a
    verdict with a known status, never an exception or a wait."""
    for judge in JUDGES:
        verdict = judge(data, True)
        assert isinstance(verdict, Verdict)
        assert verdict.status in ("", "L7OK", "L7STS", "L7RSP")
        if verdict.status == "L7STS":
            assert verdict.code is not None


@given(data=ANSWERS, more=ANSWERS)
def test_a_verdict_on_part_of_an_answer_stands(data, more):
    """A judge that decided before the end decides the same status and code
    with more bytes behind: what arrives later cannot change a check already
    judged (only the quoted text may run on, as it does in HAProxy's)."""
    for judge in JUDGES:
        early = judge(data, False)
        if early is not None:
            later = judge(data + more, False)
            assert (later.status, later.code) == (early.status, early.code)


# ---------------------------------------------------------------------- redis

def test_redis_request_is_resp_ping():
    assert REDIS_PING == b"*1\r\n$4\r\nPING\r\n"
    assert redis_dialogue() == (REDIS_PING, judge_redis)


def test_redis_verdicts():
    assert judge_redis(b"+PONG\r\n", False) == Verdict("L7OK", 0, "Redis server is ok")
    # a wrong answer is only final when the server stops talking
    assert judge_redis(b"-LOADING Redis is loading\r\n", False) is None
    assert judge_redis(b"-LOADING Redis is loading\r\n", True) == \
        Verdict("L7STS", 0, "-LOADING Redis is loading")
    assert judge_redis(b"+PONGX\r\n", True) == Verdict("L7STS", 0, "+PONGX")
    assert judge_redis(b"", True) == \
        Verdict("L7STS", 0, "TCPCHK got an empty response at step 2")


# ----------------------------------------------------------------------- smtp

def test_smtp_hello_command():
    assert smtp_hello() == b"HELO localhost\r\n"
    assert smtp_hello(("EHLO", "example.org")) == b"EHLO example.org\r\n"
    assert smtp_hello(("HELO", "example.org")) == b"HELO example.org\r\n"
    # HAProxy 2.6 falls back to the default for anything else
    for words in (("EHLO",), ("ehlo", "x"), ("FOO", "x")):
        assert smtp_hello(words) == b"HELO localhost\r\n"
    assert smtp_dialogue()[1::2] == (b"HELO localhost\r\n", b"QUIT\r\n")


def test_smtp_greeting():
    assert judge_smtp_greeting(b"220 mail ESMTP\r\n", False) is PASS
    assert judge_smtp_greeting(b"220\r\n", False) is PASS
    assert judge_smtp_greeting(b"22", False) is None
    assert judge_smtp_greeting(b"421 Service not available, closing\r\n", False) == \
        Verdict("L7STS", 421, "Service not available, closing")
    assert judge_smtp_greeting(b"SSH-2.0-OpenSSH_9.2\r\n", False) == \
        Verdict("L7RSP", None, "SSH-2.0-OpenSSH_9.2")
    # a multi-line greeting is refused, as HAProxy does
    assert judge_smtp_greeting(b"220-first\r\n220 second\r\n", False) == \
        Verdict("L7RSP", None, "220-first")
    assert judge_smtp_greeting(b"", True) == \
        Verdict("L7RSP", None, "TCPCHK got an empty response at step 2")


def test_smtp_hello_reply_waits_for_a_2xx():
    assert judge_smtp_hello(b"250-mail Hello\r\n250 8BITMIME\r\n", False) is PASS
    assert judge_smtp_hello(b"550 go away\r\n", False) is None
    assert judge_smtp_hello(b"550 go away\r\n", True) == Verdict("L7STS", 550, "go away")
    assert judge_smtp_hello(b"hello\r\n", True) == Verdict("L7STS", 0, "o")
    assert judge_smtp_hello(b"", True) == \
        Verdict("L7STS", 0, "TCPCHK got an empty response at step 5")


def test_smtp_quit_reply_ends_the_check():
    assert judge_smtp_quit(b"221 Bye\r\n", False) == Verdict("L7OK", 221, "Bye")
    assert judge_smtp_quit(b"221    see you   \r\n", False) == Verdict("L7OK", 221, "see you   ")
    assert judge_smtp_quit(b"221-x\r\n221 y\r\n", False) == Verdict("L7OK", 221, "x")
    assert judge_smtp_quit(b"221\r\n", False) == Verdict("L7OK", 221, "")
    assert judge_smtp_quit(b"500 what\r\n", False) == Verdict("L7STS", 500, "what")
    assert judge_smtp_quit(b"xyz\r\n", False) == Verdict("L7STS", 0, "")
    assert judge_smtp_quit(b"22", False) is None
    assert judge_smtp_quit(b"", True) == \
        Verdict("L7STS", 0, "TCPCHK got an empty response at step 7")


# --------------------------------------------------------------------- pgsql

def test_pgsql_startup_message():
    message = pgsql_startup("haproxy")
    # what HAProxy 2.6 sends, byte for byte
    assert message == b"\x00\x00\x00\x16\x00\x03\x00\x00user\x00haproxy\x00\x00"
    assert struct.unpack("!I", message[:4])[0] == len(message)
    assert pgsql_dialogue("haproxy") == (message, judge_pgsql)


def _auth(code: int, extra: bytes = b"") -> bytes:
    return b"R" + struct.pack("!II", 8 + len(extra), code) + extra


@given(code=st.integers(0, 20))
def test_pgsql_authentication_requests(code):
    verdict = judge_pgsql(_auth(code), False)
    if code in (0, 2, 3, 4, 5, 6, 7, 9, 10):
        assert verdict == Verdict("L7OK", 0, "PostgreSQL server is ok")
    else:
        assert verdict == Verdict("L7STS", 0, "PostgreSQL unknown error")


def test_pgsql_other_answers():
    error = (b"E\x00\x00\x00\x4dSFATAL\x00VFATAL\x00C28000\x00"
             b"Mno pg_hba.conf entry for host\x00\x00")
    assert judge_pgsql(error, False) == Verdict("L7RSP", None, "FATAL")
    assert judge_pgsql(b"E\x00\x00\x00\x04", False) == Verdict("L7RSP", None, "")
    assert judge_pgsql(b"E\x00\x00", False) is None
    assert judge_pgsql(b"R\x00\x00", False) is None
    assert judge_pgsql(b"R\x00\x00", True) == Verdict("L7STS", 0, "PostgreSQL unknown error")
    assert judge_pgsql(b"HTTP/1.0 400 Bad Request\r\n\r\n", False) == \
        Verdict("L7STS", 0, "PostgreSQL unknown error")
    assert judge_pgsql(b"", True) == \
        Verdict("L7RSP", None, "TCPCHK got an empty response at step 3")
    # the length's last byte is not judged; its first three must be zero
    assert judge_pgsql(b"R\x00\x00\x00\xab\x00\x00\x00\x00", False).status == "L7OK"
    assert judge_pgsql(b"R\x00\x00\x01\x08\x00\x00\x00\x00", False).status == "L7STS"


# ---------------------------------------------------------------------- ldap

def test_ldap_bind_request():
    assert LDAP_BIND_REQUEST.hex() == "300c020101600702010304008000"
    assert ldap_dialogue() == (LDAP_BIND_REQUEST, judge_ldap)


def _bind_response(code: int, long_length: bool = False, message_id: int = 1,
                   tag: int = 0x61) -> bytes:
    op = bytes([tag, 7, 0x0A, 1, code, 4, 0, 4, 0])
    body = bytes([2, 1, message_id]) + op
    length = b"\x84" + struct.pack("!I", len(body)) if long_length else bytes([len(body)])
    return b"\x30" + length + body


@given(code=st.integers(0, 255), long_length=st.booleans())
def test_ldap_result_codes(code, long_length):
    verdict = judge_ldap(_bind_response(code, long_length), False)
    if code == 0:
        assert verdict == Verdict("L7OK", 0)
    else:
        assert verdict == Verdict(
            "L7STS", code, "See RFC: http://tools.ietf.org/html/rfc4511#section-4.1.9")


def test_ldap_other_answers():
    not_v3 = Verdict("L7RSP", None, "Not LDAPv3 protocol")
    assert judge_ldap(_bind_response(0, message_id=2), False) == not_v3
    assert judge_ldap(_bind_response(0, tag=0x65), False) == not_v3
    assert judge_ldap(b"HTTP/1.0 400 Bad Request\r\n\r\n", False) == not_v3
    assert judge_ldap(bytes.fromhex("300c0201"), False) is None
    assert judge_ldap(bytes.fromhex("300c0201"), True) == Verdict("L7RSP")
    assert judge_ldap(b"", True) == \
        Verdict("L7RSP", None, "TCPCHK got an empty response at step 2")
