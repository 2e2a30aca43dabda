"""VRRP codec: round trips, RFC field layout, every rejection reason, fuzzing."""

from __future__ import annotations

import ipaddress
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from haply.vrrp import packet
from haply.vrrp.packet import Advertisement, PacketError

SRC, DST = "192.0.2.10", packet.VRRP_GROUP


def ip_datagram(payload: bytes, src=SRC, dst=DST, ttl=255, proto=112) -> bytes:
    header = struct.pack("!BBHHHBBH4s4s", 0x45, 0xC0, 20 + len(payload), 0, 0, ttl, proto, 0,
                         ipaddress.IPv4Address(src).packed, ipaddress.IPv4Address(dst).packed)
    return header + payload


def v2(priority=100, addrs=("192.0.2.100",), password=None, interval=1) -> Advertisement:
    return Advertisement(2, 51, priority, interval, addrs,
                         packet.AUTH_PASS if password else packet.AUTH_NONE, packet.auth_bytes(password))


def v3(priority=100, addrs=("192.0.2.100",), interval=0.1) -> Advertisement:
    return Advertisement(3, 51, priority, interval, addrs)


def test_v2_layout_and_round_trip():
    msg = packet.encode(v2(password="secret"))
    # RFC 3768 5.1: version 2 type 1, VRID, priority, count, auth type, interval, checksum
    assert msg[:6] == bytes([0x21, 51, 100, 1, 1, 1])
    assert msg[8:12] == ipaddress.IPv4Address("192.0.2.100").packed
    assert msg[12:] == b"secret\0\0"
    assert packet.checksum(msg) == 0
    assert packet.decode(msg) == v2(password="secret")


def test_v3_layout_pseudo_header_and_round_trip():
    adv = v3(addrs=("192.0.2.100", "192.0.2.101"), interval=0.35)
    msg = packet.encode(adv, SRC, DST)
    assert msg[:4] == bytes([0x31, 51, 100, 2])
    assert struct.unpack("!H", msg[4:6])[0] == 35  # centiseconds, reserved bits zero
    assert len(msg) == 8 + 8  # no authentication data in v3
    pseudo = (ipaddress.IPv4Address(SRC).packed + ipaddress.IPv4Address(DST).packed
              + struct.pack("!BBH", 0, 112, len(msg)))
    assert packet.checksum(pseudo + msg) == 0
    assert packet.checksum(msg) != 0  # the pseudo-header matters
    assert packet.decode(msg, SRC, DST) == adv
    with pytest.raises(PacketError) as exc:
        packet.decode(msg, "192.0.2.11", DST)  # another source: checksum no longer matches
    assert exc.value.reason == "checksum"


def test_checksum_rfc1071_example():
    # RFC 1071 section 3 example: the sum of 0001 f203 f4f5 f6f7 is ddf2, complement 220d.
    assert packet.checksum(bytes.fromhex("0001f203f4f5f6f7")) == 0x220D


def test_decode_ip():
    rx = packet.decode_ip(ip_datagram(packet.encode(v3(), SRC, DST)))
    assert (rx.src, rx.dst, rx.ttl, rx.advert.priority) == (SRC, DST, 255, 100)


def reason(fn, *args, **kwargs) -> str:
    with pytest.raises(PacketError) as exc:
        fn(*args, **kwargs)
    return exc.value.reason


def test_rejections_in_the_codec():
    good2 = packet.encode(v2())
    assert reason(packet.decode, good2[:7]) == "short"
    assert reason(packet.decode, good2[:-1]) == "truncated"
    assert reason(packet.decode, good2 + b"\0") == "length"
    assert reason(packet.decode, good2 + bytes(2000)) == "oversized"
    assert reason(packet.decode, bytes([0x11]) + good2[1:]) == "version"
    assert reason(packet.decode, bytes([0x22]) + good2[1:]) == "type"
    assert reason(packet.decode, good2[:1] + b"\0" + good2[2:]) == "vrid"
    bad = bytearray(good2)
    bad[2] ^= 1
    assert reason(packet.decode, bytes(bad)) == "checksum"
    many = bytearray(good2)
    many[3] = 5  # claims five addresses, carries one
    assert reason(packet.decode, bytes(many)) == "truncated"
    assert reason(packet.decode, packet.encode(v3(), SRC, DST)) == "checksum"  # no source given
    assert reason(packet.decode_ip, b"\x45" * 10) == "short"
    assert reason(packet.decode_ip, ip_datagram(good2, proto=17)) == "ip"
    assert reason(packet.decode_ip, b"\x65" + ip_datagram(good2)[1:]) == "ip"


