"""Who broke the HTTP rules: the peer (remote) or haply itself (local).

The split follows h11: a `RemoteProtocolError` means the bytes we received are
not acceptable HTTP, so the connection they came on ends in an error response
(`status_hint`) and a counter moves; a `LocalProtocolError` means haply's own
code or configuration asked for something illegal (a bug or a config mistake),
which is logged as ours, never blamed on a client or a server.

`status_hint` is the status haply answers to the *client*:

    client broke the rules  -> 400, 408, 413, 414, 431, 501, 505
    server broke the rules  -> 502 (the client did nothing wrong)

`message` names exactly what was wrong ("duplicate Content-Length with
different values") so that logs and the runtime API's `show errors` can say
it; `field` optionally names the header involved.
"""

from __future__ import annotations

# Status answered to the client when a server's response is unacceptable: the
# client's request was fine, the gateway got garbage (RFC 9110 §15.6.3).
BAD_GATEWAY = 502


class ProtocolError(Exception):
    """Base of both kinds; `status_hint` is what to answer to the client."""

    def __init__(self, message: str, status_hint: int = 400, field: bytes | None = None):
        super().__init__(message)
        self.message = message
        self.status_hint = status_hint
        self.field = field

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r}, status_hint={self.status_hint})"


class RemoteProtocolError(ProtocolError):
    """The peer sent something HTTP forbids or haply refuses (smuggling, limits)."""


class LocalProtocolError(ProtocolError):
    """haply itself asked for something illegal: a bug or an invalid configuration."""

    def __init__(self, message: str, status_hint: int = 500, field: bytes | None = None):
        super().__init__(message, status_hint, field)


__all__ = ["BAD_GATEWAY", "LocalProtocolError", "ProtocolError", "RemoteProtocolError"]
