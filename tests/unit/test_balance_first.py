"""first: lowest server_id with a free slot; weights ignored."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from haply.balance import make_balancer
from haply.balance.first import First
from haply.runtime.registry import MAINT
from tests.support.balance_servers import farm


def test_fills_servers_in_order():
    _, states = farm([5, 1, 9], maxconn=2)
    balancer = First(states)
    order = []
    for _ in range(6):
        server = balancer.pick(None)
        server.current_sessions += 1
        balancer.connection_started(server)
        order.append(server.name)
    assert order == ["s1", "s1", "s2", "s2", "s3", "s3"]
    assert balancer.pick(None) is None and balancer.has_usable()
    states[0].current_sessions -= 1
    balancer.connection_ended(states[0])
    assert balancer.pick(None) is states[0]


def test_unlimited_server_takes_everything():
    _, states = farm([1, 1], maxconn=0)
    balancer = make_balancer("first", states)
    assert {balancer.pick(None).name for _ in range(10)} == {"s1"}


def test_server_id_order_not_list_order():
    _, states = farm([1, 1, 1])
    states[0].server_id, states[2].server_id = 3, 1
    balancer = First(states)
    assert balancer.pick(None) is states[2]


def test_allbackups_fills_backups_in_order():
    registry, states = farm([1, 1, 1], backups=[1, 2], maxconn=1)
    registry.set_admin(states[0], MAINT, 1.0)
    balancer = First(states, allbackups=True)
    assert balancer.pick(None) is states[1]
    states[1].current_sessions = 1
    assert balancer.pick(None) is states[2]


@settings(max_examples=100, deadline=None)
@given(sessions=st.lists(st.integers(0, 3), min_size=1, max_size=8))
def test_picks_lowest_free(sessions):
    _, states = farm([1] * len(sessions), maxconn=3)
    for state, count in zip(states, sessions):
        state.current_sessions = count
    chosen = First(states).pick(None)
    free = [s for s in states if s.current_sessions < 3]
    assert chosen is (free[0] if free else None)
