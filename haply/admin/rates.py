"""Per-second rates for `show stat`: rate, req_rate, conn_rate and their maxima.

HAProxy's management guide ("show stat", 9.1) defines `rate` as the number of
sessions per second over the last elapsed second, `req_rate` and `conn_rate`
likewise for HTTP requests and accepted connections, and the `*_max` columns as
the highest such rate seen. Nothing is timestamped per event: the hot path only
bumps the totals it already keeps, and this sampler reads those totals once per
PERIOD, off the hot path (a few hundred integer reads a second for a large
config).

Between two samples a rate is read as the events of the current, unfinished
period plus the previous full period's count weighted by the part of it still
inside the last second: a burst shows at once and fades over one second rather
than appearing only at the next sample. The *_max columns keep the highest rate
read or sampled.
"""

from __future__ import annotations

import time
import weakref

PERIOD = 1.0  # seconds: the rates are per second (management guide 9.1)


class RateSampler:
    """Totals sampled every PERIOD; `rate(key, total, now)` for a page."""

    def __init__(self, loop, totals, stopping=lambda: False, tick=None):
        self.loop = loop
        self.totals = totals  # () -> iterable of (key, running total)
        self.tick = tick  # called at each sample
        self.stopping = stopping
        self.last: dict = {}  # key -> total at the last sample
        self.previous: dict = {}  # key -> events in the last full period
        self.maxima: dict = {}  # key -> highest rate seen
        self.active_at: dict = {}  # key -> time of the last sample that saw an event
        self.sampled_at: float | None = None
        self._timer = None
        # the process's CPU time at the last sample, and the share of the last
        # period it was busy (show info's Idle_pct is the rest)
        self.cpu = time.process_time()
        self.busy = 0.0

    def start(self) -> None:
        if self._timer is None and self.sampled_at is None:
            self.sample()

    def sample(self) -> None:
        now = self.loop.time()
        self._timer = None
        last, previous, maxima = self.last, self.previous, self.maxima
        for key, total in self.totals():
            count = total - last.get(key, 0)
            if count < 0:  # `clear counters all` zeroed the total
                count = total
            previous[key] = count
            last[key] = total
            if count:
                self.active_at[key] = now
            if count > maxima.get(key, 0):
                maxima[key] = count
        cpu = time.process_time()
        if self.sampled_at is not None and now > self.sampled_at:
            self.busy = min(1.0, (cpu - self.cpu) / (now - self.sampled_at))
        self.cpu = cpu
        self.sampled_at = now
        if self.tick is not None:
            self.tick()
        if not self.stopping():
            self._timer = self.loop.call_at(self.sampled_at + PERIOD, self.sample)

    def rate(self, key, total: int, now: float) -> int:
        """Events per second over the last second for key, whose running total
        is total now; updates key's maximum."""
        if self.sampled_at is None:
            return 0
        current = total - self.last.get(key, 0)
        if current < 0:
            current = total
        elapsed = min(max(now - self.sampled_at, 0.0), PERIOD)
        value = int(current + self.previous.get(key, 0) * (PERIOD - elapsed) / PERIOD)
        if value > self.maxima.get(key, 0):
            self.maxima[key] = value
        return value

    def idle_seconds(self, key, total: int, now: float) -> int:
        """`lastsess`: whole seconds since key's last event, to the sampling
        period's precision; -1 when it never had one."""
        if not total:
            return -1
        if self.sampled_at is None or total != self.last.get(key, 0):
            return 0  # an event since the last sample
        since = self.active_at.get(key)
        if since is None:
            return int(now - self.sampled_at) if self.sampled_at is not None else 0
        return max(0, int(now - since))

    def maximum(self, key) -> int:
        return self.maxima.get(key, 0)

    def idle_percent(self) -> int:
        """Percent of the last sampling period the process spent waiting
        rather than running (its CPU time over the wall time)."""
        return int(round(100 * (1.0 - self.busy)))

    def clear_maxima(self) -> None:
        """`clear counters`: maxima restart from now."""
        self.maxima.clear()

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


def process_totals(engine) -> dict[str, int]:
    """The process's own running totals (show info): connections accepted,
    bytes sent (to clients and to servers) and bytes fed to and emitted by
    the compressor."""
    bytes_out = comp_in = comp_out = 0
    for frontend in engine.frontends.values():
        bytes_out += frontend.bytes_out
        comp_in += frontend.comp.comp_in
        comp_out += frontend.comp.comp_out
    for backend in engine.backends.values():
        # HTTP exchanges count request bytes on the servers, tunnels on the backend
        bytes_out += max(backend.bytes_in, sum(s.bytes_in for s in backend.servers))
    return {"conn": getattr(engine.global_gate, "total", 0), "bytes out": bytes_out,
            "comp in": comp_in, "comp out": comp_out}


# Keys (kind, proxy, server-or-counter) of the totals sampled for an engine.
def engine_totals(engine):
    for name, value in process_totals(engine).items():
        yield ("process", None, name), value
    for name, frontend in engine.frontends.items():
        total = getattr(frontend.gate, "total", 0)
        # conn_tot: the sessions and the connections refused before becoming one
        yield ("conn", name, None), (total + frontend.denied_connections
                                     + frontend.denied_sessions + frontend.header_failures)
        yield ("frontend sessions", name, None), total
        yield ("req", name, None), frontend.http_requests
    for name, backend in engine.backends.items():
        yield ("sess", name, None), backend.routed
        for state in backend.servers:
            yield ("sess", name, state.name), state.total_sessions


def time_next_exchanges(engine) -> None:
    """Ask for the next HTTP exchange with each server to be timed (its
    rtime and ttime): one a period, so that the others pay no clock read."""
    for state in engine.registry.all():
        state.timing = True


_BY_ENGINE: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def for_engine(engine) -> RateSampler:
    """The engine's sampler, started on first use (by the stats page, the
    exporter and the stats sockets: whatever can show a rate)."""
    sampler = _BY_ENGINE.get(engine)
    if sampler is None:
        sampler = RateSampler(engine.loop, lambda: engine_totals(engine),
                              lambda: getattr(engine, "stopping", False),
                              lambda: time_next_exchanges(engine))
        _BY_ENGINE[engine] = sampler
        sampler.start()
    return sampler


def of(engine) -> RateSampler | None:
    """The engine's sampler if something started one (snapshot.take reads it;
    rates stay 0 where nothing can show them)."""
    return _BY_ENGINE.get(engine)
