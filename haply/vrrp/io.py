"""The raw IPPROTO_VRRP socket of one instance, IPv4 or IPv6.

One socket per instance, bound to its interface with SO_BINDTODEVICE: it sees
every VRRP packet on that link and the instance filters by VRID (`packet.check`).
The kernel writes the IP header: TTL / hop limit 255 (RFC 5798 5.1.1.3,
5.1.2.3), our source address via IP_PKTINFO / IPV6_PKTINFO so a host with several
addresses still advertises from the one peers know (unicast_src_ip, else the
primary IPv4 address or the IPv6 link-local one). Multicast loop is off: we never
hear ourselves.

`recv()` returns a `packet.Received` (None when nothing is waiting) or raises
`packet.PacketError`. An IPv4 raw socket hands over the whole datagram, so its
TTL is read from the header; an IPv6 one gives the payload alone, and the hop
limit and destination come as ancillary data. The IPv6 checksum is computed
and verified here rather than by the kernel (IPV6_CHECKSUM), so that a packet
with a wrong one is counted like any other bad packet instead of vanishing.
"""

from __future__ import annotations

import socket
import struct

from haply.vrrp.packet import (IPPROTO_VRRP, VRRP_GROUP, VRRP_GROUP6, VRRP_TTL, Received,
                               decode_ip, received_ipv6)

IPTOS_PREC_INTERNETCONTROL = 0xC0  # RFC 791 precedence 6, what routers' control traffic uses
RECV_SIZE = 65535  # read whole datagrams; the codec refuses oversized ones
SOL_IP = socket.IPPROTO_IP
IP_PKTINFO = getattr(socket, "IP_PKTINFO", 8)
SOL_IPV6 = socket.IPPROTO_IPV6
IPV6_PKTINFO = getattr(socket, "IPV6_PKTINFO", 50)
IPV6_RECVPKTINFO = getattr(socket, "IPV6_RECVPKTINFO", 49)
IPV6_HOPLIMIT = getattr(socket, "IPV6_HOPLIMIT", 52)
IPV6_RECVHOPLIMIT = getattr(socket, "IPV6_RECVHOPLIMIT", 51)
IPV6_TCLASS = getattr(socket, "IPV6_TCLASS", 67)
IN6_PKTINFO = struct.Struct("@16sI")  # struct in6_pktinfo: address, interface index
ANCILLARY_SIZE = socket.CMSG_SPACE(IN6_PKTINFO.size) + socket.CMSG_SPACE(4)


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

    def recv(self) -> Received | None:
        try:
            data = self.sock.recv(RECV_SIZE)
        except (BlockingIOError, InterruptedError):
            return None
        return decode_ip(data)

    def close(self) -> None:
        self.sock.close()


class VrrpSocket6(VrrpSocket):
    """The IPv6 socket: VRRPv3 to ff02::12 (RFC 5798 5.1.2), from the
    interface's link-local address unless unicast_src_ip says otherwise."""

    def __init__(self, ifname: str, ifindex: int, src_ip: str, unicast_peers: tuple[str, ...] = ()):
        self.ifname, self.ifindex, self.src_ip = ifname, ifindex, src_ip
        self.peers = unicast_peers
        self.src_packed = socket.inet_pton(socket.AF_INET6, src_ip)
        s = socket.socket(socket.AF_INET6, socket.SOCK_RAW, IPPROTO_VRRP)
        try:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, ifname.encode())
            s.setsockopt(SOL_IPV6, IPV6_TCLASS, IPTOS_PREC_INTERNETCONTROL)
            s.setsockopt(SOL_IPV6, socket.IPV6_UNICAST_HOPS, VRRP_TTL)
            s.setsockopt(SOL_IPV6, socket.IPV6_MULTICAST_HOPS, VRRP_TTL)
            s.setsockopt(SOL_IPV6, socket.IPV6_MULTICAST_LOOP, 0)
            s.setsockopt(SOL_IPV6, socket.IPV6_MULTICAST_IF, ifindex)
            s.setsockopt(SOL_IPV6, IPV6_RECVPKTINFO, 1)
            s.setsockopt(SOL_IPV6, IPV6_RECVHOPLIMIT, 1)
            if not unicast_peers:
                mreq = socket.inet_pton(socket.AF_INET6, VRRP_GROUP6) + struct.pack("@I", ifindex)
                s.setsockopt(SOL_IPV6, socket.IPV6_JOIN_GROUP, mreq)
            s.setblocking(False)
        except BaseException:
            s.close()
            raise
        self.sock = s

    @property
    def destinations(self) -> tuple[str, ...]:
        return self.peers or (VRRP_GROUP6,)

    def send(self, payload: bytes, dst: str) -> None:
        pktinfo = IN6_PKTINFO.pack(self.src_packed, self.ifindex)
        self.sock.sendmsg([payload], [(SOL_IPV6, IPV6_PKTINFO, pktinfo)], 0,
                          (dst, 0, 0, self.ifindex))

    def recv(self) -> Received | None:
        try:
            data, ancillary, _flags, address = self.sock.recvmsg(RECV_SIZE, ANCILLARY_SIZE)
        except (BlockingIOError, InterruptedError):
            return None
        dst, hop_limit = "", -1
        for level, kind, value in ancillary:
            if level != SOL_IPV6:
                continue
            if kind == IPV6_PKTINFO and len(value) >= IN6_PKTINFO.size:
                dst = socket.inet_ntop(socket.AF_INET6, value[:16])
            elif kind == IPV6_HOPLIMIT and len(value) >= 4:
                (hop_limit,) = struct.unpack_from("@i", value)
        # A link-local source comes back with its zone ("fe80::1%eth0").
        src = address[0].partition("%")[0]
        return received_ipv6(data, src, dst, hop_limit)
