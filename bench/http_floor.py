"""The least an HTTP/1.1 relay in Python does per request: the floor under haply.

    python bench/run.py --floor --scenario l7_keepalive --pin

puts this relay in haply's place in bench/run.py (same haproxy.cfg, same nginx,
same wrk). It parses requests and responses with httptools, as haply does, adds
X-Forwarded-For, balances round-robin over the config's servers and reuses server
connections, on uvloop with asyncio.Protocol; and nothing else: no rules, no
timeouts, no retries, no counters, no logs, no body streaming, no error
handling. It is a measuring stick, not a proxy: what haply costs above it is the
price of its features, and what it costs itself is what any Python relay pays.

A client's `Connection: close` is not passed on: like haply, the relay keeps its
server connections and closes the client's once the answer is written. With
`ssl crt PEM` on the bind line it terminates TLS as haply does (uvloop's TLS
transport, Python's ssl module): `python bench/tls.py --floor`.

Usage: python bench/http_floor.py CONFIG (reads `bind` and `server` lines).
"""

from __future__ import annotations

import asyncio
import re
import ssl
import sys

import httptools
import uvloop


class Upstream(asyncio.Protocol):
    def __init__(self, relay: "Relay", port: int):
        self.relay, self.port = relay, port
        self.client: Client | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        if self.client.closing:  # the server was asked to keep the connection: say close
            data = data.replace(b"\r\nConnection: keep-alive\r\n", b"\r\nConnection: close\r\n", 1)
        self.client.transport.write(data)
        self.parser.feed_data(data)

    def on_message_complete(self):
        client, self.client = self.client, None
        if self.parser.should_keep_alive():
            self.relay.pools[self.port].append(self)
        else:
            self.transport.close()
        if client.closing and not client.pending:
            client.transport.close()
        else:
            client.send_next()

    def connection_lost(self, exc):
        pool = self.relay.pools[self.port]
        if self in pool:
            pool.remove(self)


class Client(asyncio.Protocol):
    def __init__(self, relay: "Relay"):
        self.relay = relay
        self.parser = httptools.HttpRequestParser(self)
        self.pending: list[bytes] = []
        self.busy = False
        self.closing = False  # the client asked for Connection: close
        self.data = b""

    def connection_made(self, transport):
        self.transport = transport
        ip = transport.get_extra_info("peername")[0]
        self.forwarded = b"X-Forwarded-For: " + ip.encode() + b"\r\n\r\n"

    def data_received(self, data):
        self.data = data
        self.parser.feed_data(data)

    def on_headers_complete(self):
        end = self.data.find(b"\r\n\r\n")  # wrk's requests: one head per read
        head = self.data[:end + 2]
        if not self.parser.should_keep_alive():  # wrk -H "Connection: close"
            head = head.replace(b"Connection: close\r\n", b"")
        self.pending.append(head + self.forwarded)

    def on_message_complete(self):
        self.closing = not self.parser.should_keep_alive()
        if not self.busy:
            self.send_next()

    def send_next(self):
        if not self.pending:
            self.busy = False
            return
        self.busy = True
        request = self.pending.pop(0)
        port = self.relay.next_port()
        pool = self.relay.pools[port]
        if pool:
            upstream = pool.pop()
            upstream.client = self
            upstream.transport.write(request)
        else:
            asyncio.get_running_loop().create_task(self.connect(port, request))

    async def connect(self, port: int, request: bytes):
        loop = asyncio.get_running_loop()
        _, upstream = await loop.create_connection(lambda: Upstream(self.relay, port),
                                                   "127.0.0.1", port)
        upstream.client = self
        upstream.transport.write(request)


class Relay:
    def __init__(self, servers: list[int]):
        self.servers = servers
        self.pools: dict[int, list[Upstream]] = {port: [] for port in servers}
        self.turn = 0

    def next_port(self) -> int:
        self.turn += 1
        return self.servers[self.turn % len(self.servers)]


def main() -> None:
    config = open(sys.argv[1]).read()
    bind = re.search(r"bind 127\.0\.0\.1:(\d+)(?: ssl crt (\S+))?", config)
    listen, pem = int(bind.group(1)), bind.group(2)
    context = None
    if pem is not None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(pem)
    servers = [int(p) for p in re.findall(r"server \S+ 127\.0\.0\.1:(\d+)", config)]
    relay = Relay(servers)
    uvloop.install()

    async def serve():
        server = await asyncio.get_running_loop().create_server(
            lambda: Client(relay), "127.0.0.1", listen, backlog=1024, ssl=context)
        async with server:
            await server.serve_forever()

    asyncio.run(serve())


if __name__ == "__main__":
    main()
