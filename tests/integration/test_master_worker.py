"""The master process (`haply -W`, nbthread N): workers, reloads, supervision.

Everything runs for real: haply's master with its worker processes, echo
backends on loopback, an HTTP client loop, the master socket over a unix
socket, HAProxy-format runtime commands on the stats socket.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from tests.support.admin_cli import ask as send
from tests.support.client_loop import ClientLoop
from tests.support.haproxy_oracle import echo_backends, free_port, http_get
from tests.support.haply_process import HAPLY_BIN, run_haply


def master_config(port: int, sock: str, servers: str, workers: int = 2,
                  extra_global: str = "", extra_listen: str = "") -> str:
    return f"""\
global
    master-worker
    nbthread {workers}
    stats socket {sock} level admin
{extra_global}
defaults
    mode http
    timeout connect 2s
    timeout client 5s
    timeout server 5s
    timeout http-keep-alive 2s

listen app
    bind 127.0.0.1:{port}
    balance roundrobin
{extra_listen}{servers}
"""


def workers_of(master_sock: str) -> dict[int, int]:
    """index -> pid of the current workers, from `show proc`."""
    found = {}
    section = None
    if not os.path.exists(master_sock):
        return found  # the master opens its socket once its workers are ready
    for line in send(master_sock, "show proc").splitlines():
        if line.startswith("#"):
            section = line
            continue
        fields = line.split()
        if section == "# workers" and len(fields) >= 3 and fields[1] == "worker":
            found[int(fields[2])] = int(fields[0])
    return found


def wait_for(predicate, timeout: float = 10.0, step: float = 0.05):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(step)


def server_states(sock: str, command: str = "show servers state") -> dict[str, list[str]]:
    """server name -> fields of `show servers state` (prefix `@N ` for one worker)."""
    lines = send(sock, command).splitlines()[2:]
    return {fields[3]: fields for fields in (l.split() for l in lines) if len(fields) > 8}


def frontend_requests(stat_csv: str) -> int:
    """The requests the frontend answered 2xx: the start-up probe, a connection
    closed without a request, counts as a request answered 400 (as in HAProxy)."""
    lines = stat_csv.splitlines()
    header = lines[0].lstrip("# ").split(",")
    row = next(l.split(",") for l in lines if l.startswith("app,FRONTEND"))
    return int(row[header.index("hrsp_2xx")])


@pytest.fixture
def sockets(tmp_path):
    stats = str(tmp_path / "admin.sock")
    return stats, stats + ".master"


def test_workers_serve_and_stats_add_up(tmp_path, sockets):
    stats, master = sockets
    port, metrics = free_port(), free_port()
    with echo_backends(["s1", "s2"]) as (s1, s2):
        servers = f"    server s1 {s1.address}\n    server s2 {s2.address}\n"
        config = master_config(port, stats, servers) + f"""
frontend metrics
    bind 127.0.0.1:{metrics}
    http-request use-service prometheus-exporter if {{ path /metrics }}
