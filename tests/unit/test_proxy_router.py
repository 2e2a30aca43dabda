"""Router: what a frontend/backend pair's Route takes from each proxy."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from haply.config.model import Proxy
from haply.proxy.router import Router


def route(frontend: Proxy, backend: Proxy):
    runtime = SimpleNamespace(proxy=backend, servers=[])
    return Router(frontend, {backend.name: runtime}).route(SimpleNamespace())


@pytest.mark.parametrize("front, back, buffered", [
    (False, False, False), (True, False, True), (False, True, True), (True, True, True),
])
def test_http_buffer_request_from_either_proxy(front, back, buffered):
    fe = Proxy("fe", "frontend", mode="http", default_backend="be", buffer_request=front)
    be = Proxy("be", "backend", mode="http", buffer_request=back)
    assert route(fe, be).buffer_request is buffered


@pytest.mark.parametrize("balance, preferred", [
    ("roundrobin", True), ("leastconn", True), ("static-rr", True), ("first", True),
    ("random", True), ("source", False), ("uri", False), ("url_param", False), ("hdr", False),
])
def test_prefer_last_server_is_the_backends_and_not_with_a_hash(balance, preferred):
    fe = Proxy("fe", "frontend", mode="http", default_backend="be", prefer_last_server=True)
    be = Proxy("be", "backend", mode="http", balance=balance, prefer_last_server=True)
    assert route(fe, be).prefer_last_server is preferred
    off = Proxy("be", "backend", mode="http", balance=balance)
    assert route(fe, off).prefer_last_server is False  # the frontend's has no say
