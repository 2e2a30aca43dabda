"""What a runtime API command answers, beyond plain text: an error, a
message of a given severity, an answer without the closing empty line.

The severity is what `set severity-output` shows before a message (HAProxy
prefixes messages, not dumps): an error is `err`, a remark such as "already
disabled" a `notice`, an answer that is a sentence rather than data `info`.
"""

from __future__ import annotations

ERR, NOTICE, INFO = 3, 5, 6
SEVERITY_NAMES = {0: "emerg", 1: "alert", 2: "crit", 3: "err", 4: "warning", 5: "notice",
                  6: "info", 7: "debug"}


class Unframed(str):
    """An answer HAProxy sends without the empty line that normally ends one
    (`add server` and `del server` messages, some parse errors)."""


class Message(str):
    """A sentence with a severity (text ends with a newline)."""

    severity = INFO


class Notice(Message):
    severity = NOTICE


class Failure(Message):
    """What a command that could not be done answers."""

    severity = ERR


class UnframedFailure(Unframed, Failure):
    pass


class UnframedMessage(Unframed, Message):
    pass


def with_severity(answer: str, output: str) -> str:
    """answer as a session with `set severity-output` OUTPUT receives it:
    a message starts with its severity (`[3]: ` or `[err]: `); dumps and
    empty answers are left alone."""
    if output == "none" or not isinstance(answer, Message) or not answer.strip():
        return answer
    label = str(answer.severity) if output == "number" else SEVERITY_NAMES[answer.severity]
    kind = Unframed if isinstance(answer, Unframed) else str
    return kind(f"[{label}]: {answer}")


class CommandError(Exception):
    """A command that cannot be done; the text is the answer."""

    def __init__(self, message: str, framed: bool = True):
        super().__init__(message)
        self.framed = framed
