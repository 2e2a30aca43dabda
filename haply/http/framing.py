"""Where an HTTP/1.x message body ends, whether a connection may carry another
message, and the limits on a message head. Pure decisions, no bytes parsed here.

httptools (llhttp) parses the bytes in the proxy; this module decides from what
it reports: method and version, the URL, and the header list as (name, value)
byte pairs in arrival order (llhttp strips leading whitespace from values but
keeps trailing whitespace). The proxy calls, per message, once its head is
complete:

    framing = request_framing(method, version, headers)      # may raise
    framing = response_framing(request_method, status, version, headers)

and gets a `Framing(kind, length)`. Every refusal is a `RemoteProtocolError`
whose `status_hint` is what to answer the client (4xx for a bad request, 502
for a bad response) and whose message names the fault for logs.

Which rules llhttp already enforces, and which are ours, is pinned by
tests/integration/test_httptools_limits.py: llhttp rejects CR, LF, NUL and other
CTLs in values, obs-fold, non-token header names, empty names and whitespace
before the colon, CL+TE and duplicate Content-Length; it accepts, and we must
refuse, Transfer-Encoding in HTTP/1.0, HTTP/0.9 and HTTP/2.0 request lines,
`#` fragments, a leading empty Transfer-Encoding element, and any number or
size of header fields. The smuggling rules below are still checked in full:
this function is the one place that decides framing, and it must stay right
if the parser is made more lenient (`set_dangerous_leniencies`) or replaced.
The leniencies used: in servers' answers, spaces after a chunk size, as
HAProxy reads them (haply.proxy.upstream.response_parser), which moves no
boundary; and, for a head llhttp refused that haply.http.repair wrote anew
(bare LF, obs-fold...), control characters in field values, until that head
is read. Repair refuses what HAProxy refuses (whitespace before a colon,
non-token names...), so the fields that come here are as llhttp gives them.
"""

from __future__ import annotations

import re
from typing import Final, Iterable, NamedTuple

from haply.http.errors import BAD_GATEWAY, RemoteProtocolError

Headers = Iterable[tuple[bytes, bytes]]

# ----------------------------------------------------------------------- limits

# HAProxy reads a message head into one buffer of tune.bufsize (default 16384)
# and never fills the last tune.maxrewrite bytes (default 1024) on a read, so
# that rules can add headers: a head larger than bufsize - maxrewrite = 15360
# bytes is refused (configuration manual, "tune.bufsize", "tune.maxrewrite").
# haply keeps the same budget so that a request HAProxy accepted still passes.
HAPROXY_BUFSIZE: Final = 16384
HAPROXY_MAXREWRITE: Final = 1024

# tune.http.maxhdr defaults to 101 and counts the start line, so 100 header
# fields pass and the 101st is refused (observed with HAProxy 2.6).
HAPROXY_MAXHDR: Final = 101


