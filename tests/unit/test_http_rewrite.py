"""haply.http.rewrite: back-references, request targets, comma-separated
values (the behaviour itself is compared with HAProxy in
tests/interop/test_rewrite_oracle.py)."""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st

from haply.http.rewrite import LineRewrite, expand, replace_values, split_target


def test_expand_back_references_and_escapes():
    match = re.search(rb"(a)(b)?(c)", b"xac")
    assert expand(rb"<\1|\2|\3|\4>", match) == b"<a||c|>"  # unmatched or absent: empty
    assert expand(rb"\\1 \x41 \t \q", match) == b"\\1 A \t q"
    assert expand(b"end\\", match) == b"end\\"
    assert expand(b"plain", match) == b"plain"


@given(st.binary(max_size=40))
def test_split_target_keeps_every_byte(url):
    prefix, path, query = split_target(url)
    assert prefix + path + query == url
    assert query == b"" or query.startswith(b"?")


def test_split_target_forms():
    assert split_target(b"/a/b?x=1") == (b"", b"/a/b", b"?x=1")
    assert split_target(b"http://h:80/a?q") == (b"http://h:80", b"/a", b"?q")
    assert split_target(b"http://h") == (b"http://h", b"", b"")
    assert split_target(b"*") == (b"", b"*", b"")


def test_replace_values_respects_quotes_and_keeps_the_rest():
    regex = re.compile(rb"^b$")
    assert replace_values(b"a ,b , c", regex, b"B", None) == b"a ,B, c"
    assert replace_values(b'"x,b", y', regex, b"B", None) is None
    assert replace_values(b'"x,\\"b", b', regex, b"B", None) == b'"x,\\"b",B'


class FakeRequest:
    def __init__(self, url: bytes):
        self.url = url
        self.method_bytes = b"GET"
        self.plain = True


def test_line_rewrite_marks_the_head_as_changed_only_when_it_changed():
    request = FakeRequest(b"/nomatch")
    LineRewrite("replace-path", rb"/x\1", re.compile(rb"^/a(.*)")).apply(request)
    assert (request.url, request.plain) == (b"/nomatch", True)
    LineRewrite("set-query", b"", None).apply(request)
    assert (request.url, request.plain) == (b"/nomatch?", False)


def test_line_rewrite_never_breaks_the_request_line():
    request = FakeRequest(b"/a")
    LineRewrite("set-path", lambda r: b"/with space", None).apply(request)
    LineRewrite("set-uri", b"", None).apply(request)
    LineRewrite("set-method", b"GET\r\nX: y", None).apply(request)
    assert (request.url, request.method_bytes, request.plain) == (b"/a", b"GET", True)
