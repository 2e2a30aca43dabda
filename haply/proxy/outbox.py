"""The HTTP proxy's writes of one event-loop turn, handed to the kernel together.

A write to a socket whose reader sleeps wakes that reader; on a virtual
machine a wake-up across CPUs costs the writer about as much as the rest of
a small request's relay. Writing each answer the moment it is ready spaces
the writes of one turn apart by the Python work between them, so that the
load generator, or nginx, goes back to sleep between two of them and is
woken again. Sent one after the other at the end of the turn, the writes
of a turn wake each reader at most once (bench/RESULTS.md has the figures).

The order of the bytes on each connection is kept: every write of an HTTP
session and of its server connections goes through the outbox, and a
connection is closed, or half-closed, only after what the outbox holds was
sent (`send()` first). The delay is that of the rest of the turn: no timer,
no extra turn of the loop. Only small writes wait: a body's large reads go
at once, as before, so that memory and flow control stay as they were.
"""

from __future__ import annotations

import asyncio

from haply.proxy.byte_counts import CountingTransport, LostClient

# Larger writes (a body's reads) go at once, after what is held: a turn would
# keep them alive to its end, and their transport's flow control (pause_writing)
# must act while the read that produced them is still the last one.
HELD_AT_MOST = 16384


class Outbox:
    __slots__ = ("loop", "pending")

    def __init__(self, loop: asyncio.AbstractEventLoop):
        self.loop = loop
        self.pending: list[tuple[asyncio.Transport, bytes]] = []

    def write(self, transport, data: bytes) -> None:
        """data for transport, sent at the end of this turn of the loop (at
        once when large)."""
        if transport.__class__ is CountingTransport:
            # counted now: a log line written before the end of the turn
            # (%B, %U) includes it, as it did when written at once
            transport.written += len(data)
            transport = transport.transport
        elif transport.__class__ is LostClient:
            transport.write(data)  # goes nowhere, counted now
            return
        if len(data) > HELD_AT_MOST:
            self.send()
            transport.write(data)
            return
        pending = self.pending
        if not pending:
            self.loop.call_soon(self.send)
        pending.append((transport, data))

    def send(self) -> None:
        """Everything held, in order; a transport closed meanwhile (its peer
        left) is skipped."""
        pending = self.pending
        if pending:
            self.pending = []
            for transport, data in pending:
                if not transport.is_closing():
                    transport.write(data)
