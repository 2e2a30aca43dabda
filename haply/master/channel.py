"""Messages between the master and a worker: one JSON object per line over a
socketpair both ends inherit at fork.

A line protocol is enough: the messages are small (state changes, a stats
snapshot a second) and JSON never contains a raw newline. Both ends use the
same asyncio.Protocol; what a message means is up to its handler.
"""

from __future__ import annotations

import asyncio
import json
from typing import Callable

# A peer that sends a line longer than this is broken; the channel closes rather
# than buffer without bound.
MAX_LINE = 64 * 1024 * 1024


class Channel(asyncio.Protocol):
    def __init__(self, on_message: Callable[[dict], None],
                 on_closed: Callable[[], None] | None = None) -> None:
        self.on_message = on_message
        self.on_closed = on_closed
        self.transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self.closed = False

    def connection_made(self, transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        start = 0
        while True:
            end = self._buffer.find(b"\n", start)
            if end < 0:
                break
            line = bytes(self._buffer[start:end])
            start = end + 1
            try:
                message = json.loads(line)
            except ValueError:
                continue  # cannot happen between haply processes; never fatal
            self.on_message(message)
        del self._buffer[:start]
        if len(self._buffer) > MAX_LINE:
            self.transport.close()

    def connection_lost(self, exc) -> None:
        self.closed = True
        if self.on_closed is not None:
            self.on_closed()

    def send(self, message: dict) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(encode(message))

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


def encode(message: dict) -> bytes:
    return json.dumps(message, separators=(",", ":")).encode() + b"\n"


async def open_channel(loop: asyncio.AbstractEventLoop, sock, on_message,
                       on_closed=None) -> Channel:
    _, channel = await loop.connect_accepted_socket(
        lambda: Channel(on_message, on_closed), sock=sock)
    return channel
