"""Sessions that count their connection's bytes.

The log's %B and %U, and stick tables that store bytes_in_cnt, bytes_out_cnt
or their rates, need what each connection carried (the frontend's totals move
with every other connection). Only the sessions of frontends that need it get
the counting transport: the others pay nothing.
"""

from __future__ import annotations

import asyncio


class CountingTransport:
    """A transport that counts what is written through it, and the bytes its
    protocol received (which the protocol adds)."""

    __slots__ = ("transport", "written", "received")

    def __init__(self, transport):
        self.transport = transport
        self.written = 0
        self.received = 0

    def write(self, data) -> None:
        self.written += len(data)
        self.transport.write(data)

    def __getattr__(self, name):
        return getattr(self.transport, name)


class LostClient:
    """The transport of a client that left while its request goes on
    (HttpSession._outlives_client): what the session would send it goes
    nowhere, and is counted as sent (the log's %B), as HAProxy counts it."""

    __slots__ = ("_gone", "written", "received")

    def __init__(self, gone: asyncio.BaseTransport):
        self._gone = gone
        self.written = getattr(gone, "written", 0)
        self.received = getattr(gone, "received", 0)

    def write(self, data: bytes) -> None:
        self.written += len(data)

    def writelines(self, parts) -> None:
        for part in parts:
            self.written += len(part)

    def get_extra_info(self, name: str, default=None):
        try:
            return self._gone.get_extra_info(name, default)
        except AttributeError:  # uvloop's closed transport has no socket to ask
            return default

    def is_closing(self) -> bool:
        return True

    def close(self) -> None:
        """Closed already."""

    def abort(self) -> None:
        """Closed already."""

    def pause_reading(self) -> None:
        """Closed already."""

    def resume_reading(self) -> None:
        """Closed already."""


def byte_counted_session(base):
    """base (an HTTP or TCP client session class) on a counting transport."""
    base_connection_made = base.connection_made
    base_data_received = base.data_received

    class ByteCountedSession(base):
        def connection_made(self, transport) -> None:
            # (haply.proxy.counters.Tracking.count_bytes) Set on the instance:
            # a compiled base (setup.py) reads its own field, not a subclass's
            # class attribute.
            self.counts_bytes = True
            base_connection_made(self, CountingTransport(transport))

        def data_received(self, data: bytes) -> None:
            self.transport.received += len(data)
            base_data_received(self, data)

    ByteCountedSession.__name__ = ByteCountedSession.__qualname__ = f"ByteCounted{base.__name__}"
    return ByteCountedSession
