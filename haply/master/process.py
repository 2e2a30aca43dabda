"""The master process: `haply -W` / `-Ws`, or whenever `nbthread` asks for more
than one worker or the configuration has programs.

    haply (master)   parses and validates, owns the listening sockets, supervises
     |               children, reloads and stops; serves no traffic itself
     +-- proxy workers   (haply.master.worker) N = nbthread
     +-- vrrp            (haply.vrrp.child) when keepalived.conf is loaded
     +-- programs        (haply.programs) supervised API workers

Reload (SIGUSR2, SIGHUP, or `reload` on the master socket): the new
configuration is loaded and its sockets opened first; if either fails the old
workers keep serving and the error is reported. Otherwise new workers start on
the same sockets (kept open by the master, so no connection is refused) with the
servers' states carried over; once every new worker is ready the old ones get
SIGUSR1: they stop accepting, finish what is in flight (bounded by
`hard-stop-after`) and exit.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import socket
import sys
import time
from dataclasses import dataclass, field

from haply.master.channel import Channel
from haply.master.sockets import SocketSet
from haply.master.worker import CHECKING_WORKER, WorkerSpec
from haply.master import worker as worker_module

# How long new workers may take to be ready before a start or reload fails.
READY_TIMEOUT = 30.0
# A worker that dies is restarted at once the first time; one that keeps dying
# is restarted after a delay doubling up to the maximum, so a crash loop does
# not eat the machine. A worker that ran longer than STABLE resets the delay.
RESTART_DELAY_FIRST = 0.1
RESTART_DELAY_MAX = 5.0
STABLE = 10.0
# How long a query to a worker may take.
QUERY_TIMEOUT = 5.0


@dataclass(eq=False)
class Worker:
    index: int
    generation: int
    pid: int
    channel_sock: socket.socket
    started_at: float
    channel: Channel | None = None
    pidfd: int | None = None
    ready: asyncio.Future | None = None
    exited: asyncio.Future | None = None
    stats: dict | None = None
    pending: dict = field(default_factory=dict)  # query id -> future


class Master:
    def __init__(self, options, config, loop: asyncio.AbstractEventLoop) -> None:
        self.options = options
        self.config = config
        self.loop = loop
        self.generation = 0
        self.sockets: SocketSet | None = None
        # Socket sets of earlier generations whose workers are still finishing:
        # their sockets that no later set kept are closed once those are gone.
        self._retired: list[tuple[int, SocketSet]] = []
        self.workers: dict[int, Worker] = {}  # current generation, by index
        self.old: set[Worker] = set()  # previous generations, finishing
        self.vrrp = None
        self.programs = None
        self.control = None
        self.stopping = False
        self.state_text = ""
        self.restart_delay: dict[int, float] = {}
        # Held by a reload, and by the start: a reload signalled while the
        # first workers start waits for them.
        self.reloading = asyncio.Lock()
        self._query_ids = itertools.count(1)
        self.reloads = 0
        self.started_at = time.time()

    @property
    def worker_count(self) -> int:
        return max(1, self.config.global_.nbthread)

    # ------------------------------------------------------------- start

    def bind(self) -> None:
        """Open every socket of the configuration (raises on a bind error)."""
        self.sockets = SocketSet.open(self.config, self.worker_count)

    async def start(self) -> None:
        async with self.reloading:
            self.generation = 1
            workers = [self._spawn(i) for i in range(self.worker_count)]
            self.workers = {w.index: w for w in workers}
            await self._wait_ready(workers)
            self._start_vrrp()
            await self._start_programs()

    def _spawn(self, index: int, config=None, sockets=None, generation=None) -> Worker:
        config = config or self.config
        sockets = sockets or self.sockets
        generation = generation or self.generation
        parent_sock, child_sock = socket.socketpair()
        spec = WorkerSpec(config=config, index=index, count=max(1, config.global_.nbthread),
                          generation=generation, sockets=sockets,
                          channel_fd=child_sock.fileno(), state_text=self.state_text)
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            parent_sock.detach()  # closed by the worker's descriptor sweep
            worker_module.run(spec)  # never returns
        child_sock.close()
        worker = Worker(index, generation, pid, parent_sock, time.monotonic())
        worker.ready = self.loop.create_future()
        worker.exited = self.loop.create_future()
        worker.pidfd = os.pidfd_open(pid)
        self.loop.add_reader(worker.pidfd, self._reap, worker)
        self.loop.create_task(self._connect(worker))
        return worker

    async def _connect(self, worker: Worker) -> None:
        _, channel = await self.loop.connect_accepted_socket(
            lambda: Channel(lambda m: self._on_message(worker, m)), sock=worker.channel_sock)
        worker.channel = channel

    async def _wait_ready(self, workers: list[Worker]) -> None:
        """Every worker ready, or RuntimeError naming the first that failed."""
        waits = [asyncio.ensure_future(self._ready_or_exit(w)) for w in workers]
        try:
            async with asyncio.timeout(READY_TIMEOUT):
                for wait in waits:
                    await wait
        except TimeoutError:
            raise RuntimeError(f"workers not ready after {READY_TIMEOUT:.0f}s") from None
        finally:
            for wait in waits:
                wait.cancel()

    @staticmethod
    async def _ready_or_exit(worker: Worker) -> None:
        done, _ = await asyncio.wait([worker.ready, worker.exited],
                                     return_when=asyncio.FIRST_COMPLETED)
        if not worker.ready.done():
            raise RuntimeError(f"worker {worker.index} (pid {worker.pid}) exited during start "
                               f"with status {worker.exited.result()}")

    # ------------------------------------------------------------- messages

    def _on_message(self, worker: Worker, message: dict) -> None:
        kind = message.get("t")
        if kind == "ready":
            if not worker.ready.done():
                worker.ready.set_result(True)
            return
        if kind == "reply":
            future = worker.pending.pop(message.get("id"), None)
            if future is not None and not future.done():
                future.set_result(message)
            return
        if worker.generation != self.generation:
            return  # a finishing worker's news is no longer anyone's business
        if kind == "stats":
            worker.stats = {"rows": message["rows"], "info": message["info"]}
            if worker.index == CHECKING_WORKER or not self.state_text:
                self.state_text = message.get("state", "")
            if worker.index == CHECKING_WORKER:
                self._share_stats()
        elif kind in ("health", "command", "dns"):
            for other in self.workers.values():
                if other is not worker and other.channel is not None:
                    other.channel.send(message)
            if kind == "health" and self.programs is not None:
                react = self.programs.server_up if message["up"] else self.programs.server_down
                react(message["backend"], message["server"])

    def _share_stats(self) -> None:
        """Every worker gets everyone's latest rows (once a period, paced by
        the checking worker's reports)."""
        if len(self.workers) < 2:
            return
        stats = {str(w.index): w.stats for w in self.workers.values() if w.stats is not None}
        for worker in self.workers.values():
            if worker.channel is not None:
                worker.channel.send({"t": "peers", "stats": stats})

    async def query(self, worker: Worker, message: dict) -> dict:
        ident = next(self._query_ids)
        future = self.loop.create_future()
        worker.pending[ident] = future
        worker.channel.send({"t": "query", "id": ident, **message})
        try:
            async with asyncio.timeout(QUERY_TIMEOUT):
                return await future
        finally:
            worker.pending.pop(ident, None)

    async def broadcast_command(self, line: str) -> list[str]:
        """Run a runtime API command in every current worker; their answers."""
        replies = await asyncio.gather(*(
            self.query(w, {"what": "command", "line": line, "relay": False})
            for w in self.workers.values()
            if w.channel is not None))
        return [r.get("answer", r.get("error", "")) for r in replies]

    # ------------------------------------------------------------- supervision

    def _reap(self, worker: Worker) -> None:
        self.loop.remove_reader(worker.pidfd)
        os.close(worker.pidfd)
        worker.pidfd = None
        try:
            _, status = os.waitpid(worker.pid, 0)
            code = os.waitstatus_to_exitcode(status)
        except ChildProcessError:
            code = -1
        worker.exited.set_result(code)
        if worker.channel is not None:
            worker.channel.close()
        else:
            worker.channel_sock.close()
        for future in worker.pending.values():
            if not future.done():
                future.set_exception(ConnectionError(f"worker {worker.index} exited"))
        if worker in self.old:
            self.old.discard(worker)
            self._release_old_sockets()
            return
        if self.stopping or self.workers.get(worker.index) is not worker:
            return
        if not worker.ready.done():
            return  # failed during start: the start or reload reports it
        lived = time.monotonic() - worker.started_at
        delay = 0.0 if lived > STABLE else self.restart_delay.get(worker.index, 0.0)
        how = f"status {code}" if code >= 0 else f"signal {-code}"
        print(f"[WARNING] worker {worker.index} (pid {worker.pid}) exited with {how}; "
              f"restarting{f' in {delay:.1f}s' if delay else ''}", file=sys.stderr)
        self.restart_delay[worker.index] = min(max(delay * 2, RESTART_DELAY_FIRST),
                                               RESTART_DELAY_MAX)
        self.loop.call_later(delay, self._restart, worker.index, worker.generation)

    def _restart(self, index: int, generation: int) -> None:
        if self.stopping or generation != self.generation:
            return
        self.workers[index] = self._spawn(index)

    def _release_old_sockets(self) -> None:
        finishing = {w.generation for w in self.old}
        done = [(g, sockets) for g, sockets in self._retired if g not in finishing]
        if not done:
            return
        self._retired = [(g, sockets) for g, sockets in self._retired if g in finishing]
        keep = [self.sockets] + [sockets for _, sockets in self._retired]
        for _, sockets in done:
            sockets.close_unless_in(keep)

    # ------------------------------------------------------------- reload

    async def reload(self) -> tuple[bool, str]:
        """Load the configuration again and switch workers; (ok, report)."""
        async with self.reloading:
            if self.stopping:  # signalled during a start that failed, or a stop
                return False, "stopping: not reloaded"
            return await self._reload()

    async def _reload(self) -> tuple[bool, str]:
        from haply.config import load
        from haply.config.diagnostics import ConfigError
        from haply.proxy.engine import StartError
        from haply.admin.socket_server import StatsSocketError
        from haply.proxy.listeners import BindError

        from haply import systemd
        notify(*systemd.reloading())
        try:
            try:
                loaded = load(self.options.files, os.environ)
            except ConfigError as exc:
                text = "\n".join(str(d) for d in exc.diagnostics)
                return False, f"configuration not loaded, the old one keeps running:\n{text}"
            except OSError as exc:
                return False, f"cannot read configuration, the old one keeps running: {exc}"
            from haply.cli import with_options
            config = with_options(loaded.config, self.options)
            warnings = "".join(f"{d}\n" for d in loaded.diagnostics.warnings)
            try:
                validate(config, self.loop)
            except StartError as exc:
                return False, f"{exc}\nthe old configuration keeps running"
            count = max(1, config.global_.nbthread)
            from haply.limits import LimitError, ensure_nofile
            try:
                limit_warning = ensure_nofile(config)
            except LimitError as exc:
                return False, f"{exc}\nthe old configuration keeps running"
            if limit_warning:
                warnings += f"{limit_warning}\n"
            try:
                sockets = SocketSet.open(config, count, previous=self.sockets)
            except (BindError, StatsSocketError, OSError) as exc:
                return False, f"{exc}\nthe old configuration keeps running"
            state = await self._fresh_state()
            generation = self.generation + 1
            self.state_text = state
            new = [self._spawn(i, config, sockets, generation) for i in range(count)]
            try:
                await self._wait_ready(new)
            except RuntimeError as exc:
                for worker in new:
                    _signal(worker.pid, signal.SIGKILL)
                sockets.close_unless_in([self.sockets])  # close only what was new
                return False, f"new workers failed ({exc}); the old configuration keeps running"
            old = list(self.workers.values())
            self._retired.append((self.generation, self.sockets))
            self.sockets = sockets
            self.config = config
            self.generation = generation
            self.workers = {w.index: w for w in new}
            self.old.update(old)
            for worker in old:
                _signal(worker.pid, signal.SIGUSR1)  # soft stop: finish in flight, exit
            self._release_old_sockets()
            if self.programs is not None:
                from haply.programs.spec import instance_servers
                self.programs.reconfigure(config.programs, servers=instance_servers(config))
            elif config.programs:
                await self._start_programs()
            self.reloads += 1
            print(f"[NOTICE] reloaded: {count} worker(s) of generation {generation} serving; "
                  f"{len(old)} old worker(s) finishing", file=sys.stderr)
            return True, warnings
        finally:
            notify("READY=1")

    async def _fresh_state(self) -> str:
        checking = self.workers.get(CHECKING_WORKER)
        if checking is not None and checking.channel is not None and not checking.exited.done():
            try:
                reply = await self.query(checking, {"what": "servers_state"})
                return reply.get("answer", self.state_text)
            except (TimeoutError, ConnectionError):
                pass
        return self.state_text

    # ------------------------------------------------------------- children

    def _start_vrrp(self) -> None:
        if not self.config.vrrp:
            return
        from haply.cli import VrrpSupervisor
        self.vrrp = VrrpSupervisor(self.config, self.loop, os.getpid(), self._inherited_fds)
        self.vrrp.start()

    def _inherited_fds(self) -> list[int]:
        """Descriptors a child that is not a worker must close."""
        fds = self.sockets.fds() if self.sockets else []
        fds += [w.channel_sock.fileno() for w in self._all_workers()
                if w.channel_sock.fileno() >= 0]
        if self.control is not None:
            fds += self.control.fds()
        return fds

    def _all_workers(self):
        return list(self.workers.values()) + list(self.old)

    async def _start_programs(self) -> None:
        programs = self.config.programs
        if not programs:
            return
        from haply.master.control import MasterProxyControl
        from haply.programs.spec import instance_servers
        from haply.programs.supervisor import ProgramSupervisor
        self.programs = ProgramSupervisor(programs, self.loop, MasterProxyControl(self),
                                          _log, servers=instance_servers(self.config))
        self.programs.start()

    # ------------------------------------------------------------- stop

    async def stop(self, signum: int, forced: asyncio.Future) -> None:
        """Stop every worker with signum (they drain), then VRRP and programs."""
        self.stopping = True
        notify("STOPPING=1")
        workers = self._all_workers()
        for worker in workers:
            _signal(worker.pid, signum)
        waits = [w.exited for w in workers if not w.exited.done()]
        if waits:
            all_done = asyncio.ensure_future(asyncio.wait(waits))
            await asyncio.wait([all_done, forced], return_when=asyncio.FIRST_COMPLETED)
            if forced.done():
                for worker in workers:
                    _signal(worker.pid, signal.SIGTERM)  # their second signal: stop now
                await all_done
        if self.programs is not None:
            await self.programs.stop()
        if self.vrrp is not None:
            self.vrrp.stop()
        if self.control is not None:
            self.control.close()
        if self.sockets is not None:
            self.sockets.close()


def validate(config, loop) -> None:
    """What a worker would refuse at start, checked before any worker starts:
    server addresses, certificates and log formats (StartError naming the line)."""
    from haply.proxy.engine import Engine
    engine = Engine(config, loop, sockets=_NoSockets())
    engine.load_state_files = False
    try:
        engine.prepare()
    finally:
        logging = getattr(engine, "logging", None)
        if logging is not None:
            logging.close()


class _NoSockets:
    """Listeners for a validation-only Engine: none are needed."""

    def listener(self, bind):
        return None

    def stats_sockets(self, config):
        return []


def notify(*states: str) -> None:
    """systemd's sd_notify when started with -Ws (haply.systemd)."""
    if not os.environ.get("NOTIFY_SOCKET") or not NOTIFY_ENABLED[0]:
        return
    from haply import systemd
    systemd.notify(*states)


NOTIFY_ENABLED = [False]


def _signal(pid: int, signum: int) -> None:
    try:
        os.kill(pid, signum)
    except ProcessLookupError:
        pass


def _log(message: str) -> None:
    print(message, file=sys.stderr)
