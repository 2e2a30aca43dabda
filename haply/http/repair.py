"""Message heads that llhttp refuses and HAProxy 2.6 reads, written anew.

llhttp, strict, refuses a few forms that HAProxy accepts from clients and
servers alike (observed with HAProxy 2.6, default options):

- a bare LF as line end, in the start line, in a field line, or as the empty
  line that ends the head: read as CRLF;
- tabs, or more than one space, between the parts of the start line: read as
  one space (a status line's reason phrase is kept as sent);
- obs-fold, a field line continued on the next line that starts with SP or
  HTAB (RFC 9112 §5.2): the continuation joins the field's value, each CR and
  LF of the line break becoming a space;
- control characters (DEL, and others but NUL, CR and LF) in a field value:
  kept as received.

One difference is kept on purpose: a NUL in a field value is refused, as
RFC 9110 §5.5 requires (refuse it or replace it with SP), where HAProxy
forwards it. A server written in C may read such a value as ending at the
NUL, a different field than the one haply's rules saw.

And refuses, as HAProxy does (400 for a request, 502 for an answer): a CR not
followed by LF, a continuation line right after the start line, whitespace
between a field name and its colon, a name that is not a token (RFC 9110
§5.1: control characters, spaces), an empty name, a line without colon, and
whitespace at the end of a request line.

The proxy parses with llhttp as before; only when llhttp refuses a head is it
given to `request_head` or `response_head`, which checks it by these rules and,
when it passes, returns it in the form llhttp reads (CRLF line ends, single
spaces, folded values joined, fields as `name: value`). The proxy then parses
that form again, with llhttp's leniency on field values on until the head is
read. A valid head never comes here: this costs nothing on the common path.

The proxy can read so only a head whose start it kept: one that began at the
start of a read. A request pipelined behind another in the same read keeps
llhttp's refusal.
"""

from __future__ import annotations

from typing import NamedTuple

import httptools

from haply.http.framing import TCHAR

_WS = b" \t"
_SP_HTAB = (b" ", b"\t")  # for a byte slice: b"" is in _WS


class HeadError(NamedTuple):
    """Where (offset in the bytes given) and why a head is refused."""
    position: int
    reason: str


class Head(NamedTuple):
    """A head in llhttp's form: `data` (ending with the empty line), and `end`
    the offset just past the original head."""
    data: bytes
    end: int


# A start line too far from the grammar to be repaired: llhttp's refusal, and
# its place, stand.
LEFT = HeadError(-1, "")


def request_head(data: bytes, start: int = 0, partial: bool = False) -> Head | HeadError | None:
    """The request head at data[start:] in llhttp's form, a HeadError, or None
    when the head has not ended yet (and nothing so far is refused).

    partial: a head not ended yet is given as far as it goes instead of None,
    its whole lines written anew and the rest as it came (tabs as spaces in a
    request line), so that llhttp can tell whether it refuses some of it
    (haply.admin.errors: the place of a fault)."""
    return _head(data, start, _request_line, partial)


def response_head(data: bytes, start: int = 0, partial: bool = False) -> Head | HeadError | None:
    """The same for a server's answer."""
    return _head(data, start, _status_line, partial)


def _request_line(line: bytes, at: int) -> bytes | HeadError:
    # "method target version", parts apart by SP or HTAB runs. A part holding
    # other bytes that do not belong there is left for llhttp to refuse.
    if line[-1:] in _SP_HTAB:
        return HeadError(at + len(line.rstrip(_WS)), "whitespace at the end of the request line")
    parts = [part for part in line.replace(b"\t", b" ").split(b" ") if part]
    if len(parts) != 3 or line[:1] in _SP_HTAB:
        return LEFT
    # The method is not given to llhttp as sent (see ExtensionMethodParser):
    # it is checked here.
    bad = parts[0].translate(None, TCHAR)
    if bad:
        return HeadError(at + line.find(bad[:1]), "invalid character in the method")
    return b" ".join(parts)


def _status_line(line: bytes, at: int) -> bytes | HeadError:
    # "version status reason": the reason phrase, which may hold spaces and
    # tabs, goes as sent.
    version = _word(line, 0)
    status_at = len(line) - len(line[len(version):].lstrip(_WS))
    status = _word(line, status_at)
    if not version or not status:
        return LEFT
    return b"%s %s %s" % (version, status, line[status_at + len(status):].lstrip(_WS))


def _word(line: bytes, start: int) -> bytes:
    """line[start:] up to its first SP or HTAB."""
    end = len(line)
    for separator in (b" ", b"\t"):
        found = line.find(separator, start, end)
        if found >= 0:
            end = found
    return line[start:end]


