"""Cookie persistence: the server a client's cookie names, and the cookie fields
edited on the way in and out (HAProxy's `cookie` keyword, `server ... cookie V`).

Pure: a request's fields in, a server and rewritten fields out; a response head in,
an edited head out. The HTTP session calls it only for backends with a `cookie`
line, so other traffic pays nothing.

What each mode does, as HAProxy 2.6 does it (tests/interop/test_cookie_oracle.py
compares them request by request):

* every mode: a client cookie naming a server that is neither DOWN nor in
  maintenance sends the request there without balancing (a draining server still
  takes its persistent clients); any other request is balanced.
* insert: the response gets `Set-Cookie: NAME=VALUE; path=/` (plus domain,
  HttpOnly, Secure and attr parts) unless the client already had a valid cookie
  for the server that answered; the server's own NAME cookie is removed, unless
  `preserve`, which leaves it and inserts nothing. `postonly` inserts only into
  answers to POST. `nocache` adds `Cache-control: private` to an answer that a
  cache could store and that gets a cookie inserted. `indirect` also removes
  NAME from the Cookie field the server sees.
* rewrite: the server's own NAME cookie gets the server's value.
* prefix: the server's NAME cookie is sent as `VALUE~its value`; the client's
  `VALUE~` is read and removed before the request goes on.
* no mode (passive): only read; with `indirect`, a server's NAME cookie is
  removed when the client's was valid already.

The log's persistence flags (HAProxy's termination state, characters 3 and 4):
client side N none, I invalid, D names a server that is down, V valid; server
side N nothing done, I inserted, P provided by the server and left, R rewritten,
D deleted; "--" for a cookie line with neither mode nor indirect, as in HAProxy.

Known difference: a persistent request whose server is at its `maxconn` is
balanced instead of waiting in that server's queue (haply keeps one queue per
backend), and the answer then moves the client with a new cookie.
"""

from __future__ import annotations

from haply.config.model import CookiePersistence
from haply.http.headers import parse_fields
from haply.runtime.registry import ServerState

PREFIX_DELIMITER = b"~"
CACHE_CONTROL_PRIVATE = b"Cache-control: private\r\n"
# RFC 9110 15.1: status codes a cache may store without explicit freshness.
HEURISTICALLY_CACHEABLE = frozenset({200, 203, 204, 206, 300, 301, 308, 404, 405, 410, 414, 501})
UNCACHEABLE_DIRECTIVES = frozenset({b"private", b"no-cache", b"no-store", b"max-age=0",
                                    b"s-maxage=0"})


def cacheable(method: bytes, status: int, fields: list[tuple[bytes, bytes]]) -> bool:
    """Could a shared cache store this answer (RFC 9111 3, 4.2)? Only for GET and
    HEAD, a status cacheable by default, no Pragma or Cache-Control that forbids
    it, and freshness (max-age, s-maxage, Expires) or a validator (ETag,
    Last-Modified) to store it with; `public` makes it cacheable outright."""
    if method not in (b"GET", b"HEAD") or status not in HEURISTICALLY_CACHEABLE:
        return False
    public = fresh = validator = False
    for name, value in fields:
        lname = name.lower()
        if lname == b"cache-control":
            for directive in value.lower().split(b","):
                directive = directive.strip()
                if directive == b"public":
                    public = True
                elif directive in UNCACHEABLE_DIRECTIVES or directive.startswith(b"no-cache="):
                    return False
                elif directive.startswith((b"max-age", b"s-maxage")):
                    fresh = True
        elif lname == b"pragma" and value.strip().lower() == b"no-cache":
            return False
        elif lname == b"expires":
            fresh = True
        elif lname in (b"etag", b"last-modified"):
            validator = True
    return public or fresh or validator


