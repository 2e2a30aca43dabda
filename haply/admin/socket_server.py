"""The `stats socket` listeners: unix or TCP, one-shot or interactive (`prompt`).

Framing as HAProxy's CLI (management guide, 9.3): a connection sends one line;
commands in it are separated by ';'; each answer ends with an empty line and the
connection closes, unless the line was `prompt`, which makes the session
interactive: answers are followed by the "> " prompt and the connection stays
open until `quit` or the client closes.
"""

from __future__ import annotations

import asyncio
import atexit
import os
import socket

from haply.admin import rates
from haply.admin.answers import with_severity
from haply.admin.runtime_api import LEVELS, PERMISSION_DENIED, Deferred, RuntimeApi, Unframed

# A command line longer than this is refused (HAProxy's tune.bufsize is 16 kB).
MAX_LINE = 16384
# Idle interactive sessions end after `stats timeout` (HAProxy's default 10 s).
DEFAULT_TIMEOUT = 10.0


class CliProtocol(asyncio.Protocol):
    def __init__(self, api: RuntimeApi, level: str, timeout: float):
        self.api = api
        self.level = level
        self.timeout = timeout
        self.buffer = b""
        self.interactive = False
        self.transport = None
        self.timer = None
        self.deferred: asyncio.Task | None = None  # a long command being answered
        self.severity_output = "none"  # `set severity-output`

    def connection_made(self, transport) -> None:
        self.transport = transport
        self._arm()

    def _arm(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
        loop = asyncio.get_running_loop()
        self.timer = loop.call_later(self.timeout, self._expire)

    def set_timeout(self, seconds: float) -> None:
        """`set timeout cli`: this session's idle timeout from now on."""
        self.timeout = seconds
        self._arm()

    def _expire(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def connection_lost(self, exc) -> None:
        if self.timer is not None:
            self.timer.cancel()
        self.transport = None

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        self._arm()
        while self.transport is not None and self.deferred is None:
            cut = self.buffer.find(b"\n")
            if cut < 0:
                if len(self.buffer) > MAX_LINE:
                    self.transport.close()
                return
            line, self.buffer = self.buffer[:cut], self.buffer[cut + 1:]
            self._line(line.decode("utf-8", "replace").rstrip("\r"))

    def eof_received(self) -> bool:
        if self.buffer.strip() and self.transport is not None:
            line, self.buffer = self.buffer, b""
            self._line(line.decode("utf-8", "replace").rstrip("\r"))
        return False

    def _line(self, line: str) -> None:
        self._commands(_split_commands(line), [], not self.interactive)

    def _commands(self, commands: list[str], out: list[str], close: bool) -> None:
        for index, command in enumerate(commands):
            word = command.strip()
            if word == "prompt":
                self.interactive = not self.interactive
                close = not self.interactive
                continue
            if word in ("quit", "exit"):
                self.transport.write("".join(out).encode())
                self.transport.close()
                return
            if word in ("user", "operator"):
                if LEVELS[word] > LEVELS[self.level]:  # a session may only lower its own level
                    out.append(with_severity(PERMISSION_DENIED, self.severity_output) + "\n")
                    continue
                self.level = word
                out.append("\n")  # HAProxy's empty answer
                continue
            answer = with_severity(self.api.execute(command, self.level, self),
                                   self.severity_output)
            if isinstance(answer, Deferred):
                self._defer(answer, commands[index + 1:], out, close)
                return
            out.append(answer if isinstance(answer, Unframed) else answer + "\n")
        if self.interactive:
            out.append("> ")
        self.transport.write("".join(out).encode())
        if close:
            self.transport.close()

    def _defer(self, answer: Deferred, rest: list[str], out: list[str], close: bool) -> None:
        """A long command (rolling restart): no reading and no idle timeout
        until its answer is written; the following commands run after it."""
        self.transport.pause_reading()
        if self.timer is not None:
            self.timer.cancel()
        task = asyncio.get_running_loop().create_task(answer.start())

        def done(task: asyncio.Task) -> None:
            if self.transport is None or task.cancelled():
                return
            error = task.exception()
            out.append((f"{error}\n" if error is not None else task.result()) + "\n")
            self.deferred = None
            self.transport.resume_reading()
            self._arm()
            self._commands(rest, out, close)
            if self.transport is not None and b"\n" in self.buffer:
                self.data_received(b"")  # lines that arrived meanwhile

        task.add_done_callback(done)
        self.deferred = task


def _split_commands(line: str) -> list[str]:
    """Split on ';' not escaped with a backslash."""
    parts, current, escaped = [], [], False
    for char in line:
        if escaped:
            current.append(char)
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == ";":
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return [p for p in parts if p.strip()] or [""]


def tcp_address(path: str) -> tuple[str, int] | None:
    """("127.0.0.1", 9999) for "ipv4@127.0.0.1:9999" / "127.0.0.1:9999"; None for a unix path."""
    text = path
    for prefix in ("ipv4@", "ipv6@", "tcp@", "tcp4@", "tcp6@"):
        if text.startswith(prefix):
            text = text[len(prefix):]
            break
    else:
        if text.startswith("/") or text.startswith("unix@") or ":" not in text:
            return None
    host, _, port = text.rpartition(":")
    return host.strip("[]") or "0.0.0.0", int(port)


class StatsSocketError(Exception):
    """A `stats socket` line that cannot be bound; the text names the line."""


def open_stats_sockets(config) -> list[tuple[object, socket.socket]]:
    """Bind every `stats socket` now (before privileges are dropped, as HAProxy
    does); all or nothing: on failure the ones already bound are closed."""
    opened: list[tuple[object, socket.socket]] = []
    try:
        for spec in config.global_.stats_sockets:
            opened.append((spec, _bind(spec)))
    except (OSError, KeyError) as exc:  # KeyError: unknown user or group
        for _, sock in opened:
            sock.close()
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        raise StatsSocketError(f"{spec.location}: cannot bind stats socket {spec.path}: "
                               f"{reason}") from exc
    return opened


def _bind(spec) -> socket.socket:
    address = tcp_address(spec.path)
    if address is None:
        path = spec.path.removeprefix("unix@")
        # Bound and set up under a temporary name, then renamed over the path
        # (as HAProxy does): a process started with -sf takes the path over
        # from the running one, which keeps answering its own connections,
        # and a client never finds the path refusing while it is set up.
        staging = f"{path}.{os.getpid()}.tmp"
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            if os.path.exists(staging):
                os.unlink(staging)
            sock.bind(staging)
            if spec.mode is not None:
                os.chmod(staging, spec.mode)
            _chown(staging, dict(spec.options))
            sock.listen(64)
            os.rename(staging, path)
        except BaseException:
            sock.close()
            if os.path.exists(staging):
                os.unlink(staging)
            raise
        inode = os.stat(path).st_ino
        # Removed at exit unless another process has bound the path since (reload).
        atexit.register(_unlink_if_ours, path, inode)
        return sock
    family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(64)
    except OSError:
        sock.close()
        raise
    return sock


def _chown(path: str, options: dict) -> None:
    """`user`/`uid` and `group`/`gid` of a unix stats socket (HAProxy's bind options)."""
    import grp
    import pwd
    uid = gid = -1
    if "uid" in options:
        uid = int(options["uid"])
    elif "user" in options:
        uid = pwd.getpwnam(options["user"]).pw_uid
    if "gid" in options:
        gid = int(options["gid"])
    elif "group" in options:
        gid = grp.getgrnam(options["group"]).gr_gid
    if uid != -1 or gid != -1:
        os.chown(path, uid, gid)


def _unlink_if_ours(path: str, inode: int) -> None:
    try:
        if os.stat(path).st_ino == inode:
            os.unlink(path)
    except OSError:
        pass


async def serve_stats_sockets(engine, opened) -> list[asyncio.AbstractServer]:
    """Serve the runtime API on sockets bound by open_stats_sockets."""
    api = RuntimeApi(engine)
    engine.runtime_api = api
    rates.for_engine(engine)  # `show stat` shows per-second rates
    timeout = engine.config.global_.stats_timeout or DEFAULT_TIMEOUT
    servers = []
    for spec, sock in opened:
        factory = (lambda level=spec.level: CliProtocol(api, level, timeout))
        if sock.family == socket.AF_UNIX:
            server = await engine.loop.create_unix_server(factory, sock=sock)
        else:
            server = await engine.loop.create_server(factory, sock=sock)
        servers.append(server)
    return servers


async def start_stats_sockets(engine) -> list[asyncio.AbstractServer]:
    """Bind and serve in one step (for an engine that did not bind them in prepare)."""
    return await serve_stats_sockets(engine, open_stats_sockets(engine.config))
