"""haply's checker beside HAProxy 2.6 on the OpenStack guide's Galera section.

The seed (openstack-ha-guide.haproxy.cfg, `listen galera_cluster`) runs one
active and two backup controllers, each checked on port 9200, where the
Galera `clustercheck` script answers HTTP 200 when the node is synced and 503
when it is not. Here the three controllers are 127.0.1.1-3 with one
clustercheck-style responder each on the same port, and `inter` is 100 ms
instead of 2 s so a run takes a second. Both programs check the same
responders from the same file; we flip the active node to "not synced" and
back, and time when each marks it DOWN and UP again.
"""

from __future__ import annotations

import asyncio
import re
import socket
import time
from pathlib import Path

import pytest
import uvloop

from haply.config import load
from haply.health import HealthChecker
from haply.runtime.registry import DOWN, UP, Registry
from tests.support.health_backends import Backend, BackendThread, ClusterCheck, closed_port
from tests.support.health_oracle import HAPROXY, HAProxyOracle
from tests.support.ports import free_port

pytestmark = pytest.mark.oracle

SEED = Path("/work/shared/fixtures/seed-configs/openstack-ha-guide.haproxy.cfg")
INTER_MS = 100
CONTROLLERS = ("127.0.1.1", "127.0.1.2", "127.0.1.3")


def seed_section(name: str) -> str:
    lines = SEED.read_text().splitlines()
    start = lines.index(f"listen {name}")
    end = start + 1
    while end < len(lines) and (lines[end].startswith((" ", "\t")) or not lines[end].strip()):
        end += 1
    return "\n".join(lines[start:end]).rstrip() + "\n"


def free_port_on_all(hosts) -> int:
    for _ in range(50):
        port = free_port()
        try:
            for host in hosts:
                s = socket.socket()
                s.bind((host, port))
                s.close()
            return port
        except OSError:
            continue
    raise RuntimeError("no common free port")


def adapt(section: str, check_port: int, bind_port: int, check_option: str) -> str:
    """The seed section on loopback: addresses, ports and interval changed only."""
    text = section.replace("10.0.0.11:3306", f"127.0.0.1:{bind_port}")
    for n, host in enumerate(CONTROLLERS, start=2):
        text = text.replace(f"10.0.0.1{n}:3306", f"{host}:3306")
    text = text.replace("check port 9200", f"check port {check_port}")
    text = text.replace("inter 2000", f"inter {INTER_MS}")
    text = text.replace("option mysql-check", check_option)
    return text


def full_config(section: str) -> str:
    return ("global\n    maxconn 4000\n\n"
            "defaults\n    log global\n    maxconn 4000\n    option redispatch\n"
            "    retries 3\n    timeout connect 1s\n    timeout client 1m\n"
            "    timeout server 1m\n    timeout check 500ms\n\n" + section)


@pytest.fixture
def galera(tmp_path):
    if HAPROXY is None:
        pytest.fail("HAProxy is not installed (Debian package haproxy)")
    thread = BackendThread()
    responders = []
    try:
        port = free_port_on_all(CONTROLLERS)
        for host in CONTROLLERS:
            check = ClusterCheck(synced=True)
            backend = Backend(thread, check, port=port)
            backend.host = host
            responders.append((check, backend))
        # Backend binds 127.0.0.1; bind each on its controller address instead
        for (check, backend), host in zip(responders, CONTROLLERS):
            _start_on(thread, backend, host)
        yield port, responders, tmp_path
    finally:
        thread.close()


def _start_on(thread, backend, host):
    async def _start():
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, backend.port))
        backend._server = await asyncio.start_server(backend._handle, sock=sock)
    thread.run(_start())


def run_both(config_text: str, tmp_path, scenario):
    """Start HAProxy and haply's checker on config_text, run scenario(probe)."""
    path = tmp_path / "haproxy.cfg"
    path.write_text(config_text)
    config = load([str(path)]).config
    registry = Registry()
    for proxy in config.backends:
        registry.add_backend(proxy)
    oracle = HAProxyOracle(config_text).start()
    try:
        async def main():
            checker = HealthChecker(registry, config, asyncio.get_running_loop())
            checker.start()
            try:
                return await scenario(oracle, registry, checker)
            finally:
                await checker.stop()
        return uvloop.run(main())
    finally:
        oracle.stop()


