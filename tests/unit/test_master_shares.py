from hypothesis import given, strategies as st

from haply.config import load
from haply.master.shares import for_worker, share


@given(st.integers(min_value=1, max_value=100_000), st.integers(min_value=1, max_value=64))
def test_shares_add_up_to_the_limit_and_never_leave_a_worker_without(limit, workers):
    parts = [share(limit, i, workers) for i in range(workers)]
    assert all(part >= 1 for part in parts)
    assert max(parts) - min(parts) <= 1
    if limit >= workers:
        assert sum(parts) == limit
    else:
        assert sum(parts) == workers  # the documented overshoot: 1 each


def test_unlimited_stays_unlimited_and_one_worker_keeps_everything():
    assert share(0, 0, 4) == 0
    assert share(None, 1, 4) is None
    assert share(7, 0, 1) == 7


def test_every_limit_of_a_config_is_split(tmp_path):
    text = """
global
    maxconn 1001
defaults
    mode http
frontend fe
    bind 127.0.0.1:8080
    bind 127.0.0.1:8081 maxconn 7 name limited
    maxconn 100
    rate-limit sessions 25
    default_backend be
backend be
    fullconn 31
    server s1 127.0.0.1:1 maxconn 3 maxqueue 9
    server s2 127.0.0.1:2
    server s3 127.0.0.1:3 minconn 5 maxconn 20
"""
    path = tmp_path / "haproxy.cfg"
    path.write_text(text)
    config = load([str(path)]).config
    first, second = for_worker(config, 0, 2), for_worker(config, 1, 2)
    assert (first.global_.maxconn, second.global_.maxconn) == (501, 500)
    assert (first.proxy("fe").maxconn, second.proxy("fe").maxconn) == (50, 50)
    assert [c.proxy("fe").rate_limit_sessions for c in (first, second)] == [13, 12]
    s1 = [c.proxy("be").servers[0] for c in (first, second)]
    assert [s.maxconn for s in s1] == [2, 1]
    assert [s.maxqueue for s in s1] == [5, 4]
    assert [c.proxy("be").servers[1].maxconn for c in (first, second)] == [0, 0]
    assert [(c.proxy("be").servers[2].minconn, c.proxy("be").servers[2].maxconn)
            for c in (first, second)] == [(3, 10), (2, 10)]
    assert [c.proxy("be").fullconn for c in (first, second)] == [16, 15]
    assert [c.proxy("fe").binds[1].options for c in (first, second)] == [
        (("maxconn", "4"), ("name", "limited")), (("maxconn", "3"), ("name", "limited"))]
    assert [c.proxy("fe").binds[0].options for c in (first, second)] == [(), ()]
    assert for_worker(config, 0, 1) is config
