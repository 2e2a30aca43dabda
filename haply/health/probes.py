"""Health probes: one async function per check kind, each returning a CheckResult.

A probe opens one connection, speaks just enough of the protocol to judge the
server, and closes. It never raises for anything the server does: refusals,
resets, garbage and silence all become a result with HAProxy's status code
(`show stat` column check_status) and the wording HAProxy logs for it, so logs
and stats pages read the same as an operator's HAProxy ones. Wording was checked
against HAProxy 2.6's own log lines, e.g.

    reason: Layer4 connection problem, info: "Connection refused"
    reason: Layer7 wrong status, code: 503, info: "Service Unavailable"
    reason: Layer7 check passed, code: 200

Timeouts follow the manual's `timeout check`: with it set, the connect part is
bounded by min(timeout connect, inter) and the read part by `timeout check`;
without it, `inter` bounds the whole check. `Deadlines` carries the two numbers;
the scheduler computes them.

Probes use a small asyncio.Protocol (`_Exchange`) rather than streams: 1,000
servers checked every 2 s is 500 probes a second, and a Protocol costs a few
callbacks per probe.
"""

from __future__ import annotations

import asyncio
import errno
import os
import re
import socket
import ssl
import struct
from dataclasses import dataclass

from haply.config.model import SourceAddress
from haply.health import dialogues
from haply.proxy import outbound, proxy_header

# ---------------------------------------------------------------- status codes

# HAProxy manual, 9.1 "show stat", field check_status, with the reason text
# HAProxy writes in its "Server ... is DOWN, reason: ..." log lines.
STATUS_WORDS = {
    "UNK": "Unknown",
    "INI": "Initializing",
    "SOCKERR": "Socket error",
    "L4OK": "Layer4 check passed",
    "L4TOUT": "Layer4 timeout",
    "L4CON": "Layer4 connection problem",
    "L6OK": "Layer6 check passed",
    "L6TOUT": "Layer6 timeout",
    "L6RSP": "Layer6 invalid response",
    "L7OK": "Layer7 check passed",
    "L7OKC": "Layer7 check conditionally passed",
    "L7TOUT": "Layer7 timeout",
    "L7RSP": "Layer7 invalid response",
    "L7STS": "Layer7 wrong status",
    "PROCERR": "External check error",
    "PROCTOUT": "External check timeout",
    "PROCOK": "External check passed",
}
OK_STATUSES = frozenset({"L4OK", "L6OK", "L7OK", "L7OKC", "PROCOK"})

# HAProxy's default buffer size (tune.bufsize): a check reads at most this much.
MAX_RESPONSE = 16384
# A MySQL packet header: 3-byte little-endian length + 1-byte sequence id.
MYSQL_HEADER = 4


@dataclass(frozen=True, slots=True)
class AgentReply:
    """What an agent-check reply asks for; None fields were not mentioned."""

    weight_percent: int | None = None
    admin: str | None = None        # "READY" | "DRAIN" | "MAINT"
    operational: str | None = None  # "UP" | "DOWN"
    maxconn: int | None = None
    description: str = ""
    state_word: str = ""  # the up/down/fail/stopped word as the agent sent it


@dataclass(frozen=True, slots=True)
class CheckResult:
    status: str
    code: int | None = None
    info: str = ""
    duration: float = 0.0  # seconds from the start of the connect
    agent: AgentReply | None = None

    @property
    def ok(self) -> bool:
        return self.status in OK_STATUSES

    @property
    def reason(self) -> str:
        """`Layer7 wrong status, code: 503, info: "Service Unavailable"`."""
        text = STATUS_WORDS.get(self.status, self.status)
        if self.code is not None:
            text += f", code: {self.code}"
        if self.info:
            text += f", info: \"{self.info}\""
        return text

    @property
    def duration_ms(self) -> int:
        return int(self.duration * 1000)


@dataclass(frozen=True, slots=True)
class Deadlines:
    """How long each part of a check may take, in seconds."""

    connect: float
    read: float
    # when set, the whole check (connect + read) must end within it; this is the
    # no-`timeout check` case where `inter` bounds everything
    total: float | None = None

    @classmethod
    def from_settings(cls, inter: float, timeout_check: float | None,
                      timeout_connect: float | None) -> "Deadlines":
        if timeout_check:
            connect = min(timeout_connect, inter) if timeout_connect else inter
            return cls(connect=connect, read=timeout_check)
        return cls(connect=inter, read=inter, total=inter)


