"""The responses haply generates itself: HAProxy's default error pages, errorfiles.

The pages were written from observing HAProxy 2.6 (tests/unit/test_http_responses.py
pins them; the interop tests compare with the live binary): a status line,
content-length, cache-control: no-cache, content-type: text/html and a short
HTML body. HAProxy writes the 400 and 408 pages, which always end the
connection, as raw text from its HTTP/1 layer ("Content-length", "Cache-Control",
"Connection: close" before "Content-Type"); its other pages go through its
message layer, which writes names in lower case and a "connection: close",
when the connection ends, as the last field. haply builds both forms of each
page once, at import:

    error_response(503)               -> bytes with "Connection: close"
    error_response(503, close=False)  -> bytes without it (the connection stays)

haply also answers 414, 431 and 505 (see framing.py), which HAProxy cannot
emit; their pages follow the same pattern, and when the proxy has an
`errorfile 400` but none for that status, the 400 file is used, so a site's
custom "bad request" page still shows.

An errorfile is sent as HAProxy 2.6 sends it: read when the configuration is
loaded and written again (`render_errorfile`: CRLF line ends, field names in
lower case, status line and body as written). The connection stays open after
one with a Content-Length (an HTTP/1.0 one then says `connection: keep-alive`)
and closes after one without, whose body only the close ends.
"""

from __future__ import annotations

from http import HTTPStatus

from haply.http import framing
from haply.http.framing import TCHAR

# The reason phrase HAProxy 2.6 writes after a status it was given (an
# `http-request return` or `deny` with a body of the configuration's): its
# own list, which differs from the IANA registry for a few codes and names
# some unregistered ones; any other code gets its class's phrase.
HAPROXY_REASONS: dict[int, str] = {
    200: 'OK', 201: 'Created', 202: 'Accepted', 203: 'Non-Authoritative Information', 204: 'No Content',
    205: 'Reset Content', 206: 'Partial Content', 207: 'Multi-Status', 210: 'Content Different',
    226: 'IM Used', 300: 'Multiple Choices', 301: 'Moved Permanently', 302: 'Moved Temporarily',
    303: 'See Other', 304: 'Not Modified', 305: 'Use Proxy', 307: 'Temporary Redirect',
    308: 'Permanent Redirect', 310: 'Too many Redirects', 400: 'Bad Request', 401: 'Unauthorized',
    402: 'Payment Required', 403: 'Forbidden', 404: 'Not Found', 405: 'Method Not Allowed',
    406: 'Not Acceptable', 407: 'Proxy Authentication Required', 408: 'Request Time-out', 409: 'Conflict',
    410: 'Gone', 411: 'Length Required', 412: 'Precondition Failed', 413: 'Request Entity Too Large',
    414: 'Request-URI Too Long', 415: 'Unsupported Media Type', 416: 'Requested range unsatisfiable',
    417: 'Expectation failed', 418: "I'm a teapot", 421: 'Misdirected Request', 422: 'Unprocessable Content',
    423: 'Locked', 424: 'Method failure', 425: 'Too Early', 426: 'Upgrade Required',
    428: 'Precondition Required', 429: 'Too Many Requests', 431: 'Request Header Fields Too Large',
    449: 'Retry With', 450: 'Blocked by Windows Parental Controls', 451: 'Unavailable For Legal Reasons',
    456: 'Unrecoverable Error', 499: 'client has closed connection', 500: 'Internal Server Error',
    501: 'Not Implemented', 502: 'Bad Gateway or Proxy Error', 503: 'Service Unavailable',
    504: 'Gateway Time-out', 505: 'HTTP Version not supported', 506: 'Variant also negotiate',
    507: 'Insufficient storage', 508: 'Loop detected', 509: 'Bandwidth Limit Exceeded', 510: 'Not extended',
    511: 'Network authentication required', 520: 'Web server is returning an unknown error',
}
CLASS_REASONS = {1: "Informational", 2: "Success", 3: "Redirection", 4: "Client Error", 5: "Server Error"}


