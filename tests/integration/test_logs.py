"""Traffic and server-state logs to a real UDP syslog receiver, compared with
HAProxy 2.6 on the same config."""

from __future__ import annotations

import re
import socket
import threading
import time

import pytest

from tests.support.admin_cli import stat_counts, wait_no_sessions, wait_socket
from tests.support.haply_process import PROXIES
from tests.support.haproxy_oracle import (echo_backends, free_port, haproxy_config, http_get,
                                          run_haproxy)
from tests.support.scripted_backend import scripted_backend
from tests.support.syslog_receiver import RFC3164, Receiver

RFC5424 = re.compile(rb"<(\d{1,3})>1 \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?([+-]\d\d:\d\d|Z) "
                     rb"(\S+) (\S+) (\d+) - - (.*)")
HTTPLOG = re.compile(
    r"127\.0\.0\.1:(\d+) \[\d\d/\w{3}/\d{4}:\d\d:\d\d:\d\d\.\d{3}\] fe be/(\w+) "
    r"(-?\d+)/(-?\d+)/(-?\d+)/(-?\d+)/(\d+) (\d{3}) (\d+) - - (\S{4}) "
    r"(\d+)/(\d+)/(\d+)/(\d+)/(\d+) (\d+)/(\d+) \"(.*)\"")


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


def httplog_config(log_port: int, port: int, backends, fmt: str = "") -> str:
    prelude = haproxy_config("").replace(
        "    nbthread 1\n", f"    nbthread 1\n    log 127.0.0.1:{log_port} {fmt} local2 info\n")
    return prelude + f"""
frontend fe
    bind 127.0.0.1:{port}
    log global
    option httplog
    default_backend be
backend be
    server s1 {backends[0].address}
"""


@pytest.mark.parametrize("name", sorted(PROXIES))
def test_httplog_lines_match_haproxy(name, receiver):
    port = free_port()
    with echo_backends(["a"]) as backends:
        with run_haproxy(httplog_config(receiver.port, port, backends), PROXIES[name]):
            assert http_get(port, "/x?y=1").status == 200
            assert http_get(port, "/two").status == 200
            lines = receiver.lines(3)
    assert len(lines) == 3, lines
    # the start-up probe connected and closed without a request: both log it
    probe = RFC3164.fullmatch(lines[0].rstrip(b"\n")).group(6).decode()
    assert re.fullmatch(r"127\.0\.0\.1:\d+ \[.*\] fe fe/<NOSRV> -1/-1/-1/-1/\d+ 400 0 - - CR-- "
                        r"\d+/\d+/0/0/0 0/0 \"<BADREQ>\"", probe), probe
    lines = lines[1:]
    for raw in lines:
        assert raw.endswith(b"\n")
        raw = raw[:-1]
        match = RFC3164.fullmatch(raw)
        assert match, raw
        assert match.group(1) == b"150"  # local2.info
        assert match.group(4) == b"haproxy"
    messages = [RFC3164.fullmatch(raw.rstrip(b"\n")).group(6).decode() for raw in lines]
    first = HTTPLOG.fullmatch(messages[0])
    assert first, messages[0]
    assert first.group(2) == "s1" and first.group(8) == "200"
    assert first.group(10) == "----"
    assert first.group(18) == "GET /x?y=1 HTTP/1.1"
    assert int(first.group(9)) > 0  # bytes sent to the client
    # after the response the server and backend hold nothing (b, s of ac/fc/bc/sc/rc)
    assert first.group(13) == "0" and first.group(14) == "0"


@pytest.mark.parametrize("name", sorted(PROXIES))
def test_rfc5424_and_server_down_event(name, receiver):
    port, dead = free_port(), free_port()
    prelude = haproxy_config("").replace(
        "    nbthread 1\n",
        f"    nbthread 1\n    log 127.0.0.1:{receiver.port} format rfc5424 local0\n")
    config = prelude + f"""
backend be
    log global
    server s1 127.0.0.1:{dead} check inter 100ms fall 1
frontend fe
    bind 127.0.0.1:{port}
    default_backend be
"""
    with run_haproxy(config, PROXIES[name]):
        lines = receiver.lines(1, timeout=5)
    assert lines, "no log line for the server going down"
    match = RFC5424.fullmatch(lines[0].rstrip(b"\n"))
    assert match, lines[0]
    assert match.group(1) == b"129"  # local0.alert, as HAProxy sends DOWN
    assert match.group(7).startswith(b"Server be/s1 is DOWN, reason: Layer4 connection problem")


