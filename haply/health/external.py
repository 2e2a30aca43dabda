"""`option external-check`: a program judges a server's health by its exit
status (HAProxy manual, "external-check command").

The program gets `<proxy_address> <proxy_port> <server_address> <server_port>`
and, as its whole environment, the HAPROXY_* variables below and PATH from
`external-check path` (empty by default): what HAProxy 2.6 gives it,
observed. Exit status 0 is PROCOK, any other PROCERR with that status as its
code (255 when the program cannot be run), and a program still running one
`inter` after it started is killed: PROCTOUT.

`command_line` is pure; `run` starts the process and waits for it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
from dataclasses import dataclass

from haply.health.probes import CheckResult

log = logging.getLogger("haply.health")

NOT_USED = "NOT_USED"  # a backend has no listener to name
EXEC_FAILED = 255  # the exit status HAProxy reports when the program cannot be run


@dataclass(frozen=True, slots=True)
class ExternalCheck:
    """What an external check runs for one server, fixed at load."""

    command: str
    path: str  # PATH for the program: `external-check path`, "" by default
    proxy_address: str  # the proxy's first listener, or NOT_USED
    proxy_port: str
    proxy_id: int
    proxy_name: str
    server_id: int
    server_name: str
    server_maxconn: int
    ssl: bool
    protocol: str  # "h1" in mode http, "tcp" otherwise


def command_line(check: ExternalCheck, address: str, port: int | None,
                 current_sessions: int) -> tuple[list[str], dict[str, str]]:
    """(argv, environment) for one run against the server at address:port."""
    server_port = str(port) if port is not None else ""
    argv = [check.command, check.proxy_address, check.proxy_port, address, server_port]
    listener = check.proxy_address != NOT_USED
    environment = {
        "HAPROXY_PROXY_ADDR": check.proxy_address if listener else "",
        "HAPROXY_PROXY_ID": str(check.proxy_id),
        "HAPROXY_PROXY_NAME": check.proxy_name,
        "HAPROXY_PROXY_PORT": check.proxy_port if listener else "",
        "HAPROXY_SERVER_ADDR": address,
        "HAPROXY_SERVER_CURCONN": str(current_sessions),
        "HAPROXY_SERVER_ID": str(check.server_id),
        "HAPROXY_SERVER_MAXCONN": str(check.server_maxconn),
        "HAPROXY_SERVER_NAME": check.server_name,
        "HAPROXY_SERVER_PORT": server_port,
        "HAPROXY_SERVER_PROTO": check.protocol,
        "HAPROXY_SERVER_SSL": "1" if check.ssl else "0",
        "PATH": check.path,
    }
    return argv, environment


async def run(check: ExternalCheck, address: str, port: int | None, current_sessions: int,
              timeout: float) -> CheckResult:
    loop = asyncio.get_running_loop()
    started = loop.time()
    argv, environment = command_line(check, address, port, current_sessions)
    try:
        process = await asyncio.create_subprocess_exec(
            *argv, env=environment, stdin=subprocess.DEVNULL, start_new_session=True)
    except OSError as exc:
        log.error("Failed to exec process for external health check: %s.", exc.strerror)
        return CheckResult("PROCERR", code=EXEC_FAILED, duration=loop.time() - started)
    try:
        status = await asyncio.wait_for(process.wait(), timeout)
    except asyncio.TimeoutError:
        log.warning("kill %d", process.pid)  # HAProxy's words
        _end(process)
        return CheckResult("PROCTOUT", code=0, duration=loop.time() - started)
    except asyncio.CancelledError:  # the checks stop: so does the program
        _end(process)
        raise
    duration = loop.time() - started
    if status == 0:
        return CheckResult("PROCOK", code=0, duration=duration)
    return CheckResult("PROCERR", code=status, duration=duration)


def _end(process: asyncio.subprocess.Process) -> None:
    """Stop a program that outlived its check, and whatever it started (its
    own session), then reap it in the background."""
    try:
        os.killpg(process.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    asyncio.get_running_loop().create_task(_reap(process))


async def _reap(process: asyncio.subprocess.Process) -> None:
    try:
        await asyncio.wait_for(process.wait(), 5.0)
    except asyncio.TimeoutError:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            return
        await process.wait()


__all__ = ["EXEC_FAILED", "ExternalCheck", "NOT_USED", "command_line", "run"]
