"""Sticky counters (haply.proxy.counters) over stick-tables (haply.proxy.stick):
rates, what tracking counts, entries in use. End to end against HAProxy 2.6:
tests/interop/test_sticky_counters_oracle.py."""

from __future__ import annotations

from hypothesis import example, given, settings
from hypothesis import strategies as st

from haply.config.model import StickTableSpec
from haply.proxy import counters
from haply.proxy.counters import Rate, Tracking
from haply.proxy.stick import StickTable

STORE = (("conn_cnt", None), ("conn_cur", None), ("conn_rate", 10.0), ("sess_cnt", None),
         ("http_req_cnt", None), ("http_req_rate", 10.0), ("http_err_cnt", None), ("gpc0", None),
         ("gpt0", None))


def table(size: int = 10, expire: float | None = 30.0, nopurge: bool = False) -> StickTable:
    return StickTable(StickTableSpec("t", "ip", size, expire=expire, nopurge=nopurge, store=STORE))


def values(entry, now: float) -> dict[str, int]:
    return {name: counters.read(entry.data, name, now) for name, _ in STORE}


def test_a_rate_slides_over_one_period():
    rate = Rate(10.0, now=100.0)
    for when in (100.0, 101.0, 109.0):
        rate.add(when)
    assert rate.value(109.5) == 3
    # 2.5 s into the next period: its one event plus 3 x 7.5/10 of the last
    rate.add(112.0)
    assert rate.value(112.5) == 1 + 2
    assert rate.value(119.9) == 1  # 3 x 0.1 rounds down
    assert rate.value(125.0) == 0  # two periods on: nothing left
    rate.add(125.0, 4)
    assert rate.value(125.0) == 4


def test_tracking_counts_connections_sessions_requests_and_errors():
    t = table()
    session = Tracking()
    session.track(0, t, "192.0.2.7", now=0.0)
    session.track(0, t, "192.0.2.99", now=0.0)  # sc0 is taken: the first rule wins
    assert list(t.entries) == ["192.0.2.7"]
    session.count_session(1.0)
    session.count_session(1.0)  # counted once
    session.request_begun(2.0)
    session.request_failed(2.0)
    session.request_begun(3.0)
    entry = t.entries["192.0.2.7"]
    assert values(entry, 3.0) == {"conn_cnt": 1, "conn_cur": 1, "conn_rate": 1, "sess_cnt": 1,
                                  "http_req_cnt": 2, "http_req_rate": 2, "http_err_cnt": 1,
                                  "gpc0": 0, "gpt0": 0}
    assert entry.use == 1
    # a request tracked by an http-request rule counts itself, and stops with it
    session.track(1, t, "192.0.2.7", now=4.0, per_request=True, counts_request=True)
    assert (entry.use, values(entry, 4.0)["conn_cur"], values(entry, 4.0)["http_req_cnt"]) == (2, 2, 3)
    session.request_ended(5.0)
    assert session.slots[1] is None and session.slots[0] is not None
    assert (entry.use, values(entry, 5.0)["conn_cur"]) == (1, 1)
    session.apply("inc-gpc0", 0, 0, 5.0)
    session.apply("set-gpt0", 0, 7, 5.0)
    session.apply("inc-gpc0", 2, 0, 5.0)  # sc2 tracks nothing: no effect
    session.ended(6.0)
    assert (entry.use, values(entry, 6.0)["conn_cur"], values(entry, 6.0)["gpc0"],
            values(entry, 6.0)["gpt0"]) == (0, 0, 1, 7)
    assert entry.expires == 36.0  # expire counts from the session's end


def test_entries_in_use_neither_expire_nor_make_room():
    t = table(size=1, expire=5.0)
    session = Tracking()
    session.track(0, t, "192.0.2.1", now=0.0)
    assert t.find("192.0.2.1", now=60.0) is not None  # tracked: kept past its expiry
    other = Tracking()
    other.track(0, t, "192.0.2.2", now=1.0)  # full of an entry in use: no room
    assert other.slots[0] is None and list(t.entries) == ["192.0.2.1"]
    assert t.clear() == 0  # nothing is cleared from under a session
    session.ended(2.0)
    assert t.find("192.0.2.1", now=6.9) is not None
    assert t.find("192.0.2.1", now=7.0) is None  # 5 s after its session ended
    full = table(size=1, nopurge=True)
    Tracking().track(0, full, "192.0.2.1", now=0.0)
    refused = Tracking()
    refused.track(0, full, "192.0.2.2", now=0.0)
    assert refused.slots[0] is None and list(full.entries) == ["192.0.2.1"]