def test_json_and_dontlognull_tcp(receiver, tmp_path):
    port, tport = free_port(), free_port()
    sock = str(tmp_path / "admin.sock")
    from tests.support.haply_process import run_haply
    with echo_backends(["a"]) as backends:
        prelude = haproxy_config("").replace(
            "    nbthread 1\n",
            f"    nbthread 1\n    log 127.0.0.1:{receiver.port} format raw local0\n"
            f"    stats socket {sock}\n")
        config = prelude + f"""
frontend fe
    bind 127.0.0.1:{port}
    log global
    log-format json
    default_backend be
frontend tfe
    mode tcp
    bind 127.0.0.1:{tport}
    log global
    option tcplog
    option dontlognull
    default_backend tbe
backend be
    server s1 {backends[0].address}
backend tbe
    mode tcp
    server s1 {backends[0].address}
"""
        with run_haply(config):
            http_get(port, "/j")
            import json
            probe = receiver.lines(1)[0]  # the start-up probe's <BADREQ> line
            assert json.loads(probe)["status"] == 400
            data = json.loads(receiver.lines(1)[0])
            assert data["status"] == 200 and data["uri"] == "/j" and data["server"] == "s1"
            # an empty TCP connection is not logged, one with data is
            with socket.create_connection(("127.0.0.1", tport)):
                pass
            wait_socket(sock)
            # accepted and gone before the next one comes (its counts are not in that line)
            deadline = time.monotonic() + 5
            while stat_counts(sock, ("tfe",), ("stot",))["tfe/FRONTEND"]["stot"] == "0":
                assert time.monotonic() < deadline, "the empty connection was never accepted"
                time.sleep(0.01)
            wait_no_sessions(sock)
            assert http_get(tport, "/t").status == 200
            lines = receiver.lines(1)
            assert len(lines) == 1
            assert re.fullmatch(rb"127\.0\.0\.1:\d+ \[.*\] tfe tbe/s1 \d+/\d+/\d+ \d+ -- "
                                rb"\d+/\d+/0/0/0 0/0\n", lines[0]), lines[0]
            assert receiver.lines(1, timeout=0.5) == []  # nothing for the empty one


def test_unix_datagram_socket_like_dev_log(tmp_path):
    from tests.support.haply_process import run_haply
    path = str(tmp_path / "log")
    receiver = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    receiver.bind(path)
    receiver.settimeout(3)
    port = free_port()
    try:
        with echo_backends(["a"]) as backends:
            prelude = haproxy_config("").replace(
                "    nbthread 1\n", f"    nbthread 1\n    log {path} local3 info\n")
            config = prelude + f"""
frontend fe
    bind 127.0.0.1:{port}
    log global
    option httplog
    option dontlognull
    default_backend be
backend be
    server s1 {backends[0].address}
"""
            with run_haply(config):
                assert http_get(port, "/unix").status == 200
                line = receiver.recv(65535)
    finally:
        receiver.close()
    match = RFC3164.fullmatch(line.rstrip(b"\n"))
    assert match and match.group(1) == b"158"  # local3.info
    assert match.group(6).endswith(b'"GET /unix HTTP/1.1"')


@pytest.mark.parametrize("name", sorted(PROXIES))
def test_stdout_target_for_containers(name):
    port = free_port()
    with echo_backends(["a"]) as backends:
        prelude = haproxy_config("").replace(
            "    nbthread 1\n", "    nbthread 1\n    log stdout format raw daemon\n")
        config = prelude + f"""
frontend fe
    bind 127.0.0.1:{port}
    log global
    option httplog
    option dontlognull
    default_backend be
backend be
    server s1 {backends[0].address}
"""
        with run_haproxy(config, PROXIES[name]) as proxy:
            assert http_get(port, "/stdout").status == 200
            deadline = time.monotonic() + 3
            while time.monotonic() < deadline and "/stdout" not in proxy.output():
                time.sleep(0.05)
            output = proxy.output()
    lines = [line for line in output.splitlines() if "/stdout" in line]
    assert len(lines) == 1, output
    assert HTTPLOG.fullmatch(lines[0]), lines[0]  # raw: the message alone


