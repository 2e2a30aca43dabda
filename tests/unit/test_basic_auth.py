"""Basic credentials checked against a userlist's accounts."""

from __future__ import annotations

import base64
import subprocess

from hypothesis import given, strategies as st

from haply.config.model import User, Userlist
from haply.http import basic_auth
from haply.http.basic_auth import Accounts, credentials, crypt_matches


def basic(user: str, password: str) -> list[str]:
    return ["Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()]


def openssl_hash(scheme: str, password: str) -> str:
    return subprocess.run(["openssl", "passwd", f"-{scheme}", "-salt", "s4lt", password],
                          capture_output=True, text=True, check=True, timeout=10).stdout.strip()


def test_credentials_are_read_from_the_first_basic_field():
    assert credentials(basic("alice", "a:b")) == ("alice", b"a:b")
    assert credentials(["basic   " + base64.b64encode(b"x:y").decode()]) == ("x", b"y")
    assert credentials([]) is None
    assert credentials(["Bearer token"]) is None
    assert credentials(["Basic ***"]) is None
    assert credentials(["Basic " + base64.b64encode(b"no colon").decode()]) is None


@given(st.text(max_size=80))
def test_any_authorization_value_is_read_or_refused_cleanly(value):
    found = credentials([value])
    assert found is None or isinstance(found[1], bytes)


def test_crypt_schemes_of_the_system_library():
    for scheme in ("6", "5", "1"):
        hashed = openssl_hash(scheme, "secret")
        assert crypt_matches(b"secret", hashed)
        assert not crypt_matches(b"Secret", hashed)
    assert not crypt_matches(b"secret", "not a hash")


def test_accounts_remember_outcomes_without_the_password(monkeypatch):
    hashed = openssl_hash("6", "builder")
    accounts = Accounts(Userlist("ops", (User("bob", hashed, groups=("devs",)),
                                         User("alice", "wonder", insecure=True),
                                         User("nobody", None)),
                                 (("devs", ("bob",)),)))
    assert accounts.authenticated(basic("bob", "builder")) == "bob"
    assert accounts.authenticated(basic("bob", "wrong")) is None
    assert accounts.authenticated(basic("alice", "wonder")) == "alice"
    assert accounts.authenticated(basic("alice", "wonder!")) is None
    assert accounts.authenticated(basic("nobody", "")) is None
    assert accounts.authenticated(basic("eve", "builder")) is None
    assert all(b"builder" not in key and b"wrong" not in key for key in accounts._outcomes)
    # The second time the outcome is remembered: libcrypt is not asked again.
    calls = []
    monkeypatch.setattr(basic_auth, "crypt_matches", lambda *args: calls.append(args) or False)
    assert accounts.authenticated(basic("bob", "builder")) == "bob"
    assert calls == []
    assert accounts.in_groups("bob", ("devs",)) and not accounts.in_groups("alice", ("devs",))
