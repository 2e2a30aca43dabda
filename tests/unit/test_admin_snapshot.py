"""The stats snapshot: rows in HAProxy's column order from real runtimes."""

from __future__ import annotations

import csv
import io
import json

import pytest

from haply.admin import columns, snapshot
from haply.admin.counters import CheckCounters
from haply.health import HealthChecker
from haply.health.probes import CheckResult
from haply.runtime.registry import DRAIN, MAINT
from tests.support.admin_engine import engine_from

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
"""


@pytest.fixture
def engine():
    engine = engine_from(CONFIG)
    yield engine
    engine.loop.close()


def test_header_is_haproxy_26_order():
    header = columns.csv_header()
    assert header.startswith("# pxname,svname,qcur,qmax,scur,smax,slim,stot,bin,bout,")
    assert len(columns.COLUMNS) == 128
    assert columns.COLUMNS[columns.INDEX["check_status"]] == "check_status"
    assert header.endswith("h1_spliced_bytes_in,h1_spliced_bytes_out,")


def test_rows_order_and_types(engine):
    snap = snapshot.take(engine, engine.loop.time())
    names = [(r["pxname"], r["svname"], r["type"]) for r in snap.rows]
    assert names == [("fe", "FRONTEND", 0), ("be", "s1", 2), ("be", "s2", 2), ("be", "BACKEND", 1)]


def test_counters_flow_into_rows(engine):
    fe = engine.frontends["fe"]
    fe.bytes_in, fe.bytes_out, fe.http_requests = 100, 2000, 7
    fe.http_responses[2] = 6
    fe.http_responses[5] = 1
    s1 = engine.registry.get("be", "s1")
    s1.total_sessions, s1.bytes_out, s1.connect_errors = 5, 1234, 2
    s1.http_responses[2] = 5
    rows = {r["svname"]: r for r in snapshot.take(engine, engine.loop.time()).rows}
    assert rows["FRONTEND"]["bin"] == 100 and rows["FRONTEND"]["bout"] == 2000
    assert rows["FRONTEND"]["hrsp_2xx"] == 6 and rows["FRONTEND"]["hrsp_5xx"] == 1
    assert rows["FRONTEND"]["req_tot"] == 7
    assert rows["s1"]["stot"] == 5 and rows["s1"]["econ"] == 2 and rows["s1"]["bout"] == 1234
    assert rows["s1"]["weight"] == 3 and rows["s1"]["act"] == 1 and rows["s1"]["bck"] == 0
    assert rows["s2"]["bck"] == 1
    assert rows["BACKEND"]["hrsp_2xx"] == 5
    assert rows["BACKEND"]["act"] == 1 and rows["BACKEND"]["weight"] == 3


def test_admin_states_show(engine):
    registry = engine.registry
    now = engine.loop.time()
    registry.set_admin(registry.get("be", "s1"), MAINT, now)
    registry.set_admin(registry.get("be", "s2"), DRAIN, now)
    rows = {r["svname"]: r for r in snapshot.take(engine, now + 42).rows}
    assert rows["s1"]["status"] == "MAINT"
    assert rows["s2"]["status"] == "DRAIN"
    assert rows["s1"]["lastchg"] == 42
    # no usable active server left: the backend counts only the draining backup
    assert rows["BACKEND"]["act"] == 0


def test_csv_parses_with_the_stdlib_reader(engine):
    text = columns.to_csv(snapshot.take(engine, engine.loop.time()).rows)
    lines = text.splitlines()
    reader = csv.DictReader(io.StringIO(lines[0][2:] + "\n" + "\n".join(lines[1:])))
    records = list(reader)
    assert [r["svname"] for r in records] == ["FRONTEND", "s1", "s2", "BACKEND"]
    assert all(len(line.split(",")) == 129 for line in lines if line)
    assert records[1]["addr"] == "127.0.0.1:9001"
    assert records[1]["check_status"] == ""  # no check configured: left empty


def test_json_has_positions_and_types(engine):
    data = json.loads(columns.to_json(snapshot.take(engine, engine.loop.time()).rows))
    assert len(data) == 4
    first = {f["field"]["name"]: f for f in data[0]}
    assert first["pxname"]["value"] == {"type": "str", "value": "fe"}
    assert first["bin"]["field"]["pos"] == columns.INDEX["bin"]
    assert first["pxname"]["objType"] == "Frontend"


def test_csv_value_never_breaks_columns():
    assert columns.csv_value("a,b\nc") == "a b c"
    assert columns.csv_value(None) == ""
    assert columns.csv_value(True) == "1"


def test_grouping_for_pages(engine):
    groups = snapshot.take(engine, engine.loop.time()).proxies()
    assert [name for name, _ in groups] == ["fe", "be"]


CHECKED = CONFIG.replace("server s1 127.0.0.1:9001 weight 3",
                         "server s1 127.0.0.1:9001 weight 3 check inter 1s")

CHECK_RESULTS = ("check_status", "check_code", "check_duration", "check_desc", "last_chk",
                 "check_rise", "check_fall", "check_health")


@pytest.fixture
def checked():
    """An engine whose s1 is checked; the checker is started on the idle loop,
    so no probe runs and the test hands it each result."""
    engine = engine_from(CHECKED)
    engine.check_counters = CheckCounters()
    engine.check_counters.watch(engine.registry, engine.loop.time)
    engine.health = HealthChecker(engine.registry, engine.config, engine.loop)
    engine.health.start()
    yield engine
    engine.loop.close()


def test_maintenance_blanks_the_check_results_and_keeps_the_counters(checked):
    """HAProxy 2.6 shows no check result for a server in maintenance (its
    checks are stopped), but still its failed checks, its downs and downtime."""
    registry, now = checked.registry, checked.loop.time()
    s1 = registry.get("be", "s1")
    checked.health.apply_result("be", "s1", CheckResult("L4CON", info="Connection refused"))
    row = {r["svname"]: r for r in snapshot.take(checked, now).rows}["s1"]
    assert (row["status"], row["check_status"], row["last_chk"]) == ("DOWN", "L4CON",
                                                                      "Connection refused")
    registry.set_admin(s1, MAINT, now + 1)
    row = {r["svname"]: r for r in snapshot.take(checked, now + 3).rows}["s1"]
    assert row["status"] == "MAINT"
    assert all(row.get(name) is None for name in CHECK_RESULTS)
    assert (row["chkfail"], row["chkdown"], row["downtime"]) == (1, 1, 2)
    line = columns.csv_line(row).split(",")
    assert [line[columns.INDEX[name]] for name in CHECK_RESULTS] == [""] * len(CHECK_RESULTS)
    # back from maintenance, the checks start over as at startup
    registry.set_admin(s1, "READY", now + 4)
    row = {r["svname"]: r for r in snapshot.take(checked, now + 4).rows}["s1"]
    assert (row["check_status"], row["check_desc"], row["check_health"]) == ("INI", "Initializing", 2)


def test_drain_keeps_the_check_results(checked):
    registry, now = checked.registry, checked.loop.time()
    checked.health.apply_result("be", "s1", CheckResult("L7OK", 200, duration=0.003))
    registry.set_admin(registry.get("be", "s1"), DRAIN, now)
    row = {r["svname"]: r for r in snapshot.take(checked, now).rows}["s1"]
    assert (row["status"], row["check_status"], row["check_code"], row["check_duration"]) == (
        "DRAIN", "L7OK", 200, 3)


def test_a_passed_check_has_no_words_of_its_own(checked):
    """last_chk holds a check's info ("Connection refused"); "Layer7 check
    passed, code: 200" is its status and code, shown in their own columns."""
    checked.health.apply_result("be", "s1", CheckResult("L7OK", 200))
    row = {r["svname"]: r for r in snapshot.take(checked, checked.loop.time()).rows}["s1"]
    assert (row["check_desc"], row["check_code"], row["last_chk"]) == (
        "Layer7 check passed", 200, None)
    checked.health.apply_result("be", "s1", CheckResult("L7STS", 503, info="Service Unavailable"))
    row = {r["svname"]: r for r in snapshot.take(checked, checked.loop.time()).rows}["s1"]
    assert row["last_chk"] == "Service Unavailable"


