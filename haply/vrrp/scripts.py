"""Tracking (vrrp_script, track_interface, track_proxy) and notify scripts.

`RiseFall` is the pure part: consecutive results in, a health flip out. The
trackers around it are small asyncio tasks that report flips through a callback;
the service turns flips into priority changes or FAULT.

Scripts are split like a shell word list (shlex) and executed without a shell,
as keepalived does, each in its own session so a timeout kills its children too.

track_proxy design. keepalived users write `script "killall -0 haproxy"`: a
fork+exec every interval that only proves some process of that name exists. haply
knows its proxy, so it watches it directly, in the cheapest way that still
catches real failure:
* `pid:N` / `pidfile:PATH`: a pidfd (pidfd_open, Linux 5.3) becomes readable the
  moment the process exits: death is seen in microseconds, with no polling.
  A pidfile is re-read every interval so a restarted proxy is picked up.
* `socket:PATH`: a connect() to the proxy's unix control socket every interval.
  The kernel completes it from the listen backlog even when the proxy is at
  100% CPU, so a busy proxy is never mistaken for a dead one (the false-failover
  case the VRRP process exists to avoid), while a dead one refuses at once.
* a callable handed to `service.run(proxy_health=...)` by the master process,
  polled every interval, for whatever the master knows best (e.g. worker exits).
Health of the proxy is a property of the node, not of the request path; a
request-level probe (HTTP to a frontend) would fail under load and cause the
very failovers we want to avoid.
"""

from __future__ import annotations

import asyncio
import grp
import logging
import os
import pwd
import shlex
import signal
import socket
import stat
import time
from dataclasses import dataclass
from typing import Callable

log = logging.getLogger("haply.vrrp")


@dataclass
class RiseFall:
    """`rise` consecutive successes make it healthy, `fall` failures unhealthy."""

    rise: int = 1
    fall: int = 1
    healthy: bool = True
    streak: int = 0

    def feed(self, ok: bool) -> bool:
        """Record one result; True when health flipped."""
        if ok == self.healthy:
            self.streak = 0
            return False
        self.streak += 1
        if self.streak >= (self.rise if ok else self.fall):
            self.healthy, self.streak = ok, 0
            return True
        return False


def priority_delta(weight: int, reverse: bool, healthy: bool) -> int:
    """keepalived.conf(5): a positive weight is added while up, a negative one
    while down; `reverse` turns the adjustment around (decrease when up,
    increase when down)."""
    delta = weight if (healthy and weight > 0) or (not healthy and weight < 0) else 0
    return -delta if reverse else delta


def faulted(reverse: bool, healthy: bool) -> bool:
    """Weight 0: FAULT while down; `weight 0 reverse`: FAULT while up."""
    return healthy == reverse


def insecure_reason(argv0: str) -> str | None:
    """enable_script_security: refuse a script a non-root user could change."""
    path = argv0 if os.path.isabs(argv0) else None
    if path is None:
        for d in os.environ.get("PATH", "/usr/bin:/bin").split(":"):
            if os.path.exists(os.path.join(d, argv0)):
                path = os.path.join(d, argv0)
                break
    if path is None:
        return f"{argv0}: not found"
    while path and path != "/":
        try:
            st = os.stat(path)
        except OSError as exc:
            return f"{path}: {exc.strerror}"
        if st.st_uid != 0 or st.st_mode & (stat.S_IWGRP | stat.S_IWOTH) and not st.st_mode & stat.S_ISVTX:
            return f"{path} is writable by a non-root user"
        path = os.path.dirname(path)
    return None


SCRIPT_ERROR_LOG_EVERY = 60.0  # a broken script is reported once a minute, not every interval
_last_logged: dict[str, float] = {}


def _log_limited(key: str, msg: str, *args) -> None:
    now = time.monotonic()
    if now - _last_logged.get(key, -SCRIPT_ERROR_LOG_EVERY) >= SCRIPT_ERROR_LOG_EVERY:
        _last_logged[key] = now
        log.error(msg, *args)


def _drop_privileges(user: str | None, group: str | None) -> Callable[[], None]:
    # Resolved in the parent: a lookup failure is reported instead of half-running.
    pw = pwd.getpwnam(user) if user else None
    gid = grp.getgrnam(group).gr_gid if group else (pw.pw_gid if pw else None)

    def drop() -> None:
        if pw is not None:
            os.initgroups(pw.pw_name, gid if gid is not None else pw.pw_gid)
        if gid is not None:
            os.setgid(gid)
        if pw is not None:
            os.setuid(pw.pw_uid)
    return drop


