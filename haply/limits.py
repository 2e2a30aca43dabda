"""The open-file limit (RLIMIT_NOFILE) that `maxconn` needs, and raising it.

A proxy that runs out of descriptors fails in the worst way: accept() returns
EMFILE while the listening socket stays readable, server connections fail with a
503 that looks like the servers' fault, and health checks start failing. HAProxy
therefore computes its own limit from maxconn at start (configuration manual,
`ulimit-n`: "By default, it is automatically computed") and haply does the same,
before binding, so that a limit it cannot get is a start error naming the
number, not a slow failure under load.

The count (`descriptors_needed`), per process:

    2 x maxconn          each proxied connection holds the client's socket and
                         the server's (an idle pooled server connection stands
                         in for a finished client one, so 2 per slot still bounds it)
  + listeners            one per bound address and port and per worker (the
                         master keeps one socket per worker in each bind's
                         SO_REUSEPORT group), plus the stats sockets
  + stats connections    `stats maxconn` per stats socket (HAProxy's default 10)
  + checks               one per server with `check`, one more with `agent-check`
  + log sockets          one per network or UNIX log target
  + programs             three per supervised program (pidfd and two output pipes)
  + workers              three per proxy worker (its channel, pidfd, a spare)
  + RESERVED_DESCRIPTORS stdio, the event loop (epoll, self-pipe, signal socket),
                         the master's child channels and pidfds, certificate and
                         error files read at start, name resolution

HAProxy 2.6, observed through `show info` (Maxsock): 2 x maxconn + listeners +
checked servers + a fixed part of about 26. haply's fixed part is larger because
a Python process opens more at start; the per-connection terms are the same.

The computation is pure (`plan_nofile` takes the current limits as arguments);
`ensure_nofile` reads and sets the limits around it.
"""

from __future__ import annotations

import os
import resource
from dataclasses import dataclass

from haply.config.model import Config

# See the module docstring: what a running haply has open besides connections.
RESERVED_DESCRIPTORS = 32
# HAProxy's default `stats maxconn` (configuration manual, section 3.1).
DEFAULT_STATS_MAXCONN = 10
# A supervised program: its pidfd and the two pipes carrying its output.
DESCRIPTORS_PER_PROGRAM = 3
# A proxy worker, in the master: its socketpair channel, its pidfd, one spare.
DESCRIPTORS_PER_WORKER = 3
# Where Linux publishes the largest RLIMIT_NOFILE it allows (proc(5), fs.nr_open).
NR_OPEN_PATH = "/proc/sys/fs/nr_open"
# Log targets that do not open a socket of their own.
NO_SOCKET_LOGS = frozenset({"global", "stdout", "stderr"})


class LimitError(Exception):
    """The open-file limit haply needs cannot be set; the message says how to get it."""


@dataclass(frozen=True, slots=True)
class Need:
    """How many descriptors, and why (the parts are quoted in messages)."""

    maxconn: int | None  # None: neither global nor every frontend sets one
    connections: int
    listeners: int
    checks: int
    logs: int
    other: int  # stats connections, programs, reserved

    @property
    def total(self) -> int:
        return self.connections + self.listeners + self.checks + self.logs + self.other

    def explain(self) -> str:
        return (f"2 per connection for maxconn {self.maxconn}, {self.listeners} for listeners, "
                f"{self.checks} for health checks, {self.logs} for log sockets, "
                f"{self.other} for the process itself")


@dataclass(frozen=True, slots=True)
class Plan:
    """What to do with RLIMIT_NOFILE: set (soft, hard), or None to leave it."""

    limits: tuple[int, int] | None
    warning: str | None = None


def effective_maxconn(config: Config) -> int | None:
    """The most connections the process can hold at once.

    The global maxconn when set (HAProxy applies it to the whole process);
    otherwise the sum of the frontends' own limits when every frontend has one;
    otherwise None: nothing bounds the number of connections.
    """
    if config.global_.maxconn:
        return config.global_.maxconn
    frontends = config.frontends
    if frontends and all(p.maxconn for p in frontends):
        return sum(p.maxconn for p in frontends)
    if not frontends:
        return 0
    return None


def _global_words(config: Config, keyword: str) -> tuple[str, ...] | None:
    found = None
    for name, args in config.global_.extra:
        if name == keyword:
            found = tuple(args)
    return found


def _stats_maxconn(config: Config) -> int:
    words = _global_words(config, "stats maxconn")
    if words and words[0].isdigit():
        return int(words[0])
    return DEFAULT_STATS_MAXCONN


def descriptors_needed(config: Config) -> Need:
    maxconn = effective_maxconn(config)
    sockets = len(config.global_.stats_sockets)
    workers = max(1, config.global_.nbthread)  # haply.master: one worker per thread asked
    listeners = sum(len(p.binds) for p in config.frontends) * workers + sockets
    checks = sum(int(s.check) + int(s.agent_check) for p in config.backends for s in p.servers)
    targets = list(config.global_.logs) + [t for p in config.proxies for t in p.logs]
    logs = sum(1 for t in targets if t.address not in NO_SOCKET_LOGS)
    other = (sockets * _stats_maxconn(config) + len(config.programs) * DESCRIPTORS_PER_PROGRAM
             + (DESCRIPTORS_PER_WORKER * workers if workers > 1 else 0) + RESERVED_DESCRIPTORS)
    return Need(maxconn, 2 * (maxconn or 0), listeners, checks, logs, other)


