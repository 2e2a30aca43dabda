"""The rise/fall machine driven by hand with a fake clock (plain floats)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from haply.health.state import (
    EV_L4_ERROR, EV_L4_OK, EV_L4_TIMEOUT, EV_L7_BAD, Health, Passive, Timing,
    http_status_is_error, slowstart_done, slowstart_weight,
)


def machine(rise=2, fall=3, inter=2.0, fastinter=None, downinter=None, up=True, **passive):
    return Health(Timing(inter, fastinter, downinter, rise, fall), Passive(**passive), up=up)


def test_starts_up_and_one_failure_marks_down():
    # HAProxy 2.6 reports a dead server DOWN after its very first check.
    h = machine(rise=2, fall=3)
    assert h.up
    t = h.check_failed(1.0, "L4CON", "Layer4 connection problem")
    assert t is not None and not t.up and t.now == 1.0 and t.status == "L4CON"
    assert not h.up and h.health == 0


def test_started_server_that_passes_reaches_full_health():
    # HAProxy 2.6, rise 3 fall 4: the first success logs "status: 4/4 UP"
    h = machine(rise=3, fall=4)
    assert h.check_status_text() == "1/4 UP"
    assert h.check_passed(1.0) is None
    assert h.health == 6 and h.status_text() == "UP" and h.check_status_text() == "4/4 UP"
    # now it takes `fall` failures in a row
    assert h.check_failed(3.0) is None
    assert h.status_text() == "UP 3/4"
    h.check_failed(4.0)
    h.check_failed(5.0)
    assert h.check_status_text() == "1/4 UP"
    t = h.check_failed(6.0)
    assert t is not None and not t.up
    assert h.check_status_text() == "0/3 DOWN"


def test_rise_successes_bring_it_back_and_fill_health():
    h = machine(rise=3, fall=2, up=False)
    assert h.check_passed(1.0) is None
    assert h.status_text() == "DOWN 1/3"
    assert h.check_passed(2.0) is None
    t = h.check_passed(3.0, "L7OK", "Layer7 check passed, code: 200", 0.001)
    assert t is not None and t.up and t.duration == 0.001
    assert h.health == 3 + 2 - 1
    assert h.last_up_at == 3.0


def test_failure_while_going_up_starts_over():
    # HAProxy 2.6: "succeeded 2/3 DOWN" then "failed 0/3 DOWN"
    h = machine(rise=3, fall=2, up=False)
    h.check_passed(1.0)
    h.check_passed(2.0)
    assert h.check_status_text() == "2/3 DOWN"
    h.check_failed(3.0)
    assert h.health == 0 and h.status_text() == "DOWN"


def test_success_while_going_down_restores_full_health():
    # HAProxy 2.6: "failed 2/4 UP" then "succeeded 4/4 UP"
    h = machine(rise=2, fall=4)
    h.check_passed(0.0)
    h.check_failed(1.0)
    h.check_failed(2.0)
    assert h.check_status_text() == "2/4 UP"
    h.check_passed(3.0)
    assert h.up and h.status_text() == "UP" and h.check_status_text() == "4/4 UP"


def test_intervals_inter_fastinter_downinter():
    h = machine(rise=2, fall=3, inter=2.0, fastinter=0.5, downinter=5.0)
    # at start the counter is at `rise`, not at the top: transitioning
    assert h.interval() == 0.5
    h.check_passed(0.0)
    assert h.interval() == 2.0
    h.check_failed(1.0)
    assert h.interval() == 0.5  # going down
    h.check_failed(1.0)
    h.check_failed(1.0)
    assert not h.up and h.interval() == 5.0  # fully down
    h.check_passed(2.0)
    assert h.interval() == 0.5  # going up


def test_unset_intervals_fall_back_to_inter():
    h = machine(inter=3.0)
    assert h.interval() == 3.0
    h.check_failed(0.0)
    assert h.interval() == 3.0


@settings(max_examples=500, deadline=None)
@given(rise=st.integers(1, 6), fall=st.integers(1, 6), start_up=st.booleans(),
       results=st.lists(st.booleans(), max_size=60))
def test_machine_matches_the_streak_model(rise, fall, start_up, results):
    """Reference model of HAProxy 2.6's observed behaviour: UP goes DOWN after
    `fall` failures in a row, DOWN goes UP after `rise` successes in a row; at
    start a server is UP but one failure away from DOWN. Transitions carry the
    result that caused them; the counter stays within 0..rise+fall-1."""
    h = machine(rise=rise, fall=fall, up=start_up)
    up = start_up
    fails = fall - 1 if start_up else 0
    passes = 0
    for i, ok in enumerate(results):
        t = h.check_passed(float(i)) if ok else h.check_failed(float(i))
        before = up
        if up:
            fails = 0 if ok else fails + 1
            if fails >= fall:
                up, passes = False, 0
        else:
            passes = passes + 1 if ok else 0
            if passes >= rise:
                up, fails = True, 0
        assert h.up == up
        assert 0 <= h.health <= rise + fall - 1
        assert (t is not None) == (up != before)
        if t is not None:
            assert t.up == ok == up


def test_slowstart_ramp_is_linear_and_never_zero():
    assert slowstart_weight(10, 10.0, 100.0, 100.0) == 1
    assert slowstart_weight(10, 10.0, 100.0, 102.5) == 3
    assert slowstart_weight(10, 10.0, 100.0, 105.0) == 5
    assert slowstart_weight(10, 10.0, 100.0, 110.0) == 10
    assert slowstart_weight(10, 10.0, 100.0, 500.0) == 10
    # not at startup, and not when disabled
    assert slowstart_weight(10, 10.0, None, 100.0) == 10
    assert slowstart_weight(10, 0.0, 100.0, 100.0) == 10
    assert slowstart_weight(0, 10.0, 100.0, 101.0) == 0
    assert not slowstart_done(10.0, 100.0, 105.0)
    assert slowstart_done(10.0, 100.0, 110.0)


@given(weight=st.integers(1, 256), slowstart=st.floats(0.1, 100.0),
       times=st.lists(st.floats(0.0, 200.0), min_size=2, max_size=20))
def test_slowstart_is_monotonic(weight, slowstart, times):
    values = [slowstart_weight(weight, slowstart, 0.0, t) for t in sorted(times)]
    assert values == sorted(values)
    assert all(1 <= v <= weight for v in values)


def test_machine_slowstart_uses_last_up_time():
    h = machine(rise=1, fall=1, up=False)
    h.check_passed(50.0)
    assert h.slowstart_weight(100, 10.0, 55.0) == 50


def test_http_status_error_classes():
    assert not http_status_is_error(200)
    assert not http_status_is_error(404)
    assert not http_status_is_error(501)
    assert not http_status_is_error(505)
    assert http_status_is_error(500)
    assert http_status_is_error(503)
    assert http_status_is_error(99)


def full(h):
    for _ in range(h.timing.rise + h.timing.fall):
        h.check_passed(0.0)
    return h


def test_observe_off_ignores_everything():
    h = full(machine())
    for _ in range(100):
        assert h.observe(EV_L4_ERROR, 1.0) is None
    assert h.health == 4 and not h.force_fast


def test_error_limit_counts_consecutive_errors_only():
    h = full(machine(observe="layer4", error_limit=3, on_error="fail-check"))
    h.observe(EV_L4_ERROR, 1.0)
    h.observe(EV_L4_TIMEOUT, 1.0)
    h.observe(EV_L4_OK, 1.0)  # resets the count
    h.observe(EV_L4_ERROR, 1.0)
    h.observe(EV_L4_ERROR, 1.0)
    assert h.health == 4
    h.observe(EV_L4_ERROR, 1.0)
    assert h.health == 3 and h.force_fast  # one simulated failed check
    assert h.interval() == h.timing.inter  # fastinter unset: inter
    # a real check clears the forced fast interval
    h.check_passed(2.0)
    assert not h.force_fast


def test_on_error_fail_check_can_mark_down():
    h = full(machine(rise=2, fall=1, observe="layer4", error_limit=2))
    h.observe(EV_L4_ERROR, 1.0)
    t = h.observe(EV_L4_ERROR, 1.5)
    assert t is not None and not t.up
    assert "Detected 2 consecutive errors, last one was: L4 unsuccessful connection" in t.reason
    assert t.reason.startswith("Health analyze")


def test_on_error_fastinter_only_changes_interval():
    h = full(machine(fastinter=0.2, observe="layer4", error_limit=1, on_error="fastinter"))
    assert h.observe(EV_L4_ERROR, 1.0) is None
    assert h.health == 4 and h.interval() == 0.2


def test_on_error_sudden_death_leaves_one_failure():
    h = full(machine(rise=2, fall=3, observe="layer4", error_limit=1, on_error="sudden-death"))
    assert h.observe(EV_L4_ERROR, 1.0) is None
    assert h.up and h.health == 2
    t = h.check_failed(2.0)
    assert t is not None and not t.up


def test_on_error_mark_down_is_immediate():
    h = full(machine(observe="layer4", error_limit=1, on_error="mark-down", fastinter=0.1))
    t = h.observe(EV_L4_TIMEOUT, 1.0)
    assert t is not None and not t.up and h.health == 0
    assert h.interval() == 0.1  # forced fastinter, not downinter


def test_layer4_ignores_http_statuses_layer7_counts_them():
    h4 = full(machine(observe="layer4", error_limit=1))
    assert h4.observe(503, 1.0) is None and h4.health == 4
    assert h4.observe(EV_L7_BAD, 1.0) is None and h4.health == 4
    h7 = full(machine(observe="layer7", error_limit=2))
    h7.observe(503, 1.0)
    h7.observe(404, 1.0)  # valid: resets
    h7.observe(500, 1.0)
    assert h7.health == 4
    h7.observe(EV_L7_BAD, 1.0)
    assert h7.health == 3


def test_passive_reason_is_haproxys():
    # HAProxy 2.6, observe layer7 error-limit 2, two 503 answers:
    # reason: Health analyze, info: "Detected 2 consecutive errors, last one
    # was: Wrong http response"
    h = full(machine(rise=1, fall=1, observe="layer7", error_limit=2))
    h.observe(503, 1.0)
    t = h.observe(503, 1.0)
    assert t.reason == ('Health analyze, info: "Detected 2 consecutive errors, '
                        'last one was: Wrong http response"')


def test_agent_down_overrides_checks():
    h = full(machine())
    t = h.agent_state(True, 1.0, reason="Agent reports down")
    assert t is not None and not t.up
    assert h.check_passed(2.0) is None and not h.up
    t = h.agent_state(False, 3.0)
    assert t is not None and t.up


@pytest.mark.parametrize("bad", [dict(observe="layer9"), dict(on_error="explode"),
                                 dict(error_limit=0)])
def test_passive_settings_are_validated(bad):
    with pytest.raises(ValueError):
        Passive(**bad)


def test_timing_is_validated():
    with pytest.raises(ValueError):
        Timing(rise=0)
    with pytest.raises(ValueError):
        Timing(inter=0)


def test_force_jumps_to_either_end():
    h = machine(rise=3, fall=3)
    t = h.force(False, 1.0, "changed from CLI")
    assert t is not None and not t.up and h.health == 0
    assert h.force(False, 2.0) is None
    t = h.force(True, 3.0)
    assert t is not None and t.up and h.health == 5 and h.last_up_at == 3.0


EVENTS = st.one_of(
    st.sampled_from(["pass", "fail", EV_L4_OK, EV_L4_ERROR, EV_L4_TIMEOUT, EV_L7_BAD,
                     "agent-down", "agent-up", "force-up", "force-down"]),
    st.integers(100, 599))


@settings(max_examples=300, deadline=None)
@given(observe=st.sampled_from(["none", "layer4", "layer7"]),
       on_error=st.sampled_from(["fastinter", "fail-check", "sudden-death", "mark-down"]),
       limit=st.integers(1, 4), rise=st.integers(1, 4), fall=st.integers(1, 4),
       events=st.lists(EVENTS, max_size=80))
def test_any_mix_of_checks_passive_events_and_agent_stays_consistent(
        observe, on_error, limit, rise, fall, events):
    h = machine(rise=rise, fall=fall, fastinter=0.1, downinter=5.0, observe=observe,
                error_limit=limit, on_error=on_error)
    up = h.up
    for i, event in enumerate(events):
        now = float(i)
        if event == "pass":
            t = h.check_passed(now)
        elif event == "fail":
            t = h.check_failed(now)
        elif event in ("agent-down", "agent-up"):
            t = h.agent_state(event == "agent-down", now)
        elif event in ("force-up", "force-down"):
            t = h.force(event == "force-up", now)
        else:
            t = h.observe(event, now)
        assert 0 <= h.health <= rise + fall - 1
        assert h.up == (h.health >= rise and not h.agent_down)
        assert (t is not None) == (h.up != up)
        if t is not None:
            assert t.up == h.up and t.now == now
        up = h.up
        assert h.interval() in (2.0, 0.1, 5.0)
        if observe == "none":
            assert h.consecutive_errors == 0 and not h.force_fast
