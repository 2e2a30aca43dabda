"""Network namespaces for VRRP tests: N nodes and a client on one bridge.

Every namespace, link and process made here is made by the test and removed when
its `lab()` context ends, whatever happened. Addresses are from 192.0.2.0/24
(TEST-NET-1, RFC 5737) and 2001:db8::/64 (RFC 3849) and exist only inside these
namespaces. Duplicate address detection is off on the nodes' links, so that their
IPv6 link-local addresses (VRRP's sources) are usable as soon as the link is up.

    with lab(2) as net:
        proc = net.spawn(net.nodes[0], [sys.executable, "-m", "haply.vrrp", "-f", conf])
        net.has_address(net.nodes[0], "192.0.2.100")
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field

SUBNET = "192.0.2"
VIP = f"{SUBNET}.100"
SUBNET6 = "2001:db8::"
VIP6 = f"{SUBNET6}100"
_counter = itertools.count()


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", *args], check=check, capture_output=True, text=True, timeout=10)


def available() -> str | None:
    """None when namespaces can be made here, else why not."""
    if os.geteuid() != 0:
        return "needs root"
    if shutil.which("ip") is None:
        return "needs iproute2"
    return None


@dataclass
class Node:
    name: str  # namespace
    address: str
    ifname: str = "eth0"
    address6: str = ""

    @property
    def link_local(self) -> str:
        out = _ip("-n", self.name, "-6", "-o", "addr", "show", "dev", self.ifname, "scope",
                  "link", check=False).stdout
        return out.split()[3].split("/")[0] if out.strip() else ""


@dataclass
class Lab:
    prefix: str
    bridge_ns: str
    nodes: list[Node]
    client: Node
    workdir: str
    procs: list[subprocess.Popen] = field(default_factory=list)

    def spawn(self, node: Node, argv: list[str], log_name: str | None = None,
              env: dict | None = None) -> subprocess.Popen:
        log_path = os.path.join(self.workdir, f"{log_name or node.name}.log")
        log = open(log_path, "ab")
        proc = subprocess.Popen(["ip", "netns", "exec", node.name, *argv], stdout=log,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)
        log.close()
        proc.log_path = log_path  # type: ignore[attr-defined]
        self.procs.append(proc)
        return proc

    def run(self, node: Node, argv: list[str], timeout: float = 10) -> subprocess.CompletedProcess:
        return subprocess.run(["ip", "netns", "exec", node.name, *argv], capture_output=True,
                              text=True, timeout=timeout)

    def addresses(self, node: Node) -> set[str]:
        out = _ip("-n", node.name, "-o", "addr", "show", "dev", node.ifname, check=False).stdout
        return {line.split()[3].split("/")[0] for line in out.splitlines()
                if " inet " in line or " inet6 " in line}

    def has_address(self, node: Node, address: str) -> bool:
        return address in self.addresses(node)

    def holders(self, address: str, nodes: list[Node] | None = None) -> list[Node]:
        return [n for n in (nodes or self.nodes) if self.has_address(n, address)]

    def isolate(self, node: Node, on: bool) -> None:
        """Bridge port isolation: isolated ports cannot reach each other (a
        partition between nodes) while the links stay up."""
        port = f"p{self.nodes.index(node)}"
        subprocess.run(["bridge", "-n", self.bridge_ns, "link", "set", "dev", port, "isolated",
                        "on" if on else "off"], check=True, capture_output=True, timeout=10)

    def set_link(self, node: Node, up: bool) -> None:
        _ip("-n", node.name, "link", "set", node.ifname, "up" if up else "down")

    def write(self, name: str, text: str) -> str:
        path = os.path.join(self.workdir, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    def stop(self, proc: subprocess.Popen, sig: int = signal.SIGTERM, timeout: float = 10) -> None:
        if proc.poll() is None:
            proc.send_signal(sig)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)


def wait_for(predicate, timeout: float, interval: float = 0.02):
    """Poll `predicate` until truthy or `timeout`; returns its last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(interval)


def _kill_namespace_pids(ns: str) -> None:
    out = _ip("netns", "pids", ns, check=False).stdout
    for pid in out.split():
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(pid), signal.SIGKILL)


