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
from tests.support.health_backends import Backend, BackendThread, ClusterCheck
from tests.support.health_oracle import HAPROXY, HAProxyOracle

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
        probe = socket.socket()
        probe.bind((hosts[0], 0))
        port = probe.getsockname()[1]
        probe.close()
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
    section = adapt(seed_section("galera_cluster"), port, 33060, "option httpchk")
    text = full_config(section)
    rise, fall = (int(x) for x in re.search(r"rise (\d+) fall (\d+)", section).groups())
    inter = INTER_MS / 1000
    down_bound = fall * inter + inter + 0.15  # + one probe and our polling
    up_bound = rise * inter + inter + 0.15
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
        assert (fall - 1) * inter <= value <= down_bound
    for value in (haply_up, haproxy_up):
        assert (rise - 1) * inter <= value <= up_bound


def test_seed_mysql_check_on_clustercheck_port_is_down_in_both(galera):
    """The seed as written: `option mysql-check` aimed at port 9200, where an
    HTTP responder waits for a request and never sends a MySQL handshake. HAProxy
    marks every node DOWN with a layer-7 timeout; so must haply."""
    port, responders, tmp_path = galera
    section = adapt(seed_section("galera_cluster"), port, 33061, "option mysql-check")
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
