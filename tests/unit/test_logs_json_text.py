"""The json() converter of log-format samples (haply.logs.json_text); the
oracle test compares it with HAProxy's on the same values."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, strategies as st

from haply.logs.json_text import INPUT_CODES, json_text


def wire(data: bytes) -> str:
    """bytes as a log line holds them (see haply.logs.formats._wire_text)."""
    return data.decode("utf-8", "surrogateescape")


@given(st.binary(max_size=40))
def test_ascii_reads_every_byte_as_a_character(data):
    out = json_text(wire(data))
    assert out.isascii()
    assert json.loads(f'"{out}"') == data.decode("latin-1")


@given(st.text(alphabet=st.characters(max_codepoint=0xFFFF, blacklist_categories=("Cs",)),
               max_size=40))
@pytest.mark.parametrize("code", INPUT_CODES[1:])
def test_utf8_decoders_agree_with_json_on_valid_text(code, text):
    out = json_text(text, code)
    assert out.isascii()
    assert json.loads(f'"{out}"') == text


@pytest.mark.parametrize("data, expected", [
    (b"A\xe2\x82B", {"utf8": None, "utf8s": "AB", "utf8p": None, "utf8ps": "AB"}),
    (b"A\xc3AB", {"utf8": None, "utf8s": "AAB", "utf8p": None, "utf8ps": "AAB"}),
    (b"A\xf0\x9f\x98\x80B", {"utf8": None, "utf8s": "AB", "utf8p": None, "utf8ps": "AB"}),
    (b"A\xe0\x80\xafB", {"utf8": None, "utf8s": "AB", "utf8p": "A\\/B", "utf8ps": "A\\/B"}),
    (b"A\xf8\x80\x80\x80\x80B", {"utf8": None, "utf8s": "AB", "utf8p": "A\\u0000B",
                                  "utf8ps": "A\\u0000B"}),
    (b"A\xed\xa0\x80", {"utf8": None, "utf8s": "A", "utf8p": None, "utf8ps": "A"}),
    (b"A\xc3", {"utf8": None, "utf8s": "A", "utf8p": None, "utf8ps": "A"}),
    (b"\x7f\x01", {"utf8": "\\u007f\\u0001", "utf8s": "\\u007f\\u0001"}),
])
def test_errors_fail_or_are_removed(data, expected):
    """A bad sequence, a character beyond U+FFFF, an overlong form, a
    surrogate, a sequence cut short: as HAProxy 2.6 treats each."""
    for code, out in expected.items():
        assert json_text(wire(data), code) == out, code


def test_short_escapes():
    assert json_text('"\\/\b\f\n\r\t') == '\\"\\\\\\/\\b\\f\\n\\r\\t'
