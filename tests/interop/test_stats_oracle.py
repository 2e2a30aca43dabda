"""`show stat` compared field by field with HAProxy 2.6 on the same config.

Both proxies run the same text with a `stats socket` in a temporary directory,
take the same traffic, and answer `show stat` over socat. The header must be
identical; every row must exist in the same order with the same identity; the
fields haply tracks must be equal, and every other field must be empty exactly
where HAProxy leaves it empty (parsers tell "" from "0"). Counters haply does not
keep (h1 internals) or keeps its own way (connection reuse) are listed in
NOT_TRACKED, so a new difference fails the test.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time

import pytest

from tests.support.admin_cli import cli, wait_no_sessions, wait_socket
from tests.support.haply_process import PROXIES
from tests.support.haproxy_oracle import (echo_backends, free_port, haproxy_available,
                                          http_get, run_haproxy)

pytestmark = pytest.mark.skipif(not haproxy_available(), reason="HAProxy oracle not installed")

# Columns whose values differ because haply does not count them (the emptiness
# pattern is still compared).
NOT_TRACKED = {
    # haply's default reuses an idle connection for a client's first request
    # too, where HAProxy's (`http-reuse safe`) connects anew; HAProxy closes
    # idle connections beyond its estimate of the need, haply keeps them until
    # pool-purge-delay (the exporter's test compares them under `http-reuse safe`)
    "connect", "reuse", "srv_icur", "idle_conn_cur", "safe_conn_cur", "need_conn_est",
    "h1_open_connections", "h1_open_streams", "h1_total_connections",
    "h1_total_streams", "h1_bytes_in", "h1_bytes_out",
    # HAProxy counts the start-up probe (a connection without a request) as a
    # bad request; byte counts include it and count heads differently.
    "ereq", "hrsp_4xx", "req_tot", "bin", "bout",
    "addr",  # the unreachable server's port is chosen per run
    "lastchg", "downtime",  # seconds: compared with a tolerance below
}
# Per-second rates: both proxies count the same events over "the last second",
# but their periods start at different instants, so a burst split by a period
# boundary may read one lower on either side.
RATES = {"rate", "rate_max", "req_rate", "req_rate_max", "conn_rate", "conn_rate_max"}
# Queue, connect and check times in ms: a local connect takes 0-1 ms on either side,
# more on a loaded machine.
TIMES = {"qtime", "ctime", "qtime_max", "ctime_max", "check_duration"}
TIME_TOLERANCE_MS = 5
# Response and total times in ms: the server's answer and the proxy's own work
# are in them, slower in Python and on a loaded machine.
EXCHANGE_TIMES = {"rtime", "ttime", "rtime_max", "ttime_max"}
EXCHANGE_TOLERANCE_MS = 50
# The last check's duration in ms: one check each, taken whenever the loop
# gets to it, so a busy machine may stretch either side's.
CHECK_TOLERANCE_MS = 100


def config(sock: str, port: int, backends, dead: int, stats_port: int, tcp_port: int) -> str:
    return f"""global
    maxconn 1000
    stats socket {sock} level admin
defaults
    mode http
    timeout connect 2s
    timeout client 5s
    timeout server 5s
frontend fe
    bind 127.0.0.1:{port}
    default_backend be
backend be
    server a {backends[0].address} check inter 100ms weight 3
    server b {backends[1].address} backup
    server c 127.0.0.1:{dead} check inter 100ms
    server d 127.0.0.1:{dead} disabled
    server e {backends[0].address} maxconn 7 maxqueue 9 weight 0
listen tcpin
    mode tcp
    bind 127.0.0.1:{tcp_port}
    server t1 {backends[1].address} check inter 100ms
listen stats
    bind 127.0.0.1:{stats_port}
    stats enable
    stats uri /