ADMIN_SCRIPT = ["set server be/s1 state maint", "set server be/s1 state ready",
                "set server be/s1 state drain", "set server be/s1 state ready",
                "disable server be/s3", "enable server be/s3", "set server be/s1 weight 5",
                "set server be/s2 state maint", "set server be/s1 state maint",
                "set server be/s1 state ready", "set server be/s2 state ready"]


def admin_lines(binary: str, receiver: Receiver) -> list[bytes]:
    import os
    import shutil
    import tempfile
    from tests.support.admin_cli import cli, wait_socket
    directory = tempfile.mkdtemp(prefix="admin-log-")
    sock = os.path.join(directory, "admin.sock")
    port = free_port()
    try:
        with echo_backends(["a"]) as backends:
            prelude = haproxy_config("").replace(
                "    nbthread 1\n",
                f"    nbthread 1\n    stats socket {sock} level admin\n"
                f"    log 127.0.0.1:{receiver.port} local0\n")
            config = prelude + f"""
frontend fe
    bind 127.0.0.1:{port}
    default_backend be
backend be
    log global
    server s1 {backends[0].address}
    server s2 {backends[0].address}
    server s3 {backends[0].address} backup
"""
            with run_haproxy(config, binary):
                wait_socket(sock)
                receiver.lines(10, timeout=0.3)  # nothing expected before the script
                for command in ADMIN_SCRIPT:
                    cli(sock, command)
                lines = receiver.lines(len(ADMIN_SCRIPT), timeout=2)
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    return [RFC3164.fullmatch(line.rstrip(b"\n")).group(1) + b" "
            + RFC3164.fullmatch(line.rstrip(b"\n")).group(6) for line in lines]


def test_admin_state_changes_logged_as_haproxy(receiver):
    theirs = admin_lines(PROXIES["haproxy"], receiver)
    ours = admin_lines(PROXIES["haply"], receiver)
    assert len(theirs) >= 8
    assert ours == theirs


def test_stalled_sink_drops_and_counts_never_blocks(tmp_path):
    """A log receiver that never reads: requests keep flowing, lines are dropped
    and `show info` counts them."""
    import os
    from tests.support.admin_cli import cli, wait_socket
    from tests.support.haply_process import run_haply
    path = str(tmp_path / "log")
    sock = str(tmp_path / "admin.sock")
    stalled = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stalled.bind(path)
    port = free_port()
    try:
        with echo_backends(["a"]) as backends:
            prelude = haproxy_config("").replace(
                "    nbthread 1\n",
                f"    nbthread 1\n    stats socket {sock} level admin\n    log {path} len 4096 local0\n")
            config = prelude + f"""
frontend fe
    bind 127.0.0.1:{port}
    log global
    log-format "%ci:%cp %r %[src] padding-{'x' * 2000}"
    default_backend be
backend be
    server s1 {backends[0].address}
"""
            with run_haply(config):
                wait_socket(sock)
                started = time.monotonic()
                for _ in range(100):
                    assert http_get(port).status == 200
                elapsed = time.monotonic() - started
                info = dict(line.split(": ", 1) for line in cli(sock, "show info").splitlines()
                            if ": " in line)
    finally:
        stalled.close()
        os.unlink(path)
    # 101 lines (one per request, one for the start-up probe); the socket
    # buffer holds a few of them only
    assert int(info["DroppedLogs"]) > 80, info["DroppedLogs"]
    assert elapsed < 8


