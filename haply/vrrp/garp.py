"""Gratuitous ARP through an AF_PACKET socket.

After taking the addresses the new master broadcasts an ARP request whose
sender and target are the VIP (RFC 5227 3 "ARP Announcement"; RFC 5798 6.4.2
asks for a gratuitous ARP per address): every neighbour that has the VIP in its
cache rewrites it to our MAC. A request rather than a reply, because some hosts
ignore unsolicited replies.
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


class GarpSender:
    def __init__(self, ifname: str) -> None:
        self.ifname = ifname
        self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ARP))
        self.sock.bind((ifname, ETH_P_ARP))
        self.sock.setblocking(False)
        self.mac = interface_mac(ifname)
        self.sent = 0

    def send(self, addresses: list[str]) -> None:
        for address in addresses:
            try:
                self.sock.send(garp_frame(self.mac, address))
                self.sent += 1
            except (BlockingIOError, OSError):
                pass  # a full queue or a link going down: the next burst retries

    def close(self) -> None:
        self.sock.close()
