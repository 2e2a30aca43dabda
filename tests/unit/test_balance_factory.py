"""make_balancer: names and arguments as written in haproxy.cfg."""

from __future__ import annotations

import pytest

from haply.balance import (
    First, HashBalancer, LeastConn, RandomDraws, RoundRobin, StaticRoundRobin, hashes_requests,
    make_balancer,
)
from tests.support.balance_servers import farm


@pytest.mark.parametrize("algorithm,arg,cls", [
    ("roundrobin", None, RoundRobin),
    ("static-rr", None, StaticRoundRobin),
    ("leastconn", None, LeastConn),
    ("first", None, First),
    ("source", None, HashBalancer),
    ("uri", None, HashBalancer),
    ("uri", "whole", HashBalancer),
    ("url_param", "userid", HashBalancer),
    ("hdr(Host)", None, HashBalancer),
    ("hdr", "host", HashBalancer),
    ("random", None, RandomDraws),
    ("RoundRobin", None, RoundRobin),
])
def test_algorithms(algorithm, arg, cls):
    _, states = farm([1, 2])
    balancer = make_balancer(algorithm, states, arg=arg)
    assert isinstance(balancer, cls)
    for name in ("rebuild", "pick", "has_usable", "connection_started", "connection_ended"):
        assert callable(getattr(balancer, name))


def test_hdr_name_and_options():
    _, states = farm([1, 1])
    balancer = make_balancer("hdr(Host)", states, arg="use_domain_only")
    assert balancer.arg == "Host use_domain_only"


def test_hash_type_words():
    _, states = farm([1, 1])
    assert make_balancer("source", states, hash_type="consistent sdbm avalanche").consistent
    assert not make_balancer("source", states).consistent


@pytest.mark.parametrize("algorithm,arg,hash_type", [
    ("leastcon", None, "map-based"),
    ("url_param", None, "map-based"),
    ("hdr", None, "map-based"),
    ("source", None, "ring"),
    ("uri", "sideways", "map-based"),
    ("random", "two", "map-based"),
])
def test_errors(algorithm, arg, hash_type):
    _, states = farm([1])
    with pytest.raises(ValueError):
        make_balancer(algorithm, states, arg=arg, hash_type=hash_type)


@pytest.mark.parametrize("algorithm, hashes", [
    ("roundrobin", False), ("static-rr", False), ("leastconn", False), ("first", False),
    ("random", False), ("random(3)", False), ("source", True), ("uri", True),
    ("url_param", True), ("hdr", True), ("hdr(Host)", True),
])
def test_hashes_requests_names_the_deterministic_algorithms(algorithm, hashes):
    # option prefer-last-server does not apply to these (configuration manual)
    assert hashes_requests(algorithm) is hashes
