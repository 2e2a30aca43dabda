"""The life of one program instance, without processes or clocks.

An `Instance` is a state machine in the h11 manner: the supervisor tells it
what happened (`start`, `spawned`, `exited`, `timer`, `stop`, `restart`,
`check_failed`) with the time as an argument, and it answers with actions for
the shell to carry out (`Spawn`, `Terminate`, `Kill`, `Wake`, `Log`). Every
state change lives here; supervisor.py only runs processes and timers.

    STOPPED --start--> STARTING --spawned--> RUNNING
    RUNNING --exited (not asked)--> BACKOFF --timer--> STARTING
                                \\-> FATAL   (crash_limit exits within crash_window)
    RUNNING/STARTING --stop--> STOPPING --exited--> STOPPED
    STOPPING --timer (timeout stop)--> Kill, still STOPPING until it exits
    RUNNING --restart / check_failed--> STOPPING --exited--> STARTING

Why a crash window rather than supervisord's "startretries": an API worker that
crashes once a day must always come back, one that crashes five times in a
minute is broken (monit's "if 5 restarts within 5 cycles then unmonitor"), and
restarting it forever only fills the logs. The restart delay doubles with each
exit inside the window (exponential backoff, capped), so a crash loop costs
little until the limit is reached. A restart asked by an operator is not a
crash; a restart because health checks failed is one (monit counts it too).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from haply.config.model import Program

STOPPED = "STOPPED"
STARTING = "STARTING"
RUNNING = "RUNNING"
BACKOFF = "BACKOFF"
STOPPING = "STOPPING"
FATAL = "FATAL"
STATES = (STOPPED, STARTING, RUNNING, BACKOFF, STOPPING, FATAL)
ALIVE = frozenset({STARTING, RUNNING, STOPPING})  # a process may exist


class PolicyError(Exception):
    """An event that makes no sense in the current state (our bug, not the child's)."""


# ------------------------------------------------------------------ actions


@dataclass(frozen=True, slots=True)
class Spawn:
    """Start the process now."""


@dataclass(frozen=True, slots=True)
class Terminate:
    """Ask the process to stop (SIGTERM to its group, or the stop command)."""


@dataclass(frozen=True, slots=True)
class Kill:
    """SIGKILL to the process group: it outlived its stop timeout."""


@dataclass(frozen=True, slots=True)
class Wake:
    """Call `timer()` at this time (None: no timer). One timer per instance."""

    at: float | None


@dataclass(frozen=True, slots=True)
class Log:
    level: str  # "info" | "warning" | "alert"
    message: str


Action = Spawn | Terminate | Kill | Wake | Log


# ------------------------------------------------------------------ instance


def backoff_delay(program: Program, crashes: int) -> float:
    """Delay before the restart that follows the n-th recent crash (n >= 1):
    backoff, 2 x backoff, 4 x backoff ... capped at backoff_max."""
    if crashes <= 1:
        return min(program.backoff, program.backoff_max)
    # cap the exponent: 2**64 seconds is already past any maximum
    return min(program.backoff * 2 ** min(crashes - 1, 64), program.backoff_max)


@dataclass
class Instance:
    program: Program
    number: int  # 1-based
    state: str = STOPPED
    pid: int | None = None
    started_at: float | None = None  # when the current process was spawned
    restarts: int = 0  # processes started after the first one
    last_exit: str = ""  # "exit 1", "signal 9", "spawn failed: ..."
    crashes: deque = field(default_factory=deque)  # times of recent unrequested exits
    restart_after_stop: bool = False
    spawned_once: bool = False
    spawning: bool = False  # Spawn asked, spawned/spawn_failed not yet told

    @property
    def name(self) -> str:
        return f"{self.program.name}:{self.number}"

    @property
    def port(self) -> int | None:
        return self.program.port_of(self.number)

    def uptime(self, now: float) -> float | None:
        if self.state in (RUNNING, STOPPING) and self.started_at is not None:
            return max(0.0, now - self.started_at)
        return None

    # -- operator / host events

    def start(self, now: float) -> list[Action]:
        """Start (a no-op when already starting or running)."""
        if self.state in (STARTING, RUNNING):
            return []
        if self.state == STOPPING:
            self.restart_after_stop = True
            return []
        self.crashes.clear()  # an operator start forgives the past (FATAL included)
        return self._spawn(now)

    def stop(self, now: float) -> list[Action]:
        self.restart_after_stop = False
        if self.state in (STARTING, RUNNING):
            self.state = STOPPING
            if self.spawning:  # terminated as soon as it exists (spawned)
                return [Wake(now + self.program.stop_timeout)]
            return [Terminate(), Wake(now + self.program.stop_timeout),
                    Log("info", f"program {self.name}: stopping pid {self.pid}")]
        if self.state in (BACKOFF, FATAL):
            self.state = STOPPED
            return [Wake(None)]
        return []  # STOPPED, or already STOPPING

    def restart(self, now: float) -> list[Action]:
        """Operator restart: stop if running, then start again; not a crash."""
        if self.state in (STARTING, RUNNING):
            actions = self.stop(now)
            self.restart_after_stop = True
            return actions
        if self.state == STOPPING:
            self.restart_after_stop = True
            return []
        self.crashes.clear()
        return [Wake(None), *self._spawn(now)]

    def check_failed(self, now: float) -> list[Action]:
        """Health checks marked the instance DOWN: restart it (monit's
        "if failed port ... then restart"), counted as a crash."""
        if self.state != RUNNING:
            return []
        actions = self.stop(now)
        self.restart_after_stop = True
        self._record_crash(now)
        return [Log("warning", f"program {self.name}: health checks failed, restarting"), *actions]

    # -- process events

    def spawned(self, now: float, pid: int) -> list[Action]:
        if not self.spawning:
            raise PolicyError(f"{self.name}: spawned while {self.state} without a spawn")
        self.spawning = False
        self.pid, self.started_at = pid, now
        log = Log("info", f"program {self.name}: started pid {pid}")
        if self.state == STOPPING:  # stopped while it was being started
            return [log, Terminate(), Wake(now + self.program.stop_timeout)]
        self.state = RUNNING
        return [log]

    def spawn_failed(self, now: float, reason: str) -> list[Action]:
        if not self.spawning:
            raise PolicyError(f"{self.name}: spawn failed while {self.state} without a spawn")
        self.spawning = False
        if self.state == STOPPING:
            self.state = STOPPED
            return [Wake(None)]
        self.last_exit = f"spawn failed: {reason}"
        self.state = RUNNING  # treated as a process that exited at once
        return self.exited(now, self.last_exit)

    def exited(self, now: float, how: str) -> list[Action]:
        """The process is gone (how: "exit N" / "signal N")."""
        if self.state not in ALIVE or self.spawning:
            raise PolicyError(f"{self.name}: exit while {self.state}")
        was, pid = self.state, self.pid
        self.pid, self.last_exit = None, how
        if was == STOPPING:
            self.state = STOPPED
            log = Log("info", f"program {self.name}: pid {pid} stopped ({how})")
            if self.restart_after_stop:
                self.restart_after_stop = False
                if self._fatal(now):
                    return [log, *self._go_fatal()]
                return [log, Wake(None), *self._spawn(now)]
            return [log, Wake(None)]
        # not asked for: a crash
        self._record_crash(now)
        what = f"pid {pid} exited unexpectedly" if pid is not None else "could not be started"
        log = Log("warning", f"program {self.name}: {what} ({how})")
        if self._fatal(now):
            return [log, *self._go_fatal()]
        delay = backoff_delay(self.program, len(self.crashes))
        self.state = BACKOFF
        return [log, Wake(now + delay),
                Log("info", f"program {self.name}: restarting in {delay:g}s")]

    def timer(self, now: float) -> list[Action]:
        if self.state == BACKOFF:
            return self._spawn(now)
        if self.state == STOPPING:
            if self.pid is None:
                return []  # still being spawned: terminated when it exists
            return [Kill(), Wake(None),
                    Log("warning", f"program {self.name}: pid {self.pid} still running "
                                   f"{self.program.stop_timeout:g}s after the stop request, killing it")]
        return []  # a late timer for a state already left

    # -- helpers

    def _spawn(self, now: float) -> list[Action]:
        self.state, self.spawning = STARTING, True
        if self.spawned_once:
            self.restarts += 1
        self.spawned_once = True
        return [Spawn()]

    def _record_crash(self, now: float) -> None:
        self.crashes.append(now)
        self._forget(now)

    def _forget(self, now: float) -> None:
        while self.crashes and self.crashes[0] <= now - self.program.crash_window:
            self.crashes.popleft()

    def _fatal(self, now: float) -> bool:
        self._forget(now)
        return len(self.crashes) >= self.program.crash_limit

    def _go_fatal(self) -> list[Action]:
        self.state = FATAL
        return [Wake(None), Log("alert", f"program {self.name}: {len(self.crashes)} exits within "
                                         f"{self.program.crash_window:g}s, giving up (FATAL); "
                                         f"'start program {self.name}' tries again")]


# ------------------------------------------------------------ rolling restart

# How long a rolling restart waits, per instance, for requests in flight to
# finish once the instance is drained, and for the new process to pass its
# health checks. The drain bound follows HAProxy's own `timeout server` order
# of magnitude for API calls; the health bound leaves room for `rise` checks
# at the default 2 s interval after a slow start.
DRAIN_TIMEOUT = 30.0
HEALTHY_TIMEOUT = 60.0


def rolling_order(instances: list[Instance]) -> list[Instance]:
    """Which instances to restart and in what order: the ones that are not
    serving (not RUNNING) first, since restarting them costs no capacity,
    then the running ones by number."""
    return sorted(instances, key=lambda i: (i.state == RUNNING, i.number))


__all__ = [
    "ALIVE", "BACKOFF", "DRAIN_TIMEOUT", "FATAL", "HEALTHY_TIMEOUT", "Instance", "Kill", "Log", "PolicyError",
    "RUNNING", "STARTING", "STATES", "STOPPED", "STOPPING", "Spawn", "Terminate", "Wake", "backoff_delay",
    "rolling_order",
]