def configured_ulimit(config: Config) -> int | None:
    """`ulimit-n N` from the global section, checked here because the parser
    keeps it raw. Raises LimitError for anything but a positive number."""
    words = _global_words(config, "ulimit-n")
    if words is None:
        return None
    if len(words) != 1 or not words[0].isdigit() or int(words[0]) == 0:
        raise LimitError(f"invalid 'ulimit-n {' '.join(words)}': expected a positive number of files")
    return int(words[0])


def _how(number: int) -> str:
    return (f"start haply with a higher limit (`ulimit -n {number}` in the shell that starts it, "
            f"LimitNOFILE={number} in its systemd unit) or lower maxconn")


def plan_nofile(config: Config, soft: int, hard: int, root: bool,
                nr_open: int | None = None) -> Plan:
    """Decide the new (soft, hard) limits. Pure: the current limits, whether the
    process may raise the hard limit (root: holds CAP_SYS_RESOURCE), and the
    kernel's ceiling come in.

    `hard` may be resource.RLIM_INFINITY. Never lowers a limit the process
    already has, except to apply an explicit `ulimit-n`. Raises LimitError with
    the number needed and how to get it.
    """
    infinite = resource.RLIM_INFINITY
    explicit = configured_ulimit(config)
    need = descriptors_needed(config)
    if explicit is None and need.maxconn is None:
        # No maxconn anywhere: nothing to size from. Take what the hard limit
        # allows, as HAProxy does when it derives maxconn from the limit.
        if hard != infinite and soft < hard:
            return Plan((hard, hard), _unbounded_warning(hard))
        return Plan(None, _unbounded_warning(soft if hard == infinite else hard))
    warning = None
    if explicit is not None:
        target = explicit
        if explicit < need.total:
            warning = (f"ulimit-n {explicit} is lower than the {need.total} open files haply "
                       f"needs ({need.explain()}); connections beyond about "
                       f"{max(0, (explicit - need.total + need.connections) // 2)} will fail")
    else:
        target = need.total
        if soft >= target:
            return Plan(None)
    if nr_open is not None and target > nr_open:
        raise LimitError(
            f"{target} open files are needed ({need.explain()}) but the kernel allows at most "
            f"{nr_open} per process (fs.nr_open): raise it with `sysctl -w fs.nr_open={target}` "
            "or lower maxconn")
    if hard == infinite or target <= hard:
        return Plan((target, hard), warning)
    if root:
        return Plan((target, target), warning)
    raise LimitError(
        f"{target} open files are needed ({need.explain()}) but the hard limit is {hard} "
        f"and only root (with CAP_SYS_RESOURCE) can raise it: {_how(target)}")


def _unbounded_warning(limit: int) -> str:
    return (f"no maxconn in the global section or on every frontend: connections are "
            f"bounded only by the open-file limit ({limit}), about "
            f"{max(0, (limit - RESERVED_DESCRIPTORS) // 2)} at once; set a global maxconn")


def _nr_open() -> int | None:
    try:
        with open(NR_OPEN_PATH) as handle:
            return int(handle.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None


# CAP_SYS_RESOURCE (capabilities(7)): what raising a hard limit takes. Root in a
# container often lacks it, so being uid 0 is not enough.
CAP_SYS_RESOURCE = 24


def can_raise_hard_limit() -> bool:
    """True if this process holds CAP_SYS_RESOURCE in its effective set."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("CapEff:"):
                    return bool(int(line.split()[1], 16) >> CAP_SYS_RESOURCE & 1)
    except (OSError, ValueError, IndexError):
        pass
    return os.geteuid() == 0


def ensure_nofile(config: Config) -> str | None:
    """Raise RLIMIT_NOFILE to what the configuration needs, before binding.

    Returns a warning to print (unless quiet) or None; raises LimitError when
    the limit cannot be had, with the number needed and how to get it.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    plan = plan_nofile(config, soft, hard, can_raise_hard_limit(), _nr_open())
    if plan.limits is not None and plan.limits != (soft, hard):
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, plan.limits)
        except (ValueError, OSError) as exc:
            raise LimitError(f"cannot set the open-file limit to {plan.limits[0]}: {exc}; "
                             f"{_how(plan.limits[0])}") from None
    return plan.warning


__all__ = ["CAP_SYS_RESOURCE", "DEFAULT_STATS_MAXCONN", "LimitError", "Need", "Plan", "RESERVED_DESCRIPTORS",
           "can_raise_hard_limit", "configured_ulimit", "descriptors_needed", "effective_maxconn", "ensure_nofile",
           "plan_nofile"]
