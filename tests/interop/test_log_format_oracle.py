"""log-format's flags and variables against HAProxy 2.6 on the same requests:
`+X` (hexadecimal addresses, ports, timestamp and counters), `+Q` and `+E`
(quotes, and backslashes before '\\', '"' and ']'), the captures' quoting, the
'"' of a request written #22, the dates and timestamp, and the counters %lc
(lines of the frontend) and %rt (requests, a connection that sent nothing
included).
"""

from __future__ import annotations

import re
import socket
import ssl
import subprocess
import time

import pytest

from tests.support.certs import make_tls_files
from tests.support.haply_process import PROXIES
from tests.support.haproxy_oracle import free_port, haproxy_available, haproxy_config
from tests.support.observed import httplog_fields, observed_proxy, scripted

pytestmark = pytest.mark.skipif(not haproxy_available(), reason="HAProxy oracle not installed")

# The same on both proxies for the same request.
SAME = ("%{+X}o %ci %fi %{-X}o| %r | %HU | %HP | %HQ | %hr | %hrl | %{+Q}o %r %hr %hrl %{-Q}o"
        "| %{+E}o %HU %hr %hrl %{-E}o| %ST %tsc %ID %sslv")
# Checked against what the client knows: its port, the time.
OWN = "%{+X}o %cp %Ts %pid %lc %rt %{-X}o %cp %Ts %lc %rt | %T | %Tl"
TARGET = '/a"b]c\\d{e}?q="x]'


def server(conn) -> None:
    while conn.read_request() is not None:
        conn.respond(200, b"ok")


def logging_to(fmt: str, lines: str = "", quote: str = '"'):
    """A frontend logging with fmt (in quote), with its other lines, in front of s1."""
    def config(port: int, log_port: int, socket_path: str, address: str) -> str:
        return haproxy_config(f"""
frontend fe
    bind 127.0.0.1:{port}
    log 127.0.0.1:{log_port} local2 info
    log-format {quote}{fmt}{quote}
    {lines}
    default_backend be
backend be
    server s1 {address}
""")
    return config


config = logging_to(f"{SAME} ## {OWN}", "capture request header X-A len 40\n"
                    "    capture request header Host len 10")


