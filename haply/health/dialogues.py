"""What the service checks say, and how they judge what the server answers.

`option redis-check`, `option smtpchk`, `option pgsql-check` and `option
ldap-check` are each a short dialogue: bytes to send, then a judge of the
answer. This module holds them as data and pure functions (no socket, no
clock); `probes.dialogue_check` plays one over a connection.

A dialogue is a tuple of steps. A `bytes` step is sent, after the bytes
received so far are dropped (each judge sees only the answer to what was sent
last, as HAProxy's checks do). A judge step is called as judge(data, final)
with everything received since the last send; `final` is true once no more
can come (the server closed, or the buffer is full). It returns None to wait
for more, `PASS` to go on to the next step, or a `Verdict` that ends the check.

The requests come from each protocol's documents (RESP, RFC 5321, the
PostgreSQL frontend/backend protocol, RFC 4511). The verdicts (which status,
code and words) were read off HAProxy 2.6's `show stat` and its "Server ... is
DOWN" log lines, for healthy servers and for ones answering wrongly, slowly,
partially or not at all. HAProxy numbers the steps of these checks in its
"TCPCHK got an empty response at step N" message; the numbers are kept as
HAProxy counts them (a connect step where it has one).
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass
from typing import Callable


@dataclass(frozen=True, slots=True)
class Verdict:
    """How a check ended: HAProxy's check status, code and info."""

    status: str
    code: int | None = None
    info: str = ""


PASS = Verdict("")  # this step is satisfied; go on with the next one

Judge = Callable[[bytes, bool], "Verdict | None"]
Dialogue = tuple  # of bytes (send) and Judge (expect) steps


def empty_response(step: int, status: str) -> Verdict:
    """HAProxy's verdict when the server closed without a byte at an expect."""
    return Verdict(status, 0 if status == "L7STS" else None,
                   f"TCPCHK got an empty response at step {step}")


def first_line(data: bytes) -> str:
    """The text up to the first CR or LF (HAProxy's cut_crlf)."""
    return re.split(rb"[\r\n]", data, maxsplit=1)[0].decode("latin-1")


def leading_number(text: bytes) -> int:
    """The integer the leading digits make, 0 without any (as HAProxy reads a
    reply code such as "250" or "xyz")."""
    match = re.match(rb"\d+", text)
    return int(match.group()) if match else 0


# ---------------------------------------------------------------------- redis

# RESP (the Redis serialization protocol): an array of one bulk string, PING.
REDIS_PING = b"*1\r\n$4\r\nPING\r\n"
REDIS_PONG = b"+PONG\r\n"


def judge_redis(data: bytes, final: bool) -> Verdict | None:
    """`+PONG` anywhere in the answer passes; anything else is a wrong status
    once the server has nothing more to say (it may still be sending)."""
    if REDIS_PONG in data:
        return Verdict("L7OK", 0, "Redis server is ok")
    if not final:
        return None
    if not data:
        return empty_response(2, "L7STS")
    return Verdict("L7STS", 0, first_line(data))


def redis_dialogue() -> Dialogue:
    return (REDIS_PING, judge_redis)


# ----------------------------------------------------------------------- smtp

# RFC 5321 4.2: a reply is a three-digit code, then a space (last line) or a
# hyphen (more lines follow). The greeting must be a single-line 2xx; the
# replies to HELO/EHLO and QUIT may be multi-line.
_GREETING_SHAPE = re.compile(rb"[0-9]{3}[ \r]")
_GREETING_OK = re.compile(rb"2[0-9]{2}[ \r]")
_REPLY_OK = re.compile(rb"2[0-9]{2}[- \r]")
# HAProxy judges a greeting or a QUIT reply once it has this many bytes (the
# code and its separator), and waits for more of a HELO reply that does not
# match yet.
SMTP_MIN_REPLY = 4
SMTP_QUIT = b"QUIT\r\n"


