"""Clients that misbehave in every way a client can, all at once, while
well-behaved clients keep asking: haply answers every well-behaved request,
and once the misbehaving clients are gone it holds nothing of theirs (no
session, no descriptor, no queued request) and its memory settles.

Over plain HTTP, over TLS (where clients also misbehave in the handshake),
and in mode tcp (the same bytes, relayed without reading them).
The backend is nginx; the clients are sockets in threads, bounded in count
and time."""

from __future__ import annotations

import hashlib
import os
import random
import socket
import ssl
import struct
import textwrap
import threading
import time

import pytest

from tests.support.admin_cli import cli, stat_rows, wait_socket
from tests.support.certs import make_tls_files
from tests.support.haply_process import rss_kib, run_haply
from tests.support.nginx import nginx_available, run_nginx
from tests.support.ports import free_ports

pytestmark = pytest.mark.skipif(not nginx_available(), reason="nginx (Debian nginx-light) not installed")

BIG_SIZE = 4 << 20
ROUNDS_PER_KIND = 12          # misbehaving connections of each kind
WELL_BEHAVED_REQUESTS = 300   # per well-behaved client thread
DEADLINE = 60.0               # seconds for the whole exercise


def make_files(root) -> bytes:
    www = root / "www"
    www.mkdir()
    big = random.Random(7).randbytes(BIG_SIZE)
    (www / "big").write_bytes(big)
    (www / "small").write_bytes(b"small answer\n")
    return big


NGINX_SERVER = """\
    root {root}/www;
    client_max_body_size 0;
    location = /upload {{ return 200 "uploaded\\n"; }}
    location = /slow {{ return 200 "slow\\n"; }}
    """


def haply_config(port: int, servers: list[int], socket_path: str, pem=None, mode: str = "http") -> str:
    lines = "\n".join(f"  server web{i} 127.0.0.1:{p} maxconn 20" for i, p in enumerate(servers))
    config = textwrap.dedent(f"""\
        global
          stats socket {socket_path} level admin
        defaults
          mode {mode}
          retries 2
          option redispatch
          timeout connect 2s
          timeout client 3s
          timeout server 5s
          timeout queue 3s
          timeout http-request 2s
          timeout http-keep-alive 1s
        frontend web
          bind 127.0.0.1:{port}{f" ssl crt {pem}" if pem else ""}
          option forwardfor
          default_backend pool
        backend pool
          balance roundrobin
        """) + lines + "\n"
    if mode == "tcp":
        config = config.replace("  option forwardfor\n", "")
        config = "\n".join(line for line in config.splitlines() if "timeout http-" not in line) + "\n"
    return config


class Connector:
    """Connected sockets to the proxy: plain, or TLS with the handshake done
    (`raw` gives the TCP socket alone, for misbehaving in the handshake)."""

    def __init__(self, port: int, tls_context: ssl.SSLContext | None = None):
        self.port, self.tls_context = port, tls_context

    def raw(self) -> socket.socket:
        return socket.create_connection(("127.0.0.1", self.port), timeout=5)

    def __call__(self) -> socket.socket:
        sock = self.raw()
        if self.tls_context is None:
            return sock
        return self.tls_context.wrap_socket(sock, server_hostname="localhost")


