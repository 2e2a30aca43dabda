"""PEM certificates as Pound and HAProxy operators keep them.

One file holds the certificate, its chain and the private key (the key may also
sit next to it as FILE.key, HAProxy's fallback). `crt DIR` loads every file of the
directory, one certificate per name, chosen by SNI; `crt-list FILE` lists
certificates with optional SNI filters. Every problem an operator meets (missing
file, key not matching, expired certificate, encrypted or unreadable key) is
reported as one sentence naming the file, before anything listens.
"""

from __future__ import annotations

import datetime
import os
import ssl
import stat
from dataclasses import dataclass, field

# Files HAProxy skips in a `crt DIR` (they complete a certificate, they are not one).
# A certificate this close to its end gets a warning at every load.
EXPIRY_WARNING = datetime.timedelta(days=14)
DIR_SKIP_SUFFIXES = (".key", ".ocsp", ".issuer", ".sctl", ".dh")
PEM_CERT = b"-----BEGIN CERTIFICATE-----"


class CertificateError(Exception):
    """A certificate or key that cannot be served; the message names the file."""


@dataclass(frozen=True, slots=True)
class Bundle:
    """One certificate with its chain and key, ready for SSLContext.load_cert_chain."""

    path: str  # certificate (and chain, usually key) file
    key_path: str  # same as path when the key is inside
    names: tuple[str, ...]  # DNS names (SAN, else CN), lower case
    not_after: datetime.datetime
    filters: tuple[str, ...] = ()  # crt-list SNI filters ("!name" excludes)
    warnings: tuple[str, ...] = field(default=())


def _read(path: str, what: str) -> bytes:
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except FileNotFoundError:
        raise CertificateError(f"{what} '{path}': no such file") from None
    except IsADirectoryError:
        raise CertificateError(f"{what} '{path}' is a directory") from None
    except OSError as exc:
        raise CertificateError(f"{what} '{path}' cannot be read: {exc.strerror}") from None


