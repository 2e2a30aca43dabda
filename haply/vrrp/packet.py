"""VRRP advertisement codec: VRRPv2 (RFC 3768, IPv4) and VRRPv3 (RFC 5798, IPv4 and IPv6).

Bytes in, `Advertisement` out, bytes back; no sockets, no clock. Everything a
peer can get wrong raises `PacketError` with a short `reason` that the I/O shell
counts per kind; nothing else may escape `decode_ip()` / `decode()` (a property
test feeds them arbitrary bytes).

The address family follows the addresses given: an IPv6 source means 16-octet
addresses and the IPv6 pseudo-header in the v3 checksum (RFC 5798 5.2.8, RFC 8200
8.1). IPv6 is VRRPv3 only.

Checks that need configuration (our VRID, our address list, our password) are
not done here but by `check()`, so the codec stays usable by tools and tests.
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass

IPPROTO_VRRP = 112  # RFC 5798 5.1.1.3
VRRP_GROUP = "224.0.0.18"  # RFC 5798 5.1.1.2
VRRP_GROUP6 = "ff02::12"  # RFC 5798 5.1.2.2
VRRP_TTL = 255  # RFC 5798 5.1.1.3: a receiver drops any other TTL
TYPE_ADVERTISEMENT = 1  # RFC 5798 5.2.2: the only type
AUTH_NONE = 0  # RFC 3768 5.3.6
AUTH_PASS = 1  # RFC 3768 5.3.6 "Simple Text Password"
AUTH_DATA_LEN = 8  # RFC 3768 5.3.10
HEADER_LEN = 8
IPV4_MIN_HEADER = 20
MAX_ADDRESSES = 255  # the count field is one octet
# Largest message we accept: header, 255 addresses, v2 auth data. Anything bigger
# is not VRRP and is refused before it is looked at further.
MAX_VRRP_LEN = HEADER_LEN + 4 * MAX_ADDRESSES + AUTH_DATA_LEN
MAX_VRRP6_LEN = HEADER_LEN + 16 * MAX_ADDRESSES
MAX_IP_LEN = 60 + MAX_VRRP_LEN  # 60: the longest IPv4 header (IHL 15)
V3_MAX_ADVER_CENTIS = 0x0FFF  # RFC 5798 5.2.7: 12 bits of centiseconds


class PacketError(ValueError):
    """The peer sent something that is not an acceptable advertisement."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason  # short key for counters: "checksum", "ttl", ...


@dataclass(frozen=True, slots=True)
class Advertisement:
    version: int
    vrid: int
    priority: int
    advert_int: float  # seconds: v2 whole seconds, v3 centisecond precision
    addresses: tuple[str, ...]
    auth_type: int = AUTH_NONE  # v2 only
    auth_data: bytes = b""  # v2 only, 8 octets when present


@dataclass(frozen=True, slots=True)
class Received:
    """An advertisement with the IP facts a receiver must check."""

    src: str
    dst: str
    ttl: int
    advert: Advertisement


def checksum(data: bytes) -> int:
    """RFC 1071 Internet checksum (ones' complement of the ones' complement sum)."""
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def is_ipv6(address: str) -> bool:
    return ":" in address


def group_for(address: str) -> str:
    """The multicast group advertisements go to in the family of `address`."""
    return VRRP_GROUP6 if is_ipv6(address) else VRRP_GROUP


def _address_class(ipv6: bool):
    return ipaddress.IPv6Address if ipv6 else ipaddress.IPv4Address


def _pseudo_header(src: str, dst: str, length: int) -> bytes:
    # RFC 5798 5.2.8: the v3 checksum covers the pseudo-header of the IP version
    # in use: RFC 768's for IPv4, RFC 8200 8.1's for IPv6.
    if is_ipv6(src):
        return (ipaddress.IPv6Address(src).packed + ipaddress.IPv6Address(dst).packed
                + struct.pack("!I3xB", length, IPPROTO_VRRP))
    return (ipaddress.IPv4Address(src).packed + ipaddress.IPv4Address(dst).packed
            + struct.pack("!BBH", 0, IPPROTO_VRRP, length))


