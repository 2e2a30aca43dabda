"""The HTTP request path alone, in one process: CPU time per request.

    python bench/request_path.py [--requests 20000] [--rounds 5] [--close] [--log]

wrk's figures on a shared 2-core machine move by tens of percent from one minute
to the next; this measures the part of haply's cost that is Python, with nothing
else running. The real `HttpSession` and `UpstreamConnection` (built by the real
`Engine` from the l7_keepalive scenario's haproxy.cfg: `option forwardfor`,
roundrobin over two servers) are driven through in-memory transports: wrk's
request goes in on the client side, nginx's answer (8 fields, 70-byte body) comes
back on the server side, and the bytes the proxy writes are checked once, then
counted. No socket, no event loop turn: what is left is parsing, routing,
balancing, rewriting, counting and timers, the same per-request work as under
wrk, minus the kernel's sends and receives (which both proxies pay).

--close sends `Connection: close` (a new client session per request, as
l7_close); --log adds `option httplog` to a UDP socket nobody reads;
--rate-limit adds a request rate limit per client address (a stick-table
storing http_req_rate, `http-request track-sc0 src` and a deny above a rate
never reached). The figure
is the best round's mean (least disturbed), in microseconds per request, with
the median beside it.

On a shared machine CPU time moves from run to run; instructions do not. Count
them with cachegrind for two request counts and take the difference, which
leaves start-up out (bench/RESULTS.md has the figures):

    valgrind --tool=cachegrind --cache-sim=no python3.11 bench/request_path.py \
        --rounds 1 --requests 1000      # then 3000; (I3000 - I1000) / 4000
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from haply.config import load  # noqa: E402
from haply.proxy.engine import Engine  # noqa: E402
from haply.proxy.upstream import UpstreamConnection  # noqa: E402

REQUEST = b"GET /small HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n"
CLOSE_REQUEST = b"GET /small HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nConnection: close\r\n\r\n"
BODY = b"x" * 70
RESPONSE = (b"HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nDate: Wed, 02 Dec 2026 18:00:00 GMT\r\n"
            b"Content-Type: application/octet-stream\r\nContent-Length: 70\r\n"
            b"Last-Modified: Wed, 02 Dec 2026 17:00:00 GMT\r\nConnection: keep-alive\r\n"
            b"ETag: \"5f0c-46\"\r\nAccept-Ranges: bytes\r\n\r\n" + BODY)


class MemoryTransport(asyncio.Transport):
    """Collects what is written; closing is recorded, nothing else happens."""

    def __init__(self, peer, sock):
        super().__init__()
        self.peer, self.sock = peer, sock
        self.written: list[bytes] = []
        self.closing = False

    def get_extra_info(self, name, default=None):
        return {"peername": self.peer, "sockname": self.sock}.get(name, default)

    def write(self, data):
        self.written.append(data)

    def writelines(self, data):
        self.written.extend(data)

    def close(self):
        self.closing = True

    def is_closing(self):
        return self.closing

    def pause_reading(self):
        pass

    def resume_reading(self):
        pass


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


RATE_LIMIT = """\
    stick-table type ip size 100k expire 30s store http_req_rate(10s)
    http-request track-sc0 src
    http-request deny deny_status 429 if { sc_http_req_rate(0) gt 1000000000 }
"""


def config_text(log_port: int | None, rate_limit: bool = False) -> str:
    logging = (f"    log 127.0.0.1:{log_port} local0\n    option httplog\n    log global\n"
               if log_port else "")
    return f"""global
    maxconn 20000
defaults
    mode http
    timeout connect 5s
    timeout client 30s
    timeout server 30s
    option forwardfor
{logging}frontend fe
    bind 127.0.0.1:{free_port()}
{RATE_LIMIT if rate_limit else ""}    default_backend be
backend be
    balance roundrobin
    server s1 127.0.0.1:9001
    server s2 127.0.0.1:9002
