"""Per-second rates from sampled totals, on a clock the test drives."""

from __future__ import annotations

from haply.admin.rates import PERIOD, RateSampler
from haply.admin.columns import COLUMN_KIND, COLUMNS


class Clock:
    """The two loop methods the sampler uses; timers fire when time is moved."""

    def __init__(self):
        self.now = 100.0
        self.timers: list = []

    def time(self):
        return self.now

    def call_at(self, when, callback):
        clock = self

        class Handle:
            def cancel(self):
                clock.timers.remove(entry)
        entry = (when, callback)
        self.timers.append(entry)
        return Handle()

    def advance(self, seconds):
        target = self.now + seconds
        while self.timers and min(self.timers)[0] <= target:
            entry = min(self.timers)
            self.timers.remove(entry)
            self.now = entry[0]
            entry[1]()
        self.now = target


def make():
    clock = Clock()
    totals = {"k": 0}
    sampler = RateSampler(clock, lambda: totals.items())
    sampler.start()
    return clock, totals, sampler


def test_a_burst_shows_at_once_and_fades_over_one_second():
    clock, totals, sampler = make()
    clock.advance(0.3)
    totals["k"] = 10
    assert sampler.rate("k", 10, clock.now) == 10  # before any new sample
    clock.advance(0.8)  # a sample at +1.0 took the 10 as the last full period
    assert sampler.rate("k", 10, clock.now) == int(10 * (PERIOD - 0.1))
    clock.advance(0.5)
    assert sampler.rate("k", 10, clock.now) == 4  # 10 * 0.4 of the period left
    clock.advance(1.0)
    assert sampler.rate("k", 10, clock.now) == 0
    assert sampler.maximum("k") == 10


def test_steady_traffic_reads_its_rate_between_samples():
    clock, totals, sampler = make()
    for _ in range(30):  # 50 events a second, in 0.1 s steps
        clock.advance(0.1)
        totals["k"] += 5
    for _ in range(5):
        clock.advance(0.1)
        totals["k"] += 5
        assert 45 <= sampler.rate("k", totals["k"], clock.now) <= 55


def test_zeroed_totals_and_cleared_maxima():
    clock, totals, sampler = make()
    totals["k"] = 40
    clock.advance(1.0)
    assert sampler.maximum("k") == 40
    sampler.clear_maxima()
    assert sampler.maximum("k") == 0
    totals["k"] = 3  # `clear counters all`, then 3 more events
    assert sampler.rate("k", 3, clock.now) >= 3
    sampler.close()
    assert clock.timers == []


def test_every_column_has_a_merge_kind():
    assert set(COLUMN_KIND) == set(COLUMNS)
    assert set(COLUMN_KIND.values()) == {"sum", "max", "min", "avg", "state"}
    assert COLUMN_KIND["smax"] == "max" and COLUMN_KIND["rate"] == "sum"
    assert COLUMN_KIND["status"] == "state" and COLUMN_KIND["ttime"] == "avg"
    assert COLUMN_KIND["stot"] == "sum" and COLUMN_KIND["lastsess"] == "min"


def test_lastsess_counts_whole_seconds_since_the_last_event():
    clock, totals, sampler = make()
    assert sampler.idle_seconds("k", 0, clock.now) == -1  # never had a session
    clock.advance(0.5)
    totals["k"] = 1
    assert sampler.idle_seconds("k", 1, clock.now) == 0  # since the last sample
    clock.advance(0.6)  # sampled at +1.0: the event is in that period
    assert sampler.idle_seconds("k", 1, clock.now) == 0
    clock.advance(3.0)
    assert sampler.idle_seconds("k", 1, clock.now) == 3
    totals["k"] = 2
    assert sampler.idle_seconds("k", 2, clock.now) == 0


def test_stats_page_shows_rates_of_its_engine(tmp_path):
    from tests.unit.test_admin_stats_page import config, request
    from haply.admin.stats_page import StatsPage
    from haply.proxy.conditions import compile_condition
    from tests.support.admin_engine import engine_from

    engine = engine_from(config(), directory=str(tmp_path))
    try:
        page = StatsPage(engine.config.proxy("stats"), engine, compile_condition)
        engine.registry.get("be", "s0").total_sessions = 5  # as five sessions would
        engine.backends["be"].routed = 5  # routed to the backend: its stot and rate
        body = page.answer(request("/st;csv")).split(b"\r\n\r\n", 1)[1].decode()
        header = body.split("\n", 1)[0][2:].split(",")
        rows = {tuple(line.split(",")[:2]): line.split(",") for line in body.split("\n")[1:] if line}
        at = header.index
        assert rows[("be", "s0")][at("rate")] == "5" and rows[("be", "s0")][at("rate_max")] == "5"
        assert rows[("be", "BACKEND")][at("rate")] == "5"
        assert rows[("be", "s1")][at("rate")] == "0"
        html = page.answer(request("/st")).decode()
        assert "<th>Session rate</th>" in html
    finally:
        engine.loop.close()


def test_idle_percent_is_the_rest_of_the_cpu_time():
    clock = Clock()
    sampler = RateSampler(clock, lambda: ())
    sampler.sample()
    assert sampler.idle_percent() == 100
    sampler.cpu -= 0.25  # a quarter of the next second spent running
    clock.now += PERIOD
    sampler.sample()
    assert 70 <= sampler.idle_percent() <= 75
