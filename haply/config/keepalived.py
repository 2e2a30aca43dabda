"""keepalived.conf -> `VrrpConfig`.

Two passes. The lexer turns text into a tree of statements, each a keyword, its
arguments and its file:line, with the children of a `{ ... }` block. The parser
walks that tree with one keyword table per block kind; the tables are the single
source of truth for what haply accepts (`KEYWORDS` lists them for the docs).

A keyword haply does not implement is an error naming it ("not supported by
haply"), never silently skipped: a VRRP setting that is ignored would make a node
behave differently from what its operator reads in the file. Semantics follow
keepalived.conf(5); haply adds `track_proxy`.

`parse_keepalived()` reports every problem through `Diagnostics` and raises
nothing itself; the caller decides when to `raise_if_errors()`.
"""

from __future__ import annotations

import glob
import ipaddress
import os
from dataclasses import dataclass, field, replace
from typing import Callable, Mapping

from haply.config.diagnostics import Diagnostics, Location
from haply.config.vrrp_model import (
    GarpSettings,
    GlobalDefs,
    Notify,
    SyncGroup,
    TrackedInterface,
    TrackedScript,
    TrackProxy,
    VirtualAddress,
    VrrpConfig,
    VrrpInstance,
    VrrpScript,
)

# First keywords that mark a file as keepalived.conf (for dialect detection).
TOP_LEVEL_KEYWORDS = frozenset(
    {"global_defs", "vrrp_script", "vrrp_instance", "vrrp_sync_group", "virtual_server",
     "virtual_server_group", "static_ipaddress", "static_routes", "include"}
)

MAX_INCLUDE_DEPTH = 8  # keepalived itself stops recursing includes at a small depth
VRRP_V3_MAX_ADVERT_INT = 40.95  # RFC 5798 5.2.7: 12 bits of centiseconds
VRRP_V2_MAX_ADVERT_INT = 255  # RFC 3768 5.3.7: 8 bits of seconds
AUTH_PASS_LEN = 8  # RFC 3768 5.3.10: 8 octets of password
WEIGHT_LIMIT = 253  # keepalived.conf(5) of 2.2: vrrp_script weight is -253..253
SCOPES = ("global", "site", "link", "host", "nowhere")


def looks_like_keepalived(text: str) -> bool:
    """True when the first keyword of the text is a keepalived top-level block."""
    for raw in text.splitlines():
        line = _strip_comment(raw).strip()
        if line:
            return line.split()[0].rstrip("{") in TOP_LEVEL_KEYWORDS
    return False


# ------------------------------------------------------------------------- lexer


@dataclass(slots=True)
class Statement:
    keyword: str
    args: list[str]
    location: Location
    children: list["Statement"] | None = None


def _strip_comment(line: str) -> str:
    out, quoted = [], False
    for ch in line:
        if ch == '"':
            quoted = not quoted
        elif ch in "#!" and not quoted:
            break
        out.append(ch)
    return "".join(out)


def _tokens(line: str) -> list[str]:
    # keepalived splits on blanks and keeps "quoted strings" whole; braces
    # glued to a word ("block{") are common in hand-written files.
    line = _strip_comment(line)
    out: list[str] = []
    word: list[str] = []
    quoted = False
    for ch in line:
        if quoted:
            if ch == '"':
                quoted = False
            else:
                word.append(ch)
        elif ch == '"':
            quoted = True
            word.append("")  # an empty quoted string is still a token
        elif ch.isspace() or ch in "{}":
            if word:
                out.append("".join(word))
                word = []
            if ch in "{}":
                out.append(ch)
        else:
            word.append(ch)
    if word:
        out.append("".join(word))
    return out


