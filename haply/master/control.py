"""The master socket: `haply ctl reload`, programs, the workers' list.

A unix socket beside the first `stats socket` (PATH.master), or the one given
with `-S`, answering one command per connection like the stats socket:

  reload                       load the configuration again (hitless); the answer
                               starts with Success=1 or Success=0, then the
                               warnings or errors (HAProxy 2.7's master CLI form)
  show proc                    the master, its workers and their generations
  show programs                supervised programs (with programs configured)
  start|stop|restart program NAME[:INSTANCE]
  rolling-restart program NAME
  @N COMMAND                   a runtime API command run by worker N
  help
"""

from __future__ import annotations

import asyncio
import os
import socket
import time


MASTER_SUFFIX = ".master"
HELP = """\
The following commands are valid at this level:
  help                                    : this list
  reload                                  : load the configuration again and switch workers
  show proc                               : the master and its workers
  show programs                           : supervised programs
  start|stop|restart program NAME[:I]     : control a program (or one instance)
  rolling-restart program NAME            : restart instances one by one, drained first
  @<n> <command>                          : run a runtime API command in worker n
"""


def master_socket_path(config, explicit: str | None = None) -> str | None:
    if explicit:
        return explicit.removeprefix("unix@")
    for spec in config.global_.stats_sockets:
        path = spec.path.removeprefix("unix@")
        if path.startswith("/"):
            return path + MASTER_SUFFIX
    return None


class ControlServer:
    def __init__(self, master, path: str) -> None:
        self.master = master
        self.path = path
        self.server: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        # Bound and listening under a temporary name, then renamed over any
        # previous master's: a client never finds the path refusing.
        staging = f"{self.path}.{os.getpid()}"
        if os.path.exists(staging):
            os.unlink(staging)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.bind(staging)
            os.chmod(staging, 0o600)
            sock.listen(16)
            self.server = await asyncio.start_unix_server(self._serve, sock=sock)
            os.rename(staging, self.path)
        except BaseException:
            sock.close()
            if os.path.exists(staging):
                os.unlink(staging)
            raise

    def fds(self) -> list[int]:
        if self.server is None:
            return []
        return [s.fileno() for s in self.server.sockets]

    def close(self) -> None:
        if self.server is not None:
            self.server.close()
            try:
                os.unlink(self.path)
            except OSError:
                pass

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            line = (await asyncio.wait_for(reader.readline(), 30)).decode("utf-8", "replace")
            answer = await self.execute(line.strip())
            writer.write(answer.encode())
            await writer.drain()
        except (asyncio.TimeoutError, ConnectionError):
            pass
        finally:
            writer.close()

    async def execute(self, line: str) -> str:
        words = line.split()
        master = self.master
        if not words:
            return ""
        if words == ["help"]:
            return HELP
        if words == ["reload"]:
            ok, report = await master.reload()
            return f"Success={int(ok)}\n--\n{report}" + ("" if report.endswith("\n") or not report else "\n")
        if words == ["show", "proc"]:
            return show_proc(master)
        if words[0].startswith("@"):
            return await self._in_worker(words[0][1:], " ".join(words[1:]))
        if master.programs is not None and (
                words[:2] == ["show", "programs"] or "program" in words[:2]):
            if words[:2] == ["show", "programs"]:
                return master.programs.show()
            return await master.programs.command(words)
        if words[:2] == ["show", "programs"] or "program" in words[:2]:
            return "No programs are configured.\n"
        return f"Unknown command '{line}'. Try 'help'.\n"

    async def _in_worker(self, index: str, command: str) -> str:
        worker = self.master.workers.get(int(index)) if index.isdigit() else None
        if worker is None or worker.channel is None:
            return f"No such worker '{index}'.\n"
        reply = await self.master.query(worker, {"what": "command", "line": command})
        return reply.get("answer", reply.get("error", ""))


def show_proc(master) -> str:
    now = time.time()
    lines = ["#<PID>          <type>          <reloads>       <uptime>        <version>"]
    from haply import __version__
    lines.append(f"{os.getpid():<16}master          {master.reloads:<16}"
                 f"{_uptime(now - master.started_at):<16}{__version__}")
    lines.append("# workers")
    mono = time.monotonic()
    for worker in sorted(master.workers.values(), key=lambda w: w.index):
        lines.append(f"{worker.pid:<16}worker          {worker.index:<16}"
                     f"{_uptime(mono - worker.started_at):<16}{__version__}")
    if master.old:
        lines.append("# old workers")
        for worker in sorted(master.old, key=lambda w: (w.generation, w.index)):
            lines.append(f"{worker.pid:<16}worker          {worker.index:<16}"
                         f"{_uptime(mono - worker.started_at):<16}{__version__}")
    if master.vrrp is not None and master.vrrp.pid is not None:
        lines.append("# vrrp")
        lines.append(f"{master.vrrp.pid:<16}vrrp")
    return "\n".join(lines) + "\n"


def _uptime(seconds: float) -> str:
    seconds = int(max(0, seconds))
    return f"{seconds // 86400}d{seconds % 86400 // 3600:02d}h{seconds % 3600 // 60:02d}m{seconds % 60:02d}s"


class MasterProxyControl:
    """Server state across all workers, for the program supervisor's rolling
    restarts (haply.programs ProxyControl)."""

    def __init__(self, master) -> None:
        self.master = master

    async def set_server_state(self, backend: str, server: str, state: str) -> None:
        await self.master.broadcast_command(f"set server {backend}/{server} state {state}")

    async def server_status(self, backend: str, server: str) -> tuple[str, int]:
        master = self.master
        workers = [w for w in master.workers.values() if w.channel is not None]
        replies = await asyncio.gather(*(
            master.query(w, {"what": "server", "backend": backend, "server": server})
            for w in workers))
        sessions = sum(r.get("current_sessions", 0) for r in replies)
        operational = "DOWN"
        for worker, reply in zip(workers, replies):
            if worker.index == 0 or operational == "DOWN":
                operational = reply.get("operational", operational)
            if reply.get("admin") == "MAINT":
                operational = "MAINT"
        return operational, sessions
