"""haply.tls.certificates: PEM bundles as operators keep them, and their errors."""

from __future__ import annotations

import os
import subprocess

import pytest
import trustme

from haply.tls.certificates import (CertificateError, load_bundle, load_crt,
                                    load_crt_list, name_matches)
from tests.support.certs import expired_pem, make_tls_files, openssl_self_signed, write_pem


@pytest.fixture
def files(tmp_path):
    return make_tls_files(tmp_path, ("www.example.test", "example.test"))


def test_combined_pem_loads_with_names(files):
    bundle = load_bundle(str(files.pem))
    assert bundle.names == ("www.example.test", "example.test")
    assert bundle.key_path == str(files.pem)
    assert bundle.warnings == ()


def test_missing_file(tmp_path):
    with pytest.raises(CertificateError, match=r"certificate file '.*/nope.pem': no such file"):
        load_bundle(str(tmp_path / "nope.pem"))


def test_key_not_matching_certificate(files, tmp_path):
    other = trustme.CA().issue_cert("www.example.test")
    mixed = tmp_path / "mixed.pem"
    mixed.write_bytes(files.ca.issue_cert("www.example.test").cert_chain_pems[0].bytes()
                      + other.private_key_pem.bytes())
    with pytest.raises(CertificateError, match="does not match the certificate"):
        load_bundle(str(mixed))


def test_expired_certificate(files, tmp_path):
    with pytest.raises(CertificateError, match=r"expired on \d{4}-\d\d-\d\d"):
        load_bundle(str(expired_pem(files.ca, tmp_path)))


def test_encrypted_key_from_openssl(tmp_path):
    cert, key = openssl_self_signed(tmp_path, "enc.test", key_password="secret")
    combined = tmp_path / "combined.pem"
    combined.write_bytes(cert.read_bytes() + key.read_bytes())
    with pytest.raises(CertificateError, match="protected by a passphrase"):
        load_bundle(str(combined))


def test_unreadable_key(files, tmp_path):
    broken = tmp_path / "broken.pem"
    broken.write_bytes(files.pem.read_bytes().replace(b"PRIVATE KEY-----\n", b"PRIVATE KEY-----\nAAAA", 1))
    with pytest.raises(CertificateError, match="cannot be read"):
        load_bundle(str(broken))


def test_no_certificate_in_file(tmp_path):
    path = tmp_path / "key-only.pem"
    path.write_bytes(trustme.CA().issue_cert("a.test").private_key_pem.bytes())
    with pytest.raises(CertificateError, match="holds no PEM certificate"):
        load_bundle(str(path))


def test_key_beside_certificate_as_dot_key(tmp_path):
    cert, key = openssl_self_signed(tmp_path, "side.test")
    os.rename(key, str(cert) + ".key")
    bundle = load_bundle(str(cert))
    assert bundle.key_path == str(cert) + ".key"
    assert bundle.names == ("side.test",)


def test_world_readable_key_warns(files):
    os.chmod(files.pem, 0o644)
    bundle = load_bundle(str(files.pem))
    assert any("readable by every user" in w and "0644" in w for w in bundle.warnings)


def test_directory_one_cert_per_name_in_order(files, tmp_path):
    directory = tmp_path / "certs"
    directory.mkdir()
    files.issue(directory, "b.pem", "b.test")
    files.issue(directory, "a.pem", "a.test")
    (directory / "a.pem.ocsp").write_bytes(b"ignored")
    bundles = load_crt(str(directory))
    assert [b.names for b in bundles] == [("a.test",), ("b.test",)]


def test_empty_directory(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(CertificateError, match="holds no certificate"):
        load_crt(str(tmp_path / "empty"))


def test_crt_list_filters_and_line_errors(files, tmp_path):
    a = files.issue(tmp_path, "a.pem", "a.test")
    listing = tmp_path / "list.txt"
    listing.write_text(f"# comment\n{a} [alpn http/1.1] one.test !two.test\n\n{files.pem}\n")
    bundles = load_crt_list(str(listing))
    assert bundles[0].filters == ("one.test", "!two.test")
    assert bundles[1].filters == ()
    listing.write_text(f"{a}\n{tmp_path}/missing.pem\n")
    with pytest.raises(CertificateError, match=r"list.txt:2: certificate file .*missing.pem': no such file"):
        load_crt_list(str(listing))


@pytest.mark.parametrize("pattern,name,expected", [
    ("a.test", "a.test", True), ("*.a.test", "x.a.test", True), ("*.a.test", "a.test", False),
    ("*.a.test", "y.x.a.test", False), ("b.test", "a.test", False),
])
def test_name_matches(pattern, name, expected):
    assert name_matches(pattern, name) is expected


def test_openssl_cli_certificate_loads(tmp_path):
    cert, key = openssl_self_signed(tmp_path, "cli.test")
    combined = tmp_path / "cli.pem"
    combined.write_bytes(cert.read_bytes() + key.read_bytes())
    out = subprocess.run(["openssl", "x509", "-noout", "-subject", "-in", str(combined)],
                         capture_output=True, text=True, check=True).stdout
    assert "cli.test" in out
    assert load_bundle(str(combined)).names == ("cli.test",)


def test_certificate_close_to_expiry_warns(files, tmp_path):
    import datetime

    soon = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=3, hours=1)
    pem = write_pem(files.ca.issue_cert("soon.test", not_after=soon), tmp_path / "soon.pem")
    [warning] = load_bundle(str(pem)).warnings
    assert "expires in 3 day(s)" in warning and "renew it" in warning
