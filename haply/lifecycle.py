"""How a proxy process runs and stops: shared by the single-process mode and the
workers of the master process.

SIGTERM/SIGINT: stop accepting, let in-flight requests finish within STOP_GRACE
(or `hard-stop-after` if shorter), then exit; a second signal stops at once.
SIGUSR1 is HAProxy's soft stop (and how a master retires the workers a reload
replaced): finish every connection, bounded only by `hard-stop-after`. Either
way the health checks stop at once, and the e-mail alerts already queued are
sent within the same grace, while the listeners are already closed.
"""

from __future__ import annotations

import asyncio
import gc
import os
import signal
from typing import Callable

# SIGTERM lets in-flight requests finish for this long before exiting.
STOP_GRACE = 5.0
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1)


class StopSignals:
    """The first stop signal resolves `stopping`, a second one `forced`."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.stopping = loop.create_future()
        self.forced = loop.create_future()
        for signum in STOP_SIGNALS:
            loop.add_signal_handler(signum, self.stop, signum)

    def stop(self, signum: int) -> None:
        if not self.stopping.done():
            self.stopping.set_result(signum)
        elif not self.forced.done():
            self.forced.set_result(signum)


def grace_for(signum: int, hard_stop_after: float | None) -> float | None:
    # `hard-stop-after` bounds a soft stop as well (configuration manual).
    if signum == signal.SIGUSR1:
        return hard_stop_after
    return min(hard_stop_after or STOP_GRACE, STOP_GRACE)


async def serve_until_stopped(engine, signals: StopSignals,
                              on_started: Callable[[], None] | None = None) -> int:
    """Start engine, serve until a stop signal, drain, stop. Returns the signal."""
    await engine.start()
    # Everything built at start (config model, compiled rules, modules) lives as
    # long as the process: move it out of the collector's generations so the
    # collections that per-request garbage triggers never rescan it.
    gc.collect()
    gc.freeze()
    if on_started is not None:
        on_started()
    signum = await signals.stopping
    engine.stop_accepting(close_idle=signum != signal.SIGUSR1)
    await engine.stop_checks()
    finishing = asyncio.ensure_future(
        finish_in_flight(engine, grace_for(signum, engine.config.global_.hard_stop_after)))
    await asyncio.wait([finishing, signals.forced], return_when=asyncio.FIRST_COMPLETED)
    finishing.cancel()
    engine.close_all()
    await engine.stop()
    return signum


async def finish_in_flight(engine, grace: float | None) -> None:
    """What a stop lets finish, both within grace: the client connections,
    and the e-mail alerts already queued."""
    try:
        async with asyncio.timeout(grace):
            await asyncio.gather(engine.drained(None), engine.alerts_sent())
    except TimeoutError:
        pass


def bind_to_cpus(settings, worker: int) -> None:
    """Run this process on the CPUs `cpu-map` gives worker n (1-based), if any.
    A CPU the machine lacks is an OSError naming the set, and the process does
    not start, as HAProxy does not."""
    from haply.config.cpu_map import cpus_for_worker

    cpus = cpus_for_worker(settings.cpu_map, worker)
    if cpus is None:
        return
    try:
        os.sched_setaffinity(0, cpus)
    except OSError as exc:
        raise OSError(f"cpu-map: cannot run thread {worker} of nbthread on CPUs "
                      f"{','.join(map(str, cpus))}: {exc.strerror}") from None
