"""`rate-limit sessions`: the frequency counter that decides how many sessions
a frontend may accept, driven by a fake clock, and the keyword in the
configuration. tests/interop/test_session_rate_oracle.py compares the accept
loop with HAProxy 2.6 on the wire."""

from __future__ import annotations

import textwrap

import pytest
from hypothesis import given, strategies as st

from haply.config import ConfigError, load
from haply.runtime.session_rate import RESOLUTION, SessionRateLimit


def accept_times(limit: int, pending: int, start: float = 100.0) -> list[float]:
    """When each of `pending` connections, all there at `start`, is accepted:
    the accept loop's way (accept what is allowed, else sleep `wait`)."""
    rate = SessionRateLimit(limit)
    now, times = start, []
    while len(times) < pending:
        allowed = min(rate.allowance(now), pending - len(times))
        for _ in range(allowed):
            rate.count(now)
            times.append(round(now - start, 4))
        if len(times) < pending:
            delay = rate.wait(now)
            assert delay > 0
            now += delay
    return times


def test_thirty_at_once_on_ten_per_second_as_haproxy_serves_them():
    # HAProxy 2.6: ten at once, then at 1.00 s and every 100 ms after
    times = accept_times(10, 30)
    assert times[:10] == [0.0] * 10
    assert times[10:] == pytest.approx([1.0 + 0.1 * i + RESOLUTION for i in range(20)], abs=0.002)


def test_the_first_period_starts_with_the_first_session():
    rate = SessionRateLimit(5)
    for t in (10.0, 10.2, 10.4, 10.6, 10.8):
        assert rate.allowance(t) > 0
        rate.count(t)
    assert rate.allowance(10.99) == 0
    # the period turns at 11.0: the previous five weigh 5 x (1 - f), truncated
    assert rate.allowance(11.0) == 0 and rate.rate(11.0) == 5
    assert rate.rate(11.001) == 4 and rate.allowance(11.001) == 1
    assert rate.rate(11.5) == 2
    assert rate.wait(10.99) == pytest.approx(0.01 + RESOLUTION)


def test_an_idle_period_forgets_everything():
    rate = SessionRateLimit(3)
    for _ in range(3):
        rate.count(0.0)
    assert rate.allowance(0.5) == 0
    assert rate.rate(1.9) == 0  # 3 x 0.1 truncated
    assert rate.rate(2.0) == 0 and rate.allowance(2.0) == 3
    rate.count(2.7)  # a new period starts here, not at 2.0
    assert rate.rate(3.6) == 1 and rate.rate(3.8) == 0


def test_more_than_the_limit_counted_waits_into_the_next_period():
    rate = SessionRateLimit(4)
    rate.count(0.0, 8)  # (several listeners may each take a share of one event's allowance)
    # next period: 8 x (1 - f) < 4 once f > 0.5
    assert rate.wait(0.25) == pytest.approx(1.25 + RESOLUTION)


@given(st.integers(1, 50), st.lists(st.floats(0, 0.5), min_size=1, max_size=60))
def test_never_more_than_the_limit_in_any_period(limit, gaps):
    """Whatever the arrivals, no period holds more than the limit (the rate
    reads at least the current period's sessions), so no one-second window
    holds more than twice the limit, and a wait always ends with a session
    allowed. A window across two periods can hold more than the limit: the
    counter weighs the previous period as if its sessions were spread over
    it (limit 5, five sessions at 0.5 s, then 1.001, 1.201, 1.401 s: seven in
    [0.5, 1.5)), as HAProxy's does."""
    rate = SessionRateLimit(limit)
    now, accepted = 0.0, []
    periods: dict[float, int] = {}
    for gap in gaps:
        now += gap
        if rate.allowance(now) == 0:
            now += rate.wait(now)
            assert rate.allowance(now) > 0
        rate.count(now)
        accepted.append(now)
        periods[rate.start] = periods.get(rate.start, 0) + 1
    assert max(periods.values()) <= limit
    for i, first in enumerate(accepted):
        window = [t for t in accepted[i:] if t < first + 1.0]
        assert len(window) <= 2 * limit


# -------------------------------------------------------------- configuration


def loaded(tmp_path, text: str):
    path = tmp_path / "haproxy.cfg"
    path.write_text("defaults\n    mode http\n    timeout connect 2s\n    timeout client 5s\n"
                    "    timeout server 5s\n" + textwrap.dedent(text))
    return load([str(path)], {})


def test_inherited_from_defaults_and_ignored_in_a_backend_as_haproxy_does(tmp_path):
    result = loaded(tmp_path, """\
        defaults
            mode http
            timeout connect 2s
            timeout client 5s
            timeout server 5s
            rate-limit sessions 7
        frontend f
            bind 127.0.0.1:8001
            default_backend b
        listen l
            bind 127.0.0.1:8002
            rate-limit sessions 0
            server s 127.0.0.1:1
        backend b
            rate-limit sessions 10
            server s 127.0.0.1:1
        """)
    proxies = {p.name: p for p in result.config.proxies}
    assert (proxies["f"].rate_limit_sessions, proxies["l"].rate_limit_sessions) == (7, 0)
    assert [d.message for d in result.diagnostics.warnings if "rate-limit" in d.message] == [
        "'rate-limit sessions' is ignored: backend 'b' has no frontend capability (HAProxy ignores it too)"]


@pytest.mark.parametrize("line, message", [
    ("rate-limit sessions", "'rate-limit sessions' expects a number of sessions per second (got nothing)"),
    ("rate-limit sessions x", "invalid rate-limit sessions 'x': expected a whole number"),
    ("rate-limit sessions -1", "rate-limit sessions '-1' is out of range: expected at least 0"),
    ("rate-limit sessions 4 5", "'rate-limit sessions' expects a number of sessions per second (got 2 arguments)"),
    ("rate-limit foo 3", "unknown keyword 'rate-limit foo' in 'frontend' section; "
                         "did you mean 'rate-limit sessions'?"),
    ("rate-limit", "'rate-limit' expects one of: sessions"),
])
def test_bad_values_are_errors_at_their_line(tmp_path, line, message):
    with pytest.raises(ConfigError) as error:
        loaded(tmp_path, f"frontend f\n    bind 127.0.0.1:8001\n    {line}\n")
    found = [(d.location.line, d.message) for d in error.value.diagnostics if d.severity == "error"]
    assert found == [(8, message)]


def test_accepted_beside_proxy_headers(tmp_path):
    """Listeners reading PROXY headers pace their accepts too
    (tests/interop/test_accept_proxy_limits_oracle.py)."""
    result = loaded(tmp_path, """\
        frontend f
            bind 127.0.0.1:8001 accept-proxy
            bind 127.0.0.1:8002
            tcp-request connection expect-proxy layer4 if { src 10.0.0.0/8 }
            rate-limit sessions 5
            default_backend b
        backend b
            server s 127.0.0.1:1
        """)
    assert result.config.proxy("f").rate_limit_sessions == 5
    assert not [d.message for d in result.diagnostics.warnings if "rate-limit" in d.message]