def exchange(port: int, request: bytes) -> int:
    """Send request on a new connection (nothing when empty) and read to the
    end; the client's port."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        if request:
            sock.sendall(request)
            while sock.recv(65536):
                pass
        else:
            time.sleep(0.1)  # a connection that sends nothing (logged <BADREQ>)
        return sock.getsockname()[1]


def test_log_format_flags_and_variables_as_haproxy():
    request = (b"GET %s HTTP/1.1\r\nHost: h\r\nX-A: %s\r\nConnection: close\r\n\r\n"
               % (TARGET.encode(), TARGET.encode()))
    same, own = {}, {}
    for name, binary in PROXIES.items():
        with observed_proxy(binary, config, scripted(server)) as (port, receiver, _):
            before = time.time()
            ports = [exchange(port, request), exchange(port, b""), exchange(port, request)]
            lines = receiver.messages(3, timeout=2)
            after = time.time()
        same[name] = [line.split(" ## ")[0] for line in lines]
        own[name] = [line.split(" ## ")[1] for line in lines], ports, before, after
    # (the empty connection's <BADREQ> line differs: HAProxy writes <BADREQ>
    # for %HU, %HP and %HQ too, and nothing for the captures)
    assert same["haply"][::2] == same["haproxy"][::2]
    assert same["haproxy"][0] == (
        '7F000001 7F000001 | GET /a#22b]c\\d{e}?q=#22x] HTTP/1.1 | /a#22b]c\\d{e}?q=#22x] '
        '| /a#22b]c\\d{e} | ?q=#22x] | {/a#22b]c\\d#7Be#7D?q=#22x]|h} '
        '| /a#22b]c\\d#7Be#7D?q=#22x] h | "GET /a#22b]c\\d{e}?q=#22x] HTTP/1.1" '
        '"{/a#22b]c\\d#7Be#7D?q=#22x]|h}" "/a#22b]c\\d#7Be#7D?q=#22x]" "h" '
        '| /a#22b\\]c\\\\d{e}?q=#22x\\] {/a#22b\\]c\\\\d#7Be#7D?q=#22x\\]|h} '
        '/a#22b\\]c\\\\d#7Be#7D?q=#22x\\] h | 200 ---- - -')
    for name, (lines, ports, before, after) in own.items():
        counters = []
        for line, client_port in zip(lines, ports):
            decimal, gmt, local = line.split(" | ")
            cp_x, ts_x, pid_x, lc_x, rt_x, cp, ts, lc, rt = decimal.split()
            assert int(cp_x, 16) == int(cp) == client_port and len(cp_x) == 4, (name, line)
            assert int(ts_x, 16) == int(ts) and before - 1 <= int(ts) <= after, (name, line)
            assert len(pid_x) >= 4 and int(pid_x, 16) > 1, (name, line)
            assert int(lc_x, 16) == int(lc) and int(rt_x, 16) == int(rt), (name, line)
            assert gmt == time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(int(ts)))
            assert local == time.strftime("%d/%b/%Y:%H:%M:%S %z", time.localtime(int(ts)))
            counters.append((int(lc), int(rt)))
        # one more line and one more request each time, the empty connection's too
        assert [(lc - counters[0][0], rt - counters[0][1]) for lc, rt in counters] == \
            [(0, 0), (1, 1), (2, 2)], (name, counters)


def echo_unique_ids(conn) -> None:
    while (request := conn.read_request()) is not None:
        conn.respond(200, "|".join(value for name, value in request.headers
                                   if name.lower() == "x-unique-id").encode())


unique_id_config = logging_to(
    "%ID %{+Q}r", "unique-id-format %{+X}o\\ %ci:%cp_%fi:%fp_%Ts_%rt:%pid\n"
    "    unique-id-header X-Unique-ID\n    http-request set-header X-Copy %[unique-id]")


def test_unique_id_as_haproxy():
    """HAProxy's request-id recipe: the identifier reaches the server in
    unique-id-header (added after a field the client sent) and the log as
    %ID, the same for both."""
    request = b"GET /a HTTP/1.1\r\nHost: h\r\nX-Unique-ID: sent\r\nConnection: close\r\n\r\n"
    for name, binary in PROXIES.items():
        with observed_proxy(binary, unique_id_config, scripted(echo_unique_ids)) as (port, receiver, _):
            answers = []
            for _ in range(2):
                with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
                    sock.sendall(request)
                    answer = b""
                    while chunk := sock.recv(65536):
                        answer += chunk
                    answers.append((sock.getsockname()[1], answer.split(b"\r\n\r\n", 1)[1].decode()))
            lines = receiver.messages(2, timeout=2)
        for (client_port, sent), line in zip(answers, lines):
            client, own, identifier = sent.partition("|")
            assert client == "sent" and own == "|", (name, sent)
            assert line == f'{identifier} "GET /a HTTP/1.1"', (name, line)
            cp, fp, ts, rt, pid = re.fullmatch(
                r"7F000001:([0-9A-F]{4})_7F000001:([0-9A-F]{4})_([0-9A-F]{8})_([0-9A-F]{4}):"
                r"([0-9A-F]{4,})", identifier).groups()
            assert int(cp, 16) == client_port and abs(int(ts, 16) - time.time()) < 10, (name, line)
        (_, first), (_, second) = answers
        # numbered one after the other
        assert int(second.split(":")[-2][-4:], 16) == int(first.split(":")[-2][-4:], 16) + 1


request_parts_config = logging_to("%HM|%HU|%HP|%HQ|%HV|%r|%ST|%tsc")


def test_request_line_parts_of_a_request_that_could_not_be_read():
    """%HM %HU %HP %HQ %HV are <BADREQ>, like %r, for a connection that sent
    nothing, a head cut short and a malformed one."""
    requests = (b"", b"GET /cut?x=1 HTTP/1.1\r\nHo", b"GET /a?b HTTP/1.1\r\nBad Field\r\n\r\n",
                b"GET /a?b HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
    seen = {}
    for name, binary in PROXIES.items():
        with observed_proxy(binary, request_parts_config, scripted(server)) as (port, receiver, _):
            for request in requests:
                with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
                    if request:
                        sock.sendall(request)
                    time.sleep(0.1)
            seen[name] = receiver.messages(4, timeout=2)
    bad = "<BADREQ>|<BADREQ>|<BADREQ>|<BADREQ>|<BADREQ>|<BADREQ>|"
    assert seen["haproxy"] == [bad + "400|CR--", bad + "400|CR--", bad + "400|PR--",
                               "GET|/a?b|/a|?b|HTTP/1.1|GET /a?b HTTP/1.1|200|----"]
    assert seen["haply"] == seen["haproxy"]


def tcp_logging_to(fmt: str):
    """A mode tcp listener logging with fmt, its connections identified."""
    def config(port: int, log_port: int, socket_path: str, address: str) -> str:
        return haproxy_config(f"""
