"""HAProxy's line syntax: a file becomes lines of words, each word tied to file:line.

The rules come from HAProxy's configuration manual, sections 2.1 to 2.3, and were
checked against `haproxy -c` 2.6:

- a line is cut into words on unprotected spaces and tabs; an unprotected `#`
  starts a comment; there is no line continuation (a trailing backslash stays a
  backslash, as HAProxy keeps it);
- outside quotes and inside double quotes a backslash escapes the next character:
  `\\ ` `\\#` `\\\\` `\\'` `\\"` give the character itself (and `\\$` inside double
  quotes), `\\n` `\\r` `\\t` the control character, `\\xNN` the byte NN. A backslash
  before any other character is kept with it (`\\q` stays `\\q`, and so does `\\$`
  outside quotes), which is what HAProxy 2.6 does;
- double quotes ("weak quoting") keep blanks, `#` and `'`, and expand environment
  variables: `$NAME`, `${NAME}`, `${NAME-default}` (the default replaces an unset
  variable, not an empty one) and `${NAME[*]}` (the value's blank-separated parts
  become separate words). An unset variable without default expands to nothing.
  The pseudo-variables `${.FILE}` and `${.LINE}` name the current place;
- single quotes ("strong quoting") keep everything as written;
- quoted and unquoted parts next to each other form one word (`"a"b'c'` is `abc`).

Variables are not expanded outside double quotes: HAProxy 2.6 keeps `${X}` as
written there. haply does the same, so a file means the same thing to both
programs, but warns, because an unquoted `${X}` is almost always a mistake.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from haply.config.diagnostics import Diagnostics, Location

# Escapes that give back the character itself (manual 2.2, first table).
_PLAIN_ESCAPES = {" ": " ", "\t": "\t", "#": "#", "\\": "\\", "'": "'", '"': '"', "$": "$"}
_CONTROL_ESCAPES = {"n": "\n", "r": "\r", "t": "\t"}
_HEX = frozenset("0123456789abcdefABCDEF")
# Variable names: letters, digits and underscore, not starting with a digit
# (manual 2.3); pseudo-variables start with a dot.
_NAME_START = re.compile(r"[A-Za-z_.]")
_NAME_CHARS = re.compile(r"[A-Za-z0-9_]*")
_UNQUOTED_VARIABLE = re.compile(r"\$\{?[A-Za-z_]")
# A crypt(3) hash ($6$salt$..., $y$..., $2b$...) is not a variable reference.
_CRYPT_HASH = re.compile(r"\$[0-9a-z]{1,4}\$")


@dataclass(frozen=True, slots=True)
class Word:
    """One word of a line, after quotes and escapes were resolved.

    quoted is True when any part of the word was quoted or escaped: the parser
    uses it to tell an operator such as `{`, `!` or `||` from a quoted string that
    happens to read the same.
    """

    text: str
    location: Location
    quoted: bool = False

    def __str__(self) -> str:
        return self.text


@dataclass(frozen=True, slots=True)
class Line:
    words: tuple[Word, ...]
    location: Location

    @property
    def texts(self) -> tuple[str, ...]:
        return tuple(w.text for w in self.words)


class LexError(ValueError):
    """A line that cannot be cut into words; the message says where and why."""


def split_lines(
    text: str, filename: str, environ: Mapping[str, str], diagnostics: Diagnostics
) -> list[Line]:
    """All non-empty lines of a file. A line that cannot be read is reported in
    diagnostics and left out, so the rest of the file is still checked."""
    lines = []
    # A byte-order mark is an editor's encoding marker, not a character of the
    # first keyword.
    text = text.removeprefix("\ufeff")
    for number, raw in enumerate(text.split("\n"), start=1):
        location = Location(filename, number)
        try:
            words = split_words(raw.rstrip("\r"), location, environ)
        except LexError as error:
            diagnostics.error(location, str(error))
            continue
        if not _reads_addresses(words) and any(
                _UNQUOTED_VARIABLE.search(word) and not _CRYPT_HASH.match(word)
                for word in _strip_comment_and_quotes(raw).split()):
            diagnostics.warning(
                location,
                "environment variables are only expanded inside double quotes; "
                'write "${NAME}" to expand it (kept as written, as HAProxy does)',
            )
        if words:
            lines.append(Line(tuple(words), location))
    return lines


# Lines whose addresses HAProxy's address parser reads, expanding ${NAME}
# there even outside double quotes (haply.config.haproxy._host_port does too).
_ADDRESS_KEYWORDS = frozenset({"bind", "server", "peer", "log", "default-server"})


def _reads_addresses(words: list[Word]) -> bool:
    texts = [word.text for word in words[:2]]
    return bool(texts) and (texts[0] in _ADDRESS_KEYWORDS or texts == ["stats", "socket"])


def split_words(line: str, location: Location, environ: Mapping[str, str]) -> list[Word]:
    """Cut one line into words (see the module docstring for the rules)."""
    words: list[Word] = []
    current: list[str] = []
    in_word = False  # an empty "" still makes a word
    quoted = False
    i, n = 0, len(line)

    def finish() -> None:
        nonlocal current, in_word, quoted
        if in_word:
            words.append(Word("".join(current), location, quoted))
        current, in_word, quoted = [], False, False

    while i < n:
        c = line[i]
        if c in " \t":
            finish()
            i += 1
        elif c == "#":
            break
        elif c == "\\":
            start = i
            text, i = _escape(line, i, location, in_double=False)
            current.append(text)
            in_word = True
            quoted = quoted or text != line[start:i]
        elif c == "'":
            end = line.find("'", i + 1)
            if end < 0:
                raise LexError(f"unterminated single quote starting at column {i + 1}")
            current.append(line[i + 1 : end])
            in_word = quoted = True
            i = end + 1
        elif c == '"':
            i = _double_quoted(line, i + 1, location, environ, current, words)
            in_word = quoted = True
        else:
            current.append(c)
            in_word = True
            i += 1
    finish()
    return words


def _escape(line: str, i: int, location: Location, in_double: bool) -> tuple[str, int]:
    """Resolve the backslash at line[i]; return its text and the next index."""
    if i + 1 >= len(line):
        return "\\", i + 1  # a trailing backslash is kept (no line continuation)
    c = line[i + 1]
    if c == "$" and not in_double:
        # The manual's table lists \$ as an escape outside quotes too, but
        # HAProxy 2.6 keeps both characters there; haply does what HAProxy does.
        return "\\$", i + 2
    if c in _PLAIN_ESCAPES:
        return _PLAIN_ESCAPES[c], i + 2
    if c in _CONTROL_ESCAPES:
        return _CONTROL_ESCAPES[c], i + 2
    if c == "x":
        digits = line[i + 2 : i + 4]
        if len(digits) != 2 or not set(digits) <= _HEX:
            raise LexError(
                f"invalid hexadecimal escape '\\x{digits}' at column {i + 1}: "
                "expected two hexadecimal digits as in \\x41"
            )
        return chr(int(digits, 16)), i + 4
    return "\\" + c, i + 2


def _double_quoted(
    line: str,
    i: int,
    location: Location,
    environ: Mapping[str, str],
    current: list[str],
    words: list[Word],
) -> int:
    """Read a double-quoted part starting after its quote; return the index after
    the closing quote. `${NAME[*]}` may close the current word and start others,
    so the caller's `current` list and `words` are extended in place."""
    start = i - 1
    n = len(line)
    while i < n:
        c = line[i]
        if c == '"':
            return i + 1
        if c == "\\":
            text, i = _escape(line, i, location, in_double=True)
            current.append(text)
        elif c == "$":
            values, i = _variable(line, i, location, environ)
            current.append(values[0])
            for value in values[1:]:
                words.append(Word("".join(current), location, True))
                current[:] = [value]
        else:
            current.append(c)
            i += 1
    raise LexError(f"unterminated double quote starting at column {start + 1}")


