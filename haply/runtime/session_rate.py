"""`rate-limit sessions N`: how many new sessions a frontend may accept now (no I/O).

HAProxy's manual: "When the frontend reaches the specified number of new
sessions per second, it stops accepting new connections until the rate drops
below the limit again", the rate being "measured every millisecond". The rate
is a per-second frequency counter: the sessions of the current one-second
period plus those of the previous period, weighted by the part of the last
second it still covers, the weighted part truncated to a whole number.

What HAProxy 2.6 does with it, observed with 30 connections opened at once on
`rate-limit sessions 10`: ten are served at once, the eleventh at 1.00 s (the
period turns: 10 x 0.998 counts as 9), then one every 100 ms. So a period
starts with the first session after an idle spell of two periods or more
(not on a fixed grid), and turns every second after that.

Time comes in as an argument (seconds, any origin): the accept loop
(haply.proxy.accepting) asks `allowance(now)` and sleeps `wait(now)` when
nothing is allowed; its listeners count their sessions with `count(now)`.
"""

from __future__ import annotations

PERIOD = 1.0  # seconds: the limit is per second
# HAProxy measures the rate to the millisecond: a wait ends this much after the
# instant the arithmetic allows the next session, so that it is surely allowed.
RESOLUTION = 0.001


class SessionRateLimit:
    __slots__ = ("limit", "start", "current", "previous")

    def __init__(self, limit: int):
        self.limit = limit
        self.start: float | None = None  # the current period's start; None: idle
        self.current = 0  # sessions counted in the current period
        self.previous = 0  # sessions of the period before it

    def _seen_at(self, now: float) -> tuple[float | None, int, int]:
        """(period start, current, previous) as of now. Reading turns no
        period: only a session does, so that one after an idle spell starts
        a period of its own."""
        start = self.start
        if start is None or now - start < PERIOD:
            return start, self.current, self.previous
        if now - start < 2 * PERIOD:
            return start + PERIOD, 0, self.current
        return None, 0, 0  # idle for a whole period: nothing recent counts

    def rate(self, now: float) -> int:
        """Sessions per second, as the limit reads it."""
        start, current, previous = self._seen_at(now)
        if start is None:
            return 0
        return current + int(previous * (PERIOD - (now - start)) / PERIOD)

    def allowance(self, now: float) -> int:
        """How many sessions may be accepted now."""
        return max(0, self.limit - self.rate(now))

    def count(self, now: float, sessions: int = 1) -> None:
        start, current, previous = self._seen_at(now)
        self.start = now if start is None else start
        self.current, self.previous = current + sessions, previous

    def wait(self, now: float) -> float:
        """Seconds until one more session is allowed (0: now)."""
        if self.allowance(now) > 0:
            return 0.0
        start, current, previous = self._seen_at(now)
        limit = self.limit
        if current < limit:
            # within this period, once the previous one's weight drops
            # below what is left: previous * (1 - f) < limit - current
            fraction = 1 - (limit - current) / previous
            return max(0.0, start + PERIOD * fraction - now) + RESOLUTION
        # not before the next period, then the same with this period's count
        fraction = 1 - limit / current
        return max(0.0, start + PERIOD + PERIOD * fraction - now) + RESOLUTION


__all__ = ["PERIOD", "RESOLUTION", "SessionRateLimit"]
