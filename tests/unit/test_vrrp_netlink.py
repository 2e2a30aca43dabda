"""rtnetlink address requests and their acknowledgements (haply.vrrp.netlink),
byte for byte; the kernel's side is exercised by the namespace tests."""

from __future__ import annotations

import socket
import struct

from hypothesis import given, strategies as st

from haply.vrrp import netlink


def attrs(body: bytes) -> dict[int, bytes]:
    out, offset = {}, 0
    while offset < len(body):
        length, kind = struct.unpack_from("=HH", body, offset)
        out[kind] = body[offset + 4:offset + length]
        offset += (length + 3) & ~3
    return out


def test_add_request_layout():
    raw = netlink.address_request(True, 7, 3, "192.0.2.100", 24, broadcast="192.0.2.255",
                                  label="eth0:vip", scope=254)
    length, kind, flags, seq, pid = netlink.NLMSGHDR.unpack_from(raw)
    assert (length, kind, seq, pid) == (len(raw), netlink.RTM_NEWADDR, 7, 0)
    assert flags == netlink.NLM_F_REQUEST | netlink.NLM_F_ACK | netlink.NLM_F_CREATE | netlink.NLM_F_EXCL
    family, prefixlen, _flags, scope, index = netlink.IFADDRMSG.unpack_from(raw, 16)
    assert (family, prefixlen, scope, index) == (socket.AF_INET, 24, 254, 3)
    found = attrs(raw[24:])
    vip = socket.inet_aton("192.0.2.100")
    assert found[netlink.IFA_LOCAL] == vip and found[netlink.IFA_ADDRESS] == vip
    assert found[netlink.IFA_BROADCAST] == socket.inet_aton("192.0.2.255")
    assert found[netlink.IFA_LABEL] == b"eth0:vip\0"
    assert len(raw) % 4 == 0


def test_delete_request_has_no_create_flags_nor_extras():
    raw = netlink.address_request(False, 1, 2, "10.0.0.1", 32, broadcast="10.0.0.255", label="x")
    _, kind, flags, _, _ = netlink.NLMSGHDR.unpack_from(raw)
    assert kind == netlink.RTM_DELADDR and flags == netlink.NLM_F_REQUEST | netlink.NLM_F_ACK
    assert set(attrs(raw[24:])) == {netlink.IFA_LOCAL, netlink.IFA_ADDRESS}


def test_ipv6_add_skips_duplicate_address_detection():
    raw = netlink.address_request(True, 3, 4, "2001:db8::100", 64)
    family, prefixlen, flags, _scope, index = netlink.IFADDRMSG.unpack_from(raw, 16)
    # Without NODAD the kernel keeps the address tentative (unusable) for DAD's
    # second or more after the failover.
    assert (family, prefixlen, flags, index) == (socket.AF_INET6, 64, netlink.IFA_F_NODAD, 4)
    packed = socket.inet_pton(socket.AF_INET6, "2001:db8::100")
    assert attrs(raw[24:]) == {netlink.IFA_LOCAL: packed, netlink.IFA_ADDRESS: packed}
    removal = netlink.address_request(False, 4, 4, "2001:db8::100", 64)
    assert netlink.IFADDRMSG.unpack_from(removal, 16)[2] == 0


def ack(seq: int, error: int) -> bytes:
    body = struct.pack("=i", error) + netlink.NLMSGHDR.pack(16, netlink.RTM_NEWADDR, 0, seq, 0)
    return netlink.NLMSGHDR.pack(16 + len(body), netlink.NLMSG_ERROR, 0, seq, 1234) + body


def test_ack_for_our_sequence_only():
    assert netlink.ack_error(ack(5, 0), 5) == 0
    assert netlink.ack_error(ack(5, -17), 5) == 17  # EEXIST
    assert netlink.ack_error(ack(4, -17), 5) is None  # an earlier request's answer
    assert netlink.ack_error(ack(4, 0) + ack(5, -99), 5) == 99


@given(st.binary(max_size=200), st.integers(0, 2**32 - 1))
def test_ack_parser_never_fails_on_garbage(data, seq):
    result = netlink.ack_error(data, seq)
    assert result is None or isinstance(result, int)
