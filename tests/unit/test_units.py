"""Times and sizes as haproxy.cfg writes them."""

import pytest
from hypothesis import given, strategies as st

from haply.config.units import TIME_UNITS, UnitError, parse_int, parse_port, parse_size, parse_time


@pytest.mark.parametrize(
    "text, seconds",
    [("2000", 2.0), ("0", 0.0), ("500us", 0.0005), ("10ms", 0.01), ("10s", 10.0), ("1m", 60.0),
     ("2h", 7200.0), ("1d", 86400.0), ("50000", 50.0)],
)
def test_time(text, seconds):
    assert parse_time(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "s", "10x", "1.5s", "-1s", "10 s", "10S", "ms10"])
def test_bad_time_names_the_value(text):
    with pytest.raises(UnitError) as error:
        parse_time(text, "timeout client")
    assert f"invalid timeout client '{text}'" in str(error.value)
    assert "us, ms, s, m, h, d" in str(error.value)


@given(st.integers(min_value=0, max_value=10**9), st.sampled_from(sorted(TIME_UNITS)))
def test_time_units_scale(value, unit):
    assert parse_time(f"{value}{unit}") == pytest.approx(value * TIME_UNITS[unit])


@pytest.mark.parametrize("text, size", [("512", 512), ("16k", 16384), ("16K", 16384), ("1m", 1 << 20), ("2g", 2 << 30)])
def test_size(text, size):
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["", "k", "1.5k", "10t", "-1"])
def test_bad_size(text):
    with pytest.raises(UnitError, match=f"invalid size '{text}'"):
        parse_size(text)


def test_int_bounds():
    assert parse_int("256", "weight", 0, 256) == 256
    with pytest.raises(UnitError, match="weight '257' is out of range: expected between 0 and 256"):
        parse_int("257", "weight", 0, 256)
    with pytest.raises(UnitError, match="invalid weight 'x'"):
        parse_int("x", "weight")
    with pytest.raises(UnitError, match="expected at least 1"):
        parse_int("0", "rise", 1)


def test_port():
    assert parse_port("65535") == 65535
    for bad in ("0", "65536", "70000"):
        with pytest.raises(UnitError, match="between 1 and 65535"):
            parse_port(bad)
