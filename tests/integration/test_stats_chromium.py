"""The stats page in real headless Chromium: it renders, a screenshot is taken,
and an admin action taken through the page's own form changes a server's state."""

from __future__ import annotations

import base64
import os
import tempfile

import pytest

from tests.support import chromium as browser
from tests.support.admin_cli import cli, wait_socket
from tests.support.haply_process import run_haply
from tests.support.haproxy_oracle import echo_backends, free_port, haproxy_config

pytestmark = pytest.mark.skipif(not browser.available(),
                                reason="chromium or websocket-client not installed")
SCREENSHOT_DIR = os.environ.get("HAPLY_SCREENSHOT_DIR")


@pytest.fixture
def stats_site():
    directory = tempfile.mkdtemp(prefix="haply-chromium-site-")
    sock = os.path.join(directory, "admin.sock")
    stats_port, port = free_port(), free_port()
    with echo_backends(["a", "b"]) as backends:
        prelude = haproxy_config("").replace(
            "    nbthread 1\n", f"    nbthread 1\n    stats socket {sock} level admin\n")
        config = prelude + f"""
frontend fe
    bind 127.0.0.1:{port}
    default_backend be
listen stats
    bind 127.0.0.1:{stats_port}
    stats enable
    stats uri /stats
    stats realm Operators
    stats auth ops:pa55
    stats admin if TRUE
backend be
    server a {backends[0].address} check inter 300ms
    server b {backends[1].address}
"""
        with run_haply(config):
            wait_socket(sock)
            yield {"url": f"http://127.0.0.1:{stats_port}/stats", "sock": sock,
                   "dir": directory}
    for name in os.listdir(directory):
        os.unlink(os.path.join(directory, name))
    os.rmdir(directory)


def test_page_renders_screenshot_and_admin_action(stats_site):
    auth = "Basic " + base64.b64encode(b"ops:pa55").decode()
    with browser.chromium() as page:
        page.call("Page.enable")
        page.call("Network.enable")
        page.call("Network.setExtraHTTPHeaders", headers={"Authorization": auth})
        page.call("Page.navigate", url=stats_site["url"])
        page.wait_event("Page.loadEventFired")
        # rendered: one table per proxy, status cells coloured by state
        assert page.evaluate("document.querySelectorAll('section.proxy table').length") == 3
        assert page.evaluate(
            "document.querySelector('tr[data-server=\"b\"] td.status').textContent") == "no check"
        colour = page.evaluate(
            "getComputedStyle(document.querySelector('tr[data-server=\"a\"] td.status'))"
            ".backgroundColor")
        assert colour not in ("", "rgba(0, 0, 0, 0)")
        shot = base64.b64decode(page.call("Page.captureScreenshot", format="png")["data"])
        assert shot.startswith(b"\x89PNG\r\n\x1a\n") and len(shot) > 5000
        path = os.path.join(SCREENSHOT_DIR or stats_site["dir"], "stats.png")
        with open(path, "wb") as handle:
            handle.write(shot)
        # an operator ticks server b, picks "maint" and applies
        page.evaluate("document.getElementById('cb-be-b').click()")
        page.evaluate("document.getElementById('action-be').value = 'maint'")
        page.evaluate("document.getElementById('apply-be').click()")
        page.wait_event("Page.loadEventFired")
        assert page.evaluate("location.href").endswith("/stats;st=DONE")
        assert page.evaluate("document.getElementById('result').textContent") == \
            "Action processed successfully."
        assert page.evaluate(
            "document.querySelector('tr[data-server=\"b\"] td.status').textContent") == "MAINT"
    lines = [line for line in cli(stats_site["sock"], "show stat").splitlines() if ",b," in line]
    assert lines and lines[0].split(",")[17] == "MAINT"
