"""Reach a TCP port inside a test namespace from the root namespace.

A socket keeps the namespace it was made in, whoever holds it later: the relay's
listening socket is made here (127.0.0.1:0 of the root namespace) and handed to
a process started inside the node's namespace, which accepts on it and connects
to the target from there. Nothing is added to the root namespace's links or
routes. Used to show a node's stats page to a browser running outside.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
from typing import Iterator

RELAY = r"""
import socket, sys, threading
listener = socket.socket(fileno=int(sys.argv[1]))
target = (sys.argv[2], int(sys.argv[3]))

def pump(src, dst):
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            dst.sendall(data)
    except OSError:
        pass
    finally:
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

for _ in range(1000):  # bounded: a test makes a handful of connections
    client, _ = listener.accept()
    try:
        server = socket.create_connection(target, timeout=5)
    except OSError:
        client.close()
        continue
    server.settimeout(None)
    threading.Thread(target=pump, args=(client, server), daemon=True).start()
    threading.Thread(target=pump, args=(server, client), daemon=True).start()
"""


@contextlib.contextmanager
def relay(namespace: str, host: str, port: int) -> Iterator[int]:
    """A port on 127.0.0.1 (root namespace) that leads to host:port in namespace."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    proc = subprocess.Popen(["ip", "netns", "exec", namespace, sys.executable, "-c", RELAY,
                             str(listener.fileno()), host, str(port)],
                            pass_fds=(listener.fileno(),), stdin=subprocess.DEVNULL)
    try:
        yield listener.getsockname()[1]
    finally:
        proc.kill()
        proc.wait(5)
        listener.close()