def encode(adv: Advertisement, src: str | None = None, dst: str | None = None) -> bytes:
    """The VRRP message (IP payload). v3 needs src (and dst, else the group of
    src's family) for its checksum; an IPv6 src makes an IPv6 advertisement."""
    if not 1 <= adv.vrid <= 255 or not 0 <= adv.priority <= 255:
        raise ValueError("vrid 1..255, priority 0..255")
    ipv6 = src is not None and is_ipv6(src)
    if ipv6 and adv.version != 3:
        raise ValueError("IPv6 advertisements are VRRPv3 only")
    if dst is None:
        dst = VRRP_GROUP6 if ipv6 else VRRP_GROUP
    address_class = _address_class(ipv6)
    addrs = b"".join(address_class(a).packed for a in adv.addresses)
    count = len(adv.addresses)
    if adv.version == 2:
        interval = int(round(adv.advert_int))
        if not 1 <= interval <= 255:
            raise ValueError("VRRPv2 advert_int is 1..255 whole seconds")
        auth = adv.auth_data.ljust(AUTH_DATA_LEN, b"\0")[:AUTH_DATA_LEN] if adv.auth_type else bytes(8)
        head = struct.pack("!BBBBBBH", 0x21, adv.vrid, adv.priority, count, adv.auth_type, interval, 0)
        msg = head + addrs + auth
        return msg[:6] + struct.pack("!H", checksum(msg)) + msg[8:]
    if adv.version == 3:
        centis = int(round(adv.advert_int * 100))
        if not 1 <= centis <= V3_MAX_ADVER_CENTIS:
            raise ValueError("VRRPv3 advert_int is 0.01..40.95 s")
        if src is None:
            raise ValueError("VRRPv3 checksum needs the source address")
        head = struct.pack("!BBBBHH", 0x31, adv.vrid, adv.priority, count, centis, 0)
        msg = head + addrs
        csum = checksum(_pseudo_header(src, dst, len(msg)) + msg)
        return msg[:6] + struct.pack("!H", csum) + msg[8:]
    raise ValueError(f"VRRP version {adv.version}")


def decode(msg: bytes, src: str | None = None, dst: str | None = None) -> Advertisement:
    """Parse and verify one VRRP message (the IP payload). An IPv6 src means
    an IPv6 advertisement (16-octet addresses, VRRPv3 only)."""
    ipv6 = src is not None and is_ipv6(src)
    width = 16 if ipv6 else 4
    if dst is None:
        dst = VRRP_GROUP6 if ipv6 else VRRP_GROUP
    if len(msg) < HEADER_LEN:
        raise PacketError("short", f"{len(msg)} bytes")
    if len(msg) > (MAX_VRRP6_LEN if ipv6 else MAX_VRRP_LEN):
        raise PacketError("oversized", f"{len(msg)} bytes")
    vt, vrid, priority, count = msg[0], msg[1], msg[2], msg[3]
    version, kind = vt >> 4, vt & 0x0F
    if version not in (2, 3) or (ipv6 and version != 3):
        raise PacketError("version", f"{version}{' over IPv6' if ipv6 else ''}")
    if kind != TYPE_ADVERTISEMENT:
        raise PacketError("type", str(kind))
    if vrid == 0:
        raise PacketError("vrid", "0")
    tail = AUTH_DATA_LEN if version == 2 else 0
    expected = HEADER_LEN + width * count + tail
    if len(msg) < expected:
        raise PacketError("truncated", f"{len(msg)} bytes for {count} addresses")
    if len(msg) > expected:
        raise PacketError("length", f"{len(msg)} bytes for {count} addresses")
    if version == 2:
        if checksum(msg) != 0:
            raise PacketError("checksum")
        auth_type, interval = msg[4], msg[5]
        if interval == 0:
            raise PacketError("interval", "0")
        if auth_type not in (AUTH_NONE, AUTH_PASS):
            raise PacketError("auth", f"type {auth_type}")
        auth_data = msg[expected - AUTH_DATA_LEN:expected] if auth_type == AUTH_PASS else b""
        advert_int = float(interval)
    else:
        if src is None:
            raise PacketError("checksum", "no source address to verify with")
        try:
            pseudo = _pseudo_header(src, dst, len(msg))
        except ValueError:
            raise PacketError("address", f"{src!r} -> {dst!r}") from None
        if checksum(pseudo + msg) != 0:
            raise PacketError("checksum")
        centis = struct.unpack_from("!H", msg, 4)[0] & V3_MAX_ADVER_CENTIS
        if centis == 0:
            raise PacketError("interval", "0")
        auth_type, auth_data, advert_int = AUTH_NONE, b"", centis / 100
    address_class = _address_class(ipv6)
    addresses = tuple(str(address_class(msg[8 + width * i:8 + width * (i + 1)]))
                      for i in range(count))
    return Advertisement(version, vrid, priority, advert_int, addresses, auth_type, auth_data)