def _smtp_text(data: bytes) -> str:
    """The reply's text: after the code and separator, spaces trimmed on the left."""
    return first_line(data[4:].lstrip(b" "))


def judge_smtp_greeting(data: bytes, final: bool) -> Verdict | None:
    if len(data) < SMTP_MIN_REPLY and not final:
        return None
    if not data:
        return empty_response(2, "L7RSP")
    if not _GREETING_SHAPE.match(data):
        return Verdict("L7RSP", None, first_line(data))
    if not _GREETING_OK.match(data):
        return Verdict("L7STS", leading_number(data[:3]), _smtp_text(data))
    return PASS


def judge_smtp_hello(data: bytes, final: bool) -> Verdict | None:
    if _REPLY_OK.match(data):
        return PASS
    if not final:
        return None
    if not data:
        return empty_response(5, "L7STS")
    return Verdict("L7STS", leading_number(data[:3]), _smtp_text(data))


def judge_smtp_quit(data: bytes, final: bool) -> Verdict | None:
    if len(data) < SMTP_MIN_REPLY and not final:
        return None
    if not data:
        return empty_response(7, "L7STS")
    status = "L7OK" if _REPLY_OK.match(data) else "L7STS"
    return Verdict(status, leading_number(data[:3]), _smtp_text(data))


def smtp_hello(words: tuple[str, ...] = ()) -> bytes:
    """The greeting command of `option smtpchk [HELO|EHLO <domain>]`.

    Only an exact HELO or EHLO followed by a domain is used; any other words
    give the default, "HELO localhost" (HAProxy 2.6 sends that for
    `smtpchk FOO dom`, `smtpchk ehlo dom` and `smtpchk EHLO`)."""
    if len(words) == 2 and words[0] in ("HELO", "EHLO"):
        return f"{words[0]} {words[1]}\r\n".encode("latin-1")
    return b"HELO localhost\r\n"


def smtp_dialogue(words: tuple[str, ...] = ()) -> Dialogue:
    """Greeting, HELO/EHLO, QUIT: the QUIT lets the server end the session
    cleanly instead of logging a lost connection."""
    return (judge_smtp_greeting, smtp_hello(words), judge_smtp_hello, SMTP_QUIT,
            judge_smtp_quit)


# --------------------------------------------------------------------- pgsql

# PostgreSQL frontend/backend protocol 3.0, "StartupMessage": length, protocol
# version 3.0 (196608), then name/value pairs ending with an empty name.
PGSQL_PROTOCOL_3_0 = 196608
# "AuthenticationRequest" ('R', length, Int32 code): the codes that show a
# server ready to authenticate the user: Ok 0, KerberosV5 2, CleartextPassword
# 3, CryptPassword 4, MD5Password 5, SCMCredential 6, GSS 7, SSPI 9, SASL 10.
# HAProxy 2.6 accepts exactly these (GSSContinue 8, SASLContinue 11 and
# SASLFinal 12 cannot come first).
PGSQL_AUTH_CODES = frozenset({0, 2, 3, 4, 5, 6, 7, 9, 10})
PGSQL_MIN_ERROR = 5  # type byte and length: enough to tell an ErrorResponse
PGSQL_MIN_AUTH = 9   # type, length, code


def pgsql_startup(user: str) -> bytes:
    body = struct.pack("!I", PGSQL_PROTOCOL_3_0) + b"user\x00" + user.encode() + b"\x00\x00"
    return struct.pack("!I", 4 + len(body)) + body


def judge_pgsql(data: bytes, final: bool) -> Verdict | None:
    """An ErrorResponse ('E') is an invalid response with the first field's
    text (its severity, e.g. "FATAL", as HAProxy shows it); an
    authentication request passes; anything else is a wrong status."""
    if len(data) < PGSQL_MIN_ERROR and not final:
        return None
    if not data:
        return empty_response(3, "L7RSP")
    if data[:1] == b"E":
        return Verdict("L7RSP", None, data[6:].split(b"\x00", 1)[0].decode("latin-1"))
    if len(data) < PGSQL_MIN_AUTH and not final:
        return None
    if (len(data) >= PGSQL_MIN_AUTH and data[:4] == b"R\x00\x00\x00"
            and data[5:8] == b"\x00\x00\x00" and data[8] in PGSQL_AUTH_CODES):
        return Verdict("L7OK", 0, "PostgreSQL server is ok")
    return Verdict("L7STS", 0, "PostgreSQL unknown error")


