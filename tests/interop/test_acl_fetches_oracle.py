"""Acl fetches and match methods against HAProxy 2.6: `-m found` and `-m len`
on any string sample, `query`, `urlp()`/`url_param()`, `req.cook()`/`cook()`
and their counts, `hdr_cnt()`, `base`, the spelled derivatives (`urlp_beg`,
`cook_len`, `hdr_dir`, `path_len`, ...) and `ssl_fc_sni` on a TLS bind.

Each rule answers its own status; both proxies must answer every request
alike. The requests are the kinds operators write such acls for: a token
header present or repeated, a debug query parameter, a session cookie, an
admin area under one host, a client that asked for a name in its handshake.
"""

from __future__ import annotations

import socket
import ssl

import pytest

from tests.interop.test_proxy_oracle import PRELUDE, raw_exchange
from tests.support.certs import make_tls_files
from tests.support.haply_process import PROXIES
from tests.support.haproxy_oracle import free_port, haproxy_available, run_haproxy

pytestmark = pytest.mark.skipif(not haproxy_available(), reason="HAProxy oracle not installed")

RULES = """
frontend fe
    bind 127.0.0.1:{port}
    acl token req.hdr(x-token) -m found
    acl has_session cook(session) -m found
    # one name on two lines with different fetches: either line matches (ORed)
    acl api_or_v3 hdr(host) -i api.example
    acl api_or_v3 path_beg /v3/
    http-request return status 210 if token {{ hdr_cnt(x-token) gt 1 }}
    http-request return status 211 if token {{ req.hdr(x-token) -m len 3 }}
    http-request return status 212 if token
    http-request return status 213 if {{ query -m sub debug }}
    http-request return status 214 if {{ url_param(id) 42 }}
    http-request return status 215 if {{ urlp_beg(page) 1 }}
    http-request return status 216 if {{ query -m found }} {{ query -m len 0 }}
    http-request return status 217 if has_session {{ cook_cnt(session) ge 2 }}
    http-request return status 218 if has_session {{ cook_len(session) ge 8 }}
    http-request return status 219 if {{ req.cook(session) -i ABC }}
    http-request return status 220 if {{ base_beg admin.example.com/admin }}
    http-request return status 221 if {{ base -m end /x }}
    http-request return status 222 if {{ path_len gt 20 }}
    http-request return status 223 if {{ hdr_dir(x-path) b }}
    http-request return status 224 if {{ url_dom example }}
    http-request return status 225 if !{{ req.hdr(host) -m found }}
    http-request return status 226 if {{ req.hdr_ip(x-forwarded-for,-1) 10.0.0.0/8 }}
    http-request return status 227 if {{ hdr_ip(x-forwarded-for,1) 192.168.0.0/16 }}
    http-request return status 228 if {{ hdr(x-forwarded-for) -m ip 172.16.0.0/12 }}
    http-request return status 229 if {{ hdr_val(x-n) gt 100 }}
    http-request return status 230 if {{ urlp_val(n) 5:9 }}
    http-request return status 231 if {{ urlp(n) -m int 42 }}
    http-request return status 232 if {{ hdr(x-n,2) -m str b }}
    http-request return status 233 if {{ hdr_val(x-z) eq 0 }}
    http-request return status 234 if api_or_v3
    http-request return status 235 if !api_or_v3 {{ req.hdr(x-k) -m found }}
    http-request return status 200
"""

