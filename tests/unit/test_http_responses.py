"""haply.http.responses: default error pages (pinned, and compared with live
HAProxy 2.6), errorfile selection and validation."""

from __future__ import annotations

import glob
import socket
import time

import httptools
import pytest

from haply.http.framing import MAX_HEAD_SIZE
from haply.http.responses import (
    ERRORFILE_CODES, HAPLY_PAGES, HAPROXY_PAGES, error_response, must_close,
    route_errorfiles, validate_errorfile,
)
from tests.support.haproxy_oracle import (
    free_port, haproxy_available, haproxy_config, run_haproxy,
)


def parse_response(data: bytes) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    class Sink:
        headers: list = []
        body = b""

        def on_header(self, name, value):
            self.headers.append((name, value))

        def on_body(self, body):
            self.body += body

    sink = Sink()
    sink.headers = []
    parser = httptools.HttpResponseParser(sink)
    parser.feed_data(data)
    return parser.get_status_code(), sink.headers, sink.body


# ------------------------------------------------------------- pinned bytes


def test_400_page_bytes():
    # Byte for byte what HAProxy 2.6 sends for a malformed request.
    assert error_response(400) == (
        b"HTTP/1.1 400 Bad request\r\nContent-length: 90\r\nCache-Control: no-cache\r\n"
        b"Connection: close\r\nContent-Type: text/html\r\n\r\n"
        b"<html><body><h1>400 Bad request</h1>\n"
        b"Your browser sent an invalid request.\n</body></html>\n")


def test_503_page_bytes_without_close():
    # written by HAProxy's message layer: names in lower case
    assert error_response(503, close=False) == (
        b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 107\r\n"
        b"cache-control: no-cache\r\ncontent-type: text/html\r\n\r\n"
        b"<html><body><h1>503 Service Unavailable</h1>\n"
        b"No server is available to handle this request.\n</body></html>\n")


def test_403_page_bytes_with_close():
    # "connection: close" comes last, as HAProxy writes it for an HTTP/1.0 client
    assert error_response(403, close=True).split(b"\r\n\r\n")[0] == (
        b"HTTP/1.1 403 Forbidden\r\ncontent-length: 93\r\ncache-control: no-cache\r\n"
        b"content-type: text/html\r\nconnection: close")


@pytest.mark.parametrize("status", sorted(HAPROXY_PAGES) + sorted(HAPLY_PAGES))
@pytest.mark.parametrize("close", [True, False])
def test_every_page_is_a_valid_response(status, close):
    data = error_response(status, close=close)
    code, headers, body = parse_response(data)
    fields = {name.lower(): value for name, value in headers}
    assert code == status
    assert int(fields[b"content-length"]) == len(body)
    assert fields[b"content-type"] == b"text/html"
    assert fields[b"cache-control"] == b"no-cache"
    assert (fields.get(b"connection") == b"close") is close
    assert body.startswith(b"<html><body><h1>%d " % status)
    assert validate_errorfile(data) is None
    assert error_response(status, close=close) is data  # built once


def test_errorfile_codes_are_haproxys():
    assert ERRORFILE_CODES == {200, 400, 401, 403, 404, 405, 407, 408, 410, 413, 425, 429,
                               500, 501, 502, 503, 504}


def test_unknown_status_gets_a_generic_page():
    code, _, body = parse_response(error_response(418))
    assert code == 418 and b"418 I'm a Teapot" in body


# ---------------------------------------------------------------- errorfiles


def test_errorfile_overrides_and_fallback():
    custom = b"HTTP/1.0 400 Bad\r\nContent-Type: text/plain\r\n\r\nno\n"
    files = {400: custom, 503: b""}
    assert error_response(400, files) is custom
    assert error_response(431, files) is custom  # no page of its own: the 400 file
    assert error_response(414, files) is custom
    assert error_response(503, files) == b""  # "errorfile 503 /dev/null": send nothing
    assert error_response(504, files) == error_response(504)
    assert must_close(431, files) and must_close(503, files)
    assert not must_close(504, files) and not must_close(431)
    assert must_close(400) and must_close(408)


def test_route_errorfiles_prefer_the_backend_per_status():
    fe = ((400, b"fe400"), (503, b"fe503"))
    be = ((503, b"be503"),)
    assert route_errorfiles(fe, be) == {400: b"fe400", 503: b"be503"}
    assert route_errorfiles(fe, ()) == {400: b"fe400", 503: b"fe503"}


def test_debian_errorfiles_are_valid_and_match_the_pages():
    paths = sorted(glob.glob("/etc/haproxy/errors/*.http"))
    if not paths:
        pytest.skip("no /etc/haproxy/errors shipped on this system")
    for path in paths:
        data = open(path, "rb").read()
        assert validate_errorfile(data) is None, path
        status = int(path.rsplit("/", 1)[1][:3])
        body = error_response(status).split(b"\r\n\r\n", 1)[1]
        assert body in data, path


@pytest.mark.parametrize("data", [
    b"",
    b"HTTP/1.0 503 Service Unavailable\nContent-Type: text/html\n\nsorry\n",
    b"HTTP/1.1 200\r\n\r\n",
    b"HTTP/1.1 302 Found\r\nLocation: /x\r\nContent-Length: 0\r\n\r\n",
])
def test_valid_errorfiles(data):
    assert validate_errorfile(data) is None


