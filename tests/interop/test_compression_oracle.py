"""`compression algo|type|offload` against HAProxy 2.6: the same configuration in
front of the same server, the same requests, the same answers.

The server serves bodies of several types, sizes and framings (Content-Length,
chunked, until close), with the fields that decide compression (ETag,
Cache-Control, Content-Encoding, Content-Type, status). Requests vary
Accept-Encoding, User-Agent, version and method. For each exchange the test
compares what decides and shows compression: status, Content-Encoding, Vary,
ETag, whether the body came chunked or with a Content-Length, the zlib format
of a "deflate" body, the Accept-Encoding the server saw, and whether the body,
once decoded, is the one the server sent. The compressed bytes themselves
differ (HAProxy compresses with libslz, haply with zlib at the same level 1).
Field names are compared lower-cased: HAProxy lower-cases them, haply keeps
the server's spelling.

Then what must never break: keep-alive and pipelined requests after a
compressed answer, a server that dies mid-body, a client that leaves mid-body,
a body that trickles (each piece must reach the client before the server sends
the next), and the comp_* counters of `show stat`.
"""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
import threading
import time
import zlib

import httptools
import pytest

from tests.interop.test_proxy_oracle import PRELUDE
from tests.support.admin_cli import cli, wait_socket
from tests.support.haply_process import PROXIES
from tests.support.haproxy_oracle import free_port, haproxy_available, run_haproxy
from tests.support.scripted_backend import scripted_backend

pytestmark = [pytest.mark.skipif(not haproxy_available(), reason="HAProxy oracle not installed"),
              pytest.mark.oracle]

# A text body that compresses (a JSON listing, as the APIs answer), and a big one.
LINE = b'{"id": "%06d", "name": "server-%06d", "status": "ACTIVE", "flavor": "m1.small"},\n'
TEXT = b"".join(LINE % (i, i) for i in range(2))[:120]
BIG = b"".join(LINE % (i, i) for i in range(4000))  # ~330 KB
TIMEOUT = 5.0


# ------------------------------------------------------------------ the server