def lex(text: str, filename: str, diagnostics: Diagnostics, depth: int = 0) -> list[Statement]:
    root: list[Statement] = []
    stack: list[list[Statement]] = [root]
    openers: list[Statement] = []
    for number, line in enumerate(text.splitlines(), 1):
        loc = Location(filename, number)
        current: Statement | None = None
        for tok in _tokens(line):
            if tok == "{":
                target = current or (stack[-1][-1] if stack[-1] else None)
                if target is None or target.children is not None:
                    diagnostics.error(loc, "'{' without a keyword before it")
                    target = Statement("", [], loc)
                target.children = []
                stack.append(target.children)
                openers.append(target)
                current = None
            elif tok == "}":
                if len(stack) == 1:
                    diagnostics.error(loc, "'}' without a matching '{'")
                else:
                    stack.pop()
                    openers.pop()
                current = None
            elif current is None:
                current = Statement(tok, [], loc)
                stack[-1].append(current)
            else:
                current.args.append(tok)
    for opener in openers:
        diagnostics.error(opener.location, f"block '{opener.keyword}' is not closed by '}}'")
    return _expand_includes(root, filename, diagnostics, depth)


def _expand_includes(statements: list[Statement], filename: str, diagnostics: Diagnostics,
                     depth: int) -> list[Statement]:
    out: list[Statement] = []
    for st in statements:
        if st.keyword != "include":
            out.append(st)
            continue
        if len(st.args) != 1:
            diagnostics.error(st.location, "include expects one file name or pattern")
            continue
        if depth >= MAX_INCLUDE_DEPTH:
            diagnostics.error(st.location, f"include nested deeper than {MAX_INCLUDE_DEPTH}")
            continue
        pattern = st.args[0]
        if not os.path.isabs(pattern):
            pattern = os.path.join(os.path.dirname(filename) or ".", pattern)
        for path in sorted(glob.glob(pattern)):
            try:
                with open(path, encoding="utf-8") as f:
                    text = f.read()
            except OSError as exc:
                diagnostics.error(st.location, f"include {path}: {exc.strerror}")
                continue
            out.extend(lex(text, path, diagnostics, depth + 1))
    return out


# ------------------------------------------------------------------------ values


class _Bad(Exception):
    pass


def _one(st: Statement) -> str:
    if len(st.args) != 1:
        raise _Bad(f"{st.keyword} expects one value, got {len(st.args)}")
    return st.args[0]


def _int(st: Statement, lo: int, hi: int, value: str | None = None) -> int:
    text = _one(st) if value is None else value
    try:
        n = int(text)
    except ValueError:
        raise _Bad(f"{st.keyword}: '{text}' is not an integer") from None
    if not lo <= n <= hi:
        raise _Bad(f"{st.keyword}: {n} is outside {lo}..{hi}")
    return n


def _float(st: Statement, lo: float, hi: float, value: str | None = None) -> float:
    text = _one(st) if value is None else value
    try:
        x = float(text)
    except ValueError:
        raise _Bad(f"{st.keyword}: '{text}' is not a number") from None
    if not lo <= x <= hi:
        raise _Bad(f"{st.keyword}: {text} is outside {lo:g}..{hi:g}")
    return x


def _ip(st: Statement, text: str) -> str:
    """An IPv4 or IPv6 address, in its canonical spelling (what the kernel and
    the advertisements of peers report)."""
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        raise _Bad(f"{st.keyword}: '{text}' is not an IPv4 or IPv6 address") from None


def _family(address: str) -> str:
    return "IPv6" if ":" in address else "IPv4"


def _command(st: Statement) -> str:
    if not st.args:
        raise _Bad(f"{st.keyword} expects a command")
    # `script "a b c"` arrives as one token; `script a b c` as several: same command.
    return " ".join(st.args) if len(st.args) > 1 else st.args[0]


def _flag(st: Statement) -> bool:
    if st.args:
        raise _Bad(f"{st.keyword} takes no value")
    return True


# ------------------------------------------------------------------------ parser

_Handler = Callable[["_Parser", Statement, dict], None]


def _unsupported(st: Statement, where: str) -> str:
    return f"'{st.keyword}' in {where} is not supported by haply"


