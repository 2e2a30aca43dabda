"""The Prometheus exporter's text from a snapshot: HAProxy 2.6's families, in
its order, printed only where they have a sample."""

from __future__ import annotations

import pytest

from haply.admin import prometheus, snapshot
from tests.support.admin_engine import engine_from

prometheus_client = pytest.importorskip("prometheus_client")
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

CONFIG = """
defaults
    mode http
    timeout connect 1s
    timeout client 5s
    timeout server 5s
frontend fe
    bind 127.0.0.1:18999
    default_backend be
backend be
    server s1 127.0.0.1:9001 weight 3
    server s2 127.0.0.1:9002 backup
    server s3 127.0.0.1:9003 disabled
listen tcpin
    mode tcp
    bind 127.0.0.1:18998
    server t1 127.0.0.1:9004
"""


@pytest.fixture
def engine():
    engine = engine_from(CONFIG)
    yield engine
    engine.loop.close()


def families(text: str) -> dict:
    return {family.name: family for family in text_string_to_metric_families(text)}


def samples(text: str) -> dict:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_every_family_in_haproxys_order(engine):
    text = prometheus.render(snapshot.take(engine, engine.loop.time()))
    helps = [line.split()[2] for line in text.splitlines() if line.startswith("# HELP")]
    process = [f"haproxy_process_{name}" for name, *_ in prometheus.PROCESS]
    assert helps[:len(process)] == process
    # no server checks here: no check families; the rest in ORDER's order
    expected = process + [f"haproxy_{kind}_{name}" for kind in ("frontend", "backend", "server")
                          for name in prometheus.ORDER[kind] if name not in prometheus.CHECK_ONLY]
    assert helps == expected
    assert len(families(text)) == len(expected)


def test_process_metrics_come_from_show_info(engine):
    snap = snapshot.take(engine, engine.loop.time())
    found = samples(prometheus.render(snap))
    info = snap.info
    assert found[("haproxy_process_build_info", (("version", info["Version"]),))] == 1
    assert found[("haproxy_process_max_fds", ())] == info["Ulimit-n"]
    assert found[("haproxy_process_start_time_seconds", ())] == info["Start_time_sec"]
    assert found[("haproxy_process_pipes_used_total", ())] == 0
    value = found[("haproxy_process_current_zlib_memory", ())]
    assert value != value  # NaN, as HAProxy prints it without zlib's figures


def test_tcp_proxies_have_no_http_samples(engine):
    found = samples(prometheus.render(snapshot.take(engine, engine.loop.time())))
    assert ("haproxy_frontend_http_requests_total", (("proxy", "fe"),)) in found
    assert ("haproxy_frontend_http_requests_total", (("proxy", "tcpin"),)) not in found
    assert ("haproxy_backend_http_cache_hits_total", (("proxy", "tcpin"),)) not in found
    assert ("haproxy_backend_connection_attempts_total", (("proxy", "tcpin"),)) in found
    assert not [key for key in found if key[0] == "haproxy_server_http_responses_total"
                and ("server", "t1") in key[1]]


def test_times_in_seconds_and_counts_per_state(engine):
    s1 = engine.registry.get("be", "s1")
    s1.connects, s1.reuses = 4, 6
    snap = snapshot.take(engine, engine.loop.time())
    for row in snap.rows:
        if row["svname"] == "s1":
            row["rtime_max"] = 12
    found = samples(prometheus.render(snap))
    server = (("proxy", "be"), ("server", "s1"))
    assert found[("haproxy_server_max_response_time_seconds", server)] == 0.012
    assert found[("haproxy_server_connection_attempts_total", server)] == 4
    assert found[("haproxy_backend_connection_reuses_total", (("proxy", "be"),))] == 6
    states = {label: value for (name, labels), value in found.items()
              if name == "haproxy_backend_agg_server_status" and ("proxy", "be") in labels
              for key, label in labels if key == "state"}
    assert states == {"DOWN": 0, "UP": 2, "MAINT": 1, "DRAIN": 0, "NOLB": 0}
    checks = [value for (name, labels), value in found.items()
              if name == "haproxy_backend_agg_check_status"]
    assert checks and not any(checks)  # no server runs checks


def test_checked_servers_have_check_families():
    from haply.health.probes import CheckResult
    from haply.health import HealthChecker
    engine = engine_from(CONFIG.replace("weight 3", "weight 3 check inter 1s"))
    try:
        engine.health = HealthChecker(engine.registry, engine.config, engine.loop)
        engine.health.start()  # on the idle loop: no probe runs
        engine.health.apply_result("be", "s1", CheckResult("L4OK", duration=0.002))
        text = prometheus.render(snapshot.take(engine, engine.loop.time()))
        found = samples(text)
        server = (("proxy", "be"), ("server", "s1"))
        assert found[("haproxy_server_check_status", server + (("state", "L4OK"),))] == 1
        assert found[("haproxy_server_check_code", server)] == 0  # a connect has no code
        assert found[("haproxy_server_check_duration_seconds", server)] == 0.002
        assert found[("haproxy_backend_agg_check_status", (("proxy", "be"), ("state", "L4OK")))] == 1
        assert not [key for key in found if key[0] == "haproxy_server_check_status"
                    and ("server", "s2") in key[1]]
    finally:
        engine.loop.close()


def test_http_responses_listed_code_by_code(engine):
    text = prometheus.render(snapshot.take(engine, engine.loop.time()))
    lines = [line for line in text.splitlines()
             if line.startswith("haproxy_server_http_responses_total")]
    assert [line.split("code=")[1][:5] for line in lines[:4]] == ['"1xx"'] * 3 + ['"2xx"']
