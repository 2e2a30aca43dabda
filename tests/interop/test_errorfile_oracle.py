"""Errorfiles as HAProxy 2.6 sends them: parsed when loaded and written again
(CRLF line ends, field names in lower case), the connection kept after a
framed one (an HTTP/1.0 one then says `connection: keep-alive`) and closed
after one without a length."""

from __future__ import annotations

import pytest

from tests.interop.test_tls_oracle import raw_exchange
from tests.support.haply_process import PROXIES
from tests.support.haproxy_oracle import free_port, haproxy_available, haproxy_config, run_haproxy

pytestmark = pytest.mark.skipif(not haproxy_available(), reason="HAProxy oracle not installed")

FILES = {
    "unframed": b"HTTP/1.0 503 Service Unavailable\r\nCache-Control: no-cache\r\n"
                b"Content-Type: text/html\r\nX-Custom: Yes\r\n\r\n<h1>down</h1>\n",
    "framed-lf": b"HTTP/1.0 503 Service Unavailable\nCache-Control: no-cache\n"
                 b"Content-Type: text/html\nContent-Length: 14\n\n<h1>down</h1>\n",
    "unframed-1.1": b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\n\r\nlater",
    "framed-1.1": b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 5\r\nX-Why:  maintenance \r\n\r\nlater",
}
REQUESTS = [b"GET / HTTP/1.1\r\nHost: h\r\n\r\n", b"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
            b"GET / HTTP/1.0\r\n\r\n", b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"]


@pytest.mark.parametrize("name", sorted(FILES))
def test_errorfile_as_haproxy(tmp_path, name):
    path = tmp_path / "503.http"
    path.write_bytes(FILES[name])
    seen = {}
    for proxy, binary in PROXIES.items():
        port = free_port()
        config = haproxy_config(f"""
frontend fe
    bind 127.0.0.1:{port}
    errorfile 503 {path}
    default_backend gone
backend gone
""")
        with run_haproxy(config, binary=binary):
            seen[proxy] = [raw_exchange(port, request, wait=0.3) for request in REQUESTS]
    assert seen["haply"] == seen["haproxy"]


HTTP_ERRORS = """
http-errors site
    errorfile 503 {path503}
    errorfile 403 {path403}
frontend fe
    bind 127.0.0.1:{port}
    errorfiles site 503
    http-request deny deny_status 403 errorfiles site if {{ path /forbidden }}
    http-request deny deny_status 429 errorfiles site if {{ path /undeclared }}
    http-request return status 403 errorfiles site if {{ path /returned }}
    default_backend gone
backend gone
"""


@pytest.mark.parametrize("path", ["/", "/forbidden", "/undeclared", "/returned"])
def test_http_errors_sections_as_haproxy(tmp_path, path):
    """An http-errors section's pages, imported by `errorfiles` (the 503 of
    a backend without server) and sent by deny and return rules; a status
    the section does not declare gets the proxy's own page."""
    (tmp_path / "503.http").write_bytes(FILES["framed-1.1"])
    (tmp_path / "403.http").write_bytes(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 3\r\nX-Page: site\r\n\r\nno\n")
    seen = {}
    for proxy, binary in PROXIES.items():
        port = free_port()
        config = haproxy_config(HTTP_ERRORS.format(port=port, path503=tmp_path / "503.http",
                                                   path403=tmp_path / "403.http"))
        with run_haproxy(config, binary=binary):
            seen[proxy] = raw_exchange(port, f"GET {path} HTTP/1.1\r\nHost: h\r\n\r\n".encode(), wait=0.3)
    assert seen["haply"] == seen["haproxy"]
