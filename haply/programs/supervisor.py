"""ProgramSupervisor: runs the instances of `program` sections as child processes.

The decisions are policy.Instance's; this module carries them out in an
asyncio loop (uvloop in haply): it spawns children, watches them exit, keeps
one timer per instance, and answers the control commands of the runtime API.

Children:
- started with asyncio subprocesses holding no descriptor of ours beyond
  stdio (the supervising process holds listening sockets that must not leak
  into an API worker; see children.child_setup), in their own
  session and so their own process group (a stop reaches the worker's own
  children too), with the program's user/group, environment and directory,
  stdout/stderr appended to their files (else /dev/null), stdin /dev/null;
- watched without polling: `await process.wait()` (the loop's child watcher,
  woken by SIGCHLD); a daemonizing command (`option daemon`, monit's start
  program) leaves a process that is not our child, watched with a pidfd
  (Linux 5.3) that becomes readable when it exits;
- stopped with SIGTERM to the group (or the stop command), SIGKILL after
  `timeout stop`.

Reload (`reconfigure`): a program whose definition did not change keeps its
processes, so a reload of haply costs no API capacity; a removed program is
stopped; a new one is started; a changed one is replaced when it has
`option start-on-reload` (the default): by a rolling restart into the new
definition when its instances and ports did not change (no capacity lost),
else all at once. Under `no option start-on-reload` its
running processes are left alone and the new definition applies from their
next start (an operator restart, a rolling restart, a crash); instances added
are started and instances beyond the new count stopped.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace

from haply.config.diagnostics import NOWHERE
from haply.config.model import Program
from haply.programs import children, policy, spec
from haply.programs.children import SpawnError
from haply.programs.policy import FATAL, RUNNING, STOPPED, Instance

# A daemonizing start command must have forked and exited by then (monit's
# default start timeout is 30 s).
START_TIMEOUT = 30.0
# A daemon's pidfile may be written by the daemon just after its parent exits.
PIDFILE_WAIT = 2.0
# After SIGKILL the kernel reaps at once; this bounds a wait on a process
# stuck in uninterruptible sleep (D state), which nothing can kill.
KILL_GRACE = 5.0
# How often a daemon's pidfile is read while its start command's child
# writes it (within PIDFILE_WAIT, once per start).
PIDFILE_POLL = 0.05
# How long `start` / `restart` commands wait for the outcome before answering.
COMMAND_WAIT = 30.0
# A new process is not restarted for failing health checks before it passed
# one (the host calls server_up) or before this long: an API worker that takes
# a few seconds to listen would otherwise be killed while starting, again and
# again (monit's "start delay" serves the same purpose).
STARTUP_GRACE = 10.0


LEVEL_WORDS = {"info": "NOTICE", "warning": "WARNING", "alert": "ALERT"}


def _same(a: Program, b: Program) -> bool:
    return replace(a, location=NOWHERE) == replace(b, location=NOWHERE)


class _Runner:
    """One instance: its state machine plus the process, timer and waiters."""

    def __init__(self, instance: Instance):
        self.instance = instance
        self.process: asyncio.subprocess.Process | None = None
        self.pidfd: int | None = None
        self.pidfile: str | None = None  # written by us, removed at exit
        self.timer: asyncio.TimerHandle | None = None
        self.waiters: list[asyncio.Future] = []
        self.task: asyncio.Task | None = None
        self.passed_check = False  # since the current process started


class ProgramSupervisor:
    def __init__(self, programs: Iterable[Program], loop: asyncio.AbstractEventLoop, proxy=None,
                 log: logging.Logger | Callable[[str], None] | None = None,
                 servers: Mapping[tuple[str, int], list[tuple[str, str]]] | None = None,
                 environ: Mapping[str, str] | None = None):
        self.loop = loop
        self.proxy = proxy  # haply.programs.control.ProxyControl, or None without a proxy
        self.log = log or logging.getLogger("haply.programs")
        self.environ = dict(os.environ if environ is None else environ)
        self.programs: dict[str, Program] = {}
        self.runners: dict[str, list[_Runner]] = {}
        # (program, instance) -> [(backend, server)] from spec.instance_servers;
        # without it a DOWN server is matched by the name program-servers
        # gives (PROGRAM-N), and a rolling restart cannot drain.
        self.servers: dict[tuple[str, int], list[tuple[str, str]]] = dict(servers or {})
        self.by_name = servers is None
        self.rolling: set[str] = set()  # programs in a rolling restart
        self.retired: list[_Runner] = []  # removed by a reload, still stopping
        self.tasks: set[asyncio.Task] = set()
        self.stopping = False
        for program in programs:
            self._add(program)

    # ------------------------------------------------------------- lifecycle

    def _add(self, program: Program) -> None:
        self.programs[program.name] = program
        self.runners[program.name] = [_Runner(Instance(program, n)) for n in range(1, program.instances + 1)]

    def start(self, reloading: bool = False) -> None:
        """Start every instance; on a reload (a new supervisor taking over
        from an old process) programs with `no option start-on-reload` are
        left to the instances already running."""
        for name, runners in self.runners.items():
            if reloading and not self.programs[name].start_on_reload:
                continue
            for runner in runners:
                self._apply(runner, runner.instance.start(self.loop.time()))

    async def stop(self) -> None:
        """Stop everything: SIGTERM (or the stop command), SIGKILL after the
        stop timeout, and wait until every process is reaped."""
        self.stopping = True
        runners = [r for rs in self.runners.values() for r in rs] + self.retired
        for runner in runners:
            self._apply(runner, runner.instance.stop(self.loop.time()))
        await asyncio.gather(*(self._until(r, lambda i: i.state in (STOPPED, FATAL),
                                           r.instance.program.stop_timeout + KILL_GRACE) for r in runners))
        for task in list(self.tasks):
            task.cancel()
        for runner in runners:
            self._close_pidfd(runner)

    def reconfigure(self, programs: Iterable[Program],
                    servers: Mapping[tuple[str, int], list[tuple[str, str]]] | None = None) -> None:
        """Apply a reloaded configuration (see the module docstring)."""
        if servers is not None:
            self.servers, self.by_name = dict(servers), False
        new = {p.name: p for p in programs}
        now = self.loop.time()
        for name in list(self.programs):
            if name not in new:
                self._retire(name)
        for name, program in new.items():
            old = self.programs.get(name)
            if old is None:
                self._add(program)
                for runner in self.runners[name]:
                    self._apply(runner, runner.instance.start(now))
            elif _same(old, program):
                self.programs[name] = program  # new locations for messages
            elif program.start_on_reload and (old.instances, old.port) == (program.instances, program.port) \
                    and name not in self.rolling:
                self._log("info", f"program {name}: definition changed, rolling restart into it")
                self._redefine(program, now)
                self._track(self._roll_after_reload(name))
            elif program.start_on_reload:
                self._log("info", f"program {name}: definition changed, replacing its instances")
                self._retire(name)
                self._add(program)
                for runner in self.runners[name]:
                    self._apply(runner, runner.instance.start(now))
            else:
                self._log("info", f"program {name}: definition changed; running instances kept (no option "
                                  "start-on-reload), the new one applies from their next start")
                self._redefine(program, now)

    async def _roll_after_reload(self, name: str) -> None:
        runners = self.runners.get(name)
        if runners:
            for line in (await self.rolling_restart(list(runners))).splitlines():
                self._log("info", line)

    def _redefine(self, program: Program, now: float) -> None:
        runners = self.runners[program.name]
        self.programs[program.name] = program
        for runner in runners[:program.instances]:
            runner.instance.program = program
        for runner in runners[program.instances:]:
            self._stop_retired(runner)
        del runners[program.instances:]
        for number in range(len(runners) + 1, program.instances + 1):
            runner = _Runner(Instance(program, number))
            runners.append(runner)
            self._apply(runner, runner.instance.start(now))

    def _retire(self, name: str) -> None:
        self.programs.pop(name)
        for runner in self.runners.pop(name):
            self._stop_retired(runner)

    def _stop_retired(self, runner: _Runner) -> None:
        self.retired.append(runner)
        self._apply(runner, runner.instance.stop(self.loop.time()))
        self._track(self._forget_when_stopped(runner))

    async def _forget_when_stopped(self, runner: _Runner) -> None:
        await self._until(runner, lambda i: i.state in (STOPPED, FATAL),
                          runner.instance.program.stop_timeout + KILL_GRACE)
        if runner.instance.state in (STOPPED, FATAL) and runner in self.retired:
            self.retired.remove(runner)

    # -------------------------------------------------------------- actions

    def _apply(self, runner: _Runner, actions: list) -> None:
        for action in actions:
            if isinstance(action, policy.Spawn):
                runner.passed_check = False
                runner.task = self._track(self._spawn(runner))
            elif isinstance(action, policy.Terminate):
                self._terminate(runner)
            elif isinstance(action, policy.Kill):
                self._signal(runner, signal.SIGKILL)
            elif isinstance(action, policy.Wake):
                if runner.timer is not None:
                    runner.timer.cancel()
                    runner.timer = None
                if action.at is not None:
                    runner.timer = self.loop.call_at(action.at, self._timer, runner)
            elif isinstance(action, policy.Log):
                self._log(action.level, action.message)
        waiters, runner.waiters = runner.waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    def _timer(self, runner: _Runner) -> None:
        runner.timer = None
        self._apply(runner, runner.instance.timer(self.loop.time()))

    def _track(self, coroutine) -> asyncio.Task:
        task = self.loop.create_task(coroutine)
        self.tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task) -> None:
        self.tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            error = task.exception()
            self._log("alert", f"program supervisor task failed: {type(error).__name__}: {error}")

    def _log(self, level: str, message: str) -> None:
        """To a logging.Logger, or to a plain function of one line (the
        master's stderr log), prefixed with HAProxy's level words."""
        if isinstance(self.log, logging.Logger):
            {"info": self.log.info, "warning": self.log.warning}.get(level, self.log.error)(message)
        else:
            self.log(f"[{LEVEL_WORDS.get(level, 'ALERT')}] {message}")

    async def _until(self, runner: _Runner, predicate: Callable[[Instance], bool], timeout: float) -> bool:
        """Wait until the instance satisfies predicate (True) or timeout (False)."""
        deadline = self.loop.time() + timeout
        while not predicate(runner.instance):
            remaining = deadline - self.loop.time()
            if remaining <= 0:
                return False
            waiter = self.loop.create_future()
            runner.waiters.append(waiter)
            try:
                await asyncio.wait_for(waiter, remaining)
            except TimeoutError:
                return predicate(runner.instance)
        return True

    # ------------------------------------------------------------ processes

    async def _spawn(self, runner: _Runner) -> None:
        instance = runner.instance
        program = instance.program
        launch = spec.launch(program, instance.number, self.environ)
        try:
            if program.daemon:
                pid = await self._spawn_daemon(runner, launch, program)
            else:
                try:
                    process = await children.spawn(launch.argv, launch, program)
                except FileNotFoundError:
                    raise SpawnError(f"cannot run {launch.argv[0]}: no such file") from None
                pid = process.pid
                runner.process = process
                if launch.pidfile:
                    try:
                        children.write_pidfile(launch.pidfile, pid)
                        runner.pidfile = launch.pidfile
                    except OSError as exc:  # the process runs: watch it all the same
                        self._log("warning", f"program {instance.name}: cannot write pidfile "
                                             f"{launch.pidfile}: {exc.strerror}")
        except (OSError, SpawnError, subprocess.SubprocessError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            self._apply(runner, instance.spawn_failed(self.loop.time(), reason))
            return
        self._apply(runner, instance.spawned(self.loop.time(), pid))
        if runner.process is not None:
            await self._watch(runner, runner.process)

    async def _watch(self, runner: _Runner, process: asyncio.subprocess.Process) -> None:
        code = await process.wait()
        runner.process = None
        self._remove_pidfile(runner)
        how = children.describe_exit(code)
        self._apply(runner, runner.instance.exited(self.loop.time(), how))

    async def _spawn_daemon(self, runner: _Runner, launch: spec.Launch, program: Program) -> int:
        """Run a command that forks; the process left in the pidfile is watched.

        A pidfile naming a live process before the command runs means the
        daemon is already there (haply restarted, not the daemon): it is
        adopted instead of started twice, as monit does."""
        adopted = children.open_pid(launch.pidfile)
        if adopted is not None:
            pid, fd = adopted
            self._log("info", f"program {runner.instance.name}: pid {pid} from {launch.pidfile} is "
                              "running, adopted")
            self._watch_pidfd(runner, fd)
            return pid
        try:
            process = await children.spawn(launch.argv, launch, program)
        except FileNotFoundError:
            raise SpawnError(f"cannot run {launch.argv[0]}: no such file") from None
        try:
            code = await asyncio.wait_for(process.wait(), START_TIMEOUT)
        except TimeoutError:
            os.killpg(process.pid, signal.SIGKILL)
            await process.wait()
            raise SpawnError(f"start command still running after {START_TIMEOUT:g}s") from None
        if code != 0:
            raise SpawnError(f"start command failed ({children.describe_exit(code)})")
        deadline = self.loop.time() + PIDFILE_WAIT
        while (found := children.open_pid(launch.pidfile)) is None:
            if self.loop.time() >= deadline:
                raise SpawnError(f"no running process named in {launch.pidfile} after the start command")
            # the daemon may write the file just after its parent exited (or
            # a stale one is still there); asking a few times within
            # PIDFILE_WAIT is cheaper than an inotify watch, once per start
            await asyncio.sleep(PIDFILE_POLL)
        pid, fd = found
        self._watch_pidfd(runner, fd)
        return pid

    def _watch_pidfd(self, runner: _Runner, fd: int) -> None:
        runner.pidfd = fd
        self.loop.add_reader(fd, self._daemon_exited, runner, fd)

    def _daemon_exited(self, runner: _Runner, fd: int) -> None:
        if runner.pidfd != fd:
            return
        self._close_pidfd(runner)
        # not our child: its exit status belongs to its own parent
        self._apply(runner, runner.instance.exited(self.loop.time(), "exited"))

    def _close_pidfd(self, runner: _Runner) -> None:
        if runner.pidfd is not None:
            self.loop.remove_reader(runner.pidfd)
            os.close(runner.pidfd)
            runner.pidfd = None

    def _remove_pidfile(self, runner: _Runner) -> None:
        if runner.pidfile:
            try:
                os.unlink(runner.pidfile)
            except OSError:
                pass
            runner.pidfile = None

    def _terminate(self, runner: _Runner) -> None:
        program = runner.instance.program
        if program.stop_command:
            launch = spec.launch(program, runner.instance.number, self.environ)
            self._track(self._stop_command(runner, launch))
        else:
            self._signal(runner, signal.SIGTERM)

    async def _stop_command(self, runner: _Runner, launch: spec.Launch) -> None:
        program = runner.instance.program
        try:
            process = await children.spawn(launch.stop_argv, launch, program)
        except (OSError, SpawnError, subprocess.SubprocessError) as exc:
            self._log("warning", f"program {runner.instance.name}: stop command failed ({exc}); sending SIGTERM")
            self._signal(runner, signal.SIGTERM)
            return
        try:
            await asyncio.wait_for(process.wait(), program.stop_timeout)
        except TimeoutError:
            os.killpg(process.pid, signal.SIGKILL)
            await process.wait()

    def _signal(self, runner: _Runner, number: int) -> None:
        pid = runner.instance.pid
        if pid is None:
            return
        try:
            if runner.process is not None:
                os.killpg(pid, number)  # the child leads its own group
            else:
                os.kill(pid, number)  # a daemon's process: not necessarily a group leader
        except ProcessLookupError:
            pass

    # ------------------------------------------------------------- control

    def _runner_of(self, backend: str, server: str) -> _Runner | None:
        for (name, number), places in self.servers.items():
            if (backend, server) in places and name in self.runners and number <= len(self.runners[name]):
                return self.runners[name][number - 1]
        if self.by_name:
            name, _, number = server.rpartition("-")
            runners = self.runners.get(name, [])
            if number.isdigit() and 1 <= int(number) <= len(runners) and self.programs[name].port is not None:
                return runners[int(number) - 1]
        return None

    def server_up(self, backend: str, server: str) -> None:
        """Health checks marked a server UP: its process has started serving."""
        runner = self._runner_of(backend, server)
        if runner is not None and runner.instance.state == RUNNING:
            runner.passed_check = True

    def server_down(self, backend: str, server: str) -> None:
        """Health checks marked a server DOWN: restart it when it is a program
        instance that is running and has started (passed a check, or is older
        than STARTUP_GRACE), unless a rolling restart is handling it."""
        runner = self._runner_of(backend, server)
        if runner is None or self.stopping or runner.instance.program.name in self.rolling:
            return
        now = self.loop.time()
        uptime = runner.instance.uptime(now)
        if not runner.passed_check and (uptime is None or uptime < STARTUP_GRACE):
            self._log("info", f"program {runner.instance.name}: {backend}/{server} DOWN while starting; "
                              "not restarted")
            return
        self._apply(runner, runner.instance.check_failed(now))

    def select(self, target: str) -> list[_Runner]:
        """NAME, NAME:INSTANCE, or a service group; [] when nothing matches.
        (A program name may itself contain ':', hence the last one counts.)"""
        if target in self.runners:
            return list(self.runners[target])
        name, sep, number = target.rpartition(":")
        if sep and name in self.runners:
            runners = self.runners[name]
            if number.isdigit() and 1 <= int(number) <= len(runners):
                return [runners[int(number) - 1]]
            return []
        return [r for n, rs in self.runners.items() if self.programs[n].service_group == target for r in rs]

    async def command(self, words: list[str]) -> str:
        """`start|stop|restart program TARGET`, `rolling-restart program NAME`,
        `show programs`; the answer text (lines end with a newline)."""
        if words[:2] == ["show", "programs"]:
            return self.show()
        if len(words) != 3 or words[1] != "program" or words[0] not in (
                "start", "stop", "restart", "rolling-restart"):
            return ("usage: start|stop|restart program <name>[:<instance>] | "
                    "rolling-restart program <name>\n")
        verb, target = words[0], words[2]
        if self.stopping:
            return "Programs are being stopped.\n"
        runners = self.select(target)
        if not runners:
            return f"No such program '{target}'.\n"
        if verb == "rolling-restart":
            return await self.rolling_restart(runners)
        now = self.loop.time()
        for runner in runners:
            self._apply(runner, getattr(runner.instance, verb)(now))
        if verb == "stop":
            wanted, timeout = (STOPPED, FATAL), max(r.instance.program.stop_timeout for r in runners) + KILL_GRACE
        else:
            wanted, timeout = (RUNNING, FATAL), COMMAND_WAIT + max(r.instance.program.stop_timeout for r in runners)
        await asyncio.gather(*(self._until(r, lambda i: i.state in wanted and not i.spawning, timeout)
                               for r in runners))
        return "".join(f"program {r.instance.name}: {r.instance.state}"
                       + (f" pid {r.instance.pid}" if r.instance.pid else "")
                       + (f" ({r.instance.last_exit})" if r.instance.state == FATAL else "") + "\n"
                       for r in runners)

    async def rolling_restart(self, runners: list[_Runner]) -> str:
        """See haply.programs.rolling."""
        from haply.programs.rolling import rolling_restart

        return await rolling_restart(self, runners)

    # ------------------------------------------------------------------ show

    def show(self) -> str:
        """The `show programs` table: one line per instance (HAProxy's master
        CLI `show proc` lists its children the same way)."""
        now = self.loop.time()
        rows = [("#<program>", "<state>", "<pid>", "<port>", "<uptime>", "<restarts>", "<last exit>")]
        for runners in self.runners.values():
            for runner in runners:
                i = runner.instance
                uptime = i.uptime(now)
                rows.append((i.name, i.state, str(i.pid or "-"), str(i.port or "-"),
                             "-" if uptime is None else format_uptime(uptime), str(i.restarts),
                             i.last_exit or "-"))
        widths = [max(len(row[c]) for row in rows) for c in range(len(rows[0]) - 1)]
        return "".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths)) + "  " + row[-1] + "\n"
                       for row in rows)


def format_uptime(seconds: float) -> str:
    """HAProxy's uptime format: 0d00h02m05s."""
    s = int(seconds)
    return f"{s // 86400}d{s % 86400 // 3600:02d}h{s % 3600 // 60:02d}m{s % 60:02d}s"


__all__ = ["ProgramSupervisor", "SpawnError", "format_uptime"]