"""


@pytest.fixture(scope="module")
def answers():
    found = {}
    with echo_backends(["a", "b"]) as backends:
        dead = free_port()
        for name, binary in sorted(PROXIES.items()):
            directory = tempfile.mkdtemp(prefix=f"stats-{name}-")
            sock = os.path.join(directory, "admin.sock")
            port = free_port()
            try:
                tcp_port = free_port()
                with run_haproxy(config(sock, port, backends, dead, free_port(), tcp_port),
                                 binary):
                    wait_socket(sock)
                    time.sleep(1.0)  # c goes down, a stays up
                    for _ in range(3):
                        assert http_get(port).status == 200
                        wait_no_sessions(sock)  # the peaks must not depend on it
                    assert http_get(tcp_port).status == 200
                    cli(sock, "set server be/b state drain")
                    found[name] = {"stat": cli(sock, "show stat"),
                                   "typed": cli(sock, "show stat be 4 -1"),
                                   "state": cli(sock, "show servers state be"),
                                   "info": cli(sock, "show info")}
            finally:
                shutil.rmtree(directory, ignore_errors=True)
    return found


def rows(text: str) -> tuple[list[str], list[list[str]]]:
    lines = [line for line in text.split("\n") if line]
    return lines[0][2:].split(","), [line.split(",") for line in lines[1:]]


def test_header_identical(answers):
    assert answers["haply"]["stat"].split("\n")[0] == answers["haproxy"]["stat"].split("\n")[0]


def test_rows_field_by_field(answers):
    header, theirs = rows(answers["haproxy"]["stat"])
    _, ours = rows(answers["haply"]["stat"])
    assert [(r[0], r[1]) for r in ours] == [(r[0], r[1]) for r in theirs]
    differences = []
    status_at, last_at = header.index("check_status"), header.index("last_chk")
    for their, our in zip(theirs, ours):
        assert len(our) == len(their) == len(header)
        if their[status_at].startswith("* "):
            # HAProxy caught in the middle of a check (every 100 ms): it marks
            # the status so and shows no last check yet; haply shows the last one
            their = list(their)
            their[status_at], their[last_at] = their[status_at][2:], our[last_at]
        for column, a, b in zip(header, their, our):
            where = f"{their[1]}.{column}: haproxy {a!r} haply {b!r}"
            if (a == "") != (b == ""):
                differences.append(where)
            elif column in ("lastchg", "downtime") or column == "lastsess" and "-1" not in (a, b):
                # seconds since: the proxies were asked at different instants
                if abs(int(a or 0) - int(b or 0)) > 2:
                    differences.append(where)
            elif column in RATES or (column == "smax" and their[1] == "FRONTEND"):
                # the start-up probe's connection may still be open when the
                # first request's arrives, in either proxy: a peak of 1 or 2
                if abs(int(a or 0) - int(b or 0)) > 1:
                    differences.append(where)
            elif column in TIMES:
                if abs(int(a or 0) - int(b or 0)) > TIME_TOLERANCE_MS:
                    differences.append(where)
            elif column in EXCHANGE_TIMES:
                if abs(int(a or 0) - int(b or 0)) > EXCHANGE_TOLERANCE_MS:
                    differences.append(where)
            elif column == "check_duration":
                if abs(int(a or 0) - int(b or 0)) > CHECK_TOLERANCE_MS:
                    differences.append(where)
            elif column not in NOT_TRACKED and a != b:
                differences.append(where)
    assert not differences, "\n".join(differences)


def test_filtered_show_stat_matches(answers):
    _, theirs = rows(answers["haproxy"]["typed"])
    _, ours = rows(answers["haply"]["typed"])
    assert [r[1] for r in ours] == [r[1] for r in theirs] == ["a", "b", "c", "d", "e"]


def test_servers_state_columns(answers):
    theirs = [l for l in answers["haproxy"]["state"].split("\n") if l]
    ours = [l for l in answers["haply"]["state"].split("\n") if l]
    assert ours[:2] == theirs[:2]  # version and header
    for their, our in zip(theirs[2:], ours[2:]):
        t, o = their.split(), our.split()
        assert len(o) == len(t)
        # ids, names, address, op state, admin state, weights
        assert o[:9] == t[:9], (their, our)


# Malformed requests both proxies refuse, with the byte where parsing fails.
MALFORMED = [
    b"GET / HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n",
    b"GET /a b HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
    b"G@T / HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    # refused by haply.http.repair, or by llhttp after it
    b"GET / HTTP/1.1\r\nHost: x\r\nX-A : b\r\n\r\n",
    b"GET / HTTP/1.1\nHost: x\nX-A\t: b\n\n",
    b"GET / HTTP/1.1\r\nHost: x\r\nX-\x01A: b\r\n\r\n",
    b"GET / HTTP/1.1\r\n X: y\r\nHost: x\r\n\r\n",
    b"GET / HTTP/1.1 \r\nHost: x\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: x\r\n\r\r\n",
    b"GET / HTTP/1.1\r\nHost: x\r\nX-A: a\rb\r\n\r\n",
    b"GET / HTTP/1.1\nHost: x\nBad Header\n\n",
    b"GET\t/ HTTP/1.1\nHost: x\nX-A: a\n b\nContent-Length: abc\n\n",
    b"GET\t/a b HTTP/1.1\r\nHost: x\r\n\r\n",
    # heads not whole: refused at once
    b"GET /a\x01 HTTP/1.1\nHost: x\n",
    b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
]


def error_positions(binary: str) -> list[tuple[bytes, str | None]]:
    import re
    import socket as sockets
    found = []
    with echo_backends(["a"]) as backends:
        directory = tempfile.mkdtemp(prefix="errors-")
        sock = os.path.join(directory, "admin.sock")
        port = free_port()
        text = (f"global\n    stats socket {sock} level admin\ndefaults\n    mode http\n"
                "    timeout connect 2s\n    timeout client 5s\n    timeout server 5s\n"
                f"frontend fe\n    bind 127.0.0.1:{port}\n    default_backend be\n"
                f"backend be\n    server a {backends[0].address}\n")
        try:
            with run_haproxy(text, binary):
                wait_socket(sock)
                for sample in MALFORMED:
                    with sockets.create_connection(("127.0.0.1", port), timeout=3) as client:
                        client.sendall(sample)
                        status = client.recv(100)[:12]
                    deadline = time.monotonic() + 2
                    positions: list[str] = []
                    while time.monotonic() < deadline:
                        answer = cli(sock, "show errors")
                        positions = re.findall(r"error at position (\d+)", answer)
                        if answer.count("invalid request") and positions:
                            break
                        time.sleep(0.05)
                    found.append((status, positions[-1] if positions else None))
        finally:
            shutil.rmtree(directory, ignore_errors=True)
    return found


def test_show_errors_position_matches_haproxy():
    theirs = error_positions(PROXIES["haproxy"])
    ours = error_positions(PROXIES["haply"])
    assert all(status == b"HTTP/1.1 400" for status, _ in theirs + ours)
    assert ours == theirs


def metric_families(text: str) -> dict[str, tuple[str, frozenset[str]]]:
    from prometheus_client.parser import text_string_to_metric_families
    found = {}
    for family in text_string_to_metric_families(text):
        labels = frozenset(name for sample in family.samples for name in sample.labels)
        found[family.name] = (family.type, labels)
    return found


def metric_samples(text: str) -> dict[tuple, float]:
    """(name, labels in order) -> value, as prometheus_client reads them."""
    from prometheus_client.parser import text_string_to_metric_families
    return {(sample.name, tuple(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


def metrics_config(sock: str, port: int, tcp_port: int, metrics_port: int, backends,
                   dead: int) -> str:
    """Every kind of object the exporter reports: frontends in both modes, a
    listener, servers up, down, draining and in maintenance, with and without
    checks. `http-reuse safe` is HAProxy's default: haply's own reuses an
    idle connection for a client's first request too."""
    return f"""global
    maxconn 1000
    stats socket {sock} level admin
defaults
    mode http
    timeout connect 2s
    timeout client 5s
    timeout server 5s
frontend fe
    bind 127.0.0.1:{port}
    option socket-stats
    http-request redirect location /x if {{ path /redir }}
    default_backend be
backend be
    http-reuse safe
    server a {backends[0].address} check inter 100ms
    server b {backends[1].address} maxconn 5 maxqueue 3
    server c 127.0.0.1:{dead} check inter 100ms
    server d {backends[1].address} disabled
listen tcpin
    mode tcp
    bind 127.0.0.1:{tcp_port}
    server t1 {backends[1].address} check inter 100ms
frontend prom
    bind 127.0.0.1:{metrics_port}
    http-request use-service prometheus-exporter if {{ path /metrics }}
"""


