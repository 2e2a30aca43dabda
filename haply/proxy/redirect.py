"""`redirect scheme|prefix|location`: answered by haply itself, byte for byte as
HAProxy 2.6 answers it (observed: status line, lower-case `content-length: 0`,
`location`, `cache-control: no-cache` except on the permanent 301 and 308, and
`connection: close` only when the client's request closes the connection).

Compiled once per frontend; a frontend without redirect rules pays one `is None`
test per request.
"""

from __future__ import annotations

from haply.config.model import Redirect
from haply.proxy.conditions import compile_rules

REASONS = {301: "Moved Permanently", 302: "Found", 303: "See Other",
           307: "Temporary Redirect", 308: "Permanent Redirect"}
# Permanent redirects may be cached; HAProxy marks the others no-cache.
CACHEABLE = frozenset({301, 308})


def compile_redirects(rules: tuple[Redirect, ...]):
    """[(predicate or None, Redirect)] in file order, or None without rules."""
    return compile_rules(rules)


def location(rule: Redirect, url: str, host: str | None) -> str:
    """The Location value for a request target (path and query) and Host."""
    if rule.kind == "location":
        return rule.target
    if "drop-query" in rule.options:
        url = url.split("?", 1)[0]
    if rule.kind == "scheme":
        value = f"{rule.target}://{host or ''}{url}"
    elif rule.target == "/":
        value = url  # `redirect prefix /`: the same path, as HAProxy writes it
    else:
        value = rule.target + url
    if "append-slash" in rule.options and not value.endswith("/"):
        value += "/"
    return value


def response(code: int, where: str, close: bool) -> bytes:
    head = [f"HTTP/1.1 {code} {REASONS.get(code, 'Found')}", "content-length: 0", f"location: {where}"]
    if code not in CACHEABLE:
        head.append("cache-control: no-cache")
    if close:
        head.append("connection: close")
    return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1", "replace")


__all__ = ["compile_redirects", "location", "response"]