def reason_phrase(status: int) -> str:
    """HAProxy's reason phrase for a status of the configuration's."""
    return HAPROXY_REASONS.get(status) or CLASS_REASONS.get(status // 100, "Other")


# status -> (reason phrase, sentence), as HAProxy 2.6 sends them (observed;
# "407 Unauthorized" and the leading "." of the 501 sentence included).
HAPROXY_PAGES: dict[int, tuple[str, str]] = {
    200: ("OK", "Service ready."),
    400: ("Bad request", "Your browser sent an invalid request."),
    401: ("Unauthorized", "You need a valid user and password to access this content."),
    403: ("Forbidden", "Request forbidden by administrative rules."),
    404: ("Not Found", "The resource could not be found."),
    405: ("Method Not Allowed", "A request was made of a resource using a request method "
                                "not supported by that resource"),
    407: ("Unauthorized", "You need a valid user and password to access this content."),
    408: ("Request Time-out", "Your browser didn't send a complete request in time."),
    410: ("Gone", "The resource is no longer available and will not be available again."),
    413: ("Payload Too Large", "The request entity exceeds the maximum allowed."),
    425: ("Too Early", "Your browser sent early data."),
    429: ("Too Many Requests", "You have sent too many requests in a given amount of time."),
    500: ("Internal Server Error", "An internal server error occurred."),
    501: ("Not Implemented", ".The server does not support the functionality required to "
                             "fulfill the request."),
    502: ("Bad Gateway", "The server returned an invalid or incomplete response."),
    503: ("Service Unavailable", "No server is available to handle this request."),
    504: ("Gateway Time-out", "The server didn't respond in time."),
}

# Statuses haply answers that HAProxy has no page for; same layout.
HAPLY_PAGES: dict[int, tuple[str, str]] = {
    414: ("URI Too Long", "The request URI is longer than the server accepts."),
    431: ("Request Header Fields Too Large",
          "Your browser sent a request whose header fields are too large."),
    505: ("HTTP Version Not Supported",
          "Your browser sent a request in an HTTP version this server does not speak."),
}

# HAProxy's errorfile accepts exactly the codes it can generate (manual,
# "errorfile"); the config layer checks the code against this.
ERRORFILE_CODES = frozenset(HAPROXY_PAGES)

# Statuses with no page of their own borrow this errorfile (see module doc).
_ERRORFILE_FALLBACK = {414: 400, 431: 400, 505: 400}


# The pages HAProxy's HTTP/1 layer writes as raw text (a request it could not
# read, or read in time), and haply's own refusals of a request's framing.
RAW_PAGES = frozenset({400, 408, *HAPLY_PAGES})


def _page(status: int, reason: str, sentence: str, close: bool) -> bytes:
    body = f"<html><body><h1>{status} {reason}</h1>\n{sentence}\n</body></html>\n".encode()
    if status in RAW_PAGES:
        # Field order as HAProxy writes its raw pages (observed on the 400 it
        # sends for a malformed request).
        head = (f"HTTP/1.1 {status} {reason}\r\n"
                f"Content-length: {len(body)}\r\n"
                "Cache-Control: no-cache\r\n"
                + ("Connection: close\r\n" if close else "")
                + "Content-Type: text/html\r\n\r\n")
    else:
        head = (f"HTTP/1.1 {status} {reason}\r\n"
                f"content-length: {len(body)}\r\n"
                "cache-control: no-cache\r\n"
                "content-type: text/html\r\n"
                + ("connection: close\r\n" if close else "") + "\r\n")
    return head.encode() + body


def _build_pages() -> dict[tuple[int, bool], bytes]:
    pages = {}
    for table in (HAPROXY_PAGES, HAPLY_PAGES):
        for status, (reason, sentence) in table.items():
            for close in (True, False):
                pages[status, close] = _page(status, reason, sentence, close)
    return pages


DEFAULT_PAGES = _build_pages()


# The reason phrase HAProxy 2.6 writes for a status it sets (`http-response
# set-status` without `reason`) where it differs from http.HTTPStatus's
# (observed for every status from 200 to 599); a status neither knows takes
# the name of its class.
_SET_STATUS_REASONS = {
    208: "Success", 210: "Content Different", 302: "Moved Temporarily", 310: "Too many Redirects",
    408: "Request Time-out", 416: "Requested range unsatisfiable", 417: "Expectation failed",
    418: "I'm a teapot", 422: "Unprocessable Content", 424: "Method failure", 449: "Retry With",
    450: "Blocked by Windows Parental Controls", 456: "Unrecoverable Error",
    499: "client has closed connection", 502: "Bad Gateway or Proxy Error", 504: "Gateway Time-out",
    505: "HTTP Version not supported", 506: "Variant also negotiate", 507: "Insufficient storage",
    508: "Loop detected", 509: "Bandwidth Limit Exceeded", 510: "Not extended",
    511: "Network authentication required", 520: "Web server is returning an unknown error",
}
_CLASS_REASONS = {2: "Success", 3: "Redirection", 4: "Client Error", 5: "Server Error"}


def status_reason(status: int) -> str:
    """The reason phrase HAProxy gives a status it sets (200 to 599)."""
    reason = _SET_STATUS_REASONS.get(status)
    if reason is None:
        try:
            reason = HTTPStatus(status).phrase
        except ValueError:
            reason = _CLASS_REASONS[status // 100]
    return reason


def with_challenge(page: bytes, realm: str) -> bytes:
    """A 401 page with the Basic authentication challenge for realm, the last
    field of its head (where HAProxy adds it). An empty errorfile stays empty."""
    return _with_last_field(page, f'www-authenticate: Basic realm="{realm}"'.encode("latin-1"))


def with_close(page: bytes) -> bytes:
    """A framed answer of the configuration (`return`, `deny ... string`) for
    a client whose connection ends after it: HAProxy says so in the answer."""
    return _with_last_field(page, b"connection: close")


def with_keep_alive(page: bytes) -> bytes:
    """An answer that keeps an HTTP/1.0 client's connection: it must say so,
    or the client takes it as the last one (HAProxy says so too)."""
    return _with_last_field(page, b"connection: keep-alive")


def _with_last_field(page: bytes, field: bytes) -> bytes:
    if not page:
        return page  # an empty errorfile stays empty
    end = page.find(b"\r\n\r\n")
    if end < 0:
        end = page.find(b"\n\n")  # an errorfile written with bare LFs
        return page[:end] + b"\n" + field + page[end:]
    return page[:end] + b"\r\n" + field + page[end:]


def error_response(status: int, errorfiles: dict[int, bytes] | None = None,
                   close: bool = True) -> bytes:
    """The ready bytes haply sends for `status`: an errorfile, else the default page.

    close=False gives the page without "Connection: close", for a connection
    the proxy keeps (never for 400/408 or an errorfile, which always close).
    A status without a known page gets the same layout with the standard
    reason phrase.
    """
    if errorfiles:
        data = errorfiles.get(status)
        if data is None and status in _ERRORFILE_FALLBACK:
            data = errorfiles.get(_ERRORFILE_FALLBACK[status])
        if data is not None:
            # an HTTP/1.1 answer that ends the connection says so (HAProxy's
            # way: added last), an HTTP/1.0 one ends it by default
            return with_close(data) if close and data.startswith(b"HTTP/1.1 ") else data
    page = DEFAULT_PAGES.get((status, close))
    if page is None:
        try:
            reason = HTTPStatus(status).phrase
        except ValueError:
            reason = "Unknown"
        page = _page(status, reason, reason + ".", close)
        DEFAULT_PAGES[status, close] = page
    return page


def route_errorfiles(frontend_errorfiles, backend_errorfiles) -> dict[int, bytes]:
    """The errorfiles of a route: per status, the backend's, else the frontend's
    (observed with HAProxy 2.6: a backend without errorfile 503 uses the
    frontend's).

    Arguments are the model's `Proxy.errorfiles` tuples. Before a backend is
    chosen (a bad request, a client timeout) pass () for the backend.
    """
    merged = dict(frontend_errorfiles)
    merged.update(backend_errorfiles)
    return merged


def must_close(status: int, errorfiles: dict[int, bytes] | None = None) -> bool:
    """Whether the connection must close after error_response(status, errorfiles)."""
    if status in (400, 408):
        return True
    if errorfiles:
        data = errorfiles.get(status)
        if data is None:
            data = errorfiles.get(_ERRORFILE_FALLBACK.get(status, -1))
        if data is not None:
            return not framed(data)
    return False


def framed(answer: bytes) -> bool:
    """Whether another answer can follow this one on the connection: one with
    a Content-Length (what `http-error` and `http-request deny ...
    string|file` build, or an errorfile that has one). One without (as
    Debian's /etc/haproxy/errors are) ends with the close. An HTTP/1.0 answer
    that keeps the connection says so (`connection: keep-alive`, added when it
    is sent), as HAProxy 2.6 does."""
    head = answer.split(b"\r\n\r\n", 1)[0].lower()
    return b"\r\ncontent-length:" in head


def render_errorfile(data: bytes) -> bytes:
    """An errorfile as HAProxy 2.6 sends it: parsed when loaded and written
    again, its lines ending in CRLF and its field names in lower case; the
    status line and the body as in the file (observed)."""
    if not data:
        return data
    crlf, lf = data.find(b"\r\n\r\n"), data.find(b"\n\n")
    if crlf >= 0 and (lf < 0 or crlf < lf):
        head, body = data[:crlf], data[crlf + 4:]
    else:
        head, body = data[:lf], data[lf + 2:]
    lines = head.replace(b"\r\n", b"\n").split(b"\n")
    fields = []
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        fields.append(name.strip().lower() + b": " + value.strip())
    return b"\r\n".join([lines[0].rstrip(b"\r"), *fields]) + b"\r\n\r\n" + body


# -------------------------------------------------------------------- errorfiles

_VALUE_BAD = bytes(range(0x00, 0x09)) + bytes(range(0x0A, 0x20)) + b"\x7f"


def validate_errorfile(data: bytes) -> str | None:
    """None if `data` is a usable errorfile, else the reason it is not.

    HAProxy parses errorfiles at startup ("must be valid according to the
    HTTP specification", at most tune.bufsize - tune.maxrewrite bytes). An
    empty file is valid and means "send nothing" (the manual's "errorfile 408
    /dev/null" idiom). Lines may end in CRLF or LF, as HAProxy accepts both
    (its own /etc/haproxy/errors files end the body lines in LF).
    """
    if not data:
        return None
    if len(data) > framing.MAX_HEAD_SIZE:
        return f"larger than {framing.MAX_HEAD_SIZE} bytes (tune.bufsize - tune.maxrewrite)"
    crlf, lf = data.find(b"\r\n\r\n"), data.find(b"\n\n")
    candidates = [i for i in (crlf, lf) if i >= 0]
    if not candidates:
        return "no end of head (blank line) found"
    head = data[:min(candidates)]
    lines = head.replace(b"\r\n", b"\n").split(b"\n")
    reason = _check_status_line(lines[0])
    if reason:
        return reason
    for number, line in enumerate(lines[1:], start=2):
        name, colon, value = line.partition(b":")
        if not colon:
            return f"line {number}: header without ':'"
        if not name or name.translate(None, TCHAR):
            return f"line {number}: invalid header name {name[:40]!r}"
        if value.translate(None, _VALUE_BAD) != value:
            return f"line {number}: control character in header value"
    return None


def _check_status_line(line: bytes) -> str | None:
    if not (line.startswith(b"HTTP/1.0 ") or line.startswith(b"HTTP/1.1 ")):
        return f"status line {line[:40]!r} does not start with HTTP/1.0 or HTTP/1.1"
    code = line[9:12]
    if len(code) != 3 or not code.isdigit() or not 100 <= int(code) <= 599:
        return f"invalid status code in {line[:40]!r}"
    if len(line) > 12 and line[12:13] != b" ":
        return f"invalid status code in {line[:40]!r}"
    return None


__all__ = [
    "DEFAULT_PAGES", "ERRORFILE_CODES", "HAPLY_PAGES", "HAPROXY_PAGES", "error_response",
    "framed", "must_close", "route_errorfiles", "validate_errorfile", "with_challenge",
]
