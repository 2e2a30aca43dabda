"""`haply -W`: the master process's main, from validated config to exit status."""

from __future__ import annotations

import asyncio
import os
import signal
import sys

from haply.master import process
from haply.master.control import ControlServer, master_socket_path

RELOAD_SIGNALS = (signal.SIGUSR2, signal.SIGHUP)
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1)


def serve_master(config, options) -> int:
    import uvloop

    from haply.admin.socket_server import StatsSocketError
    from haply.cli import _daemonize, remove_pidfile, write_pidfile
    from haply.proxy.engine import StartError
    from haply.proxy.listeners import BindError

    loop = uvloop.new_event_loop()
    asyncio.set_event_loop(loop)
    master = process.Master(options, config, loop)
    process.NOTIFY_ENABLED[0] = options.systemd
    try:
        process.validate(config, loop)
        master.bind()
    except (StartError, BindError, StatsSocketError, OSError) as exc:
        print(f"[ALERT] {exc}", file=sys.stderr)
        loop.close()
        return 1
    if options.daemon or (config.global_.daemon and not options.foreground):
        _daemonize()
    pidfile = options.pidfile or config.global_.pidfile
    if pidfile and not write_pidfile(pidfile):
        master.sockets.close()
        return 1
    status = 0
    try:
        status = loop.run_until_complete(_main(master, config, options))
    finally:
        if pidfile:
            remove_pidfile(pidfile)
        loop.close()
    return status


async def _main(master: process.Master, config, options) -> int:
    loop = asyncio.get_running_loop()
    stopping = loop.create_future()
    forced = loop.create_future()

    def stop(signum: int) -> None:
        if not stopping.done():
            stopping.set_result(signum)
        elif not forced.done():
            forced.set_result(signum)

    def reload() -> None:
        async def run() -> None:
            ok, report = await master.reload()
            if not ok:
                print(f"[ALERT] reload failed: {report}", file=sys.stderr)
            elif report:
                print(report, file=sys.stderr, end="")
        loop.create_task(run())

    # Both kinds of signal are handled from the start: a reload signal's
    # default action would end the master, and with it the service.
    for signum in STOP_SIGNALS:
        loop.add_signal_handler(signum, stop, signum)
    for signum in RELOAD_SIGNALS:
        loop.add_signal_handler(signum, reload)
    try:
        await master.start()
    except RuntimeError as exc:
        print(f"[ALERT] {exc}", file=sys.stderr)
        await master.stop(signal.SIGTERM, forced)
        return 1
    path = master_socket_path(master.config, options.master_socket)
    if path is not None:
        master.control = ControlServer(master, path)
        try:
            await master.control.start()
        except OSError as exc:
            print(f"[WARNING] master socket {path}: {exc}; `haply ctl reload` will not work, "
                  "signals will", file=sys.stderr)
            master.control = None
    for pid in options.old_pids:
        try:
            os.kill(pid, options.old_stop)
        except ProcessLookupError:
            pass
    process.notify("READY=1", f"MAINPID={os.getpid()}")
    signum = await stopping
    await master.stop(signum, forced)
    return 0
