"""A proxy under observation: HAProxy or haply on a configuration, in front
of a scripted server, with its log lines going to a syslog receiver and,
when the configuration has one, its stats socket ready."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from typing import Callable, Iterator

from tests.support.admin_cli import wait_no_sessions, wait_socket
from tests.support.haproxy_oracle import free_port, run_haproxy
from tests.support.scripted_backend import Conn, scripted_backend
from tests.support.syslog_receiver import Receiver


@contextlib.contextmanager
def observed_proxy(binary: str, handler: Callable[[Conn], None],
                   make_config: Callable[[int, int, str, str], str]) -> Iterator[tuple[int, Receiver, str]]:
    """The proxy on make_config(port, log_port, stats_socket_path, server_address),
    its start-up probe gone and logged: (port, receiver, stats_socket_path)."""
    receiver = Receiver()
    directory = tempfile.mkdtemp(prefix="observed-")
    socket_path = os.path.join(directory, "admin.sock")
    try:
        with scripted_backend(handler) as backend:
            port = free_port()
            config = make_config(port, receiver.port, socket_path, backend.address)
            with run_haproxy(config, binary):
                if socket_path in config:
                    wait_socket(socket_path)
                    wait_no_sessions(socket_path)
                receiver.lines(5, timeout=0.3)  # the start-up probe's line
                yield port, receiver, socket_path
    finally:
        receiver.close()
        shutil.rmtree(directory, ignore_errors=True)
