"""What a keepalived.conf describes, as frozen dataclasses.

The parser resolves every reference (track_script names, global_defs defaults,
sync group membership) into the instances themselves, so a `VrrpInstance` is
self-contained: the VRRP process needs nothing else to run it. `VrrpConfig` keeps
the unresolved parts too, for `haply -c` and the documentation.

Durations are seconds (float). `None` means "not set".
"""

from __future__ import annotations

from dataclasses import dataclass

from haply.config.diagnostics import NOWHERE, Location

# keepalived.conf(5) defaults, from its man page.
DEFAULT_ADVERT_INT = 1.0
DEFAULT_PRIORITY = 100
DEFAULT_GARP_MASTER_DELAY = 5.0
DEFAULT_GARP_MASTER_REPEAT = 5
DEFAULT_GARP_MASTER_REFRESH = 0.0  # 0: no periodic refresh
DEFAULT_GARP_MASTER_REFRESH_REPEAT = 1
DEFAULT_GARP_INTERVAL = 0.0
DEFAULT_SCRIPT_INTERVAL = 1.0
DEFAULT_PROXY_INTERVAL = 0.2


@dataclass(frozen=True, slots=True)
class VirtualAddress:
    """One line of virtual_ipaddress / virtual_ipaddress_excluded.

    `<IP>[/<LEN>] [brd <IP>] [dev <IF>] [scope <SCOPE>] [label <LABEL>]`.
    Excluded addresses are added and removed like the others but are not listed
    in advertisements (keepalived's meaning), so a peer does not compare them.
    """

    address: str
    prefixlen: int = 32
    dev: str | None = None  # None: the instance's interface
    brd: str | None = None
    scope: str | None = None  # "global" | "site" | "link" | "host" | "nowhere"
    label: str | None = None
    excluded: bool = False
    location: Location = NOWHERE


@dataclass(frozen=True, slots=True)
class VrrpScript:
    """A vrrp_script block: a command whose exit status says healthy (0) or not."""

    name: str
    script: str
    interval: float = DEFAULT_SCRIPT_INTERVAL
    timeout: float | None = None  # None: the interval
    weight: int = 0  # 0: failure puts tracking instances in FAULT
    weight_reverse: bool = False
    rise: int = 1
    fall: int = 1
    user: str | None = None
    group: str | None = None
    location: Location = NOWHERE


@dataclass(frozen=True, slots=True)
class TrackedScript:
    script: VrrpScript
    weight: int  # the instance's override, else the script's own


@dataclass(frozen=True, slots=True)
class TrackedInterface:
    name: str
    weight: int = 0  # 0: interface down puts the instance in FAULT


@dataclass(frozen=True, slots=True)
class TrackProxy:
    """haply's own extension: tie the instance to the local proxy's health.

    `target` is "socket:<path>" (healthy while a unix stream socket accepts a
    connection), "pid:<n>" or "pidfile:<path>" (healthy while that process
    lives; its death is noticed at once through a pidfd). The master process
    may instead hand `haply.vrrp.service.run()` a health callable.
    """

    target: str
    weight: int = 0  # 0: proxy down puts the instance in FAULT
    interval: float = DEFAULT_PROXY_INTERVAL
    rise: int = 1
    fall: int = 1
    location: Location = NOWHERE


@dataclass(frozen=True, slots=True)
class Notify:
    """notify_master / notify_backup / notify_fault / notify_stop / notify."""

    master: str | None = None
    backup: str | None = None
    fault: str | None = None
    stop: str | None = None
    any: str | None = None  # `notify`: called with TYPE NAME STATE PRIORITY
    # `notify_master SCRIPT [USER [GROUP]]`: (which, user, group) when given
    run_as: tuple[tuple[str, str, str | None], ...] = ()

    def user_for(self, which: str) -> tuple[str | None, str | None]:
        for key, user, group in self.run_as:
            if key == which:
                return user, group
        return None, None


@dataclass(frozen=True, slots=True)
class GarpSettings:
    master_delay: float = DEFAULT_GARP_MASTER_DELAY
    master_repeat: int = DEFAULT_GARP_MASTER_REPEAT
    master_refresh: float = DEFAULT_GARP_MASTER_REFRESH
    master_refresh_repeat: int = DEFAULT_GARP_MASTER_REFRESH_REPEAT
    interval: float = DEFAULT_GARP_INTERVAL


@dataclass(frozen=True, slots=True)
class GlobalDefs:
    router_id: str | None = None
    vrrp_version: int = 2
    garp: GarpSettings = GarpSettings()
    script_user: str | None = None
    script_group: str | None = None
    enable_script_security: bool = False
    location: Location = NOWHERE


@dataclass(frozen=True, slots=True)
class SyncGroup:
    name: str
    members: tuple[str, ...]
    notify: Notify = Notify()
    track_scripts: tuple[TrackedScript, ...] = ()
    track_interfaces: tuple[TrackedInterface, ...] = ()
    location: Location = NOWHERE


@dataclass(frozen=True, slots=True)
class VrrpInstance:
    name: str
    interface: str
    virtual_router_id: int
    priority: int = DEFAULT_PRIORITY
    initial_state: str = "BACKUP"  # "MASTER" | "BACKUP"
    version: int = 2
    advert_int: float = DEFAULT_ADVERT_INT
    preempt: bool = True
    preempt_delay: float = 0.0
    addresses: tuple[VirtualAddress, ...] = ()  # advertised and excluded alike
    unicast_src_ip: str | None = None
    unicast_peers: tuple[str, ...] = ()
    auth_pass: str | None = None  # auth_type PASS (VRRPv2 only)
    track_scripts: tuple[TrackedScript, ...] = ()
    track_interfaces: tuple[TrackedInterface, ...] = ()
    track_proxy: TrackProxy | None = None
    notify: Notify = Notify()
    garp: GarpSettings = GarpSettings()
    sync_group: SyncGroup | None = None  # the whole group, so an instance stands alone
    script_user: str | None = None
    script_group: str | None = None
    enable_script_security: bool = False
    router_id: str | None = None
    location: Location = NOWHERE

    @property
    def advertised_addresses(self) -> tuple[VirtualAddress, ...]:
        return tuple(a for a in self.addresses if not a.excluded)

    @property
    def unicast(self) -> bool:
        return bool(self.unicast_peers)

    @property
    def ipv6(self) -> bool:
        """Advertised over IPv6: the parser makes the advertised addresses one family."""
        adverts = self.advertised_addresses
        return bool(adverts) and ":" in adverts[0].address


@dataclass(frozen=True, slots=True)
class VrrpConfig:
    """Everything one or more keepalived.conf files said.

    `instances` is what goes into `haply.config.model.Config.vrrp`.
    """

    global_defs: GlobalDefs = GlobalDefs()
    scripts: tuple[VrrpScript, ...] = ()
    instances: tuple[VrrpInstance, ...] = ()
    sync_groups: tuple[SyncGroup, ...] = ()
    sources: tuple[str, ...] = ()

    def instance(self, name: str) -> VrrpInstance | None:
        for inst in self.instances:
            if inst.name == name:
                return inst
        return None

    def sync_group(self, name: str) -> SyncGroup | None:
        for group in self.sync_groups:
            if group.name == name:
                return group
        return None
