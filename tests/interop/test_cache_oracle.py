"""`cache` sections with `http-request cache-use` and `http-response
cache-store`, against HAProxy 2.6: the same configuration in front of the same
counting server, the same requests, one after the other.

The server answers each target as its query says (status, fields, body size,
chunked or until close) and starts each body with how many times it was asked
for that target, so a body tells whether the answer came from the cache. For
each request the test compares the status, whether an Age field came, the
body, how many X-Before fields the http-response rules left (they run again on
a hit), the framing fields, and how many requests the server has seen for the
target. Then `show stat`'s cache_lookups and cache_hits, `show cache`'s
objects (hash, secondary key, size) and, from the log, the server (<CACHE> for
a hit), the status and the termination flags of each request.
"""

from __future__ import annotations

import os
import re
import tempfile
import time
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.interop.test_proxy_oracle import raw_exchange
from tests.support.admin_cli import cli, wait_socket
from tests.support.haply_process import PROXIES
from tests.support.haproxy_oracle import free_port, haproxy_available, run_haproxy
from tests.support.scripted_backend import scripted_backend
from tests.support.syslog_receiver import Receiver

pytestmark = [pytest.mark.skipif(not haproxy_available(), reason="HAProxy oracle not installed"),
              pytest.mark.oracle]

# The global and defaults sections of the configurations with a stats socket alone.
STATS_PRELUDE = """\
global
    maxconn 1000
    nbthread 1
    stats socket {socket} level admin

defaults
    mode http
    timeout connect 2s
    timeout client 5s
    timeout server 5s
"""

CONFIG = """\
global
    maxconn 1000
    nbthread 1
    stats socket {socket} level admin
    log 127.0.0.1:{syslog} local0

defaults
    mode http
    log global
    option httplog
    timeout connect 2s
    timeout client 5s
    timeout server 5s

cache small
    total-max-size 1
    max-object-size 2000
    max-age 2

cache variants
    total-max-size 1
    max-age 60
    process-vary on
    max-secondary-entries 2

listen app
    bind 127.0.0.1:{port}
    http-request cache-use small
    http-response add-header X-Before b
    http-response cache-store small
    http-response add-header X-After a
    server s1 {server}

listen vary
    bind 127.0.0.1:{vary_port}
    http-request cache-use variants
    http-response cache-store variants
    server s1 {server}
"""

