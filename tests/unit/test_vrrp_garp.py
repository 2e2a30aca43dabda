"""Announcement layouts: gratuitous ARP (RFC 826 fields, RFC 5227 announcement)
and the unsolicited Neighbor Advertisement (RFC 4861 4.4)."""

import ipaddress

from haply.vrrp.garp import garp_frame, neighbour_advert


def test_frame_is_an_arp_announcement():
    mac = bytes.fromhex("020000000001")
    frame = garp_frame(mac, "192.0.2.100")
    assert len(frame) == 14 + 28
    assert frame[:6] == b"\xff" * 6 and frame[6:12] == mac and frame[12:14] == b"\x08\x06"
    arp = frame[14:]
    assert arp[:8] == bytes.fromhex("0001080006040001")  # Ethernet, IPv4, 6, 4, request
    assert arp[8:14] == mac and arp[14:18] == bytes([192, 0, 2, 100])  # sender = VIP
    assert arp[18:24] == bytes(6) and arp[24:28] == bytes([192, 0, 2, 100])  # target = VIP


def test_neighbour_advert_overrides_caches():
    mac = bytes.fromhex("020000000001")
    message = neighbour_advert(mac, "2001:db8::100")
    assert len(message) == 4 + 4 + 16 + 8
    assert message[:4] == bytes([136, 0, 0, 0])  # type, code, checksum left to the kernel
    assert message[4:8] == bytes([0x20, 0, 0, 0])  # Override; not Router, not Solicited
    assert message[8:24] == ipaddress.IPv6Address("2001:db8::100").packed  # target
    assert message[24:26] == bytes([2, 1]) and message[26:32] == mac  # target link-layer option