listen galera
    mode tcp
    bind 127.0.0.1:{port}
    log 127.0.0.1:{log_port} local2 info
    log-format "{fmt}"
    unique-id-format %{{+X}}o\\ %ci_%fi
    option dontlognull
    server s1 {address}
""")
    return config


def answer_once(conn) -> None:
    """One answer, then the server closes (a tcp listener ends with it)."""
    if conn.read_request() is not None:
        conn.respond(200, b"ok")


tcp_config = tcp_logging_to("%ci %fi:%{+X}o%fp%{-X}o %si %ST %tsc %ID [%hr]  %b/%s  %lc %rt ")


def test_mode_tcp_variables_and_separators_as_haproxy():
    """A mode tcp line: the frontend's and the server's addresses, the status
    (0) and four-letter termination state, %ID from unique-id-format, no text
    for a capture a tcp listener cannot make, runs of spaces as one, and
    counters from 0 (a connection that sent nothing is numbered, not logged)."""
    request = b"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"
    seen = {}
    for name, binary in PROXIES.items():
        with observed_proxy(binary, tcp_config, scripted(answer_once)) as (port, receiver, _):
            exchange(port, b"")
            exchange(port, request)
            exchange(port, request)
            lines = receiver.messages(2, timeout=2)
        seen[name] = [line.replace(f"{port:04X}", "PORT") for line in lines]
    # the start-up probe's connection came first: numbered 0, not logged; the
    # separator at the end is kept
    assert seen["haproxy"] == [
        "127.0.0.1 127.0.0.1:PORT 127.0.0.1 0 ---- 7F000001_7F000001 [] galera/s1 0 2 ",
        "127.0.0.1 127.0.0.1:PORT 127.0.0.1 0 ---- 7F000001_7F000001 [] galera/s1 1 3 "], seen
    assert seen["haply"] == seen["haproxy"]


@pytest.mark.parametrize("fmt", ["%ci %dst", "%ci %HM", "%ci %{+Q}r"])
def test_a_format_haproxy_refuses_is_refused_by_the_check(tmp_path, fmt):
    """An unknown variable, and one only an HTTP exchange has in a mode tcp
    listener: `-c` refuses both, at the line of the log-format."""
    path = tmp_path / "haproxy.cfg"
    text = tcp_logging_to(fmt)(free_port(), free_port(), "", "127.0.0.1:9")
    path.write_text(text)
    line = next(number for number, content in enumerate(text.splitlines(), 1)
                if "log-format" in content)
    results = {name: subprocess.run([binary, "-c", "-f", str(path)], capture_output=True, text=True,
                                    timeout=30, stdin=subprocess.DEVNULL)
               for name, binary in PROXIES.items()}
    assert results["haproxy"].returncode != 0, results["haproxy"].stderr
    assert results["haply"].returncode != 0
    assert f"haproxy.cfg:{line}: error: 'log-format': " in results["haply"].stderr


def answer_with_id(conn) -> None:
    while conn.read_request() is not None:
        conn.respond(200, b"ok", headers=[("X-Request-Id", 'req-"1"/2')])


# The JSON log recipe of HAProxy's own documentation and blog: the captures
# read back as samples and escaped for JSON.
json_config = logging_to(
    '{"ua":"%[capture.req.hdr(1),json(utf8s)]","ascii":"%[capture.req.hdr(1),json]",'
    '"strict":"%[capture.req.hdr(1),json(utf8)]","fixed":"%[capture.req.hdr(1),json(utf8ps)]",'
    '"raw":"%[capture.req.hdr(1)]","none":"%[capture.req.hdr(7)]",'
    '"id":"%[capture.res.hdr(0),json(utf8s)]",'
    '"line":"%[capture.req.method] %[capture.req.uri] %[capture.req.ver]"}',
    "capture request header Host len 20\n    capture request header User-Agent len 24\n"
    "    capture response header X-Request-Id len 40", quote="'")

USER_AGENTS = [b'curl/8.0 "quoted" back\\slash', "é€ ok".encode(), b"bad \xff byte",
               b"cut \xe2\x82", b"astral \xf0\x9f\x98\x80", b"overlong \xe0\x80\xaf",
               b"tab\there", b"a long value cut at its length"]


def test_capture_samples_and_json_converter_as_haproxy():
    seen = {}
    for name, binary in PROXIES.items():
        with observed_proxy(binary, json_config, scripted(answer_with_id)) as (port, receiver, _):
            for agent in USER_AGENTS:
                exchange(port, b"GET /v2.0/ports?x=1 HTTP/1.1\r\nHost: neutron\r\nUser-Agent: "
                         + agent + b"\r\nConnection: close\r\n\r\n")
            seen[name] = [line.split(b"]: ", 1)[1] for line in receiver.lines(len(USER_AGENTS), 2)]
    assert seen["haproxy"][1] == (
        '{"ua":"\\u00e9\\u20ac ok","ascii":"\\u00c3\\u00a9\\u00e2\\u0082\\u00ac ok",'
        '"strict":"\\u00e9\\u20ac ok","fixed":"\\u00e9\\u20ac ok","raw":"é€ ok","none":"-",'
        '"id":"req-\\"1\\"\\/2","line":"GET /v2.0/ports?x=1 HTTP/1.1"}\n').encode()
    assert seen["haply"] == seen["haproxy"]


def test_client_sni_and_unique_id_samples_as_haproxy(tmp_path):
    """%[ssl_fc_sni] (the name the client asked for, '-' without one) and
    %[unique-id], with the TLS version, on a TLS bind."""
    pem = make_tls_files(tmp_path, ("api.example",)).pem

    def config(port: int, log_port: int, socket_path: str, address: str) -> str:
        return haproxy_config(f"""
