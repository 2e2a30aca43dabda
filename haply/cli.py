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
import os
import signal
import socket
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
  -W             master-worker mode: a master supervises the proxy workers
  -Ws            master-worker mode with systemd notification (Type=notify)
  -S <path>      the master's control socket (default: first stats socket + .master)
  -L <name>      this node's name in peers sections (default: localpeer, else the host name)
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
    systemd: bool = False
    master_socket: str | None = None
    old_pids: list[int] = field(default_factory=list)
    old_stop: int = signal.SIGUSR1
    local_peer: str | None = None


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
        elif arg == "-L":
            options.local_peer = value()
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
            options.systemd = arg == "-Ws"
        elif arg == "-S":
            options.master_socket = value()
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
    return with_options(loaded.config, options)


def with_options(config, options: Options):
    """The configuration with what the command line overrides in it (-L)."""
    if options.local_peer is None:
        return config
    from dataclasses import replace
    return replace(config, global_=replace(config.global_, localpeer=options.local_peer))


def run(options: Options) -> int:
    config = load_config(options)
    if config is None:
        return 1
    listens = config.will_listen(config.global_.localpeer or socket.gethostname())
    if options.check:
        if not listens:
            # HAProxy's words and exit status, which deployment tools test
            print("Configuration file has no error but will not start (no listener) => exit(2).")
            return 2
        if not options.quiet:
            print("Configuration file is valid")
        return 0
    if not listens:
        print("[ALERT] No enabled listener found (check for 'bind' directives) ! Exiting.",
              file=sys.stderr)
        return 1
    from haply.limits import LimitError, ensure_nofile
    try:
        warning = ensure_nofile(config)  # before binding; workers inherit it
    except LimitError as exc:
        print(f"[ALERT] {exc}", file=sys.stderr)
        return 1
    if warning and not options.quiet:
        print(f"[WARNING] {warning}", file=sys.stderr)
    return serve(config, options)


def wants_master(config, options: Options) -> bool:
    """Master-worker mode: asked for (-W, -Ws, `master-worker`), or needed
    (several workers, supervised programs)."""
    asked = options.master_worker or any(name == "master-worker" for name, _ in config.global_.extra)
    return asked or config.global_.nbthread > 1 or bool(getattr(config, "programs", ()))


def serve(config, options: Options) -> int:
    if wants_master(config, options):
        from haply.master.run import serve_master
        return serve_master(config, options)
    import uvloop

    from haply.lifecycle import StopSignals, bind_to_cpus, serve_until_stopped
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
    daemon = options.daemon or (config.global_.daemon and not options.foreground)
    if daemon:
        _daemonize()
    pidfile = options.pidfile or config.global_.pidfile
    if pidfile and not write_pidfile(pidfile):
        return 1
    vrrp = None
    if config.vrrp:
        proxy_pid = os.getpid() if config.frontends else None
        vrrp = VrrpSupervisor(config, loop, proxy_pid, engine.listening_fds)
    if vrrp is not None:
        vrrp.start()  # before dropping privileges: VRRP needs raw sockets
    try:
        bind_to_cpus(config.global_, 1)  # (the VRRP process, started above, is not bound)
        drop_privileges(config.global_)
    except (PrivilegeError, OSError) as exc:
        print(f"[ALERT] {exc}", file=sys.stderr)
        engine.close_sockets()
        if vrrp is not None:
            vrrp.stop()
        return 1
    signals = StopSignals(loop)

    def started() -> None:
        # A reload the HAProxy way: this process listens now (SO_REUSEPORT lets
        # both share the ports), so the old ones may stop accepting.
        for pid in options.old_pids:
            try:
                os.kill(pid, options.old_stop)
            except ProcessLookupError:
                pass

    async def main_task() -> None:
        await serve_until_stopped(engine, signals, started)
        if vrrp is not None:
            vrrp.stop()  # the proxy is drained: blocking for the hand-over is fine

    try:
        loop.run_until_complete(main_task())
    finally:
        if pidfile:
            remove_pidfile(pidfile)
        loop.close()
    return 0


class VrrpSupervisor:
    """Keeps the VRRP child running beside the proxy (haply.vrrp.child)."""

    # A VRRP child that died is started again after this long (crash-loop guard).
    RESTART_DELAY = 1.0

    def __init__(self, config, loop, proxy_pid: int | None, inherited_fds):
        """proxy_pid: the process whose death means the proxy is gone (the
        instances track it); inherited_fds(): descriptors the child closes."""
        self.config = config
        self.loop = loop
        self.proxy_pid = proxy_pid
        self.inherited_fds = inherited_fds
        self.pid: int | None = None
        self.stopping = False
        self._watch: int | None = None

    def start(self) -> None:
        from haply.vrrp import child

        self.pid = child.start(self.config, self.proxy_pid, self.inherited_fds())
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


def write_pidfile(path: str) -> bool:
    try:
        with open(path, "w") as handle:
            handle.write(f"{os.getpid()}\n")
        return True
    except OSError as exc:
        print(f"[ALERT] cannot write pidfile {path}: {exc}", file=sys.stderr)
        return False


def remove_pidfile(path: str) -> None:
    """Only while it still names this process: after a `-sf` reload it names
    the new one, which must keep it."""
    try:
        with open(path) as handle:
            if handle.read().strip() != str(os.getpid()):
                return
        os.unlink(path)
    except OSError:
        pass


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
