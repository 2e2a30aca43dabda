"""What a connection offers before any HTTP is read: its two addresses.

A `SourceKey` is the view that mode tcp balancing (`balance source` hashes the
client's address), `use_backend` conditions in mode tcp, tcp-request rules and
stick rules read (src, dst, dst_port); HTTP requests offer the same attributes.
"""

from __future__ import annotations

from haply.proxy.counters import Tracking


class SourceKey:
    """What a mode tcp connection offers the balancer (the client's address),
    the conditions of use_backend (src, dst, dst_port) and stick rules."""

    __slots__ = ("client_ip", "client_port", "local_ip", "local_port", "tracking", "expects_proxy")
    uri = ""
    query = ""
    ssl = False  # ssl_fc: a mode tcp frontend does not terminate TLS

    @staticmethod
    def header(name: str) -> list[str]:
        return []

    def __init__(self, client_ip: str, client_port: int = 0, local_ip: str = "",
                 local_port: int = 0):
        self.client_ip = client_ip
        self.client_port = client_port
        self.local_ip = local_ip
        self.local_port = local_port
        # The session's sticky counters (haply.proxy.counters), once a rule tracks one.
        self.tracking: Tracking | None = None
        # Set by `tcp-request connection expect-proxy layer4`: a PROXY header comes first.
        self.expects_proxy = False

    def tracker(self):
        """The session's sticky counters, made at the first track-sc rule."""
        if self.tracking is None:
            self.tracking = Tracking()
        return self.tracking

    @classmethod
    def of(cls, transport) -> "SourceKey":
        peer = transport.get_extra_info("peername")
        sockname = transport.get_extra_info("sockname")
        return cls(peer[0] if peer else "", peer[1] if peer else 0,
                   sockname[0] if sockname else "", sockname[1] if sockname else 0)
