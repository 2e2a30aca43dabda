"""qtime/ctime: averages over the last 1024 sessions, pooled sessions as 0 ms."""

from __future__ import annotations

import pytest
from hypothesis import given, strategies as st

from haply.runtime.registry import (TIME_WINDOW, Registry, ServerState, _idle_factor,
                                    timing_averages)


def server() -> ServerState:
    return ServerState("be", "s", "127.0.0.1", 80, 1, False, 0)


def session(registry, state, queue_ms=None, connect_ms=None):
    """One session on state: timed if it queued or connected, else pooled."""
    state.total_sessions += 1
    if queue_ms is not None:
        registry.record_times(state, queue_ms, connect_ms)


def test_running_mean_with_pooled_sessions_as_zero():
    registry, state = Registry(), server()
    for ms in (2, 4, 6):
        session(registry, state, 0, ms)
    assert timing_averages(state) == (0, 4)
    for _ in range(3):
        session(registry, state)  # served on a pooled connection
    assert timing_averages(state) == (0, 2)
    session(registry, state, 14, 9)
    assert timing_averages(state) == (2, 3)  # (14)/7 and (12+9)/7
    assert (state.queue_time_max, state.connect_time_max) == (14, 9)


def test_old_sessions_fade_after_the_window():
    registry, state = Registry(), server()
    for _ in range(TIME_WINDOW):
        session(registry, state, 0, 100)
    assert timing_averages(state) == (0, 100)
    for _ in range(TIME_WINDOW * 3):
        session(registry, state)
    assert timing_averages(state)[1] == pytest.approx(100 * (1 - 1 / TIME_WINDOW) ** (3 * TIME_WINDOW), abs=1)


@given(st.lists(st.one_of(st.none(), st.integers(0, 5000)), max_size=300))
def test_folding_pooled_sessions_lazily_equals_one_by_one(times):
    lazy_registry, lazy = Registry(), server()
    eager = server()
    n = 0
    for ms in times:
        session(lazy_registry, lazy, None if ms is None else 0, ms)
        n += 1
        value = 0 if ms is None else ms
        eager.connect_time_avg += (value - eager.connect_time_avg) / min(n, TIME_WINDOW)
    folded = lazy.connect_time_avg * _idle_factor(lazy.timed_upto, lazy.total_sessions)
    assert folded == pytest.approx(eager.connect_time_avg, rel=1e-9, abs=1e-9)
    assert timing_averages(lazy)[1] == int(folded + 0.5)
