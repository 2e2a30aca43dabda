"""A server's address at start: `init-addr` (configuration manual, 5.2).

A server named by host rather than by IP address gets its address once, at start,
by the methods `init-addr` lists, tried in order until one gives an address:

- `last`: the address the server-state file saved (the server's address before
  a reload or restart), when the backend loads one;
- `libc`: the system's resolver (getaddrinfo);
- `none`: start without an address: the server stays in maintenance
  ("MAINT (resolution)") until an operator gives it one (`set server B/S addr`);
- an IP address: that address.

The default is `last,libc`. When every method fails, haply does not start, and
says which server and which methods. A server written with an IP address is
never looked up. The hot path never resolves: a server has its address, or is
out of rotation.
"""

from __future__ import annotations

import ipaddress
import socket
from typing import Callable

DEFAULT_METHODS = ("last", "libc")


class AddressError(Exception):
    """No method of init-addr gave the server an address."""


def is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def libc_lookup(host: str) -> str:
    infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    return infos[0][4][0]


def initial_address(host: str, methods: tuple[str, ...] = (), last: str | None = None,
                    lookup: Callable[[str], str] = libc_lookup) -> str | None:
    """The address to start with, None for `none` (start in maintenance), or
    AddressError. `last` is the saved address, if any; lookup(host) resolves
    (it raises OSError when the name does not resolve)."""
    if is_ip(host):
        return host
    failures = []
    for method in methods or DEFAULT_METHODS:
        if method == "last":
            if last:
                return last
            failures.append("no saved address (last)")
        elif method == "libc":
            try:
                return lookup(host)
            except OSError as exc:
                failures.append(f"the resolver failed (libc): {exc.strerror or exc}")
        elif method == "none":
            return None
        else:  # an IP address, checked by the configuration parser
            return method
    tried = ",".join(methods or DEFAULT_METHODS)
    raise AddressError(f"cannot resolve address '{host}' (init-addr {tried}): {'; '.join(failures)}")


__all__ = ["AddressError", "DEFAULT_METHODS", "initial_address", "is_ip", "libc_lookup"]
