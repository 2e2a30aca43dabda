"""The rise/fall machine of one checked server: results and time in, decisions out.

This module knows no socket and no clock. The scheduler feeds it check results
(`check_passed` / `check_failed`), passive observations from live traffic
(`observe`) and agent replies, each with `now`, and it answers with a
`Transition` when the server changes between UP and DOWN. It also says how long to
wait before the next check (`interval`) and what weight slowstart allows
(`slowstart_weight`).

Semantics follow HAProxy's configuration manual (section 5.2, `rise`, `fall`,
`inter`, `fastinter`, `downinter`, `slowstart`, `observe`, `error-limit`,
`on-error`), checked against HAProxy 2.6 run as a black box:

* A health counter runs from 0 to rise + fall - 1. The server is UP while the
  counter is at least `rise`.
* While UP, a failure takes one off (at `rise`, the next failure marks it DOWN
  and the counter drops to 0) and any success restores the top at once: only
  `fall` failures *in a row* bring a healthy server down.
* While DOWN, a success adds one (reaching `rise` marks it UP at the top) and
  any failure drops it back to 0: only `rise` successes in a row bring it back.
* At start a checked server is UP with the counter at `rise`, the lowest UP
  value: its first failed check marks it DOWN, its first success makes it
  fully healthy. A freshly started balancer so never sends traffic to a dead
  server for fall*inter seconds.
* Between the two ends the server is "going down" (UP, counter below the top)
  or "going up" (DOWN, counter above 0); there `fastinter` applies, `downinter`
  while fully DOWN, `inter` while fully UP; an unset one falls back to `inter`.

All of this was read off HAProxy 2.6's `option log-health-checks` lines
("Health check for server b/s1 succeeded, ..., status: 2/3 DOWN") for
sequences of passing and failing checks, at start and in steady state.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

# observe modes and on-error actions, as spelled in haproxy.cfg
OBSERVE_NONE = "none"
OBSERVE_LAYER4 = "layer4"
OBSERVE_LAYER7 = "layer7"

ON_ERROR_FASTINTER = "fastinter"
ON_ERROR_FAIL_CHECK = "fail-check"
ON_ERROR_SUDDEN_DEATH = "sudden-death"
ON_ERROR_MARK_DOWN = "mark-down"
ON_ERROR_MODES = (ON_ERROR_FASTINTER, ON_ERROR_FAIL_CHECK, ON_ERROR_SUDDEN_DEATH,
                  ON_ERROR_MARK_DOWN)

# HAProxy manual, `error-limit`: "By default it is set to 10 consecutive errors."
DEFAULT_ERROR_LIMIT = 10
# HAProxy manual, `on-error`: fail-check is the default.
DEFAULT_ON_ERROR = ON_ERROR_FAIL_CHECK

# Passive events reported by the proxy for one exchange with the server.
EV_L4_OK = "l4-ok"            # connection established
EV_L4_ERROR = "l4-error"      # connection refused/reset/unreachable
EV_L4_TIMEOUT = "l4-timeout"  # connect timeout
EV_L7_BAD = "l7-bad"          # unparsable or truncated response
EV_L7_TIMEOUT = "l7-timeout"  # server did not answer in `timeout server`
L4_EVENTS = frozenset({EV_L4_OK, EV_L4_ERROR, EV_L4_TIMEOUT})

# Wording of the info part of passive-health log lines ("last one was: ..."),
# as HAProxy 2.6 logs them (observed: a refused connection gives "L4
# unsuccessful connection", a 503 under observe layer7 "Wrong http response").
_EVENT_WORDS = {
    EV_L4_ERROR: "L4 unsuccessful connection",
    EV_L4_TIMEOUT: "L4 unsuccessful connection",
    EV_L7_BAD: "Invalid http response",
    EV_L7_TIMEOUT: "Read timeout (http)",
}
HTTP_STATUS_ERROR_WORDS = "Wrong http response"


def http_status_is_error(code: int) -> bool:
    """`observe layer7`: the manual lists 100 to 499, 501 and 505 as valid codes."""
    if 100 <= code <= 499 or code in (501, 505):
        return False
    return True


@dataclass(frozen=True, slots=True)
class Transition:
    """The server changed between UP and DOWN at `now`."""

    up: bool
    now: float
    status: str = ""   # HAProxy check status code: L4CON, L7STS, ...
    reason: str = ""   # full reason text for logs and pages
    duration: float | None = None


@dataclass(frozen=True, slots=True)
class Timing:
    inter: float = 2.0
    fastinter: float | None = None
    downinter: float | None = None
    rise: int = 2
    fall: int = 3

    def __post_init__(self) -> None:
        if self.rise < 1 or self.fall < 1:
            raise ValueError("rise and fall must be at least 1")
        if self.inter <= 0:
            raise ValueError("inter must be positive")


@dataclass(frozen=True, slots=True)
class Passive:
    """`observe`, `error-limit` and `on-error` of one server."""

    observe: str = OBSERVE_NONE
    error_limit: int = DEFAULT_ERROR_LIMIT
    on_error: str = DEFAULT_ON_ERROR

    def __post_init__(self) -> None:
        if self.observe not in (OBSERVE_NONE, OBSERVE_LAYER4, OBSERVE_LAYER7):
            raise ValueError(f"unknown observe mode {self.observe!r}")
        if self.on_error not in ON_ERROR_MODES:
            raise ValueError(f"unknown on-error mode {self.on_error!r}")
        if self.error_limit < 1:
            raise ValueError("error-limit must be at least 1")


class Health:
    """Rise/fall state of one server. Mutable, one per checked server."""

    __slots__ = ("timing", "passive", "health", "consecutive_errors", "force_fast",
                 "agent_down", "last_up_at", "_top")

    def __init__(self, timing: Timing, passive: Passive = Passive(), up: bool = True,
                 now: float = 0.0) -> None:
        self.timing = timing
        self.passive = passive
        self._top = timing.rise + timing.fall - 1
        self.health = timing.rise if up else 0
        self.consecutive_errors = 0
        # set by on-error: use fastinter once even where inter would apply
        self.force_fast = False
        # an agent said down/fail/stopped: DOWN whatever the checks say
        self.agent_down = False
        # None at start: slowstart does not apply to servers up at startup
        self.last_up_at: float | None = None

    # ----------------------------------------------------------------- queries

    @property
    def checks_up(self) -> bool:
        return self.health >= self.timing.rise

    @property
    def up(self) -> bool:
        return self.checks_up and not self.agent_down

    @property
    def going_down(self) -> bool:
        return self.checks_up and self.health < self._top

    @property
    def going_up(self) -> bool:
        return not self.checks_up and self.health > 0

    def check_status_text(self) -> str:
        """`status: 2/3 UP` / `status: 1/2 DOWN` as in HAProxy's health-check logs."""
        t = self.timing
        if self.checks_up:
            return f"{self.health - t.rise + 1}/{t.fall} UP"
        return f"{self.health}/{t.rise} DOWN"

    def status_text(self) -> str:
        """Stats-page wording: "UP", "UP 1/3" (going down), "DOWN 1/2" (going up)."""
        t = self.timing
        if self.agent_down:
            return "DOWN (agent)"
        if self.checks_up:
            if self.health < self._top:
                return f"UP {self.health - t.rise + 1}/{t.fall}"
            return "UP"
        if self.health > 0:
            return f"DOWN {self.health}/{t.rise}"
        return "DOWN"

    def interval(self) -> float:
        """Seconds until the next check, from the state after the last result."""
        t = self.timing
        fast = t.fastinter or t.inter
        if self.force_fast:
            return fast
        if self.health == self._top:
            return t.inter
        if self.health == 0:
            return t.downinter or t.inter
        return fast

    # ----------------------------------------------------------------- results

    def check_passed(self, now: float, status: str = "", reason: str = "",
                     duration: float | None = None) -> Transition | None:
        was_up = self.up
        self.force_fast = False
        if self.checks_up:
            self.health = self._top
        else:
            self.health += 1
            if self.health >= self.timing.rise:
                self.health = self._top
        return self._transition(was_up, now, status, reason, duration)

    def check_failed(self, now: float, status: str = "", reason: str = "",
                     duration: float | None = None) -> Transition | None:
        was_up = self.up
        self.force_fast = False
        if self.checks_up and self.health > self.timing.rise:
            self.health -= 1
        else:
            self.health = 0
        return self._transition(was_up, now, status, reason, duration)

    def agent_state(self, down: bool, now: float, status: str = "", reason: str = "",
                    duration: float | None = None) -> Transition | None:
        """An agent reply of down/fail/stopped (down=True) or up (down=False)."""
        was_up = self.up
        self.agent_down = down
        return self._transition(was_up, now, status, reason, duration)

    def force(self, up: bool, now: float, reason: str = "") -> Transition | None:
        """Runtime API `set server B/S health up|down`: jump to full health or
        to 0, whatever the checks said until now."""
        was_up = self.up
        self.health = self._top if up else 0
        return self._transition(was_up, now, "", reason, None)

    def observe(self, event: str | int, now: float) -> Transition | None:
        """A passive event from live traffic: one of the EV_* names, or an HTTP
        status code. Returns a transition when on-error brought the server down.

        Only errors in a row count: any good exchange resets the count. Reaching
        `error-limit` triggers `on-error` and starts counting anew.
        """
        mode = self.passive.observe
        if mode == OBSERVE_NONE:
            return None
        if isinstance(event, int):
            if mode != OBSERVE_LAYER7:
                return None
            error = http_status_is_error(event)
            words = HTTP_STATUS_ERROR_WORDS
        else:
            if mode == OBSERVE_LAYER4 and event not in L4_EVENTS:
                return None
            error = event != EV_L4_OK
            words = _EVENT_WORDS.get(event, event)
        if not error:
            self.consecutive_errors = 0
            return None
        self.consecutive_errors += 1
        if self.consecutive_errors < self.passive.error_limit:
            return None
        count = self.consecutive_errors
        self.consecutive_errors = 0
        reason = (f"Health analyze, info: \"Detected {count} consecutive errors, "
                  f"last one was: {words}\"")
        return self._on_error(now, reason)

    def _on_error(self, now: float, reason: str) -> Transition | None:
        action = self.passive.on_error
        was_up = self.up
        if action == ON_ERROR_FAIL_CHECK:
            transition = self.check_failed(now, "", reason)
        elif action == ON_ERROR_SUDDEN_DEATH:
            # "a pre-fatal failed health check": one more failure marks it down
            if self.checks_up:
                self.health = self.timing.rise
            transition = self._transition(was_up, now, "", reason, None)
        elif action == ON_ERROR_MARK_DOWN:
            self.health = 0
            transition = self._transition(was_up, now, "", reason, None)
        else:  # fastinter
            transition = None
        # every mode forces fastinter until the next real check result
        self.force_fast = True
        return transition

    def _transition(self, was_up: bool, now: float, status: str, reason: str,
                    duration: float | None) -> Transition | None:
        up = self.up
        if up == was_up:
            return None
        if up:
            self.last_up_at = now
        return Transition(up, now, status, reason, duration)

    # ---------------------------------------------------------------- slowstart

    def slowstart_weight(self, weight: int, slowstart: float, now: float) -> int:
        return slowstart_weight(weight, slowstart, self.last_up_at, now)