async def time_both(oracle, state, want_up: bool, timeout: float) -> tuple[float, float]:
    """Seconds until haply's registry and HAProxy both show the wanted state."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    ours = theirs = None
    want = UP if want_up else DOWN
    while ours is None or theirs is None:
        now = loop.time() - start
        if now > timeout:
            raise AssertionError(f"not {want} within {timeout}s: haply {ours}, haproxy {theirs}")
        if ours is None and state.operational == want:
            ours = now
        if theirs is None:
            up = await loop.run_in_executor(None, oracle.is_up, "galera_cluster", "controller1")
            if up == want_up:
                theirs = loop.time() - start
        await asyncio.sleep(0.005)
    return ours, theirs


def test_galera_failover_detection_matches_haproxy(galera):
    port, responders, tmp_path = galera
    section = adapt(seed_section("galera_cluster"), port, closed_port(), "option httpchk")
    text = full_config(section)
    rise, fall = (int(x) for x in re.search(r"rise (\d+) fall (\d+)", section).groups())
    inter = INTER_MS / 1000
    down_bound = fall * inter + inter + 0.15  # + one probe and our polling
    up_bound = rise * inter + inter + 0.15
    # the event loop's timers tick in whole milliseconds, so each interval
    # may end up to a millisecond early
    tick = 0.001
    active = responders[0][0]

    async def scenario(oracle, registry, checker):
        state = registry.get("galera_cluster", "controller1")
        await asyncio.sleep(1.0)  # both at full health
        assert state.operational == UP and oracle.is_up("galera_cluster", "controller1")
        active.synced = False
        down = await time_both(oracle, state, False, 3.0)
        assert state.check_status == "L7STS"
        assert oracle.check_status("galera_cluster", "controller1") == "L7STS"
        # the first backup takes over in both
        assert [s.name for s in registry.servers("galera_cluster") if s.operational == UP] \
            == ["controller2", "controller3"]
        active.synced = True
        up = await time_both(oracle, state, True, 3.0)
        return down, up

    (haply_down, haproxy_down), (haply_up, haproxy_up) = run_both(text, tmp_path, scenario)
    print(f"\ninter {INTER_MS}ms rise {rise} fall {fall}: detection haply "
          f"{haply_down*1000:.0f}ms HAProxy {haproxy_down*1000:.0f}ms; recovery haply "
          f"{haply_up*1000:.0f}ms HAProxy {haproxy_up*1000:.0f}ms")
    for value in (haply_down, haproxy_down):
        assert (fall - 1) * (inter - tick) <= value <= down_bound
    for value in (haply_up, haproxy_up):
        assert (rise - 1) * (inter - tick) <= value <= up_bound


def test_seed_mysql_check_on_clustercheck_port_is_down_in_both(galera):
    """The seed as written: `option mysql-check` aimed at port 9200, where an
    HTTP responder waits for a request and never sends a MySQL handshake. HAProxy
    marks every node DOWN with a layer-7 timeout; so must haply."""
    port, responders, tmp_path = galera
    section = adapt(seed_section("galera_cluster"), port, closed_port(), "option mysql-check")
    text = full_config(section)

    async def scenario(oracle, registry, checker):
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 3.0
        names = ("controller1", "controller2", "controller3")
        while loop.time() < deadline:
            ours = [registry.get("galera_cluster", n).operational for n in names]
            theirs = [oracle.is_up("galera_cluster", n) for n in names]
            if ours == [DOWN] * 3 and theirs == [False] * 3:
                return ([registry.get("galera_cluster", n).check_status for n in names],
                        [oracle.check_status("galera_cluster", n) for n in names])
            await asyncio.sleep(0.05)
        raise AssertionError(f"haply {ours}, haproxy {theirs}")

    ours, theirs = run_both(text, tmp_path, scenario)
    assert ours == theirs == ["L7TOUT"] * 3


def snapshot(oracle, registry, servers):
    """(operational, check_status, check_code) of each server in both programs."""
    stat = oracle.command("show stat").splitlines()
    header = stat[0].lstrip("# ").split(",")
    rows = {(r["pxname"], r["svname"]): r
            for r in (dict(zip(header, line.split(","))) for line in stat[1:] if line)}
    ours, theirs = {}, {}
    for key in servers:
        state = registry.get(*key)
        ours[key] = (state.operational, state.check_status,
                     "" if state.check_code is None else str(state.check_code))
        row = rows[key]
        theirs[key] = ("UP" if row["status"].startswith("UP") else "DOWN",
                       row["check_status"].removeprefix("* "), row["check_code"])
    return ours, theirs


async def settled(oracle, registry, checker, servers, first: float, timeout: float = 4.0):
    """Snapshots until both programs agree (they check at different instants,
    so a loaded machine can catch one a check behind), at most `timeout`."""
    await asyncio.sleep(first)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        ours, theirs = snapshot(oracle, registry, servers)
        if ours == theirs or loop.time() > deadline:
            break
        await asyncio.sleep(0.1)
    reasons = {(e.backend, e.server): e.reason for e in checker.events if not e.up}
    return ours, theirs, reasons, oracle.log()


# --------------------------------------------- every check kind, both programs


async def _close_after(data: bytes, reader, writer):
    writer.write(data)
    await writer.drain()


def _closing(data: bytes):
    async def handler(reader, writer):
        await _close_after(data, reader, writer)
    return handler


DOWN_LINE = re.compile(r"^(?:Backup )?Server (\S+)/(\S+) is DOWN, reason: (.*), check duration")


def test_check_results_match_haproxy(tmp_path, tls_context_for_oracle):
    """The same servers checked by both: check_status, check_code and the DOWN
    reason HAProxy logs must be what haply records."""
    from tests.support.health_backends import (
        Agent, Banner, HttpHealth, black_hole, closed_port,
    )

    thread = BackendThread()
    try:
        ok = Backend(thread, HttpHealth(200, body=b"all good\n")).start()
        unavailable = Backend(thread, HttpHealth(503)).start()
        garbage = Backend(thread, _closing(b"SSH-2.0-OpenSSH_9.2\r\n")).start()
        hole = Backend(thread, black_hole).start()
        redis = Backend(thread, Banner(replies={b"PING": b"+PONG\r\n"})).start()
        loading = Backend(thread, _closing(b"-LOADING Redis is loading\r\n")).start()
        tls = tls_context_for_oracle
        agent = Backend(thread, Agent("down #disk full")).start()
        closed = closed_port()
        text = f"""global
    log stdout format raw local0

