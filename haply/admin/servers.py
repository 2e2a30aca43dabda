"""Building a server added at run time (`add server B/S ADDR [options]`).

Unlike HAProxy's own `add server`, haply honours the backend's `default-server`
and `defaults` lines: the server line is parsed exactly as if it had been written
at the end of the backend's section in the file the backend came from, so the
options mean the same thing they mean in the config file.
"""

from __future__ import annotations

import os
import re

from haply.config.diagnostics import Diagnostics
from haply.config.model import Proxy, Server

_SECTION = re.compile(r"^\s*(global|defaults|frontend|backend|listen|peers|resolvers|"
                      r"userlist|program|mailers|cache|ring|http-errors)\b")


def build_server(proxy: Proxy, name: str, address: str, options: list[str]) -> Server:
    """The Server the line `server NAME ADDRESS OPTIONS` would give inside proxy."""
    from haply.config import haproxy
    for word in [name, address, *options]:
        if any(c in word for c in "\n\r#") or not word:
            raise ValueError(f"invalid word {word!r} in server line")
    location = proxy.location
    line = " ".join(["server", name, address, *options])
    text = None
    inserted = 2
    if location.file and os.path.isfile(location.file):
        with open(location.file, encoding="utf-8", errors="replace") as handle:
            lines = handle.read().split("\n")
        start = location.line  # 1-based line of the section header
        if 0 < start <= len(lines):
            end = start
            while end < len(lines) and not _SECTION.match(lines[end]):
                end += 1
            lines.insert(end, "    " + line)
            inserted = end + 1
            text = "\n".join(lines)
    if text is None:
        # The file is gone: parse inside a bare backend (no defaults to honour).
        text = f"backend {proxy.name}\n    {line}\n"
    diagnostics = Diagnostics()
    try:
        config = haproxy.parse(text, location.file or "<runtime>", dict(os.environ), diagnostics)
    except Exception as exc:  # the parser's own error, reported to the operator
        raise ValueError(str(exc)) from None
    for item in diagnostics.errors:
        if item.location.line == inserted:
            raise ValueError(item.message)
    for parsed in config.proxies:
        if parsed.name == proxy.name:
            for server in parsed.servers:
                if server.name == name:
                    return server
    errors = "; ".join(d.message for d in diagnostics.errors)
    raise ValueError(errors or f"cannot parse server line '{line}'")

