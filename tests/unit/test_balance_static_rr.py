"""static-rr: a fixed weight map, exact shares, weights fixed at start."""

from __future__ import annotations

from collections import Counter

from hypothesis import given, settings
from hypothesis import strategies as st

from haply.balance.static_rr import StaticRoundRobin, weighted_map
from haply.runtime.registry import MAINT, READY
from tests.support.balance_servers import farm

WEIGHTS = st.lists(st.integers(1, 30), min_size=1, max_size=8)

# Cycles recorded from HAProxy 2.6.12 (tests/interop/test_balance_oracle.py
# compares live); the last three are not evenly spaced.
HAPROXY_CYCLES = {
    (1, 1, 1): "123",
    (3, 2, 1): "112123",
    (5, 1): "111112",
    (2, 5): "1221222",
    (7, 3): "1112112112",
    (6, 4): "1121211212",
    (1, 2, 3): "132323",
    (1, 1, 2): "1323",
    (2, 2, 1): "12123",
    (3, 3, 2): "12132123",
    (1, 2, 2, 1): "123234",
    (4, 4): "12121212",
    (2, 3, 4, 1): "1232312334",
    (4, 2, 1): "1121213",
    (10, 1, 1): "111111211113",
}


def test_recorded_haproxy_cycles():
    for weights, cycle in HAPROXY_CYCLES.items():
        _, states = farm(weights)
        balancer = StaticRoundRobin(states)
        got = "".join(balancer.pick(None).name[1:] for _ in range(2 * len(cycle)))
        assert got == cycle * 2, weights


@settings(max_examples=200, deadline=None)
@given(weights=WEIGHTS)
def test_map_holds_each_server_exactly_its_weight(weights):
    _, states = farm(weights)
    slots = weighted_map(states)
    assert len(slots) == sum(weights)
    assert Counter(s.name for s in slots) == Counter({s.name: s.weight for s in states})


@settings(max_examples=100, deadline=None)
@given(weights=WEIGHTS, start=st.integers(0, 60))
def test_any_cycle_is_exact(weights, start):
    _, states = farm(weights)
    balancer = StaticRoundRobin(states)
    total = sum(weights)
    seq = [balancer.pick(None).name for _ in range(start + total)]
    assert Counter(seq[start:]) == Counter({s.name: s.weight for s in states})


def test_runtime_weight_is_ignored_but_zero_removes():
    registry, states = farm([2, 1])
    balancer = StaticRoundRobin(states)
    registry.subscribe("app", lambda state: balancer.rebuild())
    registry.set_weight(states[1], 5, 1.0)
    assert Counter(balancer.pick(None).name for _ in range(30)) == Counter({"s1": 20, "s2": 10})
    registry.set_weight(states[1], 0, 1.0)
    assert {balancer.pick(None).name for _ in range(10)} == {"s1"}


def test_server_back_from_maintenance_is_reintroduced_at_once():
    registry, states = farm([1, 1, 1])
    balancer = StaticRoundRobin(states)
    registry.subscribe("app", lambda state: balancer.rebuild())
    registry.set_admin(states[2], MAINT, 1.0)
    assert Counter(balancer.pick(None).name for _ in range(4)) == Counter({"s1": 2, "s2": 2})
    registry.set_admin(states[2], READY, 2.0)
    assert Counter(balancer.pick(None).name for _ in range(3)) == Counter({"s1": 1, "s2": 1, "s3": 1})


def test_full_slot_goes_to_the_next_slot():
    _, states = farm([2, 1], maxconn=1)
    balancer = StaticRoundRobin(states)
    states[0].current_sessions = 1
    assert [balancer.pick(None).name for _ in range(3)] == ["s2", "s2", "s2"]
