"""Virtual addresses on and off the interface, through netlink.

Calls are synchronous: a netlink request to the local kernel answers in tens of
microseconds, far below an advertisement interval, and waiting for it keeps the
order of add/remove exactly the order the state machine asked for. Adding and
removing use haply.vrrp.netlink (one request, on the failover's path); the
start-up look-ups (interface index, primary address) use pyroute2, whose
IPRoute drives its own asyncio loop internally, which cannot run in the thread
of the service's loop, so it lives on one dedicated thread and every call is
handed to that thread and waited for.

`spawn_guard()` covers the one case a process cannot handle itself: SIGKILL.
A killed VRRP process would leave its VIPs on the interface, so a node that is
no longer advertising would still answer ARP for them next to the new master.
The guard is a forked child that blocks reading a pipe; the pipe's write end is
held only by the service, so the kernel closes it when the service dies however
it dies, and the guard then removes the addresses. (The alternative, the
master process cleaning up, covers only the case where a master exists.)
"""

from __future__ import annotations

import errno
import json
import logging
import os
import signal
import socket
from concurrent.futures import ThreadPoolExecutor

from pyroute2 import IPRoute

from haply.config.vrrp_model import VirtualAddress
from haply.vrrp.netlink import AddressSocket

log = logging.getLogger("haply.vrrp")

SCOPES = {"global": 0, "site": 200, "link": 253, "host": 254, "nowhere": 255}


NETLINK_TIMEOUT = 5.0  # a kernel that does not answer netlink in 5 s is wedged


class _NetlinkThread:
    def __init__(self) -> None:
        self.pool = ThreadPoolExecutor(1, thread_name_prefix="netlink")
        self.ipr = self.pool.submit(IPRoute).result(NETLINK_TIMEOUT)

    def call(self, method: str, *args, **kwargs):
        return self.pool.submit(getattr(self.ipr, method), *args, **kwargs).result(NETLINK_TIMEOUT)

    def close(self) -> None:
        self.pool.submit(self.ipr.close).result(NETLINK_TIMEOUT)
        self.pool.shutdown()


class AddressManager:
    def __init__(self) -> None:
        self.ipr = _NetlinkThread()  # look-ups (start-up, not time-critical)
        self.changes = AddressSocket()  # add/remove: on the failover's path (netlink.py)
        self._index: dict[str, int] = {}

    def close(self) -> None:
        self.changes.close()
        self.ipr.close()

    def index(self, ifname: str) -> int:
        if ifname not in self._index:
            found = self.ipr.call("link_lookup", ifname=ifname)
            if not found:
                raise OSError(errno.ENODEV, f"no interface {ifname}")
            self._index[ifname] = found[0]
        return self._index[ifname]

    def addresses(self, ifname: str, family: int = socket.AF_INET) -> list[tuple[str, int]]:
        idx = self.index(ifname)
        return [(m.get_attr("IFA_ADDRESS"), m["prefixlen"])
                for m in self.ipr.call("get_addr", index=idx, family=family)]

    def primary_address(self, ifname: str, exclude: set[str], ipv6: bool = False) -> str | None:
        """The address to advertise from: the interface's first IPv4 address
        that is not one of our VIPs, or for IPv6 its link-local address
        (RFC 5798 5.1.2.1)."""
        if ipv6:
            for addr, _ in self.addresses(ifname, socket.AF_INET6):
                if addr.lower().startswith("fe80:") and addr not in exclude:
                    return addr
            return None
        for addr, _ in self.addresses(ifname):
            if addr not in exclude:
                return addr
        return None

    def present(self, vip: VirtualAddress, ifname: str) -> bool:
        family = socket.AF_INET6 if ":" in vip.address else socket.AF_INET
        return any(a == vip.address for a, _ in self.addresses(vip.dev or ifname, family))

    def add(self, vip: VirtualAddress, ifname: str) -> bool:
        """Put vip on its interface; False if it was there already."""
        try:
            self.changes.change(True, self.index(vip.dev or ifname), vip.address, vip.prefixlen,
                                vip.brd, vip.label, SCOPES[vip.scope] if vip.scope else 0)
            return True
        except OSError as exc:
            if exc.errno == errno.EEXIST:
                return False
            raise

    def remove(self, vip: VirtualAddress, ifname: str) -> bool:
        """Take vip off its interface; False if it was not there (or the
        interface is gone)."""
        try:
            self.changes.change(False, self.index(vip.dev or ifname), vip.address, vip.prefixlen)
            return True
        except OSError as exc:
            if exc.errno in (errno.EADDRNOTAVAIL, errno.ENODEV):
                return False
            raise


def remove_all(vips: list[tuple[VirtualAddress, str]]) -> None:
    manager = AddressManager()
    try:
        for vip, ifname in vips:
            try:
                manager.remove(vip, ifname)
            except Exception as exc:  # noqa: BLE001 - best effort, keep removing the rest
                log.warning("removing %s from %s: %s", vip.address, vip.dev or ifname, exc)
    finally:
        manager.close()


def _encode_vips(vips: list[tuple[VirtualAddress, str]]) -> bytes:
    return json.dumps([[v.address, v.prefixlen, v.dev or ifname] for v, ifname in vips]).encode() + b"\n"


def update_guard(fd: int, vips: list[tuple[VirtualAddress, str]]) -> None:
    """Tell the guard the addresses to remove from now on (after a reload)."""
    os.write(fd, _encode_vips(vips))


def spawn_guard(vips: list[tuple[VirtualAddress, str]]) -> int:
    """Fork a child that removes `vips` once this process is gone. Returns the
    pipe fd the service must keep open (and never pass to children); each line
    written to it (update_guard) replaces the list."""
    read_fd, write_fd = os.pipe()
    os.set_inheritable(write_fd, False)
    pid = os.fork()
    if pid:
        os.close(read_fd)
        update_guard(write_fd, vips)
        return write_fd
    try:  # the guard: no event loop, no other fds of interest
        os.close(write_fd)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        os.setsid()  # a terminal's ^C or a group SIGTERM should reach the service only
        buffered, latest = b"", b"[]"
        while chunk := os.read(read_fd, 65536):
            buffered += chunk
            *lines, buffered = buffered.split(b"\n")
            if lines:
                latest = lines[-1]
        try:
            items = json.loads(latest)
        except ValueError:
            items = []
        remove_all([(VirtualAddress(address=a, prefixlen=p, dev=d), d) for a, p, d in items])
    finally:
        os._exit(0)
