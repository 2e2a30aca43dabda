"""The bytes a mode tcp connection has sent so far, as samples (manual 7.3.5).

Pure. A payload sample reads an `InspectedKey` (the connection's addresses,
the bytes it holds and whether they are final) and answers (value, may_change):
value None is no sample; may_change says that more bytes could still give a
value, or another one, so that a condition that does not hold yet is a
"maybe" while the inspection goes on (haply.proxy.inspection). Once the
bytes are final (inspect-delay over, client closed, buffer full) nothing may
change any more.
"""

from __future__ import annotations

from typing import Callable

from haply.config.acl import READS_PAYLOAD
from haply.config.model import used_acls
from haply.proxy.connection import SourceKey
from haply.tls import client_hello as hello_reader
from haply.tls.client_hello import NEED_MORE


class InspectedKey(SourceKey):
    """A mode tcp connection while its first bytes are inspected."""

    __slots__ = ("payload", "final", "_hello", "_hello_size")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.payload = b""
        self.final = False
        self._hello = NEED_MORE
        self._hello_size = -1

    @classmethod
    def from_key(cls, key: SourceKey) -> "InspectedKey":
        view = cls(key.client_ip, key.client_port, key.local_ip, key.local_port)
        view.tracking = key.tracking
        return view

    def hello(self):
        """The ClientHello of the bytes so far (haply.tls.client_hello), read
        once for each size the bytes reach until it is known."""
        if self._hello is NEED_MORE and self._hello_size != len(self.payload):
            self._hello_size = len(self.payload)
            self._hello = hello_reader.client_hello(self.payload)
        return self._hello


PayloadSample = Callable[[InspectedKey], tuple[object, bool]]


def _answer(value) -> tuple[object, bool]:
    return (None, True) if value is NEED_MORE else (value, False)


def _from_hello(field: Callable) -> PayloadSample:
    def sample(view: InspectedKey):
        hello = view.hello()
        if hello is NEED_MORE:
            return None, True
        return (None if hello is None else field(hello)), False
    return sample


def _payload(argument: str) -> PayloadSample:
    """req.payload(OFFSET,LENGTH): LENGTH 0 takes all the bytes from OFFSET,
    which more bytes change."""
    offset, length = (int(part) for part in argument.split(","))
    if length == 0:
        return lambda view: ((view.payload[offset:] if len(view.payload) >= offset else None), True)

    def block(view: InspectedKey):
        data = view.payload
        if len(data) < offset + length:
            return None, True
        return data[offset:offset + length], False
    return block


_SAMPLES: dict[str, PayloadSample] = {
    "req.len": lambda view: (len(view.payload), True),
    "req.ssl_hello_type": lambda view: _answer(hello_reader.hello_type(view.payload)),
    "req.ssl_ver": lambda view: _answer(hello_reader.version(view.payload)),
    "req.ssl_sni": _from_hello(lambda hello: hello.server_name),
    "req.ssl_alpn": _from_hello(lambda hello: hello.alpn or None),
    "req.ssl_ec_ext": _from_hello(lambda hello: hello.elliptic_curves),
    "req.ssl_st_ext": _from_hello(lambda hello: hello.session_ticket),
}


def payload_sample(name: str, argument: str | None = None) -> PayloadSample:
    """The sample of a payload fetch (haply.config.acl.PAYLOAD_FETCHES and
    PAYLOAD_STRINGS; the parser checked the name and argument)."""
    if name == "req.payload":
        return _payload(argument or "0,0")
    return _SAMPLES[name]


def version_number(text: str) -> int:
    """An acl's MAJOR.MINOR version as req.ssl_ver gives it (3.1: 196609)."""
    major, _, minor = text.partition(".")
    return (int(major) << 16) | int(minor or 0)


# Stick rule patterns that read the connection's bytes (haply.proxy.counters).
PAYLOAD_KEYS = ("req.ssl_sni", "req_ssl_sni")


def reads_payload(proxy) -> bool:
    """Whether the proxy's acls, rules or stick patterns read the bytes a
    mode tcp connection sends (its sessions then inspect them first)."""
    return (any(acl.fetch in READS_PAYLOAD for acl in used_acls(proxy))
            or any(rule.pattern in PAYLOAD_KEYS for rule in proxy.stick_rules))
