"""haply against HAProxy 2.6 on the same configuration: redirects to HTTPS byte
for byte, X-Forwarded-Proto from ssl_fc, headers over TLS, re-encryption."""

from __future__ import annotations

import socket
import ssl
import textwrap

import pytest

from tests.support.certs import make_tls_files
from tests.support.haply_process import PROXIES
from tests.support.haproxy_oracle import echo_backends, free_port, haproxy_available, run_haproxy

pytestmark = pytest.mark.skipif(not haproxy_available(), reason="HAProxy 2.6 not installed")


def raw_exchange(port: int, request: bytes, context: ssl.SSLContext | None = None, wait: float = 1.0) -> bytes:
    """Send request bytes, read until close or `wait` seconds of silence."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    if context is not None:
        sock = context.wrap_socket(sock, server_hostname="localhost")
    try:
        sock.sendall(request)
        sock.settimeout(wait)
        data = b""
        try:
            while chunk := sock.recv(65536):
                data += chunk
        except (socket.timeout, TimeoutError):
            data += b"<open>"
        return data
    finally:
        sock.close()


def cfg(tls, plain: int, secure: int, backend_port: int) -> str:
    return textwrap.dedent(f"""\
        defaults
          mode http
          timeout connect 2s
          timeout client 5s
          timeout server 5s
        frontend fe
          bind 127.0.0.1:{plain}
          bind 127.0.0.1:{secure} ssl crt {tls.pem}
          http-request set-header X-Forwarded-Proto https if {{ ssl_fc }}
          http-request set-header X-Forwarded-Proto http if !{{ ssl_fc }}
          redirect scheme https code 301 if !{{ ssl_fc }} {{ path_beg /secure }}
          redirect scheme https code 308 drop-query if !{{ ssl_fc }} {{ path_beg /p308 }}
          redirect prefix https://other.example code 303 if {{ path_beg /moved }}
          redirect location /maintenance code 307 if {{ path_beg /down }}
          redirect prefix / code 302 append-slash if {{ path_beg /dir }}
          http-response set-header Strict-Transport-Security "max-age=31536000; includeSubDomains" if {{ ssl_fc }}
          default_backend be
        backend be
          server s1 127.0.0.1:{backend_port}
        """)


REQUESTS = [
    b"GET /secure/page?x=1 HTTP/1.1\r\nHost: www.example.test\r\nConnection: close\r\n\r\n",
    b"GET /secure/ka HTTP/1.1\r\nHost: www.example.test:8080\r\n\r\n",
    b"GET /p308/a?b=c HTTP/1.1\r\nHost: www.example.test\r\nConnection: close\r\n\r\n",
    b"GET /moved/x?y HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
    b"GET /down HTTP/1.0\r\n\r\n",
    b"GET /dir/sub?q HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
    b"POST /secure/form HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc",
]


@pytest.fixture
def tls(tmp_path):
    return make_tls_files(tmp_path, ("localhost",))


def collect(binary: str, tls) -> dict:
    with echo_backends(["app"]) as (backend,):
        plain, secure = free_port(), free_port()
        with run_haproxy(cfg(tls, plain, secure, backend.port), binary=binary):
            client = ssl.create_default_context(cafile=str(tls.ca_file))
            found = {"redirects": [raw_exchange(plain, r) for r in REQUESTS]}
            found["secure_redirects"] = [raw_exchange(secure, r, client) for r in REQUESTS[3:5]]
            backend.clear()
            over_tls = raw_exchange(secure, b"GET /secure/x HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n", client)
            over_plain = raw_exchange(plain, b"GET /plain HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
            found["status"] = [over_tls.split(b"\r\n", 1)[0], over_plain.split(b"\r\n", 1)[0]]
            found["hsts"] = [b"strict-transport-security: max-age=31536000; includesubdomains" in r.lower()
                             for r in (over_tls, over_plain)]
            found["forwarded_proto"] = [r.header("X-Forwarded-Proto") for r in backend.requests]
    return found


def test_redirects_and_forwarded_proto_match_haproxy(tls):
    results = {name: collect(binary, tls) for name, binary in PROXIES.items()}
    haply, haproxy = results["haply"], results["haproxy"]
    # The oracle's own answers, so that a change of HAProxy shows here first.
    assert haproxy["redirects"][0] == (b"HTTP/1.1 301 Moved Permanently\r\ncontent-length: 0\r\n"
                                       b"location: https://www.example.test/secure/page?x=1\r\n"
                                       b"connection: close\r\n\r\n")
    for index, (ours, theirs) in enumerate(zip(haply["redirects"], haproxy["redirects"])):
        assert ours == theirs, (REQUESTS[index], ours, theirs)
    assert haply["secure_redirects"] == haproxy["secure_redirects"]
    assert haply["status"] == haproxy["status"] == [b"HTTP/1.1 200 OK", b"HTTP/1.1 200 OK"]
    assert haply["hsts"] == haproxy["hsts"] == [True, False]
    assert haply["forwarded_proto"] == haproxy["forwarded_proto"] == ["https", "http"]


def test_backend_redirects_after_use_backend_match_haproxy():
    results = {}
    for name, binary in PROXIES.items():
        with echo_backends(["app"]) as (backend,):
            port = free_port()
            text = textwrap.dedent(f"""\
                defaults
                  mode http
                  timeout connect 2s
                  timeout client 5s
                  timeout server 5s
                frontend fe
                  bind 127.0.0.1:{port}
                  redirect prefix /front code 303 if {{ path_beg /f }}
                  use_backend moved if {{ path_beg /b }}
                  default_backend be
                backend be
                  server s1 127.0.0.1:{backend.port}
                backend moved
                  redirect scheme https code 302 if {{ path_beg /b/x }}
                  redirect location /gone code 301
                  server s1 127.0.0.1:{backend.port}
                """)
            with run_haproxy(text, binary=binary):
                results[name] = [raw_exchange(port, f"GET {path} HTTP/1.1\r\nHost: h\r\n\r\n".encode(), wait=0.5)
                                 for path in ("/f/1", "/b/x?1", "/b/y", "/z")]
    assert results["haply"][:3] == results["haproxy"][:3]
    assert results["haproxy"][2].startswith(b"HTTP/1.1 301 Moved Permanently\r\n")
    assert results["haply"][3].split(b"\r\n", 1)[0] == results["haproxy"][3].split(b"\r\n", 1)[0] == b"HTTP/1.1 200 OK"


def _s_client(port: int, *args: str) -> tuple[str | None, str | None]:
    """(negotiated version or None, subject CN of the served certificate or None)."""
    import subprocess

    out = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{port}", *args],
                         input=b"", capture_output=True, timeout=20).stdout.decode(errors="replace")
    version = next((line.split(",")[1].strip() for line in out.splitlines() if line.startswith("New, ")), None)
    subject = next((line.split("CN = ", 1)[1].strip() for line in out.splitlines()
                    if line.startswith("subject=") and "CN = " in line), None)
    return (None if version == "(NONE)" else version), subject


def test_versions_and_sni_selection_match_haproxy(tmp_path):
    tls = make_tls_files(tmp_path, ("localhost",))
    directory = tmp_path / "certs"
    directory.mkdir()
    tls.issue(directory, "1-first.pem", "first.test")
    tls.issue(directory, "2-second.pem", "second.test", "*.wild.test")
    probes = [("-tls1",), ("-tls1_1",), ("-tls1_2",), ("-tls1_3",),
              ("-servername", "second.test"), ("-servername", "a.wild.test"),
              ("-servername", "unknown.test"), ("-noservername",)]
    results = {}
    for name, binary in PROXIES.items():
        with echo_backends(["app"]) as (backend,):
            port, strict = free_port(), free_port()
            text = textwrap.dedent(f"""\
                defaults
                  mode http
                  timeout connect 2s
                  timeout client 5s
                  timeout server 5s
                frontend fe
                  bind 127.0.0.1:{port} ssl crt {directory}
                  bind 127.0.0.1:{strict} ssl crt {directory} strict-sni
                  default_backend be
                backend be
                  server s1 127.0.0.1:{backend.port}
                """)
            with run_haproxy(text, binary=binary):
                results[name] = ([_s_client(port, *p) for p in probes],
                                 [_s_client(strict, *p)[0] for p in probes[4:]])
    assert results["haply"] == results["haproxy"]
    assert results["haproxy"][0][0] == (None, None) and results["haproxy"][0][3][0] == "TLSv1.3"


def test_crt_list_sni_filters_match_haproxy(tmp_path):
    tls = make_tls_files(tmp_path, ("localhost",))
    one = tls.issue(tmp_path, "one.pem", "one.test", "*.shared.test")
    two = tls.issue(tmp_path, "two.pem", "two.test")
    listing = tmp_path / "crt-list.txt"
    # one.pem serves its own names except a.shared.test; two.pem serves
    # a.shared.test and an extra name by filter.
    listing.write_text(f"# certificates by name\n{one} *.shared.test !a.shared.test one.test\n"
                       f"{two} two.test a.shared.test extra.test\n")
    names = ["one.test", "b.shared.test", "a.shared.test", "two.test", "extra.test", "nothing.test"]
    results = {}
    for name, binary in PROXIES.items():
        with echo_backends(["app"]) as (backend,):
            port = free_port()
            text = textwrap.dedent(f"""\
                defaults
                  mode http
                  timeout connect 2s
                  timeout client 5s
                  timeout server 5s
                frontend fe
                  bind 127.0.0.1:{port} ssl crt-list {listing}
                  default_backend be
                backend be
                  server s1 127.0.0.1:{backend.port}
                """)
            with run_haproxy(text, binary=binary):
                results[name] = [_s_client(port, "-servername", n)[1] for n in names]
    assert results["haply"] == results["haproxy"]
    assert results["haproxy"][:5] == ["one.test", "one.test", "two.test", "two.test", "two.test"]


def test_dh_param_file_serves_dhe_as_haproxy(tmp_path):
    """ssl-dh-param-file: a TLS 1.2 client that offers only a DHE cipher gets
    the file's 2048-bit group from both proxies."""
    import subprocess

    from tests.support.certs import openssl_self_signed

    cert, key = openssl_self_signed(tmp_path)
    pem = tmp_path / "site.pem"
    pem.write_bytes(cert.read_bytes() + key.read_bytes())
    dh = tmp_path / "dh.pem"
    subprocess.run(["openssl", "genpkey", "-genparam", "-algorithm", "DH", "-pkeyopt",
                    "dh_param:ffdhe2048", "-out", str(dh)], check=True, capture_output=True, timeout=30)
    seen = {}
    for name, binary in PROXIES.items():
        with echo_backends(["app"]) as (backend,):
            port = free_port()
            text = textwrap.dedent(f"""\
                global
                  ssl-dh-param-file {dh}
                defaults
                  mode http
                  timeout connect 2s
                  timeout client 5s
                  timeout server 5s
                frontend fe
                  bind 127.0.0.1:{port} ssl crt {pem}
                  default_backend be
                backend be
                  server s1 127.0.0.1:{backend.port}
                """)
            with run_haproxy(text, binary=binary):
                out = subprocess.run(
                    ["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-tls1_2",
                     "-cipher", "DHE-RSA-AES128-GCM-SHA256"],
                    input=b"", capture_output=True, timeout=20).stdout.decode(errors="replace")
            seen[name] = [line.strip() for line in out.splitlines()
                          if line.startswith(("Server Temp Key", "New, "))]
    assert seen["haply"] == seen["haproxy"]
    assert seen["haproxy"] == ["Server Temp Key: DH, 2048 bits",
                               "New, TLSv1.2, Cipher is DHE-RSA-AES128-GCM-SHA256"], seen
