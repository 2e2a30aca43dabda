"""`bind ... accept-proxy` and `tcp-request connection expect-proxy layer4`
against HAProxy 2.6, on one configuration and the same clients: curl
--haproxy-protocol (v1), a Python client sending v2 (PROXY and LOCAL, IPv4 and
IPv6, with TLVs) and v1, over plain and TLS binds, in mode http and mode tcp.
Compared: what the servers receive (X-Forwarded-For, the src/dst samples, the
PROXY header send-proxy forwards), the acl decisions on src, the server
`balance source` picks, the stick-table entries tracked on src, how a
missing, malformed or late header ends the connection, the frontends'
conn_tot and stot, and the log lines' client address fields (httplog, tcplog
and the lines of refused headers)."""

from __future__ import annotations

import re
import socket
import ssl
import struct
import subprocess
import time

import pytest

from haply.proxy.proxy_header import crc32c
from tests.support.admin_cli import ask, stat_rows, wait_no_sessions
from tests.support.certs import make_tls_files
from tests.support.haply_process import PROXIES
from tests.support.haproxy_oracle import echo_backends, free_port, haproxy_available, run_haproxy
from tests.support.proxy_recorder import SIGNATURE, Recorder
from tests.support.syslog_receiver import Receiver

pytestmark = pytest.mark.skipif(not haproxy_available(), reason="HAProxy oracle not installed")

TIMEOUT = 5.0  # any one client exchange
CLIENT_TIMEOUT = 1  # s: `timeout client`, which bounds the wait for a header


def config(ports: dict, pem, log_port: int, echo, hashed, recorder: int, stats: str) -> str:
    servers = "\n".join(f"    server {b.name} {b.address}" for b in hashed)
    return f"""
global
    log 127.0.0.1:{log_port} local0
    stats socket {stats} level admin
defaults
    mode http
    log global
    # the start-up probes connect and close at once: not logged, as they race
    option dontlognull
    timeout connect 2s
    timeout client {CLIENT_TIMEOUT}s
    timeout server 5s
frontend web
    bind 127.0.0.1:{ports['web']} accept-proxy
    bind 127.0.0.1:{ports['webs']} ssl crt {pem} accept-proxy
    option httplog
    option forwardfor
    stick-table type ip size 100 expire 1m store http_req_cnt
    http-request track-sc0 src
    http-request deny if {{ src 203.0.113.0/24 }}
    http-request set-header X-Seen %[src]_%[src_port]_%[dst]_%[dst_port]
    use_backend hashed if {{ path_beg /hash }}
    default_backend echo
frontend picked
    bind 127.0.0.1:{ports['picked']}
    tcp-request connection expect-proxy layer4 if {{ src 127.0.0.2 }}
    option httplog
    option forwardfor
    default_backend echo
frontend raw
    mode tcp
    bind 127.0.0.1:{ports['raw']} accept-proxy
    bind 127.0.0.1:{ports['raws']} ssl crt {pem} accept-proxy name secured
    option tcplog
    # the connection stage sees the real address, the later ones the header's
    tcp-request connection track-sc1 src table real_sources
    tcp-request session track-sc2 src table told_sources
    tcp-request session reject if {{ src 198.51.100.66 }}
    default_backend relay
backend echo
    server s {echo.address}
backend real_sources
    stick-table type ip size 10 expire 1m store conn_cnt
backend told_sources
    stick-table type ip size 10 expire 1m store conn_cnt
backend hashed
    balance source
{servers}
backend relay
    mode tcp
    server s 127.0.0.1:{recorder} send-proxy
"""


def v2(source: tuple, destination: tuple, command: int = 0x21, tlvs: bytes = b"") -> bytes:
    six = ":" in source[0]
    family = socket.AF_INET6 if six else socket.AF_INET
    addresses = (socket.inet_pton(family, source[0]) + socket.inet_pton(family, destination[0])
                 + struct.pack("!HH", source[1], destination[1]))
    body = addresses + tlvs
    return SIGNATURE + bytes([command, 0x21 if six else 0x11]) + struct.pack("!H", len(body)) + body


# ALPN "h2", AUTHORITY "example.test", NOOP: skipped by both
TLVS = b"\x01\x00\x02h2" + b"\x02\x00\x0cexample.test" + b"\x04\x00\x03\x00\x00\x00"


