"""HTTP Basic authentication against a userlist (RFC 7617; manual 3.4 and the
http_auth fetches of 7.3.6).

An account's password is a crypt(3) hash (`password`) or the password itself
(`insecure-password`). Hashes are checked with the system's libcrypt, as HAProxy
does, so every scheme it knows works ($6$ SHA-512, $5$ SHA-256, $y$ yescrypt,
$2b$ bcrypt, $1$ MD5). A SHA-512 hash costs milliseconds to check, and the
same client sends the same credentials on every request: the outcome of each
check is remembered (keyed by a digest of the credentials, never the password
itself), so only the first request of a user pays for it.
"""

from __future__ import annotations

import base64
import binascii
import ctypes
import ctypes.util
import hashlib
import hmac

from haply.config.model import Userlist

REMEMBERED = 4096  # outcomes kept before the memory starts over


class CryptUnavailable(RuntimeError):
    pass


def _load_crypt():
    name = ctypes.util.find_library("crypt") or "libcrypt.so.1"
    try:
        library = ctypes.CDLL(name)
    except OSError:
        return None
    function = library.crypt
    function.argtypes = (ctypes.c_char_p, ctypes.c_char_p)
    function.restype = ctypes.c_char_p
    return function


_crypt = _load_crypt()


def crypt_matches(password: bytes, hashed: str) -> bool:
    if _crypt is None:
        raise CryptUnavailable("libcrypt is not available: hashed passwords cannot be checked")
    expected = hashed.encode("latin-1")
    result = _crypt(password, expected)
    # libcrypt answers NULL or a "*"-prefixed failure token for a hash it cannot read.
    return result is not None and not result.startswith(b"*") and hmac.compare_digest(result, expected)


def credentials(values: list[str]) -> tuple[str, bytes] | None:
    """(user, password) from the first Authorization field, if it is Basic."""
    if not values:
        return None
    scheme, _, token = values[0].strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(token.strip(), validate=True)
    except (binascii.Error, ValueError):
        return None
    user, colon, password = decoded.partition(b":")
    if not colon:
        return None
    return user.decode("latin-1"), password


class Accounts:
    """The accounts of one userlist, and which of its groups each is in."""

    def __init__(self, userlist: Userlist):
        self.users = {user.name: user for user in userlist.users}
        self.groups = {name: frozenset(members) for name, members in userlist.groups}
        self._outcomes: dict[bytes, bool] = {}

    def authenticated(self, authorization: list[str]) -> str | None:
        """The user the request's Basic credentials prove, or None."""
        found = credentials(authorization)
        if found is None:
            return None
        name, password = found
        user = self.users.get(name)
        if user is None or user.password is None:
            return None
        if user.insecure:
            return name if hmac.compare_digest(password, user.password.encode("latin-1")) else None
        key = hashlib.sha256(name.encode("latin-1") + b"\0" + password).digest()
        outcome = self._outcomes.get(key)
        if outcome is None:
            outcome = crypt_matches(password, user.password)
            if len(self._outcomes) >= REMEMBERED:
                self._outcomes.clear()
            self._outcomes[key] = outcome
        return name if outcome else None

    def in_groups(self, user: str, groups: tuple[str, ...]) -> bool:
        return any(user in self.groups.get(group, ()) for group in groups)


__all__ = ["Accounts", "CryptUnavailable", "credentials", "crypt_matches"]