defaults
    log global
    timeout connect 1s
    timeout client 5s
    timeout server 5s
    timeout check 300ms

backend http
    option httpchk GET /healthcheck
    server ok 127.0.0.1:{ok.port} check inter 200
    server unavailable 127.0.0.1:{unavailable.port} check inter 200
    server garbage 127.0.0.1:{garbage.port} check inter 200
    server hole 127.0.0.1:{hole.port} check inter 200
    server closed 127.0.0.1:{closed} check inter 200

backend expect
    option httpchk GET /healthcheck
    http-check expect string maintenance
    server ok 127.0.0.1:{ok.port} check inter 200

backend tcp
    server ok 127.0.0.1:{ok.port} check inter 200
    server closed 127.0.0.1:{closed} check inter 200

backend redis
    option tcp-check
    tcp-check send PING\\r\\n
    tcp-check expect string +PONG
    server ok 127.0.0.1:{redis.port} check inter 200
    server loading 127.0.0.1:{loading.port} check inter 200
    server silent 127.0.0.1:{hole.port} check inter 200

backend tls
    option ssl-hello-chk
    server tls 127.0.0.1:{tls.port} check inter 200
    server plain 127.0.0.1:{ok.port} check inter 200

backend agent
    server a1 127.0.0.1:{ok.port} check inter 200 agent-check agent-port {agent.port} agent-inter 200
