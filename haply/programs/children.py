"""Child processes of the program supervisor: how one is started, and the
files and kernel handles around it. No state: supervisor.py decides when.
"""

from __future__ import annotations

import asyncio
import grp
import os
import pwd
import signal
import subprocess

from haply.config.model import Program
from haply.programs import spec


class SpawnError(Exception):
    pass


def _load_prctl():
    try:
        import ctypes
        import ctypes.util

        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        return libc.prctl
    except (OSError, AttributeError):
        return None


_PRCTL = _load_prctl()
PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def parent_death_signal(number: int) -> None:
    """Ask the kernel to send `number` to this process when its parent dies
    (prctl(2) PR_SET_PDEATHSIG): a supervisor killed with SIGKILL leaves no
    API worker behind holding its port, which would make the next haply's
    instances fail to bind. Without prctl this is a no-op."""
    if _PRCTL is not None:
        _PRCTL(PR_SET_PDEATHSIG, int(number), 0, 0, 0)


def signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return str(number)


def describe_exit(code: int) -> str:
    """asyncio's returncode as words: "exit 3", "signal SIGKILL"."""
    return f"exit {code}" if code >= 0 else f"signal {signal_name(-code)}"


def child_setup(program: Program):
    """What the child does between fork and exec: drop every descriptor
    it inherited beyond stdio, then switch group and user.

    `close_fds` alone is not enough: uvloop's subprocess transport does not
    honour it, and the supervising process holds listening sockets made
    inheritable for a re-executed master. Marking them close-on-exec
    (rather than closing them) keeps the loop's own exec-error pipe
    working until the exec."""
    switch = credentials(program)
    parent = os.getpid()
    # A daemonizing command's process outlives the command on purpose.
    tie = None if program.daemon else parent_death_signal

    def setup() -> None:
        for name in os.listdir("/proc/self/fd"):
            fd = int(name)
            if fd > 2:
                try:
                    os.set_inheritable(fd, False)
                except OSError:
                    pass  # the directory's own descriptor, already closed
        if switch is not None:
            switch()
        if tie is not None:  # after the switch, which clears it
            tie(signal.SIGTERM)
            if os.getppid() != parent:  # the supervisor died before the tie
                os._exit(1)
    return setup


def credentials(program: Program):
    """A function for the child that switches user/group, or None."""
    if program.user is None and program.group is None:
        return None
    try:
        uid = gid = None
        if program.user is not None:
            entry = pwd.getpwuid(int(program.user)) if program.user.isdigit() else pwd.getpwnam(program.user)
            uid, gid = entry.pw_uid, entry.pw_gid
        if program.group is not None:
            gid = int(program.group) if program.group.isdigit() else grp.getgrnam(program.group).gr_gid
    except KeyError as exc:
        raise SpawnError(f"unknown user or group: {exc.args[0]}") from None

    def switch() -> None:
        # no supplementary groups (as HAProxy leaves its programs; needs
        # root), then the group, then the user
        if os.getuid() == 0:
            os.setgroups([])
        if gid is not None:
            os.setgid(gid)
        if uid is not None:
            os.setuid(uid)
    return switch


def open_output(path: str | None):
    if path is None:
        return subprocess.DEVNULL
    try:
        return os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)
    except OSError as exc:
        raise SpawnError(f"cannot open log file {path}: {exc.strerror}") from None


async def spawn(argv, launch: spec.Launch, program: Program) -> asyncio.subprocess.Process:
    """Start argv as a child for this program's instance (see child_setup)."""
    outputs = []
    try:
        stdout = open_output(launch.stdout)
        outputs.append(stdout)
        stderr = stdout if launch.stderr == launch.stdout else open_output(launch.stderr)
        outputs.append(stderr)
        return await asyncio.create_subprocess_exec(
            *argv, stdin=subprocess.DEVNULL, stdout=stdout, stderr=stderr, cwd=launch.cwd, env=launch.env,
            close_fds=True, start_new_session=True, preexec_fn=child_setup(program),
        )
    finally:
        for fd in set(outputs):
            if isinstance(fd, int) and fd >= 0:
                os.close(fd)


def open_pid(path: str) -> tuple[int, int] | None:
    """(pid, pidfd) of the live process a pidfile names, or None."""
    try:
        with open(path, encoding="ascii") as handle:
            text = handle.read().strip()
        pid = int(text) if text.isdigit() else 0
        if pid <= 1:
            return None
        fd = os.pidfd_open(pid)
    except (OSError, UnicodeDecodeError):
        return None
    try:
        # a zombie (exited, not yet reaped by its parent) is gone for us
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as stat:
            if stat.read().rpartition(")")[2].split()[:1] == ["Z"]:
                os.close(fd)
                return None
    except OSError:
        os.close(fd)
        return None
    return pid, fd


def write_pidfile(path: str, pid: int) -> None:
    """Atomically: a reader never sees a half-written file."""
    temporary = f"{path}.{os.getpid()}.tmp"
    with open(temporary, "w", encoding="ascii") as handle:
        handle.write(f"{pid}\n")
    os.replace(temporary, path)


__all__ = ["SpawnError", "child_setup", "credentials", "describe_exit", "open_output", "open_pid",
           "parent_death_signal", "signal_name", "spawn", "write_pidfile"]