def _variable(
    line: str, i: int, location: Location, environ: Mapping[str, str]
) -> tuple[list[str], int]:
    """Expand the variable whose `$` is at line[i]. Returns the list of words it
    produces (one unless `[*]` splits it) and the index after it."""
    column = i + 1
    braced = line.startswith("{", i + 1)
    j = i + 2 if braced else i + 1
    if not _NAME_START.match(line, j):
        raise LexError(
            f"invalid environment variable name at column {column}: expected a letter "
            "or '_' after '$' (write \\$ for a dollar sign)"
        )
    prefix = "." if line.startswith(".", j) else ""
    name = prefix + _NAME_CHARS.match(line, j + len(prefix)).group()
    if prefix and (not braced or name not in (".FILE", ".LINE")):
        raise LexError(
            f"unknown pseudo-variable '{name}' at column {column}: "
            "haply knows ${.FILE} and ${.LINE}"
        )
    j += len(name)
    default: str | None = None
    split = False
    if braced:
        if line.startswith("[*]", j):
            split = True
            j += 3
        if line.startswith("-", j):
            close = line.find("}", j)
            if close < 0:
                raise LexError(f"unterminated '${{' at column {column}: expected '}}'")
            default = line[j + 1 : close]
            j = close
        if not line.startswith("}", j):
            raise LexError(f"unterminated '${{' at column {column}: expected '}}'")
        j += 1
    if name == ".FILE":
        value: str | None = location.file
    elif name == ".LINE":
        value = str(location.line)
    else:
        value = environ.get(name)
    if value is None:
        value = default if default is not None else ""
    if split:
        parts = value.split()
        return (parts or [""]), j
    return [value], j


