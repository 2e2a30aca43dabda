"""Readiness and state notifications to systemd (`Type=notify`, sd_notify(3)).

The protocol is one datagram per notification on the AF_UNIX socket named by
$NOTIFY_SOCKET, carrying newline-separated VAR=VALUE assignments. A name that
starts with '@' is in Linux's abstract namespace (the '@' stands for a leading
NUL byte). libsystemd is not needed for this, so haply does not depend on it.

    from haply import systemd
    systemd.notify(systemd.READY, systemd.status("serving 3 frontends"))
    systemd.notify(*systemd.reloading())      # before a reload starts
    systemd.notify(systemd.READY)              # when it is done
    systemd.notify(systemd.STOPPING)

The socket is connected once and kept (`Notifier`), so notifications still
reach systemd after `chroot` has hidden a path name such as
/run/systemd/notify. Failures are not errors: a service started without
Type=notify, or by hand, has no socket, and `notify` says so by returning False.
"""

from __future__ import annotations

import os
import socket
import time

READY = "READY=1"
RELOADING = "RELOADING=1"
STOPPING = "STOPPING=1"
ENVIRONMENT = "NOTIFY_SOCKET"


def status(text: str) -> str:
    """STATUS=: free text shown by `systemctl status` (one line)."""
    return "STATUS=" + text.replace("\n", " ")


def mainpid(pid: int) -> str:
    """MAINPID=: the service's main process, when it is not the one notifying."""
    return f"MAINPID={pid}"


def reloading(now_usec: int | None = None) -> tuple[str, str]:
    """RELOADING=1 with MONOTONIC_USEC=, which systemd 253 and later require to
    match a reload to its READY=1 (Type=notify-reload); older ones ignore it.
    now_usec defaults to CLOCK_MONOTONIC in microseconds, as sd_notify(3) says."""
    if now_usec is None:
        now_usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    return RELOADING, f"MONOTONIC_USEC={now_usec}"


def _address(name: str) -> str | None:
    if name.startswith("@"):
        return "\0" + name[1:]
    if name.startswith("/"):
        return name
    return None  # vsock:CID:PORT (systemd 254, for VMs) is not supported


class Notifier:
    """A datagram socket connected to $NOTIFY_SOCKET, opened on first use."""

    def __init__(self, name: str | None):
        self.name = name or None
        self._sock: socket.socket | None = None

    @classmethod
    def from_environment(cls, environ=os.environ) -> "Notifier":
        return cls(environ.get(ENVIRONMENT))

    @property
    def enabled(self) -> bool:
        return self.name is not None and _address(self.name) is not None

    def open(self) -> bool:
        """Connect now (call before chroot). False if there is nothing to connect to."""
        if self._sock is not None:
            return True
        address = _address(self.name) if self.name else None
        if address is None:
            return False
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        try:
            sock.connect(address)
        except OSError:
            sock.close()
            return False
        self._sock = sock
        return True

    def send(self, *states: str) -> bool:
        if not states or not self.open():
            return False
        message = "\n".join(states).encode()
        try:
            self._sock.send(message)
        except OSError:
            # systemd went away or the socket was replaced: one retry on a new one.
            self.close()
            if not self.open():
                return False
            try:
                self._sock.send(message)
            except OSError:
                return False
        return True

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


_default: Notifier | None = None


def notify(*states: str) -> bool:
    """Send states to systemd; True if the datagram was sent.

    Uses $NOTIFY_SOCKET as it was at the first call (the socket stays connected).
    """
    global _default
    if _default is None or _default.name != os.environ.get(ENVIRONMENT, _default.name):
        if _default is not None:
            _default.close()
        _default = Notifier.from_environment()
    return _default.send(*states)


def booted_by_systemd(environ=os.environ) -> bool:
    """True when started as a Type=notify service (the socket is set)."""
    return bool(environ.get(ENVIRONMENT))


__all__ = ["ENVIRONMENT", "Notifier", "READY", "RELOADING", "STOPPING", "booted_by_systemd",
           "mainpid", "notify", "reloading", "status"]