@pytest.mark.parametrize("name", sorted(PROXIES))
def test_log_tag_and_send_hostname(name, receiver):
    port = free_port()
    with echo_backends(["a"]) as backends:
        prelude = haproxy_config("").replace(
            "    nbthread 1\n",
            f"    nbthread 1\n    log 127.0.0.1:{receiver.port} local2 info\n"
            "    log-tag edge\n    log-send-hostname lb7\n")
        config = prelude + f"""
frontend fe
    bind 127.0.0.1:{port}
    log global
    log-tag fetag
    option httplog
    option dontlognull
    default_backend be
backend be
    server s1 {backends[0].address}
"""
        with run_haproxy(config, PROXIES[name]):
            assert http_get(port, "/tag").status == 200
            lines = receiver.lines(1)
    assert lines, "no log line"
    assert re.fullmatch(rb"<150>[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d lb7 fetag\[\d+\]: "
                        rb"127\.0\.0\.1:\d+ \[.*\] fe be/s1 .* \"GET /tag HTTP/1\.1\"\n",
                        lines[0]), lines[0]


def test_unsupported_log_format_is_a_located_config_error(tmp_path):
    import subprocess
    import sys
    from tests.support.haply_process import REPO_ROOT
    config = tmp_path / "haproxy.cfg"
    text = haproxy_config("") + f"""
frontend fe
    bind 127.0.0.1:{free_port()}
    log stdout local0
    log-format "%ci %[rand(9)]"
"""
    config.write_text(text)
    line = text.splitlines().index('    log-format "%ci %[rand(9)]"') + 1
    for mode in ("-c", "-db"):  # the check finds it, and so does a start
        result = subprocess.run([sys.executable, "-m", "haply", mode, "-f", str(config)],
                                capture_output=True, text=True, timeout=20, stdin=subprocess.DEVNULL,
                                env=dict(__import__("os").environ, PYTHONPATH=str(REPO_ROOT)))
        assert result.returncode == 1, (mode, result.stderr)
        assert (f"{config}:{line}: error: 'log-format': sample fetch 'rand(9)' is not supported"
                in result.stderr), (mode, result.stderr)


TCPLOG = re.compile(r"127\.0\.0\.1:\d+ \[\d\d/\w{3}/\d{4}:\d\d:\d\d:\d\d\.\d{3}\] (\S+) (\S+)/(\S+) "
                    r"(-?\d+)/(-?\d+)/(\d+) (\d+) (\S\S) (\d+)/(\d+)/(\d+)/(\d+)/(\d+) (\d+)/(\d+)")


@pytest.mark.parametrize("name", sorted(PROXIES))
def test_tcplog_fields_as_haproxy(name, receiver, tmp_path):
    port = free_port()
    sock = str(tmp_path / "admin.sock")
    with echo_backends(["a"]) as backends:
        prelude = haproxy_config("").replace(
            "    nbthread 1\n", f"    nbthread 1\n    log 127.0.0.1:{receiver.port} local0\n"
                              f"    stats socket {sock}\n")
        config = prelude + f"""
listen tcpin
    mode tcp
    bind 127.0.0.1:{port}
    log global
    option tcplog
    option dontlognull
    server t1 {backends[0].address}
"""
        with run_haproxy(config, PROXIES[name]):
            # The probe that waited for the port opened a session too (relayed
            # to the server in mode tcp): the counts below must not include it.
            wait_socket(sock)
            wait_no_sessions(sock)
            response = http_get(port, "/tcp")
            assert response.status == 200
            lines = receiver.lines(1)
    assert lines
    message = RFC3164.fullmatch(lines[0].rstrip(b"\n")).group(6).decode()
    match = TCPLOG.fullmatch(message)
    assert match, message
    fe, be, srv, _, _, _, size, term, ac, fc, bc, sc, rc, sq, bq = match.groups()
    assert (fe, be, srv, term) == ("tcpin", "tcpin", "t1", "--")
    assert int(size) > len(response.body)  # the whole response, head included
    assert (ac, fc, bc, sc, rc, sq, bq) == ("1", "1", "0", "0", "0", "0", "0")


class SlowBackend:
    """An HTTP server that answers each request after `delay` seconds, one
    thread per connection, so that a second request queues behind the first
    in a `maxconn 1` server (the queue time is what Tw reports)."""

    def __init__(self, delay: float) -> None:
        import threading
        self.delay = delay
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.address = "127.0.0.1:%d" % self.sock.getsockname()[1]
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        import threading
        self.sock.settimeout(0.2)
        while not self.stopped.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    def _answer(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(5)
            data = b""
            try:
                while b"\r\n\r\n" not in data:
                    chunk = conn.recv(65536)
                    if not chunk:
                        return
                    data += chunk
                self.stopped.wait(self.delay)
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n"
                             b"Connection: close\r\n\r\nok")
            except OSError:
                pass

    def close(self) -> None:
        self.stopped.set()
        self.thread.join(timeout=5)
        self.sock.close()


