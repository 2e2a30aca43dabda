"""`server ... ssl sni EXPR` against nginx reporting the name it received:
the Host header, the client's own SNI (TCP and HTTP mode), verification against
the name sent, and server connections reused only for the same name."""

from __future__ import annotations

import os
import subprocess
import textwrap

import pytest

from tests.support.certs import make_tls_files
from tests.support.haply_process import HAPLY_BIN, run_haply
from tests.support.haproxy_oracle import free_port
from tests.support.sni_backend import NGINX, ask, ask_tls, client, reuse_pattern, sni_backend

pytestmark = pytest.mark.skipif(not os.path.exists(NGINX), reason="nginx (Debian nginx-light) not installed")


def config(port: int, server: str, mode: str = "http", bind: str = "") -> str:
    return textwrap.dedent(f"""\
        defaults
          mode {mode}
          timeout connect 2s
          timeout client 5s
          timeout server 5s
        listen app
          bind 127.0.0.1:{port} {bind}
          server tls1 {server}
        """)


def test_host_header_as_sni_and_reuse_per_name(tmp_path):
    with sni_backend(tmp_path) as (backend, files):
        port = free_port()
        with run_haply(config(port, f"127.0.0.1:{backend} ssl verify none sni req.hdr(host)")):
            with client(port) as sock:
                answers = [ask(sock, host) for host in
                           ("a.example", "b.example:8443", "a.example", "b.example:8443", "b.example")]
                no_host = ask(sock, None)
    assert [a.status for a in answers] == [200] * 5
    assert [a.sni for a in answers] == ["a.example", "b.example:8443", "a.example", "b.example:8443", "b.example"]
    # Same name, same connection; another name never gets it.
    assert reuse_pattern(answers) == [0, 1, 0, 1, 2]
    assert no_host.status == 200 and no_host.sni == ""  # no Host header: no SNI


def test_verification_against_the_name_sent(tmp_path):
    with sni_backend(tmp_path) as (backend, files):
        port = free_port()
        line = f"127.0.0.1:{backend} ssl verify required ca-file {files.ca_file} sni req.hdr(host),field(1,:),lower"
        with run_haply(config(port, line)):
            with client(port) as sock:
                good = ask(sock, "B.Example:8443")
            with client(port) as sock:
                wrong = ask(sock, "c.example")  # not in the certificate
            with client(port) as sock:
                chain_only = ask(sock, None)
    assert good.status == 200 and good.sni == "b.example"
    assert wrong.status == 503
    assert chain_only.status == 200 and chain_only.sni == ""


@pytest.mark.parametrize("mode", ["tcp", "http"])
def test_client_sni_passed_on(tmp_path, mode):
    (tmp_path / "front").mkdir()
    front = make_tls_files(tmp_path / "front", ("front.example",))
    with sni_backend(tmp_path) as (backend, files):
        port = free_port()
        cfg = config(port, f"127.0.0.1:{backend} ssl verify required ca-file {files.ca_file} sni ssl_fc_sni",
                     mode=mode, bind=f"ssl crt {front.pem}")
        with run_haply(cfg):
            a = ask_tls(port, "a.example")
            b = ask_tls(port, "b.example")
            none = ask_tls(port, None)
    assert (a.status, a.sni) == (200, "a.example")
    assert (b.status, b.sni) == (200, "b.example")
    assert (none.status, none.sni) == (200, "")


def test_verifyhost_with_a_varying_sni_is_refused_with_its_line(tmp_path):
    files = make_tls_files(tmp_path)
    path = tmp_path / "haproxy.cfg"
    path.write_text(config(free_port(), f"127.0.0.1:1 ssl verify required ca-file {files.ca_file} "
                                        "verifyhost a.example sni req.hdr(host)"))
    result = subprocess.run([HAPLY_BIN, "-c", "-f", str(path)], capture_output=True, text=True,
                            timeout=30, stdin=subprocess.DEVNULL)
    assert result.returncode != 0
    assert "haproxy.cfg:8:" in result.stderr and "verifyhost" in result.stderr