@dataclass
class _Parser:
    diagnostics: Diagnostics
    environ: Mapping[str, str]
    global_defs: dict = field(default_factory=dict)
    global_loc: Location | None = None
    scripts: dict[str, VrrpScript] = field(default_factory=dict)
    instances: list[tuple[dict, Statement]] = field(default_factory=list)
    groups: list[tuple[dict, Statement]] = field(default_factory=list)

    def err(self, loc: Location, msg: str) -> None:
        self.diagnostics.error(loc, msg)

    def block(self, st: Statement, table: Mapping[str, _Handler], acc: dict, where: str) -> None:
        if st.children is None:
            self.err(st.location, f"{st.keyword} expects a {{ ... }} block")
            return
        for child in st.children:
            handler = table.get(child.keyword)
            if handler is None:
                self.err(child.location, _unsupported(child, where))
                continue
            if child.children is not None and handler not in _BLOCK_HANDLERS:
                self.err(child.location, f"{child.keyword} does not take a {{ ... }} block")
                continue
            try:
                handler(self, child, acc)
            except _Bad as exc:
                self.err(child.location, str(exc))

    # --- top level
    def top(self, statements: list[Statement]) -> None:
        for st in statements:
            try:
                if st.keyword == "global_defs":
                    self.global_loc = self.global_loc or st.location
                    self.block(st, GLOBAL_DEFS, self.global_defs, "global_defs")
                elif st.keyword == "vrrp_script":
                    self.vrrp_script(st)
                elif st.keyword == "vrrp_instance":
                    acc: dict = {"addresses": [], "location": st.location}
                    name = _one(st)
                    acc["name"] = name
                    self.block(st, INSTANCE, acc, f"vrrp_instance {name}")
                    self.instances.append((acc, st))
                elif st.keyword == "vrrp_sync_group":
                    acc = {"name": _one(st), "location": st.location}
                    self.block(st, SYNC_GROUP, acc, f"vrrp_sync_group {acc['name']}")
                    self.groups.append((acc, st))
                else:
                    self.err(st.location, _unsupported(st, "keepalived.conf"))
            except _Bad as exc:
                self.err(st.location, str(exc))

    def vrrp_script(self, st: Statement) -> None:
        name = _one(st)
        acc: dict = {}
        self.block(st, SCRIPT, acc, f"vrrp_script {name}")
        if "script" not in acc:
            self.err(st.location, f"vrrp_script {name} has no 'script'")
            return
        if name in self.scripts:
            self.err(st.location, f"vrrp_script {name} is defined twice")
        self.scripts[name] = VrrpScript(name=name, location=st.location, **acc)

    # --- resolution
    def result(self, sources: tuple[str, ...]) -> VrrpConfig:
        g = self.global_defs
        garp = GarpSettings(**{k[5:]: v for k, v in g.items() if k.startswith("garp_")})
        gdefs = GlobalDefs(
            router_id=g.get("router_id"), vrrp_version=g.get("vrrp_version", 2), garp=garp,
            script_user=g.get("script_user"), script_group=g.get("script_group"),
            enable_script_security=g.get("enable_script_security", False),
            location=self.global_loc or Location(sources[0] if sources else "<text>", 0),
        )
        instances: list[VrrpInstance] = []
        seen: dict[tuple[str, int], str] = {}
        for acc, st in self.instances:
            inst = self.instance(acc, st, gdefs)
            if inst is None:
                continue
            if any(i.name == inst.name for i in instances):
                self.err(st.location, f"vrrp_instance {inst.name} is defined twice")
            key = (inst.interface, inst.virtual_router_id)
            if key in seen:
                self.err(st.location, f"virtual_router_id {key[1]} on {key[0]} is already used "
                                      f"by vrrp_instance {seen[key]}")
            seen[key] = inst.name
            instances.append(inst)
        groups: list[SyncGroup] = []
        for acc, st in self.groups:
            members = acc.get("group", ())
            for m in members:
                if not any(i.name == m for i in instances):
                    self.err(st.location, f"vrrp_sync_group {acc['name']}: no vrrp_instance {m}")
            tracked = self.tracked(acc.get("track_script", ()), st)
            groups.append(SyncGroup(name=acc["name"], members=tuple(members),
                                    notify=Notify(**acc.get("notify", {})), track_scripts=tracked,
                                    track_interfaces=tuple(acc.get("track_interface", ())),
                                    location=st.location))
        for group in groups:
            for pos, inst in enumerate(instances):
                if inst.name in group.members:
                    if inst.sync_group:
                        self.err(group.location, f"vrrp_instance {inst.name} is in two sync groups")
                    instances[pos] = self._join_group(inst, group)
        return VrrpConfig(global_defs=gdefs, scripts=tuple(self.scripts.values()),
                          instances=tuple(instances), sync_groups=tuple(groups), sources=sources)

    def _join_group(self, inst: VrrpInstance, group: SyncGroup) -> VrrpInstance:
        # keepalived.conf(5): members' own tracking weights are set to zero in a
        # sync group, since differing priorities across members would make the
        # group re-elect forever; the group's own tracking applies to all.
        weighted = [t.script.name for t in inst.track_scripts if t.weight] + \
                   [t.name for t in inst.track_interfaces if t.weight]
        if inst.track_proxy is not None and inst.track_proxy.weight:
            weighted.append("track_proxy")
        if weighted:
            self.diagnostics.warning(inst.location, f"vrrp_instance {inst.name} is in sync group "
                                     f"{group.name}: weights of {', '.join(weighted)} set to 0")
        return replace(
            inst, sync_group=group,
            track_scripts=tuple(replace(t, weight=0) for t in inst.track_scripts) + group.track_scripts,
            track_interfaces=tuple(replace(t, weight=0) for t in inst.track_interfaces)
            + group.track_interfaces,
            track_proxy=inst.track_proxy and replace(inst.track_proxy, weight=0))

    def tracked(self, items, st: Statement) -> tuple[TrackedScript, ...]:
        out = []
        for name, weight, loc in items:
            script = self.scripts.get(name)
            if script is None:
                self.err(loc, f"track_script: no vrrp_script named '{name}'")
                continue
            out.append(TrackedScript(script, script.weight if weight is None else weight))
        return tuple(out)

    def one_family(self, name: str, adverts: list[VirtualAddress], acc: dict) -> bool:
        """An advertisement carries addresses of one family (RFC 5798 5.2.9),
        and is sent from and to addresses of that family; excluded addresses,
        never advertised, may be of either (keepalived's way to a dual stack)."""
        family = _family(adverts[0].address)
        ok = True
        for a in adverts[1:]:
            if _family(a.address) != family:
                self.err(a.location, f"vrrp_instance {name}: virtual_ipaddress mixes {family} and "
                         f"{_family(a.address)} ({a.address}); put one family in "
                         "virtual_ipaddress_excluded or in an instance of its own")
                ok = False
        for key in ("unicast_src_ip", "unicast_peer"):
            given = acc.get(key)
            for address in ([given] if isinstance(given, str) else given or ()):
                if _family(address) != family:
                    self.err(acc[f"{key}_loc"],
                             f"vrrp_instance {name}: {key} {address} is {_family(address)}, "
                             f"the virtual addresses are {family}")
                    ok = False
        return ok

    def instance(self, acc: dict, st: Statement, g: GlobalDefs) -> VrrpInstance | None:
        loc = st.location
        name = acc["name"]
        missing = [k for k in ("interface", "virtual_router_id") if k not in acc]
        if missing:
            self.err(loc, f"vrrp_instance {name} has no {' or '.join(missing)}")
            return None
        version = acc.get("version", g.vrrp_version)
        adverts = [a for a in acc["addresses"] if not a.excluded]
        if adverts and not self.one_family(name, adverts, acc):
            return None
        if adverts and ":" in adverts[0].address and version == 2:
            self.diagnostics.warning(loc, f"vrrp_instance {name}: VRRPv2 is IPv4 only (RFC 3768); "
                                     "this IPv6 instance uses VRRPv3")
            version = 3
        advert = acc.get("advert_int", 1.0)
        priority = acc.get("priority", 100)
        state = acc.get("state", "BACKUP")
        if version == 2:
            if advert != int(advert):
                self.diagnostics.warning(acc["advert_int_loc"], f"advert_int {advert:g} is not a whole number of "
                                         "seconds, which VRRPv2 needs: rounded up")
                advert = float(max(1, -(-advert // 1)))
            if advert > VRRP_V2_MAX_ADVERT_INT:
                self.err(acc["advert_int_loc"], f"advert_int {advert:g} exceeds {VRRP_V2_MAX_ADVERT_INT} (VRRPv2)")
        else:
            if advert > VRRP_V3_MAX_ADVERT_INT or advert < 0.01:
                self.err(acc["advert_int_loc"], f"advert_int {advert:g} is outside 0.01..40.95 (VRRPv3)")
            if "auth_pass" in acc:
                self.err(acc["auth_loc"], "authentication is not part of VRRPv3 (RFC 5798)")
        if not acc.get("preempt", True) and state == "MASTER":
            self.diagnostics.warning(loc, f"vrrp_instance {name}: nopreempt needs state BACKUP, "
                                     "starting as BACKUP")
            state = "BACKUP"
        if priority == 255 and state != "MASTER":
            state = "MASTER"  # RFC 5798 6.4.1: the address owner starts as master
        for a in acc["addresses"]:
            dev = a.dev or acc["interface"]
            if a.label and not a.label.startswith(dev):
                # the kernel refuses a label that does not begin with the device name
                self.err(a.location, f"label {a.label} must begin with the device name {dev}")
        if not adverts:
            self.err(loc, f"vrrp_instance {name} has no virtual_ipaddress")
        garp = replace(g.garp, **{k[5:]: v for k, v in acc.items() if k.startswith("garp_")})
        track_proxy = acc.get("track_proxy")
        return VrrpInstance(
            name=name, interface=acc["interface"], virtual_router_id=acc["virtual_router_id"],
            priority=priority, initial_state=state, version=version, advert_int=advert,
            preempt=acc.get("preempt", True), preempt_delay=acc.get("preempt_delay", 0.0),
            addresses=tuple(acc["addresses"]), unicast_src_ip=acc.get("unicast_src_ip"),
            unicast_peers=tuple(acc.get("unicast_peer", ())), auth_pass=acc.get("auth_pass"),
            track_scripts=self.tracked(acc.get("track_script", ()), st),
            track_interfaces=tuple(acc.get("track_interface", ())), track_proxy=track_proxy,
            notify=Notify(**acc.get("notify", {})), garp=garp, sync_group=None,
            script_user=g.script_user, script_group=g.script_group,
            enable_script_security=g.enable_script_security, router_id=g.router_id, location=loc,
        )


# --------------------------------------------------------------- keyword tables
# Each handler stores a parsed value in `acc`; raising _Bad reports at its line.


def _set(key: str, conv: Callable[[Statement], object]) -> _Handler:
    def handler(p: _Parser, st: Statement, acc: dict) -> None:
        acc[key] = conv(st)
    handler.__doc__ = key
    return handler


def _located(key: str, conv: Callable[[Statement], object]) -> _Handler:
    """As _set, and keeps the line for checks made once the block is read."""
    def handler(p: _Parser, st: Statement, acc: dict) -> None:
        acc[key] = conv(st)
        acc[f"{key}_loc"] = st.location
    handler.__doc__ = key
    return handler


def _garp_pair(prefix: str) -> dict[str, _Handler]:
    return {
        f"{prefix}garp_master_delay": _set("garp_master_delay", lambda s: _float(s, 0, 3600)),
        f"{prefix}garp_master_repeat": _set("garp_master_repeat", lambda s: _int(s, 1, 255)),
        f"{prefix}garp_master_refresh": _set("garp_master_refresh", lambda s: _float(s, 0, 86400)),
        f"{prefix}garp_master_refresh_repeat": _set("garp_master_refresh_repeat",
                                                    lambda s: _int(s, 1, 255)),
        f"{prefix}garp_interval": _set("garp_interval", lambda s: _float(s, 0, 1)),
    }


def _version(st: Statement) -> int:
    return _int(st, 2, 3)


def _user(key_user: str, key_group: str) -> _Handler:
    def handler(p: _Parser, st: Statement, acc: dict) -> None:
        if not 1 <= len(st.args) <= 2:
            raise _Bad(f"{st.keyword} expects USER [GROUP]")
        acc[key_user] = st.args[0]
        if len(st.args) == 2:
            acc[key_group] = st.args[1]
    return handler


GLOBAL_DEFS: dict[str, _Handler] = {
    "router_id": _set("router_id", _one),
    "vrrp_version": _set("vrrp_version", _version),
    "script_user": _user("script_user", "script_group"),
    "enable_script_security": _set("enable_script_security", _flag),
    **_garp_pair("vrrp_"),
}


def _weight(st: Statement, text: str) -> int:
    return _int(st, -WEIGHT_LIMIT, WEIGHT_LIMIT, text)


def _script_weight(p: _Parser, st: Statement, acc: dict) -> None:
    if len(st.args) == 2 and st.args[1] == "reverse":
        acc["weight_reverse"] = True
    elif len(st.args) != 1:
        raise _Bad("weight expects N [reverse]")
    acc["weight"] = _weight(st, st.args[0])


SCRIPT: dict[str, _Handler] = {
    "script": _set("script", _command),
    "interval": _set("interval", lambda s: _float(s, 0.01, 86400)),
    "timeout": _set("timeout", lambda s: _float(s, 0.01, 86400)),
    "weight": _script_weight,
    "rise": _set("rise", lambda s: _int(s, 1, 1000)),
    "fall": _set("fall", lambda s: _int(s, 1, 1000)),
    "user": _user("user", "group"),
}


def _state(st: Statement) -> str:
    value = _one(st)
    if value not in ("MASTER", "BACKUP"):
        raise _Bad(f"state must be MASTER or BACKUP, not '{value}'")
    return value


def _advert_int(p: _Parser, st: Statement, acc: dict) -> None:
    acc["advert_int"] = _float(st, 0.01, 255)
    acc["advert_int_loc"] = st.location


def _addresses(excluded: bool) -> _Handler:
    def handler(p: _Parser, st: Statement, acc: dict) -> None:
        if st.args:
            raise _Bad(f"{st.keyword} expects a {{ ... }} block of addresses")
        for line in st.children or ():
            try:
                acc["addresses"].append(_address(line, excluded))
            except _Bad as exc:
                p.err(line.location, str(exc))
    return handler


def _address(st: Statement, excluded: bool) -> VirtualAddress:
    text = st.keyword
    addr, _, plen = text.partition("/")
    address = _ip(st, addr)
    width = 128 if ":" in address else 32
    prefixlen = _int(st, 0, width, plen) if plen else width
    opts: dict[str, str] = {}
    args = list(st.args)
    while args:
        key = args.pop(0)
        if key not in ("dev", "brd", "scope", "label"):
            raise _Bad(f"virtual address option '{key}' is not supported by haply")
        if not args:
            raise _Bad(f"virtual address option '{key}' needs a value")
        opts[key] = args.pop(0)
    if "brd" in opts:
        if width == 128:
            raise _Bad("brd: IPv6 has no broadcast address")
        opts["brd"] = _ip(st, opts["brd"])
        if ":" in opts["brd"]:
            raise _Bad(f"brd: '{opts['brd']}' is not an IPv4 address")
    if opts.get("scope", "global") not in SCOPES:
        raise _Bad(f"scope must be one of {', '.join(SCOPES)}")
    return VirtualAddress(address=address, prefixlen=prefixlen, excluded=excluded,
                          location=st.location, **opts)


def _name_list(key: str) -> _Handler:
    def handler(p: _Parser, st: Statement, acc: dict) -> None:
        acc.setdefault(key, [])
        for line in st.children or ():
            weight = None
            if line.args:
                if len(line.args) != 2 or line.args[0] != "weight":
                    p.err(line.location, f"{key} entry expects NAME [weight N]")
                    continue
                try:
                    weight = _weight(line, line.args[1])
                except _Bad as exc:
                    p.err(line.location, str(exc))
                    continue
            acc[key].append((line.keyword, weight, line.location))
    return handler


def _track_interface(p: _Parser, st: Statement, acc: dict) -> None:
    _name_list("_ti")(p, st, acc)
    acc["track_interface"] = [TrackedInterface(n, w or 0) for n, w, _ in acc.pop("_ti")]


def _unicast_peer(p: _Parser, st: Statement, acc: dict) -> None:
    peers = acc.setdefault("unicast_peer", [])
    acc["unicast_peer_loc"] = st.location
    for line in st.children or ():
        if line.args:
            p.err(line.location, f"unicast_peer option '{line.args[0]}' is not supported by haply")
            continue
        try:
            peers.append(_ip(line, line.keyword))
        except _Bad as exc:
            p.err(line.location, str(exc))


def _authentication(p: _Parser, st: Statement, acc: dict) -> None:
    auth: dict[str, str] = {}
    for line in st.children or ():
        if line.keyword not in ("auth_type", "auth_pass"):
            p.err(line.location, _unsupported(line, "authentication"))
            continue
        try:
            auth[line.keyword] = _one(line)
        except _Bad as exc:
            p.err(line.location, str(exc))
    kind = auth.get("auth_type", "PASS")
    if kind != "PASS":
        raise _Bad(f"auth_type {kind} is not supported by haply (only PASS)")
    if "auth_pass" not in auth:
        raise _Bad("authentication needs auth_pass")
    if len(auth["auth_pass"].encode()) > AUTH_PASS_LEN:
        p.diagnostics.warning(st.location, f"auth_pass is longer than {AUTH_PASS_LEN} characters: "
                              "only the first 8 are used (RFC 3768)")
    acc["auth_pass"] = auth["auth_pass"].encode()[:AUTH_PASS_LEN].decode("utf-8", "replace")
    acc["auth_loc"] = st.location


def _notify(key: str) -> _Handler:
    """notify_* SCRIPT [USER [GROUP]]: the command is one word or one quoted string."""
    def handler(p: _Parser, st: Statement, acc: dict) -> None:
        if not 1 <= len(st.args) <= 3:
            raise _Bad(f"{st.keyword} expects SCRIPT [USER [GROUP]] (quote a command that has "
                       "arguments)")
        notify = acc.setdefault("notify", {})
        notify[key] = st.args[0]
        if len(st.args) > 1:
            run_as = [r for r in notify.get("run_as", ()) if r[0] != key]
            notify["run_as"] = tuple(run_as) + ((key, st.args[1], st.args[2] if len(st.args) > 2 else None),)
    return handler


def _track_proxy(p: _Parser, st: Statement, acc: dict) -> None:
    """track_proxy socket PATH | pid N | pidfile PATH [weight N] [interval S] [rise N] [fall N]"""
    args = list(st.args)
    if len(args) < 2 or args[0] not in ("socket", "pid", "pidfile"):
        raise _Bad("track_proxy expects socket PATH | pid N | pidfile PATH, then [weight N] "
                   "[interval S] [rise N] [fall N]")
    kind, target = args.pop(0), args.pop(0)
    if kind == "pid":
        _int(st, 1, 2**22, target)
    opts: dict = {}
    while args:
        key = args.pop(0)
        if key not in ("weight", "interval", "rise", "fall") or not args:
            raise _Bad(f"track_proxy option '{key}' is not understood")
        value = args.pop(0)
        if key == "weight":
            opts["weight"] = _weight(st, value)
        elif key == "interval":
            opts["interval"] = _float(st, 0.01, 60, value)
        else:
            opts[key] = _int(st, 1, 1000, value)
    acc["track_proxy"] = TrackProxy(target=f"{kind}:{target}", location=st.location, **opts)


def _nopreempt(p: _Parser, st: Statement, acc: dict) -> None:
    acc["preempt"] = not _flag(st)


INSTANCE: dict[str, _Handler] = {
    "state": _set("state", _state),
    "interface": _set("interface", _one),
    "virtual_router_id": _set("virtual_router_id", lambda s: _int(s, 1, 255)),
    "priority": _set("priority", lambda s: _int(s, 1, 255)),
    "advert_int": _advert_int,
    "version": _set("version", _version),
    "nopreempt": _nopreempt,
    "preempt_delay": _set("preempt_delay", lambda s: _float(s, 0, 1000)),
    "virtual_ipaddress": _addresses(False),
    "virtual_ipaddress_excluded": _addresses(True),
    "unicast_src_ip": _located("unicast_src_ip", lambda s: _ip(s, _one(s))),
    "unicast_peer": _unicast_peer,
    "authentication": _authentication,
    "track_script": _name_list("track_script"),
    "track_interface": _track_interface,
    "track_proxy": _track_proxy,
    "notify_master": _notify("master"),
    "notify_backup": _notify("backup"),
    "notify_fault": _notify("fault"),
    "notify_stop": _notify("stop"),
    "notify": _notify("any"),
    **_garp_pair(""),
}


def _group_members(p: _Parser, st: Statement, acc: dict) -> None:
    if st.args:
        raise _Bad("group expects a { ... } block of vrrp_instance names")
    acc["group"] = [line.keyword for line in st.children or ()]


SYNC_GROUP: dict[str, _Handler] = {
    "group": _group_members,
    "track_script": _name_list("track_script"),
    "track_interface": _track_interface,
    "notify_master": _notify("master"),
    "notify_backup": _notify("backup"),
    "notify_fault": _notify("fault"),
    "notify_stop": _notify("stop"),
    "notify": _notify("any"),
}

# Handlers whose keyword opens a { ... } block.
_BLOCK_HANDLERS = {
    INSTANCE["virtual_ipaddress"], INSTANCE["virtual_ipaddress_excluded"],
    INSTANCE["unicast_peer"], INSTANCE["authentication"], INSTANCE["track_script"],
    INSTANCE["track_interface"], SYNC_GROUP["group"], SYNC_GROUP["track_script"],
    SYNC_GROUP["track_interface"],
}

KEYWORDS: dict[str, tuple[str, ...]] = {
    "global_defs": tuple(GLOBAL_DEFS),
    "vrrp_script": tuple(SCRIPT),
    "vrrp_instance": tuple(INSTANCE),
    "vrrp_sync_group": tuple(SYNC_GROUP),
}


# -------------------------------------------------------------------------- API


def parse_keepalived(text: str, filename: str = "<text>", environ: Mapping[str, str] | None = None,
                     diagnostics: Diagnostics | None = None) -> VrrpConfig:
    """Parse one keepalived.conf text. Problems go to `diagnostics` (never raised).

    `environ` is accepted for symmetry with the other dialects; keepalived's
    `$VAR` substitution is not implemented (a `$` word is kept as written).
    """
    return parse_keepalived_files([(text, filename)], environ, diagnostics)


def parse_keepalived_files(sources: list[tuple[str, str]], environ: Mapping[str, str] | None = None,
                           diagnostics: Diagnostics | None = None) -> VrrpConfig:
    """Parse several files as if they were one (like `-f a -f b`)."""
    diagnostics = diagnostics if diagnostics is not None else Diagnostics()
    parser = _Parser(diagnostics, environ or {})
    statements: list[Statement] = []
    for text, filename in sources:
        statements.extend(lex(text, filename, diagnostics))
    parser.top(statements)
    return parser.result(tuple(name for _, name in sources))


def load_keepalived(paths: list[str]) -> VrrpConfig:
    """Read and parse files; raise ConfigError listing every problem."""
    diagnostics = Diagnostics()
    sources = []
    for path in paths:
        with open(path, encoding="utf-8") as f:
            sources.append((f.read(), path))
    config = parse_keepalived_files(sources, os.environ, diagnostics)
    diagnostics.raise_if_errors()
    return config


__all__ = ["KEYWORDS", "TOP_LEVEL_KEYWORDS", "looks_like_keepalived", "load_keepalived",
           "parse_keepalived", "parse_keepalived_files"]


def parse(text: str, filename: str, environ, diagnostics: Diagnostics):
    """The configuration loader's entry point: the instances go into Config.vrrp."""
    from haply.config.model import Config

    vrrp = parse_keepalived(text, filename, environ, diagnostics)
    return Config(vrrp=tuple(vrrp.instances), sources=(filename,))