@pytest.mark.parametrize("name", sorted(PROXIES))
def test_httplog_tw_is_the_queue_time_and_tc_the_connect_time(name, receiver):
    """Three requests at once to a `maxconn 1` server that answers in 0.3 s:
    the first is not queued (Tw about 0), the later ones wait for the slot before
    theirs (Tw at least one answer's time); every connect is a fresh one on
    loopback (Tc a small non-negative number, not the -1 of "never tried")."""
    import threading
    delay = 0.3
    port = free_port()
    backend = SlowBackend(delay)
    try:
        config = httplog_config(receiver.port, port, [backend]).replace(
            f"server s1 {backend.address}", f"server s1 {backend.address} maxconn 1")
        with run_haproxy(config, PROXIES[name]):
            statuses = []
            clients = [threading.Thread(target=lambda i=i: statuses.append(
                http_get(port, f"/q{i}").status)) for i in range(3)]
            for client in clients:
                client.start()
                time.sleep(0.05)  # in this order, all before the first answer
            for client in clients:
                client.join(timeout=10)
            # and the start-up probe's <BADREQ> line, which both write
            lines = [line for line in receiver.lines(4) if b"<BADREQ>" not in line]
    finally:
        backend.close()
    assert statuses == [200, 200, 200]
    fields = []
    for raw in lines:
        match = HTTPLOG.fullmatch(RFC3164.fullmatch(raw.rstrip(b"\n")).group(6).decode())
        assert match, raw
        fields.append((match.group(18), int(match.group(4)), int(match.group(5)),
                       int(match.group(7)), int(match.group(6))))
    by_path = {request.split()[1]: (tw, tc, ta) for request, tw, tc, ta, _ in fields}
    # Tr is the server's own time, the queue left out: the last request waited
    # for two answers and then took one
    tr_last = next(tr for request, _, _, _, tr in fields if request.split()[1] == "/q2")
    assert tr_last < by_path["/q2"][0], fields
    assert sorted(by_path) == ["/q0", "/q1", "/q2"]
    assert 0 <= by_path["/q0"][0] < delay * 1000 * 0.5  # not queued (a millisecond at most)
    for path in ("/q1", "/q2"):
        tw, tc, ta = by_path[path]
        # queued behind at least one whole answer, then answered itself
        assert tw >= delay * 1000 * 0.8, (path, fields)
        assert ta >= tw + delay * 1000 * 0.8, (path, fields)
    assert all(0 <= tc < ta for tw, tc, ta in by_path.values()), fields


@pytest.mark.parametrize("name", sorted(PROXIES))
def test_tcplog_tw_is_the_wait_for_a_maxconn_slot(name, receiver):
    """mode tcp, a `maxconn 1` server answering in 0.3 s: the second
    connection waits in the queue for the first to end (Tw at least half an
    answer's time), the first does not (Tw about 0); both then connect (Tc >= 0)."""
    import threading
    delay = 0.3
    port = free_port()
    backend = SlowBackend(delay)
    try:
        prelude = haproxy_config("").replace(
            "    nbthread 1\n", f"    nbthread 1\n    log 127.0.0.1:{receiver.port} local0\n")
        config = prelude + f"""
listen tcpq
    mode tcp
    bind 127.0.0.1:{port}
    log global
    option tcplog
    option dontlognull
    server t1 {backend.address} maxconn 1
"""
        with run_haproxy(config, PROXIES[name]):
            statuses = []
            clients = [threading.Thread(target=lambda: statuses.append(
                http_get(port, "/tcp").status)) for _ in range(2)]
            for client in clients:
                client.start()
                time.sleep(0.05)
            for client in clients:
                client.join(timeout=10)
            lines = receiver.lines(2)
    finally:
        backend.close()
    assert statuses == [200, 200]
    timers = []
    for raw in lines:
        match = TCPLOG.fullmatch(RFC3164.fullmatch(raw.rstrip(b"\n")).group(6).decode())
        assert match, raw
        timers.append(tuple(int(match.group(i)) for i in (4, 5, 6)))  # Tw, Tc, Tt
    timers.sort()
    (first_tw, first_tc, _), (second_tw, second_tc, second_tt) = timers
    # the first is not queued (HAProxy may print a millisecond of its own)
    assert 0 <= first_tw < delay * 1000 * 0.5 <= second_tw, timers
    assert first_tc >= 0
    assert second_tc >= 0 and second_tt >= second_tw + delay * 1000 * 0.8, timers