def test_connections_tried_reused_and_idle(engine):
    """connect and reuse come from the server's counters; the idle ones
    from the pool as it is now: unsafe until a connection carried a second
    exchange, safe after (HAProxy's idle_conn_cur and safe_conn_cur)."""
    from haply.proxy.upstream import UpstreamConnection
    s1 = engine.registry.get("be", "s1")
    s1.connects, s1.reuses, s1.current_sessions = 3, 5, 1
    fresh, proven, closed = (UpstreamConnection(s1, engine.pool) for _ in range(3))
    proven.exchanges, fresh.exchanges = 2, 1
    for connection in (fresh, proven, closed):
        connection.transport = None
        engine.pool.put(connection)
    closed.closed = True
    rows = {r["svname"]: r for r in snapshot.take(engine, engine.loop.time()).rows}
    row = rows["s1"]
    assert (row["connect"], row["reuse"]) == (3, 5)
    assert (row["idle_conn_cur"], row["safe_conn_cur"], row["srv_icur"]) == (1, 1, 2)
    assert (row["used_conn_cur"], row["need_conn_est"]) == (1, 3)
    assert rows["s2"]["srv_icur"] == 0
    assert (rows["BACKEND"]["connect"], rows["BACKEND"]["reuse"]) == (3, 5)


