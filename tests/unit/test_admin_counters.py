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


# ---------------------------------------------------------------- backends

from haply.admin.counters import BackendHistory  # noqa: E402


def test_a_backend_going_down_counts_and_restarts_its_period():
    history = BackendHistory(down=False, since=0.0)
    history.note(True, by_checks=False, now=2.0)
    history.note(True, by_checks=False, now=2.5)  # still down: no change
    assert (history.downs, history.since, history.downtime(4.0)) == (1, 2.0, 2)


def test_only_the_checks_bringing_a_backend_back_add_its_period():
    history = BackendHistory(down=False, since=0.0)
    history.note(True, by_checks=False, now=1.0)
    history.note(False, by_checks=False, now=3.0)  # an operator: nothing added
    assert history.downtime(10.0) == 0
    history.note(True, by_checks=True, now=10.0)
    history.note(False, by_checks=True, now=13.5)
    assert (history.downs, history.downtime(20.0), history.since) == (2, 3, 13.5)


def test_a_backend_down_from_the_start_has_not_gone_down():
    history = BackendHistory(down=True, since=5.0)
    assert (history.downs, history.downtime(7.9)) == (0, 2)
