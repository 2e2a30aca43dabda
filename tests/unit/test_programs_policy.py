"""The instance state machine (haply.programs.policy) with a fake clock."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from haply.config.model import Program
from haply.programs.policy import (
    BACKOFF, FATAL, RUNNING, STARTING, STOPPED, STOPPING, Instance, Log, PolicyError, Spawn, Terminate,
    Wake, backoff_delay, rolling_order,
)

PROGRAM = Program("api", command=("x",), backoff=1.0, backoff_max=8.0, crash_limit=4, crash_window=60.0,
                  stop_timeout=5.0)


def kinds(actions):
    return [type(a).__name__ for a in actions if not isinstance(a, Log)]


def running(now=0.0, pid=100):
    instance = Instance(PROGRAM, 1)
    assert kinds(instance.start(now)) == ["Spawn"]
    instance.spawned(now, pid)
    return instance


def test_start_spawn_run():
    instance = Instance(PROGRAM, 2)
    assert instance.state == STOPPED and instance.name == "api:2"
    assert instance.start(0.0) == [Spawn()]
    assert instance.state == STARTING
    instance.spawned(1.0, 42)
    assert (instance.state, instance.pid, instance.uptime(3.5), instance.restarts) == (RUNNING, 42, 2.5, 0)
    assert instance.start(2.0) == []  # already running


def test_crash_backs_off_exponentially_then_fatal():
    instance = running()
    delays = []
    now = 10.0
    for n in range(1, 4):
        actions = instance.exited(now, "exit 1")
        assert instance.state == BACKOFF
        wake = next(a for a in actions if isinstance(a, Wake))
        delays.append(wake.at - now)
        now = wake.at
        assert instance.timer(now) == [Spawn()]
        instance.spawned(now, 100 + n)
    assert delays == [1.0, 2.0, 4.0]
    actions = instance.exited(now, "signal 11")
    assert instance.state == FATAL and Wake(None) in actions
    assert any(isinstance(a, Log) and a.level == "alert" and "FATAL" in a.message for a in actions)
    assert instance.restarts == 3 and instance.last_exit == "signal 11"
    # an operator start forgives
    assert instance.start(now) == [Spawn()] and instance.state == STARTING


def test_backoff_is_capped_and_old_crashes_are_forgotten():
    assert [backoff_delay(PROGRAM, n) for n in (1, 2, 3, 4, 5, 200)] == [1, 2, 4, 8, 8, 8]
    instance = running()
    instance.exited(0.0, "exit 1")
    instance.timer(1.0)
    instance.spawned(1.0, 2)
    actions = instance.exited(120.0, "exit 1")  # the first crash left the window
    assert Wake(121.0) in actions and len(instance.crashes) == 1


def test_stop_sigterm_then_kill_after_timeout():
    instance = running(0.0)
    actions = instance.stop(1.0)
    assert instance.state == STOPPING and Terminate() in actions and Wake(6.0) in actions
    assert kinds(instance.timer(6.0)) == ["Kill", "Wake"]
    assert instance.state == STOPPING
    instance.exited(6.1, "signal 9")
    assert instance.state == STOPPED and instance.pid is None and not instance.crashes


def test_stop_from_backoff_and_fatal_cancels_timer():
    instance = running()
    instance.exited(0.0, "exit 1")
    assert instance.stop(0.5) == [Wake(None)] and instance.state == STOPPED
    assert instance.timer(1.0) == []  # late timer ignored


def test_restart_is_not_a_crash():
    instance = running()
    for n in range(10):
        instance.restart(float(n))
        assert instance.state == STOPPING
        actions = instance.exited(float(n) + 0.1, "exit 0")
        assert Spawn() in actions and instance.state == STARTING
        instance.spawned(float(n) + 0.2, 200 + n)
    assert instance.restarts == 10 and not instance.crashes


def test_check_failed_restarts_and_counts():
    instance = running()
    for n in range(3):
        actions = instance.check_failed(float(n))
        assert Terminate() in actions
        assert Spawn() in instance.exited(float(n) + 0.1, "exit 0")
        instance.spawned(float(n) + 0.2, 300 + n)
    instance.check_failed(4.0)
    actions = instance.exited(4.1, "exit 0")
    assert instance.state == FATAL and Spawn() not in actions
    assert instance.check_failed(5.0) == []  # not running


def test_spawn_failure_is_a_crash():
    instance = Instance(PROGRAM, 1)
    instance.start(0.0)
    actions = instance.spawn_failed(0.0, "No such file or directory")
    assert instance.state == BACKOFF and Wake(1.0) in actions
    assert instance.last_exit.startswith("spawn failed")


def test_stop_while_being_spawned_terminates_once_it_exists():
    instance = Instance(PROGRAM, 1)
    instance.start(0.0)
    assert instance.stop(0.1) == [Wake(5.1)] and instance.state == STOPPING
    assert instance.timer(5.1) == []  # nothing to kill yet
    actions = instance.spawned(0.2, 7)
    assert Terminate() in actions and Wake(5.2) in actions
    instance.exited(0.3, "signal 15")
    assert instance.state == STOPPED


def test_impossible_events_are_our_bugs():
    instance = Instance(PROGRAM, 1)
    with pytest.raises(PolicyError):
        instance.exited(0.0, "exit 0")
    with pytest.raises(PolicyError):
        instance.spawned(0.0, 1)


def test_rolling_order_serves_first_the_broken():
    instances = [running(pid=p) for p in (1, 2, 3)]
    for n, i in enumerate(instances, 1):
        i.number = n
    instances[1].exited(0.0, "exit 1")
    assert [i.number for i in rolling_order(instances)] == [2, 1, 3]


EVENTS = st.sampled_from(["start", "stop", "restart", "check_failed", "spawned", "exited", "timer", "spawn_failed"])


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(EVENTS, st.floats(0, 30)), max_size=60))
def test_random_events_keep_the_invariants(events):
    instance = Instance(PROGRAM, 1)
    now, timer, pid = 0.0, None, 0
    for event, step in events:
        now += step
        if event in ("spawned", "spawn_failed") and not instance.spawning:
            continue
        if event == "exited" and (instance.pid is None or instance.state not in (RUNNING, STOPPING)):
            continue
        if event == "timer" and (timer is None or now < timer):
            continue
        if event == "spawned":
            pid += 1
            actions = instance.spawned(now, pid)
        elif event in ("exited", "spawn_failed"):
            actions = getattr(instance, event)(now, "exit 1")
        else:
            actions = getattr(instance, event)(now)
        for action in actions:
            if isinstance(action, Wake):
                timer = action.at
        # invariants
        if instance.state == RUNNING:
            assert instance.pid is not None and not instance.spawning
        if instance.state in (STOPPED, BACKOFF, FATAL):
            assert instance.pid is None and not instance.spawning
        if instance.spawning:
            assert instance.state in (STARTING, STOPPING) and instance.pid is None
        if instance.state == BACKOFF:
            assert timer is not None and timer - now <= PROGRAM.backoff_max
        if instance.state == FATAL:
            assert len(instance.crashes) >= PROGRAM.crash_limit and timer is None
        assert len(instance.crashes) <= PROGRAM.crash_limit
