"""TLS on `bind ... ssl`: real clients (curl, openssl s_client, Python's ssl)
against haply serving trustme and openssl certificates."""

from __future__ import annotations

import os
import socket
import ssl
import subprocess
import textwrap

import pytest

from tests.support.certs import expired_pem, make_tls_files, write_pem
from tests.support.haply_process import HAPLY_BIN, run_haply
from tests.support.haproxy_oracle import echo_backends, free_port

def config(bind_options: str, port: int, backend_port: int, extra: str = "", plain_port: int | None = None,
           global_lines: str = "") -> str:
    plain = f"  bind 127.0.0.1:{plain_port}\n" if plain_port else ""
    return textwrap.dedent(f"""\
        global
        {global_lines}
        defaults
          mode http
          timeout connect 2s
          timeout client 5s
          timeout server 5s
        frontend fe
          bind 127.0.0.1:{port} ssl {bind_options}
        """) + plain + textwrap.indent(extra, "  ") + textwrap.dedent(f"""\
          default_backend be
        backend be
          server s1 127.0.0.1:{backend_port}
        """)


def s_client(port: int, *args: str) -> str:
    result = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{port}", *args],
                            input=b"", capture_output=True, timeout=20)
    return result.stdout.decode(errors="replace") + result.stderr.decode(errors="replace")


def negotiated(output: str) -> str | None:
    """The version from s_client's "New, TLSv1.3, Cipher is ..." line; None if refused."""
    for line in output.splitlines():
        if line.startswith("New, "):
            version = line.split(",")[1].strip()
            return None if version == "(NONE)" else version
    return None


@pytest.fixture
def tls(tmp_path):
    return make_tls_files(tmp_path, ("localhost", "www.example.test"))


@pytest.fixture
def backend():
    with echo_backends(["app"]) as backends:
        yield backends[0]


def https_get(port: int, ca: str, server_name: str = "localhost", path: str = "/") -> tuple[int, bytes, bytes, dict]:
    """One HTTPS request with Python's ssl module: (status, head, body, peer cert)."""
    context = ssl.create_default_context(cafile=ca)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with context.wrap_socket(raw, server_hostname=server_name) as tls_sock:
            cert = tls_sock.getpeercert()
            tls_sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {server_name}\r\nConnection: close\r\n\r\n".encode())
            data = b""
            while chunk := tls_sock.recv(65536):
                data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), head, body, cert


def test_curl_python_and_openssl_clients(tls, backend, tmp_path):
    port = free_port()
    with run_haply(config(f"crt {tls.pem}", port, backend.port)):
        result = subprocess.run(["curl", "-sS", "--cacert", str(tls.ca_file), "--resolve", f"localhost:{port}:127.0.0.1",
                                 f"https://localhost:{port}/hello"], capture_output=True, timeout=20)
        assert result.returncode == 0, result.stderr
        assert result.stdout.startswith(b"app\nGET /hello HTTP/1.1")
        status, headers, body, cert = https_get(port, str(tls.ca_file))
        assert status == 200 and body.startswith(b"app\n")
        assert ("DNS", "localhost") in cert["subjectAltName"]
        # Defaults: TLS 1.2 minimum; 1.0 and 1.1 refused; 1.3 negotiated.
        assert negotiated(s_client(port, "-tls1_3")) == "TLSv1.3"
        assert negotiated(s_client(port, "-tls1_2")) == "TLSv1.2"
        for old in ("-tls1", "-tls1_1"):
            out = s_client(port, old, "-cipher", "DEFAULT:@SECLEVEL=0")
            assert negotiated(out) is None, out
        assert "Compression: NONE" in s_client(port, "-tls1_2")


def test_alpn_h2_accepted_negotiates_http11_with_warning(tls, backend):
    port = free_port()
    cfg = config(f"crt {tls.pem} alpn h2,http/1.1", port, backend.port)
    check = subprocess.run([HAPLY_BIN, "-c", "-f", "/dev/stdin"], input=cfg.encode(), capture_output=True, timeout=30)
    assert check.returncode == 0, check.stderr
    assert b"haply speaks HTTP/1.1 only" in check.stderr and b"does not offer h2" in check.stderr
    with run_haply(cfg):
        out = s_client(port, "-alpn", "h2,http/1.1")
        assert "ALPN protocol: http/1.1" in out
        out = s_client(port, "-alpn", "h2")
        assert "No ALPN negotiated" in out