def _head(data: bytes, start: int, first_line, partial: bool = False) -> Head | HeadError | None:
    # Empty lines before the start line are skipped, as llhttp skips them
    # (any CR and LF there).
    start = len(data) - len(data[start:].lstrip(b"\r\n"))
    lines = []  # each: (offset of its first byte, offset of its end, its bytes)
    pos = start
    tail = None  # with partial, what follows the last whole line
    while True:
        lf = data.find(b"\n", pos)
        if lf < 0:
            cr = data.find(b"\r", pos)
            if 0 <= cr < len(data) - 1:
                return HeadError(cr + 1, "CR not followed by LF")
            if not partial:
                return None
            tail = data[pos:]
            if not lines:
                return Head(tail.replace(b"\t", b" "), len(data))
            if tail[:1] in _SP_HTAB:
                if len(lines) == 1:
                    return HeadError(pos, "a continuation line (obs-fold) right after the start line")
                tail = b""  # read with the line it continues, once whole
            break
        end = lf - 1 if lf > pos and data[lf - 1] == 13 else lf
        line = data[pos:end]
        cr = line.find(b"\r")
        if cr >= 0:  # the fault is the byte after it, where LF should be
            return HeadError(pos + cr + 1, "CR not followed by LF")
        if not line and lines:
            break
        lines.append((pos, end, line))
        pos = lf + 1

    line_start, _, line = lines[0]
    written = first_line(line, line_start)
    if written.__class__ is HeadError:
        return written
    out = [written + b"\r\n"]
    index = 1
    while index < len(lines):
        line_start, line_end, line = lines[index]
        if line[:1] in _SP_HTAB:
            return HeadError(line_start, "a continuation line (obs-fold) right after the start line")
        colon = line.find(b":")
        name = line if colon < 0 else line[:colon]
        bad = name.translate(None, TCHAR)
        if bad:
            at = line_start + next(i for i, byte in enumerate(name) if byte in bad)
            if not name.rstrip(_WS).translate(None, TCHAR):
                return HeadError(at, "whitespace between a field name and its colon")
            return HeadError(at, "invalid character in a field name")
        if colon < 0:
            return HeadError(line_end, "field line without colon")
        if not name:
            return HeadError(line_start, "empty field name")
        # Continuation lines join the value, their line breaks as spaces.
        last = index
        while last + 1 < len(lines) and lines[last + 1][2][:1] in _SP_HTAB:
            last += 1
        value = data[line_start + colon + 1:lines[last][1]]
        nul = value.find(b"\0")
        if nul >= 0:
            return HeadError(line_start + colon + 1 + nul, "NUL in a field value")
        if last != index:
            value = value.replace(b"\r", b" ").replace(b"\n", b" ")
        out.append(b"%s: %s\r\n" % (name, value.strip(_WS)))
        index = last + 1
    if tail is not None:
        out.append(tail)
        return Head(b"".join(out), len(data))
    out.append(b"\r\n")
    return Head(b"".join(out), lf + 1)


# ------------------------------------------------------- a head not whole yet

class _Quiet:
    """Parser callbacks that record nothing."""


def passes_llhttp(data: bytes, response: bool = False, lenient: bool = False) -> bool:
    """Whether llhttp takes these bytes (so far: more may follow)."""
    parser = (httptools.HttpResponseParser if response else httptools.HttpRequestParser)(_Quiet())
    parser.set_dangerous_leniencies(lenient_version=True, lenient_headers=lenient)
    try:
        parser.feed_data(data)
    except httptools.HttpParserUpgrade:
        return True
    except httptools.HttpParserError:
        return False
    return True


def refused(data: bytes, response: bool = False) -> bool:
    """Whether the proxy refuses these first bytes of a message, whatever
    follows: as it reads a head llhttp refuses, once written anew here, with
    GET in place of a request's method (llhttp knows a fixed list of them,
    HAProxy forwards any token). The proxy asks before it waits for the rest
    of a head; `show errors` asks where a fault is (haply.admin.errors)."""
    head = (response_head if response else request_head)(data, partial=True)
    if head is LEFT:
        # the start line as llhttp reads it, tabs as spaces (one byte for one)
        end = data.find(b"\n")
        line = data[:end if end >= 0 else len(data)]
        return not passes_llhttp(line.replace(b"\t", b" ") + data[len(line):], response)
    if head.__class__ is HeadError:
        return True
    text = head.data + data[head.end:]
    if response:
        return not passes_llhttp(text, True, lenient=True)
    space = text.find(b" ")
    method = text if space < 0 else text[:space]
    if method.translate(None, TCHAR) or method == b"CONNECT":  # llhttp frames CONNECT apart
        return not passes_llhttp(text, lenient=True)
    return space >= 0 and not passes_llhttp(b"GET" + text[space:], lenient=True)
