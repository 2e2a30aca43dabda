"""The stats page and the Prometheus exporter over real HTTP, on a running haply."""

from __future__ import annotations

import base64
import csv
import http.client
import io
import json
import os
import tempfile

import pytest

from tests.support.admin_cli import cli, wait_socket
from tests.support.haply_process import run_haply
from tests.support.haproxy_oracle import echo_backends, free_port, haproxy_config, http_get

AUTH = {"Authorization": "Basic " + base64.b64encode(b"admin:s3cret").decode()}


@pytest.fixture
def site():
    directory = tempfile.mkdtemp(prefix="haply-stats-")
    sock = os.path.join(directory, "admin.sock")
    port, stats_port, open_port = free_port(), free_port(), free_port()
    with echo_backends(["a", "b"]) as backends:
        prelude = haproxy_config("").replace(
            "    nbthread 1\n", f"    nbthread 1\n    stats socket {sock} level admin\n")
        config = prelude + f"""
frontend fe
    bind 127.0.0.1:{port}
    http-request use-service prometheus-exporter if {{ path /metrics }}
    default_backend be
listen stats
    bind 127.0.0.1:{stats_port}
    stats enable
    stats uri /admin/stats
    stats realm Haply\\ Operators
    stats auth admin:s3cret
    stats refresh 10s
    stats show-node edge1
    stats admin if TRUE
listen public
    bind 127.0.0.1:{open_port}
    stats enable
    stats hide-version
    stats uri /st
backend be
    server a {backends[0].address} check inter 200ms
    server b {backends[1].address}
"""
        with run_haply(config) as proxy:
            wait_socket(sock)
            yield {"port": port, "stats": stats_port, "open": open_port, "sock": sock,
                   "proxy": proxy}
    for name in os.listdir(directory):
        os.unlink(os.path.join(directory, name))
    os.rmdir(directory)


