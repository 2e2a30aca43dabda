"""mode http through the real haply process, with real backends and clients."""

from __future__ import annotations

import hashlib
import http.client
import os
import socket
import subprocess
import threading
import time

import pytest
import requests

from tests.support.haply_process import rss_kib, run_haply
from tests.support.haproxy_oracle import echo_backends, free_port, http_get
from tests.support.scripted_backend import (Conn, close_without_answer, keepalive_echo,
                                            scripted_backend)

PRELUDE = """\
global
    maxconn 1000

defaults
    mode http
    timeout connect 2s
    timeout client 5s
    timeout server 5s
"""


def listen(port: int, servers: list, extra: str = "") -> str:
    lines = "\n".join(f"    server {name} {address}" for name, address in servers)
    return f"{PRELUDE}\nlisten app\n    bind 127.0.0.1:{port}\n{extra}{lines}\n"


def raw_exchange(port: int, data: bytes, timeout: float = 5.0) -> bytes:
    """Send bytes, read until the proxy closes (or timeout)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        chunks = []
        try:
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                chunks.append(chunk)
        except socket.timeout:
            pass
        return b"".join(chunks)


def test_roundrobin_and_forwardfor():
    with echo_backends(["s1", "s2"]) as backends:
        port = free_port()
        cfg = listen(port, [(b.name, b.address) for b in backends],
                     "    balance roundrobin\n    option forwardfor\n")
        with run_haply(cfg):
            names = [http_get(port).backend for _ in range(6)]
            assert names == ["s1", "s2", "s1", "s2", "s1", "s2"]
            received = backends[0].requests[-1]
            assert received.header("X-Forwarded-For") == "127.0.0.1"


def test_keepalive_reuses_server_connections():
    with scripted_backend(keepalive_echo, "ka") as backend:
        port = free_port()
        with run_haply(listen(port, [("ka", backend.address)])):
            with requests.Session() as session:
                for i in range(20):
                    reply = session.get(f"http://127.0.0.1:{port}/r{i}", timeout=5)
                    assert reply.status_code == 200
                    assert reply.text.startswith(f"ka GET /r{i} 0 ")
            # 20 requests on one client connection travel over one server connection.
            assert backend.connections == 1


@pytest.mark.parametrize("size", [0, 1, 70_000, 3_000_000])
def test_request_bodies_content_length_and_chunked(size):
    body = os.urandom(size)
    digest = hashlib.sha256(body).hexdigest()
    with scripted_backend(keepalive_echo, "b") as backend:
        port = free_port()
        with run_haply(listen(port, [("b", backend.address)])):
            reply = requests.post(f"http://127.0.0.1:{port}/up", data=body, timeout=10)
            assert reply.text.split()[3:] == [str(size), digest]

            def chunks():
                for start in range(0, size, 50_000):
                    yield body[start:start + 50_000]
            reply = requests.post(f"http://127.0.0.1:{port}/up", data=chunks(), timeout=10)
            assert reply.text.split()[3:] == [str(size), digest]
            assert backend.requests[-1].header("Transfer-Encoding") == "chunked"


def test_expect_100_continue_with_curl(tmp_path):
    payload = tmp_path / "payload"
    payload.write_bytes(os.urandom(200_000))
    with scripted_backend(keepalive_echo, "b") as backend:
        port = free_port()
        with run_haply(listen(port, [("b", backend.address)])):
            out = subprocess.run(
                ["curl", "-sS", "-H", "Expect: 100-continue", "--data-binary", f"@{payload}",
                 f"http://127.0.0.1:{port}/e"], capture_output=True, timeout=20, check=True)
            assert out.stdout.split()[3] == b"200000"


def test_pipelined_requests_answered_in_order():
    with echo_backends(["s1", "s2"]) as backends:
        port = free_port()
        with run_haply(listen(port, [(b.name, b.address) for b in backends])):
            data = b"".join(b"GET /p%d HTTP/1.1\r\nHost: x\r\n\r\n" % i for i in range(5))
            data += b"GET /last HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
            reply = raw_exchange(port, data)
            paths = [line.split()[1] for line in reply.split(b"\n") if line.startswith(b"GET /")]
            assert paths == [b"/p0", b"/p1", b"/p2", b"/p3", b"/p4", b"/last"]
            assert reply.count(b"HTTP/1.1 200") == 6


def test_head_204_304_framing():
    def handler(conn: Conn) -> None:
        while (request := conn.read_request()) is not None:
            if request.url == "/204":
                conn.send(b"HTTP/1.1 204 No Content\r\n\r\n")
            elif request.url == "/304":
                conn.send(b"HTTP/1.1 304 Not Modified\r\nETag: \"x\"\r\n\r\n")
            else:  # HEAD: announces a length, sends no body
                conn.send(b"HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n")
    with scripted_backend(handler) as backend:
        port = free_port()
        with run_haply(listen(port, [("b", backend.address)])):
            data = (b"HEAD /h HTTP/1.1\r\nHost: x\r\n\r\n"
                    b"GET /204 HTTP/1.1\r\nHost: x\r\n\r\n"
                    b"GET /304 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            reply = raw_exchange(port, data)
            assert reply.count(b"HTTP/1.1 ") == 3
            assert b"Content-Length: 1234" in reply
            assert reply.endswith(b"\r\n\r\n")  # no stray body bytes anywhere
            assert backend.connections == 1


def test_websocket_upgrade_tunnel():
    def handler(conn: Conn) -> None:
        request = conn.read_request()
        assert request.header("Upgrade") == "websocket"
        conn.send(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                  b"Connection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n")
        while data := conn.recv():
            conn.send(data.upper())
    with scripted_backend(handler) as backend:
        port = free_port()
        with run_haply(listen(port, [("b", backend.address)], "    timeout tunnel 1h\n")):
            with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
                sock.sendall(b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                             b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
                head = b""
                while b"\r\n\r\n" not in head:
                    head += sock.recv(4096)
                assert head.startswith(b"HTTP/1.1 101")
                for word in (b"hello", b"vnc frames"):
                    sock.sendall(word)
                    assert sock.recv(4096) == word.upper()


def test_all_servers_down_gives_503_at_once():
    port = free_port()
    dead = free_port()
    cfg = listen(port, [("gone", f"127.0.0.1:{dead}")], "    retries 1\n")
    with run_haply(cfg):
        started = time.monotonic()
        reply = http_get(port)
        assert reply.status == 503
        assert b"503 Service Unavailable" in reply.body
        assert time.monotonic() - started < 2.0


def test_server_timeout_gives_504():
    def silent(conn: Conn) -> None:
        conn.read_request()
        time.sleep(3)
    with scripted_backend(silent) as backend:
        port = free_port()
        cfg = listen(port, [("b", backend.address)]).replace("timeout server 5s", "timeout server 500ms")
        with run_haply(cfg):
            assert http_get(port).status == 504


def test_slowloris_cut_by_timeout_http_request_others_unaffected():
    with echo_backends(["s1"]) as backends:
        port = free_port()
        cfg = listen(port, [("s1", backends[0].address)], "    timeout http-request 500ms\n")
        with run_haply(cfg):
            with socket.create_connection(("127.0.0.1", port), timeout=5) as slow:
                slow.sendall(b"GET / HTTP/1.1\r\n")
                started = time.monotonic()
                for _ in range(3):
                    assert http_get(port).status == 200  # others are served meanwhile
                    slow.sendall(b"X-a: b\r\n")
                    time.sleep(0.1)
                reply = slow.recv(4096)
                assert reply.startswith(b"HTTP/1.1 408")
                assert time.monotonic() - started < 2.0


@pytest.mark.parametrize("request_bytes", [
    b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
    b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: x\r\nX-Folded : a\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: x\r\nX-B\x00d: a\r\n\r\n",
    b"GET /\x01 HTTP/1.1\r\nHost: x\r\n\r\n",
    b"NOT A REQUEST\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive\r\nHost: b\r\n\r\n",
    b"GET / HTTP/1.0\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
], ids=["cl-and-te", "differing-cl", "bad-chunk-size", "space-before-colon", "nul-in-name",
        "ctl-in-uri", "garbage", "differing-host", "te-in-http10"])
def test_smuggling_vectors_refused_and_never_forwarded(request_bytes):
    with scripted_backend(keepalive_echo) as backend:
        port = free_port()
        with run_haply(listen(port, [("b", backend.address)])):
            reply = raw_exchange(port, request_bytes)
            assert reply.startswith(b"HTTP/1.1 400"), reply[:100]
            assert backend.requests == []
            assert http_get(port).status == 200  # the proxy keeps serving


def test_oversized_head_refused():
    with scripted_backend(keepalive_echo) as backend:
        port = free_port()
        with run_haply(listen(port, [("b", backend.address)])):
            big = b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20000 + b"\r\n\r\n"
            reply = raw_exchange(port, big)
            assert reply.split(b" ")[1] in (b"431", b"400")
            assert backend.requests == []


def test_errorfile_overrides_default(tmp_path):
    page = tmp_path / "503.http"
    page.write_bytes(b"HTTP/1.0 503 Service Unavailable\r\nContent-Type: text/plain\r\n"
                     b"Connection: close\r\n\r\ncontrollers are all down\n")
    port = free_port()
    cfg = listen(port, [("gone", f"127.0.0.1:{free_port()}")],
                 f"    retries 0\n    errorfile 503 {page}\n")
    with run_haply(cfg):
        reply = http_get(port)
        assert reply.status == 503 and reply.body == b"controllers are all down\n"


def test_idempotent_request_retried_when_server_dies_mid_request():
    with scripted_backend(close_without_answer, "dying") as dying, \
            scripted_backend(keepalive_echo, "alive") as alive:
        port = free_port()
        cfg = listen(port, [("dying", dying.address), ("alive", alive.address)],
                     "    balance roundrobin\n    retries 3\n")
        with run_haply(cfg):
            for _ in range(6):
                reply = http_get(port)
                assert reply.status == 200 and reply.body.startswith(b"alive GET")
            # A POST is not replayed: the server may have acted on it.
            statuses = {requests.post(f"http://127.0.0.1:{port}/", data=b"x", timeout=5).status_code
                        for _ in range(4)}
            assert statuses == {200, 502}


def test_connection_refused_redispatched():
    with echo_backends(["up"]) as backends:
        port = free_port()
        cfg = listen(port, [("down", f"127.0.0.1:{free_port()}"), ("up", backends[0].address)],
                     "    option redispatch\n    retries 2\n")
        with run_haply(cfg):
            assert all(http_get(port).backend == "up" for _ in range(6))


def test_server_maxconn_queues_then_times_out():
    def slow(conn: Conn) -> None:
        while conn.read_request() is not None:
            time.sleep(0.3)
            conn.respond(200, b"done")
    with scripted_backend(slow) as backend:
        port = free_port()
        cfg = listen(port, [("b", f"{backend.address} maxconn 1")], "    timeout queue 2s\n")
        with run_haply(cfg):
            results = []
            threads = [threading.Thread(target=lambda: results.append(http_get(port).status))
                       for _ in range(4)]
            started = time.monotonic()
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            assert results == [200] * 4
            assert time.monotonic() - started >= 1.1  # served one at a time
        cfg = cfg.replace("timeout queue 2s", "timeout queue 100ms")
        with run_haply(cfg):
            results = []
            threads = [threading.Thread(target=lambda: results.append(http_get(port).status))
                       for _ in range(3)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            assert sorted(results) == [200, 503, 503]


def test_use_backend_acls_and_header_rules():
    with echo_backends(["api", "web"]) as (api, web):
        port = free_port()
        cfg = f"""{PRELUDE}