@contextlib.contextmanager
def lab(n_nodes: int, with_client: bool = True):
    prefix = f"hv{os.getpid() % 100000}x{next(_counter)}"
    bridge_ns = f"{prefix}-br"
    made: list[str] = []
    workdir = tempfile.mkdtemp(prefix=f"{prefix}-")
    lab_obj: Lab | None = None
    try:
        _ip("netns", "add", bridge_ns)
        made.append(bridge_ns)
        _ip("-n", bridge_ns, "link", "add", "br0", "type", "bridge", "stp_state", "0",
            "mcast_snooping", "0", "forward_delay", "0")
        _ip("-n", bridge_ns, "link", "set", "br0", "up")
        nodes = []
        count = n_nodes + (1 if with_client else 0)
        for i in range(count):
            ns = f"{prefix}-n{i}" if i < n_nodes else f"{prefix}-client"
            _ip("netns", "add", ns)
            made.append(ns)
            _ip("-n", bridge_ns, "link", "add", f"p{i}", "type", "veth", "peer", "name", "eth0",
                "netns", ns)
            _ip("-n", bridge_ns, "link", "set", f"p{i}", "master", "br0", "up")
            address = f"{SUBNET}.{10 + i}" if i < n_nodes else f"{SUBNET}.200"
            address6 = f"{SUBNET6}{10 + i}" if i < n_nodes else f"{SUBNET6}200"
            subprocess.run(["ip", "netns", "exec", ns, "sysctl", "-q", "-w",
                            "net.ipv6.conf.eth0.accept_dad=0"], check=True, timeout=10)
            _ip("-n", ns, "addr", "add", f"{address}/24", "dev", "eth0")
            _ip("-n", ns, "addr", "add", f"{address6}/64", "dev", "eth0", "nodad")
            _ip("-n", ns, "link", "set", "lo", "up")
            _ip("-n", ns, "link", "set", "eth0", "up")
            nodes.append(Node(ns, address, address6=address6))
        client = nodes.pop() if with_client else Node("", "")
        lab_obj = Lab(prefix, bridge_ns, nodes, client, workdir)
        yield lab_obj
    finally:
        if lab_obj is not None:
            for proc in lab_obj.procs:
                if proc.poll() is None:
                    proc.kill()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(5)
        for ns in reversed(made):
            _kill_namespace_pids(ns)
            _ip("netns", "del", ns, check=False)
        shutil.rmtree(workdir, ignore_errors=True)


def dump_logs(net: Lab) -> str:
    out = []
    for proc in net.procs:
        path = getattr(proc, "log_path", None)
        if path and os.path.exists(path):
            with open(path, errors="replace") as f:
                out.append(f"==> {path} <==\n{f.read()[-4000:]}")
    return "\n".join(out)


# ---------------------------------------------------------------- keepalived

KEEPALIVED = shutil.which("keepalived") or "/usr/sbin/keepalived"


class Keepalived:
    """keepalived 2.2 run in the foreground in one namespace (VRRP only)."""

    def __init__(self, net: Lab, node: Node, config_text: str, name: str):
        self.net, self.node, self.name = net, node, name
        w = net.workdir
        self.conf = net.write(f"{name}.conf", config_text)
        self.pidfile, self.vrrp_pidfile = f"{w}/{name}.pid", f"{w}/{name}-vrrp.pid"
        self.proc = net.spawn(node, [KEEPALIVED, "--dont-fork", "--log-console", "--log-detail",
                                     "--vrrp", "-f", self.conf, "-p", self.pidfile,
                                     "-r", self.vrrp_pidfile, "-c", f"{w}/{name}-chk.pid"],
                              log_name=name)

    def log(self) -> str:
        with open(self.proc.log_path, errors="replace") as f:  # type: ignore[attr-defined]
            return f.read()

    def ready(self) -> bool:
        return "Entering BACKUP STATE" in self.log() or "Entering MASTER STATE" in self.log()

    def crash(self) -> None:
        """Kill like a crash: the VRRP child gets no chance to send priority 0.

        keepalived's parent respawns a dead child, and a child whose parent dies
        shuts down cleanly, so the parent is frozen first, then both are killed.
        """
        os.kill(self.proc.pid, signal.SIGSTOP)
        child = _read_int(self.vrrp_pidfile)
        if child:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signal.SIGKILL)
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(5)

    def stop(self) -> None:
        self.net.stop(self.proc)


def _read_int(path: str) -> int | None:
    try:
        with open(path) as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return None
