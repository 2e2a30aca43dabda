"""chkdown and downtime: the sequences read off HAProxy 2.6's `show stat`."""

from __future__ import annotations

from haply.admin.counters import CheckCounters

KEY = ("be", "s")


def counters(*notes) -> CheckCounters:
    """notes: (stopped, in maintenance, at), the first one the start."""
    found = CheckCounters()
    for stopped, maint, at in notes:
        found.note(KEY, stopped, maint, at)
    return found


def test_maintenance_counts_as_going_down():
    # UP, disabled, enabled, disabled again: two downs
    c = counters((False, False, 0.0), (True, True, 1.0), (False, False, 1.5), (True, True, 2.0))
    assert c.chkdown(*KEY) == 2
    # leaving maintenance added nothing; the current stop runs since its start
    assert c.downtime(*KEY, 5.0) == 3


def test_a_server_down_entering_maintenance_does_not_go_down_again():
    c = counters((False, False, 0.0), (True, False, 1.0), (True, True, 3.0), (False, False, 4.0),
                 (True, False, 4.2))
    assert c.chkdown(*KEY) == 2  # its first check failure, and the one after maintenance
    # the time DOWN before maintenance is not added (HAProxy's last change moved)
    assert c.downtime(*KEY, 6.2) == 2


def test_started_in_maintenance_has_not_gone_down():
    c = counters((True, True, 0.0))
    assert (c.chkdown(*KEY), c.downtime(*KEY, 2.5)) == (0, 2)
    c.note(KEY, False, False, 3.0)  # enabled: the period is not added
    c.note(KEY, True, False, 3.1)   # its first check fails
    assert (c.chkdown(*KEY), c.downtime(*KEY, 4.2)) == (1, 1)


def test_checks_bringing_it_back_add_the_period():
    c = counters((False, False, 0.0), (True, False, 1.0), (False, False, 3.5), (True, False, 10.0))
    assert c.chkdown(*KEY) == 2
    assert c.downtime(*KEY, 11.0) == 3  # 2.5 s, then 1 s so far


def test_a_change_that_leaves_it_stopped_moves_its_last_change():
    # DOWN, then put in drain (still DOWN): the registry's last change moved
    c = counters((False, False, 0.0), (True, False, 1.0), (True, False, 2.0), (False, False, 4.0))
    assert c.downtime(*KEY, 4.0) == 2
