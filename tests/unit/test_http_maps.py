"""Map files and map converters (haply.http.maps); the oracle test compares
map_dom routing with HAProxy 2.6."""

from __future__ import annotations

import pytest

from haply.http import maps
from haply.http.headers import compile_value

TEXT = """# comment
/api      api_back
/api/v2   v2_back
/         root back   
\t
example.org\torg_back
"""


def test_parse_keeps_file_order_and_values_with_blanks():
    assert maps.parse_map(TEXT) == [("/api", "api_back"), ("/api/v2", "v2_back"),
                                    ("/", "root back"), ("example.org", "org_back")]


@pytest.mark.parametrize("method, text, expected", [
    ("str", "/api", "api_back"), ("str", "/api/v2/x", None),
    ("beg", "/api/v2/x", "v2_back"),  # the longest key that begins it
    ("beg", "/apix", "api_back"), ("beg", "other", None),
    ("sub", "/x/api/v2", "api_back"),  # the first line that occurs in it
    ("dom", "www.example.org:443", "org_back"), ("dom", "myexample.org", None),
    ("dom", "example.org.evil.net", "org_back"),
])
def test_lookups(method, text, expected):
    assert maps.lookup(maps.parse_map(TEXT), method, None)(text) == expected


def test_default_and_regex():
    entries = [(r"^/v[0-9]+/", "versioned"), ("images", "glance")]
    find = maps.lookup(entries, "reg", "other")
    assert [find(text) for text in ("/v2/x", "/images", "/x")] == ["versioned", "glance", "other"]
    with pytest.raises(maps.MapError, match="invalid regular expression"):
        maps.lookup([("(", "x")], "reg", None)


def test_converters_in_values(tmp_path):
    path = tmp_path / "hosts.map"
    path.write_text("keystone.example.com keystone_back\n")

    class Request:
        def header(self, name):
            return ["KEYSTONE.Example.com:5000"] if name == "host" else []

    value = compile_value(f"%[req.hdr(host),lower,map_dom({path},default_back)]", request=True)
    assert value(Request()) == b"keystone_back"
    assert compile_value(f"%[req.hdr(host),map_str({path})]", request=True)(Request()) == b""
    assert compile_value("%[req.hdr(host),upper]", request=True)(Request()) == b"KEYSTONE.EXAMPLE.COM:5000"
    with pytest.raises(ValueError, match="cannot read map file '/nonexistent.map'"):
        compile_value("%[req.hdr(host),map(/nonexistent.map)]", request=True)
    with pytest.raises(ValueError, match="converter 'map_end' is not supported by haply"):
        compile_value(f"%[req.hdr(host),map_end({path})]", request=True)
    with pytest.raises(ValueError, match="converter 'sha1' is not supported by haply"):
        compile_value("%[req.hdr(host),sha1]", request=True)


def test_split_arguments():
    assert maps.split_arguments("req.hdr(host),lower,map_dom(/m,d)") == [
        "req.hdr(host)", "lower", "map_dom(/m,d)"]
