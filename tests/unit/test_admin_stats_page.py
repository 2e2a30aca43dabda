"""The stats page service on a real (unstarted) engine and real Request objects."""

from __future__ import annotations

import base64
import time

import pytest

from haply.admin.services import compile_services
from haply.admin.stats_page import StatsPage
from haply.http.headers import SampleContext
from haply.proxy.conditions import compile_condition
from haply.proxy.http import Request
from haply.runtime.registry import DRAIN, MAINT
from tests.support.admin_engine import engine_from


def config(servers: int = 2, extra: str = "") -> str:
    lines = "\n".join(f"    server s{i} 127.0.0.1:{9000 + i}" for i in range(servers))
    return f"""
defaults
    mode http
    timeout connect 1s
    timeout client 5s
    timeout server 5s
frontend fe
    bind 127.0.0.1:18997
    default_backend be
listen stats
    bind 127.0.0.1:18996
    stats uri /st
    stats auth ops:pw
    stats admin if TRUE
    description edge proxies
    stats show-desc
{extra}
backend be
{lines}
"""


def request(url: str, method: bytes = b"GET", auth: str | None = "ops:pw") -> Request:
    req = Request(SampleContext("127.0.0.1", 5555, "127.0.0.1", 80), "127.0.0.1", False)
    req.url = url.encode()
    req.method_bytes = method
    req.keep_alive = True
    if auth:
        req.headers.append((b"Authorization", b"Basic " + base64.b64encode(auth.encode())))
    return req


@pytest.fixture
def page(tmp_path):
    engine = engine_from(config(), directory=str(tmp_path))
    yield StatsPage(engine.config.proxy("stats"), engine, compile_condition)
    engine.loop.close()


def status_of(raw: bytes) -> int:
    return int(raw[9:12])


def test_auth(page):
    assert status_of(page.answer(request("/st", auth=None))) == 401
    assert status_of(page.answer(request("/st", auth="ops:bad"))) == 401
    raw = page.answer(request("/st"))
    assert status_of(raw) == 200 and b"edge proxies" in raw


def test_csv_and_up_filter(page):
    registry = page.engine.registry
    registry.set_admin(registry.get("be", "s1"), MAINT, 0.0)
    body = page.answer(request("/st;csv")).split(b"\r\n\r\n", 1)[1].decode()
    assert ",s1,"in body
    body = page.answer(request("/st;csv;up")).split(b"\r\n\r\n", 1)[1].decode()
    assert ",s1," not in body and ",s0," in body  # unchecked servers run


def test_admin_post_through_registry(page):
    seen = []
    page.engine.registry.subscribe("be", seen.append)
    raw = page.answer(request("/st", b"POST"), b"b=be&s=s0&s=s1&action=drain")
    assert status_of(raw) == 303 and b"Location: /st;st=DONE" in raw
    assert [s.admin for s in page.engine.registry.servers("be")] == [DRAIN, DRAIN]
    assert len(seen) == 2
    raw = page.answer(request("/st", b"POST"), b"b=be&s=s0&s=nope&action=ready")
    assert b";st=PART" in raw
    raw = page.answer(request("/st", b"POST"), b"b=nobackend&s=s0&action=ready")
    assert b";st=ERRP" in raw


def test_scope_limits_what_is_shown(tmp_path):
    engine = engine_from(config(extra="    stats scope be"), directory=str(tmp_path))
    try:
        page = StatsPage(engine.config.proxy("stats"), engine, compile_condition)
        body = page.answer(request("/st;csv")).decode()
        assert "\nbe,BACKEND," in body and "\nfe,FRONTEND," not in body
    finally:
        engine.loop.close()


def test_services_compiled_only_where_configured(tmp_path):
    engine = engine_from(config(), directory=str(tmp_path))
    try:
        assert compile_services(engine, engine.config.proxy("fe")) is None
        services = compile_services(engine, engine.config.proxy("stats"))
        assert services is not None and len(services.entries) == 1
    finally:
        engine.loop.close()


def test_500_servers_render_fast(tmp_path):
    engine = engine_from(config(servers=500), directory=str(tmp_path))
    try:
        page = StatsPage(engine.config.proxy("stats"), engine, compile_condition)
        page.answer(request("/st"))  # warm-up
        started = time.perf_counter()
        raw = page.answer(request("/st"))
        elapsed = time.perf_counter() - started
        assert raw.count(b'class="server ') == 500
        assert elapsed < 0.2, f"{elapsed * 1000:.0f} ms for 500 servers"
    finally:
        engine.loop.close()


@pytest.mark.parametrize("status, klass", [
    ("UP", "up"), ("UP 1/3", "goingdown"), ("DOWN", "down"), ("DOWN 1/2", "goingup"),
    ("DOWN (agent)", "down"), ("MAINT", "maint"), ("DRAIN", "drain"), ("DRAIN 2/3", "drain"),
    ("no check", "nocheck"), ("OPEN", "up")])
def test_status_colours(status, klass):
    from haply.admin.stats_page import status_class
    assert status_class(status) == klass


def test_admin_only_where_the_condition_holds(tmp_path):
    engine = engine_from(config().replace("stats admin if TRUE", "stats admin if LOCALHOST"),
                         directory=str(tmp_path))
    try:
        page = StatsPage(engine.config.proxy("stats"), engine, compile_condition)
        assert b'name="action"' in page.answer(request("/st"))  # from 127.0.0.1
        remote = Request(SampleContext("10.1.1.1", 5555, "10.0.0.1", 80), "10.1.1.1", False)
        remote.url, remote.method_bytes = b"/st", b"GET"
        remote.headers.append((b"Authorization", b"Basic " + base64.b64encode(b"ops:pw")))
        assert b'name="action"' not in page.answer(remote)
        remote.method_bytes = b"POST"
        assert b";st=DENY" in page.answer(remote, b"b=be&s=s0&action=maint")
        assert engine.registry.get("be", "s0").admin != MAINT
    finally:
        engine.loop.close()
