"""Sticky counters (`stick-table ... store`, `track-sc`, the sc_/src_ fetches)
against HAProxy 2.6 on the same configuration and the same traffic.

Three uses operators make of them: counting what a client does (sessions,
requests, errors: a connection that sends nothing, a bad or truncated request,
a 4xx, a deny with any status, a tarpit), limiting a client's request rate
(`http-request track-sc0 src` and a 429 above a rate) and its concurrent
connections in mode tcp (`tcp-request connection track-sc0` and a reject above
conn_cur), with a flag set by `sc-inc-gpc0` and read by `src_get_gpc0`. Both
proxies must answer alike and `show table` must print the same counters.
Rates are over an hour, so that no period ends during a run (HAProxy's
periods start at times of its own; the test would otherwise compare a
window's rounding).
"""

from __future__ import annotations

import os
import socket
import tempfile
import time
import urllib.request

import pytest

from tests.interop.test_proxy_oracle import run_both
from tests.interop.test_stick_oracle import entries
from tests.support.admin_cli import cli, wait_no_sessions, wait_socket
from tests.support.haproxy_oracle import (echo_backends, free_port, haproxy_available, haproxy_config,
                                         with_stats_socket)

pytestmark = pytest.mark.skipif(not haproxy_available(), reason="HAProxy oracle not installed")


def read_answer(sock: socket.socket) -> tuple[bytes, bytes | None]:
    """One answer framed by its Content-Length: (head, body), or what came
    and None when the connection closed before the head was whole."""
    reply = b""
    while b"\r\n\r\n" not in reply:
        chunk = sock.recv(65536)
        if not chunk:
            return reply, None
        reply += chunk
    head, _, body = reply.partition(b"\r\n\r\n")
    length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                   if line.lower().startswith(b"content-length:")), 0)
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return head, body


def status_of(sock: socket.socket, path: str, close: bool = False) -> str:
    """One request on sock; its status code, or "closed"."""
    head = f"GET {path} HTTP/1.1\r\nHost: h\r\n" + ("Connection: close\r\n" if close else "") + "\r\n"
    sock.sendall(head.encode())
    head, body = read_answer(sock)
    if body is None and not head:
        return "closed"
    return head.split(b" ", 2)[1].decode()


def connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=5)


def request(port: int, path: str) -> str:
    with connect(port) as sock:
        return status_of(sock, path, close=True)


def same_as_haproxy(cfg: str, exercise) -> dict:
    """exercise(port) under both proxies: every observation the same; haply's."""
    results = run_both(cfg, exercise)
    theirs, ours = results["haproxy"], results["haply"]
    for key in theirs:
        assert ours[key] == theirs[key], (key, ours[key], theirs[key])
    return ours


def settle(sock_path: str) -> None:
    """Until the proxy has seen every client leave (its counters follow)."""
    time.sleep(0.05)
    wait_no_sessions(sock_path)