frontend fe
    bind 127.0.0.1:{port} ssl crt {pem}
    log 127.0.0.1:{log_port} local2 info
    unique-id-format %[ssl_fc_sni,upper]
    log-format "%[ssl_fc_sni] %[ssl_fc_sni,json] %[unique-id] %ID %sslv %ft"
    default_backend be
backend be
    server s1 {address}
""")
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    seen = {}
    for name, binary in PROXIES.items():
        with observed_proxy(binary, config, scripted(server)) as (port, receiver, _):
            for server_name in ("api.example", None):
                with context.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=5),
                                         server_hostname=server_name) as sock:
                    sock.sendall(b"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
                    while sock.recv(65536):
                        pass
            seen[name] = receiver.messages(2, timeout=2)
    assert seen["haproxy"] == ["api.example api.example API.EXAMPLE API.EXAMPLE TLSv1.3 fe~",
                               "- - - - TLSv1.3 fe~"], seen
    assert seen["haply"] == seen["haproxy"]


def slow_download(conn) -> None:
    """A large answer sent in two parts, 0.3 s apart; 404 for /missing."""
    while (request := conn.read_request()) is not None:
        if request.url.startswith("/missing"):
            conn.respond(404, b"no such image")
            continue
        conn.send(b"HTTP/1.1 200 OK\r\nContent-Length: 200000\r\n\r\n" + b"x" * 100000)
        time.sleep(0.3)
        conn.send(b"x" * 100000)


def test_logasap_logs_at_the_response_head_as_haproxy():
    """option logasap (a Glance image download logged as it starts): one line
    per request, written before the transfer ends, with '+' before the total
    time and the bytes; a short answer too."""
    def config(port, log_port, socket_path, address):
        return haproxy_config(f"""
frontend fe
    bind 127.0.0.1:{port}
    log 127.0.0.1:{log_port} local2 info
    option httplog
    option logasap
    default_backend be
backend be
    server s1 {address}