def response(status: str = "200 OK", fields: tuple = (("Content-Type", "text/plain"),),
             body: bytes = TEXT, framing: str = "length", version: str = "HTTP/1.1",
             pieces: int = 1) -> tuple[list[bytes], bool]:
    """The bytes a response is sent as (in `pieces` writes) and whether the
    server closes after it."""
    head = f"{version} {status}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in fields)
    step = max(1, -(-len(body) // pieces))
    parts = [body[i:i + step] for i in range(0, len(body), step)] or [b""]
    if framing == "length":
        return [(head + f"Content-Length: {len(body)}\r\n\r\n").encode()] + parts, False
    if framing == "chunked":
        chunks = [b"%x\r\n%s\r\n" % (len(p), p) for p in parts if p]
        return [(head + "Transfer-Encoding: chunked\r\n\r\n").encode()] + chunks + [b"0\r\n\r\n"], False
    if framing == "none":  # 204, 304: no body at all
        return [(head + "\r\n").encode()], False
    return [(head + "\r\n").encode()] + parts, True  # until close


TYPE = (("Content-Type", "text/plain"),)
RESPONSES = {
    "text": response(),
    "big": response(fields=(("Content-Type", "application/json"),), body=BIG, pieces=7),
    "chunked": response(fields=(("Content-Type", "text/html; charset=utf-8"),), body=BIG,
                        framing="chunked", pieces=40),
    "until-close": response(body=BIG, framing="close", pieces=3),
    "etag-strong": response(fields=TYPE + (("ETag", '"v1-abc"'),)),
    "etag-weak": response(fields=TYPE + (("ETag", 'W/"v1-abc"'),)),
    "etag-empty": response(fields=TYPE + (("ETag", '""'),)),
    "etag-invalid": response(fields=TYPE + (("ETag", "v1-abc"),)),
    "etag-lower-w": response(fields=TYPE + (("ETag", 'w/"v1"'),)),
    "etag-two": response(fields=TYPE + (("ETag", '"a"'), ("ETag", '"b"'))),
    "encoded": response(fields=TYPE + (("Content-Encoding", "br"),)),
    "no-transform": response(fields=TYPE + (("Cache-Control", "public, No-Transform"),)),
    "no-transform-2": response(fields=TYPE + (("Cache-Control", "max-age=5"),
                                              ("Cache-Control", "no-transform"))),
    "transformx": response(fields=TYPE + (("Cache-Control", "no-transformx"),)),
    "multipart": response(fields=(("Content-Type", "Multipart/mixed; boundary=x"),)),
    "image": response(fields=(("Content-Type", "image/png"),)),
    "no-type": response(fields=()),
    "two-types": response(fields=(("Content-Type", "image/png"), ("Content-Type", "text/plain"))),
    "vary": response(fields=TYPE + (("Vary", "Cookie"),)),
    "201": response("201 Created"),
    "203": response("203 Non-Authoritative Information"),
    "206": response("206 Partial Content"),
    "404": response("404 Not Found"),
    "204": response("204 No Content", framing="none"),
    "304": response("304 Not Modified", framing="none"),
    "empty": response(body=b""),
    "empty-chunked": response(body=b"", framing="chunked"),
    "http10": response(version="HTTP/1.0"),
}
BODIES = {"big": BIG, "chunked": BIG, "until-close": BIG, "empty": b"", "empty-chunked": b""}


def serve(conn) -> None:
    """Answer each request with RESPONSES[path], saying in X-Seen-AE which
    Accept-Encoding reached the server (`compression offload` removes it)."""
    while True:
        request = conn.read_request()
        if request is None:
            return
        name = request.url.lstrip("/").split("?")[0]
        if name == "truncated":  # announces 4 pieces, sends 2, dies
            conn.send(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                      b"Content-Length: %d\r\n\r\n" % (len(BIG) * 4) + BIG + BIG)
            return
        if name == "trickle":  # a piece, then the next one only once the client has the first
            conn.send(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                      b"Transfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n" % (len(TEXT), TEXT))
            conn.server.go.wait(TIMEOUT)
            conn.send(b"%x\r\n%s\r\n0\r\n\r\n" % (len(TEXT), TEXT))
            continue
        pieces, closes = RESPONSES[name]
        seen = ",".join(request.headers_named("Accept-Encoding"))
        head = pieces[0].replace(b"\r\n", f"\r\nX-Seen-AE: [{seen}]\r\n".encode(), 1)
        conn.send(head)
        for piece in pieces[1:]:
            conn.send(piece)
        if closes:
            return


# ------------------------------------------------------------------ the client


class Reply:
    """One response as the client got it: fields lower-cased, body de-chunked."""

    def __init__(self):
        self.status = 0
        self.fields: list[tuple[str, str]] = []
        self.body = b""
        self.complete = False

    def values(self, name: str) -> list[str]:
        return [v for k, v in self.fields if k == name]

    def decoded(self) -> tuple[bytes | None, str]:
        """The body with its Content-Encoding undone, and the format found."""
        coding = self.values("content-encoding")
        if not coding:
            return self.body, "plain"
        try:
            if coding == ["gzip"]:
                return zlib.decompressobj(31).decompress(self.body), "gzip"
            if coding == ["deflate"]:
                try:
                    return zlib.decompressobj(15).decompress(self.body), "zlib"
                except zlib.error:
                    return zlib.decompressobj(-15).decompress(self.body), "raw"
        except zlib.error:
            return None, "broken"
        return self.body, f"unknown {coding}"


class ReplyParser:
    """httptools on the client side. llhttp cannot know that a reply answers
    HEAD: such a reply ends with its head, and nothing is parsed after it (the
    tests send HEAD last)."""

    def __init__(self, heads: list[bool]):
        self.heads = heads  # per expected reply: does it answer a HEAD?
        self.replies: list[Reply] = []
        self._parser = httptools.HttpResponseParser(self)
        self._stopped = False

    def feed(self, data: bytes) -> None:
        if self._stopped:
            return
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserCallbackError:
            self._stopped = True  # the HEAD reply is complete

    def on_message_begin(self):
        self.replies.append(Reply())

    def on_header(self, name, value):
        self.replies[-1].fields.append((name.decode().lower(), value.decode()))

    def on_headers_complete(self):
        reply = self.replies[-1]
        reply.status = self._parser.get_status_code()
        if self.heads[len(self.replies) - 1]:
            reply.complete = True
            raise StopIteration  # ends the parse: no body follows

    def on_body(self, body):
        self.replies[-1].body += body

    def on_message_complete(self):
        self.replies[-1].complete = True

    def closed(self) -> None:
        """The proxy closed: that ends a body framed by neither Content-Length
        nor chunked (llhttp would need an end-of-input call httptools lacks)."""
        reply = self.replies[-1] if self.replies else None
        if (reply is not None and not reply.complete and reply.status not in (204, 304)
                and not reply.values("content-length") and not reply.values("transfer-encoding")):
            reply.complete = True

    @property
    def done(self) -> bool:
        return len(self.replies) == len(self.heads) and self.replies[-1].complete


def exchange(port: int, requests: list[bytes], together: bool = False) -> list[Reply]:
    """Send requests on one connection (one after the other's reply, or all at
    once: pipelined) and read the replies until the last is complete or the
    proxy closes."""
    parser = ReplyParser([r.startswith(b"HEAD ") for r in requests])
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as sock:
        if together:
            sock.sendall(b"".join(requests))
        for index, request in enumerate(requests):
            if not together:
                sock.sendall(request)
            while len(parser.replies) <= index or not parser.replies[index].complete:
                try:
                    data = sock.recv(65536)
                except (ConnectionError, TimeoutError):
                    data = b""
                if not data:
                    parser.closed()
                    return parser.replies
                parser.feed(data)
    return parser.replies


def request(path: str, accept: str | None = "gzip, deflate;q=0.5", method: str = "GET",
            version: str = "1.1", close: bool = True, **fields: str) -> bytes:
    lines = [f"{method} /{path} HTTP/{version}", "Host: api.example"]
    if accept is not None:
        lines.append(f"Accept-Encoding: {accept}")
    lines += [f"{k.replace('_', '-')}: {v}" for k, v in fields.items()]
    if close:
        lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def summary(reply: Reply, path: str, head: bool = False) -> dict:
    """What the comparison looks at (module docstring)."""
    body, found = reply.decoded()
    sent = b"" if head or reply.status in (204, 304) else BODIES.get(path, TEXT)
    return {
        "status": reply.status,
        "content-encoding": reply.values("content-encoding"),
        "format": found,
        "vary": reply.values("vary"),
        "etag": reply.values("etag"),
        "chunked": reply.values("transfer-encoding") == ["chunked"],
        "content-length": bool(reply.values("content-length")),
        "server saw": reply.values("x-seen-ae"),
        "body intact": body == sent,
        "complete": reply.complete,
    }


# ------------------------------------------------------------------ the cases

# (request, response path) per case: every response with a client accepting
# gzip and deflate, then request variants on a small and a big body.
CASES = {f"response-{name}": (request(name), name) for name in RESPONSES}
VARIANTS = {
    "no-accept-encoding": {"accept": None},
    "gzip": {"accept": "gzip"},
    "star": {"accept": "*"},
    "br-only": {"accept": "br"},
    "q-values": {"accept": "gzip;q=0.2, deflate;q=0.8"},
    "q-zero": {"accept": "gzip;q=0, deflate;q=0"},
    "identity": {"accept": "identity"},
    "mozilla4": {"User_Agent": "Mozilla/4.0 (compatible; MSIE 6.0; Windows NT 5.1)"},
    "msie6-sv1": {"User_Agent": "Mozilla/4.0 (compatible; MSIE 6.0; Windows NT 5.1; SV1)"},
    "msie7": {"User_Agent": "Mozilla/4.0 (compatible; MSIE 7.0; Windows NT 6.0)"},
    "modern-browser": {"User_Agent": "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Firefox/128.0"},
    "http-1.0": {"version": "1.0"},
    "head": {"method": "HEAD"},
    "request-no-transform": {"Cache_Control": "no-transform"},
}
for variant, options in VARIANTS.items():
    for path in ("text", "big"):
        CASES[f"{variant}-{path}"] = (request(path, **options), path)
ACCEPT_TWICE = (b"GET /text HTTP/1.1\r\nHost: h\r\nAccept-Encoding: br\r\n"
                b"Accept-Encoding: gzip\r\nConnection: close\r\n\r\n")
CASES["accept-encoding-twice"] = (ACCEPT_TWICE, "text")

TYPES = "text/html text/plain application/json"
CONFIGS = {
    # the usual Horizon / API setting
    "listen-gzip-types": f"""
listen app
    bind 127.0.0.1:@PORT@
    compression algo gzip
    compression type {TYPES}
    server s @SERVER@
""",
    # settings from defaults, frontend and backend combined: the backend's
    # inherited algorithm list shadows the frontend's, the frontend's types
    # apply, offload applies from the frontend
    "defaults-frontend-backend": f"""
defaults
    mode http
    timeout connect 2s
    timeout client 5s
    timeout server 5s
    compression algo gzip
frontend fe
    bind 127.0.0.1:@PORT@
    compression algo deflate
    compression type {TYPES}
    compression offload
    default_backend be
backend be
    server s @SERVER@
""",
    # deflate in both formats, identity when nothing matches, no type list
    "deflate-identity": """
frontend fe
    bind 127.0.0.1:@PORT@
    compression algo raw-deflate deflate identity
    default_backend be
backend be
    compression offload
    server s @SERVER@
""",
}


def run_cases(cfg: str) -> dict[str, dict[str, dict]]:
    """{case: {proxy: summary}} for every case under both proxies."""
    results: dict[str, dict[str, dict]] = {case: {} for case in CASES}
    with scripted_backend(serve) as server:
        for name, binary in PROXIES.items():
            port = free_port()
            text = PRELUDE + cfg.replace("@PORT@", str(port)).replace("@SERVER@", server.address)
            with run_haproxy(text, binary=binary):
                for case, (data, path) in CASES.items():
                    replies = exchange(port, [data])
                    assert replies, (name, case)
                    results[case][name] = summary(replies[0], path, data.startswith(b"HEAD"))
    return results


@pytest.fixture(scope="module", params=sorted(CONFIGS))
def compared(request):
    return request.param, run_cases(CONFIGS[request.param])


# Where HAProxy's body is wrong and haply's is not: compared but for the body.
HAPROXY_DEFECTS = {
    # libslz writes a gzip header in front of an empty "deflate" body
    ("deflate-identity", "response-empty-chunked"): ("format", "body intact"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_same_answer_as_haproxy(compared, case):
    config, results = compared
    theirs, ours = results[case]["haproxy"], results[case]["haply"]
    assert ours["body intact"] and ours["complete"], (config, case, ours)
    for name in HAPROXY_DEFECTS.get((config, case), ()):
        del theirs[name], ours[name]
    assert ours == theirs, (config, case)


def test_the_cases_compress_and_not(compared):
    """The comparison means something: some answers are compressed, some not."""
    _, results = compared
    codings = {tuple(r["haply"]["content-encoding"]) for r in results.values()}
    assert ("gzip",) in codings or ("deflate",) in codings
    assert () in codings


# ------------------------------------------------------------ never broken

ROBUST = """
listen app
    bind 127.0.0.1:@PORT@
    compression algo gzip
    server s @SERVER@
"""


def both(exercise) -> dict:
    """exercise(port, server) under each proxy on ROBUST; {proxy: result}."""
    results = {}
    for name, binary in PROXIES.items():
        with scripted_backend(serve) as server:
            server.go = threading.Event()
            port = free_port()
            text = PRELUDE + ROBUST.replace("@PORT@", str(port)).replace("@SERVER@", server.address)
            with run_haproxy(text, binary=binary):
                results[name] = exercise(port, server)
    return results


SEQUENCE = [("big", "gzip"), ("text", None), ("chunked", "gzip"), ("until-close", "gzip")]


def sequence_requests() -> tuple[list[bytes], list[str]]:
    # the last one (until close) ends the connection
    return ([request(path, accept, close=False) for path, accept in SEQUENCE],
            [path for path, _ in SEQUENCE])


@pytest.mark.parametrize("together", [False, True], ids=["keep-alive", "pipelined"])
def test_keep_alive_and_pipelining_after_compressed_answers(together):
    data, paths = sequence_requests()

    def exercise(port, server):
        replies = exchange(port, data, together=together)
        return [summary(reply, path) for reply, path in zip(replies, paths)]

    results = both(exercise)
    assert results["haply"] == results["haproxy"]
    assert len(results["haply"]) == len(SEQUENCE)
    assert all(r["body intact"] and r["complete"] for r in results["haply"])
    assert [r["content-encoding"] for r in results["haply"]] == [["gzip"], [], ["gzip"], []]


def test_server_dying_mid_body_truncates_the_compressed_answer():
    """The client must see the answer broken: no last chunk, connection closed.
    What haply sent before is all the server sent, compressed (HAProxy 2.6.12
    sends some of it uncompressed inside the gzip stream, so only haply's
    bytes are decoded)."""

    def exercise(port, server):
        reply = exchange(port, [request("truncated", "gzip")])[0]
        return {"status": reply.status, "coding": reply.values("content-encoding"),
                "complete": reply.complete, "chunked": reply.values("transfer-encoding"),
                "body": reply.body}

    results = both(exercise)
    ours = results["haply"].pop("body")
    results["haproxy"].pop("body")
    assert results["haply"] == results["haproxy"] == {
        "status": 200, "coding": ["gzip"], "complete": False, "chunked": ["chunked"]}
    assert zlib.decompressobj(31).decompress(ours) == BIG + BIG


def test_client_leaving_mid_body_harms_nothing():
    def exercise(port, server):
        with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as sock:
            sock.sendall(request("chunked", "gzip"))
            assert sock.recv(100).startswith(b"HTTP/1.1 200")
        time.sleep(0.2)
        reply = exchange(port, [request("big", "gzip")])[0]
        return summary(reply, "big")

    results = both(exercise)
    assert results["haply"] == results["haproxy"]
    assert results["haply"]["body intact"]


def test_a_trickling_body_reaches_the_client_as_it_comes():
    """The server sends its second piece only once the client has decoded
    some of the first: a proxy that held compressed data back would time out
    here. haply flushes the compressor after every read, so the client has the
    whole first piece; libslz (HAProxy) keeps the last bits of a flush back."""

    def exercise(port, server):
        parser = ReplyParser([False])
        inflate = zlib.decompressobj(31)
        first = b""
        with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as sock:
            sock.sendall(request("trickle", "gzip"))
            deadline = time.monotonic() + TIMEOUT
            while not first and time.monotonic() < deadline:
                parser.feed(sock.recv(65536))
                if parser.replies:
                    first += inflate.decompress(parser.replies[0].body)
                    parser.replies[0].body = b""
            sock.settimeout(0.2)  # the rest of that flush, if it came in two reads
            try:
                parser.feed(sock.recv(65536))
            except TimeoutError:
                pass
            sock.settimeout(TIMEOUT)
            first += inflate.decompress(parser.replies[0].body)
            parser.replies[0].body = b""
            server.go.set()
            while not parser.done:
                data = sock.recv(65536)
                if not data:
                    break
                parser.feed(data)
        whole = first + inflate.decompress(parser.replies[0].body)
        return {"first": first, "whole": whole == TEXT + TEXT,
                "coding": parser.replies[0].values("content-encoding")}

    results = both(exercise)
    for result in results.values():
        assert result.pop("whole") and result.pop("coding") == ["gzip"]
        assert result["first"] and TEXT.startswith(result["first"])
    assert results["haply"]["first"] == TEXT


# ---------------------------------------------------------------- services

SERVICES = """
frontend fe
    bind 127.0.0.1:@PORT@
    compression algo gzip
    monitor-uri /alive
    stats enable
    stats uri /stats
    http-request return status 200 content-type text/plain string ok-ok-ok if { path /return }
    http-request use-service prometheus-exporter if { path /metrics }
    default_backend be
backend be
    server s @SERVER@
"""


def test_what_the_proxy_answers_itself_is_compressed_as_haproxy_compresses_it():
    """HAProxy compresses its statistics page and exporter (services), not
    `http-request return` nor monitor-uri. (Uncompressed, HAProxy streams its
    pages chunked and haply sends them with a Content-Length: not compared.)"""
    paths = ["stats", "stats;csv", "metrics", "return", "alive"]

    def exercise(port, server):
        found = {}
        for path in paths:
            for accept in ("gzip", None):
                reply = exchange(port, [request(path, accept)])[0]
                body, _ = reply.decoded()
                coding = reply.values("content-encoding")
                found[path, accept] = (reply.status, coding, reply.values("vary"),
                                       bool(coding and reply.values("content-length")),
                                       reply.complete, body is not None and len(body) > 0)
        return found

    results = {}
    for name, binary in PROXIES.items():
        with scripted_backend(serve) as server:
            port = free_port()
            text = PRELUDE + SERVICES.replace("@PORT@", str(port)).replace("@SERVER@", server.address)
            with run_haproxy(text, binary=binary):
                results[name] = exercise(port, server)
    assert results["haply"] == results["haproxy"]
    assert results["haply"]["metrics", "gzip"][1] == ["gzip"]


# ---------------------------------------------------------------- counters

COUNTED = """
global
    stats socket @SOCK@ level admin
defaults
    mode http
    timeout connect 2s
    timeout client 5s
    timeout server 5s
frontend fe
    bind 127.0.0.1:@PORT@
    default_backend be
backend be
    compression algo identity gzip
    compression type text/ application/json
    server s @SERVER@
"""
# gzip, identity (no Accept-Encoding), a chunked input (one byte more each
# way), not compressed (an image: nothing counted), a HEAD (nothing)
TRAFFIC = [request("big", "gzip"), request("text", None), request("chunked", "gzip"),
           request("image", "gzip"), request("text", "gzip", method="HEAD"),
           request("empty-chunked", "gzip")]
COUNTERS = ("comp_in", "comp_out", "comp_byp", "comp_rsp")


def counters(binary: str) -> dict[str, dict[str, int]]:
    directory = tempfile.mkdtemp(prefix="comp-stats-")
    sock = os.path.join(directory, "admin.sock")
    try:
        with scripted_backend(serve) as server:
            port = free_port()
            text = (COUNTED.replace("@SOCK@", sock).replace("@PORT@", str(port))
                    .replace("@SERVER@", server.address))
            with run_haproxy(text, binary=binary):
                wait_socket(sock)
                for data in TRAFFIC:
                    assert exchange(port, [data])[0].complete
                time.sleep(0.2)  # the last stream is counted as it ends
                lines = [line for line in cli(sock, "show stat").split("\n") if line]
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    names = lines[0][2:].split(",")
    found = {}
    for line in lines[1:]:
        row = dict(zip(names, line.split(",")))
        found[f"{row['pxname']}/{row['svname']}"] = {k: row[k] for k in COUNTERS}
    return found


def test_compression_counters_as_haproxy_counts_them():
    theirs, ours = counters(PROXIES["haproxy"]), counters(PROXIES["haply"])
    assert set(ours) == set(theirs)
    for row in ("fe/FRONTEND", "be/BACKEND"):
        for name in ("comp_in", "comp_byp", "comp_rsp"):
            assert ours[row][name] == theirs[row][name], (row, name, ours, theirs)
        # compressed sizes differ (libslz and zlib), both well below what went in
        assert 0 < int(ours[row]["comp_out"]) < int(ours[row]["comp_in"]) // 4
        assert 0 < int(theirs[row]["comp_out"]) < int(theirs[row]["comp_in"]) // 4
    assert ours["fe/FRONTEND"]["comp_rsp"] == "4"
    assert ours["be/s"] == theirs["be/s"] == dict.fromkeys(COUNTERS, "")
