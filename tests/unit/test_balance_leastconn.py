"""leastconn: fewest sessions per weight, equal loads in rotation."""

from __future__ import annotations

from collections import Counter

from hypothesis import given, settings
from hypothesis import strategies as st

from haply.balance.leastconn import LeastConn
from haply.runtime.registry import DOWN
from tests.support.balance_servers import farm


def start(balancer, server):
    server.current_sessions += 1
    balancer.connection_started(server)


def end(balancer, server):
    server.current_sessions -= 1
    balancer.connection_ended(server)


def test_equal_loads_rotate():
    _, states = farm([3, 2, 1])
    balancer = LeastConn(states)
    seq = []
    for _ in range(9):
        server = balancer.pick(None)
        start(balancer, server)
        end(balancer, server)
        seq.append(server.name)
    assert seq == ["s1", "s2", "s3"] * 3


def test_long_sessions_fill_by_weight():
    _, states = farm([3, 1])
    balancer = LeastConn(states)
    for _ in range(8):
        start(balancer, balancer.pick(None))
    assert [s.current_sessions for s in states] == [6, 2]


@settings(max_examples=150, deadline=None)
@given(weights=st.lists(st.integers(1, 10), min_size=1, max_size=6),
       ops=st.lists(st.tuples(st.booleans(), st.integers(0, 50)), max_size=60))
def test_pick_is_least_loaded(weights, ops):
    """After any mix of starts and ends, the pick has the lowest load per weight."""
    _, states = farm(weights)
    balancer = LeastConn(states)
    open_sessions = []
    for is_start, index in ops:
        if is_start or not open_sessions:
            server = balancer.pick(None)
            assert server is not None
            best = min((s.current_sessions + s.queued) / s.effective_weight for s in states)
            assert (server.current_sessions + server.queued) / server.effective_weight == best
            start(balancer, server)
            open_sessions.append(server)
        else:
            end(balancer, open_sessions.pop(index % len(open_sessions)))
    assert len(balancer._heap) <= 4 * (len(states) + 1) + len(states)


def test_weight_change_and_down_server():
    registry, states = farm([1, 1])
    balancer = LeastConn(states)
    registry.subscribe("app", lambda state: balancer.rebuild())
    registry.set_weight(states[0], 4, 1.0)
    for _ in range(10):
        start(balancer, balancer.pick(None))
    assert Counter(s.current_sessions for s in states) == Counter([8, 2])
    registry.set_operational(states[0], DOWN, 2.0)
    assert balancer.pick(None) is states[1]


def test_full_and_excluded_are_skipped_but_kept():
    _, states = farm([1, 1, 1], maxconn=1)
    balancer = LeastConn(states)
    start(balancer, states[0])  # s1 full
    assert balancer.pick(None, exclude=states[1]) is states[2]
    assert balancer.pick(None) in (states[1], states[2])
    end(balancer, states[0])
    picks = set()
    for _ in range(3):
        server = balancer.pick(None)
        start(balancer, server)
        picks.add(server.name)
    assert picks == {"s1", "s2", "s3"}
