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
from haply.config.units import parse_time

# Linux value; Python's socket module does not export it on every build.
IP_FREEBIND = getattr(socket, "IP_FREEBIND", 15)
IP_TRANSPARENT = getattr(socket, "IP_TRANSPARENT", 19)
IPV6_TRANSPARENT = 75  # linux/in6.h; not in Python's socket module
SO_BINDTODEVICE = getattr(socket, "SO_BINDTODEVICE", 25)
TCP_FASTOPEN = getattr(socket, "TCP_FASTOPEN", 23)
TCP_USER_TIMEOUT = getattr(socket, "TCP_USER_TIMEOUT", 18)
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


def backlog_of(bind: Bind) -> int:
    """The listen queue of a bind line: its `backlog`, else haply's default."""
    value = dict(bind.options).get("backlog")
    return int(value) if value else DEFAULT_BACKLOG


def _before_bind(sock: socket.socket, family: int, options: dict[str, str]) -> None:
    """The bind options that must be set before bind()."""
    if "interface" in options:  # accept only what comes in on that interface
        sock.setsockopt(socket.SOL_SOCKET, SO_BINDTODEVICE, options["interface"].encode())
    if "transparent" in options:  # bind to (and accept for) an address this host does not own
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, IPV6_TRANSPARENT, 1)
        else:
            sock.setsockopt(socket.IPPROTO_IP, IP_TRANSPARENT, 1)


def _connection_options(sock: socket.socket, options: dict[str, str], backlog: int) -> None:
    """The bind options the accepted connections inherit, or the listener uses."""
    if "mss" in options:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG, int(options["mss"]))
    if "defer-accept" in options:  # wake up only once the client has sent data
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_DEFER_ACCEPT, 1)
    if "tfo" in options:  # TCP Fast Open: data in the SYN, up to backlog pending
        sock.setsockopt(socket.IPPROTO_TCP, TCP_FASTOPEN, backlog)
    if "tcp-ut" in options:
        sock.setsockopt(socket.IPPROTO_TCP, TCP_USER_TIMEOUT,
                        round(parse_time(options["tcp-ut"], "tcp-ut") * 1000))


def open_listener(bind: Bind, backlog: int | None = None) -> socket.socket:
    """A bound, listening, non-blocking socket for one bind address, with its
    socket options (backlog, v4v6, v6only, interface, transparent, mss,
    defer-accept, tfo, tcp-ut)."""
    options = dict(bind.options)
    backlog = backlog or backlog_of(bind)
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
            # "::" takes IPv4 too unless v6only; v4v6 makes any address do so
            v6only = "v6only" in options or (host != "::" and "v4v6" not in options)
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, int(v6only))
        # IP_FREEBIND is honoured for IPv6 sockets too on Linux.
        sock.setsockopt(socket.IPPROTO_IP, IP_FREEBIND, 1)
        _before_bind(sock, family, options)
        sock.bind((host, bind.port))
        _connection_options(sock, options, backlog)
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