@pytest.mark.parametrize("data,words", [
    (b"garbage\r\n\r\n", "does not start with HTTP/1.0 or HTTP/1.1"),
    (b"HTTP/1.1 200 OK\r\nX: y\r\n", "no end of head"),
    (b"HTTP/2 200 OK\r\n\r\n", "does not start"),
    (b"HTTP/1.1 20 OK\r\n\r\n", "invalid status code"),
    (b"HTTP/1.1 2000 OK\r\n\r\n", "invalid status code"),
    (b"HTTP/1.1 099 OK\r\n\r\n", "invalid status code"),
    (b"HTTP/1.1 200 OK\r\nNoColon\r\n\r\n", "line 2: header without ':'"),
    (b"HTTP/1.1 200 OK\r\nBad Name: x\r\n\r\n", "line 2: invalid header name"),
    (b"HTTP/1.1 200 OK\r\nX: a\x01b\r\n\r\n", "line 2: control character"),
    (b"HTTP/1.1 200 OK\r\n\r\n" + b"x" * MAX_HEAD_SIZE, "larger than"),
])
def test_invalid_errorfiles(data, words):
    reason = validate_errorfile(data)
    assert reason is not None and words in reason


# ------------------------------------------------------ live HAProxy oracle

_skip_without_haproxy = pytest.mark.skipif(not haproxy_available(),
                                           reason="HAProxy not installed")


def needs_haproxy(test):
    """Marks a test that compares with the live HAProxy binary (the oracle)."""
    return pytest.mark.oracle(_skip_without_haproxy(test))


def exchange(port: int, data: bytes, timeout: float = 5.0) -> bytes:
    """Send data and read until HAProxy closes or the response is complete."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        chunks, deadline = [], time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                chunk = sock.recv(65536)
            except socket.timeout:
                break
            if not chunk:
                break
            chunks.append(chunk)
            received = b"".join(chunks)
            head, sep, body = received.partition(b"\r\n\r\n")
            if sep and b"content-length: %d" % len(body) in head.lower():
                break
        return b"".join(chunks)


def same_page(ours: bytes, theirs: bytes) -> None:
    """Status line and body byte-equal; header fields equal ignoring name case
    (HAProxy lower-cases names of pages it renders through its HTX layer)."""
    our_head, _, our_body = ours.partition(b"\r\n\r\n")
    their_head, _, their_body = theirs.partition(b"\r\n\r\n")
    our_lines, their_lines = our_head.split(b"\r\n"), their_head.split(b"\r\n")
    assert our_lines[0] == their_lines[0]
    assert our_body == their_body

    def fields(lines):
        return sorted((n.strip().lower(), v.strip()) for n, _, v in
                      (line.partition(b":") for line in lines[1:]))
    assert fields(our_lines) == fields(their_lines)


@pytest.fixture(scope="module")
def live_haproxy():
    """HAProxy 2.6 with: a deny rule per status, a backend without servers
    (503), a server that never answers (504), and a short http-request timeout
    (408)."""
    if not haproxy_available():
        pytest.skip("HAProxy not installed")
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)  # the kernel accepts; nobody ever answers
    port = free_port()
    denies = "".join(f"    http-request deny deny_status {code} if {{ path /{code} }}\n"
                     for code in sorted(ERRORFILE_CODES))
    config = haproxy_config(
        f"frontend fe\n"
        f"    bind 127.0.0.1:{port}\n"
        f"    timeout http-request 300ms\n"
        f"{denies}"
        f"    use_backend silent if {{ path /silent }}\n"
        f"    default_backend empty\n"
        f"backend empty\n"
        f"backend silent\n"
        f"    timeout server 300ms\n"
        f"    server s1 127.0.0.1:{silent.getsockname()[1]}\n")
    try:
        with run_haproxy(config):
            yield port
    finally:
        silent.close()


@needs_haproxy
def test_live_400_malformed_request(live_haproxy):
    theirs = exchange(live_haproxy, b"GET / HTTP/1.1\r\nBad Name: x\r\n\r\n")
    assert theirs == error_response(400)


@needs_haproxy
def test_live_408_request_timeout(live_haproxy):
    theirs = exchange(live_haproxy, b"GET / HTTP/1.1\r\nHost: a\r\n")
    assert theirs == error_response(408)


@needs_haproxy
def test_live_503_no_server(live_haproxy):
    theirs = exchange(live_haproxy, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
    same_page(error_response(503, close=False), theirs)


@needs_haproxy
def test_live_504_server_timeout(live_haproxy):
    theirs = exchange(live_haproxy, b"GET /silent HTTP/1.1\r\nHost: a\r\n\r\n")
    same_page(error_response(504, close=False), theirs)


@needs_haproxy
@pytest.mark.parametrize("status", sorted(ERRORFILE_CODES))
def test_live_every_haproxy_page(live_haproxy, status):
    theirs = exchange(live_haproxy, b"GET /%d HTTP/1.1\r\nHost: a\r\n\r\n" % status)
    # HAProxy keeps "Connection: close" in the 400 and 408 pages only.
    same_page(error_response(status, close=status in (400, 408)), theirs)


def test_errorfiles_are_written_again_as_haproxy_writes_them():
    from haply.http.responses import render_errorfile

    assert render_errorfile(b"HTTP/1.0 503 Service Unavailable\nCache-Control: no-cache\n"
                            b"X-Why:  maintenance \n\n<h1>down</h1>\n") == (
        b"HTTP/1.0 503 Service Unavailable\r\ncache-control: no-cache\r\nx-why: maintenance\r\n"
        b"\r\n<h1>down</h1>\n")
    assert render_errorfile(b"") == b""  # `errorfile 408 /dev/null`: nothing at all
