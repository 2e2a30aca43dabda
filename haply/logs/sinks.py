"""Where log lines go, without ever blocking the proxy.

Datagram sinks (UDP syslog, the /dev/log unix socket) send with a non-blocking
socket: a full socket buffer or an absent receiver drops the line and counts it.
Stream sinks (stdout, stderr: containers) hand lines to one writer thread
through a bounded queue; when the queue is full the line is dropped and counted.
Nothing is ever queued without bound.
"""

from __future__ import annotations

import asyncio
import collections
import os
import socket
import threading

# Lines a stream sink holds while its reader is slow; beyond, lines are dropped.
STREAM_QUEUE = 4096
SYSLOG_PORT = 514  # RFC 5426


class DatagramSink:
    def __init__(self, address: str):
        self.dropped = 0
        self.sent = 0
        if address.startswith("/") or address.startswith("unix@"):
            path = address.removeprefix("unix@")
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            self.target = path
        else:
            text = address
            for prefix in ("udp@", "udp4@", "ipv4@", "udp6@", "ipv6@"):
                text = text.removeprefix(prefix)
            host, _, port = text.rpartition(":") if text.count(":") == 1 or text.startswith("[") \
                else (text, "", "")
            if not host:
                host, port = text, ""
            host = host.strip("[]")
            family = socket.AF_INET6 if ":" in host else socket.AF_INET
            self.sock = socket.socket(family, socket.SOCK_DGRAM)
            self.target = (host, int(port) if port else SYSLOG_PORT)
        self.sock.setblocking(False)
        self.pending: list[bytes] = []  # lines of this turn of the loop (send)
        # A UDP socket is connected once: each line is then a send() without
        # an address to convert and a route to look up (a line per request).
        # Not a unix socket: a syslog daemon that restarts makes a new
        # /dev/log, which only sendto with the path reaches.
        self.connected = False
        if self.sock.family != socket.AF_UNIX:
            try:
                self.sock.connect(self.target)
                self.connected = True
            except OSError:
                pass

    def send(self, data: bytes) -> None:
        """Send at the end of this turn of the event loop, with the other
        lines of the turn (each its own datagram). Back to back, a receiver
        that the first line woke is still awake for the next: sent one by
        one between requests, every line would wake it again, which costs the
        sender more than formatting the line (kernel wake-ups across CPUs)."""
        pending = self.pending
        pending.append(data)
        if len(pending) == 1:
            loop = asyncio._get_running_loop()  # None rather than an exception
            if loop is not None:
                loop.call_soon(self.flush)
            else:  # no loop runs (start-up, a check): now
                self.flush()

    def flush(self) -> None:
        pending, self.pending = self.pending, []
        sock, target, connected = self.sock, self.target, self.connected
        for data in pending:
            try:
                if connected:
                    sock.send(data)
                else:
                    sock.sendto(data, target)
                self.sent += 1
            except OSError:  # EAGAIN, ENOBUFS, ECONNREFUSED, no /dev/log: drop
                self.dropped += 1

    def close(self) -> None:
        if self.pending:
            self.flush()
        self.sock.close()


class StreamSink:
    """stdout/stderr through a bounded queue and one writer thread."""

    def __init__(self, fd: int, limit: int = STREAM_QUEUE):
        self.fd = fd
        self.dropped = 0
        self.sent = 0
        self.queue: collections.deque[bytes] = collections.deque()
        self.limit = limit
        self.ready = threading.Condition(threading.Lock())
        self.closed = False
        self.thread = threading.Thread(target=self._run, name="haply-log-writer", daemon=True)
        self.thread.start()

    def send(self, data: bytes) -> None:
        queue = self.queue
        if len(queue) >= self.limit:
            self.dropped += 1
            return
        queue.append(data if data.endswith(b"\n") else data + b"\n")
        if len(queue) == 1:
            with self.ready:
                self.ready.notify()

    def _run(self) -> None:
        queue = self.queue
        while True:
            with self.ready:
                while not queue and not self.closed:
                    self.ready.wait(0.5)
            if self.closed and not queue:
                return
            lines = []
            while queue and len(lines) < 256:
                lines.append(queue.popleft())
            try:
                os.write(self.fd, b"".join(lines))
                self.sent += len(lines)
            except OSError:
                self.dropped += len(lines)

    def close(self) -> None:
        with self.ready:
            self.closed = True
            self.ready.notify()
        self.thread.join(timeout=1)


def open_sink(address: str):
    if address == "stdout" or address == "fd@1":
        return StreamSink(1)
    if address == "stderr" or address == "fd@2":
        return StreamSink(2)
    return DatagramSink(address)
