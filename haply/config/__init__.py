"""Configuration: files in HAProxy, keepalived, Pound or monit syntax -> one model.

    from haply.config import load
    loaded = load(["/etc/haproxy/haproxy.cfg", "/etc/haproxy/conf.d"])
    loaded.config        # haply.config.model.Config
    loaded.diagnostics   # warnings (errors raise ConfigError)

A path may be a directory: its `*.cfg` files are read in lexical order, as
HAProxy does with `-f DIR`. Each file is given to the parser of its dialect,
chosen by the DIALECTS table from its name or its first keyword; a dialect is
one row there, so a new parser plugs in by adding a row. The partial models are
merged (several `global` sections merge too) and checked as a whole.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

from haply.config import haproxy, resolvers
from haply.config.diagnostics import ConfigError, Diagnostics, Location
from haply.config.model import Config, Global

# parse(text, filename, environ, diagnostics) -> partial Config
Parser = Callable[..., Config]


@dataclass(frozen=True, slots=True)
class Dialect:
    """One configuration language.

    names: file names that select it (exact, or a substring of the file name
    for the tool's own name such as "keepalived"); keywords: first significant
    words that select it. module/function name the parser so that a dialect
    can be listed before its parser exists: loading such a file is an error
    naming the dialect. stateful parsers also receive `carry=`, a dict kept
    across the files of one load (haproxy keeps the defaults in force there).
    """

    name: str
    names: tuple[str, ...]
    keywords: tuple[str, ...]
    module: str
    function: str = "parse"
    stateful: bool = False

    def parser(self) -> Parser | None:
        import importlib

        try:
            module = importlib.import_module(self.module)
        except ModuleNotFoundError as error:
            if error.name and self.module.startswith(error.name):
                return None
            raise
        return getattr(module, self.function, None)


DIALECTS: tuple[Dialect, ...] = (
    Dialect(
        "keepalived", ("keepalived",), ("global_defs", "vrrp_instance", "vrrp_script", "vrrp_sync_group",
                                        "virtual_server", "static_ipaddress", "include"),
        "haply.config.keepalived",
    ),
    Dialect(
        "pound", ("pound",), ("ListenHTTP", "ListenHTTPS", "Service", "User", "Group", "Daemon", "LogLevel",
                              "LogFacility", "Alive", "Control", "RootJail", "TimeOut", "Client"),
        "haply.config.pound",
    ),
    Dialect("monit", ("monitrc", "monit"), ("set", "check", "include"), "haply.config.monit"),
    Dialect(
        "haproxy", ("haproxy",), ("global", "defaults", "frontend", "backend", "listen", "peers",
                                  "resolvers", "userlist", "cache", "ring", "mailers", "program"),
        "haply.config.haproxy", stateful=True,
    ),
)
DEFAULT_DIALECT = "haproxy"


@dataclass(frozen=True, slots=True)
class Loaded:
    config: Config
    diagnostics: Diagnostics = field(default_factory=Diagnostics)


def detect(path: str, text: str) -> Dialect:
    """The dialect of a file: by its first keyword when only one dialect has
    it (a converted monitrc saved as monit.cfg is haproxy.cfg syntax), else by
    its name, else haproxy (whose files have no fixed name)."""
    first = _first_keyword(text)
    owners = [d for d in DIALECTS if first in d.keywords]
    if len(owners) == 1:
        return owners[0]
    name = os.path.basename(path).lower()
    for dialect in owners or DIALECTS:
        if any(token in name for token in dialect.names):
            return dialect
    return next(d for d in DIALECTS if d.name == DEFAULT_DIALECT)


def _first_keyword(text: str) -> str | None:
    """The first word that is not a comment (`#`, and keepalived's `!`)."""
    for line in text.splitlines():
        words = line.split("#", 1)[0].split()
        if words and not words[0].startswith("!"):
            return words[0]
    return None


def expand_paths(paths: list[str], diagnostics: Diagnostics) -> list[str]:
    """Files to read: each file as given, each directory's *.cfg in lexical order."""
    files = []
    for path in paths:
        if os.path.isdir(path):
            found = [str(p) for p in sorted(Path(path).glob("*.cfg"), key=lambda p: p.name) if p.is_file()]
            if not found:
                diagnostics.error(Location(path, 0), "directory has no *.cfg file")
            files.extend(found)
        else:
            files.append(path)
    return files


def load(paths: list[str], environ: Mapping[str, str] | None = None) -> Loaded:
    """Read, merge and validate configuration files; raise ConfigError listing
    every error (with the warnings) when the result cannot be used."""
    environ = os.environ if environ is None else environ
    diagnostics = Diagnostics()
    carries: dict[str, dict] = {}
    partials: list[Config] = []
    texts: list[tuple[str, str]] = []
    for path in expand_paths(list(paths), diagnostics):
        try:
            with open(path, encoding="utf-8", errors="surrogateescape") as handle:
                texts.append((path, handle.read()))
        except OSError as error:
            diagnostics.error(Location(path, 0), f"cannot read configuration file: {error.strerror}")
    for path, text in texts:  # named before their declaration, as HAProxy allows
        if detect(path, text).name == "haproxy":
            haproxy.declare_http_errors(text, path, environ, carries.setdefault("haproxy", {}))
    for path, text in texts:
        dialect = detect(path, text)
        parse = dialect.parser()
        if parse is None:
            diagnostics.error(
                Location(path, 0),
                f"file is in {dialect.name} syntax, whose parser is not available in this haply yet",
            )
            continue
        if dialect.stateful:
            partials.append(parse(text, path, environ, diagnostics, carry=carries.setdefault(dialect.name, {})))
        else:
            partials.append(parse(text, path, environ, diagnostics))
    if not partials and not diagnostics.errors:
        diagnostics.error(Location("<command line>", 0), "no configuration file given")
    config = merge(partials)
    if config.proxies or config.resolvers:
        config = resolvers.with_default(config)  # HAProxy's implicit `resolvers default`
    haproxy.validate(config, diagnostics)
    if not diagnostics.errors:
        # Certificates are checked at load so `-c` reports them too (haply.tls).
        from haply import tls
        tls.validate(config, diagnostics)
    diagnostics.raise_if_errors()
    return Loaded(config, diagnostics)


def merge(partials: list[Config]) -> Config:
    """One Config from the parts each file produced, in file order."""
    result = Config()
    for part in partials:
        result = replace(
            result,
            global_=_merge_global(result.global_, part.global_),
            proxies=result.proxies + part.proxies,
            vrrp=tuple(result.vrrp) + tuple(part.vrrp),
            programs=tuple(result.programs) + tuple(part.programs),
            userlists=tuple(result.userlists) + tuple(part.userlists),
            peers=tuple(result.peers) + tuple(part.peers),
            mailers=tuple(result.mailers) + tuple(part.mailers),
            caches=tuple(result.caches) + tuple(part.caches),
            resolvers=tuple(result.resolvers) + tuple(part.resolvers),
            sources=result.sources + tuple(s for s in part.sources if s not in result.sources),
        )
    return result


def _merge_global(a: Global, b: Global) -> Global:
    """Later values win; lists add up. A stateful parser may already return its
    merged global each time, so identical entries are not repeated."""
    default = Global()
    values = {}
    for f in fields(Global):
        left, right = getattr(a, f.name), getattr(b, f.name)
        if isinstance(left, tuple):
            values[f.name] = left + tuple(x for x in right if x not in left)
        else:
            values[f.name] = right if right != getattr(default, f.name) else left
    return Global(**values)


__all__ = ["ConfigError", "DIALECTS", "Dialect", "Loaded", "detect", "load", "merge"]