"""
        with run_haply(config) as proxy:
            pids = wait_for(lambda: len(workers_of(master)) == 2 and workers_of(master))
            assert proxy.process.pid not in pids.values()
            assert all(os.getppid() != pid for pid in pids.values())
            for pid in pids.values():
                assert Path(f"/proc/{pid}/status").read_text().count(f"PPid:\t{proxy.process.pid}") == 1
            answers = [http_get(port).backend for _ in range(40)]
            assert answers.count("s1") + answers.count("s2") == 40
            # Each worker counts its own; every view shows the sum (the other
            # workers' rows are at most a stats period old).
            wait_for(lambda: frontend_requests(send(stats, "show stat")) == 40, timeout=5)
            # both workers took part (connections spread by SO_REUSEPORT): the
            # counts each one reports about itself add up to the total
            own = [frontend_requests(send(master, f"@{index} show stat")) for index in pids]
            assert sum(own) == 40 and all(own), own
            # /metrics, answered by whichever worker, shows the totals too
            def metric() -> float:
                text = http_get(metrics, "/metrics").body.decode()
                line = next(l for l in text.splitlines()
                            if l.startswith('haproxy_frontend_http_responses_total{proxy="app",code="2xx"}'))
                return float(line.split()[-1])
            for _ in range(4):  # whichever worker answers
                wait_for(lambda: metric() == 40, timeout=5)


def test_reload_under_load_loses_nothing_and_keeps_server_states(tmp_path, sockets):
    stats, master = sockets
    port = free_port()
    with echo_backends(["s1", "s2", "s3"]) as (s1, s2, s3):
        servers = (f"    server s1 {s1.address} check inter 200ms\n"
                   f"    server s2 {s2.address} check inter 200ms\n"
                   f"    server s3 {s3.address} check inter 200ms weight 10\n")
        with run_haply(master_config(port, stats, servers)):
            wait_for(lambda: len(workers_of(master)) == 2)
            send(stats, "set server app/s1 state maint")
            send(stats, "set server app/s3 weight 3")
            before = workers_of(master)
            with ClientLoop(port, seconds=90) as fresh, ClientLoop(port, keepalive=True, seconds=90) as kept:
                for n in range(20):
                    answer = send(master, "reload")
                    assert answer.startswith("Success=1"), answer
                    time.sleep(0.15)
                time.sleep(0.3)
            for loop in (fresh, kept):
                assert loop.result.failures == [], loop.result.failures[:5]
                assert loop.result.ok > 100
                assert "s1" not in loop.result.backends  # MAINT carried over every reload
            after = workers_of(master)
            assert set(after.values()).isdisjoint(before.values())
            states = server_states(stats)
            assert states["s1"][6] == "1"  # srv_admin_state: forced maintenance
            assert states["s3"][7] == "3"  # weight set at run time
            # the old workers are gone once their connections ended
            wait_for(lambda: len([l for l in send(master, "show proc").splitlines()
                                  if "old workers" in l]) == 0, timeout=10)


def test_reload_with_a_bad_configuration_keeps_the_old_one(tmp_path, sockets):
    stats, master = sockets
    port = free_port()
    with echo_backends(["s1"]) as (s1,):
        servers = f"    server s1 {s1.address}\n"
        with run_haply(master_config(port, stats, servers)) as proxy:
            wait_for(lambda: len(workers_of(master)) == 2)
            before = workers_of(master)
            good = Path(proxy.config_path).read_text()
            Path(proxy.config_path).write_text(good + "    bogus-keyword 1\n")
            answer = send(master, "reload")
            assert answer.startswith("Success=0")
            assert "haproxy.cfg:" in answer and "bogus-keyword" in answer
            assert workers_of(master) == before
            assert http_get(port).status == 200
            # a certificate that is not there: refused before any worker starts
            Path(proxy.config_path).write_text(good.replace(
                f"bind 127.0.0.1:{port}", f"bind 127.0.0.1:{port} ssl crt {tmp_path}/missing.pem"))
            answer = send(master, "reload")
            assert answer.startswith("Success=0") and "missing.pem" in answer
            assert workers_of(master) == before
            # `haply ctl reload` says so and fails
            ctl = subprocess.run([HAPLY_BIN, "ctl", "-S", stats, "reload"], capture_output=True,
                                 text=True, timeout=60, stdin=subprocess.DEVNULL)
            assert ctl.returncode == 1 and "missing.pem" in ctl.stderr
            assert workers_of(master) == before
            # SIGUSR2 and SIGHUP reload too, once the file is good again
            Path(proxy.config_path).write_text(good)
            proxy.process.send_signal(signal.SIGUSR2)
            wait_for(lambda: set(workers_of(master).values()).isdisjoint(before.values()))
            middle = workers_of(master)
            proxy.process.send_signal(signal.SIGHUP)
            wait_for(lambda: set(workers_of(master).values()).isdisjoint(middle.values()))
            assert http_get(port).status == 200


def test_a_killed_worker_is_replaced_and_no_connection_is_refused(tmp_path, sockets):
    stats, master = sockets
    port = free_port()
    with echo_backends(["s1"]) as (s1,):
        servers = f"    server s1 {s1.address}\n"
        with run_haply(master_config(port, stats, servers)) as proxy:
            wait_for(lambda: len(workers_of(master)) == 2)
            with ClientLoop(port, seconds=60) as loop:
                for _ in range(3):
                    victim = workers_of(master)[1]
                    os.kill(victim, signal.SIGKILL)
                    wait_for(lambda: workers_of(master).get(1) not in (None, victim))
                    time.sleep(0.3)
            # connections the killed worker had accepted die with it; none is
            # refused, and new ones queue on its socket until the new worker
            assert not any("refused" in f.lower() for f in loop.result.failures), loop.result.failures
            assert len(loop.result.failures) <= 3
            assert loop.result.ok > 10
            assert "exited with signal 9; restarting" in proxy.output()


def test_health_checks_run_once_per_interval_whatever_the_workers(tmp_path, sockets):
    stats, master = sockets
    port = free_port()
    accepted = []
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    listener.settimeout(0.2)
    check_port = listener.getsockname()[1]
    with echo_backends(["s1"]) as (s1,):
        servers = f"    server s1 {s1.address} check port {check_port} inter 100ms\n"
        with run_haply(master_config(port, stats, servers, workers=2)):
            wait_for(lambda: len(workers_of(master)) == 2)
            start = time.monotonic()
            while time.monotonic() - start < 2.0:
                try:
                    conn, _ = listener.accept()
                    accepted.append(time.monotonic())
                    conn.close()
                except socket.timeout:
                    pass
    listener.close()
    # one checker at 10 checks/s: about 20 in 2 s; two would make about 40
    assert 12 <= len(accepted) <= 28, len(accepted)


def test_health_changes_reach_every_worker(tmp_path, sockets):
    stats, master = sockets
    port = free_port()
    with echo_backends(["s1", "s2"]) as (s1, s2):
        servers = (f"    server s1 {s1.address} check inter 100ms fall 2 rise 2\n"
                   f"    server s2 {s2.address} check inter 100ms fall 2 rise 2\n")
        with run_haply(master_config(port, stats, servers)):
            wait_for(lambda: len(workers_of(master)) == 2)
            s2.stop()
            for index in (0, 1):
                wait_for(lambda: " s2 " in send(master, f"@{index} show servers state")
                         and any(l.split()[3] == "s2" and l.split()[5] == "0"
                                 for l in send(master, f"@{index} show servers state").splitlines()[2:]))
            answers = {http_get(port).backend for _ in range(20)}
            assert answers == {"s1"}
            # an operator's change made on one worker reaches the other
            send(master, "@1 set server app/s1 state drain")
            wait_for(lambda: any(l.split()[3] == "s1" and l.split()[6] == "8"
                                 for l in send(master, "@0 show servers state").splitlines()[2:]))


def test_stats_page_actions_reach_every_worker(tmp_path, sockets):
    stats, master = sockets
    port, page = free_port(), free_port()
    with echo_backends(["s1", "s2"]) as (s1, s2):
        servers = f"    server s1 {s1.address}\n    server s2 {s2.address}\n"
        config = master_config(port, stats, servers) + f"""