def head_budget(bufsize: int = HAPROXY_BUFSIZE, maxrewrite: int = HAPROXY_MAXREWRITE) -> int:
    """The largest head (start line, fields and CRLFs) a buffer of `bufsize`
    holds; HAProxy lowers a maxrewrite over half the buffer to half."""
    return bufsize - min(maxrewrite, bufsize // 2)


# These three are not Final: set_limits changes them once the configuration is read.
MAX_HEAD_SIZE = head_budget()
MAX_HEADERS = HAPROXY_MAXHDR - 1
# The shortest head that can hold more than MAX_HEADERS fields ("a:" CRLF each):
# a shorter one need not be counted.
CROWDED_HEAD = 4 * MAX_HEADERS


def set_limits(bufsize: int, maxrewrite: int, maxhdr: int) -> None:
    """Apply the global section's tune.bufsize, tune.maxrewrite and
    tune.http.maxhdr. Like HAProxy's, they hold for the whole process; the
    proxy reads them from this module at each check."""
    global MAX_HEAD_SIZE, MAX_HEADERS, CROWDED_HEAD
    MAX_HEAD_SIZE = head_budget(bufsize, maxrewrite)
    MAX_HEADERS = maxhdr - 1
    CROWDED_HEAD = 4 * MAX_HEADERS

# Statuses for an oversized request. HAProxy answers 400 to both; haply names
# the fault instead: 431 (RFC 6585 §5) for too many or too large header fields,
# 414 (RFC 9110 §15.5.15) when the request line alone is over the budget. In
# OpenStack the usual culprit is a large X-Auth-Token, and "431" says so where
# "400 Bad request" sends operators hunting. An `errorfile 400` still applies:
# responses.error_response falls back to it for statuses HAProxy cannot emit.
STATUS_HEAD_TOO_LARGE = 431
STATUS_URI_TOO_LONG = 414

# Content-Length up to 2**63 - 1 (what a signed 64-bit offset holds, and the
# largest value HAProxy or any server here can use); 19 digits is the longest
# such number, so a longer string is refused before int() sees it. Leading
# zeros do not count: "00000000000000000003" is 3 to HAProxy and to llhttp,
# and the server is sent "3" (haply writes the length it decided).
MAX_CONTENT_LENGTH = 2**63 - 1
MAX_CONTENT_LENGTH_DIGITS = 19

# ---------------------------------------------------------------------- framing

NONE: Final = "none"  # no body at all
LENGTH: Final = "length"  # exactly `length` bytes (may be 0: "Content-Length: 0" is sent on)
CHUNKED: Final = "chunked"  # chunked transfer coding, ends with the last chunk and trailers
UNTIL_CLOSE: Final = "until-close"  # responses only: the body ends when the server closes


class Framing(NamedTuple):
    kind: str
    length: int = 0  # meaningful for LENGTH only

    @property
    def delimited(self) -> bool:
        """True when the end of the body is known without closing the connection."""
        return self.kind != UNTIL_CLOSE


NO_BODY: Final = Framing(NONE)
# No body, and no framing field may say otherwise: a 1xx or 204 (RFC 9110
# §8.6: a server MUST NOT send Content-Length in them); HAProxy removes it.
NO_BODY_NO_LENGTH: Final = Framing(NONE, -1)
CHUNKED_BODY: Final = Framing(CHUNKED)
UNTIL_CLOSE_BODY: Final = Framing(UNTIL_CLOSE)
_EMPTY_BODY = Framing(LENGTH, 0)

# Framings of the lengths seen, shared: an API answers with a few sizes over
# and over, and a NamedTuple costs a Python call to build. Bounded.
_LENGTHS: dict[int, Framing] = {0: _EMPTY_BODY}
_LENGTHS_KEPT = 4096


def _length(length: int) -> Framing:
    framing = Framing(LENGTH, length)
    if len(_LENGTHS) < _LENGTHS_KEPT:
        _LENGTHS[length] = framing
    return framing


_SUPPORTED_VERSIONS = frozenset(("1.0", "1.1"))
_OWS = b" \t"
_CHUNKED = b"chunked"
_HEAD = b"HEAD"
_CONNECT = b"CONNECT"


def request_framing(method: bytes, version: str, headers: Headers) -> Framing:
    """Framing of a request body, RFC 9112 §6.1-§6.3; raises RemoteProtocolError.

    Steps follow RFC 9112 §6.3 ("Message Body Length"), restricted to requests.
    """
    # Step 1 (RFC 9112 §2.3, §2.6): only HTTP/1.0 and HTTP/1.1 are spoken here.
    # llhttp accepts "GET /" (HTTP/0.9) and "HTTP/2.0"; HAProxy answers 400 to
    # the first and silently speaks 1.1 for the second; haply refuses both.
    if version not in _SUPPORTED_VERSIONS:
        if version == "0.9":
            raise RemoteProtocolError("HTTP/0.9 request (no version on the request line)", 400)
        raise RemoteProtocolError(f"unsupported HTTP version {version}", 505)

    # Step 2: one pass over the fields. An invalid Content-Length, or several
    # (RFC 9112 §6.3 item 5: "unrecoverable error"), raises here.
    content_length, transfer_encoding = _framing_fields(headers, 400, True)

    # Step 3 (RFC 9112 §6.1): Transfer-Encoding in an HTTP/1.0 message means
    # the framing is faulty. llhttp would decode it as chunked; the server
    # behind may not, which is a request smuggling vector. Refused.
    if transfer_encoding is not None:
        if version == "1.0":
            raise RemoteProtocolError("Transfer-Encoding in an HTTP/1.0 request", 400,
                                      b"transfer-encoding")
        # Step 4 (RFC 9112 §6.3 item 3): Transfer-Encoding with Content-Length
        # "ought to be handled as an error". HAProxy drops the Content-Length,
        # forwards the chunked body and closes the connection; haply is
        # deliberately stricter and refuses: the request came from something
        # that frames bodies two ways at once, an attack or a broken client,
        # and no downstream parser can then disagree with us.
        if content_length is not None:
            raise RemoteProtocolError("both Content-Length and Transfer-Encoding", 400,
                                      b"content-length")
        # Step 5 (RFC 9112 §6.3 item 4): chunked must be the final coding,
        # else the length cannot be determined and the answer is 400.
        _check_transfer_encoding(transfer_encoding, 400)
        return CHUNKED_BODY

    # Step 6 (RFC 9112 §6.3 item 6): a valid Content-Length gives the length.
    if content_length is not None:
        return _LENGTHS.get(content_length) or _length(content_length)

    # Step 7 (RFC 9112 §6.3 item 7): a request with neither has no body.
    return NO_BODY


def response_framing(request_method: bytes, status: int, version: str,
                     headers: Headers) -> Framing:
    """Framing of a response body, RFC 9112 §6.3; raises RemoteProtocolError(502).

    `request_method` is the method of the request this answers: a response to
    HEAD never has a body whatever its headers say. llhttp cannot know that,
    so after a HEAD the proxy must stop feeding body bytes to its parser.
    """
    # Step 1 (RFC 9110 §15): a status code is a three-digit integer in
    # 100..599. llhttp accepts "099".
    if not 100 <= status <= 599:
        raise RemoteProtocolError(f"server sent invalid status code {status}", BAD_GATEWAY)
    if version not in _SUPPORTED_VERSIONS and not minor_version_above(version):
        # HTTP/1.2 to 1.9 are read as HTTP/1.1 (RFC 9112 §2.6), as HAProxy
        # reads them; the proxy then answers the client in HTTP/1.1. Other
        # majors (0.9, 2.0) are not HTTP/1.x framing and stay refused.
        raise RemoteProtocolError(f"server sent unsupported HTTP version {version}",
                                  BAD_GATEWAY)

    # Step 2 (RFC 9112 §6.3 item 1): HEAD responses, 1xx, 204 and 304 end at
    # the end of the head; a Content-Length in a 304 or an answer to HEAD
    # describes the representation and is passed on untouched. A 1xx or 204
    # may have none (RFC 9110 §8.6): it is removed.
    if status < 200 or status == 204:
        return NO_BODY_NO_LENGTH
    if request_method == _HEAD:
        # The fields are passed on: a Transfer-Encoding other than chunked
        # is refused as for a body (HAProxy answers 502 too), so that no
        # client or cache down the line reads a coding the proxy did not.
        transfer_encoding = _framing_fields(headers, BAD_GATEWAY, False)[1]
        if transfer_encoding is not None:
            _check_transfer_encoding(transfer_encoding, BAD_GATEWAY)
        return NO_BODY
    if status == 304:
        return NO_BODY
    # Step 3 (RFC 9112 §6.3 item 2): a 2xx to CONNECT switches to a tunnel.
    if request_method == _CONNECT and status < 300:
        return NO_BODY

    # Step 4: one pass over the fields (RFC 9112 §6.3 item 5, as for requests).
    content_length, transfer_encoding = _framing_fields(headers, BAD_GATEWAY, False)

    if transfer_encoding is not None:
        # Step 5 (RFC 9112 §6.1): Transfer-Encoding in HTTP/1.0 is faulty framing.
        if version == "1.0":
            raise RemoteProtocolError("server sent Transfer-Encoding in HTTP/1.0",
                                      BAD_GATEWAY, b"transfer-encoding")
        # Step 6 (RFC 9112 §6.3 item 3): refused, as for requests (see there).
        if content_length is not None:
            raise RemoteProtocolError("server sent both Content-Length and "
                                      "Transfer-Encoding", BAD_GATEWAY, b"content-length")
        # Step 7 (RFC 9112 §6.3 item 4) lets a response whose final coding is
        # not chunked run until close. haply relays only plain "chunked"
        # (it re-emits the header itself), so any other coding is a 502: the
        # same refusal as for requests, and servers compress with
        # Content-Encoding, not with transfer codings.
        _check_transfer_encoding(transfer_encoding, BAD_GATEWAY)
        return CHUNKED_BODY

    # Step 8 (RFC 9112 §6.3 item 6): a valid Content-Length gives the length.
    if content_length is not None:
        return _LENGTHS.get(content_length) or _length(content_length)

    # Step 9 (RFC 9112 §6.3 item 8): otherwise the body runs until the server
    # closes; the client connection must then close too.
    return UNTIL_CLOSE_BODY


def _framing_fields(headers: Headers, status: int,
                    request: bool) -> tuple[int | None, list[bytes] | None]:
    """One pass over the fields: the Content-Length value and the TE values.

    Names are compared by length first, so most fields cost one len().
    """
    content_length: int | None = None
    transfer_encoding: list[bytes] | None = None
    host: bytes | None = None
    for name, value in headers:
        size = len(name)
        if size == 14 and name.lower() == b"content-length":
            # RFC 9110 §8.6 lets a recipient collapse identical duplicates
            # ("Content-Length: 42, 42" or two equal fields) or refuse them.
            # haply refuses: llhttp already refuses every duplicate (pinned in
            # the httptools test), so collapsing here would be code that never
            # runs, and forwarding both copies is exactly how a desync starts.
            if content_length is not None:
                length = _parse_content_length(value, status)
                reason = ("duplicate Content-Length" if length == content_length
                          else "duplicate Content-Length with different values")
                raise RemoteProtocolError(reason, status, b"content-length")
            # Plain digits, fewer than 19 (always below the maximum): the
            # usual case needs none of the checks' work.
            content_length = int(value) if value.isdigit() and \
                len(value) < MAX_CONTENT_LENGTH_DIGITS else _parse_content_length(value, status)
        elif size == 17 and name.lower() == b"transfer-encoding":
            if transfer_encoding is None:
                transfer_encoding = [value]
            else:
                transfer_encoding.append(value)
        elif size == 4 and request and name.lower() == b"host":
            # Not framing, but it needs the same pass. RFC 9112 §3.2: more than
            # one Host is a 400; HAProxy also refuses differing values and
            # keeps one of identical copies, so identical ones pass here.
            if host is not None and value.strip(_OWS).lower() != host:
                raise RemoteProtocolError("several Host fields with different values",
                                          400, b"host")
            host = value.strip(_OWS).lower()
    return content_length, transfer_encoding


def _parse_content_length(value: bytes, status: int) -> int:
    """Content-Length = 1*DIGIT (RFC 9110 §8.6): no sign, no list, no spaces inside."""
    digits = value.strip(_OWS)
    if not digits:
        raise RemoteProtocolError("empty Content-Length", status, b"content-length")
    if not digits.isdigit():  # ASCII digits only for bytes; refuses +, -, 0x, "1, 1"
        raise RemoteProtocolError("Content-Length is not a decimal number", status,
                                  b"content-length")
    if len(digits) > MAX_CONTENT_LENGTH_DIGITS:
        digits = digits.lstrip(b"0") or b"0"
        if len(digits) > MAX_CONTENT_LENGTH_DIGITS:
            raise RemoteProtocolError("Content-Length too long", status, b"content-length")
    length = int(digits)
    if length > MAX_CONTENT_LENGTH:
        raise RemoteProtocolError("Content-Length too large", status, b"content-length")
    return length


def _check_transfer_encoding(values: list[bytes], status: int) -> None:
    """Accept exactly one transfer coding, "chunked" (any case), or raise.

    RFC 9112 §6.1: the codings of all Transfer-Encoding fields form one list,
    in order. Refused: a final coding other than chunked (RFC 9112 §6.3 item 4:
    400), chunked more than once (RFC 9112 §7.1: "MUST NOT apply chunked more
    than once"), empty elements and junk such as ",chunked", "chunked;x",
    "x chunked" (RFC 9110 §5.6.1 tolerates empty list elements, but parsers
    disagree on them, a classic desync; no real client sends them). Other
    codings before a final chunked ("gzip, chunked") are valid HTTP but a
    server that reads the list differently desynchronises, so haply relays
    only plain chunked and answers 501 (RFC 9112 §6.1, coding not
    understood); HAProxy 2.6 refuses them too (with 422).
    """
    joined = values[0] if len(values) == 1 else b",".join(values)
    elements = [element.strip(_OWS).lower() for element in joined.split(b",")]
    if elements == [_CHUNKED]:
        return  # the only accepted form, checked first: the hot path
    if elements[-1] != _CHUNKED:
        raise RemoteProtocolError("Transfer-Encoding does not end with chunked", status,
                                  b"transfer-encoding")
    if _CHUNKED in elements[:-1]:
        raise RemoteProtocolError("Transfer-Encoding applies chunked more than once",
                                  status, b"transfer-encoding")
    if any(not element or not _is_token(element) for element in elements):
        raise RemoteProtocolError("malformed Transfer-Encoding list", status,
                                  b"transfer-encoding")
    raise RemoteProtocolError("transfer coding other than chunked",
                              501 if status != BAD_GATEWAY else status,
                              b"transfer-encoding")


# ------------------------------------------------------------ head size limits


def head_too_large(url_size: int, response: bool = False) -> RemoteProtocolError:
    """The error for a head over MAX_HEAD_SIZE; the proxy raises it.

    The proxy counts bytes fed to httptools until on_headers_complete and
    calls this once the count passes MAX_HEAD_SIZE (it must not wait for the
    head to end: that is the point of the limit). url_size is the length of
    the URL received so far: if it alone is over the limit the fault is 414.
    """
    if response:
        return RemoteProtocolError(f"response head larger than {MAX_HEAD_SIZE} bytes",
                                   BAD_GATEWAY)
    if url_size >= MAX_HEAD_SIZE:
        return RemoteProtocolError(f"request URI longer than {MAX_HEAD_SIZE} bytes",
                                   STATUS_URI_TOO_LONG)
    return RemoteProtocolError(f"request head larger than {MAX_HEAD_SIZE} bytes",
                               STATUS_HEAD_TOO_LARGE)


def too_many_headers(response: bool = False) -> RemoteProtocolError:
    """The error for a head with more than MAX_HEADERS fields; the proxy raises it."""
    if response:
        return RemoteProtocolError(f"response has more than {MAX_HEADERS} header fields",
                                   BAD_GATEWAY)
    return RemoteProtocolError(f"request has more than {MAX_HEADERS} header fields",
                               STATUS_HEAD_TOO_LARGE)


# ---------------------------------------------------------------- request line

# CTLs, SP, DEL and bytes above 0x7F in a request target are refused by llhttp
# (pinned in the httptools test). Of the printable characters RFC 3986 leaves
# out of a URI, HAProxy 2.6 forwards `"<>\\^`{|}` (browsers send some of them
# unescaped) and refuses only the fragment mark: a fragment is never sent on
# the wire (RFC 9112 §3.2), and HAProxy answers 400 to "GET /a#b".
_FRAGMENT_MARK = b"#"
_DEFAULT_PORTS = {b"http": b":80", b"https": b":443"}


def check_protocol(head: bytes) -> None:
    """Refuse (400) a request line whose protocol is not HTTP, as HAProxy
    does: llhttp also takes `RTSP/1.0`, which would otherwise reach a server
    as written. `head` starts at the request (empty lines before it allowed);
    a head that does not hold the whole request line yet is not judged."""
    start = 0
    while head.startswith(b"\r\n", start):
        start += 2
    end = head.find(b"\r\n", start)
    if end >= 0 and not _HTTP_PROTOCOL.fullmatch(head, max(start, end - 9), end):
        raise RemoteProtocolError("the request line's protocol is not HTTP", 400)


def extension_method(head: bytes) -> tuple[bytes, bytes | None] | None:
    """(method, the head from the space after it) for a request that llhttp
    refused for its method, when that method is a token (RFC 9110 §9.1):
    llhttp knows a fixed list of methods, HAProxy 2.6 forwards any token
    ("BAN", "get"). (what came of the method, None) when the space after it
    has not come yet; None when it is not a token. `head` starts where the
    request does; the empty lines llhttp skips before a request may precede
    it."""
    start = len(head) - len(head.lstrip(b"\r\n"))
    end = head.find(b" ", start)
    method = head[start:end] if end >= 0 else head[start:]
    if not method or method.translate(None, TCHAR):
        return None
    return method, head[end:] if end >= 0 else None


def minor_version_above(version: str) -> bool:
    """Whether an HTTP/1.x version is above 1.1 (llhttp, lenient on versions,
    gives "1.2" to "1.9"). RFC 9112 §2.6: a recipient processes such a message
    as HTTP/1.1, the highest minor version it speaks; HAProxy does too."""
    return version[:2] == "1." and version > "1.1"


_HTTP_PROTOCOL = re.compile(rb" HTTP/[0-9]\.[0-9]")


def check_request_target(url: bytes, headers: Headers) -> None:
    """Refuse (400) a request target HAProxy refuses: one with a fragment,
    an absolute form with a query but no path, and an absolute form (RFC
    9112 §3.2.2) whose host is not the one the Host field names; rules that read Host and a server that reads the
    target must not be told two different hosts. A default port (`:80` for
    http, `:443` for https) and user information do not count."""
    if _FRAGMENT_MARK in url:
        raise RemoteProtocolError("invalid character in request target: '#'", 400)
    if url[:1] == b"/":
        return
    scheme, separator, rest = url.partition(b"://")
    if not separator:
        return  # "*", or a CONNECT's host:port
    authority = rest.partition(b"/")[0]
    if b"?" in authority:
        # A query right after the authority ("http://h?q"), which RFC 3986
        # allows but HAProxy 2.6 refuses: a server behind it never sees one.
        raise RemoteProtocolError("invalid request target: query without path", 400)
    # An empty port is the default one (RFC 3986 §6.2.3), as HAProxy takes it.
    authority = authority.rpartition(b"@")[2].lower().removesuffix(b":")
    host = next((value.strip(_OWS).lower() for name, value in headers
                 if len(name) == 4 and name.lower() == b"host"), None)
    if host is None or not authority:  # HAProxy compares no empty authority either
        return
    default_port = _DEFAULT_PORTS.get(scheme.lower())
    if default_port is not None:
        authority = authority.removesuffix(default_port)
        host = host.removesuffix(default_port)
    if authority != host:
        raise RemoteProtocolError("the request target names another host than the Host field",
                                  400, b"host")


_CONNECT_DEFAULT_PORTS = (b"80", b"443")


def connect_framing(url: bytes, headers: Headers, body: Framing) -> Framing:
    """What a CONNECT request may be, as HAProxy 2.6 takes it; 400 otherwise.

    Its target is the authority form, host and port (RFC 9112 §3.2.3); with
    a Host field, both name the same host: the Host field's port is the
    target's, and a Host without port matches a target on port 80 or 443
    (a tunnel has no scheme to say which is the default; HAProxy takes
    either). A CONNECT has no content (RFC 9110 §9.3.6): what follows its
    head is the tunnel's, which llhttp keeps for it whatever a framing field
    says. So a Content-Length over 0 is not sent on, where the server would
    wait for a body it never gets, and a Transfer-Encoding is refused: a
    server reading a chunked body there would take tunnel bytes for HTTP.
    `body` is the framing request_framing gave."""
    authority = url.partition(b"/")[0].rpartition(b"@")[2].lower()
    name, colon, port = authority.rpartition(b":")
    if not colon or not name or not port.isdigit():
        raise RemoteProtocolError("CONNECT target is not a host and port", 400)
    host = next((value.strip(_OWS).lower() for field, value in headers
                 if len(field) == 4 and field.lower() == b"host"), None)
    if host is not None and host != authority and not (
            host == name and port in _CONNECT_DEFAULT_PORTS):
        raise RemoteProtocolError("the request target names another host than the Host field",
                                  400, b"host")
    if body.kind == CHUNKED:
        raise RemoteProtocolError("Transfer-Encoding in a CONNECT request", 400,
                                  b"transfer-encoding")
    if body.kind == LENGTH and body.length:
        return NO_BODY_NO_LENGTH
    return body


def is_websocket_upgrade(headers: Iterable[tuple[bytes, bytes]]) -> bool:
    """Whether an upgrade request asks for websocket (RFC 6455 §4.1) and, if
    so, carries its Sec-WebSocket-Key; RemoteProtocolError (400) when it does
    not, as HAProxy refuses it."""
    websocket = has_key = False
    for name, value in headers:
        lname = name.lower()
        if lname == b"upgrade":
            websocket = websocket or any(token.strip().lower() == b"websocket" for token in value.split(b","))
        elif lname == b"sec-websocket-key":
            has_key = True
    if websocket and not has_key:
        raise RemoteProtocolError("websocket upgrade without Sec-WebSocket-Key", 400)
    return websocket


def accepts_websocket(headers: Iterable[tuple[bytes, bytes]]) -> bool:
    """Whether a 101 answer to a websocket upgrade has its Sec-WebSocket-Accept
    (RFC 6455 §4.2.2); HAProxy answers 502 for one that has not."""
    return any(name.lower() == b"sec-websocket-accept" for name, _ in headers)


# ---------------------------------------------------------------- header fields

# RFC 9110 §5.6.2 tchar: the bytes a field name may contain.
TCHAR = (b"!#$%&'*+-.^_`|~0123456789"
         b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
# RFC 9110 §5.5 field-value: VCHAR, obs-text, SP and HTAB. Everything else
# (NUL, CR, LF and the other CTLs, DEL) is invalid.
_VALUE_OK = bytes([0x09, 0x20]) + bytes(range(0x21, 0x7F)) + bytes(range(0x80, 0x100))


def _is_token(data: bytes) -> bool:
    return bool(data) and not data.translate(None, TCHAR)


def validate_header_fields(headers: Headers, status: int = 400) -> None:
    """Refuse fields that are not valid HTTP/1.1 (RFC 9110 §5, RFC 9112 §5).

    Checks: empty name, non-token name (this covers whitespace before the
    colon), CR/LF/NUL/CTL/DEL in a value, and a value starting with SP or HTAB
    (what an obs-fold continuation line would leave, RFC 9112 §5.2).

    llhttp, or haply.http.repair for a head llhttp refused, already refuses
    every one of these on parsed input (pinned in the httptools test) but
    control characters in values, which HAProxy forwards: the proxy does not
    call this on fields it parsed. It
    exists for fields that did not come through the parser: values built from
    configuration at run time, and any future lenient parser mode. Each check
    is a bytes.translate, a loop in C.
    """
    for name, value in headers:
        if not name:
            raise RemoteProtocolError("empty header name", status)
        if name.translate(None, TCHAR):
            raise RemoteProtocolError("invalid character in header name", status, name)
        if value.translate(None, _VALUE_OK):
            raise RemoteProtocolError("invalid character (CR, LF, NUL or control) in "
                                      "header value", status, name)
        if value[:1] in (b" ", b"\t"):
            raise RemoteProtocolError("header value starts with whitespace (obs-fold)",
                                      status, name)


# ------------------------------------------------------------------ keep-alive

# `http_connection_mode` in the config model, set by option http-keep-alive,
# option http-server-close and option httpclose (the last one named wins).
KEEP_ALIVE: Final = "keep-alive"
SERVER_CLOSE: Final = "server-close"
CLOSE: Final = "close"
_STRENGTH = {KEEP_ALIVE: 0, SERVER_CLOSE: 1, CLOSE: 2}


def connection_modes(frontend_mode: str, backend_mode: str) -> tuple[str, str]:
    """(client side mode, server side mode) for a frontend/backend pair.

    The manual's section 4 matrix says the stronger of the two modes applies
    (keep-alive < server-close < close). For the client side, "option
    httpclose" reads: "Only the frontend is considered for client connections
    while the frontend and the backend are considered for server ones", and
    HAProxy 2.6 behaves so: with httpclose in the backend only, the client
    connection stays open. server-close never closes the client side.
    """
    for mode in (frontend_mode, backend_mode):
        if mode not in _STRENGTH:
            raise ValueError(f"unknown HTTP connection mode {mode!r}")
    server_mode = max(frontend_mode, backend_mode, key=_STRENGTH.__getitem__)
    client_mode = CLOSE if frontend_mode == CLOSE else KEEP_ALIVE
    return client_mode, server_mode


def connection_options(headers: Headers) -> frozenset[bytes]:
    """The lower-cased connection options of all Connection fields (RFC 9110 §7.6.1)."""
    options: set[bytes] = set()
    for name, value in headers:
        if len(name) == 10 and name.lower() == b"connection":
            for option in value.lower().split(b","):
                option = option.strip(_OWS)
                if option:
                    options.add(option)
    return frozenset(options)


def peer_wants_keep_alive(version: str, options: frozenset[bytes]) -> bool:
    """RFC 9112 §9.3: HTTP/1.1 persists unless "close"; HTTP/1.0 only with "keep-alive"."""
    if b"close" in options:
        return False
    if version == "1.1":
        return True
    return version == "1.0" and b"keep-alive" in options


def keep_alive(version: str, headers: Headers, mode: str,
               framing: Framing | None = None) -> bool:
    """May this connection carry another message after the current exchange?

    Used for both sides:
      client side: keep_alive(request version, request headers, client mode,
                   response framing) -> keep the client connection open.
      server side: keep_alive(response version, response headers, server mode,
                   response framing) -> return the server connection to the pool.

    Observed HAProxy 2.6 semantics: in keep-alive mode the client connection
    stays open even when the server says "Connection: close" (haply opens a
    new server connection next time); a response that runs until close ends
    both. "server-close" closes the server side only, "close" both.
    """
    if framing is not None and framing.kind == UNTIL_CLOSE:
        return False
    if mode == CLOSE:
        return False
    return peer_wants_keep_alive(version, connection_options(headers))


def server_keep_alive(server_mode: str) -> bool:
    """Whether haply asks the server to keep the connection (before any answer)."""
    return server_mode == KEEP_ALIVE


__all__ = [
    "CHUNKED", "CHUNKED_BODY", "CLOSE", "Framing", "HAPROXY_BUFSIZE", "HAPROXY_MAXHDR",
    "HAPROXY_MAXREWRITE", "KEEP_ALIVE", "LENGTH", "MAX_CONTENT_LENGTH", "MAX_HEADERS",
    "MAX_HEAD_SIZE", "NONE", "NO_BODY", "SERVER_CLOSE", "STATUS_HEAD_TOO_LARGE",
    "STATUS_URI_TOO_LONG", "TCHAR", "UNTIL_CLOSE", "UNTIL_CLOSE_BODY",
    "check_request_target", "connect_framing", "extension_method", "connection_modes", "connection_options", "head_budget", "head_too_large",
    "keep_alive", "peer_wants_keep_alive", "request_framing", "response_framing",
    "server_keep_alive", "set_limits", "too_many_headers", "validate_header_fields",
]
