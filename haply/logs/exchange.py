"""The times and byte counts of one HTTP exchange, kept only when its
frontend logs (haply.proxy.http fills them in, haply.logs.logger writes them).
Compiled with the request path: the session reads and writes them as C fields."""

from __future__ import annotations


class Exchange:
    def __init__(self, begin: float, wall: float, bytes_out: int, bytes_in: int) -> None:
        self.begin = begin  # loop time of the request's first byte
        self.wall = wall  # and its wall-clock time (%tr)
        self.headers_at: float | None = None  # the request head was complete (end of TR)
        self.response_at: float | None = None  # the response head came (end of Tr)
        self.status: int | None = None
        # the connection's bytes out and in when the request began (%B, %U)
        self.bytes_out = bytes_out
        self.bytes_in = bytes_in
        self.logged = False  # `option logasap`: its line is written (haply.logs.hooks)
