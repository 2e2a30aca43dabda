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