@pytest.fixture(scope="module")
def metrics():
    """Each proxy's /metrics after the same traffic: four requests on fresh
    connections, a redirect, a TCP session, then b set to drain."""
    pytest.importorskip("prometheus_client")
    texts = {}
    with echo_backends(["a", "b"]) as backends:
        dead = free_port()
        for name, binary in sorted(PROXIES.items()):
            directory = tempfile.mkdtemp(prefix=f"metrics-{name}-")
            sock = os.path.join(directory, "admin.sock")
            port, tcp_port, metrics_port = free_port(), free_port(), free_port()
            try:
                with run_haproxy(metrics_config(sock, port, tcp_port, metrics_port, backends,
                                                dead), binary):
                    wait_socket(sock)
                    time.sleep(0.6)  # c goes down
                    for _ in range(4):
                        assert http_get(port).status == 200
                        wait_no_sessions(sock)
                    assert http_get(port, "/redir").status == 302
                    assert http_get(tcp_port).status == 200
                    cli(sock, "set server be/b state drain")
                    wait_no_sessions(sock)
                    texts[name] = http_get(metrics_port, "/metrics").body.decode()
            finally:
                shutil.rmtree(directory, ignore_errors=True)
    return texts


def test_prometheus_families_are_haproxys_in_order(metrics):
    """Every family HAProxy 2.6 prints, with the same help, type and place,
    so dashboards and alerts built on HAProxy's exporter keep working."""
    def heads(text: str) -> list[str]:
        return [line for line in text.splitlines() if line.startswith("#")]
    assert heads(metrics["haply"]) == heads(metrics["haproxy"])
    theirs, ours = metric_families(metrics["haproxy"]), metric_families(metrics["haply"])
    assert ours == theirs  # types and label names, as prometheus_client reads them


