"""Certificates for TLS tests, from trustme (a throw-away CA) and openssl.

    with tls_files(tmp_path, ["www.example.test"]) as files:
        files.pem      # certificate + chain + key in one file, mode 0600
        files.ca       # the CA certificate clients trust
"""

from __future__ import annotations

import datetime
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

import trustme


@dataclass
class TlsFiles:
    ca: trustme.CA
    ca_file: Path
    pem: Path

    def issue(self, directory: Path, name: str, *hostnames: str, **kwargs) -> Path:
        """Another combined PEM for hostnames, signed by the same CA."""
        hostnames = hostnames or (name,)
        kwargs.setdefault("common_name", hostnames[0])
        return write_pem(self.ca.issue_cert(*hostnames, **kwargs), directory / name)


def write_pem(cert: trustme.LeafCert, path: Path) -> Path:
    """Certificate, chain, then key, as HAProxy and Pound read them."""
    data = b"".join(blob.bytes() for blob in cert.cert_chain_pems) + cert.private_key_pem.bytes()
    path.write_bytes(data)
    os.chmod(path, 0o600)
    return path


def make_tls_files(directory: Path, hostnames=("localhost", "127.0.0.1")) -> TlsFiles:
    ca = trustme.CA()
    ca_file = directory / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    pem = write_pem(ca.issue_cert(*hostnames), directory / "server.pem")
    return TlsFiles(ca, ca_file, pem)


def expired_pem(ca: trustme.CA, directory: Path) -> Path:
    past = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(days=1)
    return write_pem(ca.issue_cert("localhost", not_after=past), directory / "expired.pem")


def openssl_self_signed(directory: Path, name: str = "localhost", key_password: str | None = None) -> tuple[Path, Path]:
    """(cert, key) made by the openssl command line; the key encrypted when a password is given."""
    key, cert = directory / f"{name}.key.pem", directory / f"{name}.crt.pem"
    cmd = ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-days", "2", "-subj", f"/CN={name}",
           "-keyout", str(key), "-out", str(cert)]
    cmd += ["-passout", f"pass:{key_password}"] if key_password else ["-nodes"]
    subprocess.run(cmd, check=True, capture_output=True, timeout=60)
    return cert, key