def _strip_comment_and_quotes(raw: str) -> str:
    """The unquoted, uncommented parts of a raw line (for the `${X}` warning)."""
    out = []
    i, n = 0, len(raw)
    while i < n:
        c = raw[i]
        if c == "\\":
            i += 2
            continue
        if c == "#":
            break
        if c in "'\"":
            end = raw.find(c, i + 1)
            while c == '"' and end > 0 and raw[end - 1] == "\\":
                end = raw.find(c, end + 1)
            if end < 0:
                break
            out.append(" ")
            i = end + 1
            continue
        out.append(c)
        i += 1
    return "".join(out)


def quote(text: str) -> str:
    """Write text as one word that `split_words` reads back unchanged.

    Used by `haply convert` style writers and by tests. Single quotes are the
    simplest form; a text containing a single quote or a control character uses
    double quotes with escapes instead.
    """
    if text and not any(c in text for c in " \t#'\"\\$\n\r") and text.isprintable():
        return text
    if "'" not in text and text.isprintable():
        return "'" + text + "'"
    out = ['"']
    for c in text:
        if c in '"\\$':
            out.append("\\" + c)
        elif c == "\n":
            out.append("\\n")
        elif c == "\r":
            out.append("\\r")
        elif c == "\t" or c == " " or c == "'" or c == "#":
            out.append(c)
        elif not c.isprintable() and ord(c) < 0x100:
            out.append(f"\\x{ord(c):02x}")
        else:
            out.append(c)
    out.append('"')
    return "".join(out)




# ------------------------------------------------------------- conditional blocks
#
# Manual 2.4: `.if COND` / `.elif COND` / `.else` / `.endif` nest and keep or drop
# the lines between them; `.notice`, `.warning`, `.alert` and `.diag` report a
# message. They act on whole lines before any section keyword is read, so they
# are applied here, after the words (and the variables in them) are known.

# The HAProxy release whose syntax haply follows, for version_atleast() and
# version_before(): the 2.6 branch it is checked against (`haproxy -v` here).
EMULATED_HAPROXY_VERSION = (2, 6, 12)
# feature() names that are true for haply: TLS comes from Python's ssl module,
# which is OpenSSL.
FEATURES = frozenset({"OPENSSL"})
CONDITIONAL_DIRECTIVES = (".if", ".elif", ".else", ".endif")
MESSAGE_DIRECTIVES = (".notice", ".warning", ".alert", ".diag")

_CONDITION_TOKEN = re.compile(r"\s*(&&|\|\||!|\(|\)|[A-Za-z_]+\(|[^\s()!&|]+)")


@dataclass
class _Block:
    parent_active: bool
    taken: bool  # a branch of this block was already kept
    seen_else: bool
    location: Location


