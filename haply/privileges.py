"""`chroot`, `group` and `user` from the global section, applied after binding.

Listening sockets are bound first (ports below 1024 need root), then the process
confines itself: chroot, then the group, then the user, in that order because each
step needs the privilege the next one gives up. Whatever haply needs from the file
system after this (modules imported later, name resolution data) must already be
loaded, hence the imports below: inside an empty chroot a lazy import would fail at
the first health check.
"""

from __future__ import annotations

import grp
import os
import pwd

# Loaded now because they cannot be found once the root directory has changed.
import encodings.idna  # noqa: F401  (host names in health checks and servers)
import ssl  # noqa: F401  (TLS health checks and binds)

import haply.health.probes  # noqa: F401

from haply.config.model import Global


class PrivilegeError(Exception):
    pass


def drop_privileges(settings: Global) -> None:
    if not (settings.chroot or settings.user or settings.group):
        return
    if os.geteuid() != 0:
        raise PrivilegeError(
            "'user', 'group' and 'chroot' need haply to start as root "
            f"(running as uid {os.geteuid()}); remove them or start haply as root")
    uid = gid = None
    if settings.user:
        try:
            entry = pwd.getpwnam(settings.user)
        except KeyError:
            raise PrivilegeError(f"user '{settings.user}' does not exist") from None
        uid, gid = entry.pw_uid, entry.pw_gid
    if settings.group:
        try:
            gid = grp.getgrnam(settings.group).gr_gid
        except KeyError:
            raise PrivilegeError(f"group '{settings.group}' does not exist") from None
    if settings.chroot:
        try:
            os.chroot(settings.chroot)
            os.chdir("/")
        except OSError as exc:
            raise PrivilegeError(f"cannot chroot to {settings.chroot}: {exc.strerror}") from exc
    if gid is not None:
        os.setgroups([])
        os.setgid(gid)
    if uid is not None:
        os.setuid(uid)
