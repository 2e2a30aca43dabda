"""Dynamic server limits (minconn, maxconn, fullconn): the formula, fullconn's
default, the configuration, and a backend placing requests with them. The
figures are HAProxy 2.6's, read from its `show stat` (tests/interop/
test_server_limits_oracle.py compares the two on the wire)."""

from __future__ import annotations

import asyncio
import textwrap

import pytest

from haply.config import ConfigError, load
from haply.config.model import Proxy, Server
from haply.proxy.backend import BackendRuntime
from haply.proxy.dynamic_backend import DynamicLimitBackend, backend_for
from haply.runtime.dynamic_limit import backend_fullconn, dynamic_maxconn, fullconn_from, is_dynamic
from haply.runtime.registry import Registry


# ------------------------------------------------------------------ the formula


@pytest.mark.parametrize("load, limit", [
    (0, 2), (1, 2), (5, 2), (6, 3), (7, 3), (11, 5), (12, 6), (19, 9), (20, 10), (500, 10),
])
def test_the_limit_ramps_from_minconn_to_maxconn_at_fullconn(load, limit):
    assert dynamic_maxconn(2, 10, 20, load) == limit


def test_the_manuals_example():
    # fullconn 10000, minconn 100, maxconn 1000: 1000 at 10000, at least 100
    assert dynamic_maxconn(100, 1000, 10000, 10000) == 1000
    assert dynamic_maxconn(100, 1000, 10000, 5000) == 500
    assert dynamic_maxconn(100, 1000, 10000, 10) == 100


@pytest.mark.parametrize("minconn, maxconn, dynamic", [
    (0, 10, False), (5, 5, False), (5, 10, True), (1, 2, True), (3, 0, False),
])
def test_only_a_minconn_below_maxconn_moves(minconn, maxconn, dynamic):
    assert is_dynamic(minconn, maxconn) is dynamic
    if not dynamic:
        assert dynamic_maxconn(minconn, maxconn, 100, 1) == maxconn


@pytest.mark.parametrize("limits, fullconn", [
    ((95,), 10), ((95, 1000), 110), ((1000,), 100), ((), 1), ((9986,), 999), ((3,), 1), ((10,), 1),
])
def test_fullconn_default_is_a_tenth_of_the_frontends_rounded_up(limits, fullconn):
    assert fullconn_from(limits) == fullconn


# -------------------------------------------------------------- configuration


PRELUDE = """\
global
    maxconn 1000
defaults
    mode http
    timeout connect 2s
    timeout client 5s
    timeout server 5s
"""


def loaded(tmp_path, text: str):
    path = tmp_path / "haproxy.cfg"
    path.write_text(PRELUDE + textwrap.dedent(text))
    return load([str(path)], {})


def test_servers_and_fullconn_as_haproxy_reads_them(tmp_path):
    config = loaded(tmp_path, """\
        frontend fa
            bind 127.0.0.1:8001
            maxconn 95
            default_backend b1
            use_backend b2 if { path /x }
        frontend fb
            bind 127.0.0.1:8002
            default_backend b2
        listen l1
            bind 127.0.0.1:8003
            maxconn 95
            default-server minconn 2
            server s1 127.0.0.1:1 minconn 5
            server s2 127.0.0.1:1 minconn 5 maxconn 3
            server s3 127.0.0.1:1 maxconn 7
            server s4 127.0.0.1:1
        backend b1
            server s1 127.0.0.1:1 minconn 5 maxconn 10
        backend b2
            server s1 127.0.0.1:1 minconn 5 maxconn 10
        backend b3
            server s1 127.0.0.1:1 minconn 5 maxconn 10
        backend b4
            fullconn 33
            server s1 127.0.0.1:1 minconn 0 maxconn 10
        """).config
    servers = {(p.name, s.name): (s.minconn, s.maxconn) for p in config.proxies for s in p.servers}
    # minconn alone, or above maxconn, is the maxconn (HAProxy's slim: 5, 5)
    assert servers["l1", "s1"] == (5, 5) and servers["l1", "s2"] == (5, 5)
    assert servers["l1", "s3"] == (2, 7) and servers["l1", "s4"] == (2, 2)  # default-server's
    # HAProxy 2.6's BACKEND slim for each, from `show stat`
    fullconns = {p.name: backend_fullconn(config, p) for p in config.backends}
    assert fullconns == {"l1": 10, "b1": 10, "b2": 110, "b3": 1, "b4": 33}


def test_a_frontend_without_maxconn_counts_the_one_haproxy_derives(tmp_path):
    path = tmp_path / "haproxy.cfg"
    path.write_text("defaults\n    mode tcp\n    timeout connect 1s\n    timeout client 1s\n"
                    "    timeout server 1s\nlisten l\n    bind 127.0.0.1:8001\n"
                    "    server s 127.0.0.1:1 minconn 5 maxconn 8\n")
    config = load([str(path)], {}).config
    assert backend_fullconn(config, config.backends[0], default_maxconn=9986) == 999


def test_fullconn_is_inherited_and_ignored_where_haproxy_ignores_it(tmp_path):
    result = loaded(tmp_path, """\
        defaults
            mode http
            timeout connect 2s
            timeout client 5s
            timeout server 5s
            fullconn 50
        frontend f
            bind 127.0.0.1:8001
            fullconn 10
            default_backend b
        backend b
            server s 127.0.0.1:1 minconn 1 maxconn 4
        """)
    proxies = {p.name: p for p in result.config.proxies}
    assert proxies["b"].fullconn == 50
    notes = [d.message for d in result.diagnostics.warnings]
    assert any("'fullconn' is ignored: frontend 'f' has no backend capability" in n for n in notes)


