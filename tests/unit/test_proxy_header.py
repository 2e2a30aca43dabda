"""The PROXY protocol header (haply.proxy.proxy_header); the oracle test
compares what servers receive with HAProxy 2.6."""

from __future__ import annotations

import struct

from haply.proxy.proxy_header import V1_UNKNOWN, V2_LOCAL, V2_SIGNATURE, check_header, header


def test_version_1():
    assert header(1, ("192.0.2.7", 51234), ("192.0.2.1", 443)) == \
        b"PROXY TCP4 192.0.2.7 192.0.2.1 51234 443\r\n"
    assert header(1, ("2001:db8::7", 51234, 0, 0), ("2001:db8::1", 443, 0, 0)) == \
        b"PROXY TCP6 2001:db8::7 2001:db8::1 51234 443\r\n"
    # a v4 client seen on a dual-stack socket is a v4 client
    assert header(1, ("::ffff:192.0.2.7", 5, 0, 0), ("::ffff:192.0.2.1", 6, 0, 0)) == \
        b"PROXY TCP4 192.0.2.7 192.0.2.1 5 6\r\n"


def test_version_2():
    data = header(2, ("192.0.2.7", 51234), ("192.0.2.1", 443))
    assert data[:12] == V2_SIGNATURE and data[12:14] == b"\x21\x11"
    assert struct.unpack("!H", data[14:16]) == (12,)
    assert data[16:] == bytes([192, 0, 2, 7, 192, 0, 2, 1]) + struct.pack("!HH", 51234, 443)
    six = header(2, ("2001:db8::7", 1, 0, 0), ("2001:db8::1", 2, 0, 0))
    assert six[13] == 0x21 and struct.unpack("!H", six[14:16]) == (36,) and len(six) == 52


def test_unknown_addresses():
    # a unix socket client, or two families: the header says nothing of them
    assert header(1, "/run/haply.sock", ("192.0.2.1", 443)) == V1_UNKNOWN
    assert header(2, ("192.0.2.7", 1), ("2001:db8::1", 2, 0, 0)) == V2_LOCAL
    assert header(1, None, None) == V1_UNKNOWN


def test_checks():
    assert check_header(1, ("127.0.0.1", 40000), ("127.0.0.1", 8080)) == \
        b"PROXY TCP4 127.0.0.1 127.0.0.1 40000 8080\r\n"
    assert check_header(2, ("127.0.0.1", 40000), ("127.0.0.1", 8080)) == V2_LOCAL


# ------------------------------------------------------------------ receiving

import ipaddress  # noqa: E402

import pytest  # noqa: E402
from hypothesis import example, given, strategies as st  # noqa: E402

from haply.proxy.proxy_header import (  # noqa: E402
    INVALID, NOT_A_HEADER, UNHANDLED, ProxyHeaderError, ReceivedHeader, crc32c, parse)


def v2(command=0x21, family=0x11, addresses=b"", tlvs=b"", length=None) -> bytes:
    body = addresses + tlvs
    return (V2_SIGNATURE + bytes([command, family])
            + struct.pack("!H", len(body) if length is None else length) + body)


FOUR = bytes([192, 0, 2, 7, 192, 0, 2, 1]) + struct.pack("!HH", 51234, 443)


def refused(data: bytes) -> ProxyHeaderError:
    with pytest.raises(ProxyHeaderError) as caught:
        parse(data)
    return caught.value


def test_v1_headers():
    line = b"PROXY TCP4 192.0.2.7 192.0.2.1 51234 443\r\n"
    assert parse(line + b"GET / HTTP/1.1\r\n") == \
        ReceivedHeader(len(line), ("192.0.2.7", 51234), ("192.0.2.1", 443))
    assert parse(b"PROXY TCP6 2001:db8::7 ::1 1 2\r\n") == \
        ReceivedHeader(32, ("2001:db8::7", 1), ("::1", 2))
    # UNKNOWN: the connection's own addresses stand
    assert parse(b"PROXY UNKNOWN\r\n\x16\x03") == ReceivedHeader(15)
    assert parse(b"PROXY TCP4 1.2.3.4 5.6.7.8 01111 2222\r\n").source == ("1.2.3.4", 1111)