FRESH = "h=Cache-Control:max-age%3D60"
GZIP_VARY = "h=Cache-Control:max-age%3D60&h=Vary:Accept-Encoding&h=Content-Encoding:gzip"
# (proxy, method, target, request fields): in order; WAIT sleeps past the
# small cache's max-age (2 s).
WAIT = ("wait",)
STEPS = [
    ("app", "GET", f"/static?{FRESH}", ()),
    ("app", "GET", f"/static?{FRESH}", ()),
    ("app", "HEAD", f"/static?{FRESH}", ()),
    ("app", "GET", f"/static?{FRESH}", (("Cookie", "a=b"),)),
    ("app", "GET", f"/etag?{FRESH}&h=ETag:%22v1%22", ()),
    ("app", "GET", f"/etag?{FRESH}&h=ETag:%22v1%22", (("If-None-Match", '"v1"'),)),
    ("app", "GET", f"/etag?{FRESH}&h=ETag:%22v1%22", (("If-None-Match", '"other"'),)),
    ("app", "GET", "/validator?h=Last-Modified:Mon,%2001%20Dec%202025%2000:00:00%20GMT", ()),
    ("app", "GET", "/validator?h=Last-Modified:Mon,%2001%20Dec%202025%2000:00:00%20GMT",
     (("If-Modified-Since", "Mon, 01 Dec 2025 00:00:00 GMT"),)),
    ("app", "GET", "/plain", ()),
    ("app", "GET", "/plain", ()),
    ("app", "GET", "/private?h=Cache-Control:private,max-age%3D60", ()),
    ("app", "GET", "/private?h=Cache-Control:private,max-age%3D60", ()),
    ("app", "GET", f"/pragma?{FRESH}&h=Pragma:no-cache", ()),
    ("app", "GET", f"/pragma?{FRESH}&h=Pragma:no-cache", ()),
    ("app", "GET", f"/notfound?s=404&{FRESH}", ()),
    ("app", "GET", f"/notfound?s=404&{FRESH}", ()),
    ("app", "GET", f"/big?len=1900&{FRESH}", ()),
    ("app", "GET", f"/big?len=1900&{FRESH}", ()),
    ("app", "GET", f"/chunked?chunked=1&{FRESH}", ()),
    ("app", "GET", f"/chunked?chunked=1&{FRESH}", ()),
    ("app", "GET", f"/until-close?close=1&{FRESH}", ()),
    ("app", "GET", f"/until-close?close=1&{FRESH}", ()),
    ("app", "GET", f"/cookie?{FRESH}&h=Set-Cookie:s%3D1", ()),
    ("app", "GET", f"/cookie?{FRESH}&h=Set-Cookie:s%3D1", ()),
    # the request skips the lookup, its answer replaces the object
    ("app", "GET", f"/static?{FRESH}", (("Cache-Control", "no-cache"),)),
    ("app", "GET", f"/static?{FRESH}", ()),
    ("app", "GET", f"/static?{FRESH}", (("Authorization", "Basic dTpw"),)),
    ("app", "GET", f"/removed?{FRESH}", ()),
    ("app", "POST", f"/removed?{FRESH}", ()),
    ("app", "GET", f"/removed?{FRESH}", ()),
    ("app", "GET", f"/varies?{GZIP_VARY}", (("Accept-Encoding", "gzip"),)),
    ("app", "GET", f"/varies?{GZIP_VARY}", (("Accept-Encoding", "gzip"),)),
    ("vary", "GET", f"/varies?{GZIP_VARY}", (("Accept-Encoding", "gzip"),)),
    ("vary", "GET", f"/varies?{GZIP_VARY}", (("Accept-Encoding", "deflate, gzip"),)),
    ("vary", "GET", f"/varies?{GZIP_VARY}", (("Accept-Encoding", "br"),)),
    ("vary", "GET", f"/varies?{GZIP_VARY}", ()),
    ("vary", "GET", f"/identity?{FRESH}&h=Vary:Accept-Encoding", (("Accept-Encoding", "gzip"),)),
    ("vary", "GET", f"/identity?{FRESH}&h=Vary:Accept-Encoding", (("Accept-Encoding", "br"),)),
    ("vary", "GET", f"/agent?{FRESH}&h=Vary:User-Agent", (("User-Agent", "a"),)),
    ("vary", "GET", f"/agent?{FRESH}&h=Vary:User-Agent", (("User-Agent", "a"),)),
    ("app", "GET", "/short?h=Cache-Control:s-maxage%3D1,max-age%3D60", ()),
    ("app", "GET", "/short?h=Cache-Control:s-maxage%3D1,max-age%3D60", ()),
    WAIT,
    ("app", "GET", f"/static?{FRESH}", ()),
    ("app", "GET", "/short?h=Cache-Control:s-maxage%3D1,max-age%3D60", ()),
    ("vary", "GET", f"/varies?{GZIP_VARY}", (("Accept-Encoding", "gzip"),)),
]
EXPIRY_WAIT = 2.3  # past max-age 2 of the small cache


def counting_server(conn) -> None:
    """Answers as the query says: s= status, h= fields, len= body size,
    chunked=1, close=1 (no framing: the body ends when the connection does)."""
    while True:
        request = conn.read_request()
        if request is None:
            return
        server = conn.server
        count = sum(1 for seen in server.requests if seen.url == request.url)
        query = parse_qs(urlsplit(request.url).query)
        status = query.get("s", ["200"])[0]
        body = b"%d:" % count + b"x" * int(query.get("len", ["10"])[0])
        head = f"HTTP/1.1 {status} Answer\r\n" + "".join(f"{h}\r\n" for h in query.get("h", []))
        if "close" in query:
            conn.send((head + "\r\n").encode() + body)
            return
        if "chunked" in query:
            data = (head + "Transfer-Encoding: chunked\r\n\r\n").encode() + \
                b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
        else:
            data = (head + f"Content-Length: {len(body)}\r\n\r\n").encode()
            if request.method != "HEAD":
                data += body
        conn.send(data)


def exchange(port: int, method: str, target: str, fields) -> tuple:
    head = f"{method} {target} HTTP/1.1\r\nHost: app.example\r\nConnection: close\r\n"
    head += "".join(f"{name}: {value}\r\n" for name, value in fields)
    if method == "POST":
        head += "Content-Length: 0\r\n"
    received = raw_exchange(port, (head + "\r\n").encode())
    top, _, body = received.partition(b"\r\n\r\n")
    lines = top.decode("latin-1").split("\r\n")
    names = [line.split(":", 1)[0].strip().lower() for line in lines[1:]]
    values = {name: line.split(":", 1)[1].strip() for name, line in zip(names, lines[1:])}
    if values.get("transfer-encoding") == "chunked":
        size, _, rest = body.partition(b"\r\n")
        body = rest[:int(size, 16)]
    return (lines[0].split(" ", 2)[1], "age" in names, body[:12], names.count("x-before"),
            names.count("x-after"), values.get("content-length"), values.get("transfer-encoding"))