def check_reason(adv: Advertisement, ttl=255, dst=DST, **kwargs) -> str | None:
    rx = packet.decode_ip(ip_datagram(packet.encode(adv, SRC, dst), ttl=ttl, dst=dst))
    params = dict(vrid=51, version=adv.version, addresses=("192.0.2.100",))
    params.update(kwargs)
    try:
        packet.check(rx, **params)
    except PacketError as exc:
        return exc.reason
    return None


def test_receiver_checks():
    assert check_reason(v3()) is None
    assert check_reason(v3(), ttl=254) == "ttl"  # RFC 5798 7.1: TTL must be 255
    assert check_reason(v3(), vrid=52) == "vrid"
    assert check_reason(v3(), version=2) == "version"
    assert check_reason(v3(addrs=("192.0.2.100", "192.0.2.101"))) == "address-count"
    assert check_reason(v3(addrs=("192.0.2.99",))) == "address-list"
    assert check_reason(v3(), dst="192.0.2.50") == "destination"
    assert check_reason(v3(), dst="192.0.2.50", local_dst=("192.0.2.50",)) is None
    assert check_reason(v3(), unicast_peers=("192.0.2.11",)) == "peer"
    assert check_reason(v3(), unicast_peers=(SRC,)) is None
    # Unicast peers may be routed (keepalived does not check their TTL either).
    assert check_reason(v3(), ttl=63, unicast_peers=(SRC,)) is None
    assert check_reason(v3(), ttl=63, unicast_peers=("192.0.2.11",)) == "peer"
    assert check_reason(v2(password="pw"), auth_pass="pw") is None
    assert check_reason(v2(password="pw"), auth_pass="other") == "auth"
    assert check_reason(v2(), auth_pass="pw") == "auth"
    assert check_reason(v2(password="pw")) == "auth"
    assert check_reason(v2(interval=2), advert_int=1.0) == "interval"  # RFC 3768 7.1


def test_encode_refuses_impossible_values():
    with pytest.raises(ValueError):
        packet.encode(v2(interval=0.5))
    with pytest.raises(ValueError):
        packet.encode(v3(interval=41), SRC)
    with pytest.raises(ValueError):
        packet.encode(v3())  # v3 needs the source for its checksum


addresses = st.lists(st.integers(0, 2**32 - 1).map(lambda n: str(ipaddress.IPv4Address(n))),
                     max_size=20).map(tuple)


@given(vrid=st.integers(1, 255), prio=st.integers(0, 255), addrs=addresses,
       centis=st.integers(1, 4095), src=st.integers(1, 2**32 - 1))
def test_v3_round_trip_property(vrid, prio, addrs, centis, src):
    src_ip = str(ipaddress.IPv4Address(src))
    adv = Advertisement(3, vrid, prio, centis / 100, addrs)
    assert packet.decode(packet.encode(adv, src_ip), src_ip) == adv


@given(vrid=st.integers(1, 255), prio=st.integers(0, 255), addrs=addresses,
       interval=st.integers(1, 255), pw=st.none() | st.text(max_size=8))
def test_v2_round_trip_property(vrid, prio, addrs, interval, pw):
    auth = packet.auth_bytes(pw)
    adv = Advertisement(2, vrid, prio, float(interval), addrs,
                        packet.AUTH_PASS if pw is not None else packet.AUTH_NONE, auth)
    assert packet.decode(packet.encode(adv)) == adv


@settings(max_examples=2000)
@given(st.binary(max_size=1200))
def test_arbitrary_bytes_only_raise_packet_error(data):
    for fn in (packet.decode_ip, packet.decode, lambda d: packet.decode(d, SRC)):
        try:
            fn(data)
        except PacketError:
            pass


@settings(max_examples=1000)
@given(st.binary(min_size=1, max_size=40), st.integers(0, 30), st.sampled_from([2, 3]))
def test_mutated_packets_only_raise_packet_error(noise, pos, version):
    good = packet.encode(v2() if version == 2 else v3(), SRC)
    data = bytearray(ip_datagram(good))
    data[pos:pos + len(noise)] = noise
    try:
        rx = packet.decode_ip(bytes(data))
        packet.check(rx, vrid=51, version=version, addresses=("192.0.2.100",))
    except PacketError:
        pass