class CookieRouting:
    """One backend's `cookie` line, compiled; `servers` is the registry's live
    list, so servers added or removed at run time are seen at once."""

    __slots__ = ("settings", "name", "servers", "mode", "strip_request", "set_cookie_tail",
                 "logs_flags")

    def __init__(self, settings: CookiePersistence, servers: list[ServerState]):
        self.settings = settings
        self.name = settings.name.encode()
        self.servers = servers
        self.mode = settings.mode
        # insert+indirect: the server never sees NAME (persistence is then the
        # proxy's business alone); prefix: it sees its own value back.
        self.strip_request = settings.mode == "prefix" or (
            settings.mode == "insert" and settings.indirect)
        tail = b"; path=/"
        for domain in settings.domains:
            tail += b"; domain=" + domain.encode()
        if settings.httponly:
            tail += b"; HttpOnly"
        if settings.secure:
            tail += b"; Secure"
        for attr in settings.attrs:
            tail += b"; " + attr.encode()
        self.set_cookie_tail = tail + b"\r\n"
        # HAProxy leaves the log's persistence flags at "--" for a cookie line
        # that only reads (no mode, no indirect), though it routes by it.
        self.logs_flags = settings.mode != "passive" or settings.indirect

    # ---------------------------------------------------------------- request

    def server_named(self, value: bytes) -> ServerState | None:
        text = value.decode("latin-1")
        for server in self.servers:
            config = server.config
            if config is not None and config.cookie == text:
                return server
        return None

    def on_request(self, headers: list[tuple[bytes, bytes]]
                   ) -> tuple[ServerState | None, str, list[tuple[bytes, bytes]] | None]:
        """(server to use or None, client flag, the fields to forward instead of
        `headers`, or None to forward them as they are)."""
        name = self.name
        found: bytes | None = None
        changed = False
        out: list[tuple[bytes, bytes]] = []
        for field_name, value in headers:
            if len(field_name) != 6 or field_name.lower() != b"cookie":
                out.append((field_name, value))
                continue
            kept: list[bytes] = []
            edited = False
            gap = False  # a pair was removed since the last kept one
            for part in value.split(b";"):
                key, equals, cookie = part.partition(b"=")
                if not equals or key.strip() != name:
                    kept.append(_joined(kept, part, gap))
                    gap = False
                    continue
                cookie = cookie.strip()
                if self.mode == "prefix":
                    server_value, delimiter, rest = cookie.partition(PREFIX_DELIMITER)
                    if found is None:
                        found = server_value if delimiter else b""
                    if delimiter:
                        part = part[:part.index(b"=") + 1] + rest
                        edited = True
                    kept.append(_joined(kept, part, gap))
                    gap = False
                    continue
                if found is None:
                    found = cookie
                if self.strip_request:
                    edited = gap = True
                else:
                    kept.append(_joined(kept, part, gap))
            if not edited:
                out.append((field_name, value))
            elif kept:
                out.append((field_name, b"".join(kept).rstrip()))
            changed = changed or edited
        if found is None:
            flag, server = "N", None
        else:
            server = self.server_named(found) if found else None
            if server is None:
                flag = "I"
            elif server.takes_persistent:
                flag = "V"
            else:
                flag, server = "D", None
        return server, flag, (out if changed else None)

    # --------------------------------------------------------------- response

    def edit_response(self, head: bytes, method: bytes, status: int, server: ServerState,
                      valid: bool) -> tuple[bytes, str]:
        """(the response head to send, server-side flag). `head` is the complete
        head as haply writes it to the client; `valid`: the client's cookie
        named the server that answered."""
        settings = self.settings
        name = self.name
        lines = head[:-4].split(b"\r\n")
        own = [i for i in range(1, len(lines)) if self._sets_our_cookie(lines[i])]
        config = server.config
        value = config.cookie.encode() if config is not None and config.cookie else None
        flag = "N"
        insert = False
        drop: set[int] = set()
        mode = self.mode
        if mode == "insert":
            if own and settings.preserve:
                flag = "P"
            else:
                if own:
                    drop.update(own)
                    flag = "D"
                insert = (value is not None and not valid
                          and (not settings.postonly or method == b"POST"))
        elif mode == "rewrite":
            if own and value is not None:
                for i in own:
                    lines[i] = self._with_value(lines[i], value)
                flag = "R"
        elif mode == "prefix":
            if own and settings.indirect and valid:
                drop.update(own)
                flag = "D"
            elif own and value is not None:
                for i in own:
                    lines[i] = self._with_value(lines[i], value + PREFIX_DELIMITER, keep=True)
                flag = "R"
        elif own:  # passive
            if settings.indirect and valid:
                drop.update(own)
                flag = "D"
            else:
                flag = "P"
        if not insert and not drop and flag != "R":
            return head, flag
        kept = [line for i, line in enumerate(lines) if i not in drop]
        tail = b""
        if insert:
            flag = "I"
            tail = b"Set-Cookie: " + name + b"=" + value + self.set_cookie_tail
            if settings.nocache and cacheable(method, status, parse_fields(head)):
                tail += CACHE_CONTROL_PRIVATE
        return b"\r\n".join(kept) + b"\r\n" + tail + b"\r\n", flag

    def _sets_our_cookie(self, line: bytes) -> bool:
        field_name, colon, value = line.partition(b":")
        if not colon or len(field_name) != 10 or field_name.lower() != b"set-cookie":
            return False
        return value.partition(b"=")[0].strip() == self.name

    @staticmethod
    def _with_value(line: bytes, value: bytes, keep: bool = False) -> bytes:
        """A Set-Cookie line with its value replaced (keep: prefixed) by value,
        its attributes (path, expiry ...) kept."""
        before, _, after = line.partition(b"=")
        old, semicolon, attributes = after.partition(b";")
        new = value + old.strip() if keep else value
        return before + b"=" + new + semicolon + attributes


def _joined(kept: list[bytes], part: bytes, gap: bool) -> bytes:
    """`part` as it follows the pairs kept so far. Where a pair was cut out the
    neighbours meet as "left; right" (HAProxy's spelling); elsewhere the
    client's own delimiter and spacing stay."""
    if not kept:
        return part.lstrip() if gap else part
    if gap:
        kept[-1] = kept[-1].rstrip()
        return b"; " + part.lstrip()
    return b";" + part