listen stats
    bind 127.0.0.1:{page}
    stats enable
    stats uri /
    stats admin if TRUE
"""
        with run_haply(config):
            wait_for(lambda: len(workers_of(master)) == 2)
            # whichever worker takes the POST, both must put s2 in maintenance
            conn = http.client.HTTPConnection("127.0.0.1", page, timeout=5)
            conn.request("POST", "/", body="b=app&s=s2&action=maint",
                         headers={"Content-Type": "application/x-www-form-urlencoded"})
            response = conn.getresponse()
            assert response.status == 303
            assert response.getheader("Location") == "/;st=DONE"
            conn.close()
            for index in (0, 1):
                wait_for(lambda: server_states(master, f"@{index} show servers state")
                         ["s2"][6] == "1", timeout=5)
            assert {http_get(port).backend for _ in range(10)} == {"s1"}


def test_certificates_are_read_again_on_reload(tmp_path, sockets):
    import ssl
    import trustme
    stats, master = sockets
    port = free_port()
    ca = trustme.CA()
    pem = tmp_path / "site.pem"

    def issue(name: str) -> None:
        cert = ca.issue_cert(name)
        pem.write_bytes(b"".join(b.bytes() for b in cert.cert_chain_pems) + cert.private_key_pem.bytes())

    def served_name() -> str:
        context = ssl.create_default_context()
        ca.configure_trust(context)
        context.check_hostname = False
        with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
            with context.wrap_socket(raw, server_hostname="x") as tls:
                return tls.getpeercert()["subjectAltName"][0][1]

    issue("before.example")
    with echo_backends(["s1"]) as (s1,):
        config = master_config(port, stats, f"    server s1 {s1.address}\n").replace(
            f"bind 127.0.0.1:{port}", f"bind 127.0.0.1:{port} ssl crt {pem}")
        with run_haply(config):
            wait_for(lambda: len(workers_of(master)) == 2)
            assert served_name() == "before.example"
            issue("after.example")
            assert send(master, "reload").startswith("Success=1")
            wait_for(lambda: served_name() == "after.example")


@contextlib.contextmanager
def master_process(tmp_path, sockets):
    """haply -W started by hand (the test signals or kills it), with its two
    workers up: (process, {index: worker pid}). Killed at the end if alive."""
    stats, master = sockets
    cfg = tmp_path / "h.cfg"
    with echo_backends(["s1"]) as (s1,):
        cfg.write_text(master_config(free_port(), stats, f"    server s1 {s1.address}\n"))
        proc = subprocess.Popen([HAPLY_BIN, "-W", "-db", "-f", str(cfg)],
                                stdin=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        pids = {}
        try:
            pids = wait_for(lambda: len(workers_of(master)) == 2 and workers_of(master))
            yield proc, pids
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            for pid in pids.values():
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass


def gone(pid: int) -> bool:
    return not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text()


def test_sigterm_stops_master_and_workers(tmp_path, sockets):
    _, master = sockets
    with master_process(tmp_path, sockets) as (proc, pids):
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
        assert all(gone(pid) for pid in pids.values())
        assert not os.path.exists(master)


def test_workers_stop_when_the_master_is_killed(tmp_path, sockets):
    with master_process(tmp_path, sockets) as (proc, pids):
        proc.kill()
        proc.wait()
        wait_for(lambda: all(gone(pid) for pid in pids.values()), timeout=10)


def test_reload_moves_listeners_and_ctl_reports_it(tmp_path, sockets):
    stats, master = sockets
    port, moved = free_port(), free_port()
    with echo_backends(["s1"]) as (s1,):
        servers = f"    server s1 {s1.address}\n"
        with run_haply(master_config(port, stats, servers)) as proxy:
            wait_for(lambda: len(workers_of(master)) == 2)
            text = Path(proxy.config_path).read_text()
            Path(proxy.config_path).write_text(text.replace(
                f"bind 127.0.0.1:{port}", f"bind 127.0.0.1:{moved}\n    bind 127.0.0.1:{port}"))
            ctl = subprocess.run([HAPLY_BIN, "ctl", "-S", stats, "reload"], capture_output=True,
                                 text=True, timeout=60, stdin=subprocess.DEVNULL)
            assert ctl.returncode == 0 and ctl.stdout.startswith("reloaded"), ctl
            assert http_get(moved).status == 200 and http_get(port).status == 200
            Path(proxy.config_path).write_text(text.replace(f"127.0.0.1:{port}", f"127.0.0.1:{moved}"))
            assert send(master, "reload").startswith("Success=1")
            assert http_get(moved).status == 200
            # the old address is closed once the workers that used it are gone
            def refused():
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    return False
                except ConnectionRefusedError:
                    return True
                except ConnectionResetError:
                    # the connection reached the listener's queue as the last
                    # process holding it closed it: ask again
                    return False
            wait_for(refused, timeout=10)


def test_old_workers_are_bounded_by_hard_stop_after(tmp_path, sockets):
    stats, master = sockets
    port = free_port()
    with echo_backends(["s1"]) as (s1,):
        config = master_config(port, stats, f"    server s1 {s1.address}\n", workers=1,
                               extra_global="    hard-stop-after 1s\n").replace(
            "listen app\n", "listen app\n    mode tcp\n    timeout client 60s\n    timeout server 60s\n")
        with run_haply(config):
            wait_for(lambda: len(workers_of(master)) == 1)
            (old,) = workers_of(master).values()
            held = socket.create_connection(("127.0.0.1", port), timeout=5)
            held.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            assert held.recv(100).startswith(b"HTTP/1.1 200")  # a live TCP session
            assert send(master, "reload").startswith("Success=1")
            started = time.monotonic()
            wait_for(lambda: gone(old), timeout=10)
            assert time.monotonic() - started < 3.0
            held.settimeout(5)
            while held.recv(65536):  # the rest of the answer, then the close
                pass
            held.close()
            assert http_get(port).status == 200


def test_each_change_is_mailed_once_whatever_the_workers(tmp_path, sockets):
    """E-mail alerts go from the worker that runs the checks only: a server
    going DOWN, and an operator's drain made on another worker, give one
    mail each (haply.alerts)."""
    from aiosmtpd import smtp  # a test extra: missing, the test fails
    from tests.support.health_backends import BackendThread

    subjects = []

    class Inbox:
        async def handle_DATA(self, server, session, envelope):
            subjects.extend(line for line in envelope.content.decode().split("\r\n")
                            if line.startswith("Subject: "))
            return "250 OK"

    async def start_mailer():
        import asyncio
        server = await asyncio.get_running_loop().create_server(lambda: smtp.SMTP(Inbox()), "127.0.0.1", 0)
        return server, server.sockets[0].getsockname()[1]

    stats, master = sockets
    port = free_port()
    thread = BackendThread()
    try:
        mailer, mailer_port = thread.run(start_mailer())
        with echo_backends(["s1", "s2"]) as (s1, s2):
            servers = (f"    email-alert mailers ops\n    email-alert from lb@example.org\n"
                       f"    email-alert to ops@example.org\n    email-alert level notice\n"
                       f"    server s1 {s1.address} check inter 100ms fall 2 rise 2\n"
                       f"    server s2 {s2.address} check inter 100ms fall 2 rise 2\n")
            config = master_config(port, stats, servers).replace(
                "listen app", f"mailers ops\n    mailer smtp1 127.0.0.1:{mailer_port}\n\nlisten app")
            with run_haply(config):
                wait_for(lambda: len(workers_of(master)) == 2)
                s2.stop()
                wait_for(lambda: subjects)
                send(master, "@1 set server app/s1 state drain")
                wait_for(lambda: len(subjects) >= 2)
                time.sleep(0.5)  # a copy from the other worker would have come by now
        thread.loop.call_soon_threadsafe(mailer.close)
    finally:
        thread.close()
    assert [s.split(",")[0].split(".")[0] for s in subjects] == [
        "Subject: [HAProxy Alert] Server app/s2 is DOWN",
        "Subject: [HAProxy Alert] Server app/s1 enters drain state"]


def mailing_config(port: int, stats: str, mailer: int, servers: str, timeout_mail: str) -> str:
    """master_config with app mailing its notices to one mailer."""
    return master_config(port, stats, "    email-alert mailers ops\n    email-alert from lb@example.org\n"
                                      "    email-alert to ops@example.org\n    email-alert level notice\n"
                                      + servers).replace(
        "listen app", f"mailers ops\n    mailer smtp1 127.0.0.1:{mailer}\n    timeout mail {timeout_mail}\n\n"
                      "listen app")


DRAINS = ("Subject: [HAProxy Alert] Server app/s1 enters drain state",
          "Subject: [HAProxy Alert] Server app/s2 enters drain state")


def test_alerts_queued_before_a_reload_are_sent_by_the_old_worker(tmp_path, sockets):
    """Two alerts wait in the checking worker's queue (a mailer that greets
    after 1 s) when a reload comes: the new workers take over at once, and
    the old one sends both before it exits. HAProxy 2.6 sends the one on its
    way and drops the other (observed); the new workers, inheriting the
    states, mail neither again."""
    from tests.support.health_backends import BackendThread
    from tests.support.mail_inbox import SlowMailer

    stats, master = sockets
    port = free_port()
    thread = BackendThread()
    try:
        mailer = SlowMailer(thread, delay=1.0)
        with echo_backends(["s1", "s2", "s3"]) as (s1, s2, s3):
            servers = (f"    server s1 {s1.address}\n    server s2 {s2.address}\n"
                       f"    server s3 {s3.address}\n")
            with run_haply(mailing_config(port, stats, mailer.port, servers, "3s")) as proxy:
                wait_for(lambda: len(workers_of(master)) == 2)
                old = workers_of(master)
                send(master, "@0 set server app/s1 state drain")
                send(master, "@1 set server app/s2 state drain")
                wait_for(lambda: mailer.connected, timeout=5)  # the first is on its way
                began = time.monotonic()
                assert send(master, "reload").startswith("Success=1")
                handover = time.monotonic() - began
                assert http_get(port).status == 200  # the new workers serve
                assert "# old workers" in send(master, "show proc") and not gone(old[0])
                assert not mailer.mails  # nothing sent yet: the handover did not wait for it
                wait_for(lambda: len(mailer.mails) == 2, timeout=10)
                wait_for(lambda: gone(old[0]), timeout=5)
                exited = time.monotonic() - began
                time.sleep(0.5)  # a copy from a new worker would have come by now
                output = proxy.output()
    finally:
        mailer.close()
        thread.close()
    assert [s.split(".")[0] for s in mailer.subjects()] == list(DRAINS)
    # one mail at a time, each greeted after 1 s: the second about 2 s after the first connection
    assert handover < 1.0 and 1.5 < exited < 5.0, (handover, exited)
    assert "not sent" not in output


def test_a_graceful_stop_sends_the_queued_alerts_bounded_by_timeout_mail(tmp_path, sockets):
    """SIGTERM to the master: the queued alerts go out before the workers
    exit, within the stop's grace. A mailer that never answers holds the stop
    up for one `timeout mail`, not one per alert; what it could not take is
    logged."""
    from tests.support.health_backends import BackendThread
    from tests.support.mail_inbox import SlowMailer

    stats, master = sockets
    thread = BackendThread()
    try:
        for delay, expected in ((0.5, list(DRAINS)), (None, [])):
            mailer = SlowMailer(thread, delay=delay)
            with echo_backends(["s1", "s2"]) as (s1, s2):
                servers = f"    server s1 {s1.address}\n    server s2 {s2.address}\n"
                with run_haply(mailing_config(free_port(), stats, mailer.port, servers, "2s")) as proxy:
                    wait_for(lambda: len(workers_of(master)) == 2)
                    send(stats, "set server app/s1 state drain")
                    send(stats, "set server app/s2 state drain")
                    wait_for(lambda: mailer.connected, timeout=5)
                    proxy.process.send_signal(signal.SIGTERM)
                    assert proxy.process.wait(timeout=10) == 0
                    # from the first mail's connection, made just before the signal
                    took = time.monotonic() - mailer.connected[0]
                    output = proxy.output()
            mailer.close()
            # the two commands may reach different workers: either may be mailed first
            assert sorted(s.split(".")[0] for s in mailer.subjects()) == expected
            if delay is not None:
                assert 0.9 < took < 3.5, took  # two greetings 0.5 s apart, not the 5 s grace
                assert "not sent" not in output
            else:
                assert 1.9 < took < 3.5, took  # one timeout mail of 2 s, not two
                assert "1 email alert(s) for mailer ops/smtp1 not sent: its mailer failed while stopping" \
                    in output, output[-2000:]
    finally:
        thread.close()


def test_a_reload_signalled_while_the_workers_start_waits_for_them(tmp_path, sockets):
    """SIGUSR2 as soon as the first workers are forked, before they are
    ready: the master reloads once they are, rather than die of the signal."""
    stats, master = sockets
    cfg = tmp_path / "h.cfg"
    port = free_port()
    with echo_backends(["s1"]) as (s1,):
        cfg.write_text(master_config(port, stats, f"    server s1 {s1.address}\n"))
        errors = tmp_path / "stderr"
        with open(errors, "wb") as stderr:
            proc = subprocess.Popen([HAPLY_BIN, "-W", "-db", "-f", str(cfg)],
                                    stdin=subprocess.DEVNULL, stderr=stderr)
        try:
            def forked() -> bool:
                found = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True,
                                       text=True, timeout=5)
                return bool(found.stdout.split())
            wait_for(forked, step=0.005)
            assert not os.path.exists(master)  # opened once the workers are ready: not yet
            proc.send_signal(signal.SIGUSR2)

            def reloads() -> int:  # the master's line of `show proc`: pid, type, reloads
                if not os.path.exists(master):
                    return 0
                return int(send(master, "show proc").splitlines()[1].split()[2])
            wait_for(lambda: proc.poll() is not None or reloads() == 1, timeout=20)
            assert proc.poll() is None, errors.read_text()
            assert http_get(port).status == 200
        finally:
            proc.terminate()
            proc.wait(timeout=15)


def test_old_workers_check_no_more_so_a_change_after_a_reload_is_logged_once(tmp_path, sockets):
    """A connection keeps the old workers after a reload; a server then goes
    DOWN: the new checking worker logs it, the old one has stopped its checks
    (HAProxy's old process stops its checks at the soft stop: observed)."""
    from tests.support.syslog_receiver import Receiver

    stats, master = sockets
    port = free_port()
    sink = Receiver()
    try:
        with echo_backends(["s1", "s2"]) as (s1, s2):
            servers = (f"    server s1 {s1.address} check inter 100ms fall 1 rise 1\n"
                       f"    server s2 {s2.address} check inter 100ms fall 1 rise 1\n")
            config = master_config(port, stats, servers,
                                   extra_global=f"    log 127.0.0.1:{sink.port} local0\n").replace(
                "listen app\n", "listen app\n    mode tcp\n    log global\n"
                                "    timeout client 60s\n    timeout server 60s\n")
            with run_haply(config):
                wait_for(lambda: len(workers_of(master)) == 2)
                held = []  # live TCP sessions, until the checking worker has one
                for _ in range(30):
                    conn = socket.create_connection(("127.0.0.1", port), timeout=5)
                    conn.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
                    assert conn.recv(100).startswith(b"HTTP/1.1 200")
                    held.append(conn)
                    if "CurrConns: 0" not in send(master, "@0 show info"):
                        break
                old = workers_of(master)
                assert send(master, "reload").startswith("Success=1")
                new = workers_of(master)
                assert "# old workers" in send(master, "show proc")  # still finishing
                sink.lines(100, timeout=0.3)  # what came before
                s2.stop()
                lines = sink.lines(1, timeout=5)
                lines += sink.lines(100, timeout=0.5)  # a copy would have come by now
                assert not gone(old[0])  # the old checking worker is still there
                for conn in held:
                    conn.close()
    finally:
        sink.close()
    downs = [line for line in lines if b"Server app/s2 is DOWN" in line]
    assert len(downs) == 1, lines
    assert f"[{new[0]}]:".encode() in downs[0]  # the new checking worker's
