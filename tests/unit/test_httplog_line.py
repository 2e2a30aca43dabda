"""`option httplog`'s hand-written line (haply.logs.httplog_line) against the
line the log-format generator makes of the same format, over the values an
exchange can hold: they must be the same text, whichever build runs."""

from __future__ import annotations

import asyncio
import os
import socket
import tempfile

import pytest
import uvloop
from hypothesis import given, settings, strategies as st

from haply.config import load
from haply.http.headers import SampleContext
from haply.logs import formats, httplog_line
from haply.logs.logger import Exchange
from haply.proxy.engine import Engine
from haply.proxy.http import Request

BEGIN = 1000.0  # loop time of the request's first byte
WALL = 1795309474.25


class Transport(asyncio.Transport):
    """What a logging session's counting transport needs of the real one."""

    def __init__(self, ssl: bool):
        super().__init__()
        self.ssl = ssl

    def get_extra_info(self, name, default=None):
        return {"peername": ("10.0.0.9", 41234), "sockname": ("10.0.0.1", 80)}.get(name, default)

    def write(self, data):
        pass

    def is_closing(self):
        return False


@pytest.fixture(scope="module")
def engine():
    # the log's socket, and a port for the listener (not opened: no traffic)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sink:
        sink.bind(("127.0.0.1", 0))
        text = f"""global
    log 127.0.0.1:{sink.getsockname()[1]} local0
defaults
    mode http
    log global
    option httplog
    timeout connect 1s
    timeout client 1s
    timeout server 1s
frontend fe
    bind 127.0.0.1:{sink.getsockname()[1]}
    default_backend be
backend be
    server s1 127.0.0.1:9001
    server s2 127.0.0.1:9002 backup
"""
        with tempfile.NamedTemporaryFile("w", suffix=".cfg", delete=False) as handle:
            handle.write(text)
        try:
            config = load([handle.name]).config
        finally:
            os.unlink(handle.name)
        loop = uvloop.new_event_loop()
        engine = Engine(config, loop)
        engine.prepare()
        yield engine
        loop.close()


def test_the_frontend_uses_it_for_the_default_format(engine):
    assert engine.frontends["fe"].logger.http_render is httplog_line.render


GENERATED = formats.compile_http(formats.HTTPLOG)
urls = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7e), min_size=1, max_size=30)
times = st.one_of(st.none(), st.just(0.0), st.floats(min_value=0.0, max_value=100.0))
ms = st.one_of(st.just(-1), st.integers(min_value=0, max_value=100_000))  # -1: never got there


@settings(max_examples=300, deadline=None)
@given(ssl=st.booleans(), client_ip=st.sampled_from(["10.0.0.9", "::1", ""]),
       url=urls, method=st.sampled_from([b"GET", b"PUT", b"BREW"]), version=st.sampled_from(["1.1", "1.0", ""]),
       bad=st.booleans(), backend=st.booleans(), server=st.sampled_from([None, "s1", "s2"]),
       held=st.integers(0, 1), headers_after=times, response_after=times,
       duration=st.floats(min_value=0.0, max_value=1000.0), t_wait=ms, t_connect=ms,
       attempts=st.integers(0, 5), redispatched=st.booleans(),
       queued=st.one_of(st.none(), st.tuples(st.integers(0, 99), st.integers(0, 99))),
       status=st.integers(-1, 599), termination=st.sampled_from(["----", "SC--", "cD--", "PR--"]),
       written=st.integers(0, 10**9), bytes_out=st.integers(0, 10**6),
       first=st.booleans())
def test_the_same_line_as_the_generated_one(engine, ssl, client_ip, url, method, version, bad,
                                             backend, server, held, headers_after, response_after,
                                             duration, t_wait, t_connect, attempts, redispatched,
                                             queued, status, termination, written, bytes_out, first):
    frontend = engine.frontends["fe"]
    session = engine._factory(frontend)()
    session.connection_made(Transport(ssl))
    session.transport.written = written
    request = Request(SampleContext("10.0.0.9", 41234, "10.0.0.1", 80), client_ip, ssl)
    request.method_bytes, request.url, request.version = method, url.encode(), version
    if bad:
        request.error = (400, "bad request")
    request.backend = engine.backends["be"] if backend else None
    request.t_wait, request.t_connect = t_wait, t_connect
    request.attempts, request.redispatched, request.queue_positions = attempts, redispatched, queued
    exchange = Exchange(BEGIN, WALL, bytes_out, 0)
    exchange.headers_at = None if headers_after is None else BEGIN + headers_after
    exchange.response_at = None if response_after is None else BEGIN + response_after
    states = {state.name: state for state in engine.registry.servers("be")}
    arguments = (request, exchange, BEGIN + duration, status, termination,
                 states.get(server), held, frontend.logger)
    expected = GENERATED(session, *arguments)
    if first:  # else the constants the generated one made are read
        session.log_constants = None
    assert httplog_line.render(session, *arguments) == expected