def test_counters_rate_and_connection_limits_as_haproxy():
    with echo_backends(["s1"]) as (backend,):
        directory = tempfile.mkdtemp(prefix="counters-")
        sock_path = os.path.join(directory, "admin.sock")
        ports = {name: free_port() for name in ("RATE", "TCP")}
        cfg = f"""global
    stats socket {sock_path} level admin

defaults
    mode http
    timeout connect 2s
    timeout client 5s
    timeout server 5s
    timeout http-keep-alive 5s
    timeout tarpit 100ms

frontend counted
    bind 127.0.0.1:@PORT@
    stick-table type ip size 100 expire 30s store conn_cnt,conn_cur,sess_cnt,sess_rate(1h),http_req_cnt,http_err_cnt,http_err_rate(1h)
    tcp-request session track-sc0 src
    http-request tarpit if {{ path /tarpit }}
    http-request deny deny_status 503 if {{ path /deny503 }}
    http-request use-service prometheus-exporter if {{ path /metrics }}
    default_backend app

frontend rate
    bind 127.0.0.1:{ports["RATE"]}
    stick-table type ip size 100 expire 30s store http_req_cnt,http_req_rate(1h),conn_cnt,conn_cur,gpc0
    http-request track-sc0 src
    http-request sc-inc-gpc0(0) if {{ path /scan }}
    http-request deny deny_status 403 if {{ sc0_get_gpc0 ge 2 }}
    http-request deny deny_status 429 if {{ sc_http_req_rate(0) gt 5 }}
    http-request return status 200 if {{ path /flagged }} {{ src_get_gpc0(rate) gt 0 }}
    default_backend app

listen limited
    mode tcp
    bind 127.0.0.1:{ports["TCP"]}
    tcp-request connection track-sc1 src table per_client
    tcp-request connection reject if {{ sc1_conn_cur gt 2 }}
    server s1 {backend.address}

backend per_client
    stick-table type ip size 100 expire 30s store conn_cnt,conn_cur,conn_rate(1h),sess_cnt

backend app
    server s1 {backend.address}
"""

        def exercise(port):
            wait_socket(sock_path)
            settle(sock_path)
            for table in ("counted", "rate", "per_client"):
                cli(sock_path, f"clear table {table}")  # the start-up probe's connection counted
            seen = {}

            def table(name: str, label: str) -> None:
                settle(sock_path)
                seen[label] = entries(cli(sock_path, f"show table {name}"))

            # what one client's sessions count
            with connect(port) as sock:
                seen["keep-alive"] = [status_of(sock, "/a"), status_of(sock, "/missing")]
            table("counted", "after keep-alive")
            connect(port).close()
            table("counted", "after an empty connection")
            with connect(port) as sock:
                sock.sendall(b"GARBAGE\r\n\r\n")
                seen["bad"] = sock.recv(100)[:12]
            table("counted", "after a bad request")
            seen["denied"] = [request(port, "/deny503"), request(port, "/tarpit")]
            with connect(port) as sock:
                sock.sendall(b"GET /a HTTP/1.1\r\nHost: h\r\n")
                time.sleep(0.05)
            table("counted", "after a truncated request")

            # a request rate limit and a flag
            rate = ports["RATE"]
            with connect(rate) as sock:
                seen["rate keep-alive"] = [status_of(sock, "/a") for _ in range(3)]
            seen["rate"] = [request(rate, "/a") for _ in range(4)]
            table("rate", "rate table")
            cli(sock_path, "clear table rate")
            seen["scan"] = [request(rate, path) for path in ("/scan", "/flagged", "/scan", "/a")]
            table("rate", "scan table")
            seen["filtered"] = entries(cli(sock_path, "show table rate data.gpc0 gt 1"))
            seen["filtered out"] = entries(cli(sock_path, "show table rate data.gpc0 gt 2"))
            cli(sock_path, "clear table rate data.gpc0 gt 1")
            seen["after clear"] = entries(cli(sock_path, "show table rate"))
            seen["set"] = cli(sock_path, "set table rate key 127.0.0.1 data.gpc0 2")
            seen["after set"] = [request(rate, "/a")]
            table("rate", "set table")
            seen["errors"] = [cli(sock_path, "show table rate data.gpt0 gt 1"),
                              cli(sock_path, "show table rate data.gpc0 xx 1"),
                              cli(sock_path, "set table rate key 127.0.0.1 data.conn_rate 1")]

            # at most two connections at once in mode tcp
            limited = ports["TCP"]
            held = [connect(limited) for _ in range(2)]
            seen["held"] = [status_of(sock, "/") for sock in held]
            try:
                with connect(limited) as third:
                    seen["third"] = status_of(third, "/")
            except ConnectionResetError:
                seen["third"] = "reset"
            table("per_client", "while held")
            for sock in held:
                sock.close()
            seen["after"] = request(limited, "/")
            table("per_client", "after the limit")
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as reply:
                seen["metrics"] = [line for line in reply.read().decode().splitlines() if "sticktable" in line]
            os.unlink(sock_path)
            return seen

        for name, port in ports.items():
            cfg = cfg.replace(f"@{name}@", str(port))
        ours = same_as_haproxy(cfg, exercise)
    # what the comparison is about, so that a change in both cannot pass unseen
    assert ours["rate keep-alive"] + ours["rate"] == ["200"] * 5 + ["429"] * 2
    assert ours["scan"] == ["200", "200", "403", "403"]
    assert ours["held"] == ["200", "200"] and ours["third"] == "reset" and ours["after"] == "200"
    assert 'haproxy_sticktable_used{name="rate",type="ip"} 1' in ours["metrics"]