@dataclass(frozen=True, slots=True)
class Target:
    """Where a check connects; tls set means the check runs inside TLS
    (`check-ssl`, or a server with `ssl` checked on its own address)."""

    host: str
    port: int
    tls: bool = False
    sni: str | None = None
    proxy: int = 0  # the PROXY protocol version the check starts with (0: none)
    source: SourceAddress | None = None  # `source`: checks leave from there too

    def to_port(self, port: int) -> Target:
        """The same target on another port (a tcp-check `connect port`)."""
        return Target(self.host, port, source=self.source)

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


# ------------------------------------------------------------ connection shell


class _Timeout(Exception):
    pass


class _Exchange(asyncio.Protocol):
    """Collects what the server sends and wakes the one waiting reader."""

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.eof = False
        self.error: BaseException | None = None
        self.transport: asyncio.Transport | None = None
        self._waiter: asyncio.Future | None = None

    def connection_made(self, transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        if len(self.buffer) < MAX_RESPONSE:
            self.buffer += data[: MAX_RESPONSE - len(self.buffer)]
        self._wake()

    def eof_received(self):
        self.eof = True
        self._wake()
        return False

    def connection_lost(self, exc) -> None:
        self.eof = True
        self.error = exc
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def write(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    async def wait_for(self, done, deadline: float) -> bool:
        """Wait until done(buffer) is true (True) or EOF (False); _Timeout at deadline."""
        loop = asyncio.get_running_loop()
        while True:
            if done(self.buffer):
                return True
            if self.eof or len(self.buffer) >= MAX_RESPONSE:
                return done(self.buffer)
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise _Timeout()
            self._waiter = loop.create_future()
            try:
                await asyncio.wait_for(self._waiter, remaining)
            except asyncio.TimeoutError:
                raise _Timeout() from None
            finally:
                self._waiter = None

    def close(self) -> None:
        if self.transport is not None:
            self.transport.abort()


async def _connect(target: Target, deadline: float) -> _Exchange:
    loop = asyncio.get_running_loop()
    remaining = max(deadline - loop.time(), 0.0)
    try:
        if target.source is None:
            transport, proto = await asyncio.wait_for(
                loop.create_connection(_Exchange, target.host, target.port), remaining)
        else:
            transport, proto = await asyncio.wait_for(_connect_from(target), remaining)
    except asyncio.TimeoutError:
        raise _Timeout() from None
    if target.proxy:  # before anything the check itself sends
        transport.write(proxy_header.check_header(
            target.proxy, transport.get_extra_info("sockname"), transport.get_extra_info("peername")))
    return proto


async def _connect_from(target: Target):
    loop = asyncio.get_running_loop()
    sock = await outbound.connected_socket(loop, target.host, target.port, target.source)
    try:
        return await loop.create_connection(_Exchange, sock=sock)
    except BaseException:
        sock.close()
        raise


def _connect_error_info(exc: BaseException) -> str:
    if isinstance(exc, OSError):
        code = exc.errno
        # create_connection folds multi-address failures into a message only
        if code is None and "refused" in str(exc).lower():
            code = errno.ECONNREFUSED
        if code is not None:
            return os.strerror(code)
        return str(exc)
    return str(exc) or type(exc).__name__


class _Clock:
    """Start time and the two deadlines of one check."""

    def __init__(self, deadlines: Deadlines) -> None:
        self.loop = asyncio.get_running_loop()
        self.started = self.loop.time()
        self.deadlines = deadlines
        self.total_end = (self.started + deadlines.total) if deadlines.total else None

    def connect_deadline(self) -> float:
        end = self.started + self.deadlines.connect
        return min(end, self.total_end) if self.total_end else end

    def read_deadline(self) -> float:
        end = self.loop.time() + self.deadlines.read
        return min(end, self.total_end) if self.total_end else end

    def elapsed(self) -> float:
        return self.loop.time() - self.started


async def _open(target: Target, clock: _Clock) -> _Exchange | CheckResult:
    """Connect (and handshake, for a TLS target), or the L4/L6 result that
    says why not."""
    if target.tls:
        return await _open_tls(target, clock, target.sni)
    try:
        return await _connect(target, clock.connect_deadline())
    except _Timeout:
        return CheckResult("L4TOUT", duration=clock.elapsed())
    except OSError as exc:
        return CheckResult("L4CON", info=_connect_error_info(exc), duration=clock.elapsed())


def _check_tls_context(alpn: tuple[str, ...] = ()) -> ssl.SSLContext:
    """TLS for `tcp-check connect ssl`: a check judges whether the service
    answers, not who it is, so the certificate is not verified (HAProxy's
    checks follow the server's `verify`, which haply's model does not carry)."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    if alpn:
        context.set_alpn_protocols(list(alpn))
    return context


async def _open_tls(target: Target, clock: _Clock, sni: str | None,
                    alpn: tuple[str, ...] = ()) -> _Exchange | CheckResult:
    """Connect, then a TLS handshake: L4 results for the first part, L6 ones for
    the second. The socket is connected first and handed to create_connection,
    rather than upgraded with start_tls, so a peer that hangs up mid-handshake
    is an immediate error (uvloop's start_tls then never completes)."""
    loop = asyncio.get_running_loop()
    family = socket.AF_INET6 if ":" in target.host else socket.AF_INET
    try:
        if target.source is not None:
            sock = outbound.bound_socket(target.source, family)
        else:
            sock = socket.socket(family, socket.SOCK_STREAM)
            sock.setblocking(False)
    except OSError as exc:
        return CheckResult("L4CON", info=_connect_error_info(exc), duration=clock.elapsed())
    try:
        remaining = max(clock.connect_deadline() - loop.time(), 0.0)
        await asyncio.wait_for(loop.sock_connect(sock, (target.host, target.port)), remaining)
    except asyncio.TimeoutError:
        sock.close()
        return CheckResult("L4TOUT", duration=clock.elapsed())
    except OSError as exc:
        sock.close()
        return CheckResult("L4CON", info=_connect_error_info(exc), duration=clock.elapsed())
    if target.proxy:  # before the handshake
        try:
            sock.send(proxy_header.check_header(target.proxy, sock.getsockname(), sock.getpeername()))
        except OSError as exc:
            sock.close()
            return CheckResult("L4CON", info=_connect_error_info(exc), duration=clock.elapsed())
    remaining = max(clock.read_deadline() - loop.time(), 0.001)
    try:
        _, proto = await asyncio.wait_for(
            loop.create_connection(_Exchange, sock=sock, ssl=_check_tls_context(alpn),
                                   server_hostname=sni or "",
                                   ssl_handshake_timeout=remaining), remaining)
    except asyncio.TimeoutError:
        sock.close()
        return CheckResult("L6TOUT", duration=clock.elapsed())
    except ssl.SSLError as exc:
        sock.close()
        return CheckResult("L6RSP", info=exc.reason or "", duration=clock.elapsed())
    except (OSError, ConnectionError):
        sock.close()
        return CheckResult("L6RSP", duration=clock.elapsed())
    return proto


# ------------------------------------------------------------------ tcp check


async def tcp_check(target: Target, deadlines: Deadlines) -> CheckResult:
    """Plain TCP connect: the default check (a TLS handshake too with check-ssl,
    which then passes at layer 6)."""
    clock = _Clock(deadlines)
    conn = await _open(target, clock)
    if isinstance(conn, CheckResult):
        return conn
    conn.close()
    return CheckResult("L6OK" if target.tls else "L4OK", duration=clock.elapsed())


# ----------------------------------------------------------------- http check


@dataclass(frozen=True, slots=True)
class HttpProbe:
    method: str = "OPTIONS"
    uri: str = "/"
    version: str = "HTTP/1.0"
    headers: tuple[tuple[str, str], ...] = ()
    body: str = ""
    # (kind, pattern): kind is status|rstatus|string|rstring, "!" prefix negates
    expect: tuple[str, str] | None = None

    def request(self) -> bytes:
        lines = [f"{self.method} {self.uri} {self.version}"]
        names = {name.lower() for name, _ in self.headers}
        lines += [f"{name}: {value}" for name, value in self.headers]
        body = self.body.encode()
        if body and "content-length" not in names:
            lines.append(f"Content-Length: {len(body)}")
        if self.version.upper() == "HTTP/1.1" and "connection" not in names:
            lines.append("Connection: close")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


_STATUS_LINE = re.compile(rb"^HTTP/\d\.\d (\d{3})(?: ([^\r\n]*))?\r?\n")


def _head_complete(buf: bytearray) -> bool:
    return b"\r\n\r\n" in buf or b"\n\n" in buf


def _body_complete(buf: bytearray) -> bool:
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        return False
    match = re.search(rb"(?im)^content-length:\s*(\d+)\s*$", bytes(buf[:end]))
    return match is not None and len(buf) - end - 4 >= int(match.group(1))


def judge_http(response: bytes, expect: tuple[str, str] | None,
               complete: bool = True) -> tuple[str, int | None, str]:
    """(status, code, info) for an HTTP check response. Pure, so it is tested alone."""
    match = _STATUS_LINE.match(response)
    if match is None:
        # HAProxy 2.6 logs a bare "Layer7 invalid response" here, no info
        return "L7RSP", None, ""
    code = int(match.group(1))
    phrase = (match.group(2) or b"").decode("latin-1").strip()
    if expect is None:
        # manual, option httpchk: "only 2xx and 3xx responses are considered valid"
        if 200 <= code < 400:
            return "L7OK", code, ""
        return "L7STS", code, phrase
    kind, pattern = expect
    negate = kind.startswith("!")
    kind = kind.lstrip("!").strip()
    if kind in ("status", "rstatus"):
        if kind == "status":
            hit = any(_status_matches(code, p) for p in pattern.split(","))
        else:
            hit = re.search(pattern, str(code)) is not None
        if hit != negate:
            return "L7OK", code, ""
        return "L7STS", code, phrase
    if kind in ("string", "rstring"):
        end = response.find(b"\r\n\r\n")
        body = response[end + 4:] if end >= 0 else b""
        if kind == "string":
            hit = pattern.encode("latin-1") in body
        else:
            hit = re.search(pattern.encode("latin-1"), body) is not None
        if hit != negate:
            return "L7OK", code, ""
        # HAProxy 2.6 reports no code with a content mismatch
        return "L7RSP", None, "HTTP content check did not match"
    return "L7RSP", code, f"unsupported http-check expect {kind}"


def _status_matches(code: int, pattern: str) -> bool:
    pattern = pattern.strip()
    if "-" in pattern:
        low, _, high = pattern.partition("-")
        return int(low) <= code <= int(high)
    return pattern.isdigit() and code == int(pattern)


async def http_check(target: Target, deadlines: Deadlines, probe: HttpProbe) -> CheckResult:
    clock = _Clock(deadlines)
    conn = await _open(target, clock)
    if isinstance(conn, CheckResult):
        return conn
    try:
        conn.write(probe.request())
        needs_body = probe.expect is not None and "string" in probe.expect[0]
        done = _body_complete if needs_body else _head_complete
        try:
            await conn.wait_for(done, clock.read_deadline())
        except _Timeout:
            return CheckResult("L7TOUT", duration=clock.elapsed())
        status, code, info = judge_http(bytes(conn.buffer), probe.expect)
        return CheckResult(status, code, info, clock.elapsed())
    finally:
        conn.close()


# ---------------------------------------------------------------- mysql check

# MySQL client/server protocol, "Protocol::HandshakeV10" and
# "Protocol::HandshakeResponse41" (MySQL internals manual; MariaDB's
# "Connection" page documents the same packets).
MYSQL_PROTOCOL_V10 = 10
CLIENT_LONG_PASSWORD = 0x00000001
CLIENT_PROTOCOL_41 = 0x00000200
CLIENT_SECURE_CONNECTION = 0x00008000
MYSQL_CAPABILITIES = CLIENT_LONG_PASSWORD | CLIENT_PROTOCOL_41 | CLIENT_SECURE_CONNECTION
MYSQL_MAX_PACKET = 1 << 24
MYSQL_CHARSET_UTF8 = 33  # utf8_general_ci
COM_QUIT = 0x01


def _mysql_packet_complete(buf: bytearray) -> bool:
    if len(buf) < MYSQL_HEADER:
        return False
    length = buf[0] | buf[1] << 8 | buf[2] << 16
    return len(buf) >= MYSQL_HEADER + length


def _mysql_take_packet(buf: bytearray) -> tuple[int, bytes]:
    length = buf[0] | buf[1] << 8 | buf[2] << 16
    seq = buf[3]
    payload = bytes(buf[MYSQL_HEADER:MYSQL_HEADER + length])
    del buf[:MYSQL_HEADER + length]
    return seq, payload


def mysql_packet(seq: int, payload: bytes) -> bytes:
    return struct.pack("<I", len(payload))[:3] + bytes([seq & 0xFF]) + payload


def mysql_handshake_response(user: str) -> bytes:
    """HandshakeResponse41 with the user name and an empty password (sequence 1)."""
    payload = struct.pack("<IIB", MYSQL_CAPABILITIES, MYSQL_MAX_PACKET, MYSQL_CHARSET_UTF8)
    payload += b"\x00" * 23 + user.encode() + b"\x00"
    payload += b"\x00"  # auth-response length 0: no password
    return mysql_packet(1, payload)


def parse_mysql_error(payload: bytes) -> tuple[int, str]:
    """ERR_Packet: 0xFF, error code (2 bytes LE), ['#' + 5-byte SQL state], message.

    The SQL state stays in the text: HAProxy 2.6 logs it that way
    (info: "#28000Access denied for user ..."), and operators grep for it.
    """
    code = struct.unpack_from("<H", payload, 1)[0] if len(payload) >= 3 else 0
    return code, payload[3:].decode("utf-8", "replace")


def parse_mysql_handshake(payload: bytes) -> str | None:
    """Server version of a HandshakeV10 packet, or None if it is not one."""
    if not payload or payload[0] != MYSQL_PROTOCOL_V10:
        return None
    end = payload.find(b"\x00", 1)
    if end < 0:
        return None
    return payload[1:end].decode("latin-1")


async def mysql_check(target: Target, deadlines: Deadlines, user: str | None) -> CheckResult:
    """option mysql-check [user NAME].

    Without a user the manual says HAProxy sends nothing and only parses the
    server's first packet (a handshake passes, an error packet fails). With one it
    logs in with that user and no password, checks the server's OK or ERR packet,
    and sends COM_QUIT so the server logs a clean disconnect, not an aborted one.
    """
    clock = _Clock(deadlines)
    conn = await _open(target, clock)
    if isinstance(conn, CheckResult):
        return conn
    try:
        try:
            got = await conn.wait_for(_mysql_packet_complete, clock.read_deadline())
        except _Timeout:
            return CheckResult("L7TOUT", duration=clock.elapsed())
        if not got:
            return CheckResult("L7RSP", info="Connection closed before handshake",
                               duration=clock.elapsed())
        _, payload = _mysql_take_packet(conn.buffer)
        if payload[:1] == b"\xff":
            code, message = parse_mysql_error(payload)
            return CheckResult("L7STS", code, message, clock.elapsed())
        version = parse_mysql_handshake(payload)
        if version is None:
            return CheckResult("L7RSP", info="Invalid MySQL handshake",
                               duration=clock.elapsed())
        # HAProxy 2.6 reports check_code 0 for a passed mysql-check
        if user is None:
            return CheckResult("L7OK", 0, version, clock.elapsed())
        conn.write(mysql_handshake_response(user))
        try:
            got = await conn.wait_for(_mysql_packet_complete, clock.read_deadline())
        except _Timeout:
            return CheckResult("L7TOUT", duration=clock.elapsed())
        if not got:
            return CheckResult("L7RSP", info="Connection closed during login",
                               duration=clock.elapsed())
        _, payload = _mysql_take_packet(conn.buffer)
        if payload[:1] == b"\x00":
            conn.write(mysql_packet(0, bytes([COM_QUIT])))
            return CheckResult("L7OK", 0, version, clock.elapsed())
        if payload[:1] == b"\xff":
            code, message = parse_mysql_error(payload)
            return CheckResult("L7STS", code, message, clock.elapsed())
        return CheckResult("L7RSP", info="Unexpected MySQL login reply",
                           duration=clock.elapsed())
    finally:
        conn.close()


# ------------------------------------------------------------ ssl-hello check

# A TLS 1.2 ClientHello (RFC 5246 7.4.1.2) that OpenSSL 1.1/3.x servers answer
# with a ServerHello: ECDHE suites for RSA and ECDSA certificates, the groups and
# signature algorithms they need (RFC 8422, RFC 8446 4.2.3). HAProxy 2.6 sends
# an SSLv3 hello instead; OpenSSL servers answer that with an alert, which
# HAProxy accepts, but some TLS stacks (Python's asyncio one) just close, and
# HAProxy then marks a working TLS server L6RSP. Our hello gets a real
# ServerHello from both (a deliberate difference, pinned in tests/interop).
_CIPHERS = (0xC02B, 0xC02F, 0xC02C, 0xC030, 0xCCA9, 0xCCA8, 0x009E, 0x009C, 0x002F, 0x0035)
_GROUPS = (0x001D, 0x0017, 0x0018)  # x25519, secp256r1, secp384r1
_SIGALGS = (0x0403, 0x0503, 0x0603, 0x0804, 0x0805, 0x0806, 0x0401, 0x0501, 0x0601)


def _ext(kind: int, data: bytes) -> bytes:
    return struct.pack("!HH", kind, len(data)) + data


def tls_client_hello(random: bytes | None = None) -> bytes:
    random = random if random is not None else os.urandom(32)
    ciphers = b"".join(struct.pack("!H", c) for c in _CIPHERS)
    groups = b"".join(struct.pack("!H", g) for g in _GROUPS)
    sigalgs = b"".join(struct.pack("!H", s) for s in _SIGALGS)
    extensions = (
        _ext(0x000A, struct.pack("!H", len(groups)) + groups)   # supported_groups
        + _ext(0x000B, b"\x01\x00")                            # ec_point_formats
        + _ext(0x000D, struct.pack("!H", len(sigalgs)) + sigalgs)
        + _ext(0xFF01, b"\x00")                                # renegotiation_info
    )
    body = (b"\x03\x03" + random + b"\x00"
            + struct.pack("!H", len(ciphers)) + ciphers + b"\x01\x00"
            + struct.pack("!H", len(extensions)) + extensions)
    handshake = b"\x01" + struct.pack("!I", len(body))[1:] + body
    return b"\x16\x03\x01" + struct.pack("!H", len(handshake)) + handshake


TLS_HANDSHAKE = 0x16
TLS_ALERT = 0x15


async def ssl_hello_check(target: Target, deadlines: Deadlines) -> CheckResult:
    """option ssl-hello-chk: the server must answer a ClientHello in TLS."""
    clock = _Clock(deadlines)
    conn = await _open(target, clock)
    if isinstance(conn, CheckResult):
        return conn
    try:
        conn.write(tls_client_hello())
        try:
            await conn.wait_for(lambda b: len(b) >= 6, clock.read_deadline())
        except _Timeout:
            return CheckResult("L6TOUT", duration=clock.elapsed())
        data = bytes(conn.buffer)
        if len(data) >= 6 and data[0] == TLS_HANDSHAKE and data[1] == 3 and data[5] == 2:
            return CheckResult("L6OK", duration=clock.elapsed())
        # An alert record also proves a TLS stack is listening: HAProxy 2.6 marks
        # a server L6OK when it answers the hello with a handshake_failure alert
        # (observed with openssl s_server refusing HAProxy's SSLv3 hello).
        if len(data) >= 5 and data[0] == TLS_ALERT and data[1] == 3:
            return CheckResult("L6OK", duration=clock.elapsed())
        return CheckResult("L6RSP", duration=clock.elapsed())
    finally:
        conn.close()


# ------------------------------------------------------------------ tcp-check


@dataclass(frozen=True, slots=True)
class TcpStep:
    """One `tcp-check` rule. action: connect | send | expect."""

    action: str
    data: bytes = b""          # send: bytes to write; expect: the pattern
    kind: str = ""             # expect: string | rstring | binary | rbinary
    negate: bool = False
    port: int | None = None    # connect port
    text: str = ""             # the rule as written, for reasons
    tls: bool = False          # connect ssl
    sni: str | None = None     # connect sni NAME
    alpn: tuple[str, ...] = ()  # connect alpn h2,http/1.1

    def describe(self) -> str:
        """`expect string 'AMQP'`, as HAProxy names a rule in its reasons."""
        if self.action == "expect":
            bang = "! " if self.negate else ""
            if self.kind == "binary":
                pattern = self.data.hex()
            else:
                pattern = self.data.decode("latin-1")
            return f"expect {bang}{self.kind} '{pattern}'"
        return self.text

    @classmethod
    def from_words(cls, words: tuple[str, ...] | list[str]) -> "TcpStep":
        """Build from the words after `tcp-check`, e.g. ("expect", "string", "+PONG")."""
        words = list(words)
        action = words[0]
        text = " ".join(words)
        if action == "connect":
            port = sni = None
            if "port" in words:
                port = int(words[words.index("port") + 1])
            if "sni" in words:
                sni = words[words.index("sni") + 1]
            alpn = ()
            if "alpn" in words:
                alpn = tuple(words[words.index("alpn") + 1].split(","))
            return cls("connect", port=port, text=text, tls="ssl" in words, sni=sni, alpn=alpn)
        if action in ("send", "send-lf"):
            return cls("send", data=unescape(words[1]), text=text)
        if action == "send-binary":
            return cls("send", data=bytes.fromhex(words[1]), text=text)
        if action == "expect":
            rest = words[1:]
            negate = False
            if rest and rest[0] == "!":
                negate, rest = True, rest[1:]
            # skip modifiers (min-recv N, error-status X, ...) before the kind
            while rest and rest[0] not in ("string", "rstring", "binary", "rbinary"):
                rest = rest[2:]
            if len(rest) < 2:
                raise ValueError(f"tcp-check expect: missing match in {text!r}")
            kind, pattern = rest[0], rest[1]
            if kind == "binary":
                data = bytes.fromhex(pattern)
            else:
                data = unescape(pattern) if kind == "string" else pattern.encode("latin-1")
            return cls("expect", data=data, kind=kind, negate=negate, text=text)
        if action == "comment":
            return cls("comment", text=text)
        raise ValueError(f"unsupported tcp-check action {action!r}")


_ESCAPES = {"r": "\r", "n": "\n", "t": "\t", "\\": "\\", '"': '"', "'": "'", " ": " "}


def unescape(text: str) -> bytes:
    """Config string escapes: \\r \\n \\t \\\\ \\xHH."""
    out = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text):
            nxt = text[i + 1]
            if nxt == "x" and i + 3 < len(text) + 1:
                out.append(chr(int(text[i + 2:i + 4], 16)))
                i += 4
                continue
            if nxt in _ESCAPES:
                out.append(_ESCAPES[nxt])
                i += 2
                continue
        out.append(ch)
        i += 1
    return "".join(out).encode("latin-1")


def _expect_matches(step: TcpStep, buf: bytes) -> bool:
    if step.kind in ("string", "binary"):
        hit = step.data in buf
    elif step.kind == "rbinary":
        hit = re.search(step.data.decode("latin-1"), buf.hex().upper(), re.I) is not None
    else:
        hit = re.search(step.data, buf) is not None
    return hit != step.negate


async def tcp_check_rules(target: Target, deadlines: Deadlines,
                          steps: tuple[TcpStep, ...]) -> CheckResult:
    """option tcp-check: connect, then send and expect as the rules say.

    Each expect waits until its pattern is in what the server sent (consuming
    up to the match), the server closes, or the read deadline passes.
    """
    clock = _Clock(deadlines)
    # HAProxy numbers the configured rules only: an implicit first connect is
    # step 0 (observed: "send PING; expect string X" fails "at step 2")
    rules = [(n, s) for n, s in enumerate(steps, 1) if s.action != "comment"]
    if not rules or rules[0][1].action != "connect":
        rules.insert(0, (0, TcpStep("connect", text="connect", tls=target.tls)))
    conn: _Exchange | None = None
    saw_expect = False
    try:
        for number, step in rules:
            if step.action == "connect":
                if conn is not None:
                    conn.close()
                port = step.port or target.port
                if step.tls:
                    opened = await _open_tls(target.to_port(port), clock,
                                             step.sni or target.sni, step.alpn)
                else:
                    opened = await _open(target.to_port(port), clock)
                if isinstance(opened, CheckResult):
                    return opened
                conn = opened
            elif step.action == "send":
                conn.write(step.data)
            elif step.action == "expect":
                saw_expect = True
                try:
                    matched = await conn.wait_for(lambda b, s=step: _expect_matches(s, bytes(b)),
                                                  clock.read_deadline())
                except _Timeout:
                    return CheckResult("L7TOUT", info=f" at step {number} of tcp-check ({step.describe()})",
                                       duration=clock.elapsed())
                if not matched:
                    if step.negate and conn.eof:
                        matched = True
                    else:
                        return CheckResult(
                            "L7RSP",
                            info=f"TCPCHK did not match content '{step.data.decode('latin-1')}' at step {number}",
                            duration=clock.elapsed())
                conn.buffer.clear()
        # HAProxy 2.6 shows check_code 0 for a passed tcp-check with expects
        if saw_expect:
            return CheckResult("L7OK", 0, duration=clock.elapsed())
        return CheckResult("L4OK", duration=clock.elapsed())
    finally:
        if conn is not None:
            conn.close()


# ------------------------------------------------------------ service dialogues


async def dialogue_check(target: Target, deadlines: Deadlines,
                         dialogue: dialogues.Dialogue) -> CheckResult:
    """option redis-check, smtpchk, pgsql-check and ldap-check: play one of
    haply.health.dialogues' exchanges. A send drops what the server said
    before it; each judge waits, under `timeout check`, for its verdict."""
    clock = _Clock(deadlines)
    conn = await _open(target, clock)
    if isinstance(conn, CheckResult):
        return conn
    try:
        for step in dialogue:
            if isinstance(step, bytes):
                conn.buffer.clear()
                conn.write(step)
                continue
            verdict = None

            def decided(buf: bytearray, judge=step) -> bool:
                nonlocal verdict
                final = conn.eof or len(buf) >= MAX_RESPONSE
                verdict = judge(bytes(buf), final)
                return verdict is not None
            try:
                await conn.wait_for(decided, clock.read_deadline())
            except _Timeout:
                return CheckResult("L7TOUT", duration=clock.elapsed())
            if verdict is not dialogues.PASS:
                return CheckResult(verdict.status, verdict.code, verdict.info, clock.elapsed())
        return CheckResult("L7OK", 0, duration=clock.elapsed())
    finally:
        conn.close()


# ---------------------------------------------------------------- agent check

_AGENT_ADMIN = {"ready": "READY", "drain": "DRAIN", "maint": "MAINT"}
_AGENT_DOWN = ("down", "fail", "failed", "stopped")


def parse_agent_reply(line: str) -> AgentReply:
    """HAProxy manual, `agent-check`: words separated by spaces, tabs or commas.

    "75%" sets the weight relative to the configured one; ready/drain/maint set
    the administrative state; up/down/fail/stopped the operational one; "maxconn:N";
    anything after '#' is a description shown with a down/fail/stopped state.
    """
    line, _, description = line.partition("#")
    weight = admin = operational = maxconn = None
    state_word = ""
    for word in re.split(r"[\s,]+", line.strip()):
        low = word.lower()
        if not low:
            continue
        if low.endswith("%") and low[:-1].isdigit():
            weight = int(low[:-1])
        elif low in _AGENT_ADMIN:
            admin = _AGENT_ADMIN[low]
        elif low == "up":
            operational, state_word = "UP", low
        elif low in _AGENT_DOWN:
            operational, state_word = "DOWN", low
        elif low.startswith("maxconn:") and low[8:].isdigit():
            maxconn = int(low[8:])
    return AgentReply(weight, admin, operational, maxconn, description.strip(), state_word)


async def agent_check(target: Target, deadlines: Deadlines, send: bytes = b"") -> CheckResult:
    """Connect to the agent, optionally send `agent-send`, read one line.

    The manual: failing to reach the agent is not an error (the regular check
    tests connectivity); the scheduler ignores non-OK agent results.
    """
    clock = _Clock(deadlines)
    conn = await _open(target, clock)
    if isinstance(conn, CheckResult):
        return conn
    try:
        if send:
            conn.write(send)
        try:
            await conn.wait_for(lambda b: b"\n" in b, clock.read_deadline())
        except _Timeout:
            return CheckResult("L7TOUT", duration=clock.elapsed())
        line = bytes(conn.buffer).split(b"\n", 1)[0].decode("latin-1").strip()
        if not line:
            return CheckResult("L7RSP", info="empty agent reply", duration=clock.elapsed())
        reply = parse_agent_reply(line)
        return CheckResult("L7OK", info=line, duration=clock.elapsed(), agent=reply)
    finally:
        conn.close()


__all__ = [
    "AgentReply", "CheckResult", "Deadlines", "HttpProbe", "OK_STATUSES", "STATUS_WORDS",
    "Target", "TcpStep", "agent_check", "dialogue_check", "http_check", "judge_http", "mysql_check",
    "mysql_handshake_response", "parse_agent_reply", "parse_mysql_error",
    "parse_mysql_handshake", "ssl_hello_check", "tcp_check", "tcp_check_rules",
    "tls_client_hello", "unescape",
]