""")
    seen = {}
    for name, binary in PROXIES.items():
        with observed_proxy(binary, config, scripted(slow_download)) as (port, receiver, _):
            with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
                sock.sendall(b"GET /v2/images/a/file HTTP/1.1\r\nHost: glance\r\n\r\n")
                first = receiver.messages(1, timeout=2)  # before the download ends
                received = 0
                while received < 200000:
                    received += len(sock.recv(65536))
                sock.sendall(b"GET /missing HTTP/1.1\r\nHost: glance\r\nConnection: close\r\n\r\n")
                while sock.recv(65536):
                    pass
            lines = first + receiver.messages(1, timeout=2)
            receiver.lines(1, timeout=0.3) and pytest.fail(f"{name}: a second line for one request")
        seen[name] = [(re.search(r" (\S+/\S+/\S+/\S+/(\S+)) (\d+) (\S+) ", line).group(2, 3, 4),
                       httplog_fields(line)[2:]) for line in lines]
    # (the byte counts themselves differ: HAProxy forwards its first 15 KB
    # buffer, haply what the first read brought)
    normal = {name: [((ta[0], status, size[0]), rest) for (ta, status, size), rest in lines]
              for name, lines in seen.items()}
    assert normal["haply"] == normal["haproxy"] == [
        (("+", "200", "+"), ("----", '"GET /v2/images/a/file HTTP/1.1"')),
        (("+", "404", "+"), ("----", '"GET /missing HTTP/1.1"'))]


capture_rules_config = logging_to(
    "hr=%hr hs=%hs c0=%[capture.req.hdr(0)] c2=%[capture.req.hdr(2)] r0=%[capture.res.hdr(0)]",
    "capture request header Host len 10\n"
    "    declare capture request len 5\n"
    "    http-request capture method len 3\n"
    "    http-request capture path id 1\n"
    "    http-request capture req.hdr(x),upper len 4 if { hdr(x) -m found }\n"
    "    declare capture response len 6\n"
    "    capture response header X-Server len 4\n"
    "    http-response capture status,add(1000) id 0")


def answer_with_a_server_field(conn) -> None:
    while conn.read_request() is not None:
        conn.respond(200, b"ok", headers=[("X-Server", "origin")])


def test_capture_rules_as_haproxy():
    """Capture slots of `declare capture` and of `http-request capture ...
    len N` sit among the header captures in the order of the lines, and
    capture rules fill them, cut to their length."""
    requests = [b"GET /abcdefgh HTTP/1.1\r\nHost: example.com:8080\r\nx: low|er\r\nConnection: close\r\n\r\n",
                b"GET /z HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"]
    lines = {}
    for name, binary in PROXIES.items():
        with observed_proxy(binary, capture_rules_config, scripted(answer_with_a_server_field)) as (port, receiver, _):
            for request in requests:
                exchange(port, request)
            lines[name] = receiver.messages(2, timeout=2)
    assert lines["haply"] == lines["haproxy"]
    assert lines["haply"][0] == ("hr={example.co|/abcd|GET|LOW#7C} hs={1200|orig} c0=example.co c2=GET "
                                 "r0=1200")


log_level_config = logging_to(
    "%HU %ST",
    "http-request set-log-level silent if { path /health }\n"
    "    http-request set-log-level debug if { path /noisy }\n"
    "    http-response set-log-level err if { status 404 }\n"
    "    http-response set-log-level notice if { status 404 } { path /known }\n"
    "    http-response set-log-level notice if { status 200 } { var(txn.quiet) -m found }\n"
    "    http-request set-var(txn.quiet) str(1) if { path /b }")


def answer_by_path(conn) -> None:
    while (request := conn.read_request()) is not None:
        conn.respond(404 if "missing" in request.url or "known" in request.url else 200, b"ok")


def test_set_log_level_as_haproxy():
    """A silent request leaves no line; the others go out at the level the
    last applying rule gave (the target logs up to info: debug is dropped)."""
    paths = ["/health", "/a", "/noisy", "/missing", "/known", "/b"]
    lines = {}
    for name, binary in PROXIES.items():
        with observed_proxy(binary, log_level_config, scripted(answer_by_path)) as (port, receiver, _):
            for path in paths:
                exchange(port, f"GET {path} HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n".encode())
            lines[name] = [line.split(b">")[0] + b">" + line.split(b": ", 1)[1].rstrip(b"\n")
                           for line in receiver.lines(4, timeout=2)]
    assert lines["haply"] == lines["haproxy"]
    # local2 (18): info 150, err 147; `path` never matches in a response rule
    assert lines["haply"] == [b"<150>/a 200", b"<147>/missing 404", b"<147>/known 404", b"<149>/b 200"]
