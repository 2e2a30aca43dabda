"""The `haply` command: HAProxy-compatible flags, plus subcommands beside them.

    haply -f FILE|DIR [-f ...] [-c] [-D] [-p PIDFILE] [-d|-db] [-q] [-v|-vv]
    haply quickstart [--port N] [--check]
    haply check FILE...          (same as -c -f FILE ...)

Flags are parsed by hand rather than with argparse because HAProxy's own are not
POSIX-shaped (`-db`, `-vv`, `-sf PID...`) and service files written for haproxy
must work unchanged.
"""

from __future__ import annotations

import asyncio
import gc
import os
import signal
import sys
from dataclasses import dataclass, field

from haply import __version__

USAGE = """\
Usage: haply -f <cfgfile|cfgdir> [-f ...] [options]
       haply quickstart [--port N] [--check]
       haply check <cfgfile|cfgdir>...
Options:
  -f <file|dir>  configuration file or directory of *.cfg files (repeatable)
  -c             check the configuration and exit (0: valid)
  -D             run in the background (daemon)
  -p <pidfile>   write the process id to pidfile
  -d, -db        stay in the foreground (-d also logs each connection)
  -q             quiet: no warnings on start
  -v, -vv        print the version (and build details) and exit
  -W, -Ws        master-worker mode (accepted; runs as one process for now)
  -sf <pid>...   once listening, ask these processes to finish their work and exit
  -st <pid>...   once listening, stop these processes at once
"""


class UsageError(Exception):
    pass


@dataclass
class Options:
    files: list[str] = field(default_factory=list)
    check: bool = False
    daemon: bool = False
    foreground: bool = False
    debug: bool = False
    pidfile: str | None = None
    quiet: bool = False
    verbose: int = 0
    master_worker: bool = False
    old_pids: list[int] = field(default_factory=list)
    old_stop: int = signal.SIGUSR1


def parse_args(argv: list[str]) -> Options:
    options = Options()
    i = 0
    while i < len(argv):
        arg = argv[i]

        def value() -> str:
            nonlocal i
            i += 1
            if i >= len(argv):
                raise UsageError(f"option '{arg}' needs an argument")
            return argv[i]

        if arg == "-f":
            options.files.append(value())
        elif arg.startswith("-f") and len(arg) > 2:
            options.files.append(arg[2:])
        elif arg == "-c":
            options.check = True
        elif arg == "-D":
            options.daemon = True
        elif arg == "-p":
            options.pidfile = value()
        elif arg == "-d":
            options.foreground = options.debug = True
        elif arg == "-db":
            options.foreground = True
        elif arg == "-q":
            options.quiet = True
        elif arg in ("-v", "-vv"):
            options.verbose = len(arg) - 1
        elif arg in ("-W", "-Ws"):
            options.master_worker = True
        elif arg in ("-sf", "-st"):
            options.old_stop = signal.SIGUSR1 if arg == "-sf" else signal.SIGTERM
            while i + 1 < len(argv) and argv[i + 1].isdigit():
                i += 1
                options.old_pids.append(int(argv[i]))
        elif arg == "--":
            options.files.extend(argv[i + 1:])
            break
        else:
            raise UsageError(f"unknown option '{arg}'")
        i += 1
    return options


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "quickstart":
        from haply import quickstart
        return quickstart.main(argv[1:])
    if argv and argv[0] == "convert":
        from haply import convert
        return convert.main(argv[1:])
    if argv and argv[0] == "ctl":
        from haply import ctl
        return ctl.main(argv[1:])
    if argv and argv[0] == "check":
        argv = ["-c"] + [a for path in argv[1:] for a in ("-f", path)]
    if argv and argv[0] in ("-h", "--help", "help"):
        print(USAGE, end="")
        return 0
    try:
        options = parse_args(argv)
    except UsageError as exc:
        print(f"haply: {exc}\n{USAGE}", file=sys.stderr, end="")
        return 2
    if options.verbose:
        print(f"haply version {__version__}")
        if options.verbose > 1:
            print(f"Python {sys.version.split()[0]} on {sys.platform}")
        return 0
    if not options.files:
        print(f"haply: no configuration file given (-f)\n{USAGE}", file=sys.stderr, end="")
        return 2
    return run(options)


def load_config(options: Options):
    """Load and validate, printing every diagnostic; returns Config or None."""
    from haply.config import load
    from haply.config.diagnostics import ConfigError

    try:
        loaded = load(options.files, os.environ)
    except ConfigError as exc:
        for diagnostic in exc.diagnostics:
            print(diagnostic, file=sys.stderr)
        errors = sum(1 for d in exc.diagnostics if d.severity == "error")
        print(f"haply: configuration has {errors} error(s); not starting.", file=sys.stderr)
        return None
    except OSError as exc:
        print(f"[ALERT] cannot read configuration: {exc}", file=sys.stderr)
        return None
    if not options.quiet:
        for diagnostic in loaded.diagnostics.warnings:
            print(diagnostic, file=sys.stderr)
    return loaded.config


def run(options: Options) -> int:
    config = load_config(options)
    if config is None:
        return 1
    if options.check:
        if not options.quiet:
            print("Configuration file is valid")
        return 0
    return serve(config, options)