REQUESTS = {
    "plain": b"GET / HTTP/1.1\r\nHost: h\r\n\r\n",
    "token": b"GET / HTTP/1.1\r\nHost: h\r\nX-Token: abcdef\r\n\r\n",
    "short token": b"GET / HTTP/1.1\r\nHost: h\r\nX-Token: abc\r\n\r\n",
    "two tokens": b"GET / HTTP/1.1\r\nHost: h\r\nX-Token: a, b\r\n\r\n",
    "token fields": b"GET / HTTP/1.1\r\nHost: h\r\nX-Token: a\r\nX-Token: b\r\n\r\n",
    "debug": b"GET /v2?x=1&debug=1 HTTP/1.1\r\nHost: h\r\n\r\n",
    "id": b"GET /v2?a=1;id=42 HTTP/1.1\r\nHost: h\r\n\r\n",
    "other id": b"GET /v2?id=4&id=42 HTTP/1.1\r\nHost: h\r\n\r\n",
    "page": b"GET /list?page=12 HTTP/1.1\r\nHost: h\r\n\r\n",
    "empty query": b"GET /list? HTTP/1.1\r\nHost: h\r\n\r\n",
    "cookie": b"GET / HTTP/1.1\r\nHost: h\r\nCookie: a=1; session=abc\r\n\r\n",
    "long cookie": b"GET / HTTP/1.1\r\nHost: h\r\nCookie: session=abcdefgh\r\n\r\n",
    "two cookies": b"GET / HTTP/1.1\r\nHost: h\r\nCookie: session=x\r\nCookie: session=y\r\n\r\n",
    "admin": b"GET /admin/users HTTP/1.1\r\nHost: admin.example.com\r\n\r\n",
    "base end": b"GET /a/x?q HTTP/1.1\r\nHost: h\r\n\r\n",
    "long path": b"GET /a/very/long/path/indeed/here HTTP/1.1\r\nHost: h\r\n\r\n",
    "header dir": b"GET / HTTP/1.1\r\nHost: h\r\nX-Path: /a/b/c\r\n\r\n",
    "url domain": b"GET http://www.example.com/ HTTP/1.1\r\nHost: www.example.com\r\n\r\n",
    "no host": b"GET / HTTP/1.0\r\n\r\n",
    "forwarded inside": b"GET / HTTP/1.1\r\nHost: h\r\nX-Forwarded-For: 203.0.113.9, 10.1.2.3\r\n\r\n",
    "forwarded first": b"GET / HTTP/1.1\r\nHost: h\r\nX-Forwarded-For: 192.168.1.1, 203.0.113.9\r\n\r\n",
    "forwarded any": b"GET / HTTP/1.1\r\nHost: h\r\nX-Forwarded-For: 203.0.113.9, 172.16.5.5, 8.8.8.8\r\n\r\n",
    "forwarded port": b"GET / HTTP/1.1\r\nHost: h\r\nX-Forwarded-For: 10.1.2.3:443\r\n\r\n",
    "forwarded v6": b"GET / HTTP/1.1\r\nHost: h\r\nX-Forwarded-For: ::ffff:10.9.9.9\r\n\r\n",
    "forwarded junk": b"GET / HTTP/1.1\r\nHost: h\r\nX-Forwarded-For: unknown\r\n\r\n",
    "big number": b"GET / HTTP/1.1\r\nHost: h\r\nX-N: 150\r\n\r\n",
    "number text": b"GET / HTTP/1.1\r\nHost: h\r\nX-N: 150abc\r\n\r\n",
    "negative": b"GET / HTTP/1.1\r\nHost: h\r\nX-N: -500\r\n\r\n",
    "second value": b"GET / HTTP/1.1\r\nHost: h\r\nX-N: a, b\r\n\r\n",
    "param in range": b"GET /?n=7 HTTP/1.1\r\nHost: h\r\n\r\n",
    "param int": b"GET /?n=42 HTTP/1.1\r\nHost: h\r\n\r\n",
    "param text": b"GET /?n=x7 HTTP/1.1\r\nHost: h\r\n\r\n",
    "no number": b"GET / HTTP/1.1\r\nHost: h\r\nX-Z: abc\r\n\r\n",
    "zero": b"GET / HTTP/1.1\r\nHost: h\r\nX-Z: 0\r\n\r\n",
    "acl's first line": b"GET /x HTTP/1.1\r\nHost: API.example\r\n\r\n",
    "acl's second line": b"GET /v3/servers HTTP/1.1\r\nHost: h\r\n\r\n",
    "acl's lines negated": b"GET /v2/servers HTTP/1.1\r\nHost: h\r\nX-K: 1\r\n\r\n",
    "acl negated, one line matches": b"GET /v3/servers HTTP/1.1\r\nHost: h\r\nX-K: 1\r\n\r\n",
}


def status(port: int, request: bytes) -> bytes:
    answer = raw_exchange(port, request.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n", 1))
    return answer.split(b"\r\n", 1)[0]


def test_acl_fetches_as_haproxy():
    results = {}
    for name, binary in PROXIES.items():
        port = free_port()
        with run_haproxy(PRELUDE + RULES.format(port=port), binary):
            results[name] = {case: status(port, request) for case, request in REQUESTS.items()}
    for case in REQUESTS:
        assert results["haply"][case] == results["haproxy"][case], (case, results["haply"][case],
                                                                     results["haproxy"][case])
    # what the comparison is about, so that a change in both cannot pass unseen
    assert {code.split(b" ")[1] for code in results["haply"].values()} >= {
        b"200", b"210", b"211", b"212", b"213", b"214", b"215", b"217", b"218", b"219", b"220", b"222",
        b"223", b"225", b"226", b"227", b"228", b"229", b"230", b"231", b"232", b"234", b"235"}


SNI_RULES = """
frontend fe
    bind 127.0.0.1:{port} ssl crt {pem}
    http-request return status 230 if {{ ssl_fc_sni -i api.example.com }}
    http-request return status 231 if {{ ssl_fc_sni_end .example.org }}
    http-request return status 232 if !{{ ssl_fc_sni -m found }}
    http-request return status 200
"""


def tls_status(port: int, server_name: str | None) -> str:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        with context.wrap_socket(raw, server_hostname=server_name) as sock:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
            answer = b""
            while chunk := sock.recv(65536):
                answer += chunk
    return answer.split(b"\r\n", 1)[0].decode()


def test_ssl_fc_sni_as_haproxy(tmp_path):
    files = make_tls_files(tmp_path, ["api.example.com", "www.example.org"])
    results = {}
    for name, binary in PROXIES.items():
        port = free_port()
        with run_haproxy(PRELUDE + SNI_RULES.format(port=port, pem=files.pem), binary):
            results[name] = [tls_status(port, sni) for sni in ("API.example.com", "www.example.org", None,
                                                                "other.test")]
    assert results["haply"] == results["haproxy"]
    assert [answer.split()[1] for answer in results["haply"]] == ["230", "231", "232", "200"]
