"""Talking to a `stats socket` the way operators do: with socat."""

from __future__ import annotations

import os
import socket
import subprocess
import time

SOCAT = "/usr/bin/socat"


def wait_socket(path: str, timeout: float = 5.0) -> None:
    """Wait until a unix socket accepts connections (it opens after the listeners)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if os.path.exists(path):
            probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                probe.connect(path)
                return
            except OSError:
                pass
            finally:
                probe.close()
        time.sleep(0.02)
    raise TimeoutError(f"no stats socket at {path}")


def socat(address: str, text: str, timeout: float = 5.0) -> str:
    """Send text to address (a unix path, or TCP:host:port) and return the answer."""
    target = address if address.startswith("TCP:") else f"UNIX-CONNECT:{address}"
    result = subprocess.run([SOCAT, "-t", "2", "-", target], input=text.encode(),
                            capture_output=True, timeout=timeout)
    return result.stdout.decode()


def cli(path: str, command: str) -> str:
    return socat(path, command + "\n")


def ask(path: str, command: str, timeout: float = 30.0) -> str:
    """One command on a unix socket (stats or master socket), read to the close."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(path)
        sock.sendall(command.encode() + b"\n")
        chunks = []
        while True:
            data = sock.recv(65536)
            if not data:
                break
            chunks.append(data)
    return b"".join(chunks).decode()