def decode_ip(datagram: bytes) -> Received:
    """Parse an IPv4 datagram as read from a raw IPPROTO_VRRP socket."""
    if len(datagram) < IPV4_MIN_HEADER:
        raise PacketError("short", f"{len(datagram)} bytes")
    if len(datagram) > MAX_IP_LEN:
        raise PacketError("oversized", f"{len(datagram)} bytes")
    if datagram[0] >> 4 != 4:
        raise PacketError("ip", "not IPv4")
    ihl = (datagram[0] & 0x0F) * 4
    if ihl < IPV4_MIN_HEADER or len(datagram) < ihl:
        raise PacketError("ip", "bad header length")
    total = struct.unpack_from("!H", datagram, 2)[0]
    if total < ihl or total > len(datagram):
        raise PacketError("truncated", "IP total length")
    if datagram[9] != IPPROTO_VRRP:
        raise PacketError("ip", f"protocol {datagram[9]}")
    ttl = datagram[8]
    src = str(ipaddress.IPv4Address(datagram[12:16]))
    dst = str(ipaddress.IPv4Address(datagram[16:20]))
    advert = decode(datagram[ihl:total], src, dst)
    return Received(src, dst, ttl, advert)


def received_ipv6(payload: bytes, src: str, dst: str, hop_limit: int) -> Received:
    """An IPv6 advertisement: a raw IPv6 socket gives the payload alone, and
    the header's facts (source, destination, hop limit) from recvmsg."""
    if len(payload) > MAX_VRRP6_LEN:
        raise PacketError("oversized", f"{len(payload)} bytes")
    try:
        ipaddress.IPv6Address(src)
        ipaddress.IPv6Address(dst)
    except ValueError:
        raise PacketError("address", f"{src!r} -> {dst!r}") from None
    return Received(src, dst, hop_limit, decode(payload, src, dst))


def auth_bytes(password: str | None) -> bytes:
    if password is None:
        return b""
    return password.encode()[:AUTH_DATA_LEN].ljust(AUTH_DATA_LEN, b"\0")


def check(rx: Received, *, vrid: int, version: int, addresses: tuple[str, ...],
          advert_int: float | None = None, auth_pass: str | None = None, unicast_peers: tuple[str, ...] = (),
          local_dst: tuple[str, ...] = ()) -> None:
    """Receiver checks of RFC 3768 7.1 / RFC 5798 7.1 against our configuration.

    Raises PacketError("vrid") for another router's VRID: the caller counts that
    quietly, it is normal on a shared segment.
    """
    adv = rx.advert
    if adv.vrid != vrid:
        raise PacketError("vrid", str(adv.vrid))
    if adv.version != version:
        raise PacketError("version", f"{adv.version}, configured {version}")
    if unicast_peers:
        # Unicast is keepalived's extension, not the RFCs': peers may be routed
        # hops away, and keepalived neither checks their TTL nor sends IPv6 ones
        # with hop limit 255. The source must be a configured peer instead.
        if rx.src not in unicast_peers:
            raise PacketError("peer", rx.src)
    else:
        if rx.ttl != VRRP_TTL:
            raise PacketError("ttl", str(rx.ttl))
        if rx.dst != group_for(rx.src) and rx.dst not in local_dst:
            raise PacketError("destination", rx.dst)
    if version == 2:
        # RFC 3768 7.1: a v2 receiver discards an interval other than its own.
        if advert_int is not None and adv.advert_int != advert_int:
            raise PacketError("interval", f"{adv.advert_int:g}, configured {advert_int:g}")
        want = AUTH_PASS if auth_pass is not None else AUTH_NONE
        if adv.auth_type != want or (want == AUTH_PASS and adv.auth_data != auth_bytes(auth_pass)):
            raise PacketError("auth")
    # RFC 3768 7.1 / RFC 5798 7.1: the address list MAY be checked; a mismatch
    # means two routers disagree on what they protect, so we refuse it.
    if len(adv.addresses) != len(addresses):
        raise PacketError("address-count", f"{len(adv.addresses)}, configured {len(addresses)}")
    if sorted(adv.addresses) != sorted(addresses):
        raise PacketError("address-list")
