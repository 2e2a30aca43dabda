"""Variables (`set-var`, `unset-var`, the `var()` fetch): named values kept
for a process, a client connection or one transaction (manual 2.8, 7.3.2).

A name is `SCOPE.NAME`. `proc` variables live as long as the worker;
`sess` ones on the client connection (its SampleContext), so every request
of a keep-alive connection sees them; `txn`, `req` and `res` ones on the
request, from its head to the end of its answer. (HAProxy frees `req`
variables once the request is analysed and `res` ones once the response is;
haply keeps them with the transaction, which only a rule that reads a `req`
variable in the response would see.)

Pure: the holders are the views the rules already have; a request or a
connection without variables carries none (the attribute is set at the first
`set-var`), so configurations that use none pay nothing.
"""

from __future__ import annotations

import re

SCOPES = ("proc", "sess", "txn", "req", "res")
_NAME = re.compile(r"[A-Za-z0-9_.]+")

# proc.* variables of this worker.
_process: dict[str, object] = {}


def parse_name(text: str) -> str:
    """A variable's name as written in the configuration, checked: ValueError
    saying why it is not one."""
    scope, dot, rest = text.partition(".")
    if not dot or scope not in SCOPES:
        raise ValueError(f"variable '{text}' needs a scope: proc., sess., txn., req. or res. "
                         "before its name (as in txn.host)")
    if not rest or not _NAME.fullmatch(rest):
        raise ValueError(f"variable '{text}': a name is made of letters, digits, '.' and '_'")
    return text


def _holder(view, name: str, create: bool) -> dict | None:
    """The dictionary that holds a variable of that name for view."""
    scope = name[:name.index(".")]
    if scope == "proc":
        return _process
    owner = getattr(view, "context", None) if scope == "sess" else view
    if owner is None:
        return None
    held = getattr(owner, "vars", None)
    if held is None and create:
        try:
            held = owner.vars = {}
        except AttributeError:  # a view that keeps no variables (a health check's)
            return None
    return held


def read(view, name: str):
    """The variable's value, None when it is not set."""
    held = _holder(view, name, False)
    return held.get(name) if held else None


def exists(view, name: str) -> bool:
    held = _holder(view, name, False)
    return bool(held) and name in held


def write(view, name: str, value) -> None:
    held = _holder(view, name, True)
    if held is not None:
        held[name] = value


def unset(view, name: str) -> None:
    held = _holder(view, name, False)
    if held:
        held.pop(name, None)


def clear_process() -> None:
    """Forget the proc.* variables (a new configuration starts without them)."""
    _process.clear()


def as_text(value) -> str | None:
    """What a header value, a log line or an acl reads of a sample or a
    variable: text as it is, an integer in decimal, a boolean as 1 or 0, an
    address in its usual form."""
    if value is None or value.__class__ is str:
        return value
    if value.__class__ is bool:
        return "1" if value else "0"
    return str(value)
