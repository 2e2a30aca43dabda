"""The raw IPPROTO_VRRP socket of one instance.

One socket per instance, bound to its interface with SO_BINDTODEVICE: it sees
every VRRP packet on that link and the instance filters by VRID (`packet.check`).
The kernel writes the IP header: TTL 255 via IP_MULTICAST_TTL / IP_TTL (RFC 5798
5.1.1.3), our source address via IP_PKTINFO so a host with several addresses
still advertises from the one peers know (unicast_src_ip or the primary).
Multicast loop is off: we never hear ourselves.
"""

from __future__ import annotations

import socket
import struct

from haply.vrrp.packet import IPPROTO_VRRP, VRRP_GROUP, VRRP_TTL

IPTOS_PREC_INTERNETCONTROL = 0xC0  # RFC 791 precedence 6, what routers' control traffic uses
RECV_SIZE = 65535  # read whole datagrams; the codec refuses oversized ones
SOL_IP = socket.IPPROTO_IP
IP_PKTINFO = getattr(socket, "IP_PKTINFO", 8)


def _mreqn(group: str, address: str, ifindex: int) -> bytes:
    return socket.inet_aton(group) + socket.inet_aton(address) + struct.pack("@i", ifindex)


class VrrpSocket:
    def __init__(self, ifname: str, ifindex: int, src_ip: str, unicast_peers: tuple[str, ...] = ()):
        self.ifname, self.ifindex, self.src_ip = ifname, ifindex, src_ip
        self.peers = unicast_peers
        s = socket.socket(socket.AF_INET, socket.SOCK_RAW, IPPROTO_VRRP)
        try:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, ifname.encode())
            s.setsockopt(SOL_IP, socket.IP_TOS, IPTOS_PREC_INTERNETCONTROL)
            s.setsockopt(SOL_IP, socket.IP_TTL, VRRP_TTL)
            s.setsockopt(SOL_IP, socket.IP_MULTICAST_TTL, VRRP_TTL)
            s.setsockopt(SOL_IP, socket.IP_MULTICAST_LOOP, 0)
            s.setsockopt(SOL_IP, socket.IP_MULTICAST_IF, _mreqn(VRRP_GROUP, src_ip, ifindex))
            if not unicast_peers:
                s.setsockopt(SOL_IP, socket.IP_ADD_MEMBERSHIP, _mreqn(VRRP_GROUP, "0.0.0.0", ifindex))
            s.setblocking(False)
        except BaseException:
            s.close()
            raise
        self.sock = s

    def fileno(self) -> int:
        return self.sock.fileno()

    @property
    def destinations(self) -> tuple[str, ...]:
        return self.peers or (VRRP_GROUP,)

    def send(self, payload: bytes, dst: str) -> None:
        pktinfo = struct.pack("@i4s4s", self.ifindex, socket.inet_aton(self.src_ip), b"\0" * 4)
        self.sock.sendmsg([payload], [(SOL_IP, IP_PKTINFO, pktinfo)], 0, (dst, 0))

    def recv(self) -> bytes | None:
        try:
            return self.sock.recv(RECV_SIZE)
        except (BlockingIOError, InterruptedError):
            return None

    def close(self) -> None:
        self.sock.close()