def reset(sock: socket.socket) -> None:
    """Close with a TCP RST (SO_LINGER 0), as a killed client does."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def read_some(sock: socket.socket, limit: int) -> int:
    got = 0
    try:
        while got < limit:
            chunk = sock.recv(min(65536, limit - got))
            if not chunk:
                break
            got += len(chunk)
    except OSError:
        pass
    return got


# Each misbehaviour takes a connected socket and leaves it closed.

def half_head(sock):
    sock.sendall(b"GET /small HTTP/1.1\r\nHost: x\r\nUser-Ag")
    time.sleep(0.05)
    sock.close()


def half_head_reset(sock):
    sock.sendall(b"GET /small HTTP/1.1\r\nHost: x\r\n")
    reset(sock)


def upload_cut_short(sock):
    sock.sendall(b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n" + b"x" * 100_000)
    time.sleep(0.05)
    reset(sock)


def chunked_upload_cut_short(sock):
    sock.sendall(b"POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                 + b"4000\r\n" + b"y" * 0x4000 + b"\r\n" + b"4000\r\nyy")
    time.sleep(0.05)
    sock.close()


def download_abandoned(sock):
    sock.sendall(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
    read_some(sock, 64 << 10)
    reset(sock)


def download_half_closed(sock):
    sock.sendall(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
    sock.shutdown(socket.SHUT_WR)
    read_some(sock, 200 << 10)
    sock.close()


def slow_reader_gives_up(sock):
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.sendall(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
    for _ in range(5):
        read_some(sock, 4096)
        time.sleep(0.05)
    sock.close()


def garbage(sock):
    sock.sendall(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + os.urandom(200))
    read_some(sock, 4096)
    sock.close()


def bad_after_good(sock):
    sock.sendall(b"GET /small HTTP/1.1\r\nHost: x\r\n\r\nGET /small HTTP/1.1\r\nHost x\r\n\r\n")
    read_some(sock, 4096)
    sock.close()


def pipelined_unread(sock):
    sock.sendall(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n" * 10)
    time.sleep(0.05)
    reset(sock)


def connect_and_leave(sock):
    sock.close()


def request_then_reset(sock):
    sock.sendall(b"GET /small HTTP/1.1\r\nHost: x\r\n\r\n")
    reset(sock)


def oversized_head(sock):
    try:
        sock.sendall(b"GET /small HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 70000 + b"\r\n\r\n")
    except OSError:
        pass
    read_some(sock, 4096)
    sock.close()


def websocket_upgrade_cut(sock):
    sock.sendall(b"GET /small HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
                 b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
    sock.recv(1024)  # the answer's first bytes (nginx refuses the upgrade of a file)
    reset(sock)


# ... and in the TLS handshake, given the TCP socket alone.

def hello_cut_short(sock):
    sock.sendall(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + os.urandom(40))
    time.sleep(0.05)
    sock.close()


def hello_then_reset(sock, tls_context):
    outgoing = ssl.MemoryBIO()
    tls = tls_context.wrap_bio(ssl.MemoryBIO(), outgoing, server_hostname="localhost")
    try:
        tls.do_handshake()
    except ssl.SSLWantReadError:
        pass
    sock.sendall(outgoing.read())  # the ClientHello, and nothing after
    reset(sock)


def plain_http_on_tls_port(sock):
    sock.sendall(b"GET /small HTTP/1.1\r\nHost: x\r\n\r\n")
    read_some(sock, 4096)
    sock.close()


def handshake_then_silence_then_reset(sock, tls_context):
    tls = tls_context.wrap_socket(sock, server_hostname="localhost")
    time.sleep(0.05)
    reset(tls)


def close_notify_mid_request(sock, tls_context):
    tls = tls_context.wrap_socket(sock, server_hostname="localhost")
    tls.sendall(b"GET /small HTTP/1.1\r\nHost: x\r\n")
    try:
        tls.unwrap().close()
    except (OSError, ssl.SSLError):
        sock.close()


TLS_MISBEHAVIOURS = [hello_cut_short, hello_then_reset, plain_http_on_tls_port,
                     handshake_then_silence_then_reset, close_notify_mid_request]

MISBEHAVIOURS = [half_head, half_head_reset, upload_cut_short, chunked_upload_cut_short,
                 download_abandoned, download_half_closed, slow_reader_gives_up, garbage,
                 bad_after_good, pipelined_unread, connect_and_leave, request_then_reset,
                 oversized_head, websocket_upgrade_cut]


class Misbehaving(threading.Thread):
    def __init__(self, connector: Connector, kinds, seed: int):
        super().__init__(daemon=True)
        self.connector, self.kinds, self.random = connector, kinds, random.Random(seed)
        self.done = 0
        self.errors: list[str] = []

    def run(self):
        deadline = time.monotonic() + DEADLINE
        work = [kind for kind in self.kinds for _ in range(ROUNDS_PER_KIND)]
        self.random.shuffle(work)
        for kind in work:
            if time.monotonic() > deadline:
                self.errors.append("ran out of time")
                return
            try:
                if kind in TLS_MISBEHAVIOURS:
                    sock = self.connector.raw()
                    if "tls_context" in kind.__code__.co_varnames:
                        kind(sock, self.connector.tls_context)
                    else:
                        kind(sock)
                else:
                    kind(self.connector())
            except OSError:  # ssl.SSLError is one
                pass  # the proxy may cut a misbehaving client off: that is its right
            except Exception as exc:  # a defect in the test itself
                self.errors.append(f"{kind.__name__}: {exc!r}")
            self.done += 1


class WellBehaved(threading.Thread):
    """Keep-alive GETs and uploads whose answers are checked byte for byte."""

    def __init__(self, connector: Connector, big_digest: str, seed: int):
        super().__init__(daemon=True)
        self.connector, self.big_digest, self.random = connector, big_digest, random.Random(seed)
        self.ok = 0
        self.failures: list[str] = []

    def exchange(self, sock, request: bytes) -> tuple[int, bytes]:
        sock.sendall(request)
        reader = sock.makefile("rb")
        status = int(reader.readline().split()[1])
        length = None
        while (line := reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        body = reader.read(length) if length is not None else b""
        reader.close()
        return status, body

    def run(self):
        deadline = time.monotonic() + DEADLINE
        sock = None
        for _ in range(WELL_BEHAVED_REQUESTS):
            if time.monotonic() > deadline:
                self.failures.append("ran out of time")
                return
            choice = self.random.random()
            try:
                sock = sock or self.connector()
                if choice < 0.1:
                    status, body = self.exchange(sock, b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
                    good = status == 200 and hashlib.sha256(body).hexdigest() == self.big_digest
                elif choice < 0.2:
                    payload = os.urandom(self.random.randrange(1, 300_000))
                    status, body = self.exchange(sock, b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: %d"
                                                 b"\r\n\r\n%s" % (len(payload), payload))
                    good = status == 200 and body == b"uploaded\n"
                else:
                    status, body = self.exchange(sock, b"GET /small HTTP/1.1\r\nHost: x\r\n\r\n")
                    good = status == 200 and body == b"small answer\n"
            except (OSError, ValueError, IndexError) as exc:
                # the server may close an idle keep-alive connection between two
                # requests (timeout http-keep-alive); a request sent on a fresh
                # connection must not fail
                fresh = sock is None
                if sock:
                    sock.close()
                sock = None
                if fresh:
                    self.failures.append(repr(exc))
                continue
            if good:
                self.ok += 1
            else:
                self.failures.append(f"status {status}, {len(body)} bytes")
        if sock:
            sock.close()


def info(socket_path: str) -> dict:
    fields = {}
    for line in cli(socket_path, "show info").splitlines():
        name, _, value = line.partition(":")
        fields[name.strip()] = value.strip()
    return fields


def open_descriptors(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def wait_idle(socket_path: str, timeout: float) -> dict:
    """The proxy's counters once no session is left, or the last seen."""
    deadline = time.monotonic() + timeout
    while True:
        rows = stat_rows(socket_path)
        held = {f"{r['pxname']}/{r['svname']}": (r["scur"], r["qcur"]) for r in rows
                if (r["scur"] not in ("", "0") or r["qcur"] not in ("", "0"))}
        current = int(info(socket_path)["CurrConns"])
        if (not held and current == 0) or time.monotonic() > deadline:
            return {"held": held, "CurrConns": current}
        time.sleep(0.2)


