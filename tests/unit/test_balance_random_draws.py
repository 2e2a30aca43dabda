"""random(<draws>): weighted draws, least loaded of the draws."""

from __future__ import annotations

import random
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from haply.balance import make_balancer
from haply.balance.random_draws import RandomDraws
from tests.support.balance_servers import farm


@settings(max_examples=20, deadline=None)
@given(weights=st.lists(st.integers(1, 10), min_size=1, max_size=5), seed=st.integers(0, 1000))
def test_single_draw_follows_weights(weights, seed):
    _, states = farm(weights)
    balancer = RandomDraws(states, draws=1, rng=random.Random(seed))
    n = 6000
    counts = Counter(balancer.pick(None).name for _ in range(n))
    total = sum(weights)
    for state in states:
        # 6000 draws: a share's standard deviation is below 0.0065
        assert abs(counts[state.name] / n - state.weight / total) < 0.035


def test_two_draws_avoid_the_loaded_server():
    _, states = farm([1, 1, 1, 1])
    states[0].current_sessions = 10
    balancer = RandomDraws(states, draws=2, rng=random.Random(1))
    counts = Counter(balancer.pick(None).name for _ in range(4000))
    # s1 is chosen only when both draws land on it: 1/16 of the time
    assert counts["s1"] / 4000 < 0.1
    many = RandomDraws(states, draws=8, rng=random.Random(1))
    assert Counter(many.pick(None).name for _ in range(4000))["s1"] < 10


def test_least_loaded_is_per_weight():
    _, states = farm([4, 1])
    states[0].current_sessions = 3  # load 3/4 < 1/1
    states[1].current_sessions = 1
    balancer = RandomDraws(states, draws=50, rng=random.Random(2))
    assert balancer.pick(None) is states[0]


def test_full_draws_fall_back_to_a_free_server():
    _, states = farm([100, 1], maxconn=1)
    states[0].current_sessions = 1
    balancer = RandomDraws(states, draws=1, rng=random.Random(3))
    assert {balancer.pick(None).name for _ in range(50)} == {"s2"}


def test_factory_parses_draws():
    _, states = farm([1, 1])
    assert make_balancer("random", states).draws == 2
    assert make_balancer("random(5)", states).draws == 5
    assert make_balancer("random", states, arg="3").draws == 3
    with pytest.raises(ValueError):
        make_balancer("random(0)", states)
