"""Announcing taken addresses: gratuitous ARP (IPv4), unsolicited NA (IPv6).

After taking the addresses the new master broadcasts, for an IPv4 address, an
ARP request whose sender and target are the VIP (RFC 5227 3 "ARP Announcement";
RFC 5798 6.4.2 asks for a gratuitous ARP per address), through an AF_PACKET
socket: every neighbour that has the VIP in its cache rewrites it to our MAC. A
request rather than a reply, because some hosts ignore unsolicited replies.

For an IPv6 address it sends an unsolicited Neighbor Advertisement to all nodes
(RFC 5798 6.4.2, RFC 4861 7.2.6): Override set, so caches take our link-layer
address at once; Solicited and Router clear (a load balancer is not a router).
It goes through an ICMPv6 raw socket, whose checksum the kernel fills in; hop
limit 255, which receivers of neighbour discovery require (RFC 4861 7.1.2).
The garp settings (repeat, delay, refresh) govern both, as in keepalived.
"""

from __future__ import annotations

import fcntl
import ipaddress
import socket
import struct

ETH_P_ARP = 0x0806
SIOCGIFHWADDR = 0x8927  # linux/sockios.h
BROADCAST = b"\xff" * 6
ARP_REQUEST = 1
ALL_NODES = "ff02::1"
ICMPV6_NEIGHBOR_ADVERT = 136
NA_OVERRIDE = 0x20000000
OPTION_TARGET_LINK_ADDRESS = 2
NDISC_HOP_LIMIT = 255


def interface_mac(ifname: str) -> bytes:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        info = fcntl.ioctl(s.fileno(), SIOCGIFHWADDR, struct.pack("256s", ifname.encode()[:15]))
    return info[18:24]


def garp_frame(mac: bytes, address: str) -> bytes:
    ip = ipaddress.IPv4Address(address).packed
    eth = BROADCAST + mac + struct.pack("!H", ETH_P_ARP)
    # htype Ethernet, ptype IPv4, hlen 6, plen 4, request; target MAC zero (RFC 5227)
    arp = struct.pack("!HHBBH", 1, 0x0800, 6, 4, ARP_REQUEST) + mac + ip + b"\0" * 6 + ip
    return eth + arp


def neighbour_advert(mac: bytes, address: str) -> bytes:
    """The ICMPv6 message (checksum left zero for the kernel) announcing that
    `address` is at `mac`."""
    target = ipaddress.IPv6Address(address).packed
    head = struct.pack("!BBHI", ICMPV6_NEIGHBOR_ADVERT, 0, 0, NA_OVERRIDE)
    # Target link-layer address option: length in units of 8 octets.
    option = struct.pack("!BB", OPTION_TARGET_LINK_ADDRESS, 1) + mac
    return head + target + option


class GarpSender:
    """The announcements of one interface; each family's socket is opened the
    first time an address of that family is announced."""

    def __init__(self, ifname: str) -> None:
        self.ifname = ifname
        self.mac = interface_mac(ifname)
        self.arp: socket.socket | None = None
        self.ndisc: socket.socket | None = None
        self.ifindex = socket.if_nametoindex(ifname)
        self.sent = 0

    def _arp_socket(self) -> socket.socket:
        if self.arp is None:
            s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ARP))
            s.bind((self.ifname, ETH_P_ARP))
            s.setblocking(False)
            self.arp = s
        return self.arp

    def _ndisc_socket(self) -> socket.socket:
        if self.ndisc is None:
            s = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
            try:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, self.ifname.encode())
                s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, NDISC_HOP_LIMIT)
                s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS, NDISC_HOP_LIMIT)
                s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, self.ifindex)
                s.setblocking(False)
            except BaseException:
                s.close()
                raise
            self.ndisc = s
        return self.ndisc

    def send(self, addresses: list[str]) -> None:
        for address in addresses:
            try:
                if ":" in address:
                    self._ndisc_socket().sendto(neighbour_advert(self.mac, address),
                                                (ALL_NODES, 0, 0, self.ifindex))
                else:
                    self._arp_socket().send(garp_frame(self.mac, address))
                self.sent += 1
            except (BlockingIOError, OSError):
                pass  # a full queue or a link going down: the next burst retries

    def close(self) -> None:
        for s in (self.arp, self.ndisc):
            if s is not None:
                s.close()