"""
        servers = [(p, s) for p, names in (
            ("http", ("ok", "unavailable", "garbage", "hole", "closed")),
            ("expect", ("ok",)), ("tcp", ("ok", "closed")),
            ("redis", ("ok", "loading", "silent")), ("tls", ("tls", "plain")),
            ("agent", ("a1",))) for s in names]

        async def scenario(oracle, registry, checker):
            return await settled(oracle, registry, checker, servers, 1.2)

        ours, theirs, reasons, log = run_both(text, tmp_path, scenario)
    finally:
        thread.close()
    # HAProxy leaves check_code empty for L4/L6 results; so does haply (None)
    assert ours == theirs, "\n".join(f"{k}: haply {ours[k]} haproxy {theirs[k]}"
                                     for k in servers if ours[k] != theirs[k])
    logged = {}
    for line in log.splitlines():
        match = DOWN_LINE.match(line)
        if match:
            logged[(match.group(1), match.group(2))] = match.group(3)
    assert logged and set(logged) == set(reasons)
    for key, reason in logged.items():
        assert reasons[key] == reason, key


async def _tls_idle(reader, writer):
    await reader.read(100)


class _OpenSSLServer:
    """openssl s_server on a loopback port: the TLS server HAProxy's manual has
    in mind (it answers HAProxy's SSLv3 hello with an alert)."""

    def __init__(self, directory, *extra: str) -> None:
        import subprocess

        import trustme
        from tests.support.health_backends import closed_port
        ca = trustme.CA(key_type=trustme.KeyType.RSA)
        cert = ca.issue_cert("localhost")
        cert_path, key_path = directory / "cert.pem", directory / "key.pem"
        cert.cert_chain_pems[0].write_to_path(str(cert_path))
        cert.private_key_pem.write_to_path(str(key_path))
        self.port = closed_port()
        self.process = subprocess.Popen(
            ["openssl", "s_server", "-accept", f"127.0.0.1:{self.port}", "-cert",
             str(cert_path), "-key", str(key_path), "-quiet", *extra],
            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError("openssl s_server did not start")

    def stop(self) -> None:
        self.process.kill()
        self.process.wait(5)


@pytest.fixture
def tls_context_for_oracle(tmp_path_factory):
    server = _OpenSSLServer(tmp_path_factory.mktemp("tls"))
    try:
        yield server
    finally:
        server.stop()


def test_ssl_hello_python_tls_server_is_a_known_difference(tmp_path):
    """Python's asyncio TLS server closes silently on HAProxy 2.6's SSLv3 hello,
    so HAProxy marks it L6RSP; it answers haply's TLS 1.2 hello with a
    ServerHello, so haply sees it UP. This pins the one place haply
    deliberately judges differently."""
    import ssl

    import trustme

    ca = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost").configure_cert(context)
    thread = BackendThread()
    try:
        tls = Backend(thread, _tls_idle, ssl_context=context).start()
        text = f"""global
    maxconn 100

defaults
    timeout connect 1s
    timeout check 300ms

backend tls
    option ssl-hello-chk
    server py 127.0.0.1:{tls.port} check inter 200
"""

        async def scenario(oracle, registry, checker):
            await asyncio.sleep(0.6)
            return (registry.get("tls", "py").check_status,
                    oracle.check_status("tls", "py"))

        ours, theirs = run_both(text, tmp_path, scenario)
    finally:
        thread.close()
    assert (ours, theirs) == ("L6OK", "L6RSP")


def test_mysql_check_matches_haproxy(tmp_path):
    """option mysql-check, with and without user, against a real MariaDB."""
    from tests.support import mariadb
    from tests.support.health_backends import closed_port

    if not mariadb.available():
        pytest.fail("mariadb-server is not installed (Debian package mariadb-server)")
    db = mariadb.MariaDB()
    try:
        db.start()
        stopped = closed_port()
        text = f"""global
    log stdout format raw local0

defaults
    log global
    timeout connect 1s
    timeout client 5s
    timeout server 5s
    timeout check 1s

backend user
    option mysql-check user {db.check_user} post-41
    server ok 127.0.0.1:{db.port} check inter 200
    server stopped 127.0.0.1:{stopped} check inter 200

backend stranger
    option mysql-check user nobody_here post-41
    server db 127.0.0.1:{db.port} check inter 200

backend nouser
    option mysql-check
    server db 127.0.0.1:{db.port} check inter 200
"""
        servers = [("user", "ok"), ("user", "stopped"), ("stranger", "db"), ("nouser", "db")]

        async def scenario(oracle, registry, checker):
            return await settled(oracle, registry, checker, servers, 0.8)

        ours, theirs, reasons, log = run_both(text, tmp_path, scenario)
    finally:
        db.stop()
    assert ours == theirs
    assert ours[("stranger", "db")][1:] == ("L7STS", "1045")
    logged = {(m.group(1), m.group(2)): m.group(3)
              for m in map(DOWN_LINE.match, log.splitlines()) if m}
    assert set(logged) == set(reasons) == {("user", "stopped"), ("stranger", "db")}
    for key, reason in logged.items():
        assert reasons[key] == reason, key


def test_log_health_checks_sequence_matches_haproxy(tmp_path, caplog):
    """With `option log-health-checks`, a server that fails until DOWN and then
    passes until UP produces the same log lines in both programs (durations
    aside): the counter semantics and the wording are HAProxy's."""
    from tests.support.health_backends import HttpHealth

    thread = BackendThread()
    health = HttpHealth(200)
    try:
        web = Backend(thread, health).start()
        text = f"""global
    log stdout format raw local0

defaults
    log global
    timeout connect 1s
    timeout check 300ms

backend b
    option httpchk
    option log-health-checks
    server s1 127.0.0.1:{web.port} check inter 100 rise 3 fall 4
"""

        async def scenario(oracle, registry, checker):
            state = registry.get("b", "s1")
            await asyncio.sleep(0.6)
            health.status = 503
            await time_both_named(oracle, state, "b", "s1", False, 3.0)
            health.status = 200
            await time_both_named(oracle, state, "b", "s1", True, 3.0)
            await asyncio.sleep(0.3)
            return oracle.log()

        with caplog.at_level("INFO", logger="haply.health"):
            log = run_both(text, tmp_path, scenario)
    finally:
        thread.close()

    def normalise(line: str) -> str:
        return re.sub(r"check duration: \d+ms", "check duration: Xms", line.strip())

    wanted = ("Health check for server", "Server b/", "backend b has")
    theirs = [normalise(x) for x in log.splitlines() if x.startswith(wanted)]
    ours = [normalise(r.getMessage()) for r in caplog.records if r.name == "haply.health"]
    assert len(ours) >= 8
    assert ours == theirs


async def time_both_named(oracle, state, backend, server, want_up: bool, timeout: float):
    loop = asyncio.get_running_loop()
    start = loop.time()
    want = UP if want_up else DOWN
    while not (state.operational == want
               and await loop.run_in_executor(None, oracle.is_up, backend, server) == want_up):
        if loop.time() - start > timeout:
            raise AssertionError(f"{backend}/{server} not {want} within {timeout}s")
        await asyncio.sleep(0.01)


def test_check_ssl_matches_haproxy(tmp_path):
    """check-ssl: an HTTP check and a connect check inside TLS, against
    `openssl s_server -www` (answers GET / with 200), in both programs."""
    server = _OpenSSLServer(tmp_path, "-www")
    try:
        text = f"""global
    maxconn 100

defaults
    timeout connect 1s
    timeout check 500ms

backend https
    option httpchk GET /
    server web 127.0.0.1:{server.port} check check-ssl verify none inter 200

backend tls
    server web 127.0.0.1:{server.port} check check-ssl verify none inter 200

backend plain
    option httpchk GET /
    server web 127.0.0.1:{server.port} check inter 200
"""
        servers = [("https", "web"), ("tls", "web"), ("plain", "web")]

        async def scenario(oracle, registry, checker):
            return await settled(oracle, registry, checker, servers, 1.0)

        ours, theirs, _, _ = run_both(text, tmp_path, scenario)
    finally:
        server.stop()
    assert ours == theirs
    assert ours[("https", "web")][:2] == ("UP", "L7OK")
    assert ours[("tls", "web")][:2] == ("UP", "L6OK")
    assert ours[("plain", "web")][0] == "DOWN"