def serve(config, options: Options) -> int:
    import uvloop

    from haply.privileges import PrivilegeError, drop_privileges
    from haply.proxy.engine import Engine, StartError

    loop = uvloop.new_event_loop()
    asyncio.set_event_loop(loop)
    engine = Engine(config, loop)
    try:
        engine.prepare()
    except StartError as exc:
        print(f"[ALERT] {exc}", file=sys.stderr)
        loop.close()
        return 1
    if options.master_worker and not options.quiet:
        print("haply: warning: -W/-Ws: master-worker mode is not in this version; "
              "serving from this one process", file=sys.stderr)
    if config.global_.nbthread > 1 and not options.quiet:
        print(f"haply: warning: nbthread {config.global_.nbthread}: this version serves "
              "from one process; the extra threads are not started", file=sys.stderr)
    daemon = options.daemon or (config.global_.daemon and not options.foreground)
    if daemon:
        _daemonize()
    pidfile = options.pidfile or config.global_.pidfile
    if pidfile:
        try:
            with open(pidfile, "w") as handle:
                handle.write(f"{os.getpid()}\n")
        except OSError as exc:
            print(f"[ALERT] cannot write pidfile {pidfile}: {exc}", file=sys.stderr)
            return 1
    vrrp = VrrpSupervisor(config, engine, loop) if config.vrrp else None
    if vrrp is not None:
        vrrp.start()  # before dropping privileges: VRRP needs raw sockets
    try:
        drop_privileges(config.global_)
    except (PrivilegeError, OSError) as exc:
        print(f"[ALERT] {exc}", file=sys.stderr)
        engine.close_sockets()
        if vrrp is not None:
            vrrp.stop()
        return 1
    stopping = loop.create_future()
    forced = loop.create_future()

    def stop(signum: int) -> None:
        if not stopping.done():
            stopping.set_result(signum)
        elif not forced.done():
            forced.set_result(signum)  # a second signal: stop at once

    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1):
        loop.add_signal_handler(signum, stop, signum)

    async def main_task() -> None:
        await engine.start()
        # Everything built at start (config model, compiled rules, modules) lives
        # as long as the process: move it out of the collector's generations so
        # the collections that per-request garbage triggers never rescan it.
        gc.collect()
        gc.freeze()
        # A reload the HAProxy way: this process listens now (SO_REUSEPORT lets
        # both share the ports), so the old ones may stop accepting.
        for pid in options.old_pids:
            try:
                os.kill(pid, options.old_stop)
            except ProcessLookupError:
                pass
        signum = await stopping
        # SIGUSR1 is HAProxy's soft stop: finish every connection however long.
        # SIGTERM/SIGINT: finish in-flight work within STOP_GRACE, then exit.
        engine.stop_accepting()
        # `hard-stop-after` bounds a soft stop as well (configuration manual).
        grace = config.global_.hard_stop_after
        if signum != signal.SIGUSR1:
            grace = min(grace or STOP_GRACE, STOP_GRACE)
        drained = asyncio.ensure_future(engine.drained(grace))
        await asyncio.wait([drained, forced], return_when=asyncio.FIRST_COMPLETED)
        drained.cancel()
        engine.close_all()
        await engine.stop()
        if vrrp is not None:
            vrrp.stop()  # the proxy is drained: blocking for the hand-over is fine

    try:
        loop.run_until_complete(main_task())
    finally:
        if pidfile:
            try:
                os.unlink(pidfile)
            except OSError:
                pass
        loop.close()
    return 0


# SIGTERM lets in-flight requests finish for this long before exiting.
STOP_GRACE = 5.0


class VrrpSupervisor:
    """Keeps the VRRP child running beside the proxy (haply.vrrp.child)."""

    # A VRRP child that died is started again after this long (crash-loop guard).
    RESTART_DELAY = 1.0

    def __init__(self, config, engine, loop):
        self.config = config
        self.engine = engine
        self.loop = loop
        self.pid: int | None = None
        self.stopping = False
        self._watch: int | None = None

    def start(self) -> None:
        from haply.vrrp import child

        fds = self.engine.listening_fds()
        proxy_pid = os.getpid() if self.config.frontends else None
        self.pid = child.start(self.config, proxy_pid, fds)
        self._watch = os.pidfd_open(self.pid)
        self.loop.add_reader(self._watch, self._exited)

    def _exited(self) -> None:
        self.loop.remove_reader(self._watch)
        os.close(self._watch)
        self._watch = None
        _, status = os.waitpid(self.pid, 0)
        if self.stopping:
            return
        print(f"haply: vrrp process {self.pid} exited ({os.waitstatus_to_exitcode(status)}); "
              f"restarting in {self.RESTART_DELAY:.0f}s", file=sys.stderr)
        self.pid = None
        self.loop.call_later(self.RESTART_DELAY, self.start)

    def stop(self) -> None:
        from haply.vrrp import child

        self.stopping = True
        if self._watch is not None:
            self.loop.remove_reader(self._watch)
            os.close(self._watch)
            self._watch = None
        if self.pid is not None:
            child.stop(self.pid)


def _daemonize() -> None:
    if os.fork() > 0:
        os._exit(0)
    os.setsid()
    if os.fork() > 0:
        os._exit(0)
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    os.close(devnull)


if __name__ == "__main__":
    raise SystemExit(main())
