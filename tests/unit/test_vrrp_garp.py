"""Gratuitous ARP frame layout (RFC 826 fields, RFC 5227 announcement)."""

from haply.vrrp.garp import garp_frame


def test_frame_is_an_arp_announcement():
    mac = bytes.fromhex("020000000001")
    frame = garp_frame(mac, "192.0.2.100")
    assert len(frame) == 14 + 28
    assert frame[:6] == b"\xff" * 6 and frame[6:12] == mac and frame[12:14] == b"\x08\x06"
    arp = frame[14:]
    assert arp[:8] == bytes.fromhex("0001080006040001")  # Ethernet, IPv4, 6, 4, request
    assert arp[8:14] == mac and arp[14:18] == bytes([192, 0, 2, 100])  # sender = VIP
    assert arp[18:24] == bytes(6) and arp[24:28] == bytes([192, 0, 2, 100])  # target = VIP