def test_v2_headers():
    assert parse(v2(addresses=FOUR) + b"\x16\x03\x01") == \
        ReceivedHeader(28, ("192.0.2.7", 51234), ("192.0.2.1", 443))
    six = (ipaddress.ip_address("2001:db8::7").packed + ipaddress.ip_address("2001:db8::1").packed
           + struct.pack("!HH", 5, 6))
    assert parse(v2(family=0x21, addresses=six)) == \
        ReceivedHeader(52, ("2001:db8::7", 5), ("2001:db8::1", 6))
    # TLVs (ALPN, then NOOP) are skipped
    assert parse(v2(addresses=FOUR, tlvs=b"\x01\x00\x02h2\x04\x00\x00")).length == 16 + 12 + 8
    # LOCAL: whatever follows in its length is skipped, addresses or not
    assert parse(v2(command=0x20, addresses=FOUR)) == ReceivedHeader(28)
    assert parse(v2(command=0x20, family=0x00, tlvs=b"xyz")) == ReceivedHeader(19)


def test_beginnings_need_more():
    for data in (b"", b"P", b"PROX", b"PROXY ", b"PROXY TCP4 1.2.3.4", V2_SIGNATURE[:5],
                 V2_SIGNATURE, v2(addresses=FOUR)[:20], v2(addresses=FOUR, length=600)):
        assert parse(data) is None, data
    # as HAProxy 2.6 judges them: anything shorter than a v2 header's fixed
    # part that is no v1 line may still be one (it logs them as truncated)
    assert parse(b"garbage\r\n") is None
    assert refused(b"GET / HTTP/1.1\r\n").message == NOT_A_HEADER  # 16 bytes: judged


