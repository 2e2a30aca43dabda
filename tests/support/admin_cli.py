"""Talking to a `stats socket` the way operators do: with socat."""

from __future__ import annotations

import csv
import io
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


def wait_no_sessions(path: str, timeout: float = 5.0) -> None:
    """Wait until no row of `show stat` counts a current session (scur).

    A client may have closed while the proxy has not released its session yet
    (the probe that waits for a port, the previous request): a test that counts
    sessions or connections waits for this first, whichever proxy it runs.
    """
    deadline = time.monotonic() + timeout
    while True:
        lines = [line for line in cli(path, "show stat").split("\n") if line]
        if lines:
            header = lines[0][2:].split(",")
            current = header.index("scur")
            if all(row.split(",")[current] in ("", "0") for row in lines[1:]):
                return
        if time.monotonic() > deadline:
            raise AssertionError(f"sessions still open after {timeout} s:\n" + "\n".join(lines))
        time.sleep(0.01)


def stat_rows(path: str) -> list[dict[str, str]]:
    """`show stat` on a unix socket, one dict per row, by column name."""
    return list(csv.DictReader(io.StringIO(cli(path, "show stat").lstrip("# "))))


def stat_counts(path: str, proxies: tuple[str, ...], columns: tuple[str, ...]) -> dict[str, dict[str, str]]:
    """Those columns of `show stat` for the rows of those proxies, by "proxy/row"."""
    return {f"{row['pxname']}/{row['svname']}": {column: row[column] for column in columns}
            for row in stat_rows(path) if row["pxname"] in proxies}