def test_keys_that_do_not_fit_are_not_tracked():
    session = Tracking()
    session.track(0, table(), "not-an-address", now=0.0)
    assert session.slots[0] is None


def test_fetches_read_increment_and_clear():
    t = table()
    entry = t.place("192.0.2.1", 0.0)
    assert counters.fetch("inc_gpc0")(entry, 0.0) == 1
    assert counters.fetch("inc_gpc0")(entry, 0.0) == 2
    assert counters.fetch("get_gpc0")(entry, 0.0) == 2
    assert counters.fetch("clr_gpc0")(entry, 0.0) == 2
    assert counters.fetch("get_gpc0")(entry, 0.0) == 0
    assert counters.fetch("sess_rate")(entry, 0.0) is None  # not stored: the fetch fails
    assert counters.fetch("conn_cur")(counters.NO_ENTRY, 0.0) == 0
    assert counters.show(entry.data, 0.0) == (
        "gpt0=0 gpc0=0 conn_cnt=0 conn_rate(10000)=0 conn_cur=0 sess_cnt=0 http_req_cnt=0 "
        "http_req_rate(10000)=0 http_err_cnt=0")


class Counted:
    """What a counting transport shows of a connection: its byte counts."""

    def __init__(self) -> None:
        self.received = self.written = 0


def test_bytes_and_failures_count_in_the_entries_tracked_when_they_are_added():
    t = StickTable(StickTableSpec("t", "ip", 10, store=(
        ("bytes_in_cnt", None), ("bytes_in_rate", 10.0), ("bytes_out_cnt", None), ("http_fail_cnt", None))))
    session, transport = Tracking(), Counted()
    transport.received, transport.written = 40, 500  # a request and its answer before any tracking
    session.request_ended(1.0, transport)
    session.track(0, t, "192.0.2.1", now=2.0, per_request=True)
    transport.received, transport.written = 1100, 700  # the tracked request: an upload
    session.server_failed(3.0)
    session.request_ended(3.0, transport)  # counted, then the tracking stops
    entry = t.entries["192.0.2.1"]
    read = lambda name, now=3.0: counters.read(entry.data, name, now)  # noqa: E731
    assert (read("bytes_in_cnt"), read("bytes_in_rate"), read("bytes_out_cnt"), read("http_fail_cnt")) == (
        1060, 1060, 200, 1)
    transport.received = 1500  # after the tracking: counted nowhere
    session.ended(4.0, transport)
    session.ended(5.0, None)  # a transport that does not count: nothing to add
    assert read("bytes_in_cnt", 5.0) == 1060
    assert read("bytes_in_rate", 25.0) == 0  # two periods on
    assert counters.fetch("kbytes_in")(entry, 5.0) == 1  # 1060 >> 10
    assert counters.fetch("kbytes_out")(entry, 5.0) == 0  # 200 bytes
    assert counters.fetch("bytes_out_rate")(entry, 5.0) is None  # not stored: the fetch fails
    assert counters.fetch("kbytes_in")(counters.NO_ENTRY, 5.0) == 0
    assert counters.stored_as("kbytes_out") == "bytes_out_cnt"
    assert counters.show(entry.data, 25.0) == (
        "bytes_in_cnt=1060 bytes_in_rate(10000)=0 bytes_out_cnt=200 http_fail_cnt=1")


@settings(max_examples=200, deadline=None)
@example([99.0], 1.1, 1.0)  # 99.0 // 1.1 is 89: an event on a boundary, read in the next period
@example([95.0], 1.1, 4.0)
@given(st.lists(st.floats(0, 100, allow_nan=False), max_size=40), st.floats(0.5, 20), st.floats(0, 150))
def test_a_rate_counts_the_last_period_and_part_of_the_one_before(offsets, period, later):
    """Whatever the events' times: at least the events since its period began,
    at most those of the last two periods, and nothing two periods on."""
    times = sorted(offsets)
    rate = Rate(period, now=0.0)
    for when in times:
        rate.add(when)
    now = (times[-1] if times else 0.0) + later
    value = rate.value(now)
    current = rate.period_of(now)  # the period holding now (they follow one another from 0.0)
    assert rate.index == current
    assert value >= sum(1 for t in times if rate.period_of(t) == current)
    assert value <= sum(1 for t in times if rate.period_of(t) >= current - 1)
    if not any(rate.period_of(t) >= current - 1 for t in times):
        assert value == 0