def exchange(port: int, header: bytes, request: bytes = b"", tls: ssl.SSLContext | None = None,
             source: str = "127.0.0.1") -> str:
    """Send header, then (over TLS when asked) request; what came back: the
    answer, "reset", or "closed" (an end of stream before any byte)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT, source_address=(source, 0))
    try:
        if header:
            sock.sendall(header)
        if tls is not None:
            sock = tls.wrap_socket(sock, server_hostname="localhost")
        if request:
            sock.sendall(request)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    except ConnectionResetError:
        return "reset"
    except ssl.SSLError as exc:
        return f"tls failed: {exc.reason}"
    finally:
        sock.close()
    return answer.decode("latin-1") if answer else "closed"


def seen(answer: str) -> str:
    """What the echo backend received: its status line, X-Forwarded-For and X-Seen."""
    if not answer.startswith("HTTP/"):
        return answer
    status = answer.split(" ", 2)[1]
    found = dict(re.findall(r"(?im)^(x-forwarded-for|x-seen): (.*?)\r?$", answer))
    found = {name.lower(): value for name, value in found.items()}
    # a real client's port is the kernel's pick
    sample = re.sub(r"^(127\.0\.0\.\d)_\d+_", r"\1_PORT_", found.get("x-seen", "-"))
    return f"{status} xff={found.get('x-forwarded-for', '-')} seen={sample}"


def curl(url: str, ca, interface: str) -> str:
    result = subprocess.run(
        ["curl", "-s", "-i", "--haproxy-protocol", "--interface", interface, "--cacert", str(ca),
         "--max-time", str(TIMEOUT), url], capture_output=True, timeout=TIMEOUT + 5)
    return seen(result.stdout.decode("latin-1")) if result.returncode == 0 else f"curl {result.returncode}"


def table_entries(stats: str, table: str) -> str:
    """Each entry's key and counts, without its address and the expiry's countdown."""
    return "\n".join(sorted(re.sub(r"^0x[0-9a-f]+: | use=\d+ exp=\d+", "", line)
                            for line in ask(stats, f"show table {table}").splitlines()
                            if line.startswith("0x")))


def http_backend(answer: str) -> str:
    found = re.search(r"(?im)^x-backend: (\S+)", answer)
    return found.group(1) if found else answer[:20]


def log_fields(line: str) -> str:
    """A log line's client address, proxies, and status or reason: what the
    two proxies must agree on (times and byte counts aside)."""
    line = re.sub(r"127\.0\.0\.(\d):\d+", r"127.0.0.\1:PORT", line)
    words = line.split(" ")
    client, frontend, rest = words[0], words[2], words[3:]
    if frontend.endswith(":") or rest[0].endswith(":"):  # a refused header: the whole line
        return " ".join([client, *words[2:]])
    if '"' in line:  # httplog: status and request line
        return f"{client} {frontend} {rest[0]} {rest[2]} {line.split(chr(34))[1]}"
    return f"{client} {frontend} {rest[0]} {rest[3]}"  # tcplog: termination state


def observe(binary: str, ports: dict, files, echo, hashed, recorder: Recorder, stats: str) -> dict:
    receiver = Receiver()
    tls = ssl.create_default_context(cafile=str(files.ca_file))
    get = b"GET /%s HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n"
    web, webs, raw, raws, picked = (ports[name] for name in ("web", "webs", "raw", "raws", "picked"))
    cfg = config(ports, files.pem, receiver.port, echo, hashed, recorder.port, stats)
    got: dict[str, str] = {}
    try:
        with run_haproxy(cfg, binary=binary):
            time.sleep(0.2)
            receiver.lines(100, timeout=0.3)  # nothing so far, but drained
            got["curl v1"] = curl(f"http://127.0.0.1:{web}/curl", files.ca_file, "127.0.0.2")
            got["curl v1 tls"] = curl(f"https://localhost:{webs}/curls", files.ca_file, "127.0.0.3")
            got["v2 ipv4 tlvs"] = seen(exchange(web, v2(("192.0.2.10", 4000), ("192.0.2.1", 8443),
                                                        tlvs=TLVS), get % b"v2-4"))
            got["v2 ipv6"] = seen(exchange(web, v2(("2001:db8::10", 4001), ("2001:db8::1", 443)),
                                           get % b"v2-6"))
            got["v2 local"] = seen(exchange(
                web, v2(("192.0.2.99", 9), ("192.0.2.98", 9), command=0x20, tlvs=TLVS),
                get % b"v2-local"))
            got["v2 tls"] = seen(exchange(webs, v2(("192.0.2.11", 4002), ("192.0.2.1", 443)),
                                          get % b"v2-tls", tls))
            got["v1 unknown"] = seen(exchange(web, b"PROXY UNKNOWN\r\n", get % b"unknown"))
            got["src acl deny"] = seen(exchange(web, b"PROXY TCP4 203.0.113.5 192.0.2.1 5000 80\r\n",
                                                get % b"denied"))
            got["malformed"] = exchange(web, b"PROXY TCP4 192.0.2.7\r\n", get % b"malformed")
            got["no header"] = exchange(web, get % b"plain")
            got["no header tls"] = exchange(webs, b"", get % b"plain", tls)
            checked = v2(("192.0.2.13", 4005), ("192.0.2.1", 80), tlvs=TLVS + b"\x03\x00\x04\0\0\0\0")
            checked = checked[:-4] + struct.pack("!I", crc32c(checked))
            got["crc32c"] = seen(exchange(web, checked, get % b"crc"))
            got["wrong crc32c"] = exchange(web, checked[:-1] + bytes([checked[-1] ^ 1]), get % b"crc")
            got["bad tlv"] = exchange(web, v2(("192.0.2.12", 4003), ("192.0.2.1", 80),
                                              tlvs=b"\x01\x00\x09h2"), get % b"badtlv")
            got["expect-proxy picked"] = seen(exchange(
                picked, b"PROXY TCP4 192.0.2.20 192.0.2.1 4004 80\r\n", get % b"picked",
                source="127.0.0.2"))
            got["expect-proxy not picked"] = seen(exchange(picked, b"", get % b"direct"))
            got["expect-proxy missing"] = exchange(picked, b"", get % b"missing", source="127.0.0.2")
            got["tcp v2"] = exchange(raw, v2(("198.51.100.7", 5555), ("192.0.2.1", 3306)),
                                     b"GET /tcp HTTP/1.0\r\n\r\n").split("\r\n")[0]
            got["tcp v1 tls"] = exchange(raws, b"PROXY TCP4 198.51.100.8 192.0.2.1 5556 3307\r\n",
                                         b"GET /tcps HTTP/1.0\r\n\r\n", tls).split("\r\n")[0]
            # the header alone: data unread at the close would make it a reset
            got["tcp session reject"] = exchange(raw, b"PROXY TCP4 198.51.100.66 192.0.2.1 5557 3306\r\n")
            began = time.monotonic()
            got["tcp late header"] = exchange(raw, b"")
            waited = time.monotonic() - began
            got["late header waited timeout client"] = str(CLIENT_TIMEOUT * 0.8 < waited < CLIENT_TIMEOUT + 2)
            got["tcp garbage"] = exchange(raw, b"garbage\r\n")
            got["balance source"] = " ".join(
                f"{last}:" + str(http_backend(exchange(web, v2((f"192.0.2.{last}", 4100), ("192.0.2.1", 80)),
                                                       get % b"hash"))) for last in range(30, 40))
            lines = receiver.messages(100, timeout=1.5)
            for table in ("web", "real_sources", "told_sources"):
                got[f"stick table {table}"] = table_entries(stats, table)
            wait_no_sessions(stats)
            got["counters"] = " ".join(f"{row['pxname']}:conn_tot={row['conn_tot']},stot={row['stot']}"
                                       for row in stat_rows(stats) if row["svname"] == "FRONTEND")
    finally:
        receiver.close()
    got["logs"] = "\n".join(sorted(log_fields(line) for line in lines))
    got["recorded"] = "\n".join(sorted(
        re.sub(rb"127\.0\.0\.1 127\.0\.0\.1 \d+ ", b"127.0.0.1 127.0.0.1 PORT ", data.split(b"\r\n")[0])
        .decode("latin-1") for data in recorder.seen if data))
    recorder.seen.clear()
    return got


def test_accept_proxy_as_haproxy(tmp_path):
    files = make_tls_files(tmp_path)
    ports = {name: free_port() for name in ("web", "webs", "raw", "raws", "picked")}
    recorder = Recorder()
    stats = str(tmp_path / "stats.sock")
    try:
        with echo_backends(["app", "h1", "h2", "h3"]) as (echo, *hashed):
            results = {name: observe(binary, ports, files, echo, hashed, recorder, stats)
                       for name, binary in PROXIES.items()}
    finally:
        recorder.close()
    haproxy, haply = results["haproxy"], results["haply"]
    for key in haproxy:
        assert haply[key] == haproxy[key], key
    # what HAProxy does, so that agreeing on nothing cannot pass
    web, webs = ports["web"], ports["webs"]
    assert haproxy["curl v1"] == f"200 xff=127.0.0.2 seen=127.0.0.2_PORT_127.0.0.1_{web}"
    assert haproxy["curl v1 tls"] == f"200 xff=127.0.0.3 seen=127.0.0.3_PORT_127.0.0.1_{webs}"
    assert haproxy["v2 ipv4 tlvs"] == "200 xff=192.0.2.10 seen=192.0.2.10_4000_192.0.2.1_8443"
    assert haproxy["v2 ipv6"] == "200 xff=2001:db8::10 seen=2001:db8::10_4001_2001:db8::1_443"
    assert haproxy["v2 local"] == haproxy["v1 unknown"] == \
        f"200 xff=127.0.0.1 seen=127.0.0.1_PORT_127.0.0.1_{web}"
    assert haproxy["v2 tls"] == "200 xff=192.0.2.11 seen=192.0.2.11_4002_192.0.2.1_443"
    assert haproxy["src acl deny"] == "403 xff=- seen=-"
    assert haproxy["malformed"] == haproxy["no header"] == haproxy["no header tls"] == "reset"
    assert haproxy["bad tlv"] == haproxy["tcp garbage"] == haproxy["wrong crc32c"] == "reset"
    assert haproxy["crc32c"] == "200 xff=192.0.2.13 seen=192.0.2.13_4005_192.0.2.1_80"
    assert haproxy["expect-proxy picked"] == "200 xff=192.0.2.20 seen=-"
    assert haproxy["expect-proxy not picked"] == "200 xff=127.0.0.1 seen=-"
    assert haproxy["expect-proxy missing"] == "reset"
    assert haproxy["tcp v2"] == haproxy["tcp v1 tls"] == "HTTP/1.1 200 OK"
    assert haproxy["tcp session reject"] == haproxy["tcp late header"] == "closed"
    assert haproxy["late header waited timeout client"] == "True"
    assert haproxy["recorded"] == ("PROXY TCP4 198.51.100.7 192.0.2.1 5555 3306\n"
                                   "PROXY TCP4 198.51.100.8 192.0.2.1 5556 3307")
    hashed = dict(pair.split(":") for pair in haproxy["balance source"].split())
    assert len(set(hashed.values())) == 3  # the header's sources, not the one real client
    entries = haproxy["stick table web"].split("\n")
    assert "key=192.0.2.10 http_req_cnt=1" in entries
    assert not any("2001:db8" in entry for entry in entries)  # no IPv6 source in a type ip table
    assert not any("192.0.2.99" in entry for entry in entries)  # LOCAL: the real address
    # every connection to raw's listeners, refused headers too; then the header's sources
    assert haproxy["stick table real_sources"] == "key=127.0.0.1 conn_cnt=7"
    assert haproxy["stick table told_sources"] == "\n".join([
        "key=198.51.100.66 conn_cnt=1", "key=198.51.100.7 conn_cnt=1", "key=198.51.100.8 conn_cnt=1"])
    # the refused headers count as connections, never as sessions
    assert haproxy["counters"] == "web:conn_tot=26,stot=19 picked:conn_tot=4,stot=3 raw:conn_tot=7,stot=2"
    assert haproxy["logs"].split("\n") == sorted([
        *(f"192.0.2.{last}:4100 web hashed/{hashed[str(last)]} 200 GET /hash HTTP/1.1"
          for last in range(30, 40)),
        "127.0.0.1:PORT picked echo/s 200 GET /direct HTTP/1.1",
        "127.0.0.1:PORT raw/1: Truncated PROXY protocol header received",
        "127.0.0.1:PORT web echo/s 200 GET /unknown HTTP/1.1",
        "127.0.0.1:PORT web echo/s 200 GET /v2-local HTTP/1.1",
        "127.0.0.1:PORT web/1: Received an invalid PROXY protocol header",
        "127.0.0.1:PORT web/1: Received something which does not look like a PROXY protocol header",
        "127.0.0.1:PORT web/2: Received something which does not look like a PROXY protocol header",
        "127.0.0.2:PORT picked/1: Received something which does not look like a PROXY protocol header",
        "127.0.0.2:PORT web echo/s 200 GET /curl HTTP/1.1",
        "127.0.0.3:PORT web~ echo/s 200 GET /curls HTTP/1.1",
        "192.0.2.10:4000 web echo/s 200 GET /v2-4 HTTP/1.1",
        "192.0.2.11:4002 web~ echo/s 200 GET /v2-tls HTTP/1.1",
        "192.0.2.12:4003 web/1: Received an invalid PROXY protocol header",  # named before the bad TLV
        "192.0.2.13:4005 web echo/s 200 GET /crc HTTP/1.1",
        "192.0.2.13:4005 web/1: Received an invalid PROXY protocol header",
        "192.0.2.20:4004 picked echo/s 200 GET /picked HTTP/1.1",
        "198.51.100.7:5555 raw relay/s --",
        "198.51.100.8:5556 raw~ relay/s --",
        "2001:db8::10:4001 web echo/s 200 GET /v2-6 HTTP/1.1",
        "203.0.113.5:5000 web web/<NOSRV> 403 GET /denied HTTP/1.1",
    ])