@pytest.fixture(params=["http", "https", "tcp"])
def setup(request, tmp_path):
    big = make_files(tmp_path)
    first = free_ports(3)
    nginx_a, nginx_b, port = first, first + 1, first + 2
    socket_path = str(tmp_path / "stats.sock")
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    pem, kinds, connector = None, MISBEHAVIOURS, Connector(port)
    mode = "tcp" if request.param == "tcp" else "http"
    if request.param == "https":
        tls = make_tls_files(tmp_path)
        pem, kinds = tls.pem, MISBEHAVIOURS + TLS_MISBEHAVIOURS
        connector = Connector(port, ssl.create_default_context(cafile=str(tls.ca_file)))
    with run_nginx(tmp_path / "a", nginx_a, NGINX_SERVER.format(root=tmp_path)), \
            run_nginx(tmp_path / "b", nginx_b, NGINX_SERVER.format(root=tmp_path)), \
            run_haply(haply_config(port, [nginx_a, nginx_b], socket_path, pem, mode)) as proxy:
        wait_socket(socket_path)
        yield proxy, connector, kinds, socket_path, hashlib.sha256(big).hexdigest()


def test_misbehaving_clients_cost_nothing_once_gone(setup):
    proxy, connector, kinds, socket_path, big_digest = setup
    pid = proxy.process.pid

    # warm up the paths (and the pools) the exercise uses, then take the baseline
    warm = WellBehaved(connector, big_digest, seed=0)
    warm.run()
    assert warm.failures == [] and warm.ok == WELL_BEHAVED_REQUESTS
    assert wait_idle(socket_path, 10) == {"held": {}, "CurrConns": 0}
    descriptors_before, rss_before = open_descriptors(pid), rss_kib(pid)

    for repeat in range(2):
        bad = [Misbehaving(connector, kinds[i::3], seed=10 * repeat + i) for i in range(3)]
        good = [WellBehaved(connector, big_digest, seed=100 * repeat + i) for i in range(2)]
        for thread in bad + good:
            thread.start()
        for thread in bad + good:
            thread.join(DEADLINE + 10)
            assert not thread.is_alive(), "a client thread overran its deadline"

        for thread in good:
            assert thread.failures == [], thread.failures[:5]
            assert thread.ok == WELL_BEHAVED_REQUESTS
        for thread in bad:
            assert thread.errors == []
            assert thread.done == ROUNDS_PER_KIND * len(thread.kinds)

        # timeout client (3 s) bounds how long a silent half-open client may be held
        assert wait_idle(socket_path, 15) == {"held": {}, "CurrConns": 0}

    # idle server connections may stay pooled: at most one per server slot
    pool_allowance = 2 * 20
    assert open_descriptors(pid) <= descriptors_before + pool_allowance
    # a leak of one 4 MB answer's buffers per bad download would show here
    assert rss_kib(pid) - rss_before < 40_000, (rss_before, rss_kib(pid))

    # and the proxy still answers, with its counters consistent
    check = WellBehaved(connector, big_digest, seed=999)
    check.run()
    assert check.failures == [] and check.ok == WELL_BEHAVED_REQUESTS
    frontend = next(r for r in stat_rows(socket_path) if r["pxname"] == "web" and r["svname"] == "FRONTEND")
    if frontend["mode"] == "http":
        assert int(frontend["ereq"]) > 0  # the garbage and bad heads were counted as errors
    else:
        assert int(frontend["stot"]) >= 2 * len(kinds) * ROUNDS_PER_KIND
