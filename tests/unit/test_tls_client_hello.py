"""The ClientHello reader (haply.tls.client_hello) on hellos made by Python's
ssl module and by openssl s_client, whole and cut anywhere, and on what is
not TLS; hypothesis builds hellos of its own and feeds arbitrary bytes."""

from __future__ import annotations

import socket
import ssl
import subprocess
import threading

import pytest
from hypothesis import given, settings, strategies as st

from haply.tls import client_hello as ch
from haply.tls.client_hello import NEED_MORE


def python_hello(name: str | None = None, alpn=None, maximum=None, tickets=True) -> bytes:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    if alpn:
        context.set_alpn_protocols(alpn)
    if maximum is not None:
        context.maximum_version = maximum
    if not tickets:
        context.options |= ssl.OP_NO_TICKET
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    connection = context.wrap_bio(incoming, outgoing, server_hostname=name)
    with pytest.raises(ssl.SSLWantReadError):
        connection.do_handshake()
    return outgoing.read()


def openssl_hello(*arguments: str) -> bytes:
    """The first bytes `openssl s_client` sends, caught by a listener that
    closes once they are in."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(10)
    caught: list[bytes] = []

    def catch() -> None:
        connection, _ = listener.accept()
        with connection:
            connection.settimeout(5)
            data = b""
            while len(data) < 5 or len(data) < 5 + int.from_bytes(data[3:5], "big"):
                chunk = connection.recv(65536)
                if not chunk:
                    break
                data += chunk
            caught.append(data)

    thread = threading.Thread(target=catch)
    thread.start()
    port = listener.getsockname()[1]
    subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{port}", *arguments],
                   input=b"", capture_output=True, timeout=20)
    thread.join(10)
    listener.close()
    return caught[0]


def test_python_hello_with_name_and_alpn():
    data = python_hello("Keystone.Example", ["h2", "http/1.1"])
    hello = ch.client_hello(data)
    assert hello.server_name == "Keystone.Example"  # as sent: the acl's -i folds case
    assert hello.alpn == ("h2", "http/1.1")
    assert hello.version == 0x030003  # the hello's version, not the record's 3.1
    assert hello.elliptic_curves is True
    assert hello.session_ticket == 1  # an empty SessionTicket extension
    assert ch.hello_type(data) == 1
    assert ch.version(data) == 0x030003


def test_python_hello_without_name_or_tickets():
    data = python_hello(None, maximum=ssl.TLSVersion.TLSv1_2, tickets=False)
    hello = ch.client_hello(data)
    assert hello.server_name is None
    assert hello.alpn == ()
    assert hello.session_ticket == 0


@pytest.mark.parametrize("arguments, name, alpn", [
    (("-servername", "nova.example"), "nova.example", ()),
    (("-servername", "a.b.example", "-alpn", "acme-tls/1", "-tls1_2"), "a.b.example", ("acme-tls/1",)),
    (("-noservername",), None, ()),
])
def test_openssl_hellos(arguments, name, alpn):
    data = openssl_hello(*arguments)
    hello = ch.client_hello(data)
    assert (hello.server_name, hello.alpn) == (name, alpn)
    assert ch.hello_type(data) == 1


def test_every_prefix_needs_more_then_the_whole_answers():
    data = python_hello("glance.example")
    for cut in range(len(data)):
        assert ch.client_hello(data[:cut]) is NEED_MORE, cut
        assert ch.hello_type(data[:cut]) is NEED_MORE, cut
        assert ch.version(data[:cut]) is NEED_MORE, cut
    assert ch.client_hello(data).server_name == "glance.example"
    # what follows the first record (the client's next flight) changes nothing
    assert ch.client_hello(data + b"\x17\x03\x03\x00\x01x").server_name == "glance.example"


def split_into_records(data: bytes, first: int) -> bytes:
    body, version = data[5:], data[1:3]
    return b"".join(b"\x16" + version + len(part).to_bytes(2, "big") + part
                    for part in (body[:first], body[first:]))


def test_a_hello_split_over_two_records_has_no_fields_but_a_type():
    data = split_into_records(python_hello("cinder.example"), 40)
    assert ch.client_hello(data) is None  # only the first record is read, as HAProxy does
    assert ch.hello_type(data) == 1  # its length counts the bytes, whatever the records
    assert ch.version(data) == 0x030003


@pytest.mark.parametrize("data", [
    b"GET / HTTP/1.1\r\nHost: keystone\r\n\r\n",
    b"\x16\x01\x01\x00\x10" + bytes(16),  # a record version below SSLv3
    b"\x16\x03\x01\x00\x02abcd",  # a record too short for a handshake header
])
def test_not_tls(data):
    assert ch.client_hello(data) is None
    assert ch.hello_type(data) is None
    assert ch.version(data) is None


def test_other_records():
    alert = b"\x15\x03\x03\x00\x02\x02\x28"
    assert ch.hello_type(alert) is NEED_MORE  # short of the handshake header it reads anyway
    assert ch.client_hello(alert) is None
    application = b"\x17\x03\x03\x00\x04\x01\x00\x00\x01x"
    assert ch.hello_type(application) == 1
    assert ch.version(application) is NEED_MORE
    server_hello = b"\x16\x03\x03\x00\x08\x02\x00\x00\x04\x03\x03\x00\x00"
    assert ch.hello_type(server_hello) == 2
    assert ch.client_hello(server_hello) is None


def test_sslv2_format_hello_version():
    body = b"\x01\x03\x01\x00\x03\x00\x00\x00\x10" + b"\x00\x00\x2f" + b"C" * 16
    data = bytes([0x80 | len(body) >> 8, len(body) & 0xFF]) + body
    assert ch.version(data) == 0x030001
    assert ch.version(data[:-1]) is NEED_MORE
    assert ch.hello_type(data) is None
    assert ch.client_hello(data) is None


# ------------------------------------------------------------- hypothesis


def vector(length_size: int, body: bytes) -> bytes:
    return len(body).to_bytes(length_size, "big") + body


def build_hello(name, protocols, curves, ticket, filler) -> bytes:
    extensions = b""
    for kind, body in filler:
        extensions += kind.to_bytes(2, "big") + vector(2, body)
    if name is not None:
        extensions += b"\x00\x00" + vector(2, vector(2, b"\x00" + vector(2, name)))
    if protocols:
        extensions += b"\x00\x10" + vector(2, vector(2, b"".join(vector(1, p) for p in protocols)))
    if curves:
        extensions += b"\x00\x0a" + vector(2, vector(2, b"\x00\x1d"))
    if ticket is not None:
        extensions += b"\x00\x23" + vector(2, ticket)
    hello = b"\x03\x03" + bytes(32) + vector(1, b"") + vector(2, b"\x13\x01") + vector(1, b"\x00") \
        + vector(2, extensions)
    record = b"\x01" + vector(3, hello)
    return b"\x16\x03\x01" + vector(2, record)


names = st.binary(min_size=1, max_size=60).filter(lambda b: b"\x00" not in b)
protocols = st.lists(st.binary(min_size=1, max_size=20), max_size=4)
# extensions the reader skips (not 0, 10, 16 or 35)
fillers = st.lists(st.tuples(st.sampled_from([5, 13, 43, 45, 51, 0xFF01]), st.binary(max_size=40)),
                   max_size=5)


@settings(max_examples=200, deadline=None)
@given(st.one_of(st.none(), names), protocols, st.booleans(),
       st.one_of(st.none(), st.binary(max_size=30)), fillers, st.data())
def test_built_hellos_read_back(name, alpn, curves, ticket, filler, data):
    wire = build_hello(name, alpn, curves, ticket, filler)
    hello = ch.client_hello(wire)
    assert hello.server_name == (name.decode("latin-1") if name is not None else None)
    assert hello.alpn == tuple(p.decode("latin-1") for p in alpn)
    assert hello.elliptic_curves == curves
    assert hello.session_ticket == (0 if ticket is None else 2 if ticket else 1)
    cut = data.draw(st.integers(0, len(wire) - 1))
    assert ch.client_hello(wire[:cut]) is NEED_MORE  # any TCP segmentation: wait, never a wrong answer


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=300))
def test_arbitrary_bytes_never_raise(data):
    for reader in (ch.client_hello, ch.hello_type, ch.version):
        answer = reader(data)
        assert answer is NEED_MORE or answer is None or answer is not None


@settings(max_examples=300, deadline=None)
@given(st.binary(min_size=1, max_size=200), st.integers(0, 3000))
def test_a_corrupt_hello_is_none_or_needs_more(garbage, at):
    wire = bytearray(build_hello(b"x.example", [b"h2"], True, b"", []))
    at %= len(wire)
    wire[at:at + len(garbage)] = garbage
    answer = ch.client_hello(bytes(wire))
    assert answer is NEED_MORE or answer is None or isinstance(answer, ch.ClientHello)
