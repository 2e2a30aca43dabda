"""Connection limits (haply.proxy.gate): the slots a connection waiting for
its PROXY header holds from its accept, and their handing over to its
session. tests/interop/test_accept_proxy_limits_oracle.py compares the
whole with HAProxy 2.6 on the wire."""

from __future__ import annotations

from haply.proxy.gate import Gate, first_full, room


def test_room_is_the_smallest_free_count_of_the_limited_gates():
    unlimited, frontend, listener = Gate(None), Gate(5), Gate(3)
    assert room([unlimited]) is None
    assert room([unlimited, frontend, listener]) == 3
    for _ in range(3):
        listener.hold()
    frontend.hold()
    assert room([unlimited, frontend, listener]) == 0
    assert room([unlimited, frontend]) == 4
    assert first_full([unlimited, frontend, listener]) is listener
    assert first_full([unlimited, frontend]) is None


def test_a_held_slot_is_current_but_not_a_session():
    gate = Gate(2)
    gate.hold()
    gate.hold()
    assert (gate.current, gate.max_seen, gate.total, gate.full) == (2, 2, 0, True)


def test_a_session_takes_the_held_slot_before_anyone_parked():
    gate = Gate(1)
    gate.hold()
    woken = []
    gate.park(lambda: woken.append("parked") or True)
    # the handover: the slot given back, the session admitted, then settled
    gate.unhold()
    assert not gate.full
    gate.enter()
    gate.settle()
    assert woken == [] and (gate.current, gate.total) == (1, 1)


def test_a_slot_no_session_took_goes_to_the_parked_and_ends_a_drain():
    gate = Gate(1)
    gate.hold()
    woken, drained = [], []
    gate.park(lambda: woken.append("parked") or True)
    gate.unhold()  # the session refused by its rules: it takes nothing
    gate.settle()
    assert woken == ["parked"]
    idle = Gate(0)
    idle.on_empty = lambda: drained.append(True)
    idle.hold()
    idle.unhold()
    assert drained == []  # not while a session may still take it
    idle.settle()
    assert drained == [True]