def parse_log(message: str) -> tuple:
    """(frontend, backend/server, Tw/Tc/Tr as set or -1, status, termination flags)."""
    fields = message.split()
    timers = fields[4].split("/")
    return (fields[2], fields[3], tuple(t == "-1" for t in timers[1:4]), fields[5], fields[9])


def show_cache(text: str) -> dict:
    """hash -> (secondary key, size) per object of `show cache`."""
    return {int(m.group(1)): (m.group(2), int(m.group(3))) for m in re.finditer(
        r"hash:(\d+) vary:(0x[0-9a-f]{16}) size:(\d+) ", text)}


def cache_counters(text: str) -> dict:
    header, *rows = text.strip().splitlines()
    names = header.lstrip("# ").split(",")
    wanted = {}
    for row in rows:
        values = dict(zip(names, row.split(",")))
        if values["svname"] in ("FRONTEND", "BACKEND"):
            wanted[(values["pxname"], values["svname"])] = (values["cache_lookups"], values["cache_hits"])
    return wanted


def observe(binary: str) -> dict:
    results = {"answers": [], "asked": []}
    receiver = Receiver()
    directory = tempfile.mkdtemp(prefix="haply-cache-")
    socket_path = os.path.join(directory, "stats.sock")
    try:
        with scripted_backend(counting_server) as server:
            port, vary_port = free_port(), free_port()
            config = CONFIG.format(socket=socket_path, syslog=receiver.port, port=port,
                                   vary_port=vary_port, server=server.address)
            with run_haproxy(config, binary):
                wait_socket(socket_path)
                ports = {"app": port, "vary": vary_port}
                requests = 0
                for step in STEPS:
                    if step is WAIT:
                        results["before wait"] = show_cache(cli(socket_path, "show cache"))
                        time.sleep(EXPIRY_WAIT)
                        continue
                    proxy, method, target, fields = step
                    results["answers"].append(exchange(ports[proxy], method, target, fields))
                    requests += 1
                    results["asked"].append(sum(1 for seen in server.requests if seen.url == target))
                results["counters"] = cache_counters(cli(socket_path, "show stat"))
                results["after wait"] = show_cache(cli(socket_path, "show cache"))
                # the start's readiness probes log empty connections first (CR--)
                lines = [parse_log(m) for m in receiver.messages(requests + len(ports))]
                results["log"] = [line for line in lines if line[4] != "CR--"]
    finally:
        receiver.close()
    return results


@pytest.fixture(scope="module")
def observed() -> dict:
    return {name: observe(binary) for name, binary in PROXIES.items()}


def test_each_answer_and_server_count_as_haproxy(observed):
    haply, haproxy = observed["haply"], observed["haproxy"]
    steps = [step for step in STEPS if step is not WAIT]
    for index, step in enumerate(steps):
        assert (haply["answers"][index], haply["asked"][index]) == \
            (haproxy["answers"][index], haproxy["asked"][index]), step
    # the sequence does exercise the cache: hits, and answers the server never saw
    assert sum(answer[1] for answer in haproxy["answers"]) >= 10
    assert haproxy["asked"][1] == 1


def test_counters_as_haproxy(observed):
    assert observed["haply"]["counters"] == observed["haproxy"]["counters"]
    assert observed["haproxy"]["counters"][("app", "FRONTEND")] != ("0", "0")


def test_show_cache_as_haproxy(observed):
    haply, haproxy = observed["haply"], observed["haproxy"]
    for moment in ("before wait", "after wait"):
        assert sorted(haply[moment]) == sorted(haproxy[moment]), moment
        for key, (secondary, size) in haproxy[moment].items():
            mine = haply[moment][key]
            assert mine[0] == secondary, (moment, key)
            # HAProxy's chunked objects carry a few bytes of its own framing more
            assert 0 <= size - mine[1] <= 8, (moment, key, size, mine[1])
    assert len(haproxy["before wait"]) >= 5


def test_log_lines_as_haproxy(observed):
    haply, haproxy = observed["haply"], observed["haproxy"]
    assert len(haproxy["log"]) == len([step for step in STEPS if step is not WAIT])
    assert haply["log"] == haproxy["log"]
    assert any(line[1].endswith("/<CACHE>") and line[4] == "LR--" for line in haproxy["log"])


