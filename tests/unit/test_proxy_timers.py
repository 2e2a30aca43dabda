"""haply.proxy.timers.Deadline and Wheel on a real event loop: which period
fires, that re-arming moves a deadline to another slot only when it must, and
that the wheel keeps one loop timer for all of them."""

from __future__ import annotations

import asyncio

from haply.proxy.timers import SLOTS, Deadline, Wheel


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
        deadline = Deadline(Wheel(loop), owner)
        deadline.arm(0.05, "http-request")
        deadline.arm_idle(0.05, "client")
        deadline.arm_idle(0.05, "server")  # replaces, in the same slot
        slot = deadline._slot
        await asyncio.sleep(0.2)
        return owner.fired, slot
    fired, slot = run(scenario)
    assert fired == ["server"]
    assert slot


def test_an_earlier_deadline_moves_the_timer_a_later_one_does_not():
    async def scenario(loop):
        owner = Owner()
        deadline = Deadline(Wheel(loop), owner)
        deadline.arm(10, "http-keep-alive")
        first = deadline._slot
        deadline.arm(20, "http-request")
        assert deadline._slot == first  # later: it moves on when its slot comes
        deadline.arm(0.02, "http-request")
        assert deadline._slot < first
        await asyncio.sleep(0.2)
        return owner.fired
    assert run(scenario) == ["http-request"]


def test_touch_postpones_only_an_idle_period_and_cancel_stops_all():
    async def scenario(loop):
        owner = Owner()
        idle = Deadline(Wheel(loop), owner)
        idle.arm_idle(0.5, "client")
        absolute = Deadline(Wheel(loop), owner)
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
        deadline = Deadline(Wheel(loop), owner)
        deadline.arm(None, "http-request")
        deadline.arm_idle(0, "client")
        await asyncio.sleep(0.05)
        return owner.fired, deadline.deadline
    assert run(scenario) == ([], None)


def test_the_wheel_keeps_one_loop_timer_for_its_earliest_slot():
    async def scenario(loop):
        wheel = Wheel(loop)
        owners = [Owner() for _ in range(50)]
        deadlines = [Deadline(wheel, owner) for owner in owners]
        start = loop.time()
        for index, deadline in enumerate(deadlines):
            deadline.arm(0.3 - index * 0.005, "client")  # each earlier than the last
        end = loop.time()  # (a loaded machine may let time pass while arming)
        timers = [h for h in loop._scheduled if not h.cancelled()] if hasattr(loop, "_scheduled") else None
        earliest = wheel._armed
        for deadline in deadlines[::2]:
            deadline.cancel()
        await asyncio.sleep(0.4)
        return (start, end, earliest, timers, [bool(owner.fired) for owner in owners],
                len(wheel), wheel._handle)
    start, end, earliest, timers, fired, left, handle = run(scenario)
    # the slot after the last (earliest) deadline's, armed between start and end
    assert (int((start + 0.3 - 49 * 0.005) * SLOTS) + 1 <= earliest
            <= int((end + 0.3 - 49 * 0.005) * SLOTS) + 1)
    if timers is not None:  # asyncio's loop shows its timers
        assert len(timers) == 1
    assert fired == [index % 2 == 1 for index in range(50)]  # the cancelled ones never fire
    assert left == 0 and handle is None  # nothing pending, no timer left


def test_a_deadline_never_fires_early():
    async def scenario(loop):
        wheel = Wheel(loop)
        late = {}

        class Clock:
            def __init__(self, timeout):
                self.due = loop.time() + timeout

            def on_deadline(self, tag):
                late[tag] = loop.time() - self.due

        deadlines = []
        for index in range(20):
            timeout = 0.01 + index * 0.0037
            deadline = Deadline(wheel, Clock(timeout))
            deadline.arm(timeout, str(index))
            deadlines.append(deadline)
        await asyncio.sleep(0.2)
        return late
    late = run(scenario)
    assert len(late) == 20
    assert all(0 <= delay < 0.1 for delay in late.values()), late


def test_a_deadline_armed_as_another_fires_does_not_delay_the_rest():
    """A Deadline armed (far off) while the wheel runs the due ones does not
    push back the pending ones that come before it."""
    async def scenario(loop):
        wheel = Wheel(loop)
        fired = []

        class Rearming:
            def __init__(self):
                self.deadline = Deadline(wheel, self)

            def on_deadline(self, tag):
                fired.append((tag, loop.time() - start))
                if tag == "first":
                    far.deadline.arm(5, "far")

        first, near, far = Rearming(), Rearming(), Rearming()
        start = loop.time()
        first.deadline.arm(0.02, "first")
        near.deadline.arm(0.1, "near")
        await asyncio.sleep(0.3)
        far.deadline.cancel()
        return fired
    fired = run(scenario)
    assert [tag for tag, _ in fired] == ["first", "near"]
    assert fired[1][1] < 0.2
