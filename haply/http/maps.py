"""Map files and the map converters of sample expressions (`map`, `map_str`,
`map_beg`, `map_sub`, `map_dom`, `map_reg`), as HAProxy 2.6 reads and matches
them (configuration manual 7.3.1 "map", observed on the same files).

A map file holds one `KEY VALUE` entry per line; blank lines and lines that
start with '#' are skipped, the key ends at the first blank, and the value is
the rest of the line, blanks inside it kept. Matching:

- `map`, `map_str`: the input equals a key;
- `map_beg`: a key begins the input, the longest such key winning;
- `map_sub`: a key occurs in the input, the first such line winning;
- `map_dom`: a key occurs in the input bounded on each side by the start or end
  of the input or by one of `/ ? . :` ("example.com" matches "api.example.com:5000"
  but not "myexample.com"), the first such line winning;
- `map_reg`: a key, a regular expression, matches the input, first line winning.

A lookup that finds nothing gives the default, or no value (None).
Pure apart from `read_map`, which reads the file once when the configuration is
loaded.
"""

from __future__ import annotations

import re
from typing import Callable

_DOMAIN_DELIMITERS = "/?.:"


class MapError(ValueError):
    pass


def parse_map(text: str) -> list[tuple[str, str]]:
    """The (key, value) entries of a map file's text, in file order."""
    entries = []
    for line in text.splitlines():
        words = line.strip().split(None, 1)
        if words and not words[0].startswith("#"):
            entries.append((words[0], words[1].strip() if len(words) > 1 else ""))
    return entries


def read_map(path: str) -> list[tuple[str, str]]:
    """A map file's entries; its bytes as latin-1 text, as the fields it is
    matched with are."""
    try:
        with open(path, "rb") as handle:
            return parse_map(handle.read().decode("latin-1"))
    except OSError as error:
        raise MapError(f"cannot read map file '{path}': {error.strerror}") from None


def split_arguments(text: str) -> list[str]:
    """`fetch(a,b),conv(c),conv2` -> ["fetch(a,b)", "conv(c)", "conv2"]: commas
    inside parentheses belong to the arguments."""
    parts, depth, start = [], 0, 0
    for index, char in enumerate(text):
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        elif char == "," and depth == 0:
            parts.append(text[start:index].strip())
            start = index + 1
    parts.append(text[start:].strip())
    return parts


def map_converter(converter: str) -> Callable[[str], str | None] | None:
    """The lookup a `map*(FILE[,DEFAULT])` converter makes, None for another
    converter; MapError for a bad one (the file is read here)."""
    name, _, arguments = converter.partition("(")
    if name != "map" and not name.startswith("map_"):
        return None
    method = "str" if name == "map" else name[4:]
    if not arguments.endswith(")"):
        raise MapError(f"converter '{converter}' expects ({name}(FILE[,DEFAULT]))")
    words = [word.strip() for word in arguments[:-1].split(",", 1)]
    if not words[0]:
        raise MapError(f"converter '{converter}' needs a map file, as in {name}(/etc/haproxy/FILE.map)")
    default = words[1] if len(words) > 1 else None
    return lookup(read_map(words[0]), method, default)


def lookup(entries: list[tuple[str, str]], method: str, default: str | None
           ) -> Callable[[str], str | None]:
    """A function input -> the value of the entry that matches, else default."""
    if method == "str":
        table: dict[str, str] = {}
        for key, value in entries:
            table.setdefault(key, value)  # the first line of a key wins
        return lambda text: table.get(text, default)
    if method == "beg":
        by_length = sorted(entries, key=lambda entry: -len(entry[0]))  # stable: file order kept
        return _first(by_length, lambda key, text: text.startswith(key), default)
    if method == "sub":
        return _first(entries, lambda key, text: key in text, default)
    if method == "dom":
        return _first(entries, _in_domain, default)
    if method == "reg":
        try:
            compiled = [(re.compile(key), value) for key, value in entries]
        except re.error as error:
            raise MapError(f"invalid regular expression in map: {error}") from None

        def match_regex(text: str) -> str | None:
            for regex, value in compiled:
                if regex.search(text):
                    return value
            return default
        return match_regex
    raise MapError(f"converter 'map_{method}' is not supported by haply (map, map_str, "
                   "map_beg, map_sub, map_dom and map_reg are)")


def _first(entries, matches: Callable[[str, str], bool], default: str | None):
    def find(text: str) -> str | None:
        for key, value in entries:
            if matches(key, text):
                return value
        return default
    return find


def _in_domain(key: str, text: str) -> bool:
    start = text.find(key)
    while start >= 0:
        end = start + len(key)
        if ((start == 0 or text[start - 1] in _DOMAIN_DELIMITERS)
                and (end == len(text) or text[end] in _DOMAIN_DELIMITERS)):
            return True
        start = text.find(key, start + 1)
    return False