frontend fe
    bind 127.0.0.1:{port}
    acl is_api path_beg /v2 /v3
    acl admin_host hdr(host) -i admin.example
    http-request set-header X-Proto http
    http-request del-header X-Secret
    http-response set-header X-Served-By haply
    use_backend api_be if is_api || admin_host
    default_backend web_be

backend api_be
    server api {api.address}

backend web_be
    server web {web.address}
"""
        with run_haply(cfg):
            assert http_get(port, "/v2/servers").backend == "api"
            assert http_get(port, "/x", headers={"Host": "ADMIN.example"}).backend == "api"
            reply = http_get(port, "/index", headers={"X-Secret": "s"})
            assert reply.backend == "web"
            assert dict(reply.headers)["X-Served-By"] == "haply"
            seen = web.requests[-1]
            assert seen.header("X-Proto") == "http" and seen.header("X-Secret") is None


def test_large_download_and_upload_stream_without_growing_memory():
    size = 300 * 1024 * 1024

    def sink_and_source(conn: Conn) -> None:
        request = conn.read_request(until_head_only=True)
        if request.method == "GET":
            conn.send(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % size)
            block = b"x" * 1048576
            for _ in range(size // len(block)):
                conn.send(block)
        else:
            remaining = int(request.header("Content-Length"))
            remaining -= sum(len(b) for b in conn.reader.body)
            while remaining > 0:
                data = conn.recv(1048576)
                if not data:
                    return
                remaining -= len(data)
            conn.respond(200, b"stored")
    with scripted_backend(sink_and_source) as backend:
        port = free_port()
        with run_haply(listen(port, [("b", backend.address)])) as proxy:
            pid = proxy.process.pid
            before = rss_kib(pid)
            with requests.get(f"http://127.0.0.1:{port}/image", stream=True, timeout=30) as reply:
                received = sum(len(c) for c in reply.iter_content(1048576))
            assert received == size

            def body():
                block = b"y" * 1048576
                for _ in range(size // len(block)):
                    yield block
            # http.client sends exactly the framing given (requests would add
            # Transfer-Encoding to a generator body, which haply rightly refuses).
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            conn.request("PUT", "/upload", body=body(), headers={"Content-Length": str(size)})
            assert conn.getresponse().read() == b"stored"
            conn.close()
            grown = rss_kib(pid) - before
            assert grown < 40 * 1024, f"haply grew by {grown} KiB moving 600 MB"


def _always(status: int, name: str):
    def handler(conn: Conn) -> None:
        while (request := conn.read_request()) is not None:
            conn.respond(status, f"{name} {request.method}".encode(), reason="X")
    return handler


def test_retry_on_status_replays_idempotent_requests_elsewhere():
    with scripted_backend(_always(503, "sick"), "sick") as sick, \
            scripted_backend(_always(200, "fine"), "fine") as fine:
        port = free_port()
        cfg = listen(port, [("sick", sick.address), ("fine", fine.address)],
                     "    retry-on 503\n    retries 2\n")
        with run_haply(cfg):
            assert {http_get(port).body for _ in range(6)} == {b"fine GET"}
            posts = {requests.post(f"http://127.0.0.1:{port}/", data=b"x", timeout=5).text
                     for _ in range(4)}
            assert posts == {"sick POST", "fine POST"}  # a POST is never replayed


def test_retry_on_response_timeout():
    def silent(conn: Conn) -> None:
        conn.read_request()
        time.sleep(2)
    with scripted_backend(silent, "silent") as slow, \
            scripted_backend(_always(200, "fine"), "fine") as fine:
        port = free_port()
        cfg = listen(port, [("silent", slow.address), ("fine", fine.address)],
                     "    retry-on response-timeout\n").replace("timeout server 5s",
                                                                "timeout server 300ms")
        with run_haply(cfg):
            assert {http_get(port).body for _ in range(4)} == {b"fine GET"}


def test_retry_on_none_disables_every_retry():
    with scripted_backend(_always(200, "fine"), "fine") as fine:
        port = free_port()
        cfg = listen(port, [("down", f"127.0.0.1:{free_port()}"), ("fine", fine.address)],
                     "    retry-on none\n    option redispatch\n")
        with run_haply(cfg):
            assert sorted(http_get(port).status for _ in range(4)) == [200, 200, 503, 503]


def test_monitor_uri_answered_by_haply_itself():
    with scripted_backend(keepalive_echo) as backend:
        port = free_port()
        with run_haply(listen(port, [("b", backend.address)], "    monitor-uri /haproxy_test\n")):
            with requests.Session() as session:
                for _ in range(3):
                    reply = session.get(f"http://127.0.0.1:{port}/haproxy_test", timeout=5)
                    assert reply.status_code == 200 and b"200 OK" in reply.content
                assert session.get(f"http://127.0.0.1:{port}/x", timeout=5).status_code == 200
            assert [r.url for r in backend.requests] == ["/x"]


def test_maxqueue_bounds_the_queue():
    def slow(conn: Conn) -> None:
        while conn.read_request() is not None:
            time.sleep(0.5)
            conn.respond(200, b"done")
    with scripted_backend(slow) as backend:
        port = free_port()
        cfg = listen(port, [("b", f"{backend.address} maxconn 1 maxqueue 1")],
                     "    timeout queue 5s\n")
        with run_haply(cfg):
            results = []
            threads = [threading.Thread(target=lambda: results.append(http_get(port).status))
                       for _ in range(4)]
            for t in threads:
                t.start()
                time.sleep(0.05)
            for t in threads:
                t.join()
            # one served, one queued behind it, the two others refused at once
            assert sorted(results) == [200, 200, 503, 503]


def test_plain_heads_pass_as_sent_with_forwardfor_and_without_connection():
    """A GET whose head has no hop-by-hop or framing field but a plain
    Connection goes to the server with its fields as the client wrote them
    (in order), X-Forwarded-For added and the Connection field gone;
    with a hop-by-hop field the head is rewritten field by field instead."""
    with scripted_backend(keepalive_echo) as backend:
        port = free_port()
        with run_haply(listen(port, [("b", backend.address)], "    option forwardfor\n")):
            head = (b"GET /plain HTTP/1.1\r\nHost: x\r\nX-Tight:no-space\r\n"
                    b"Connection: keep-alive\r\nX-Trail: v\r\n\r\n")
            with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
                sock.sendall(head)
                assert sock.recv(65536).startswith(b"HTTP/1.1 200")
                sock.sendall(b"GET /hop HTTP/1.1\r\nHost: x\r\nKeep-Alive: 5\r\n"
                             b"X-Tight:no-space\r\n\r\n")
                assert sock.recv(65536).startswith(b"HTTP/1.1 200")
    plain, hop = backend.requests
    assert plain.headers == [("Host", "x"), ("X-Tight", "no-space"), ("X-Trail", "v"),
                             ("X-Forwarded-For", "127.0.0.1")]
    assert hop.headers == [("Host", "x"), ("X-Tight", "no-space"),
                           ("X-Forwarded-For", "127.0.0.1")]
