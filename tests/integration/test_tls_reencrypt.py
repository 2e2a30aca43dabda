"""Re-encryption: `server ... ssl` to a real TLS backend (nginx on 127.0.0.1,
its own configuration in a temporary directory), with verification, SNI and
server-connection reuse."""

from __future__ import annotations

import subprocess
import textwrap
import time

import pytest
import requests

from tests.support.certs import make_tls_files
from tests.support.haply_process import run_haply
from tests.support.haproxy_oracle import free_port
from tests.support.nginx import nginx_available, nginx_tls

pytestmark = pytest.mark.skipif(not nginx_available(), reason="nginx (Debian nginx-light) not installed")


def haply_cfg(port: int, server_line: str) -> str:
    return textwrap.dedent(f"""\
        defaults
          mode http
          timeout connect 2s
          timeout client 5s
          timeout server 5s
        listen app
          bind 127.0.0.1:{port}
          server tls1 {server_line}
        """)


@pytest.fixture
def tls(tmp_path):
    return make_tls_files(tmp_path, ("backend.internal", "localhost"))


@pytest.fixture
def nginx(tls, tmp_path):
    port = free_port()
    with nginx_tls(tmp_path, tls.pem, port):
        yield port


def test_verify_required_with_sni_and_connection_reuse(tls, nginx):
    port = free_port()
    line = f"127.0.0.1:{nginx} ssl verify required ca-file {tls.ca_file} sni str(backend.internal)"
    with run_haply(haply_cfg(port, line)):
        with requests.Session() as session:
            bodies = [session.get(f"http://127.0.0.1:{port}/", timeout=5).text for _ in range(5)]
    assert all(b.startswith("sni=backend.internal ") and ("proto=TLSv1.2" in b or "proto=TLSv1.3" in b) for b in bodies), bodies
    # One server connection carried every request: reuse works over TLS.
    assert len({b.split("conn=")[1].split()[0] for b in bodies}) == 1, bodies


def test_verify_none_without_sni(tls, nginx):
    port = free_port()
    with run_haply(haply_cfg(port, f"127.0.0.1:{nginx} ssl verify none")):
        reply = requests.get(f"http://127.0.0.1:{port}/", timeout=5)
    assert reply.status_code == 200 and reply.text.startswith("sni= ")


def test_wrong_ca_refuses_the_server(tls, nginx, tmp_path):
    (tmp_path / "other").mkdir()
    other = make_tls_files(tmp_path / "other")
    port = free_port()
    line = f"127.0.0.1:{nginx} ssl verify required ca-file {other.ca_file}"
    with run_haply(haply_cfg(port, line)):
        assert requests.get(f"http://127.0.0.1:{port}/", timeout=10).status_code == 503


def test_sni_name_checked_against_the_certificate(tls, nginx):
    port = free_port()
    line = f"127.0.0.1:{nginx} ssl verify required ca-file {tls.ca_file} sni str(not-in-cert.example)"
    with run_haply(haply_cfg(port, line)):
        assert requests.get(f"http://127.0.0.1:{port}/", timeout=10).status_code == 503


def test_check_ssl_health_check_marks_tls_server_up(tls, nginx):
    port = free_port()
    line = (f"127.0.0.1:{nginx} ssl verify required ca-file {tls.ca_file} check check-ssl inter 200ms rise 1 "
            "fall 1")
    with run_haply(haply_cfg(port, line)):
        time.sleep(0.8)
        assert requests.get(f"http://127.0.0.1:{port}/", timeout=5).status_code == 200


def test_tls_to_tls(tls, nginx):
    """TLS termination in front, re-encryption behind."""
    port = free_port()
    cfg = haply_cfg(port, f"127.0.0.1:{nginx} ssl verify required ca-file {tls.ca_file}").replace(
        f"bind 127.0.0.1:{port}", f"bind 127.0.0.1:{port} ssl crt {tls.pem}")
    with run_haply(cfg):
        reply = requests.get(f"https://localhost:{port}/", timeout=5, verify=str(tls.ca_file))
    assert reply.status_code == 200 and reply.text.startswith("sni= ")


def test_tcp_mode_reencryption(tls, nginx):
    port = free_port()
    cfg = haply_cfg(port, f"127.0.0.1:{nginx} ssl verify required ca-file {tls.ca_file} sni str(localhost)"
                    ).replace("mode http", "mode tcp")
    with run_haply(cfg):
        reply = requests.get(f"http://127.0.0.1:{port}/", timeout=5)
    assert reply.status_code == 200 and reply.text.startswith("sni=localhost ")


def test_server_tls_errors_located(tls, tmp_path):
    from tests.support.haply_process import HAPLY_BIN

    port = free_port()
    for line, expected in ((f"127.0.0.1:1 ssl verify required ca-file {tls.pem}.nope", "no such file"),
                           ("127.0.0.1:1 ssl verify none sni req.cook(host)", "req.hdr(NAME"),
                           (f"127.0.0.1:1 ssl verify required ca-file {tls.ca_file} ssl-min-ver TLSv9",
                            "expected one of")):
        path = tmp_path / "haproxy.cfg"
        path.write_text(haply_cfg(port, line))
        result = subprocess.run([HAPLY_BIN, "-c", "-f", str(path)], capture_output=True, text=True, timeout=30)
        assert result.returncode != 0 and "haproxy.cfg:8:" in result.stderr and expected in result.stderr, \
            (line, result.stderr)
