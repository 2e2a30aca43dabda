"""haply.proxy.redirect: Location values and answers (HAProxy 2.6's bytes)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from haply.config.model import Redirect
from haply.proxy.redirect import compile_redirects, location, response


@pytest.mark.parametrize("rule,url,host,expected", [
    (Redirect("scheme", "https"), "/a?b", "h:80", "https://h:80/a?b"),
    (Redirect("scheme", "https", options=("drop-query",)), "/a?b", "h", "https://h/a"),
    (Redirect("scheme", "https"), "/x", None, "https:///x"),
    (Redirect("prefix", "https://n.example"), "/a?b", "h", "https://n.example/a?b"),
    (Redirect("prefix", "/"), "/q/z", "h", "/q/z"),
    (Redirect("prefix", "/pre", options=("append-slash",)), "/a/b?x", "h", "/pre/a/b?x/"),
    (Redirect("location", "/elsewhere"), "/anything?q", "h", "/elsewhere"),
])
def test_location(rule, url, host, expected):
    assert location(rule, url, host) == expected


def test_response_bytes():
    assert response(301, "https://h/", False) == (b"HTTP/1.1 301 Moved Permanently\r\ncontent-length: 0\r\n"
                                                  b"location: https://h/\r\n\r\n")
    assert response(302, "/x", True) == (b"HTTP/1.1 302 Found\r\ncontent-length: 0\r\nlocation: /x\r\n"
                                         b"cache-control: no-cache\r\nconnection: close\r\n\r\n")
    assert b"308 Permanent Redirect" in response(308, "/", False) and b"cache-control" not in response(308, "/", False)


def test_no_rules_compile_to_none():
    assert compile_redirects(()) is None
    assert len(compile_redirects((Redirect("scheme", "https"),))) == 1


@given(st.text(alphabet="abcdefghij/?=&.", min_size=1).map(lambda s: "/" + s))
def test_drop_query_never_keeps_a_query(url):
    value = location(Redirect("prefix", "https://n", options=("drop-query",)), url, "h")
    assert "?" not in value and value.startswith("https://n/")
