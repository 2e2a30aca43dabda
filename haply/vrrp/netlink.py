"""Adding and removing an address: one rtnetlink request, answered in place.

This is the step between "the Master_Down_Interval has passed" and "the
address answers", so it is on the failover's critical path. pyroute2 took
0.4-0.9 ms per change here (message objects built and parsed in Python, and a
hop to the thread its IPRoute lives on); the request below is a 40-byte struct
written to a netlink socket of our own and its acknowledgement read back, about
a twentieth of that (bench/vrrp_failover.py, "timer late"). pyroute2 still does
the start-up work (interface lookups, listing addresses), where time does not
matter.

Message layout: rtnetlink(7) and <linux/if_addr.h>: nlmsghdr, ifaddrmsg, then
IFA_LOCAL and IFA_ADDRESS (the same address, as `ip addr add` sends for an
address without a peer), and IFA_BROADCAST / IFA_LABEL when configured. An IPv6
address is added with IFA_F_NODAD: duplicate address detection would hold it
"tentative" (unusable) for a second or more, and VRRP has already made sure that
no other node holds it.
"""

from __future__ import annotations

import itertools
import os
import socket
import struct

NETLINK_ROUTE = 0
RTM_NEWADDR, RTM_DELADDR = 20, 21
NLMSG_ERROR = 2
NLM_F_REQUEST, NLM_F_ACK, NLM_F_EXCL, NLM_F_CREATE = 0x1, 0x4, 0x200, 0x400
IFA_ADDRESS, IFA_LOCAL, IFA_LABEL, IFA_BROADCAST = 1, 2, 3, 4
IFA_F_NODAD = 0x02
NLMSGHDR = struct.Struct("=IHHII")  # length, type, flags, sequence, port id
IFADDRMSG = struct.Struct("=BBBBI")  # family, prefix length, flags, scope, ifindex
RTATTR = struct.Struct("=HH")
ACK_TIMEOUT = 5.0  # a kernel that does not answer netlink in 5 s is wedged
IFNAMSIZ = 16


def _attr(kind: int, data: bytes) -> bytes:
    length = RTATTR.size + len(data)
    return RTATTR.pack(length, kind) + data + b"\0" * (-length % 4)


def address_request(add: bool, seq: int, index: int, address: str, prefixlen: int,
                    broadcast: str | None = None, label: str | None = None,
                    scope: int = 0) -> bytes:
    """The RTM_NEWADDR (add, failing if present) or RTM_DELADDR message."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    packed = socket.inet_pton(family, address)
    flags = IFA_F_NODAD if family == socket.AF_INET6 and add else 0
    body = IFADDRMSG.pack(family, prefixlen, flags, scope, index)
    body += _attr(IFA_LOCAL, packed) + _attr(IFA_ADDRESS, packed)
    if add and broadcast:
        body += _attr(IFA_BROADCAST, socket.inet_aton(broadcast))
    if add and label:
        body += _attr(IFA_LABEL, label.encode()[:IFNAMSIZ - 1] + b"\0")
    flags = NLM_F_REQUEST | NLM_F_ACK | ((NLM_F_CREATE | NLM_F_EXCL) if add else 0)
    kind = RTM_NEWADDR if add else RTM_DELADDR
    return NLMSGHDR.pack(NLMSGHDR.size + len(body), kind, flags, seq, 0) + body


def ack_error(data: bytes, seq: int) -> int | None:
    """The errno of our request's acknowledgement in data (0: done), or None
    when data holds no answer to seq."""
    offset = 0
    while offset + NLMSGHDR.size <= len(data):
        length, kind, _flags, got_seq, _pid = NLMSGHDR.unpack_from(data, offset)
        if length < NLMSGHDR.size:
            break
        if kind == NLMSG_ERROR and got_seq == seq and length >= NLMSGHDR.size + 4:
            (code,) = struct.unpack_from("=i", data, offset + NLMSGHDR.size)
            return -code
        offset += (length + 3) & ~3
    return None


class AddressSocket:
    """One rtnetlink socket for address changes; each call waits for its ack."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_ROUTE)
        self.sock.bind((0, 0))
        self.sock.settimeout(ACK_TIMEOUT)
        self._seq = itertools.count(1)

    def change(self, add: bool, index: int, address: str, prefixlen: int,
               broadcast: str | None = None, label: str | None = None, scope: int = 0) -> None:
        """Add or remove; raises OSError with the kernel's errno on refusal
        (EEXIST: already there; EADDRNOTAVAIL: not there)."""
        seq = next(self._seq)
        self.sock.send(address_request(add, seq, index, address, prefixlen, broadcast, label,
                                       scope))
        while True:
            code = ack_error(self.sock.recv(65536), seq)
            if code is None:
                continue  # an answer to an earlier, abandoned request
            if code:
                raise OSError(code, f"{'adding' if add else 'removing'} {address}/{prefixlen}: "
                                    f"{os.strerror(code)}")
            return

    def close(self) -> None:
        self.sock.close()