def test_prometheus_samples_are_haproxys(metrics):
    """The same series (labels and their order), in the same order; only the
    version in build_info is each program's own."""
    def keys(text: str) -> list[tuple]:
        return [key for key in metric_samples(text) if key[0] != "haproxy_process_build_info"]
    assert keys(metrics["haply"]) == keys(metrics["haproxy"])
    ours = metric_samples(metrics["haply"])
    from haply import __version__
    assert ours[("haproxy_process_build_info", (("version", __version__),))] == 1


# Series whose values differ for a reason of their own (compared elsewhere, or
# not comparable): each entry says why.
METRIC_VALUES_APART = {
    # one thread per CPU there, one event loop here; HAProxy lowers its
    # open-file limit to what maxconn needs, haply keeps the one it got; each
    # counts the sockets it needs its own way (haply.limits)
    "haproxy_process_nbthread", "haproxy_process_max_fds", "haproxy_process_max_sockets",
    # HAProxy counts its CLI's connections and requests, and its start-up probes
    "haproxy_process_connections_total", "haproxy_process_requests_total",
    # the state of each program's own machinery
    "haproxy_process_current_tasks", "haproxy_process_idle_time_percent",
    "haproxy_process_pool_allocated_bytes", "haproxy_process_pool_used_bytes",
    "haproxy_process_uptime_seconds", "haproxy_process_start_time_seconds",
    # bytes: HAProxy counts heads as rewritten (show stat's NOT_TRACKED), and
    # its CLI's answers in what the process sent
    "haproxy_frontend_bytes_in_total", "haproxy_frontend_bytes_out_total",
    "haproxy_listener_bytes_in_total", "haproxy_listener_bytes_out_total",
    "haproxy_backend_bytes_in_total", "haproxy_backend_bytes_out_total",
    "haproxy_server_bytes_in_total", "haproxy_server_bytes_out_total",
    "haproxy_process_bytes_out_total", "haproxy_process_bytes_out_rate",
    # HAProxy closes idle connections beyond its estimate of the need; haply
    # keeps them until pool-purge-delay, and estimates the need as what it holds
    "haproxy_server_idle_connections_current", "haproxy_server_unsafe_idle_connections_current",
    "haproxy_server_need_connections_current",
    # seconds since, or durations: the instants differ (tolerance below)
    "haproxy_backend_check_last_change_seconds", "haproxy_server_check_last_change_seconds",
    "haproxy_backend_last_session_seconds", "haproxy_server_last_session_seconds",
    "haproxy_backend_downtime_seconds_total", "haproxy_server_downtime_seconds_total",
}
# Durations in seconds: each average here covers one or two exchanges, so a
# single slow connect on a loaded machine moves it.
METRIC_TIMES = ("_time_average_seconds", "_time_seconds", "check_duration_seconds")
# Per-second rates and their peaks: the periods start at different instants.
METRIC_RATES = ("_rate", "_rate_max")