CAPTURE_REQUESTS = [
    b"GET /a HTTP/1.1\r\nHost: example.org\r\nUser-Agent: a|b{c}\"d#e\xc3\xa9 f~\r\n"
    b"Cookie: x=1; SRVID=abcdefghijklmnop\r\nConnection: close\r\n\r\n",
    b"GET /b HTTP/1.1\r\nUser-Agent: one\r\nUser-Agent: two\r\nConnection: close\r\n\r\n",
    b"GET /set HTTP/1.1\r\nCookie: SRV=1\r\nConnection: close\r\n\r\n",
]


def capture_server(conn) -> None:
    request = conn.read_request()
    if request is None:
        return
    headers = [("Content-Type", "text/plain")]
    if request.url == "/set":
        headers.append(("Set-Cookie", "SRVNEW=value-of-it; path=/; HttpOnly"))
    conn.respond(200, b"ok\n", headers)


# status, %CC, %CS, termination state, %hr, %hs (httplog); termination state and
# everything from %CC on (clf: "CC" "CS" then each capture quoted)
CAPTURED = {
    "": re.compile(rb" (\d{3}) \d+ (\S+) (\S+) (\S{4}) \S+ \S+ (\{[^}]*\}) (\{[^}]*\}) \""),
    "clf": re.compile(rb" (\S{4})(?: \d+){7} (.*)$"),
}


@pytest.mark.parametrize("fmt", ["", "clf"])
def test_captures_logged_as_haproxy(fmt, receiver):
    """`capture request|response header` and `capture cookie`: the same braces
    (httplog) or quoted lists (clf), the same %CC/%CS, the same escaping."""
    from tests.interop.test_proxy_oracle import raw_exchange
    from tests.support.scripted_backend import scripted_backend

    seen = {}
    with scripted_backend(capture_server) as backend:
        for name, binary in sorted(PROXIES.items()):
            port = free_port()
            config = haproxy_config("") + f"""
frontend fe
    bind 127.0.0.1:{port}
    log 127.0.0.1:{receiver.port} local2 info
    option httplog {fmt}
    capture request header Host len 5
    capture request header X-Missing len 10
    capture request header User-Agent len 40
    capture response header Content-Type len 20
    capture cookie SRV len 12
    default_backend be
backend be
    server s1 {backend.address}
"""
            with run_haproxy(config, binary):
                receiver.lines(1, timeout=0.5)  # the start-up probe's line
                for request in CAPTURE_REQUESTS:
                    raw_exchange(port, request)
                lines = receiver.lines(len(CAPTURE_REQUESTS))
            assert len(lines) == len(CAPTURE_REQUESTS), lines
            # (a line is written when its stream ends: not always in request order)
            seen[name] = sorted(CAPTURED[fmt].search(line.rstrip(b"\n")).groups() for line in lines)
    assert seen["haply"] == seen["haproxy"]
    if not fmt:
        assert (b"200", b"SRVID=abcdef", b"-", b"----",
                b"{examp||a#7Cb#7Bc#7D#22d#23e#C3#A9 f~}", b"{text/plain}") in seen["haply"]
        # Set-Cookie captured as name=value
        assert any(line[1:3] == (b"SRV=1", b"SRVNEW=value") for line in seen["haply"])


