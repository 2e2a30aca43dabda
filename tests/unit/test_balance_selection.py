"""The rules every algorithm shares: usable servers only, backups, full
servers, exclusion. Written once as a contract run against every algorithm
(trio's contract-suite habit), plus `select_group` itself."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from haply.balance import make_balancer, select_group
from haply.runtime.registry import DOWN, DRAIN, MAINT
from tests.support.balance_servers import Key, farm

ALGORITHMS = [
    ("roundrobin", None, "map-based"),
    ("static-rr", None, "map-based"),
    ("leastconn", None, "map-based"),
    ("first", None, "map-based"),
    ("source", None, "map-based"),
    ("source", None, "consistent"),
    ("uri", None, "map-based"),
    ("uri", None, "consistent"),
    ("url_param", "id", "map-based"),
    ("hdr", "x-user", "consistent"),
    ("random", None, "map-based"),
    ("random", "3", "map-based"),
]
IDS = [f"{a}{'(' + arg + ')' if arg else ''}-{h}" for a, arg, h in ALGORITHMS]


def keys(n: int = 40) -> list[Key]:
    """Requests with varied attributes, some lacking the hashed parameter."""
    out = []
    for i in range(n):
        out.append(Key(client_ip=f"10.0.{i // 7}.{i}", path=f"/v2/item/{i}?id=u{i % 9}",
                       query=f"id=u{i % 9}" if i % 5 else "",
                       headers={"x-user": f"user{i % 11}"} if i % 4 else {}))
    return out


def make(algorithm, arg, hash_type, states, allbackups=False):
    return make_balancer(algorithm, states, arg=arg, hash_type=hash_type, allbackups=allbackups)


# ------------------------------------------------------------------ select_group


def test_actives_only_while_one_is_usable():
    registry, states = farm([1, 1, 1, 1], backups=[2, 3])
    assert [s.name for s in select_group(states, False)] == ["s1", "s2"]
    registry.set_operational(states[0], DOWN, 1.0)
    assert [s.name for s in select_group(states, False)] == ["s2"]
    registry.set_admin(states[1], DRAIN, 1.0)
    assert [s.name for s in select_group(states, False)] == ["s3"]
    assert [s.name for s in select_group(states, True)] == ["s3", "s4"]
    registry.set_admin(states[2], MAINT, 1.0)
    assert [s.name for s in select_group(states, False)] == ["s4"]
    registry.set_weight(states[3], 0, 1.0)
    assert select_group(states, False) == ()


def test_first_backup_is_lowest_server_id_not_list_order():
    registry, states = farm([1, 1, 1], backups=[0, 1, 2])
    states[0].server_id, states[2].server_id = 3, 1
    assert [s.name for s in select_group(states, False)] == ["s3"]


# ------------------------------------------------------------------ contract

STATE_CHANGES = st.lists(
    st.tuples(st.integers(0, 5), st.sampled_from(["down", "drain", "maint", "zero", "full"])),
    max_size=8)


@pytest.mark.parametrize("algorithm,arg,hash_type", ALGORITHMS, ids=IDS)
@settings(max_examples=60, deadline=None)
@given(weights=st.lists(st.integers(1, 6), min_size=1, max_size=6), data=st.data(),
       changes=STATE_CHANGES, allbackups=st.booleans())
def test_contract(algorithm, arg, hash_type, weights, data, changes, allbackups):
    n = len(weights)
    backups = data.draw(st.sets(st.integers(0, n - 1), max_size=n))
    registry, states = farm(weights, backups=sorted(backups), maxconn=2)
    for index, change in changes:
        if index >= n:
            continue
        state = states[index]
        if change == "down":
            registry.set_operational(state, DOWN, 1.0)
        elif change == "drain":
            registry.set_admin(state, DRAIN, 1.0)
        elif change == "maint":
            registry.set_admin(state, MAINT, 1.0)
        elif change == "zero":
            registry.set_weight(state, 0, 1.0)
        else:
            state.current_sessions = state.maxconn
    balancer = make(algorithm, arg, hash_type, states, allbackups)

    usable_actives = [s for s in states if s.usable and not s.backup]
    usable_backups = sorted((s for s in states if s.usable and s.backup), key=lambda s: s.server_id)
    if usable_actives:
        allowed = usable_actives
    elif allbackups:
        allowed = usable_backups
    else:
        allowed = usable_backups[:1]
    free = [s for s in allowed if s.has_free_slot]

    assert balancer.has_usable() == bool(allowed)
    for key in keys(25):
        chosen = balancer.pick(key)
        if not free:
            assert chosen is None
            continue
        assert chosen in free, (chosen, free)
        # exclusion: another server whenever another can take it
        other = balancer.pick(key, exclude=chosen)
        if len(free) > 1:
            assert other is not None and other is not chosen and other in free
        else:
            assert other is chosen


@pytest.mark.parametrize("algorithm,arg,hash_type", ALGORITHMS, ids=IDS)
def test_backups_take_over_and_give_back(algorithm, arg, hash_type):
    registry, states = farm([1, 1, 2, 1], backups=[2, 3])
    balancer = make(algorithm, arg, hash_type, states)
    registry.subscribe("app", lambda state: balancer.rebuild())
    assert {balancer.pick(k).name for k in keys()} <= {"s1", "s2"}
    registry.set_operational(states[0], DOWN, 1.0)
    registry.set_operational(states[1], DOWN, 1.0)
    assert {balancer.pick(k).name for k in keys()} == {"s3"}
    registry.set_operational(states[2], DOWN, 1.0)
    assert {balancer.pick(k).name for k in keys()} == {"s4"}
    registry.set_operational(states[3], DOWN, 1.0)
    assert balancer.pick(keys()[1]) is None and not balancer.has_usable()
    registry.set_operational(states[1], "UP", 2.0)
    assert {balancer.pick(k).name for k in keys()} == {"s2"}


# `first` fills one server before the next by definition: its allbackups case
# is in test_balance_first.py.
SPREADING = [a for a in ALGORITHMS if a[0] != "first"]


@pytest.mark.parametrize("algorithm,arg,hash_type", SPREADING,
                         ids=[i for a, i in zip(ALGORITHMS, IDS) if a[0] != "first"])
def test_allbackups_uses_every_backup(algorithm, arg, hash_type):
    registry, states = farm([1, 2, 3], backups=[1, 2])
    registry.set_admin(states[0], MAINT, 1.0)
    balancer = make(algorithm, arg, hash_type, states, allbackups=True)
    seen = {balancer.pick(k).name for k in keys(60)}
    assert seen == {"s2", "s3"}


@pytest.mark.parametrize("algorithm,arg,hash_type", ALGORITHMS, ids=IDS)
def test_all_full_is_not_none_usable(algorithm, arg, hash_type):
    registry, states = farm([1, 1], maxconn=1)
    balancer = make(algorithm, arg, hash_type, states)
    for s in states:
        s.current_sessions = 1
    assert balancer.pick(keys()[1]) is None
    assert balancer.has_usable()
    states[1].current_sessions = 0
    assert balancer.pick(keys()[1]) is states[1]


@pytest.mark.parametrize("algorithm,arg,hash_type", ALGORITHMS, ids=IDS)
def test_drain_and_weight_zero_get_no_new_traffic(algorithm, arg, hash_type):
    registry, states = farm([1, 1, 1])
    balancer = make(algorithm, arg, hash_type, states)
    registry.subscribe("app", lambda state: balancer.rebuild())
    registry.set_admin(states[0], DRAIN, 1.0)
    registry.set_weight(states[1], 0, 1.0)
    rng = random.Random(5)
    picked = {balancer.pick(k).name for k in rng.sample(keys(60), 60)}
    assert picked == {"s3"}