@pytest.mark.parametrize("line, message", [
    ("fullconn", "'fullconn' expects a number of connections (got nothing)"),
    ("fullconn x", "invalid fullconn 'x': expected a whole number"),
    ("fullconn -3", "fullconn '-3' is out of range: expected at least 0"),
    ("fullconn 4 5", "'fullconn' expects a number of connections (got 2 arguments)"),
    ("server t 127.0.0.1:2 minconn x", "invalid minconn 'x': expected a whole number"),
    ("server t 127.0.0.1:2 minconn", "server option 'minconn' needs a number"),
])
def test_bad_values_are_errors_at_their_line(tmp_path, line, message):
    with pytest.raises(ConfigError) as error:
        loaded(tmp_path, f"listen l\n    bind 127.0.0.1:8001\n    {line}\n    server s 127.0.0.1:1\n")
    found = [(d.location.line, d.message) for d in error.value.diagnostics if d.severity == "error"]
    assert found == [(10, message)]


# ---------------------------------------------------------------- the backend


def dynamic_backend(loop, balance="roundrobin", fullconn=20, servers=2) -> BackendRuntime:
    proxy = Proxy("be", "backend", mode="http", balance=balance, servers=tuple(
        Server(f"s{i}", "127.0.0.1", 9, minconn=2, maxconn=10) for i in range(1, servers + 1)))
    registry = Registry()
    registry.add_backend(proxy)
    return DynamicLimitBackend(proxy, registry, loop, fullconn)


def test_a_backend_without_moving_limits_is_the_plain_one(tmp_path):
    config = loaded(tmp_path, """\
        listen l
            bind 127.0.0.1:8001
            server s1 127.0.0.1:1 maxconn 10
            server s2 127.0.0.1:1 minconn 4 maxconn 4
        listen m
            bind 127.0.0.1:8002
            server s1 127.0.0.1:1 minconn 2 maxconn 10
        """).config
    registry = Registry()
    loop = asyncio.new_event_loop()
    try:
        kinds = {}
        for proxy in config.backends:
            registry.add_backend(proxy)
            kinds[proxy.name] = type(backend_for(proxy, config, registry, loop))
    finally:
        loop.close()
    assert kinds == {"l": BackendRuntime, "m": DynamicLimitBackend}


def test_twelve_requests_on_two_servers_are_placed_as_haproxy_places_them():
    """HAProxy 2.6, roundrobin, minconn 2 maxconn 10 on two servers, fullconn
    20, twelve requests held: 2 + 2 served, 8 queued; the first to end lets
    its server take 5 (its limit is 6 at a load of 12), the second's server
    takes the 3 left."""
    async def scenario():
        backend = dynamic_backend(asyncio.get_running_loop())
        s1, s2 = backend.servers
        held = [backend.try_acquire(None) for _ in range(4)]
        assert held == [s1, s2, s1, s2]
        queued = [asyncio.ensure_future(backend.acquire(None)) for _ in range(8)]
        await asyncio.sleep(0)
        assert (s1.current_sessions, s2.current_sessions, backend.queued) == (2, 2, 8)
        assert (s1.maxconn, s2.maxconn) == (6, 6)  # as the twelfth came
        backend.release(held[0])
        await asyncio.sleep(0)
        assert (s1.current_sessions, s2.current_sessions, backend.queued) == (6, 2, 3)
        assert [task.result() for task in queued[:5]] == [s1] * 5
        backend.release(held[1])
        await asyncio.sleep(0)
        assert (s1.current_sessions, s2.current_sessions, backend.queued) == (6, 4, 0)
        assert (s1.max_sessions, s2.max_sessions) == (6, 4)

    asyncio.run(scenario())


@pytest.mark.parametrize("balance, served, queued", [
    # roundrobin keeps the queue's order: the raised limit waits for a release
    ("roundrobin", (2, 2), 11),
    # leastconn looks for a slot: the twelfth and the thirteenth find one
    ("leastconn", (3, 3), 9),
])
def test_a_raised_limit_with_a_queue(balance, served, queued):
    async def scenario():
        backend = dynamic_backend(asyncio.get_running_loop(), balance=balance, fullconn=40)
        s1, s2 = backend.servers
        held = [backend.try_acquire(None) for _ in range(4)]
        # limit 2 up to a load of 11, then 3 (12 * 10 // 40)
        waiting = [asyncio.ensure_future(backend.acquire(None)) for _ in range(11)]
        await asyncio.sleep(0)
        assert (s1.current_sessions, s2.current_sessions) == served
        assert backend.queued == queued and None not in held
        for task in waiting:
            task.cancel()
        await asyncio.gather(*waiting, return_exceptions=True)

    asyncio.run(scenario())


def test_the_limit_follows_the_load_down_again():
    async def scenario():
        backend = dynamic_backend(asyncio.get_running_loop(), servers=1, fullconn=20)
        (s1,) = backend.servers
        held = [backend.try_acquire(None) for _ in range(2)]
        waiting = [asyncio.ensure_future(backend.acquire(None)) for _ in range(18)]
        await asyncio.sleep(0)
        assert backend.queued == 18 and s1.maxconn == 10  # the twentieth: full load
        for task in waiting:
            task.cancel()
        await asyncio.gather(*waiting, return_exceptions=True)
        backend.release(held[1])
        assert backend.try_acquire(None) is s1  # a load of 2: limit 2, one held
        assert backend.try_acquire(None) is None  # a load of 3: limit still 2
        assert s1.maxconn == 2 and s1.current_sessions == 2

    asyncio.run(scenario())