def request(port: int, path: str, method: str = "GET", body: str | None = None,
            headers: dict | None = None) -> tuple[int, dict, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        all_headers = dict(headers or {})
        if body is not None:
            all_headers["Content-Type"] = "application/x-www-form-urlencoded"
        conn.request(method, path, body=body, headers=all_headers)
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def test_missing_or_wrong_credentials_get_401_with_realm(site):
    status, headers, _ = request(site["stats"], "/admin/stats")
    assert status == 401
    assert headers["www-authenticate"] == 'Basic realm="Haply Operators"'
    wrong = {"Authorization": "Basic " + base64.b64encode(b"admin:nope").decode()}
    assert request(site["stats"], "/admin/stats", headers=wrong)[0] == 401


def test_html_page_shows_every_proxy(site):
    status, headers, body = request(site["stats"], "/admin/stats", headers=AUTH)
    assert status == 200 and headers["content-type"].startswith("text/html")
    assert headers["refresh"] == "10"
    page = body.decode()
    for name in ("fe", "stats", "public", "be"):
        assert f'id="px-{name}"' in page
    assert "on edge1" in page
    assert 'data-server="a"' in page and 'data-server="b"' in page
    assert 'name="action"' in page  # admin form


def test_hide_version_and_no_admin_form(site):
    status, _, body = request(site["open"], "/st")
    assert status == 200
    page = body.decode()
    assert "version" not in page.split("</h1>")[0]
    assert 'name="action"' not in page
    # the admin POST is refused without `stats admin`
    status, headers, _ = request(site["open"], "/st", "POST", "b=be&s=b&action=maint")
    assert status == 303 and headers["location"].endswith(";st=DENY")
    assert "MAINT" not in cli(site["sock"], "show stat")


def test_csv_is_readable_by_existing_parsers(site):
    status, headers, body = request(site["stats"], "/admin/stats;csv", headers=AUTH)
    assert status == 200 and headers["content-type"].startswith("text/plain")
    text = body.decode()
    assert text.split("\n")[0] == cli(site["sock"], "show stat").split("\n")[0]
    records = list(csv.DictReader(io.StringIO(text[2:])))
    assert [(r["pxname"], r["svname"]) for r in records if r["pxname"] == "be"] == [
        ("be", "a"), ("be", "b"), ("be", "BACKEND")]


def test_json(site):
    status, headers, body = request(site["stats"], "/admin/stats;json", headers=AUTH)
    assert status == 200 and headers["content-type"] == "application/json"
    data = json.loads(body)
    names = [{f["field"]["name"]: f["value"]["value"] for f in row}["svname"] for row in data]
    assert "FRONTEND" in names and "a" in names


def test_admin_action_changes_server_state(site):
    status, headers, _ = request(site["stats"], "/admin/stats", "POST",
                                 "b=be&s=a&s=b&action=drain", headers=AUTH)
    assert status == 303 and headers["location"] == "/admin/stats;st=DONE"
    lines = [l for l in cli(site["sock"], "show servers state be").splitlines()[2:] if l]
    assert [line.split()[6] for line in lines] == ["8", "8"]  # forced drain
    request(site["stats"], "/admin/stats", "POST", "b=be&s=a&action=ready", headers=AUTH)
    assert {http_get(site["port"]).backend for _ in range(4)} == {"a"}
    _, _, body = request(site["stats"], "/admin/stats;st=DONE", headers=AUTH)
    assert "Action processed successfully." in body.decode()
    status, headers, _ = request(site["stats"], "/admin/stats", "POST",
                                 "b=be&s=zz&action=maint", headers=AUTH)
    assert headers["location"].endswith(";st=ERRP")


def test_prometheus_metrics_parse_with_prometheus_client(site):
    from prometheus_client.parser import text_string_to_metric_families
    for _ in range(3):
        assert http_get(site["port"]).status == 200
    cli(site["sock"], "set server be/b state maint")
    status, headers, body = request(site["port"], "/metrics")
    assert status == 200
    assert headers["content-type"].startswith("text/plain; version=0.0.4")
    samples = {}
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    assert samples[("haproxy_server_status", (("proxy", "be"), ("server", "b"), ("state", "MAINT")))] == 1
    assert samples[("haproxy_server_status", (("proxy", "be"), ("server", "a"), ("state", "UP")))] == 1
    assert samples[("haproxy_backend_http_responses_total", (("code", "2xx"), ("proxy", "be")))] == 3
    assert samples[("haproxy_frontend_current_sessions", (("proxy", "fe"),))] >= 1
    assert ("haproxy_server_check_status",
            (("proxy", "be"), ("server", "a"), ("state", "L4OK"))) in samples
    # the exporter does not swallow other paths
    assert http_get(site["port"], "/other").backend in ("a",)


SEED = "/work/shared/fixtures/seed-configs/stats-page.haproxy.cfg"


def seed_config(directory: str, port: int) -> str:
    """The stats-page seed, made runnable here: loopback address, no chroot,
    user or daemon, the socket in a temporary directory, HAProxy 2.6's names
    for the timeouts and its `bind` line."""
    text = open(SEED).read()
    for line in ("    chroot /var/lib/haproxy\n", "    user haproxy\n", "    group haproxy\n",
                 "    daemon\n"):
        text = text.replace(line, "")
    text = text.replace("/var/lib/haproxy/status", os.path.join(directory, "status"))
    # HAProxy 2.6 no longer reads the 1.x timeout names the seed uses
    for old, new in (("contimeout", "timeout connect"), ("clitimeout", "timeout client"),
                     ("srvtimeout", "timeout server")):
        text = text.replace(f"    {old} ", f"    {new} ")
    # and a `bind` line: HAProxy 2.6 refuses the address on the `listen` line
    return text.replace("listen stats 192.168.243.11:80",
                        f"listen stats\n    bind 127.0.0.1:{port}")


@pytest.mark.skipif(not os.path.exists(SEED), reason="seed configs not available")
def test_seed_stats_page_answers_as_haproxy():
    from tests.support.haply_process import PROXIES
    from tests.support.haproxy_oracle import run_haproxy
    seen = {}
    for name, binary in sorted(PROXIES.items()):
        directory = tempfile.mkdtemp(prefix=f"seed-{name}-")
        port = free_port()
        try:
            with run_haproxy(seed_config(directory, port), binary):
                denied = request(port, "/stats")
                auth = {"Authorization": "Basic " + base64.b64encode(b"admin:openstack").decode()}
                page = request(port, "/stats", headers=auth)
                csv_text = request(port, "/stats;csv", headers=auth)
                seen[name] = (denied[0], denied[1].get("www-authenticate"), page[0],
                              page[1]["content-type"].split(";")[0],
                              csv_text[2].decode().split("\n")[0],
                              [line.split(",")[:2] for line in csv_text[2].decode().split("\n")[1:]
                               if line])
        finally:
            for entry in os.listdir(directory):
                os.unlink(os.path.join(directory, entry))
            os.rmdir(directory)
    assert seen["haply"] == seen["haproxy"]
    assert seen["haply"][:2] == (401, 'Basic realm="HAProxy Statistics"')