async def run_command(command: str, args: tuple[str, ...] = (), timeout: float | None = None,
                      user: str | None = None, group: str | None = None,
                      secure: bool = False) -> int | None:
    """Run a command; its exit status, or None if it could not run or timed out."""
    try:
        argv = shlex.split(command) + list(args)
    except ValueError as exc:
        log.error("script %r: %s", command, exc)
        return None
    if not argv:
        return None
    if secure and os.geteuid() == 0:
        reason = insecure_reason(argv[0])
        if reason:
            _log_limited(command, "script %r not run (enable_script_security): %s", command, reason)
            return None
    try:
        kwargs = {}
        if os.geteuid() == 0 and (user or group):
            kwargs["preexec_fn"] = _drop_privileges(user, group)
        proc = await asyncio.create_subprocess_exec(
            *argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL, start_new_session=True, **kwargs)
    except (OSError, ValueError, KeyError) as exc:
        _log_limited(command, "script %r cannot start: %s", command, exc)
        return None
    try:
        return await asyncio.wait_for(proc.wait(), timeout)
    except asyncio.TimeoutError:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        await proc.wait()
        return None


async def track_script(name: str, command: str, interval: float, timeout: float | None,
                       rise: int, fall: int, user: str | None, group: str | None, secure: bool,
                       on_change: Callable[[str, bool], None]) -> None:
    health = RiseFall(rise, fall)
    loop = asyncio.get_running_loop()
    while True:
        started = loop.time()
        status = await run_command(command, (), timeout or interval, user, group, secure)
        if health.feed(status == 0):
            on_change(name, health.healthy)
        await asyncio.sleep(max(0.0, interval - (loop.time() - started)))


SIOCGIFFLAGS = 0x8913
IFF_UP, IFF_RUNNING = 0x1, 0x40


def interface_up(ifname: str) -> bool:
    import fcntl
    import struct
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            data = fcntl.ioctl(s.fileno(), SIOCGIFFLAGS, struct.pack("16sH", ifname.encode()[:15], 0))
    except OSError:
        return False
    flags = struct.unpack("16sH", data[:18])[1]
    return bool(flags & IFF_UP and flags & IFF_RUNNING)


async def track_interface(ifname: str, interval: float, on_change: Callable[[str, bool], None]) -> None:
    # An ioctl per interval is cheaper than a netlink monitor socket and its
    # parser, and the interval (the advert interval, capped) bounds the delay.
    health = RiseFall()
    while True:
        if health.feed(interface_up(ifname)):
            on_change(ifname, health.healthy)
        await asyncio.sleep(interval)


def _socket_alive(path: str, timeout: float) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        try:
            s.connect(path)
            return True
        except OSError:
            return False


def _read_pid(path: str) -> int | None:
    try:
        with open(path) as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None


async def track_proxy(target: str, interval: float, rise: int, fall: int,
                      on_change: Callable[[str, bool], None],
                      probe: Callable[[], bool] | None = None) -> None:
    health = RiseFall(rise, fall)
    loop = asyncio.get_running_loop()
    kind, _, value = target.partition(":")

    def report(ok: bool) -> None:
        if health.feed(ok):
            on_change(target, health.healthy)

    if probe is None and kind == "socket":
        def probe() -> bool:
            return _socket_alive(value, min(interval, 1.0))
    if probe is not None:
        while True:
            try:
                ok = bool(probe())
            except Exception:  # noqa: BLE001 - a failing probe means unhealthy
                ok = False
            report(ok)
            await asyncio.sleep(interval)
    # pid / pidfile: wait on a pidfd; re-check the pidfile every interval.
    while True:
        pid = int(value) if kind == "pid" else _read_pid(value)
        fd = None
        if pid is not None:
            try:
                fd = os.pidfd_open(pid)
            except OSError:
                fd = None
        if fd is None:
            report(False)
            await asyncio.sleep(interval)
            continue
        exited = loop.create_future()
        loop.add_reader(fd, lambda: exited.done() or exited.set_result(None))
        try:
            for _ in range(max(rise, 1)):
                report(True)
            await exited
        finally:
            loop.remove_reader(fd)
            os.close(fd)
        for _ in range(max(fall, 1)):
            report(False)  # death is certain: do not wait for `fall` intervals
        if kind == "pid":
            return  # that pid will not come back
        await asyncio.sleep(interval)