def slowstart_weight(weight: int, slowstart: float, up_since: float | None,
                     now: float) -> int:
    """Weight allowed `now` for a server that came UP at `up_since`.

    HAProxy manual, `slowstart`: the weight grows linearly from 0 to 100% over the
    slowstart period after a server comes back UP; servers UP at startup are not
    affected (up_since None). A server with a non-zero weight never drops to 0,
    or it would never receive the traffic that completes its ramp.
    """
    if slowstart <= 0 or up_since is None or weight <= 0:
        return weight
    elapsed = now - up_since
    if elapsed >= slowstart:
        return weight
    if elapsed <= 0:
        return 1
    return max(1, min(weight, math.ceil(weight * elapsed / slowstart)))


def slowstart_done(slowstart: float, up_since: float | None, now: float) -> bool:
    return slowstart <= 0 or up_since is None or now - up_since >= slowstart


__all__ = [
    "DEFAULT_ERROR_LIMIT", "DEFAULT_ON_ERROR", "EV_L4_ERROR", "EV_L4_OK", "EV_L4_TIMEOUT",
    "EV_L7_BAD", "EV_L7_TIMEOUT", "Health", "OBSERVE_LAYER4", "OBSERVE_LAYER7",
    "OBSERVE_NONE", "ON_ERROR_FAIL_CHECK", "ON_ERROR_FASTINTER", "ON_ERROR_MARK_DOWN",
    "ON_ERROR_SUDDEN_DEATH", "Passive", "Timing", "Transition", "http_status_is_error",
    "slowstart_done", "slowstart_weight",
]
