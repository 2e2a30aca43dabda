"""Sinks never block: full or absent receivers drop lines and count them."""

from __future__ import annotations

import asyncio
import os
import socket
import time

from haply.logs.sinks import DatagramSink, StreamSink, open_sink


def test_udp_sink_delivers():
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind(("127.0.0.1", 0))
    receiver.settimeout(2)
    sink = open_sink(f"127.0.0.1:{receiver.getsockname()[1]}")
    try:
        sink.send(b"<134>hello")
        assert receiver.recv(100) == b"<134>hello"
        assert sink.sent == 1 and sink.dropped == 0
    finally:
        sink.close()
        receiver.close()


def test_lines_of_one_turn_of_the_loop_go_together_in_order():
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind(("127.0.0.1", 0))
    receiver.setblocking(False)
    sink = open_sink(f"127.0.0.1:{receiver.getsockname()[1]}")

    async def one_turn() -> list[bytes]:
        for line in (b"<134>one", b"<134>two", b"<134>three"):
            sink.send(line)
        held = sink.sent  # nothing sent yet: the loop's turn is not over
        await asyncio.sleep(0)
        await asyncio.sleep(0.05)
        received = []
        while True:
            try:
                received.append(receiver.recv(100))
            except BlockingIOError:
                return [held, *received]

    try:
        assert asyncio.run(one_turn()) == [0, b"<134>one", b"<134>two", b"<134>three"]
        assert sink.sent == 3
    finally:
        sink.close()
        receiver.close()


def test_missing_unix_socket_drops(tmp_path):
    sink = DatagramSink(str(tmp_path / "no-such-log"))
    try:
        for _ in range(5):
            sink.send(b"x")
        assert sink.dropped == 5
    finally:
        sink.close()


def test_full_unix_receiver_drops_without_blocking(tmp_path):
    path = str(tmp_path / "log")
    receiver = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    receiver.bind(path)
    sink = DatagramSink(path)
    try:
        started = time.monotonic()
        for _ in range(5000):  # nobody reads: the socket queue fills up
            sink.send(b"y" * 512)
        assert time.monotonic() - started < 2
        assert sink.dropped > 0 and sink.sent + sink.dropped == 5000
    finally:
        sink.close()
        receiver.close()


def test_stream_sink_bounded_when_reader_stalls():
    read_end, write_end = os.pipe()
    sink = StreamSink(write_end, limit=10)
    try:
        started = time.monotonic()
        for _ in range(20000):  # the pipe fills (64 kB), then the queue (10)
            sink.send(b"z" * 100)
        assert time.monotonic() - started < 2
        assert sink.dropped > 0
        assert len(sink.queue) <= 10
    finally:
        os.close(read_end)  # the writer's next write fails; it ends
        sink.close()
        os.close(write_end)


def test_stream_sink_writes_lines():
    read_end, write_end = os.pipe()
    sink = StreamSink(write_end)
    try:
        sink.send(b"one")
        sink.send(b"two")
        deadline = time.monotonic() + 2
        data = b""
        while data.count(b"\n") < 2 and time.monotonic() < deadline:
            data += os.read(read_end, 100)
        assert data == b"one\ntwo\n"
    finally:
        sink.close()
        os.close(read_end)
        os.close(write_end)
