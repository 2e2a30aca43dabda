"""Trailer fields: the fields after the last chunk of a chunked body (RFC 9112 §7.1.2).

What HAProxy 2.6 does with them between two HTTP/1 sides (observed, and
compared in tests/interop/test_trailers_oracle.py), and haply with it:

- A chunked request's trailers reach the server, a chunked response's the
  client, after the last chunk, each field written as the heads' fields are:
  name lower-cased, ": ", the value without the spaces around it.
- Every field goes on, those that would be hop-by-hop or framing fields in a
  head included (Connection, Keep-Alive, TE, Content-Length, Host...): in a
  trailer section they act on nothing. A Connection field there does not
  close the connection either. One exception, where HAProxy reads the
  section's framing fields as a head's: a Content-Length next to a
  Transfer-Encoding is dropped. (HAProxy also merges identical
  Content-Length fields and refuses a section with a Transfer-Encoding not
  ending in chunked or with differing Content-Lengths; llhttp, which reads
  the section for haply, refuses all of these but a response's
  Transfer-Encoding ending in chunked, and a request's Transfer-Encoding
  trailer altogether.)
- http-request / http-response rules (del-header, set-header...) work on
  the head only; trailers go on untouched.
- A compressed response keeps its server's trailers after its last chunk; a
  cached one is stored with them and served with them.
- The section has the head's limits: more than tune.http.maxhdr - 1 fields,
  or larger than the head budget, and the request is refused with 400 (the
  response with 502). HAProxy measures the size against its buffer, so the
  exact byte at which it refuses depends on what else the buffer held (the
  head, when it came in the same read); haply counts the section alone
  against MAX_HEAD_SIZE.

httptools reports a request's trailers through on_header, after
on_headers_complete. A response's fields are not reported one by one (the
proxy reads its head from the bytes), so the trailers of a response are read
back from its last bytes (`read_section`), once llhttp said they are valid.
"""

from __future__ import annotations

import re

from haply.http import framing
from haply.http.errors import BAD_GATEWAY, RemoteProtocolError

LAST_CHUNK = b"0\r\n\r\n"
_FIELD_NAME = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# The last chunk's line as llhttp takes it from a server: zeros, spaces
# (its one leniency there) and extensions; a field line never matches.
_LAST_CHUNK_LINE = re.compile(rb"0+[ \t]*(?:;.*)?", re.DOTALL)
Fields = list[tuple[bytes, bytes]]


def last_chunk(fields: Fields | None) -> bytes:
    """The end of a chunked body: the last chunk, then the trailer section."""
    if not fields:
        return LAST_CHUNK
    names = [name.lower() for name, _ in fields]
    # HAProxy reads a section's framing fields as a head's: with a
    # Transfer-Encoding among them, a Content-Length goes
    drop = b"content-length" if b"transfer-encoding" in names else None
    return b"0\r\n%s\r\n" % b"".join(b"%s: %s\r\n" % (name, value.strip(b" \t"))
                                    for name, (_, value) in zip(names, fields) if name != drop)


def section_error(count: int, size: int, status: int) -> RemoteProtocolError | None:
    """The refusal owed to a trailer section of `count` fields and `size`
    bytes so far, or None while it is within the head's limits."""
    if count > framing.MAX_HEADERS:
        return RemoteProtocolError(f"trailer section has more than {framing.MAX_HEADERS} fields",
                                   status)
    if size > framing.MAX_HEAD_SIZE:
        return RemoteProtocolError(f"trailer section larger than {framing.MAX_HEAD_SIZE} bytes",
                                   status)
    return None


def read_section(tail: bytes, whole: bool) -> Fields:
    """The trailer fields ending `tail`, the last bytes of a chunked body that
    llhttp read to its end; `whole`: tail holds the body from its start.

    Read backwards: every line from the final empty one up to the last
    chunk's is a field line. A field name is a token and a last-chunk line
    has none before a colon (a colon there can only be in a quoted extension,
    after ";"), so the first line that is not a field is the last chunk's.
    Raises RemoteProtocolError (502) for a section over the limits, or whose
    start is no longer in tail (it is then over the size limit too). Bytes
    that do not end so (a server that sent more after its answer) give no
    fields: what follows the answer is not read as its trailers."""
    fields: Fields = []
    if not tail.endswith(b"\r\n\r\n"):
        return fields
    end = len(tail) - 4  # where the last line before the empty one ends
    size = 2
    while True:
        cut = tail.rfind(b"\r\n", 0, end)
        if cut < 0 and not whole:
            break
        start = cut + 2 if cut >= 0 else 0
        line = tail[start:end]
        colon = line.find(b":")
        if colon <= 0 or not _FIELD_NAME.fullmatch(line, 0, colon):
            if _LAST_CHUNK_LINE.fullmatch(line):
                fields.reverse()
                return fields
            if whole:
                return []
            break
        fields.append((line[:colon], line[colon + 1:]))
        size += len(line) + 2
        error = section_error(len(fields), size, BAD_GATEWAY)
        if error is not None:
            raise error
        if cut < 0:
            return []
        end = cut
    raise RemoteProtocolError("trailer section larger than the bytes kept of it", BAD_GATEWAY)