# ------------------------------------------------------------------ IPv6

SRC6, DST6 = "fe80::200:ff:fe00:1", packet.VRRP_GROUP6


def v6(priority=100, addrs=("2001:db8::100",), interval=1.0) -> Advertisement:
    return Advertisement(3, 51, priority, interval, addrs)


def test_ipv6_layout_pseudo_header_and_round_trip():
    adv = v6(addrs=("2001:db8::100", "2001:db8::101"), interval=0.1)
    msg = packet.encode(adv, SRC6)  # the destination defaults to ff02::12
    assert msg[:4] == bytes([0x31, 51, 100, 2])
    assert len(msg) == 8 + 2 * 16
    assert msg[8:24] == ipaddress.IPv6Address("2001:db8::100").packed
    # RFC 8200 8.1: source, destination, 32-bit upper-layer length, 3 zero
    # octets, next header.
    pseudo = (ipaddress.IPv6Address(SRC6).packed + ipaddress.IPv6Address(DST6).packed
              + struct.pack("!I", len(msg)) + bytes(3) + bytes([112]))
    assert packet.checksum(pseudo + msg) == 0
    assert packet.decode(msg, SRC6, DST6) == adv
    rx = packet.received_ipv6(msg, SRC6, DST6, 255)
    assert (rx.src, rx.dst, rx.ttl, rx.advert) == (SRC6, DST6, 255, adv)
    assert reason(packet.decode, msg, "fe80::2", DST6) == "checksum"
    # Read as IPv4 the same bytes are another packet: 16-octet addresses matter.
    assert reason(packet.decode, msg, SRC, DST) in ("length", "checksum")


def test_ipv6_rejections():
    v2_bytes = packet.encode(v2())
    assert reason(packet.decode, v2_bytes, SRC6, DST6) == "version"  # VRRPv2 is IPv4 only
    with pytest.raises(ValueError):
        packet.encode(v2(), SRC6)
    msg = packet.encode(v6(), SRC6)
    assert reason(packet.received_ipv6, msg, SRC6, "", 255) == "address"  # no destination known
    assert reason(packet.received_ipv6, msg + bytes(16), SRC6, DST6, 255) == "length"
    assert reason(packet.received_ipv6, msg[:20], SRC6, DST6, 255) == "truncated"
    assert reason(packet.received_ipv6, bytes(5000), SRC6, DST6, 255) == "oversized"

    def checked(rx, **kwargs):
        try:
            packet.check(rx, vrid=51, version=3, addresses=("2001:db8::100",), **kwargs)
        except PacketError as exc:
            return exc.reason
        return None

    assert checked(packet.received_ipv6(msg, SRC6, DST6, 255)) is None
    assert checked(packet.received_ipv6(msg, SRC6, DST6, 64)) == "ttl"  # hop limit 255 only
    other = packet.encode(v6(), SRC6, "ff02::1")
    assert checked(packet.received_ipv6(other, SRC6, "ff02::1", 255)) == "destination"


addresses6 = st.lists(st.integers(0, 2**128 - 1).map(lambda n: str(ipaddress.IPv6Address(n))),
                      max_size=20).map(tuple)


@given(vrid=st.integers(1, 255), prio=st.integers(0, 255), addrs=addresses6,
       centis=st.integers(1, 4095), src=st.integers(1, 2**128 - 1))
def test_ipv6_round_trip_property(vrid, prio, addrs, centis, src):
    src_ip = str(ipaddress.IPv6Address(src))
    adv = Advertisement(3, vrid, prio, centis / 100, addrs)
    assert packet.decode(packet.encode(adv, src_ip), src_ip) == adv


@settings(max_examples=1000)
@given(st.binary(max_size=4200), st.integers(0, 255))
def test_arbitrary_ipv6_payloads_only_raise_packet_error(data, hop_limit):
    try:
        rx = packet.received_ipv6(data, SRC6, DST6, hop_limit)
        packet.check(rx, vrid=51, version=3, addresses=("2001:db8::100",))
    except PacketError:
        pass