@pytest.mark.parametrize("name", sorted(PROXIES))
def test_dontlog_normal_and_separate_errors(name, receiver):
    """Only what went wrong is logged (a 503 with no server left, SC--), at
    level err (local2.err: priority 147); the successful request is not."""
    port = free_port()
    with echo_backends(["a"]) as backends:
        config = haproxy_config("") + f"""
frontend fe
    bind 127.0.0.1:{port}
    log 127.0.0.1:{receiver.port} local2 info
    option httplog
    option dontlog-normal
    option log-separate-errors
    use_backend dead if {{ path_beg /dead }}
    default_backend be
backend be
    server s1 {backends[0].address}
backend dead
    retries 0
    server gone 127.0.0.1:{free_port()}
"""
        with run_haproxy(config, PROXIES[name]):
            receiver.lines(1, timeout=0.5)  # the start-up probe, if it logs
            assert http_get(port, "/fine").status == 200
            assert http_get(port, "/dead").status == 503
            lines = receiver.lines(2, timeout=1.5)
    assert len(lines) == 1, lines
    match = RFC3164.fullmatch(lines[0].rstrip(b"\n"))
    assert match.group(1) == b"147", lines[0]  # local2 (18) * 8 + err (3)
    assert b"fe dead/gone" in lines[0] and b" 503 " in lines[0] and b"SC--" in lines[0]


def test_tcplog_names_the_server_a_failed_connection_was_for(receiver):
    """As HAProxy does: `be/gone` and SC, not <NOSRV>, when every attempt to
    connect to the chosen server failed."""
    port = free_port()
    config = haproxy_config("").replace("mode http", "mode tcp") + f"""
frontend fe
    bind 127.0.0.1:{port}
    mode tcp
    log 127.0.0.1:{receiver.port} local2 info
    option tcplog
    default_backend be
backend be
    mode tcp
    retries 1
    server gone 127.0.0.1:{free_port()}
"""
    with run_haproxy(config, PROXIES["haply"]):
        receiver.lines(1, timeout=0.5)  # the start-up probe's line
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.sendall(b"x")
            sock.recv(10)  # closed by the proxy once it gives up
        lines = receiver.lines(1, timeout=3)
    assert lines and b" fe be/gone " in lines[0] and b" SC " in lines[0], lines


def sizes_server(conn) -> None:
    while (request := conn.read_request()) is not None:
        if request.url == "/big":
            conn.respond(200, b"x" * 300_000)
        else:
            time.sleep(0.5)  # answered while /big goes through the same frontend
            conn.respond(200, b"small")


@pytest.mark.parametrize("name", sorted(PROXIES))
def test_bytes_logged_are_the_requests_own_under_concurrency(name, receiver):
    """%B and %U count what went through this request's connection, not what
    the frontend moved meanwhile for other connections (haply counts wire
    bytes; HAProxy counts its internal form, a few bytes fewer per field)."""
    port = free_port()
    config = haproxy_config(f"""
frontend fe
    bind 127.0.0.1:{port}
    log 127.0.0.1:{receiver.port} local2 info
    log-format "%HU %B %U"
    default_backend be
backend be
    server s1 @SERVER@
""")
    exchanged = {}

    def ask(path: bytes, body: bytes) -> None:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            request = (b"POST %s HTTP/1.1\r\nHost: h\r\nContent-Length: %d\r\n"
                       b"Connection: close\r\n\r\n%s" % (path, len(body), body))
            sock.sendall(request)
            answer = b""
            while chunk := sock.recv(65536):
                answer += chunk
            exchanged[path.decode()] = (len(answer), len(request))

    with scripted_backend(sizes_server) as server:
        with run_haproxy(config.replace("@SERVER@", server.address), PROXIES[name]):
            small = threading.Thread(target=ask, args=(b"/small", b""))
            small.start()
            time.sleep(0.1)
            ask(b"/big", b"y" * 200_000)
            small.join(5)
            logged = {}
            for line in receiver.lines(3, timeout=3):
                words = line.rstrip(b"\n").rsplit(b" ", 3)[-3:]
                if words[0].startswith(b"/"):
                    logged[words[0].decode()] = (int(words[1]), int(words[2]))
    assert set(logged) == {"/small", "/big"}
    for path, (received, sent) in exchanged.items():
        sent_back, read = logged[path]
        # the same within a few bytes per field of the heads (HAProxy's count)
        assert received - 40 <= sent_back <= received, (path, logged, exchanged)
        assert sent - 40 <= read <= sent, (path, logged, exchanged)