def test_prometheus_values_match_haproxy(metrics):
    theirs, ours = metric_samples(metrics["haproxy"]), metric_samples(metrics["haply"])
    differences = []
    for key, value in theirs.items():
        name = key[0]
        if name in METRIC_VALUES_APART or key not in ours:
            continue
        mine = ours[key]
        if value != value and mine != mine:  # NaN on both sides
            continue
        if name.endswith(METRIC_TIMES):
            tolerance = (CHECK_TOLERANCE_MS if "check" in name else EXCHANGE_TOLERANCE_MS) / 1000
        elif name.endswith(METRIC_RATES) or name == "haproxy_frontend_max_sessions":
            # rates: periods start at different instants; the frontend's peak:
            # the start-up probe's connection may still be open when the
            # first request's arrives, in either proxy (1 or 2)
            tolerance = 1
        else:
            tolerance = 0
        if not abs(mine - value) <= tolerance:
            differences.append(f"{name}{dict(key[1])}: haproxy {value} haply {mine}")
    for name in ("haproxy_server_check_last_change_seconds", "haproxy_server_last_session_seconds"):
        for key, value in theirs.items():
            if key[0] == name and abs(ours[key] - value) > 2:
                differences.append(f"{name}{dict(key[1])}: haproxy {value} haply {ours[key]}")
    assert not differences, "\n".join(differences)


LEVEL_COMMANDS = ["show info", "show stat", "show servers state", "show backend", "show sess",
                  "show errors", "get weight be/a", "clear counters", "clear counters all",
                  "set weight be/a 2",
                  "set server be/a state drain", "disable health be/a", "disable server be/a",
                  "add server be/z 127.0.0.1:9", "del server be/a"]


def denied_by_level(binary: str) -> dict[str, list[str]]:
    denied: dict[str, list[str]] = {}
    with echo_backends(["a"]) as backends:
        directory = tempfile.mkdtemp(prefix="levels-")
        socks = {level: os.path.join(directory, f"{level}.sock") for level in ("user", "operator")}
        port = free_port()
        text = ("global\n" + "".join(f"    stats socket {path} level {level}\n"
                                     for level, path in socks.items())
                + "defaults\n    mode http\n    timeout connect 2s\n    timeout client 5s\n"
                "    timeout server 5s\n"
                f"frontend fe\n    bind 127.0.0.1:{port}\n    default_backend be\n"
                f"backend be\n    server a {backends[0].address} check inter 1s\n")
        try:
            with run_haproxy(text, binary):
                for level, path in socks.items():
                    wait_socket(path)
                    denied[level] = [command for command in LEVEL_COMMANDS
                                     if cli(path, command).startswith("Permission denied")]
        finally:
            shutil.rmtree(directory, ignore_errors=True)
    return denied


def test_levels_deny_what_haproxy_denies():
    assert denied_by_level(PROXIES["haply"]) == denied_by_level(PROXIES["haproxy"])


# Commands whose whole answer (text and framing) must be HAProxy's, in order:
# they change state, so each answer depends on the ones before.
SCRIPT = [
    "set server nope/a state ready", "set server be/nope state ready",
    "set server be/a state bogus", "set server be/a", "set server be/a weight",
    "set server be/a weight 300", "set server be/a weight x", "set weight be/a 50%",
    "get weight be/a", "get weight be/zz", "set weight be/b", "set weight be/b -1",
    "disable server be", "disable server", "enable server be/zz", "disable health be/b",
    "enable health be/b", "enable health be/a", "add server be/a 127.0.0.1:1",
    "add server be/c", "add server nope/c 127.0.0.1:1", "add server be/c 127.0.0.1:1",
    "get weight be/c", "del server be/b", "set server be/c state maint", "del server be/c",
    "del server be/zz", "show servers state nope", "show backend", "disable server be/a",
    "set server be/a state drain", "set server be/a state ready", "get weight be/a",
]


