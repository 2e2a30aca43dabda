"""A proxy's TCP socket options (model.SocketOptions) on real sockets.

The client side's are set on the listening socket, whose accepted
connections inherit them on Linux (keep-alive and its three settings, the
quick-ACK mode), so an accepted connection costs nothing more. They are set
both ways, so that a reload that drops an option takes it away from a
listener handed over to the new workers. The server side's are set on each
new connection to a server: the delayed ACK before it connects (it shapes
the handshake), keep-alive once it is up.

tcp-smart-connect does what the manual says: the handshake's last ACK goes
with the request. HAProxy 2.6 on this kernel still sends it bare (observed
with tcpdump); nothing else differs.
"""

from __future__ import annotations

import socket

from haply.config.model import SocketOptions

TCP_QUICKACK = getattr(socket, "TCP_QUICKACK", 12)


def _keepalive(sock, options: SocketOptions) -> None:
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, int(options.keepalive))
    if options.keepalive:
        for name, value in ((socket.TCP_KEEPCNT, options.keepalive_count),
                            (socket.TCP_KEEPIDLE, options.keepalive_idle),
                            (socket.TCP_KEEPINTVL, options.keepalive_interval)):
            if value is not None:
                sock.setsockopt(socket.IPPROTO_TCP, name, value)


def for_listener(sock: socket.socket, options: SocketOptions) -> None:
    """The client side's options, on the listener its connections come from."""
    _keepalive(sock, options)
    sock.setsockopt(socket.IPPROTO_TCP, TCP_QUICKACK, 0 if options.delayed_ack else 1)


def before_connect(sock: socket.socket, options: SocketOptions) -> None:
    """A server connection's socket, not connected yet."""
    if options.delayed_ack:
        sock.setsockopt(socket.IPPROTO_TCP, TCP_QUICKACK, 0)


def once_connected(sock, options: SocketOptions) -> None:
    """A server connection's socket, connected (a transport's socket will do)."""
    if options.keepalive:
        _keepalive(sock, options)
