"""The answers a configuration writes itself: `http-request deny` and `http-error`.

Both take HAProxy 2.6's content options (manual 4.2, "http-error" and
"http-request deny"):

    [status|deny_status <code>] [content-type <type>]
    [default-errorfiles | errorfile <file> | errorfiles <name> | file <file> | string <str>]
    [hdr <name> <value>]...

and become, at load time, either the bytes of a whole response or None ("the
proxy's page for that status"), so nothing is read or formatted per request.
An `errorfile` is a whole response sent as it is; `file` and `string` are a body,
sent under a status line, the `hdr` fields, Content-Length and the
`content-type`, in the order and case HAProxy 2.6 writes them (observed).
`errorfiles NAME` sends the file an http-errors section has for the status.
`lf-file` and `lf-string` (log-format bodies) are refused with their name.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from haply.http.framing import head_budget
from haply.http.responses import framed, reason_phrase

# An errorfile or a body must fit in one buffer less the rewrite reserve
# (at HAProxy's default tune.bufsize and tune.maxrewrite, unless configured).
MAX_BYTES = head_budget()
PAYLOADS = ("errorfile", "errorfiles", "file", "string")
UNSUPPORTED = ("lf-file", "lf-string")
ONE_PAYLOAD = "give only one of default-errorfiles, errorfile, errorfiles, file and string"
FIELD_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # RFC 9110 token


class AnswerError(ValueError):
    pass


@dataclass(frozen=True)
class Answer:
    status: int | None
    response: bytes | None  # None: the proxy's page for the status
    default_errorfiles: bool = False
    closes: bool = False  # the response's end is the connection's (responses.framed)
    warning: str | None = None  # something to tell the operator, who may have meant otherwise


def parse_answer(words: list[str], what: str, status_words: tuple[str, ...],
                 read_errorfile, default_status: int | None = None,
                 limit: int = MAX_BYTES, error_sections=None) -> Answer:
    """The options of one deny or http-error line (conditions already cut off).

    read_errorfile(path) -> bytes reads and checks an errorfile (the parser's,
    so that both directives refuse the same files with the same words);
    error_sections maps the http-errors sections read so far to their files
    (`errorfiles NAME`: the section's file for the status).
    Without default_status, a status is required. A file body may take up to
    `limit` bytes (the head budget of the configured buffer size).
    """
    status = content_type = payload = None
    headers: list[tuple[str, str]] = []
    default = False
    i = 0
    while i < len(words):
        word = words[i]
        if word in status_words or word == "content-type" or word in PAYLOADS:
            if i + 1 >= len(words):
                raise AnswerError(f"'{what}': '{word}' expects a value")
            value = words[i + 1]
            i += 2
            if word in status_words:
                status = _status(value, what)
            elif word == "content-type":
                content_type = value
            else:
                if payload is not None or default:
                    raise AnswerError(f"'{what}': {ONE_PAYLOAD}")
                payload = (word, value)
        elif word == "hdr":
            if i + 2 >= len(words):
                raise AnswerError(f"'{what}': 'hdr' expects a field name and a value")
            name, value = words[i + 1], words[i + 2]
            i += 3
            if not FIELD_NAME.fullmatch(name):
                raise AnswerError(f"'{what}': invalid field name '{name}' after 'hdr'")
            if "%" in value or "\r" in value or "\n" in value:
                raise AnswerError(f"'{what}': 'hdr {name}' takes a plain value; log-format "
                                  "values are not supported by haply")
            headers.append((name.lower(), value))
        elif word == "default-errorfiles":
            if payload is not None:
                raise AnswerError(f"'{what}': {ONE_PAYLOAD}")
            default = True
            i += 1
        elif word in UNSUPPORTED:
            raise AnswerError(f"'{what} ... {word}' is not supported by haply: "
                              "use errorfile, errorfiles, file or string")
        else:
            expected = ", ".join((*status_words, "content-type", "default-errorfiles",
                                  *PAYLOADS, "hdr"))
            raise AnswerError(f"unexpected '{word}' in '{what}': expected one of {expected}, "
                              "then optionally if|unless CONDITION")
    if status is None:
        if default_status is None:
            raise AnswerError(f"'{what}' expects '{status_words[0]} <code>'")
        status = default_status
    if payload is None:
        if content_type is not None or headers:
            raise AnswerError(f"'{what}': content-type and hdr need a body: add file or string")
        return Answer(status, None, default)
    kind, argument = payload
    if kind in ("errorfile", "errorfiles") and (content_type is not None or headers):
        raise AnswerError(f"'{what}': an {kind} is a whole response; content-type "
                          "and hdr go with file or string")
    if kind == "errorfiles":
        files = (error_sections or {}).get(argument)
        if files is None:
            raise AnswerError(f"'{what}': unknown http-errors section '{argument}'")
        response = files.get(status)
        if response is None:  # HAProxy warns too, and answers with no content (observed)
            return Answer(status, f"HTTP/1.1 {status} {reason_phrase(status)}\r\ncontent-length: 0\r\n\r\n"
                          .encode("latin-1"), warning=f"'{what}': status {status} is not declared in "
                          f"http-errors section '{argument}': the answer has no content")
        return Answer(status, response, closes=not framed(response))
    if kind == "errorfile":
        response = read_errorfile(argument)
        return Answer(status, response, closes=not framed(response))
    if content_type is None:
        raise AnswerError(f"'{what}': '{kind}' needs 'content-type <type>'")
    body = _read_body(argument, what, limit) if kind == "file" else argument.encode("utf-8")
    head = [f"HTTP/1.1 {status} {reason_phrase(status)}\r\n"]
    head += [f"{name}: {value}\r\n" for name, value in headers]
    head.append(f"content-length: {len(body)}\r\ncontent-type: {content_type}\r\n\r\n")
    return Answer(status, "".join(head).encode("latin-1") + body)


def _status(text: str, what: str) -> int:
    if not text.isdigit() or not 200 <= int(text) <= 599:
        raise AnswerError(f"'{what}': invalid status code '{text}': expected 200 to 599")
    return int(text)


def _read_body(path: str, what: str, limit: int) -> bytes:
    try:
        return read_limited(path, "file", limit)
    except AnswerError as exc:
        raise AnswerError(f"'{what}': {exc}") from None


def read_limited(path: str, label: str, limit: int = MAX_BYTES) -> bytes:
    """The bytes of a file read at load time (an errorfile, a body), at most
    `limit`; AnswerError names the file as `label 'path'` and says why not."""
    try:
        with open(path, "rb") as handle:
            data = handle.read(limit + 1)
    except OSError as error:
        raise AnswerError(f"cannot read {label} '{path}': {error.strerror}") from None
    if len(data) > limit:
        raise AnswerError(f"{label} '{path}' is larger than {limit} bytes "
                          "(tune.bufsize - tune.maxrewrite)")
    return data


__all__ = ["Answer", "AnswerError", "MAX_BYTES", "parse_answer", "read_limited"]
