"""`option http-restrict-req-hdr-names delete|reject`: request fields whose
name holds a character outside [A-Za-z0-9-] are removed, or the request is
refused with a 403, after the proxy's http-request rules (HAProxy manual).

Why it matters behind haply: a WSGI application (every OpenStack API) reads
`X_Forwarded-For` and `X-Forwarded-For` both as HTTP_X_FORWARDED_FOR, so a
client could slip in a field a rule or the proxy meant to control.

The steps sit at the end of a proxy's compiled http-request rules
(haply.proxy.router.compile_answers), where haply.proxy.conditions.first_answer
runs them: a "rewrite" step changes the request, a deny answers it.
"""

from __future__ import annotations

import re

from haply.config.model import DenyRule

# The characters a name may hold: anything else (llhttp already limits names
# to RFC 9110 tokens: _ . ! # $ % & ' * + ^ ` | ~) makes the field suspect.
_ALLOWED = re.compile(rb"[A-Za-z0-9-]+")


def suspect(request) -> bool:
    """Whether a field of the request has a name outside [A-Za-z0-9-]."""
    fullmatch = _ALLOWED.fullmatch
    return any(fullmatch(name) is None for name, _ in request.headers)


class DeleteSuspectFields:
    """`delete`: the request goes on without those fields."""

    action = "rewrite"  # applied in place by first_answer

    @staticmethod
    def apply(request) -> None:
        fullmatch = _ALLOWED.fullmatch
        kept = [field for field in request.headers if fullmatch(field[0]) is not None]
        if len(kept) != len(request.headers):
            request.headers = kept
            request.plain = False  # written from the fields, not as received
            request._header_map = None


def steps(policy: str) -> list:
    """(condition, step) pairs to append to a proxy's answering rules."""
    if policy == "delete":
        return [(None, DeleteSuspectFields())]
    if policy == "reject":  # HAProxy's deny: its 403 page, counted and logged as one
        return [(suspect, DenyRule(status=403))]
    return []


__all__ = ["DeleteSuspectFields", "steps", "suspect"]