def load_bundle(path: str, now: datetime.datetime | None = None) -> Bundle:
    """Load and check one PEM file (cert + chain + key), or raise CertificateError."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    data = _read(path, "certificate file")
    if PEM_CERT not in data:
        raise CertificateError(f"certificate file '{path}' holds no PEM certificate "
                               "(expected -----BEGIN CERTIFICATE-----)")
    try:
        # The first block only: a damaged key further down is reported as such.
        end = data.index(b"-----END CERTIFICATE-----") + len(b"-----END CERTIFICATE-----")
        certificate = x509.load_pem_x509_certificate(data[data.index(PEM_CERT):end])
    except ValueError as exc:
        raise CertificateError(f"certificate file '{path}': the certificate cannot be parsed ({exc})") from None
    key_path, key_data = path, _key_block(data)
    if key_data is None:
        key_path = path + ".key"
        if not os.path.exists(key_path):
            raise CertificateError(
                f"certificate file '{path}' holds no private key, and '{key_path}' does not exist: "
                "put the key in the same PEM file after the certificate")
        key_data = _key_block(_read(key_path, "key file"))
        if key_data is None:
            raise CertificateError(f"key file '{key_path}' holds no PEM private key")
    if b"ENCRYPTED" in key_data:
        raise CertificateError(
            f"private key in '{key_path}' is protected by a passphrase, which a bind line cannot give: "
            "store it decrypted (openssl pkey -in KEY -out KEY.plain) with mode 0600")
    try:
        key = serialization.load_pem_private_key(key_data, password=None)
    except TypeError:
        raise CertificateError(
            f"private key in '{key_path}' is protected by a passphrase, which a bind line cannot give: "
            "store it decrypted (openssl pkey -in KEY -out KEY.plain) with mode 0600") from None
    except (ValueError, Exception) as exc:  # cryptography raises several types for bad keys
        raise CertificateError(f"private key in '{key_path}' cannot be read: {exc}") from None
    public = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    if key.public_key().public_bytes(*public) != certificate.public_key().public_bytes(*public):
        raise CertificateError(
            f"private key in '{key_path}' does not match the certificate in '{path}' "
            f"(subject {certificate.subject.rfc4514_string()})")
    now = now or datetime.datetime.now(datetime.timezone.utc)
    not_after = certificate.not_valid_after_utc
    if not_after <= now:
        raise CertificateError(
            f"certificate in '{path}' (subject {certificate.subject.rfc4514_string()}) "
            f"expired on {not_after:%Y-%m-%d %H:%M:%S} UTC")
    # OpenSSL has the last word: the chain must load as it will be served.
    probe = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        probe.load_cert_chain(path, None if key_path == path else key_path)
    except ssl.SSLError as exc:
        raise CertificateError(f"certificate file '{path}' is refused by OpenSSL: {exc.reason or exc}") from None
    warnings = []
    left = not_after - now
    if left < EXPIRY_WARNING:
        warnings.append(f"certificate in '{path}' expires in {left.days} day(s), on "
                        f"{not_after:%Y-%m-%d %H:%M:%S} UTC: renew it")
    mode = os.stat(key_path).st_mode
    if mode & stat.S_IROTH:
        warnings.append(f"private key file '{key_path}' is readable by every user (mode "
                        f"{stat.S_IMODE(mode):04o}): chmod 600 it")
    return Bundle(path, key_path, _names(certificate), not_after, warnings=tuple(warnings))


def _key_block(data: bytes) -> bytes | None:
    """The first "-----BEGIN ... PRIVATE KEY-----" block of a PEM file."""
    start = data.find(b"-----BEGIN ")
    while start != -1:
        line_end = data.find(b"\n", start)
        if b"PRIVATE KEY-----" in data[start:line_end if line_end != -1 else None]:
            end = data.find(b"PRIVATE KEY-----", data.find(b"-----END ", start))
            return data[start:end + len(b"PRIVATE KEY-----")] + b"\n" if end != -1 else data[start:]
        start = data.find(b"-----BEGIN ", start + 1)
    return None


def _names(certificate) -> tuple[str, ...]:
    from cryptography import x509

    try:
        san = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        names = [n.lower() for n in san.value.get_values_for_type(x509.DNSName)]
    except x509.ExtensionNotFound:
        names = []
    if not names:
        names = [a.value.lower() for a in certificate.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
                 if isinstance(a.value, str)]
    return tuple(names)


def load_crt(path: str, now: datetime.datetime | None = None) -> list[Bundle]:
    """`crt FILE` -> [bundle]; `crt DIR` -> every certificate file of DIR in name order."""
    if os.path.isdir(path):
        try:
            entries = sorted(os.listdir(path))
        except OSError as exc:
            raise CertificateError(f"certificate directory '{path}' cannot be read: {exc.strerror}") from None
        bundles = [load_bundle(os.path.join(path, name), now) for name in entries
                   if not name.startswith(".") and not name.endswith(DIR_SKIP_SUFFIXES)
                   and os.path.isfile(os.path.join(path, name))]
        if not bundles:
            raise CertificateError(f"certificate directory '{path}' holds no certificate file")
        return bundles
    return [load_bundle(path, now)]


def load_crt_list(path: str, now: datetime.datetime | None = None) -> list[Bundle]:
    """`crt-list FILE`: lines `CERT [[ssl options]] [filter ...]`; # comments.

    Filters are SNI names (wildcards allowed, `!name` excludes); a line without
    filters serves the certificate's own names. Per-line ssl options are accepted
    only as the bracket syntax and are not applied (said in the error otherwise)."""
    text = _read(path, "crt-list file").decode("utf-8", "replace")
    bundles = []
    base = os.path.dirname(path)
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        words = line.split()
        cert = words[0] if os.path.isabs(words[0]) else os.path.join(base, words[0])
        rest = words[1:]
        if rest and rest[0].startswith("["):
            closing = next((i for i, w in enumerate(rest) if w.endswith("]")), None)
            if closing is None:
                raise CertificateError(f"{path}:{number}: '[' of the ssl options is never closed")
            rest = rest[closing + 1:]
        try:
            found = load_crt(cert, now)
        except CertificateError as exc:
            raise CertificateError(f"{path}:{number}: {exc}") from None
        bundles.extend(Bundle(b.path, b.key_path, b.names, b.not_after, tuple(w.lower() for w in rest),
                              b.warnings) for b in found)
    if not bundles:
        raise CertificateError(f"crt-list file '{path}' lists no certificate")
    return bundles


def name_matches(pattern: str, name: str) -> bool:
    """A certificate name or SNI filter against a requested name (one-label wildcard)."""
    if pattern == name:
        return True
    if pattern.startswith("*."):
        head, _, tail = name.partition(".")
        return bool(head) and tail == pattern[2:]
    return False


__all__ = ["Bundle", "CertificateError", "load_bundle", "load_crt", "load_crt_list", "name_matches"]
