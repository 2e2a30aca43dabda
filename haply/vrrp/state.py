"""The VRRP router state machine of one instance, without I/O.

Events come in with `now` (seconds, any monotonic origin); each method returns the
actions the I/O shell must carry out, in order. Timers are data: `next_deadline()`
says when `on_timer(now)` must be called next. Everything that changes state lives
here; nothing here knows about sockets, netlink or processes.

Rules follow RFC 5798 6.4 (VRRPv3; VRRPv2 of RFC 3768 6.4 is the same machine
with whole-second intervals and no learned Master_Adver_Interval). Where haply
departs from the RFC it says so and why:

* A backup that out-ranks the current master (preempt on) takes over after
  Skew_Time instead of waiting for Master_Down_Interval: the RFC discards the
  lower advertisement and lets the down timer expire (3 intervals), which is
  only needed to detect a dead master; this master is alive and out-ranked, and
  Skew_Time still lets the highest of several backups go first.
* A master that hears a lower-ranked master (split brain: partition healed, or a
  peer that started as MASTER) answers at once with an advertisement instead of
  waiting for its next tick, and re-sends gratuitous ARP and re-runs its notify
  script, because the other node's ARP replies and notify scripts may have left
  neighbours and services pointing at it. At most once per advert interval.
* The other half of that: a master that steps down because it hears a better
  master sends one priority-0 advertisement. If the better master's advert
  arrived first, the loser would otherwise fall silent and the winner never
  learn that neighbours' ARP caches may point at the loser. A master that gets
  priority 0 answers at once (RFC 5798 6.4.3), which also resets any third
  router's down timer; and if it had been master for over an interval (so this
  was a conflict, not its own fresh preemption) it re-sends GARP and notify.
* A master whose priority changes advertises at once, so a better backup can
  preempt within Skew_Time rather than an interval later.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

INIT, BACKUP, MASTER, FAULT, STOP = "INIT", "BACKUP", "MASTER", "FAULT", "STOP"
PRIORITY_OWNER = 255  # RFC 5798 5.2.4: the router that owns the addresses
PRIORITY_STOP = 0  # RFC 5798 5.2.4: the master stops, take over now
MAX_BACKUP_PRIORITY = 254


# ------------------------------------------------------------------------ actions


@dataclass(frozen=True, slots=True)
class SendAdvert:
    priority: int


@dataclass(frozen=True, slots=True)
class AddAddresses:
    pass


@dataclass(frozen=True, slots=True)
class RemoveAddresses:
    pass


@dataclass(frozen=True, slots=True)
class SendGarp:
    repeat: int


@dataclass(frozen=True, slots=True)
class Notify:
    """Run the notify scripts for `state` (also sent again after a split brain)."""

    state: str
    priority: int
    reason: str


Action = SendAdvert | AddAddresses | RemoveAddresses | SendGarp | Notify


# ------------------------------------------------------------------------- params


@dataclass(frozen=True, slots=True)
class Params:
    vrid: int
    priority: int  # configured (base) priority, 1..255
    advert_int: float
    version: int = 3
    preempt: bool = True
    preempt_delay: float = 0.0
    initial_state: str = BACKUP
    local_ip: str = "0.0.0.0"  # the primary address we advertise from (tie-break)
    garp_repeat: int = 5
    garp_delay: float = 5.0  # second burst after becoming master; 0: none
    garp_refresh: float = 0.0  # periodic burst while master; 0: none
    garp_refresh_repeat: int = 1


def _ip(text: str) -> int:
    # RFC 5798 6.4.3: between equal priorities the higher primary address wins;
    # both sides are of the instance's one family, so the integers compare.
    try:
        return int(ipaddress.ip_address(text))
    except ValueError:
        return 0


# ------------------------------------------------------------------------ machine


@dataclass
class Machine:
    params: Params
    state: str = INIT
    priority: int = 0  # effective priority
    master: str | None = None  # address of the current master, ours when MASTER
    master_adver_int: float = 0.0
    faults: set[str] = field(default_factory=set)
    last_transition: float | None = None
    last_reason: str = ""
    transitions: int = 0
    # timers (absolute `now` values, None = not armed)
    adver_at: float | None = None
    master_down_at: float | None = None
    garp_delay_at: float | None = None
    garp_refresh_at: float | None = None
    lower_master_since: float | None = None
    last_conflict_reply: float | None = None
    # Preemption is make-before-break (see _claim): set while our claim waits
    # for the lower master to let go of the addresses.
    claiming: bool = False

    def __post_init__(self) -> None:
        self.priority = self.params.priority
        self.master_adver_int = self.params.advert_int

    # --- derived intervals (RFC 5798 6.1; RFC 3768 6.1 for v2)
    def skew_time(self) -> float:
        if self.params.version == 2:
            return (256 - self.priority) / 256
        return (256 - self.priority) * self.master_adver_int / 256

    def master_down_interval(self) -> float:
        interval = self.params.advert_int if self.params.version == 2 else self.master_adver_int
        return 3 * interval + self.skew_time()

    def next_deadline(self) -> float | None:
        if self.state == MASTER:
            timers = (self.adver_at, self.garp_delay_at, self.garp_refresh_at)
        elif self.state == BACKUP:
            timers = (self.master_down_at,)
        else:
            return None
        armed = [t for t in timers if t is not None]
        return min(armed) if armed else None

    # --- events
    def start(self, now: float) -> list[Action]:
        if self.faults:
            return self._to_fault(now, "startup with " + ", ".join(sorted(self.faults)))
        if self.params.priority == PRIORITY_OWNER:
            return self._to_master(now, "address owner (priority 255)")
        self._set_state(BACKUP, now, "startup")
        # A node configured `state MASTER` claims the role after one interval
        # unless it hears a better master; others wait the full down interval.
        wait = self.params.advert_int if self.params.initial_state == MASTER else self.master_down_interval()
        self.master_down_at = now + wait
        return [Notify(BACKUP, self.priority, "startup")]

    def on_timer(self, now: float) -> list[Action]:
        actions: list[Action] = []
        if self.state == BACKUP and self.master_down_at is not None and now >= self.master_down_at:
            if self.lower_master_since is not None and not self.claiming:
                return self._claim(now)
            return self._to_master(now, "no advertisement from a better master "
                                   f"({self.master or 'none seen'})")
        if self.state != MASTER:
            return actions
        if self.adver_at is not None and now >= self.adver_at:
            actions.append(SendAdvert(self.priority))
            # Keep the cadence, but never schedule in the past after a stall.
            self.adver_at = max(self.adver_at + self.params.advert_int, now + self.params.advert_int / 2)
        if self.garp_delay_at is not None and now >= self.garp_delay_at:
            actions.append(SendGarp(self.params.garp_repeat))
            self.garp_delay_at = None
        if self.garp_refresh_at is not None and now >= self.garp_refresh_at:
            actions.append(SendGarp(self.params.garp_refresh_repeat))
            self.garp_refresh_at = now + self.params.garp_refresh
        return actions

    def on_advert(self, now: float, src: str, priority: int, advert_int: float) -> list[Action]:
        """A verified advertisement for our VRID (see packet.check)."""
        if self.state == BACKUP:
            return self._backup_advert(now, src, priority, advert_int)
        if self.state == MASTER:
            return self._master_advert(now, src, priority, advert_int)
        if priority:
            self.master = src  # FAULT/INIT/STOP: only remember who is master
        return []

    def _backup_advert(self, now: float, src: str, priority: int, advert_int: float) -> list[Action]:
        if priority == PRIORITY_STOP:
            # RFC 5798 6.4.2: the master is leaving; take over after Skew_Time.
            # It removed its addresses before saying so (_master_advert), so a
            # claim of ours ends here too.
            self.master = None
            self.lower_master_since = None
            self.claiming = False
            self.master_down_at = now + self.skew_time()
            return []
        if self.params.version == 3:
            self.master_adver_int = advert_int  # RFC 5798 6.4.2
        if not self.params.preempt or priority >= self.priority:
            self.master = src
            self.lower_master_since = None
            self.master_down_at = now + self.master_down_interval()
            return []
        # We out-rank this master (see the module comment for the shortcut).
        self.master = src
        if self.claiming:
            return []  # the claim's own deadline stands
        if self.lower_master_since is None:
            self.lower_master_since = now
        take_at = max(now + self.skew_time(), self.lower_master_since + self.params.preempt_delay)
        self.master_down_at = min(now + self.master_down_interval(), take_at)
        return []

    def _master_advert(self, now: float, src: str, priority: int, advert_int: float) -> list[Action]:
        if priority == PRIORITY_STOP:
            # RFC 5798 6.4.3: another master is leaving; assert ourselves now.
            self.adver_at = now + self.params.advert_int
            actions: list[Action] = [SendAdvert(self.priority)]
            settled = self.last_transition is not None and now - self.last_transition >= self.params.advert_int
            if settled:
                actions += self._reassert(now, f"answered {src} giving up mastership")
            return actions
        if priority > self.priority or (priority == self.priority and _ip(src) > _ip(self.params.local_ip)):
            if self.params.version == 3:
                self.master_adver_int = advert_int
            reason = (f"{'higher' if priority > self.priority else 'equal'} priority {priority} "
                      f"advertised by {src}")
            leaving = self._to_backup(now, reason)
            self.master = src
            # Addresses go first, then the priority-0 advert that tells the
            # winner it may take them: never two holders (see _claim).
            return ([a for a in leaving if isinstance(a, RemoveAddresses)]
                    + [SendAdvert(PRIORITY_STOP)]
                    + [a for a in leaving if not isinstance(a, RemoveAddresses)])
        # Split brain: another master that loses to us.
        actions = self._reassert(now, f"answered lower-priority master {src} (priority {priority})")
        if not actions:
            return []
        self.adver_at = now + self.params.advert_int
        return [SendAdvert(self.priority)] + actions

    def _reassert(self, now: float, reason: str) -> list[Action]:
        """GARP and notify again after a conflict, at most once per interval."""
        if self.last_conflict_reply is not None and now - self.last_conflict_reply < self.params.advert_int:
            return []
        self.last_conflict_reply = now
        self.last_reason = reason
        return [SendGarp(self.params.garp_repeat), Notify(MASTER, self.priority, reason)]

    def set_priority(self, now: float, priority: int) -> list[Action]:
        """Effective priority from tracking; the owner's 255 never moves."""
        if self.params.priority == PRIORITY_OWNER:
            return []
        priority = max(1, min(MAX_BACKUP_PRIORITY, priority))
        if priority == self.priority:
            return []
        self.priority = priority
        if self.state == MASTER:
            self.adver_at = now + self.params.advert_int
            return [SendAdvert(priority)]
        return []

    def set_fault(self, now: float, reason: str, failed: bool) -> list[Action]:
        """A tracked thing that forces FAULT (weight 0) failed or recovered."""
        before = bool(self.faults)
        (self.faults.add if failed else self.faults.discard)(reason)
        if self.state in (INIT, STOP) or before == bool(self.faults):
            return []
        if self.faults:
            return self._to_fault(now, reason)
        if self.params.priority == PRIORITY_OWNER:
            return self._to_master(now, f"recovered: {reason}")
        actions = self._leave(now, BACKUP, f"recovered: {reason}")
        self.master_down_at = now + self.master_down_interval()
        return actions

    def shutdown(self, now: float, reason: str = "shutdown") -> list[Action]:
        actions: list[Action] = []
        if self.state == MASTER:
            actions.append(SendAdvert(PRIORITY_STOP))  # RFC 5798 6.4.3 "Shutdown"
        if self.state in (MASTER, BACKUP, FAULT):
            actions.append(RemoveAddresses())
        self._set_state(STOP, now, reason)
        self._disarm()
        actions.append(Notify(STOP, self.priority, reason))
        return actions

    # --- transitions
    def _set_state(self, state: str, now: float, reason: str) -> None:
        if state != self.state:
            self.transitions += 1
        self.state = state
        self.last_transition = now
        self.last_reason = reason

    def _disarm(self) -> None:
        self.adver_at = self.master_down_at = self.garp_delay_at = self.garp_refresh_at = None
        self.lower_master_since = None
        self.claiming = False

    def _claim(self, now: float) -> list[Action]:
        """Preempt a live lower-priority master without a moment of two holders.

        Taking the addresses first (as RFC 5798 6.4.2 has a new master do) leaves
        them on both nodes until the old master hears our first advert. Instead we
        advertise while still BACKUP; the old master removes its addresses and then
        answers priority 0, on which we take over after Skew_Time. A peer that does
        not answer that way (keepalived steps down silently) gives up the role when
        it hears us anyway: we take over after one interval regardless.
        """
        self.claiming = True
        self.master_down_at = now + self.master_adver_int
        return [SendAdvert(self.priority)]

    def _to_master(self, now: float, reason: str) -> list[Action]:
        self._set_state(MASTER, now, reason)
        self._disarm()
        self.master = self.params.local_ip
        self.adver_at = now + self.params.advert_int
        if self.params.garp_delay > 0:
            self.garp_delay_at = now + self.params.garp_delay
        if self.params.garp_refresh > 0:
            self.garp_refresh_at = now + self.params.garp_refresh
        # RFC 5798 6.4.2: advertise, then broadcast gratuitous ARP. The addresses
        # go up first so the ARP names an address that already answers.
        return [AddAddresses(), SendAdvert(self.priority), SendGarp(self.params.garp_repeat),
                Notify(MASTER, self.priority, reason)]

    def _leave(self, now: float, state: str, reason: str) -> list[Action]:
        was_master = self.state == MASTER
        self._set_state(state, now, reason)
        self._disarm()
        actions: list[Action] = []
        if was_master or state == FAULT:
            actions.append(RemoveAddresses())
        actions.append(Notify(state, self.priority, reason))
        return actions

    def _to_backup(self, now: float, reason: str) -> list[Action]:
        actions = self._leave(now, BACKUP, reason)
        self.master_down_at = now + self.master_down_interval()
        return actions

    def _to_fault(self, now: float, reason: str) -> list[Action]:
        actions: list[Action] = []
        if self.state == MASTER:
            actions.append(SendAdvert(PRIORITY_STOP))  # hand over at once
        self.master = None
        return actions + self._leave(now, FAULT, f"fault: {reason}")

    def snapshot(self) -> dict:
        return {
            "state": self.state,
            "priority": self.priority,
            "base_priority": self.params.priority,
            "master": self.master,
            "last_transition": self.last_transition,
            "reason": self.last_reason,
            "transitions": self.transitions,
            "faults": sorted(self.faults),
        }
