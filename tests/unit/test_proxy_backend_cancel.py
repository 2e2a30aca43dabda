"""A request abandoned while it waits for a server (option abortonclose) gives
its place back: the queue entry goes, and a slot handed to it is released."""

from __future__ import annotations

import asyncio

from haply.config.model import Proxy, Server
from haply.proxy.backend import BackendRuntime
from haply.runtime.registry import Registry


def backend_with_one_slot(loop) -> BackendRuntime:
    proxy = Proxy("be", "backend", mode="http",
                  servers=(Server("s", "127.0.0.1", 9, maxconn=1),))
    registry = Registry()
    registry.add_backend(proxy)
    return BackendRuntime(proxy, registry, loop)


def test_cancelled_in_the_queue_leaves_it():
    async def scenario():
        backend = backend_with_one_slot(asyncio.get_running_loop())
        held = backend.try_acquire(None)
        waiting = asyncio.ensure_future(backend.acquire(None))
        await asyncio.sleep(0)
        assert backend.queued == 1
        waiting.cancel()
        await asyncio.gather(waiting, return_exceptions=True)
        assert backend.queued == 0
        backend.release(held)
        assert held.current_sessions == 0  # nobody took the freed slot

    asyncio.run(scenario())


def test_cancelled_just_after_being_given_a_slot_gives_it_back():
    async def scenario():
        backend = backend_with_one_slot(asyncio.get_running_loop())
        held = backend.try_acquire(None)
        waiting = asyncio.ensure_future(backend.acquire(None))
        await asyncio.sleep(0)
        backend.release(held)  # the queue's first gets the slot at once...
        assert held.current_sessions == 1
        waiting.cancel()  # ...but its client leaves before it runs again
        await asyncio.gather(waiting, return_exceptions=True)
        assert held.current_sessions == 0 and backend.current_sessions == 0

    asyncio.run(scenario())
