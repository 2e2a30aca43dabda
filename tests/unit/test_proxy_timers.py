"""haply.proxy.timers.Deadline on a real event loop: which period fires, and
that re-arming moves the single timer only when it must."""

from __future__ import annotations

import asyncio

from haply.proxy.timers import Deadline


class Owner:
    def __init__(self) -> None:
        self.fired: list[str] = []

    def on_deadline(self, tag: str) -> None:
        self.fired.append(tag)


def run(coro):
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(coro(loop))
    finally:
        loop.close()


def test_the_last_armed_period_fires_with_its_tag():
    async def scenario(loop):
        owner = Owner()
        deadline = Deadline(loop, owner)
        deadline.arm(0.05, "http-request")
        deadline.arm_idle(0.05, "client")
        deadline.arm_idle(0.05, "server")  # replaces, same timer handle kept
        handle = deadline._handle
        await asyncio.sleep(0.2)
        return owner.fired, handle
    fired, handle = run(scenario)
    assert fired == ["server"]
    assert handle is not None


def test_an_earlier_deadline_moves_the_timer_a_later_one_does_not():
    async def scenario(loop):
        owner = Owner()
        deadline = Deadline(loop, owner)
        deadline.arm(10, "http-keep-alive")
        first = deadline._handle
        deadline.arm(20, "http-request")
        assert deadline._handle is first  # later: the pending timer re-arms when it fires
        deadline.arm(0.02, "http-request")
        assert deadline._handle is not first and first.cancelled()
        await asyncio.sleep(0.2)
        return owner.fired
    assert run(scenario) == ["http-request"]


def test_touch_postpones_only_an_idle_period_and_cancel_stops_all():
    async def scenario(loop):
        owner = Owner()
        idle = Deadline(loop, owner)
        idle.arm_idle(0.5, "client")
        absolute = Deadline(loop, owner)
        absolute.arm(0.15, "http-request")
        for _ in range(4):
            await asyncio.sleep(0.05)
            idle.touch()
            absolute.touch()
        fired_while_touched = list(owner.fired)
        idle.cancel()
        await asyncio.sleep(0.6)
        return fired_while_touched, owner.fired
    while_touched, fired = run(scenario)
    assert while_touched == ["http-request"]  # touched every 50 ms, the idle 0.5 s never ran out
    assert fired == ["http-request"]  # cancelled: the idle one never fires


def test_no_timeout_means_no_timer():
    async def scenario(loop):
        owner = Owner()
        deadline = Deadline(loop, owner)
        deadline.arm(None, "http-request")
        deadline.arm_idle(0, "client")
        await asyncio.sleep(0.05)
        return owner.fired, deadline.deadline
    assert run(scenario) == ([], None)