def scripted_answers(binary: str) -> list[str]:
    with echo_backends(["a", "b"]) as backends:
        directory = tempfile.mkdtemp(prefix="script-")
        sock = os.path.join(directory, "admin.sock")
        port = free_port()
        text = (f"global\n    stats socket {sock} level admin\n"
                "defaults\n    mode http\n    timeout connect 2s\n    timeout client 5s\n"
                "    timeout server 5s\n"
                f"frontend fe\n    bind 127.0.0.1:{port}\n    default_backend be\n"
                f"backend be\n    server a {backends[0].address} check inter 1s\n"
                f"    server b {backends[1].address}\n")
        try:
            with run_haproxy(text, binary):
                wait_socket(sock)
                return [cli(sock, command) for command in SCRIPT]
        finally:
            shutil.rmtree(directory, ignore_errors=True)


def test_runtime_answers_match_haproxy():
    theirs = scripted_answers(PROXIES["haproxy"])
    ours = scripted_answers(PROXIES["haply"])
    differences = [f"{command}: haproxy {a!r} haply {b!r}"
                   for command, a, b in zip(SCRIPT, theirs, ours) if a != b]
    assert not differences, "\n".join(differences)


def test_show_info_fields_are_haproxys_in_order(answers):
    def keys(text: str) -> list[str]:
        return [line.split(": ", 1)[0] for line in text.splitlines() if ": " in line]
    theirs, ours = keys(answers["haproxy"]["info"]), keys(answers["haply"]["info"])
    assert set(ours) <= set(theirs)
    assert ours == [key for key in theirs if key in ours]  # same relative order
    values = {name: dict(line.split(": ", 1) for line in answers[name]["info"].splitlines()
                         if ": " in line) for name in answers}
    for key in ("Nbproc", "Process_num", "Maxconn", "Hard_maxconn", "Stopping",
                "Listeners"):
        assert values["haply"][key] == values["haproxy"][key], key


def stats_access_config(port: int) -> str:
    """Four statistics pages: rules with a userlist, a deny, an auth on a
    sub-path, and the plain `stats auth`."""
    return f"""
userlist ops
    user ops insecure-password secret
defaults
    mode http
    timeout connect 1s
    timeout client 5s
    timeout server 5s
listen by-userlist
    bind 127.0.0.1:{port}
    stats enable
    stats uri /st
    stats http-request allow if {{ path_beg /st/open }}
    stats http-request auth realm Ops\\ Area unless {{ http_auth(ops) }}
listen denied
    bind 127.0.0.1:{port + 1}
    stats enable
    stats uri /st
    stats http-request deny if {{ src 127.0.0.0/8 }}
listen partly
    bind 127.0.0.1:{port + 2}
    stats enable
    stats uri /st
    stats http-request auth if {{ path_beg /st/secret }}
listen plain-auth
    bind 127.0.0.1:{port + 3}
    stats enable
    stats uri /st
    stats auth admin:pw
"""


def raw_answer(port: int, path: str, credentials: str | None = None) -> bytes:
    """The status line, or the whole answer when it is not the page itself."""
    import base64
    import socket
    field = (f"Authorization: Basic {base64.b64encode(credentials.encode()).decode()}\r\n"
             if credentials else "")
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: lb\r\nConnection: close\r\n{field}\r\n".encode())
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    return data.split(b"\r\n", 1)[0] if data.startswith(b"HTTP/1.1 200") else data


def test_stats_http_request_rules_as_haproxy():
    asked = [(0, "/st", None), (0, "/st", "ops:secret"), (0, "/st", "ops:wrong"),
             (0, "/st/open", None), (1, "/st", None), (2, "/st", None),
             (2, "/st/secret", "ops:secret"), (3, "/st", None), (3, "/st", "admin:pw")]
    seen = {}
    for name, binary in PROXIES.items():
        port = free_port()
        with run_haproxy(stats_access_config(port), binary=binary):
            seen[name] = [raw_answer(port + offset, path, credentials)
                          for offset, path, credentials in asked]
    assert seen["haply"] == seen["haproxy"]
    assert [answer[:12] for answer in seen["haproxy"]] == [
        b"HTTP/1.1 401", b"HTTP/1.1 200", b"HTTP/1.1 401", b"HTTP/1.1 200", b"HTTP/1.1 403",
        b"HTTP/1.1 200", b"HTTP/1.1 401", b"HTTP/1.1 401", b"HTTP/1.1 200"]
    assert b'www-authenticate: Basic realm="Ops Area"' in seen["haproxy"][0]