@pytest.mark.parametrize("data, message", [
    (b"GET / HTTP/1.1\r\n\r\n", NOT_A_HEADER),
    (b"XROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n", NOT_A_HEADER),
    (b"PROXYTCP4 1.2.3.4 5.6.7.8 1 2\r\n", NOT_A_HEADER),
    (b"\r\n\r\nGET / HTTP/1.1\r\n", NOT_A_HEADER),
    (v2(command=0x11, addresses=FOUR), NOT_A_HEADER),  # version 1 behind the v2 signature
    (b"PROXY UNKNOWN 1.2.3.4 5.6.7.8 1 2\r\n", UNHANDLED),
    (b"PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n", UNHANDLED),
    (b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n", INVALID),
    (b"PROXY TCP4 1.2.3.4  5.6.7.8 1 2\r\n", INVALID),
    (b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\nGET / HTTP/1.0\r\n", INVALID),
    (b"PROXY TCP6 1.2.3.4 5.6.7.8 1 2\r\n", INVALID),
    (b"PROXY TCP4 ::1 ::2 1 2\r\n", INVALID),
    (b"PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n", INVALID),
    (b"PROXY TCP4 1.2.3.4 5.6.7.8 +1 2\r\n", INVALID),
    (b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2" + b" " * 80 + b"\r\n", INVALID),  # over 107 bytes
    (b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2" + b" " * 80, INVALID),  # no CRLF in 107 bytes
    (v2(command=0x22, addresses=FOUR), INVALID),
    (v2(family=0x00), INVALID),  # PROXY needs addresses
    (v2(family=0x12, addresses=FOUR), INVALID),  # over UDP
    (v2(family=0x31, addresses=b"/a".ljust(108, b"\0") + b"/b".ljust(108, b"\0")), INVALID),
    (v2(addresses=FOUR[:4]), INVALID),
    (v2(family=0x21, addresses=FOUR), INVALID),  # 12 bytes are no IPv6 addresses
    (v2(addresses=FOUR, tlvs=b"\x01\x00\x05h2"), INVALID),
    (v2(addresses=FOUR, tlvs=b"\x01\x00"), INVALID),
])
def test_refusals_say_what_haproxy_logs(data, message):
    assert refused(data).message == message


def with_checksum(tlvs: bytes = b"") -> bytes:
    """A v2 header whose last TLV is its CRC32C (section 2.2.3)."""
    data = v2(addresses=FOUR, tlvs=tlvs + b"\x03\x00\x04\x00\x00\x00\x00")
    return data[:-4] + struct.pack("!I", crc32c(data))


def test_checked_tlvs():
    assert crc32c(b"123456789") == 0xE3069283  # RFC 4960's check value
    assert parse(with_checksum(b"\x04\x00\x01x")).source == ("192.0.2.7", 51234)
    wrong = bytearray(with_checksum())
    wrong[-1] ^= 1
    assert "CRC32C" in str(refused(bytes(wrong)))
    assert "expected 4" in str(refused(v2(addresses=FOUR, tlvs=b"\x03\x00\x03\x00\x00\x00")))
    # AUTHORITY up to 255 bytes, UNIQUE_ID up to 128 (as HAProxy 2.6 takes them, observed)
    assert parse(v2(addresses=FOUR, tlvs=b"\x02\x00\xff" + b"a" * 255)) is not None
    assert parse(v2(addresses=FOUR, tlvs=b"\x05\x00\x80" + b"a" * 128)) is not None
    assert "at most 255" in str(refused(v2(addresses=FOUR, tlvs=b"\x02\x01\x00" + b"a" * 256)))
    assert "at most 128" in str(refused(v2(addresses=FOUR, tlvs=b"\x05\x00\x81" + b"a" * 129)))


def test_refusals_name_the_fault():
    assert "source port b'65536'" in str(refused(b"PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n"))
    bad_tlv = refused(v2(addresses=FOUR, tlvs=b"\x01\x00\x05h2"))
    assert "runs past the header's end" in str(bad_tlv)
    assert bad_tlv.source == ("192.0.2.7", 51234)  # named before the fault: HAProxy logs it


addresses4 = st.ip_addresses(v=4).map(str)
# (a v4-mapped address is sent as the IPv4 address it maps)
addresses6 = st.ip_addresses(v=6).filter(lambda address: address.ipv4_mapped is None).map(str)
ports = st.integers(0, 65535)


@given(st.one_of(st.tuples(addresses4, addresses4), st.tuples(addresses6, addresses6)),
       ports, ports, st.sampled_from([1, 2]), st.binary(max_size=40))
def test_what_haply_sends_it_reads(hosts, source_port, destination_port, version, rest):
    data = header(version, (hosts[0], source_port), (hosts[1], destination_port))
    got = parse(data + rest)
    assert got == ReceivedHeader(len(data), (str(ipaddress.ip_address(hosts[0])), source_port),
                                 (str(ipaddress.ip_address(hosts[1])), destination_port))
    # every shorter beginning asks for more
    for cut in range(len(data)):
        assert parse(data[:cut]) is None


@given(st.binary(max_size=200))
@example(V2_SIGNATURE + b"\x21\x11\x00\x0d" + FOUR + b"\x01")
@example(b"PROXY TCP4 " + b"9" * 100)
def test_any_bytes_give_a_header_more_or_a_refusal(data):
    try:
        got = parse(data)
    except ProxyHeaderError as exc:
        assert exc.message in (NOT_A_HEADER, INVALID, UNHANDLED)
        return
    assert got is None or 0 < got.length <= len(data)


@given(st.binary(max_size=3),
       st.lists(st.tuples(st.integers(0, 255).filter(lambda kind: kind != 0x03),
                          st.binary(max_size=30)), max_size=5))
def test_tlvs_are_skipped(after, tlvs):
    body = b"".join(bytes([kind]) + struct.pack("!H", len(value)) + value for kind, value in tlvs)
    assert parse(v2(addresses=FOUR, tlvs=body) + after).length == 28 + len(body)
