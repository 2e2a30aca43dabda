"""llhttp for a client's requests, as the HTTP session makes it.

Apart from haply.proxy.http because ExtensionMethodParser subclasses
httptools' parser, a C extension type: the compiled build (setup.py) leaves
this module interpreted, as a compiled class cannot derive from it.
"""

from __future__ import annotations

import httptools


def request_parser(session, kind=httptools.HttpRequestParser) -> httptools.HttpRequestParser:
    """llhttp for a client's requests. Lenient on the version only: it would
    refuse HTTP/1.2 to 1.9, which RFC 9112 §2.6 (and HAProxy) read as
    HTTP/1.1; versions haply does not speak are refused after the head
    (framing.request_framing)."""
    parser = kind(session)
    # lenient_chunked_length: llhttp would refuse a Content-Length among the
    # trailers, which HAProxy forwards; a head with both framings is
    # refused by framing.request_framing all the same.
    parser.set_dangerous_leniencies(lenient_version=True, lenient_chunked_length=True)
    return parser


class ExtensionMethodParser(httptools.HttpRequestParser):
    """llhttp reading a request whose method it does not know, given to it as
    GET (HttpSession._read_extension_method): the head's first get_method()
    gives the request's own method. llhttp frames a request's body alike
    whatever its method but for CONNECT, which is known: the GET reads the
    same bytes as the request, as HAProxy reads them."""

    method: bytes | None = None

    def get_method(self) -> bytes:
        method = self.method
        if method is None:
            return super().get_method()
        self.method = None
        return method
