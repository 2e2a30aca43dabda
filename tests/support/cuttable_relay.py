"""A TCP relay on loopback whose connections a test can cut, and keep cut
for a while: what a network failure between two nodes looks like to them.

Each listening port relays to one target port. `cut()` closes every relayed
connection (both sides see the end) and, until `mend()`, a new connection is
accepted and closed at once, so the nodes keep trying and failing.
"""

from __future__ import annotations

import socket
import threading


class CuttableRelay:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.open: list[socket.socket] = []  # both ends of every relayed connection
        self.listeners: list[socket.socket] = []
        self.is_cut = False
        self.cuts = 0

    def relay_to(self, port: int) -> int:
        """A new listening port that relays to 127.0.0.1:port."""
        listener = socket.create_server(("127.0.0.1", 0))
        self.listeners.append(listener)
        threading.Thread(target=self._accept, args=(listener, port), daemon=True).start()
        return listener.getsockname()[1]

    def cut(self) -> None:
        with self.lock:
            self.is_cut = True
            self.cuts += 1
            for sock in self.open:
                _close(sock)
            self.open.clear()

    def mend(self) -> None:
        with self.lock:
            self.is_cut = False

    def close(self) -> None:
        for listener in self.listeners:
            _close(listener)
        self.cut()

    def _accept(self, listener: socket.socket, port: int) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            with self.lock:
                refused = self.is_cut
            if refused:
                _close(client)
                continue
            try:
                server = socket.create_connection(("127.0.0.1", port), timeout=2.0)
            except OSError:
                _close(client)
                continue
            with self.lock:
                if self.is_cut:
                    _close(client)
                    _close(server)
                    continue
                self.open += [client, server]
            for source, sink in ((client, server), (server, client)):
                threading.Thread(target=_pump, args=(source, sink), daemon=True).start()


def _pump(source: socket.socket, sink: socket.socket) -> None:
    try:
        while True:
            data = source.recv(65536)
            if not data:
                break
            sink.sendall(data)
    except OSError:
        pass
    _close(source)
    _close(sink)


def _close(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()