SPLIT = STATS_PRELUDE + """
cache shared
    total-max-size 1
    max-age 60

frontend fe
    bind 127.0.0.1:{port}
    compression algo gzip
    compression type text/plain
    http-request cache-use shared if {{ path_beg /front }}
    http-response cache-store shared
    http-response add-header X-Fe fe
    default_backend be

backend be
    http-request cache-use shared if {{ path_beg /back }}
    http-response cache-store shared
    http-response add-header X-Be be
    server s1 {server}
"""
TEXT = "h=Cache-Control:max-age%3D60&h=Content-Type:text/plain&len=200"
KEEP_ALIVE_STEPS = [
    (f"/front?{TEXT}", (("Accept-Encoding", "gzip"),)),
    (f"/front?{TEXT}", (("Accept-Encoding", "gzip"),)),
    (f"/front?{TEXT}", ()),
    (f"/back?{TEXT}", ()),
    (f"/back?{TEXT}", ()),
    (f"/back?{TEXT}", (("Accept-Encoding", "gzip"),)),
]


def answers_on_one_connection(port: int, steps) -> list[tuple]:
    """Each answer of requests sent one after the other on one connection:
    (status, field names in order, lower-cased, the body decoded)."""
    import socket
    import zlib

    import httptools

    class Reader:
        def __init__(self):
            self.parser = httptools.HttpResponseParser(self)
            self.done, self.names, self.body = [], [], b""

        def on_header(self, name, value):
            self.names.append(name.decode().lower())

        def on_body(self, body):
            self.body += body

        def on_message_complete(self):
            body = self.body
            if "content-encoding" in self.names:
                body = zlib.decompress(body, 31)
            self.done.append((self.parser.get_status_code(), tuple(self.names), body[:12]))
            self.names, self.body = [], b""

    reader = Reader()
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        for target, fields in steps:
            head = f"GET {target} HTTP/1.1\r\nHost: app.example\r\n"
            sock.sendall((head + "".join(f"{k}: {v}\r\n" for k, v in fields) + "\r\n").encode())
            wanted = len(reader.done) + 1
            while len(reader.done) < wanted:
                data = sock.recv(65536)
                assert data, "the connection closed"
                reader.parser.feed_data(data)
    return reader.done


def test_frontend_and_backend_rules_with_compression_as_haproxy():
    """cache-use in a frontend (its hit runs the frontend's rules only) and in
    a backend, one cache-store on each side (the object keeps what the
    backend's rules added), hits compressed by the frontend's `compression`,
    all on one keep-alive connection; and the counters of each row."""
    results = {}
    for name, binary in PROXIES.items():
        directory = tempfile.mkdtemp(prefix="haply-cache-")
        socket_path = os.path.join(directory, "stats.sock")
        with scripted_backend(counting_server) as server:
            port = free_port()
            with run_haproxy(SPLIT.format(socket=socket_path, port=port, server=server.address), binary):
                wait_socket(socket_path)
                answers = answers_on_one_connection(port, KEEP_ALIVE_STEPS)
                results[name] = (answers, len(server.requests),
                                 cache_counters(cli(socket_path, "show stat")))
    assert results["haply"] == results["haproxy"]
    answers, asked, counters = results["haproxy"]
    assert asked == 2 and counters[("fe", "FRONTEND")] == ("3", "2")
    assert "content-encoding" in answers[1][1] and "age" in answers[1][1]


EVICTION = STATS_PRELUDE + """
cache tiny
    total-max-size 1
    max-object-size 524288
    max-age 60

listen app
    bind 127.0.0.1:{port}
    http-request cache-use tiny
    http-response cache-store tiny
    server s1 {server}
"""
LARGE = "h=Cache-Control:max-age%3D60&len=400000"  # 391 blocks of the 1024


def test_eviction_when_the_cache_is_full_as_haproxy():
    """Three objects of 400 kB in a 1 MB cache: the third makes room by
    dropping one of the first two. Which one, after the first was asked for
    again, and what `show cache` then holds, are compared."""
    steps = ["/a", "/b", "/a", "/c", "/a", "/b", "/c"]
    results = {}
    for name, binary in PROXIES.items():
        directory = tempfile.mkdtemp(prefix="haply-cache-")
        socket_path = os.path.join(directory, "stats.sock")
        with scripted_backend(counting_server) as server:
            port = free_port()
            with run_haproxy(EVICTION.format(socket=socket_path, port=port, server=server.address),
                             binary):
                wait_socket(socket_path)
                seen = []
                for path in steps:
                    answer = exchange(port, "GET", f"{path}?{LARGE}", ())
                    seen.append((path, answer[1], answer[2]))
                objects = show_cache(cli(socket_path, "show cache"))
                # HAProxy keeps a large body in pieces, a few bytes each more:
                # compared in 1 kB blocks
                results[name] = (seen, sorted(objects), sorted(-(-size // 1024) for _, size in objects.values()))
    assert results["haply"] == results["haproxy"]
    assert len(results["haproxy"][1]) == 2  # never more than the cache holds
