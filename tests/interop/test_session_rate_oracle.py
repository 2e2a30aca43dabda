"""`rate-limit sessions` against HAProxy 2.6: K clients connect at once to a
frontend limited to RATE new sessions per second. Both proxies must accept
RATE of them in the first second and the others at the pace the rate allows
(one every 1/RATE s from the second on), leave the others waiting in the
kernel's accept queue (none refused, none reset: every client gets its
answer), and show the limit as `rate_lim` in `show stat`.

With `tcp-request connection reject`, the connections refused are not
sessions and do not count in the rate; they are accepted at the pace of the
others, though: while the rate is spent, nothing is accepted."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from tests.interop.test_proxy_oracle import PRELUDE
from tests.support.admin_cli import stat_rows, wait_socket
from tests.support.haply_process import PROXIES
from tests.support.haproxy_oracle import free_port, haproxy_available, run_haproxy, with_stats_socket
from tests.support.scripted_backend import scripted_backend

pytestmark = pytest.mark.skipif(not haproxy_available(), reason="HAProxy oracle not installed")

RATE = 10  # sessions per second
CLIENTS = 25
# The readiness probe of the runner is a session: two idle periods later the
# counter has forgotten it, and the burst starts a period of its own.
IDLE = 2.2
FIRST_SECOND = 0.95  # answers before this came from the first second's sessions
# By then the pace after the first second (1.0, 1.1, ... 1.4 s) adds five
# (50 ms from the nearest step, for a loaded machine)
LATER = 1.45
CLIENT_TIMEOUT = 15.0


def answer(conn):
    while (request := conn.read_request()) is not None:
        conn.respond(200, b"ok")
        if ("Connection", "close") in request.headers:
            return


def fetch(port: int, started: float, results: list, source: str = "127.0.0.1") -> None:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=CLIENT_TIMEOUT,
                                      source_address=(source, 0)) as sock:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
            reply = b""
            while chunk := sock.recv(65536):
                reply += chunk
        status = reply.split(b" ", 2)[1].decode() if reply.startswith(b"HTTP/1.") else repr(reply[:20])
    except OSError as exc:  # a refusal or a reset
        status = type(exc).__name__
    results.append((time.monotonic() - started, status, source))


def burst(port: int, stats: str) -> dict:
    wait_socket(stats)
    time.sleep(IDLE)
    frontend = next(row for row in stat_rows(stats) if row["svname"] == "FRONTEND")
    results: list = []
    started = time.monotonic()
    threads = [threading.Thread(target=fetch, args=(port, started, results)) for _ in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(CLIENT_TIMEOUT)
    times = sorted(t for t, _, _ in results)
    return {
        "rate_lim": frontend["rate_lim"],
        "statuses": sorted(status for _, status, _ in results),
        "first_second": sum(t < FIRST_SECOND for t in times),
        "later": sum(t < LATER for t in times),
        "last": times[-1],
    }


@pytest.mark.parametrize("mode", ["http", "tcp"])
def test_accepts_at_the_same_pace_as_haproxy_and_refuses_none(mode, tmp_path):
    results = {}
    with scripted_backend(answer) as backend:
        for name, binary in PROXIES.items():
            stats = str(tmp_path / f"{name}.sock")
            port = free_port()
            config = with_stats_socket(PRELUDE, stats) + (
                f"\nlisten app\n    mode {mode}\n    bind 127.0.0.1:{port}\n"
                f"    rate-limit sessions {RATE}\n    server s {backend.address}\n")
            with run_haproxy(config, binary=binary):
                results[name] = burst(port, stats)
    ours, theirs = results["haply"], results["haproxy"]
    assert ours["statuses"] == theirs["statuses"] == ["200"] * CLIENTS
    assert ours["rate_lim"] == theirs["rate_lim"] == str(RATE)
    # HAProxy's frequency counter lets one more in near the second's end
    # when the clients' clock started late: RATE, or RATE + 1, for both
    assert RATE <= ours["first_second"] <= RATE + 1 and RATE <= theirs["first_second"] <= RATE + 1
    # one step of the pace (100 ms) either way: a loaded machine starts the
    # 25 client threads over tens of milliseconds
    assert abs(ours["later"] - theirs["later"]) <= 2 and theirs["later"] < CLIENTS
    # the last of K at one every 1/RATE s after the first second
    assert abs(ours["last"] - theirs["last"]) < 0.3


# The readiness probe comes from 127.0.0.1: refused, it is no session, and
# the bursts need no idle spell before them.
REFUSED, SERVED = "127.0.0.1", "127.0.0.2"


def mixed_burst(port: int, stats: str, sources: list[str]) -> dict:
    """Clients from sources, in that order, a few milliseconds apart: when
    each kind was answered (or reset)."""
    wait_socket(stats)
    results: list = []
    started = time.monotonic()
    threads = [threading.Thread(target=fetch, args=(port, started, results, source)) for source in sources]
    try:
        for thread in threads:
            thread.start()
            time.sleep(0.002)  # in this order into the accept queue
    finally:
        for thread in threads:
            thread.join(CLIENT_TIMEOUT)
    frontend = next(row for row in stat_rows(stats) if row["svname"] == "FRONTEND")
    got = {"stot": frontend["stot"], "dcon": int(frontend["dcon"])}
    for kind, source in (("refused", REFUSED), ("served", SERVED)):
        mine = [(t, status) for t, status, origin in results if origin == source]
        got[kind] = sorted(status for _, status in mine)
        got[f"{kind} times"] = sorted(t for t, _ in mine)
    return got


@pytest.mark.parametrize("order", ["refused first", "served first"])
def test_connections_refused_by_rules_do_not_count_in_the_rate(order, tmp_path):
    served = RATE if order == "refused first" else RATE + 5
    sources = [REFUSED] * RATE + [SERVED] * served
    if order == "served first":
        sources.reverse()
    results = {}
    with scripted_backend(answer) as backend:
        for name, binary in PROXIES.items():
            stats = str(tmp_path / f"{name}.sock")
            port = free_port()
            config = with_stats_socket(PRELUDE, stats) + (
                f"\nlisten app\n    mode http\n    bind 127.0.0.1:{port}\n"
                f"    rate-limit sessions {RATE}\n"
                f"    tcp-request connection reject if {{ src {REFUSED} }}\n"
                f"    server s {backend.address}\n")
            with run_haproxy(config, binary=binary):
                results[name] = mixed_burst(port, stats, sources)
    ours, theirs = results["haply"], results["haproxy"]
    assert ours["refused"] == theirs["refused"] == ["ConnectionResetError"] * RATE
    assert ours["served"] == theirs["served"] == ["200"] * served
    # the refused ones (and the start-up probe, once or more): connections,
    # not sessions
    assert ours["stot"] == theirs["stot"] == str(served)
    assert ours["dcon"] > RATE and theirs["dcon"] > RATE
    for seen in (ours, theirs):
        refused, answered = seen["refused times"], seen["served times"]
        if order == "refused first":
            # the refused took none of the first second's RATE sessions
            assert answered[-1] < FIRST_SECOND
        else:
            # held while the rate was spent, then let in at once: they are
            # no sessions, and do not slow one another
            assert refused[0] > answered[RATE - 1] + 0.5
            assert refused[-1] - refused[0] < 0.3
    if order == "served first":
        assert abs(ours["refused times"][0] - theirs["refused times"][0]) < 0.3
        assert abs(ours["served times"][-1] - theirs["served times"][-1]) < 0.3
