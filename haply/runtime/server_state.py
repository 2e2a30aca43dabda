"""Server states carried across a reload: HAProxy's `show servers state` text.

The same text an operator saves with `echo "show servers state" | socat ...` for
`server-state-file`, and what haply's master hands from the old workers to the
new ones. Applying it follows the configuration manual's
`load-server-state-from-file`: servers are matched by backend and server name;
a server the operator forced into maintenance or drain stays there; the
operational state (UP/DOWN) carries over; a weight set at run time carries over
only if the configured weight did not change in between (the new configuration
wins otherwise). Maintenance that came from the old configuration's `disabled`
is the new configuration's business and is not carried.
"""

from __future__ import annotations

from dataclasses import dataclass

import os

from haply.runtime.registry import DOWN, DRAIN, MAINT, READY, UP, Registry

# srv_admin_state bits (management guide, "show servers state")
ADMIN_FORCED_MAINT = 0x01
ADMIN_FORCED_DRAIN = 0x08
OP_STOPPED = 0
OP_RUNNING = 2

SUPPORTED_VERSION = "1"


class StateFileError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class SavedServer:
    backend: str
    server: str
    operational: int
    admin: int
    weight: int  # srv_uweight: the weight in use
    configured_weight: int  # srv_iweight: the configured weight then
    address: str | None = None  # srv_addr ("-" when the server had none)


def parse(text: str) -> list[SavedServer]:
    """The servers of a `show servers state` dump (version 1), or
    StateFileError naming the line."""
    lines = text.splitlines()
    if not lines or not lines[0].strip():
        return []
    if lines[0].strip() != SUPPORTED_VERSION:
        raise StateFileError(f"line 1: server state version {lines[0].strip()!r} "
                             f"is not supported (expected {SUPPORTED_VERSION})")
    saved = []
    for number, line in enumerate(lines[1:], start=2):
        if not line.strip() or line.startswith("#"):
            continue
        fields = line.split()
        if len(fields) < 9:
            raise StateFileError(f"line {number}: expected at least 9 fields, got {len(fields)}")
        try:
            saved.append(SavedServer(fields[1], fields[3], int(fields[5]), int(fields[6]),
                                     int(fields[7]), int(fields[8]),
                                     None if fields[4] == "-" else fields[4]))
        except ValueError as exc:
            raise StateFileError(f"line {number}: {exc}") from exc
    return saved


def apply(registry: Registry, saved: list[SavedServer], now: float) -> int:
    """Apply saved states to the registry's servers; returns how many matched."""
    matched = 0
    for entry in saved:
        state = registry.get(entry.backend, entry.server)
        if state is None:
            continue
        matched += 1
        if entry.admin & ADMIN_FORCED_MAINT:
            registry.set_admin(state, MAINT, now)
        elif entry.admin & ADMIN_FORCED_DRAIN:
            registry.set_admin(state, DRAIN, now)
        elif (state.config is None or not state.config.disabled) and not state.unresolved:
            registry.set_admin(state, READY, now)  # (a server without address stays out)
        if entry.configured_weight == state.weight and entry.weight != state.effective_weight:
            registry.set_weight(state, entry.weight, now)
        if entry.operational == OP_STOPPED and not entry.admin & ADMIN_FORCED_MAINT:
            registry.set_operational(state, DOWN, now, state.check_status, "carried over")
        elif entry.operational == OP_RUNNING:
            registry.set_operational(state, UP, now, state.check_status, state.check_reason)
    return matched


def _setting(pairs, name: str) -> tuple[str, ...] | None:
    found = None
    for key, values in pairs:
        if key == name:
            found = values
    return found


def configured_files(config) -> dict[str, str]:
    """backend name -> the state file its `load-server-state-from-file` names."""
    base = _setting(config.global_.extra, "server-state-base")
    global_file = _setting(config.global_.extra, "server-state-file")

    def where(name: str) -> str:
        if os.path.isabs(name) or not base:
            return name
        return os.path.join(base[0], name)

    files = {}
    for proxy in config.backends:
        mode = _setting(proxy.extra, "load-server-state-from-file")
        if not mode or mode[0] == "none":
            continue
        if mode[0] == "global":
            if global_file:
                files[proxy.name] = where(global_file[0])
            continue
        own = _setting(proxy.extra, "server-state-file-name")
        name = own[0] if own and own[0] != "use-backend-name" else proxy.name
        files[proxy.name] = where(name)
    return files


def read_configured(config) -> tuple[list[SavedServer], list[str]]:
    """The saved servers of the state files the configuration names (HAProxy
    reads them at start), each backend's from its own file. A missing or
    broken file is a warning naming it, never fatal: the servers then start as
    configured. Returns the saved servers and the warnings."""
    warnings = []
    found: list[SavedServer] = []
    parsed: dict[str, list[SavedServer] | None] = {}
    for backend, path in configured_files(config).items():
        if path not in parsed:
            try:
                with open(path) as handle:
                    parsed[path] = parse(handle.read())
            except OSError as exc:
                warnings.append(f"server state file {path}: {exc.strerror or exc}; "
                                "servers start as configured")
                parsed[path] = None
            except StateFileError as exc:
                warnings.append(f"server state file {path}: {exc}; servers start as configured")
                parsed[path] = None
        entries = parsed[path]
        if entries:
            found.extend(e for e in entries if e.backend == backend)
    return found, warnings