def test_version_and_cipher_options(tls, backend):
    port = free_port()
    with run_haply(config(f"crt {tls.pem} ssl-min-ver TLSv1.2 ssl-max-ver TLSv1.2 "
                          "ciphers ECDHE-ECDSA-AES256-GCM-SHA384 no-tls-tickets", port, backend.port)):
        out = s_client(port)
        assert negotiated(out) == "TLSv1.2"
        assert "ECDHE-ECDSA-AES256-GCM-SHA384" in out
        assert "TLS session ticket:" not in out
        assert negotiated(s_client(port, "-tls1_3")) is None


def test_ciphersuites_and_global_defaults(tls, backend):
    port = free_port()
    cfg = config(f"crt {tls.pem}", port, backend.port, global_lines=(
        "  ssl-default-bind-ciphersuites TLS_CHACHA20_POLY1305_SHA256\n"
        "  ssl-default-bind-options ssl-min-ver TLSv1.3"))
    with run_haply(cfg):
        out = s_client(port)
        assert negotiated(out) == "TLSv1.3"
        assert "TLS_CHACHA20_POLY1305_SHA256" in out
        assert negotiated(s_client(port, "-tls1_2")) is None


def test_sni_directory_default_and_strict(tls, backend, tmp_path):
    directory = tmp_path / "certs"
    directory.mkdir()
    tls.issue(directory, "10-first.pem", "first.test")
    tls.issue(directory, "20-second.pem", "second.test", "*.wild.test")
    port, strict_port = free_port(), free_port()
    cfg = config(f"crt {directory}", port, backend.port,
                 extra=f"bind 127.0.0.1:{strict_port} ssl crt {directory} strict-sni\n")
    with run_haply(cfg) as proxy:
        for name, expected in (("second.test", "second.test"), ("x.wild.test", "second.test"),
                               ("first.test", "first.test"), ("other.test", "first.test")):
            out = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-servername", name],
                                 input=b"", capture_output=True, timeout=20).stdout.decode()
            assert f"CN = {expected}" in out, (name, out)
        _, _, body, _ = https_get(port, str(tls.ca_file), "x.wild.test")
        assert body.startswith(b"app\n")
        out = s_client(strict_port, "-servername", "other.test")
        # Refused during the handshake (uvloop closes without sending the alert).
        assert negotiated(out) is None and "no peer certificate available" in out, out
        assert "second.test" in s_client(strict_port, "-servername", "second.test")
        out = s_client(strict_port, "-noservername")
        assert negotiated(out) is None and "no peer certificate available" in out, out
        # Refusals are answers, not failures of haply.
        assert "Traceback" not in proxy.output() and "Error" not in proxy.output(), proxy.output()


def test_client_certificates_optional_and_session_resumption(tls, backend, tmp_path):
    port = free_port()
    with run_haply(config(f"crt {tls.pem} ca-file {tls.ca_file} verify optional", port, backend.port)):
        without = subprocess.run(["curl", "-sS", "--cacert", str(tls.ca_file), "--resolve",
                                  f"localhost:{port}:127.0.0.1", f"https://localhost:{port}/"],
                                 capture_output=True, timeout=20)
        assert without.returncode == 0 and without.stdout.startswith(b"app\n"), without.stderr
        # TLS 1.2 sessions resume (s_client -reconnect connects six times).
        out = s_client(port, "-tls1_2", "-reconnect")
        assert out.count("\nReused, ") == 5, out


def test_client_certificates_required(tls, backend, tmp_path):
    port = free_port()
    client = tls.ca.issue_cert("client.test")
    client_pem = write_pem(client, tmp_path / "client.pem")
    with run_haply(config(f"crt {tls.pem} ca-file {tls.ca_file} verify required", port, backend.port)):
        refused = subprocess.run(["curl", "-sS", "--cacert", str(tls.ca_file), "--resolve",
                                  f"localhost:{port}:127.0.0.1", f"https://localhost:{port}/"],
                                 capture_output=True, timeout=20)
        assert refused.returncode != 0
        accepted = subprocess.run(["curl", "-sS", "--cacert", str(tls.ca_file), "--cert", str(client_pem),
                                   "--resolve", f"localhost:{port}:127.0.0.1", f"https://localhost:{port}/"],
                                  capture_output=True, timeout=20)
        assert accepted.returncode == 0, accepted.stderr
        assert accepted.stdout.startswith(b"app\n")


