"""A proxy under observation: HAProxy or haply on a configuration, in front
of a test server, with its log lines going to a syslog receiver and, when the
configuration has one, its stats socket ready."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from typing import Callable, ContextManager, Iterator

from tests.support.admin_cli import wait_no_sessions, wait_socket
from tests.support.haproxy_oracle import echo_backends, free_port, run_haproxy
from tests.support.scripted_backend import Conn, scripted_backend
from tests.support.syslog_receiver import Receiver


@contextlib.contextmanager
def scripted(handler: Callable[[Conn], None]) -> Iterator[str]:
    """A scripted server running handler on each connection: its address."""
    with scripted_backend(handler) as backend:
        yield backend.address


@contextlib.contextmanager
def echoing(name: str) -> Iterator[str]:
    """An echo server that names itself name: its address."""
    with echo_backends([name]) as (backend,):
        yield backend.address


@contextlib.contextmanager
def observed_proxy(binary: str, make_config: Callable[[int, int, str, str], str],
                   server: ContextManager[str]) -> Iterator[tuple[int, Receiver, str]]:
    """The proxy on make_config(port, log_port, stats_socket_path, server_address),
    in front of server, its start-up probe gone and logged: (port, receiver,
    stats_socket_path)."""
    receiver = Receiver()
    directory = tempfile.mkdtemp(prefix="observed-")
    socket_path = os.path.join(directory, "admin.sock")
    try:
        with server as address:
            port = free_port()
            config = make_config(port, receiver.port, socket_path, address)
            with run_haproxy(config, binary):
                if socket_path in config:
                    wait_socket(socket_path)
                    wait_no_sessions(socket_path)
                receiver.lines(5, timeout=0.3)  # the start-up probe's line
                yield port, receiver, socket_path
    finally:
        receiver.close()
        shutil.rmtree(directory, ignore_errors=True)


def httplog_fields(message: str) -> tuple[str, ...]:
    """server, status, termination, request of an httplog line (times and
    byte counts differ in ways the proxies are free to)."""
    words = message.split("] ", 1)[1].split(" ", 10)
    return words[1], words[3], words[7], words[10]