def pgsql_dialogue(user: str) -> Dialogue:
    return (pgsql_startup(user), judge_pgsql)


# ---------------------------------------------------------------------- ldap

# RFC 4511 4.2, an anonymous simple BindRequest in BER: LDAPMessage SEQUENCE
# {messageID 1, [APPLICATION 0] {version 3, name "", simple [0] ""}}.
LDAP_BIND_REQUEST = bytes.fromhex("300c020101600702010304008000")
LDAP_MIN_REPLY = 14  # the shortest BindResponse: what HAProxy waits for
LDAP_NOT_V3 = "Not LDAPv3 protocol"
LDAP_RESULT_CODES_RFC = "See RFC: http://tools.ietf.org/html/rfc4511#section-4.1.9"
_BER_SEQUENCE = 0x30
_BER_MAX_LENGTH_BYTES = 4


class _Truncated(Exception):
    pass


def _ber_length_end(data: bytes, at: int) -> int:
    """Where the contents start after the BER length at data[at] (X.690
    8.1.3: one byte below 0x80, else 0x80 | the count of length bytes)."""
    if at >= len(data):
        raise _Truncated()
    first = data[at]
    if first < 0x80:
        return at + 1
    count = first & 0x7F
    if count > _BER_MAX_LENGTH_BYTES:
        raise ValueError("length too long")
    if at + 1 + count > len(data):
        raise _Truncated()
    return at + 1 + count


def judge_ldap(data: bytes, final: bool) -> Verdict | None:
    """A BindResponse to message 1 with resultCode success (0) passes; another
    resultCode is a wrong status with that code; anything else is not LDAPv3."""
    if len(data) < LDAP_MIN_REPLY and not final:
        return None
    if not data:
        return empty_response(2, "L7RSP")
    if data[0] != _BER_SEQUENCE:
        return Verdict("L7RSP", None, LDAP_NOT_V3)
    try:
        at = _ber_length_end(data, 1)
        # messageID INTEGER 1, then the BindResponse tag [APPLICATION 1]
        if len(data) < at + 4:
            raise _Truncated()
        if data[at:at + 4] != b"\x02\x01\x01\x61":
            return Verdict("L7RSP", None, LDAP_NOT_V3)
        at = _ber_length_end(data, at + 4)
        # resultCode ENUMERATED, one byte
        if len(data) < at + 3:
            raise _Truncated()
        if data[at:at + 2] != b"\x0a\x01":
            return Verdict("L7RSP", None, LDAP_NOT_V3)
        code = data[at + 2]
    except ValueError:
        return Verdict("L7RSP", None, LDAP_NOT_V3)
    except _Truncated:
        return Verdict("L7RSP")  # HAProxy 2.6 gives no words for a cut reply
    if code == 0:
        return Verdict("L7OK", 0)
    return Verdict("L7STS", code, LDAP_RESULT_CODES_RFC)


def ldap_dialogue() -> Dialogue:
    return (LDAP_BIND_REQUEST, judge_ldap)


__all__ = [
    "Dialogue", "Judge", "LDAP_BIND_REQUEST", "PASS", "REDIS_PING", "Verdict",
    "judge_ldap", "judge_pgsql", "judge_redis", "judge_smtp_greeting",
    "judge_smtp_hello", "judge_smtp_quit", "ldap_dialogue", "pgsql_dialogue",
    "pgsql_startup", "redis_dialogue", "smtp_dialogue", "smtp_hello",
]