def apply_conditions(lines: list[Line], environ: Mapping[str, str], diagnostics: Diagnostics) -> list[Line]:
    """The lines kept by the conditional blocks, with the message directives
    reported (.alert as an error, .warning and .notice as warnings; .diag only
    shows in HAProxy's diagnostic mode and is dropped)."""
    kept: list[Line] = []
    stack: list[_Block] = []
    active = True
    for line in lines:
        keyword = line.words[0].text
        args = [w.text for w in line.words[1:]]
        try:
            if keyword == ".if":
                value = active and evaluate_condition(args, environ)
                stack.append(_Block(active, value, False, line.location))
                active = value
            elif keyword in (".elif", ".else", ".endif"):
                if not stack:
                    raise LexError(f"'{keyword}' without a matching '.if'")
                block = stack[-1]
                if keyword == ".endif":
                    stack.pop()
                    active = block.parent_active
                elif block.seen_else:
                    raise LexError(f"'{keyword}' after '.else' in the block opened at {block.location}")
                elif keyword == ".elif":
                    active = block.parent_active and not block.taken and evaluate_condition(args, environ)
                    block.taken = block.taken or active
                else:
                    active = block.parent_active and not block.taken
                    block.taken = block.seen_else = True
            elif not active:
                continue
            elif keyword in MESSAGE_DIRECTIVES:
                message = " ".join(args)
                if keyword == ".alert":
                    diagnostics.error(line.location, f"alert: {message}")
                elif keyword != ".diag":
                    diagnostics.warning(line.location, f"{keyword[1:]}: {message}")
            else:
                kept.append(line)
        except LexError as error:
            diagnostics.error(line.location, str(error))
    for block in stack:
        diagnostics.error(block.location, "'.if' without a matching '.endif'")
    return kept


def evaluate_condition(words: list[str], environ: Mapping[str, str]) -> bool:
    """Manual 2.4: 0/1, predicates, !, parentheses, && over || (left to right)."""
    text = " ".join(words)
    tokens: list[str] = []
    i = 0
    while i < len(text):
        match = _CONDITION_TOKEN.match(text, i)
        if not match:
            break
        token = match.group(1)
        i = match.end()
        if token.endswith("(") and token != "(":
            depth, start = 1, i
            while i < len(text) and depth:
                depth += {"(": 1, ")": -1}.get(text[i], 0)
                i += 1
            if depth:
                raise LexError(f"unterminated '{token}' in condition")
            token += text[start:i]
        tokens.append(token)
    if not tokens:
        return False  # an empty condition is false
    position = 0

    def peek() -> str | None:
        return tokens[position] if position < len(tokens) else None

    def take() -> str:
        nonlocal position
        position += 1
        return tokens[position - 1]

    def disjunction() -> bool:
        value = conjunction()
        while peek() == "||":
            take()
            value = conjunction() or value  # evaluate both: errors are reported either way
        return value

    def conjunction() -> bool:
        value = unary()
        while peek() == "&&":
            take()
            value = unary() and value
        return value

    def unary() -> bool:
        token = peek()
        if token is None:
            raise LexError("condition ends too early")
        take()
        if token == "!":
            return not unary()
        if token == "(":
            value = disjunction()
            if peek() != ")":
                raise LexError("missing ')' in condition")
            take()
            return value
        return _term(token, environ)

    value = disjunction()
    if peek() is not None:
        raise LexError(f"unexpected '{peek()}' in condition")
    return value


def _term(token: str, environ: Mapping[str, str]) -> bool:
    if re.fullmatch(r"-?[0-9]+", token):
        return int(token) != 0
    match = re.fullmatch(r"([a-z_]+)\((.*)\)", token, re.S)
    if not match:
        raise LexError(
            f"unknown term '{token}' in condition: expected a number or one of defined(), feature(), "
            "streq(), strneq(), version_atleast(), version_before()"
        )
    name, argument = match.groups()
    args = argument.split(",")
    if name in ("streq", "strneq"):
        if len(args) != 2:
            raise LexError(f"{name}() takes two arguments")
        return (args[0] == args[1]) == (name == "streq")
    if name == "defined":
        return argument in environ
    if name == "feature":
        return argument in FEATURES
    if name in ("version_atleast", "version_before"):
        wanted = _version(argument)
        return (EMULATED_HAPROXY_VERSION >= wanted) == (name == "version_atleast")
    raise LexError(f"unknown predicate '{name}()' in condition")


def _version(text: str) -> tuple[int, ...]:
    main = text.split("-", 1)[0]
    if not re.fullmatch(r"[0-9]+(\.[0-9]+)*", main):
        raise LexError(f"invalid version '{text}': expected a form such as 2.4 or 2.6.12")
    parts = tuple(int(p) for p in main.split("."))
    return parts + (0,) * (3 - len(parts))


__all__ = [
    "CONDITIONAL_DIRECTIVES", "LexError", "Line", "MESSAGE_DIRECTIVES", "Word", "apply_conditions",
    "evaluate_condition", "quote", "split_lines", "split_words",
]
