"""haply.proxy.outbound on real sockets: connections leave from the source
address, on the interface named, and a port range's ports in turn, the next
one taken when a port still holds a connection to the same server."""

from __future__ import annotations

import asyncio
import errno
import socket

import pytest

from haply.config.model import SourceAddress
from haply.proxy import outbound


@pytest.fixture
def listener():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    yield sock
    sock.close()


def peers_of(listener: socket.socket, count: int) -> list[tuple[str, int]]:
    peers = []
    for _ in range(count):
        conn, peer = listener.accept()
        peers.append(peer)
        conn.close()
    return peers


def connect_all(port: int, source: SourceAddress, count: int) -> list[socket.socket]:
    async def main():
        loop = asyncio.get_running_loop()
        return [await outbound.connected_socket(loop, "127.0.0.1", port, source)
                for _ in range(count)]
    return asyncio.run(main())


def test_connections_leave_from_the_source_address_on_its_interface(listener):
    socks = connect_all(listener.getsockname()[1], SourceAddress("127.0.0.7", interface="lo"), 2)
    try:
        assert [host for host, _ in peers_of(listener, 2)] == ["127.0.0.7", "127.0.0.7"]
        assert socks[0].getsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, 16).rstrip(b"\0") == b"lo"
    finally:
        for sock in socks:
            sock.close()


def test_a_port_range_is_taken_in_turn_skipping_ports_still_connected(listener):
    source = SourceAddress("127.0.0.8", 21500, 21502)
    port = listener.getsockname()[1]
    first = connect_all(port, source, 2)  # 21500, 21501, kept open
    try:
        assert [p for _, p in peers_of(listener, 2)] == [21500, 21501]
        # 21502, then 21500 and 21501 are still connected to this server: skipped
        # until a free one comes round again (21502 is in use too, by now)
        third = connect_all(port, source, 1)
        assert [p for _, p in peers_of(listener, 1)] == [21502]
        with pytest.raises(OSError) as error:
            connect_all(port, source, 1)
        assert error.value.errno == errno.EADDRNOTAVAIL
        third[0].close()
    finally:
        for sock in first:
            sock.close()


def test_a_source_that_is_not_local_is_an_error(listener):
    with pytest.raises(OSError) as error:
        connect_all(listener.getsockname()[1], SourceAddress("192.0.2.1"), 1)
    assert error.value.errno == errno.EADDRNOTAVAIL
