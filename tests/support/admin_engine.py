"""A real, unstarted Engine built from config text, for the pure admin tests.

Nothing is bound: the registry, backend and frontend runtimes are built exactly
as `Engine.prepare` builds them, minus the listening sockets.
"""

from __future__ import annotations

import asyncio
import os
import tempfile

from haply.config import load
from haply.proxy.backend import BackendRuntime
from haply.proxy.engine import Engine
from haply.proxy.frontend import FrontendRuntime


def engine_from(text: str, loop: asyncio.AbstractEventLoop | None = None,
                directory: str | None = None) -> Engine:
    """An Engine for text (haproxy.cfg syntax) with runtimes but no listeners.
    The config is written to a file so runtime `add server` can re-read it."""
    loop = loop or asyncio.new_event_loop()
    directory = directory or tempfile.mkdtemp(prefix="haply-admin-")
    path = os.path.join(directory, "haproxy.cfg")
    with open(path, "w") as handle:
        handle.write(text)
    config = load([path]).config
    engine = Engine(config, loop)
    now = loop.time()
    for proxy in config.backends:
        engine.registry.add_backend(proxy, now)
        for state in engine.registry.servers(proxy.name):
            state.address = (state.host, state.port)
        engine.backends[proxy.name] = BackendRuntime(proxy, engine.registry, loop)
    for proxy in config.frontends:
        engine.frontends[proxy.name] = FrontendRuntime(proxy, engine)
    return engine
