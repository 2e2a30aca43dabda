"""Wiring for a single-process haply: the supervisor beside the proxy engine.

    engine = Engine(config, loop); await engine.start()
    supervisor = start_programs(config, engine, loop)   # None without programs
    ...
    if supervisor is not None:
        await supervisor.stop()

The engine must be started (its health checker exists then). Health events
that mark a program's server DOWN restart that instance (UP events tell the
supervisor the process has started serving); the runtime API finds
the supervisor as `engine.programs` for `show programs` and the program
commands.
"""

from __future__ import annotations

import asyncio

from haply.config.model import Config
from haply.programs.control import LocalProxyControl
from haply.programs.spec import instance_servers
from haply.programs.supervisor import ProgramSupervisor


def start_programs(config: Config, engine, loop: asyncio.AbstractEventLoop,
                   reloading: bool = False) -> ProgramSupervisor | None:
    if not config.programs:
        return None
    supervisor = ProgramSupervisor(config.programs, loop, LocalProxyControl(engine),
                                   servers=instance_servers(config))
    engine.programs = supervisor
    if engine.health is not None:
        engine.health.subscribe(lambda event: (supervisor.server_up if event.up else supervisor.server_down)(
            event.backend, event.server))
    supervisor.start(reloading=reloading)
    return supervisor


__all__ = ["start_programs"]