def test_throttle_is_the_slowstart_ramp_in_percent():
    engine = engine_from(CONFIG.replace("weight 3", "weight 3 check slowstart 10s"))
    try:
        engine.health = HealthChecker(engine.registry, engine.config, engine.loop)
        engine.health.start()  # on the idle loop: no probe runs
        now = engine.loop.time()
        row = {r["svname"]: r for r in snapshot.take(engine, now).rows}["s1"]
        assert row["throttle"] is None  # up since the start: no ramp
        engine.health.shown_health_of("be", "s1").last_up_at = now - 2.5
        row = {r["svname"]: r for r in snapshot.take(engine, now).rows}["s1"]
        assert row["throttle"] == 25
        row = {r["svname"]: r for r in snapshot.take(engine, now + 8).rows}["s1"]
        assert row["throttle"] is None  # ramp done
    finally:
        engine.loop.close()


def test_intercepted_is_the_frontends_own_answers(engine):
    engine.frontends["fe"].intercepted = 4
    rows = {r["svname"]: r for r in snapshot.take(engine, engine.loop.time()).rows}
    assert rows["FRONTEND"]["intercepted"] == 4


def test_info_has_haproxys_fields_in_order(engine):
    info = snapshot.take(engine, engine.loop.time()).info
    names = list(info)
    for earlier, later in (("Uptime_sec", "Memmax_MB"), ("PoolFailed", "Ulimit-n"),
                           ("CumReq", "MaxSslConns"), ("CompressBpsRateLim", "Tasks"),
                           ("Idle_pct", "node"), ("Jobs", "Unstoppable Jobs"),
                           ("BytesOutRate", "DebugCommandsIssued"), ("Build info", "Memmax_bytes"),
                           ("PoolUsed_bytes", "Start_time_sec")):
        assert names.index(earlier) < names.index(later)
    assert info["Ulimit-n"] > 0 and info["Maxsock"] == info["Ulimit-n"]  # no maxconn
    assert info["PipesUsed"] == info["TotalSplicdedBytesOut"] == info["PoolAlloc_bytes"] == 0
    assert info["Build info"] == info["Version"]
    fe = engine.frontends["fe"]
    fe.bytes_out = 700
    engine.registry.get("be", "s1").bytes_in = 300
    assert snapshot.take(engine, engine.loop.time()).info["TotalBytesOut"] == 1000


def test_response_and_total_times_of_timed_exchanges(engine):
    """rtime and ttime: the running mean of the timed exchanges until
    TIME_WINDOW of them, their maxima; the backend's weighted by how many
    each server's average covers."""
    registry = engine.registry
    s1, s2 = registry.get("be", "s1"), registry.get("be", "s2")
    registry.record_exchange(s1, 4, 10)
    registry.record_exchange(s1, 2, 6)
    registry.record_exchange(s2, 9, 30)
    rows = {r["svname"]: r for r in snapshot.take(engine, engine.loop.time()).rows}
    assert (rows["s1"]["rtime"], rows["s1"]["ttime"]) == (3, 8)
    assert (rows["s1"]["rtime_max"], rows["s1"]["ttime_max"]) == (4, 10)
    assert (rows["BACKEND"]["rtime"], rows["BACKEND"]["ttime"]) == (5, 15)
    assert (rows["BACKEND"]["rtime_max"], rows["BACKEND"]["ttime_max"]) == (9, 30)


def test_the_sampler_asks_for_an_exchange_to_be_timed(engine):
    from haply.admin import rates
    sampler = rates.for_engine(engine)
    try:
        assert all(state.timing for state in engine.registry.all())
        engine.registry.get("be", "s1").timing = False  # taken by an exchange
        sampler.sample()
        assert engine.registry.get("be", "s1").timing
    finally:
        sampler.close()


def test_a_timed_exchange_records_its_times(engine):
    """The one exchange the sampler asked to time: its response time runs
    from the request's sending to the answer's head, its total time to the
    answer's end plus the request's wait and connect (-1: none)."""
    from types import SimpleNamespace
    from haply.proxy.upstream import ExchangeTiming
    s1 = engine.registry.get("be", "s1")
    request = SimpleNamespace(backend=engine.backends["be"], t_wait=2, t_connect=-1)
    timing = ExchangeTiming(request, s1, 10.0)
    timing.answered = 10.004
    timing.ended(10.010)
    assert (s1.timed, s1.response_time_max, s1.total_time_max) == (1, 4, 12)