"""


class Harness:
    def __init__(self, log_port: int | None, rate_limit: bool = False):
        with tempfile.NamedTemporaryFile("w", suffix=".cfg", delete=False) as handle:
            handle.write(config_text(log_port, rate_limit))
        self.loop = uvloop.new_event_loop()  # as haply runs
        try:
            config = load([handle.name]).config
        finally:
            os.unlink(handle.name)
        self.engine = Engine(config, self.loop)
        self.engine.prepare()
        frontend = self.engine.frontends["fe"]
        self.factory = self.engine._factory(frontend)
        backend = self.engine.backends["be"]
        # One idle server connection per server, as after wrk's first requests.
        for state in self.engine.registry.servers("be"):
            upstream = UpstreamConnection(state, self.engine.pool)
            upstream.connection_made(MemoryTransport(state.address, ("127.0.0.1", 40000)))
            self.engine.pool.put(upstream)
        self.backend = backend
        self.session = None

    def new_session(self):
        session = self.factory()
        transport = MemoryTransport(("127.0.0.1", 50000), ("127.0.0.1", 8080))
        session.connection_made(transport)
        return session, transport

    def exchange(self, session, request: bytes) -> None:
        # each read ends a turn of the loop, which sends what the outbox holds
        send = self.engine.pool.outbox.send
        session.data_received(request)
        send()
        upstream = session.upstream
        upstream.data_received(RESPONSE)
        send()
        upstream.transport.written.clear()

    def check(self, close: bool) -> None:
        """One exchange, its bytes looked at: the benchmark measures real work."""
        session, transport = self.new_session()
        request = CLOSE_REQUEST if close else REQUEST
        session.data_received(request)
        self.engine.pool.outbox.send()
        upstream = session.upstream
        sent = b"".join(upstream.transport.written)
        assert sent.startswith(b"GET /small HTTP/1.1\r\n") and b"X-Forwarded-For: 127.0.0.1" in sent, sent
        upstream.data_received(RESPONSE)
        self.engine.pool.outbox.send()
        answer = b"".join(transport.written)
        assert answer.startswith(b"HTTP/1.1 200 OK\r\n") and answer.endswith(BODY), answer
        assert transport.closing == close
        upstream.transport.written.clear()
        session.close()

    def run(self, count: int, close: bool) -> float:
        """Seconds of CPU for count requests."""
        exchange = self.exchange
        start = time.process_time()
        if close:
            new_session = self.new_session
            for _ in range(count):
                session, transport = new_session()
                exchange(session, CLOSE_REQUEST)
                session.connection_lost(None)
        else:
            session, transport = self.new_session()
            written = transport.written
            for _ in range(count):
                exchange(session, REQUEST)
                written.clear()
            session.close()
        return time.process_time() - start


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--requests", type=int, default=20000)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--close", action="store_true", help="Connection: close on every request")
    p.add_argument("--log", action="store_true", help="option httplog to a UDP sink")
    p.add_argument("--rate-limit", action="store_true", help="track-sc0 src and a deny above a rate")
    args = p.parse_args()
    sink = None
    if args.log:
        sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sink.bind(("127.0.0.1", 0))
        sink.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 16)
    harness = Harness(sink.getsockname()[1] if sink else None, args.rate_limit)
    harness.check(args.close)
    harness.run(args.requests, args.close)  # warm-up
    gc.freeze()  # as haply does after start-up
    per_request = []
    for _ in range(args.rounds):
        per_request.append(harness.run(args.requests, args.close) / args.requests * 1e6)
    compiled = sorted(name for name, module in list(sys.modules.items())
                      if name.startswith("haply.")
                      and (getattr(module, "__file__", None) or "").endswith(".so"))
    print(f"{'close' if args.close else 'keep-alive'}{' + httplog' if args.log else ''}"
          f"{' + rate limit' if args.rate_limit else ''}: "
          f"{min(per_request):.2f} us/request (median {statistics.median(per_request):.2f}, "
          f"{args.rounds} rounds of {args.requests}; compiled: {', '.join(compiled) or 'none'})")
    if sink:
        sink.close()


if __name__ == "__main__":
    main()
