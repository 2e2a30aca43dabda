"""A UDP syslog receiver on 127.0.0.1 for the proxies' log lines."""

from __future__ import annotations

import re
import socket
import time

RFC3164 = re.compile(rb"<(\d{1,3})>([A-Z][a-z]{2}) ([ \d]\d) \d\d:\d\d:\d\d (\S+)\[(\d+)\]: (.*)")


class Receiver:
    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]

    def lines(self, count: int, timeout: float = 5.0) -> list[bytes]:
        found: list[bytes] = []
        deadline = time.monotonic() + timeout
        while len(found) < count and time.monotonic() < deadline:
            try:
                found.append(self.sock.recv(65535))
            except socket.timeout:
                pass
        return found

    def messages(self, count: int, timeout: float = 5.0) -> list[str]:
        """The next `count` lines' messages (what follows "tag[pid]: ")."""
        return [RFC3164.fullmatch(line.rstrip(b"\n")).group(6).decode()
                for line in self.lines(count, timeout)]

    def close(self) -> None:
        self.sock.close()