def test_content_rules_again_for_each_request_as_haproxy():
    """In mode http HAProxy evaluates tcp-request content rules again for each
    request of a connection: what they track is the request's (counted per
    request, released at its end), a reject refuses the request at hand
    (counted in dreq, not in req_tot), and a session-tracked counter does
    not count the refused request."""
    with echo_backends(["s1"]) as (backend,):
        directory = tempfile.mkdtemp(prefix="content-")
        sock_path = os.path.join(directory, "admin.sock")
        second = free_port()
        store = "store conn_cnt,conn_cur,sess_cnt,http_req_cnt,http_err_cnt"
        cfg = f"""global
    stats socket {sock_path} level admin

defaults
    mode http
    timeout connect 2s
    timeout client 5s
    timeout server 5s

frontend per_request
    bind 127.0.0.1:@PORT@
    stick-table type ip size 100 expire 30s {store}
    tcp-request content track-sc0 src
    tcp-request content reject if {{ sc0_http_req_cnt gt 2 }}
    default_backend app

frontend per_session
    bind 127.0.0.1:{second}
    stick-table type ip size 100 expire 30s {store}
    tcp-request session track-sc0 src
    tcp-request content reject if {{ sc0_http_req_cnt gt 2 }}
    default_backend app

backend app
    server s1 {backend.address}
"""

        def exercise(port):
            wait_socket(sock_path)
            settle(sock_path)
            seen = {}
            for name, target in (("per_request", port), ("per_session", second)):
                cli(sock_path, f"clear table {name}")
                with connect(target) as sock:
                    seen[name] = [status_of(sock, "/") for _ in range(4)]
                settle(sock_path)
                seen[name + " table"] = entries(cli(sock_path, f"show table {name}"))
            rows = cli(sock_path, "show stat -1 1 -1").splitlines()
            header = rows[0][2:].split(",")
            seen["frontends"] = [{column: row.split(",")[header.index(column)]
                                  for column in ("pxname", "req_tot", "dreq", "hrsp_2xx")}
                                 for row in rows[1:] if row]
            os.unlink(sock_path)
            return seen

        ours = same_as_haproxy(cfg, exercise)
    assert ours["per_request"] == ours["per_session"] == ["200", "200", "200", "closed"]


