"""Listening sockets: created once, before any traffic, from `bind` lines.

The master process (or the single process before there is one) binds every socket;
workers only accept. `bind fd@N` adopts an inherited descriptor as systemd socket
activation and HAProxy's own test harness hand them over. IP_FREEBIND lets haply
bind a virtual IP that VRRP has not (yet) put on this node, so a failover never needs
the proxy to restart.
"""

from __future__ import annotations

import ipaddress
import socket

from haply.config.model import Bind

# Linux value; Python's socket module does not export it on every build.
IP_FREEBIND = getattr(socket, "IP_FREEBIND", 15)
# HAProxy's default listen backlog follows maxconn; the kernel caps it at somaxconn.
DEFAULT_BACKLOG = 4096


class BindError(Exception):
    def __init__(self, bind: Bind, reason: str):
        self.bind = bind
        super().__init__(f"{bind.location}: cannot bind {describe(bind)}: {reason}")


def describe(bind: Bind) -> str:
    if bind.fd is not None:
        return f"fd@{bind.fd}"
    host = bind.host or "*"
    return f"[{host}]:{bind.port}" if ":" in host else f"{host}:{bind.port}"


def _family(host: str) -> int:
    if host in ("", "*"):
        return socket.AF_INET
    try:
        return socket.AF_INET6 if ipaddress.ip_address(host).version == 6 else socket.AF_INET
    except ValueError:
        return socket.AF_INET  # a host name; getaddrinfo decides below


def open_listener(bind: Bind, backlog: int = DEFAULT_BACKLOG) -> socket.socket:
    """A bound, listening, non-blocking socket for one bind address."""
    if bind.fd is not None:
        try:
            sock = socket.socket(fileno=bind.fd)
        except OSError as exc:
            raise BindError(bind, f"inherited descriptor is not a socket ({exc.strerror})") from exc
        if sock.type != socket.SOCK_STREAM:
            raise BindError(bind, "inherited descriptor is not a stream socket")
        sock.setblocking(False)
        try:
            sock.listen(backlog)
        except OSError as exc:
            raise BindError(bind, exc.strerror or str(exc)) from exc
        return sock

    host = "" if bind.host in ("", "*") else bind.host
    family = _family(host)
    if host and family == socket.AF_INET and not _is_literal(host):
        try:
            infos = socket.getaddrinfo(host, bind.port, type=socket.SOCK_STREAM)
        except socket.gaierror as exc:
            raise BindError(bind, f"cannot resolve {host!r}: {exc.strerror}") from exc
        family, _, _, _, sockaddr = infos[0]
        host = sockaddr[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        # Several workers (and the next generation during a reload) may accept on
        # one port: SO_REUSEPORT is what lets a reload never refuse a connection.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1 if host != "::" else 0)
        # IP_FREEBIND is honoured for IPv6 sockets too on Linux.
        sock.setsockopt(socket.IPPROTO_IP, IP_FREEBIND, 1)
        sock.bind((host, bind.port))
        sock.listen(backlog)
        sock.setblocking(False)
    except OSError as exc:
        sock.close()
        raise BindError(bind, exc.strerror or str(exc)) from exc
    return sock


def _is_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return False

