"""A server that records what a proxy sends first on each connection (a
PROXY header, when the server line has send-proxy), and answers an HTTP
request with 200."""

from __future__ import annotations

import socket
import threading

SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"


class Recorder:
    """A server that records the first bytes of every connection and answers
    an HTTP request with 200 (a PROXY header, when any, comes before it)."""

    def __init__(self):
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.seen: list[bytes] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn):
        data = b""
        conn.settimeout(1.0)
        try:
            while b"\r\n\r\n" not in data.rpartition(SIGNATURE)[2] or not data.strip():
                chunk = conn.recv(4096)
                if not chunk:
                    break
                data += chunk
                if data == _local_v2():  # a v2 check that sends nothing after it
                    break
            if b"HTTP/1." in data:
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
        except OSError:
            pass
        finally:
            self.seen.append(data)
            conn.close()

    def close(self):
        self.sock.close()


def _local_v2() -> bytes:
    return SIGNATURE + b"\x20\x00\x00\x00"