def test_keys_read_from_the_request_as_haproxy():
    """Per-URL limits: `base32+src` in a binary table, `base32` in an
    integer one, `base`, `path` and `url` in string tables, `url32+src` cut
    to a shorter binary key, and `stick on base32`: the same entries (keys
    printed alike, in the same order), the same 429s, the same server. A
    `req.hdr()` key is the field's last comma-separated value, and a string
    key is printed with HAProxy's escapes."""
    with echo_backends(["s1", "s2"]) as (b1, b2):
        directory = tempfile.mkdtemp(prefix="request-keys-")
        sock_path = os.path.join(directory, "admin.sock")
        second, sticky = free_port(), free_port()
        cfg = with_stats_socket(haproxy_config(f"""
frontend per_url
    bind 127.0.0.1:@PORT@
    http-request track-sc0 base32+src table url_client
    http-request track-sc1 base32 table url_hash
    http-request track-sc2 base table url_base
    http-request deny deny_status 429 if {{ sc0_http_req_rate(url_client) gt 2 }}
    default_backend app

frontend per_path
    bind 127.0.0.1:{second}
    http-request track-sc0 path table paths
    http-request track-sc1 url table urls
    http-request track-sc2 url32+src table short
    default_backend app

listen sticky
    bind 127.0.0.1:{sticky}
    balance roundrobin
    stick-table type integer size 100 expire 30s
    stick on base32
    http-request track-sc0 req.hdr(x-key) table keys
    server s1 {b1.address}
    server s2 {b2.address}

backend url_client
    stick-table type binary len 20 size 100 expire 30s store http_req_cnt,http_req_rate(1h)
backend url_hash
    stick-table type integer size 100 expire 30s store http_req_cnt
backend url_base
    stick-table type string len 12 size 100 expire 30s store http_req_cnt
backend paths
    stick-table type string size 100 expire 30s store http_req_cnt
backend urls
    stick-table type string size 100 expire 30s store http_req_cnt
backend keys
    stick-table type string size 100 expire 30s store http_req_cnt
backend short
    stick-table type binary len 6 size 100 expire 30s store http_req_cnt
backend app
    server s1 {b1.address}
"""), sock_path)

        def ask(port: int, path: str, host: str | None = "Example.com:8080") -> str:
            with connect(port) as sock:
                head = f"GET {path} HTTP/1.1\r\n" if host is not None else f"GET {path} HTTP/1.0\r\n"
                sock.sendall((head + (f"Host: {host}\r\n" if host else "") + "Connection: close\r\n\r\n").encode())
                reply = b""
                while chunk := sock.recv(65536):
                    reply += chunk
            status = reply.split(b" ", 2)[1].decode()
            server = next((line.split(b": ")[1].decode() for line in reply.split(b"\r\n")
                           if line.lower().startswith(b"x-backend:")), "-")
            return f"{status} {server}"

        def exercise(port):
            wait_socket(sock_path)
            settle(sock_path)
            for name in ("url_client", "url_hash", "url_base", "paths", "urls", "short", "keys"):
                cli(sock_path, f"clear table {name}")
            seen = {"per_url": [ask(port, "/a/b?x=1"), ask(port, "/a/b?y=2"), ask(port, "/a/b"),
                                ask(port, "/c", "other"), ask(port, "/x", None)],
                    "per_path": [ask(second, "/a/b?x=1"), ask(second, "/a/b?x=1"), ask(second, "/d", None)],
                    "sticky answers": [ask(sticky, path) for path in ("/one", "/two", "/one", "/two", "/three", "/one")]}
            for value in (b"a b", b"a=b", b"a\\b", b"a\tb", b"caf\xc3\xa9", b"first, last", b"q\"r"):
                with connect(sticky) as sock:
                    sock.sendall(b"GET /k HTTP/1.1\r\nHost: h\r\nX-Key: " + value + b"\r\nConnection: close\r\n\r\n")
                    while sock.recv(65536):
                        pass
            settle(sock_path)
            for name in ("url_client", "url_hash", "url_base", "paths", "urls", "short", "sticky", "keys"):
                seen[name] = entries(cli(sock_path, f"show table {name}"))
            # a binary key cannot be named on the runtime API (HAProxy 2.6 refuses it)
            key = seen["url_client"][1].split()[0][4:]
            seen["by key"] = entries(cli(sock_path, f"show table url_client key {key}"))
            seen["clear by key"] = cli(sock_path, f"clear table url_client key {key}")
            seen["cleared"] = entries(cli(sock_path, "show table url_client"))
            seen["set by key"] = cli(sock_path, f"set table url_client key {key} data.http_req_cnt 5")
            os.unlink(sock_path)
            return seen

        ours = same_as_haproxy(cfg, exercise)
    assert [answer.split()[0] for answer in ours["per_url"]] == ["200", "200", "429", "200", "200"]
    assert len(ours["url_client"]) == 1 + 3 + 1 and ours["cleared"] == ours["url_client"]
    assert "is not supported" in ours["by key"][0] and "is not supported" in ours["set by key"]
    answers = ours["sticky answers"]
    assert answers[0].split()[1] == answers[2].split()[1] == answers[5].split()[1]
    assert len(ours["keys"]) == 1 + 7 + 1 and "key=a\\ b " in "".join(ours["keys"])