def test_tcp_mode_tls_offload(tls, backend):
    port = free_port()
    cfg = textwrap.dedent(f"""\
        defaults
          mode tcp
          timeout connect 2s
          timeout client 5s
          timeout server 5s
        listen tcp_offload
          bind 127.0.0.1:{port} ssl crt {tls.pem}
          server s1 127.0.0.1:{backend.port}
        """)
    with run_haply(cfg):
        status, _, body, _ = https_get(port, str(tls.ca_file))
        assert status == 200 and body.startswith(b"app\nGET / HTTP/1.1")


# ------------------------------------------------------------ certificate errors

def check(cfg: str, tmp_path) -> subprocess.CompletedProcess:
    path = tmp_path / "haproxy.cfg"
    path.write_text(cfg)
    return subprocess.run([HAPLY_BIN, "-c", "-f", str(path)], capture_output=True, text=True, timeout=30)


def start(cfg: str, tmp_path) -> subprocess.CompletedProcess:
    path = tmp_path / "haproxy.cfg"
    path.write_text(cfg)
    return subprocess.run([HAPLY_BIN, "-db", "-f", str(path)], capture_output=True, text=True, timeout=30)


def bad_pems(tls, tmp_path):
    import trustme

    mismatch = tmp_path / "mismatch.pem"
    mismatch.write_bytes(tls.ca.issue_cert("localhost").cert_chain_pems[0].bytes()
                         + trustme.CA().issue_cert("localhost").private_key_pem.bytes())
    encrypted = tmp_path / "encrypted.pem"
    from tests.support.certs import openssl_self_signed
    cert, key = openssl_self_signed(tmp_path, "enc", key_password="pw")
    encrypted.write_bytes(cert.read_bytes() + key.read_bytes())
    garbled = tmp_path / "garbled.pem"
    garbled.write_bytes(tls.pem.read_bytes().replace(b"PRIVATE KEY-----\n", b"PRIVATE KEY-----\n@@", 1))
    return {
        "does not match the certificate": mismatch,
        "expired on": expired_pem(tls.ca, tmp_path),
        "protected by a passphrase": encrypted,
        "cannot be read": garbled,
    }


def test_certificate_errors_with_file_line_from_check_and_start(tls, backend, tmp_path):
    port = free_port()
    for expected, pem in bad_pems(tls, tmp_path).items():
        cfg = config(f"crt {pem}", port, backend.port)
        for run in (check, start):
            result = run(cfg, tmp_path)
            assert result.returncode != 0, (expected, result)
            assert "haproxy.cfg:9: error: " in result.stderr and expected in result.stderr, (expected, result.stderr)
            # Never half-started: nothing listens on the port.
            with pytest.raises(OSError):
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
    # a missing file: the parser refuses it at its line
    result = check(config(f"crt {tmp_path}/missing.pem", port, backend.port), tmp_path)
    assert result.returncode != 0 and "haproxy.cfg:9:" in result.stderr and "missing.pem" in result.stderr


def test_world_readable_key_warns(tls, backend, tmp_path):
    os.chmod(tls.pem, 0o644)
    result = check(config(f"crt {tls.pem}", free_port(), backend.port), tmp_path)
    assert result.returncode == 0
    assert "haproxy.cfg:9: warning:" in result.stderr and "readable by every user" in result.stderr


def test_tcp_mode_server_half_close_ends_the_tls_session(tls):
    """A server that answers then half-closes (HTTP/1.0 style): the TLS client
    gets close_notify at once, not after `timeout client` (TLS has no half-close
    that clients expect)."""
    import threading

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)

    def serve():
        conn, _ = listener.accept()
        with conn:
            conn.recv(1024)
            conn.sendall(b"answer and goodbye\n")
            conn.shutdown(socket.SHUT_WR)
            conn.settimeout(10)
            try:
                conn.recv(1024)
            except OSError:
                pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    port = free_port()
    cfg = textwrap.dedent(f"""\
        defaults
          mode tcp
          timeout connect 2s
          timeout client 8s
          timeout server 8s
        listen tcp_offload
          bind 127.0.0.1:{port} ssl crt {tls.pem}
          server s1 127.0.0.1:{listener.getsockname()[1]}
        """)
    try:
        with run_haply(cfg):
            context = ssl.create_default_context(cafile=str(tls.ca_file))
            with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
                with context.wrap_socket(raw, server_hostname="localhost") as sock:
                    sock.sendall(b"hello\n")
                    import time
                    started = time.monotonic()
                    data = b""
                    while chunk := sock.recv(1024):
                        data += chunk
                    elapsed = time.monotonic() - started
        assert data == b"answer and goodbye\n"
        assert elapsed < 2.0, elapsed
    finally:
        listener.close()
        thread.join(timeout=10)
