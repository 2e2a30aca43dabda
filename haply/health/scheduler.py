"""The asyncio side of health checks: when to probe, and what a result changes.

One `call_later` chain per checked server (and one more per agent): the timer
fires, a probe task runs bounded by its deadlines, its result goes through the
server's `Health` machine, and the next check is scheduled `Health.interval()`
after the probe ended. Nothing here blocks: a black-holed server costs one timer
and one pending connect until its deadline, never the loop.

First checks are spread over each server's interval (server i of n starts at
inter*i/n) so a thousand servers do not probe in the same millisecond, and the
global `spread-checks` percentage adds the manual's random +/- jitter to every
interval afterwards.

Results go to the registry (`Registry.set_operational`) with HAProxy's status,
reason and duration; UP/DOWN changes are logged in HAProxy's wording and kept
in `HealthChecker.events`. `on-marked-down shutdown-sessions` and `on-marked-up
shutdown-backup-sessions` follow every change between running and stopped,
checks, tracking and maintenance alike (haply.health.shutdown), through the
callbacks the proxy registered (the proxy knows the sessions, the checker only
knows when).
"""

from __future__ import annotations

import asyncio
import collections
import logging
import random
from dataclasses import dataclass
from typing import Callable

from haply.config.model import Config, Proxy, Server
from haply.health import dialogues, external, probes
from haply.health.external import ExternalCheck
from haply.health.probes import CheckResult, Deadlines, HttpProbe, Target, TcpStep
from haply.health.shutdown import SessionCallback, SessionShutdown
from haply.health.state import (
    DEFAULT_ERROR_LIMIT, DEFAULT_ON_ERROR, OBSERVE_NONE, Health, Passive, Timing,
    Transition, slowstart_done, slowstart_weight,
)
from haply.health.tracking import Tracking
from haply.runtime.registry import DOWN, DRAIN, MAINT, READY, UP, Registry, ServerState

log = logging.getLogger("haply.health")

# HAProxy manual, `spread-checks`: "a value between 2 and 5 seems to show good
# results"; it is a percentage, capped at 50.
MAX_SPREAD_CHECKS = 50
# Slowstart weight is recomputed this many times over the ramp (at least every
# SLOWSTART_MAX_STEP seconds) so a long ramp still moves smoothly.
SLOWSTART_STEPS = 20
SLOWSTART_MAX_STEP = 1.0
# How many UP/DOWN events `HealthChecker.events` keeps for pages and tests.
EVENT_HISTORY = 1000

# Proxy.check_kind values with a probe here.
CHECK_KINDS = frozenset({"tcp", "http", "mysql", "ssl-hello", "tcp-check",
                         "redis", "smtp", "pgsql", "ldap", "external"})


# --------------------------------------------------------------- check settings


@dataclass(frozen=True, slots=True)
class AgentSpec:
    target: Target
    inter: float
    deadlines: Deadlines
    send: bytes = b""


@dataclass(frozen=True, slots=True)
class CheckSpec:
    """Everything the scheduler needs to check one server, from the config."""

    backend: str
    server: str
    kind: str  # tcp | http | mysql | ssl-hello | tcp-check | redis | smtp | pgsql | ldap | external
    target: Target | None  # None: only an agent is configured
    timing: Timing
    passive: Passive
    deadlines: Deadlines
    http: HttpProbe | None = None
    mysql_user: str | None = None
    tcp_steps: tuple[TcpStep, ...] = ()
    # redis, smtp, pgsql and ldap: the exchange, built once at load
    dialogue: dialogues.Dialogue = ()
    agent: AgentSpec | None = None
    slowstart: float = 0.0
    log_health_checks: bool = False  # option log-health-checks
    external: ExternalCheck | None = None  # option external-check: the program and its settings

    async def probe(self, target: Target | None = None, current_sessions: int = 0) -> CheckResult:
        """Run this server's check once; target overrides the configured one
        (the proxy's resolved address for a server given by name).
        current_sessions: the server's, for an external check's environment."""
        target = target or self.target
        if self.external is not None:
            return await external.run(self.external, target.host, target.port, current_sessions,
                                      self.timing.inter)
        if self.kind == "http":
            return await probes.http_check(target, self.deadlines, self.http or HttpProbe())
        if self.kind == "mysql":
            return await probes.mysql_check(target, self.deadlines, self.mysql_user)
        if self.kind == "ssl-hello":
            return await probes.ssl_hello_check(target, self.deadlines)
        if self.kind == "tcp-check":
            return await probes.tcp_check_rules(target, self.deadlines, self.tcp_steps)
        if self.dialogue:
            return await probes.dialogue_check(target, self.deadlines, self.dialogue)
        return await probes.tcp_check(target, self.deadlines)


def _opt(server: Server, attr: str, default=None):
    """A typed server field, or default while it is unset (None)."""
    value = getattr(server, attr, None)
    return default if value is None else value


def tcp_step_from_model(step) -> TcpStep:
    """A `model.TcpCheckStep` as the probe runs it. The lexer already resolved
    string escapes, so text is taken as is; hexadecimal stays hexadecimal."""
    text = " ".join(x for x in (step.action, step.match, step.pattern or step.data) if x)
    if step.action == "connect":
        # options as the parser keeps them: "ssl", "linger", "sni NAME", "alpn LIST"
        named = dict(o.split(" ", 1) for o in step.options if " " in o)
        alpn = tuple(named["alpn"].split(",")) if "alpn" in named else ()
        return TcpStep("connect", port=step.port, text=text, tls="ssl" in step.options,
                       sni=named.get("sni"), alpn=alpn)
    if step.action == "send":
        return TcpStep("send", data=step.data.encode("latin-1"), text=text)
    if step.action == "send-binary":
        return TcpStep("send", data=bytes.fromhex(step.data), text=text)
    if step.action == "expect":
        if step.match == "binary":
            data = bytes.fromhex(step.pattern)
        else:
            data = step.pattern.encode("latin-1")
        return TcpStep("expect", data=data, kind=step.match, negate=step.negated, text=text)
    return TcpStep("comment", text=text)


def tcp_steps_for(proxy: Proxy) -> tuple[TcpStep, ...]:
    """`tcp-check` rules of a proxy (model.TcpCheckStep, or TcpStep as is)."""
    steps = []
    for item in getattr(proxy, "tcp_check_steps", ()):
        steps.append(item if isinstance(item, TcpStep) else tcp_step_from_model(item))
    return tuple(steps)


def mysql_user_for(proxy: Proxy) -> str | None:
    return getattr(proxy, "mysql_check_user", None) or None


def dialogue_for(proxy: Proxy, kind: str) -> dialogues.Dialogue:
    """The exchange of a service check kind, () for the other kinds."""
    if kind == "redis":
        return dialogues.redis_dialogue()
    if kind == "smtp":
        return dialogues.smtp_dialogue(proxy.smtp_check_hello)
    if kind == "pgsql":
        return dialogues.pgsql_dialogue(proxy.pgsql_check_user or "")
    if kind == "ldap":
        return dialogues.ldap_dialogue()
    return ()


def check_tls(server: Server) -> tuple[bool, str | None]:
    """Whether checks run over TLS, and the SNI they send.

    HAProxy manual, `check-ssl`: forces TLS for checks; a server with `ssl`
    has TLS checks too unless they go to another port or address (`port`,
    `addr`), and `no-check-ssl` turns them off. The parser keeps these
    keywords in Server.extra.
    """
    extra = dict(server.extra)
    if "no-check-ssl" in extra:
        return False, None
    tls = "check-ssl" in extra or (
        "ssl" in extra and server.check_port in (None, server.port) and not server.check_addr)
    return tls, (extra.get("check-sni") or None) if tls else None


def spec_for(proxy: Proxy, server: Server, port: int | None = None, proxy_id: int = 0,
             server_id: int = 0) -> CheckSpec | None:
    """The check settings of one server, or None when it is not checked.
    proxy_id and server_id: HAProxy's numbers, which an external check is told."""
    agent_on = bool(_opt(server, "agent_check", False))
    if not server.check and not agent_on:
        return None
    timing = Timing(
        inter=server.inter,
        fastinter=server.fastinter,
        downinter=server.downinter,
        rise=server.rise,
        fall=server.fall,
    )
    passive = Passive(
        observe=_opt(server, "observe", OBSERVE_NONE),
        error_limit=int(_opt(server, "error_limit", DEFAULT_ERROR_LIMIT)),
        on_error=_opt(server, "on_error", DEFAULT_ON_ERROR),
    )
    deadlines = Deadlines.from_settings(server.inter, proxy.timeouts.check,
                                        proxy.timeouts.connect)
    host = server.check_addr or server.host
    check_port = server.check_port or server.port or port
    tls, sni = check_tls(server)
    # The PROXY header: with check-send-proxy, or when the traffic sends one
    # and the check goes where the traffic goes (HAProxy's rule)
    proxy_version = (server.send_proxy or 1) if server.check_send_proxy else (
        server.send_proxy if not (server.check_port or server.check_addr) else 0)
    source = server.source if server.source is not None else proxy.source
    target = (Target(host, check_port, tls, sni, proxy_version, source)
              if server.check and check_port else None)
    agent = None
    if agent_on:
        agent_port = _opt(server, "agent_port")
        if agent_port:
            agent_host = _opt(server, "agent_addr") or host
            agent_inter = _opt(server, "agent_inter") or server.inter
            send = getattr(server, "agent_send", None) or b""
            if isinstance(send, str):  # escapes already resolved by the lexer
                send = send.encode("latin-1")
            agent_deadlines = Deadlines.from_settings(agent_inter, proxy.timeouts.check,
                                                      proxy.timeouts.connect)
            agent = AgentSpec(Target(agent_host, int(agent_port), source=source), agent_inter,
                              agent_deadlines, send)
    kind = proxy.check_kind or "tcp"
    if kind not in CHECK_KINDS:
        log.warning("%s: %s checks are not supported; using a TCP connect check",
                    proxy.name, kind)
        kind = "tcp"
    http = None
    if kind == "http":
        hc = proxy.http_check
        expect = hc.expect if hc else None
        if expect is not None and getattr(hc, "expect_negated", False):
            expect = ("!" + expect[0], expect[1])
        http = HttpProbe(hc.method, hc.uri, hc.version, hc.headers, hc.body, expect) \
            if hc else HttpProbe()
    return CheckSpec(
        backend=proxy.name,
        server=server.name,
        kind=kind,
        target=target,
        timing=timing,
        passive=passive,
        deadlines=deadlines,
        http=http,
        mysql_user=mysql_user_for(proxy) if kind == "mysql" else None,
        tcp_steps=tcp_steps_for(proxy) if kind == "tcp-check" else (),
        dialogue=dialogue_for(proxy, kind),
        agent=agent,
        slowstart=server.slowstart,
        log_health_checks="log-health-checks" in proxy.options,
        external=external_check_for(proxy, server, proxy_id, server_id) if kind == "external" else None,
    )


def external_check_for(proxy: Proxy, server: Server, proxy_id: int,
                       server_id: int) -> ExternalCheck:
    """The program and fixed settings of a server's external check: the
    proxy's first listener (a backend has none: NOT_USED), as HAProxy passes them."""
    bind = proxy.binds[0] if proxy.binds else None
    address = bind.host if bind is not None and bind.host not in ("", "*") else "0.0.0.0"
    return ExternalCheck(
        command=proxy.external_check_command or "", path=proxy.external_check_path,
        proxy_address=address if bind is not None else external.NOT_USED,
        proxy_port=str(bind.port) if bind is not None else external.NOT_USED,
        proxy_id=proxy_id, proxy_name=proxy.name, server_id=server_id, server_name=server.name,
        server_maxconn=server.maxconn, ssl=check_tls(server)[0] or "ssl" in dict(server.extra),
        protocol="h1" if proxy.mode == "http" else "tcp")


def _spread(interval: float, bound: float | None) -> float:
    """The span the first checks are spread over (`max-spread-checks` bounds it)."""
    return min(interval, bound) if bound is not None else interval


def spread_checks_of(config: Config) -> int:
    value = getattr(config.global_, "spread_checks", 0) or 0
    return max(0, min(MAX_SPREAD_CHECKS, int(value)))


# ------------------------------------------------------------------- messages


@dataclass(frozen=True, slots=True)
class HealthEvent:
    """One UP/DOWN change, kept for pages, logs and tests."""

    backend: str
    server: str
    up: bool
    at: float
    status: str
    reason: str
    duration: float | None
    message: str


# Why a server moved when an operator forced its check (`set server B/S health`).
CHANGED_FROM_CLI = "changed from CLI"


def transition_message(state: ServerState, transition: Transition, servers: list[ServerState],
                       requeued: int = 0, with_reason: bool = True, via: str = "") -> str:
    """HAProxy's log line for an UP/DOWN change, e.g.

    Server b/s1 is DOWN, reason: Layer4 connection problem, info: "Connection
    refused", check duration: 0ms. 2 active and 1 backup servers left. 0 sessions
    active, 0 requeued, 0 remaining in queue.

    With `option log-health-checks` the reason is on the check's own line and
    HAProxy writes just "Server b/s1 is DOWN. 2 active and ..." (with_reason
    False). A tracking server's change names the server it follows instead:
    "Server l2/s1 is DOWN via l1/s1. 1 active and ..." (via "l1/s1").
    """
    who = f"{'Backup Server' if state.backup else 'Server'} {state.backend}/{state.name}"
    text = f"{who} is {'UP' if transition.up else 'DOWN'}"
    if via:
        text += f" via {via}"
    if with_reason and transition.reason == CHANGED_FROM_CLI:
        text += f", {CHANGED_FROM_CLI}"  # an operator's doing, not a reason (HAProxy's wording)
    elif with_reason and transition.reason:
        text += f", reason: {transition.reason}"
    if with_reason and transition.duration is not None:
        text += f", check duration: {int(transition.duration * 1000)}ms"
    usable = [s for s in servers if s.operational == UP and s.admin != MAINT]
    active = sum(1 for s in usable if not s.backup)
    backup = len(usable) - active
    queued = sum(s.queued for s in servers)
    if transition.up:
        text += (f". {active} active and {backup} backup servers online."
                 f" {requeued} sessions requeued, {queued} total in queue.")
    else:
        text += f". {active} active and {backup} backup servers left."
        if not active and backup:
            text += " Running on backup."
        text += (f" {state.current_sessions} sessions active, {requeued} requeued,"
                 f" {state.queued} remaining in queue.")
    return text


# -------------------------------------------------------------------- checker


class _Checked:
    """Runtime of one checked server: its machine, timers and probe tasks."""

    __slots__ = ("spec", "state", "health", "timer", "task", "agent_timer", "agent_task",
                 "agent_weight_percent", "ramp_timer", "last_result", "health_enabled",
                 "agent_enabled", "in_maint", "started")

    def __init__(self, spec: CheckSpec, state: ServerState, now: float) -> None:
        self.spec = spec
        self.state = state
        # A server carried over DOWN (reload, restarted worker) starts DOWN.
        self.health = Health(spec.timing, spec.passive, up=state.operational == UP, now=now)
        self.timer: asyncio.TimerHandle | None = None
        self.task: asyncio.Task | None = None
        self.started = 0.0  # when the current check began
        self.agent_timer: asyncio.TimerHandle | None = None
        self.agent_task: asyncio.Task | None = None
        self.agent_weight_percent = 100
        self.ramp_timer: asyncio.TimerHandle | None = None
        self.last_result: CheckResult | None = None
        # runtime API `disable health` / `disable agent`
        self.health_enabled = True
        self.agent_enabled = True
        # admin state MAINT as last seen, to notice a server leaving maintenance
        self.in_maint = state.admin == MAINT

    def cancel_health(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if self.task is not None and not self.task.done():
            self.task.cancel()
        self.task = None

    def cancel_agent(self) -> None:
        if self.agent_timer is not None:
            self.agent_timer.cancel()
            self.agent_timer = None
        if self.agent_task is not None and not self.agent_task.done():
            self.agent_task.cancel()
        self.agent_task = None


class HealthChecker:
    """Runs every configured check and applies results to the registry.

    The proxy engine creates it with its registry, the loaded config and its
    loop, registers its session callbacks, then calls `start()`; `await stop()`
    cancels every timer and probe. `observe()` is the door for passive health.
    """

    def __init__(self, registry: Registry, config: Config,
                 loop: asyncio.AbstractEventLoop | None = None,
                 rng: random.Random | None = None) -> None:
        self.registry = registry
        self.config = config
        self.loop = loop
        self.spread_checks = spread_checks_of(config)
        self.events: collections.deque[HealthEvent] = collections.deque(maxlen=EVENT_HISTORY)
        self._rng = rng or random.Random()
        self._checked: dict[tuple[str, str], _Checked] = {}
        self.shutdown = SessionShutdown(registry, config,
                                        lambda *call: self.loop.call_soon(*call))
        self._listeners: list[Callable[[HealthEvent], None]] = []
        # told each `option log-health-checks` line: (backend, its text)
        self._check_listeners: list[Callable[[str, str], None]] = []
        self._running = False
        self.tracking = Tracking(registry, config, self._announce_tracked,
                                 lambda: self.loop.time() if self.loop else 0.0)
        # False in the worker processes that follow another one's checks
        # (master-worker mode: each server is checked once, not once per
        # worker); their state changes arrive through follow().
        self.probing = True

    # ------------------------------------------------------------- wiring

    def set_shutdown_sessions(self, callback: SessionCallback) -> None:
        """callback(state) kills state's sessions (on-marked-down shutdown-sessions);
        it may return how many it closed."""
        self.shutdown.sessions = callback

    def set_shutdown_backup_sessions(self, callback: SessionCallback) -> None:
        """callback(state) kills sessions on the backups of state's backend
        (on-marked-up shutdown-backup-sessions)."""
        self.shutdown.backup_sessions = callback

    def subscribe(self, listener: Callable[[HealthEvent], None]) -> None:
        self._listeners.append(listener)

    def subscribe_checks(self, listener: Callable[[str, str], None]) -> None:
        """listener(backend, line) for each health check line `option
        log-health-checks` logs ("Health check for server b/s1 failed, ...")."""
        self._check_listeners.append(listener)

    # --------------------------------------------------------- start / stop

    def start(self) -> None:
        if self._running:
            return
        if self.loop is None:
            self.loop = asyncio.get_running_loop()
        self._running = True
        now = self.loop.time()
        ids = self.config.proxy_ids()
        for proxy in self.config.backends:
            for server in proxy.servers:
                state = self.registry.get(proxy.name, server.name)
                if state is None:
                    continue
                spec = spec_for(proxy, server, proxy_id=ids[proxy.name], server_id=state.server_id)
                if spec is None:
                    continue
                if spec.target is None and spec.agent is None:
                    log.warning("%s/%s: check enabled but no port to check; skipped",
                                proxy.name, server.name)
                    continue
                self._checked[(proxy.name, server.name)] = _Checked(spec, state, now)
        for backend in {key[0] for key in self._checked}:
            self.registry.subscribe(backend, self._registry_changed)
        self.tracking.start()
        self.shutdown.start()
        # spread the first checks over each server's interval, at most over
        # `max-spread-checks`
        count = len(self._checked)
        bound = self.config.global_.max_spread_checks
        for index, checked in enumerate(self._checked.values()):
            offset = index / count if count else 0.0
            if checked.spec.target is not None:
                checked.timer = self.loop.call_later(
                    _spread(checked.spec.timing.inter, bound) * offset, self._fire, checked)
            if checked.spec.agent is not None:
                checked.agent_timer = self.loop.call_later(
                    _spread(checked.spec.agent.inter, bound) * offset, self._fire_agent, checked)

    # ------------------------------------------------------- runtime API

    def watch(self, backend: str, server: str) -> bool:
        """Start checking a server added at run time (it must be in the registry
        with its `config`). True if it has checks; they start within one inter."""
        key = (backend, server)
        state = self.registry.get(backend, server)
        proxy = self.config.proxy(backend)
        if key in self._checked or state is None or state.config is None or proxy is None:
            return False
        spec = spec_for(proxy, state.config, proxy_id=self.config.proxy_ids()[backend],
                        server_id=state.server_id)
        if spec is None or (spec.target is None and spec.agent is None):
            return False
        checked = _Checked(spec, state, self.loop.time())
        self._checked[key] = checked
        if backend not in {k[0] for k in self._checked if k != key}:
            self.registry.subscribe(backend, self._registry_changed)
        if self._running:
            if spec.target is not None:
                checked.timer = self.loop.call_later(
                    self._rng.uniform(0, spec.timing.inter), self._fire, checked)
            if spec.agent is not None:
                checked.agent_timer = self.loop.call_later(
                    self._rng.uniform(0, spec.agent.inter), self._fire_agent, checked)
        return True

    def unwatch(self, backend: str, server: str) -> None:
        """Stop checking a server (removed at run time)."""
        checked = self._checked.pop((backend, server), None)
        if checked is not None:
            checked.cancel_health()
            checked.cancel_agent()
            if checked.ramp_timer is not None:
                checked.ramp_timer.cancel()

    def has_agent(self, backend: str, server: str) -> bool:
        """Whether the server has an agent check (`agent-check`)."""
        checked = self._checked.get((backend, server))
        return checked is not None and checked.spec.agent is not None

    def _get(self, backend: str, server: str) -> _Checked:
        checked = self._checked.get((backend, server))
        if checked is None:
            raise KeyError(f"no health check on server {backend}/{server}")
        return checked

    def set_health_enabled(self, backend: str, server: str, enabled: bool) -> None:
        """`enable health` / `disable health`. Disabled, the checks stop and
        the server keeps the state they left it in: HAProxy 2.6 goes on
        answering 503 for a server that was DOWN, and shows it "DOWN" (an UP
        one "no check"), whatever its management guide says of it being
        "considered UP"."""
        checked = self._get(backend, server)
        if enabled == checked.health_enabled:
            return
        checked.health_enabled = enabled
        if enabled:
            if self._running and checked.spec.target is not None:
                checked.timer = self.loop.call_later(0, self._fire, checked)
            return
        checked.cancel_health()

    def set_agent_enabled(self, backend: str, server: str, enabled: bool) -> None:
        """`enable agent` / `disable agent`: a disabled agent's last reply no
        longer holds the server down."""
        checked = self._get(backend, server)
        if enabled == checked.agent_enabled:
            return
        checked.agent_enabled = enabled
        if enabled:
            if self._running and checked.spec.agent is not None:
                checked.agent_timer = self.loop.call_later(0, self._fire_agent, checked)
            return
        checked.cancel_agent()
        self._forced(checked, checked.health.agent_state(False, self.loop.time(),
                                                         reason="agent check disabled"))

    def set_health(self, backend: str, server: str, health: str) -> None:
        """`set server B/S health up|down`: force the check state now."""
        if health not in ("up", "down"):
            raise ValueError(f"health must be up or down, not {health!r}")
        checked = self._get(backend, server)
        self._forced(checked, checked.health.force(health == "up", self.loop.time(),
                                                   CHANGED_FROM_CLI))

    def _forced(self, checked: _Checked, transition: Transition | None) -> None:
        """An operator's change of a check (runtime API, stats page). Where
        another process runs the checks it is applied silently: the master
        relays the command there too, and that process announces it, once."""
        if transition is None:
            return
        state = checked.state
        self.registry.set_operational(state, UP if checked.health.up else DOWN,
                                      transition.now, state.check_status,
                                      transition.reason, None, state.check_code)
        self._on_transition(checked, transition, announce=self.probing)

    async def stop(self) -> None:
        self._running = False
        tasks = []
        for checked in self._checked.values():
            for handle in (checked.timer, checked.agent_timer, checked.ramp_timer):
                if handle is not None:
                    handle.cancel()
            for task in (checked.task, checked.agent_task):
                if task is not None and not task.done():
                    task.cancel()
                    tasks.append(task)
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        self._checked.clear()

    @property
    def checked_count(self) -> int:
        return len(self._checked)

    def health_of(self, backend: str, server: str) -> Health | None:
        checked = self._checked.get((backend, server))
        return checked.health if checked else None

    def shown_health_of(self, backend: str, server: str) -> Health | None:
        """The health the statistics show: none for a server whose check an
        operator disabled (`disable health`), which HAProxy 2.6 shows as
        "no check", without check columns, until `enable health`."""
        checked = self._checked.get((backend, server))
        return checked.health if checked and checked.health_enabled else None

    def tracked_health_of(self, backend: str, server: str) -> Health | None:
        """For a tracking server, the health the checked server its chain
        ends at shows (its "UP 1/2" / "DOWN 1/2" are the tracking server's too)."""
        end = self.tracking.end_of_chain(backend, server)
        return self.shown_health_of(*end) if end else None

    # --------------------------------------------------------- the chain

    def _jitter(self, interval: float) -> float:
        if not self.spread_checks:
            return interval
        spread = interval * self.spread_checks / 100.0
        return max(0.0, interval + self._rng.uniform(-spread, spread))

    def _registry_changed(self, state: ServerState) -> None:
        """A server leaving maintenance starts over as at startup, as HAProxy
        2.6 does ("UP 1/2", status INI): UP with the counter at `rise`, so its
        first check decides, and that check runs now rather than an inter later.
        """
        if not self._running:
            return
        checked = self._checked.get((state.backend, state.name))
        if checked is None or checked.state is not state:
            return
        in_maint = state.admin == MAINT
        if in_maint == checked.in_maint:
            return
        checked.in_maint = in_maint
        if in_maint:
            checked.cancel_health()
            if checked.health_enabled and checked.spec.target is not None:
                checked.timer = self.loop.call_later(self._jitter(checked.spec.timing.inter),
                                                     self._fire, checked)
            return
        now = self.loop.time()
        checked.health.health = checked.spec.timing.rise
        checked.health.last_up_at = None  # HAProxy applies no slowstart here
        self.registry.set_operational(state, UP if checked.health.up else DOWN, now, "INI",
                                      "Initializing")
        if checked.health_enabled and checked.spec.target is not None:
            checked.cancel_health()
            checked.timer = self.loop.call_later(0, self._fire, checked)

    def _fire(self, checked: _Checked) -> None:
        checked.timer = None
        if not self._running or not checked.health_enabled or not self.probing:
            return
        if checked.state.admin == MAINT:
            # MAINT stops checks (registry contract); look again later
            checked.timer = self.loop.call_later(self._jitter(checked.spec.timing.inter),
                                                 self._fire, checked)
            return
        checked.started = self.loop.time()
        checked.task = self.loop.create_task(self._run_check(checked))

    async def _run_check(self, checked: _Checked) -> None:
        try:
            result = await checked.spec.probe(self._resolved_target(checked),
                                              checked.state.current_sessions)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a probe bug must not end the chain
            log.exception("%s/%s: check failed unexpectedly", checked.spec.backend,
                          checked.spec.server)
            result = CheckResult("SOCKERR", info=str(exc))
        if not self._running:
            return
        self.apply_result(checked.spec.backend, checked.spec.server, result)
        # Checks start every interval, as HAProxy's do: the next one is due one
        # interval after this one *began*, so a check's own duration does not
        # stretch the period (and with it detection and recovery times).
        due = checked.started + self._jitter(checked.health.interval())
        checked.timer = self.loop.call_at(max(due, self.loop.time()), self._fire, checked)

    @staticmethod
    def _resolved_target(checked: _Checked) -> Target | None:
        """Check the address the proxy resolved (ServerState.address) when the
        check goes to the server's own host, so a host name is not looked up
        again on every check."""
        spec, state = checked.spec, checked.state
        server = state.config
        if state.address and server is not None and not server.check_addr \
                and spec.target is not None and spec.target.host == server.host:
            # Without a check port of its own, the check follows the server's
            # port (which `set server B/S addr A port P` may change).
            port = state.port if spec.target.port == server.port else spec.target.port
            return Target(state.address[0], port, spec.target.tls, spec.target.sni,
                          spec.target.proxy, spec.target.source)
        return None

    def _fire_agent(self, checked: _Checked) -> None:
        checked.agent_timer = None
        if self._running and checked.agent_enabled and self.probing:
            checked.agent_task = self.loop.create_task(self._run_agent(checked))

    async def _run_agent(self, checked: _Checked) -> None:
        spec = checked.spec.agent
        try:
            result = await probes.agent_check(spec.target, spec.deadlines, spec.send)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("%s/%s: agent check failed unexpectedly", checked.spec.backend,
                          checked.spec.server)
            result = CheckResult("SOCKERR")
        if not self._running:
            return
        if result.ok and result.agent is not None:
            self.apply_agent(checked, result)
        checked.agent_timer = self.loop.call_later(self._jitter(spec.inter),
                                                   self._fire_agent, checked)

    # ------------------------------------------------------- applying

    def apply_result(self, backend: str, server: str, result: CheckResult) -> None:
        """Feed one check result through the machine into the registry."""
        checked = self._checked[(backend, server)]
        checked.last_result = result
        now = self.loop.time()
        health = checked.health
        before = health.health
        if result.ok:
            transition = health.check_passed(now, result.status, result.reason, result.duration)
        else:
            self.registry.count_failed_check(checked.state)  # stats: chkfail
            transition = health.check_failed(now, result.status, result.reason, result.duration)
        self.registry.set_operational(checked.state, UP if health.up else DOWN, now,
                                      result.status, result.reason, result.duration,
                                      result.code)
        if checked.spec.log_health_checks and health.health != before:
            # HAProxy logs a check whose result moved the health counter
            line = (f"Health check for server {backend}/{server} "
                    f"{'succeeded' if result.ok else 'failed'}, reason: {result.reason}, "
                    f"check duration: {result.duration_ms}ms, status: {health.check_status_text()}.")
            log.info("%s", line)
            for listener in self._check_listeners:
                listener(backend, line)
        if transition is not None:
            self._on_transition(checked, transition)

    def apply_agent(self, checked: _Checked, result: CheckResult) -> None:
        reply = result.agent
        state = checked.state
        now = self.loop.time()
        if reply.weight_percent is not None:
            checked.agent_weight_percent = reply.weight_percent
            self._apply_weight(checked, now)
        if reply.maxconn is not None:
            self.registry.set_maxconn(state, reply.maxconn)
        if reply.admin is not None and reply.admin != state.admin:
            self.registry.set_admin(state, reply.admin, now)
            self._log_admin(state, reply.admin)
        if reply.operational is not None:
            down = reply.operational == DOWN
            # HAProxy 2.6 logs an agent's "down #disk full" as: reason: Layer7
            # wrong status, code: 0, info: "via agent : down (disk full)"
            info = f"via agent : {reply.state_word}"
            if reply.description:
                info += f" ({reply.description})"
            status = "L7STS" if down else "L7OK"
            full = CheckResult(status, 0, info).reason
            transition = checked.health.agent_state(down, now, status, full, result.duration)
            if transition is not None:
                self.registry.set_operational(state, UP if checked.health.up else DOWN, now,
                                              status, full, result.duration, 0)
                self._on_transition(checked, transition)

    def _log_admin(self, state: ServerState, admin: str) -> None:
        """Administrative changes an agent asked for, in HAProxy's words."""
        servers = self.registry.servers(state.backend)
        usable = [s for s in servers if s.operational == UP and s.admin == READY]
        active = sum(1 for s in usable if not s.backup)
        counts = (f" {active} active and {len(usable) - active} backup servers online."
                  f" 0 sessions requeued, {sum(s.queued for s in servers)} total in queue.")
        who = f"{'Backup Server' if state.backup else 'Server'} {state.backend}/{state.name}"
        if admin == DRAIN:
            log.warning("%s enters drain state.%s", who, counts)
        elif admin == MAINT:
            log.warning("%s is going DOWN for maintenance.%s", who, counts)
        else:
            log.warning("%s is UP/READY (leaving forced maintenance or drain).%s", who, counts)

    def observe(self, backend: str, server: str, event: str | int) -> None:
        """Passive health: the proxy reports one exchange (an EV_* name from
        haply.health.state, or an HTTP status). Cheap when `observe` is off."""
        checked = self._checked.get((backend, server))
        if checked is None or checked.spec.passive.observe == OBSERVE_NONE:
            return
        now = self.loop.time()
        transition = checked.health.observe(event, now)
        if checked.health.force_fast and checked.timer is not None:
            # on-error forces fastinter: bring a waiting next check forward
            fast = checked.spec.timing.fastinter or checked.spec.timing.inter
            if checked.timer.when() - now > fast:
                checked.timer.cancel()
                checked.timer = self.loop.call_later(fast, self._fire, checked)
        if transition is not None:
            self.registry.set_operational(checked.state, UP if checked.health.up else DOWN,
                                          now, "", transition.reason, None)
            self._on_transition(checked, transition)

    def follow(self, backend: str, server: str, up: bool, now: float, status: str = "",
               reason: str = "", duration: float | None = None) -> None:
        """Apply an UP/DOWN change another process's checks (or its passive
        health) decided. The change was logged and announced where it was
        decided, so it is applied here silently."""
        checked = self._checked.get((backend, server))
        state = self.registry.get(backend, server)
        if state is None:
            return
        if checked is None:
            self.registry.set_operational(state, UP if up else DOWN, now, status, reason, duration)
            return
        transition = checked.health.force(up, now, reason)
        self.registry.set_operational(state, UP if up else DOWN, now, status, reason, duration)
        if transition is not None:
            self._on_transition(checked, transition, announce=False)

    def _on_transition(self, checked: _Checked, transition: Transition,
                       announce: bool = True) -> None:
        state = checked.state
        spec = checked.spec
        if transition.up and spec.slowstart > 0 and checked.health.last_up_at is not None:
            self._apply_weight(checked, transition.now)
        if not announce:
            return
        servers = self.registry.servers(state.backend)
        message = transition_message(state, transition, servers,
                                     with_reason=not spec.log_health_checks)
        self._announce(state, transition, message, servers)

    def _announce_tracked(self, state: ServerState, up: bool, via: str) -> None:
        """A tracking server followed the server it tracks (haply.health.tracking).
        Every process follows it; the one that runs the checks announces it."""
        if not self.probing:
            return
        servers = self.registry.servers(state.backend)
        transition = Transition(up, self.loop.time())
        self._announce(state, transition, transition_message(state, transition, servers, via=via),
                       servers)

    def _announce(self, state: ServerState, transition: Transition, message: str,
                  servers: list[ServerState]) -> None:
        log.warning("%s", message)
        if not transition.up and not any(
                s.operational == UP and s.admin != MAINT for s in servers):
            log.error("backend %s has no server available!", state.backend)
        event = HealthEvent(state.backend, state.name, transition.up, transition.now,
                            transition.status, transition.reason, transition.duration, message)
        self.events.append(event)
        for listener in self._listeners:
            listener(event)

    # ------------------------------------------------------- slowstart

    def _apply_weight(self, checked: _Checked, now: float) -> None:
        """Weight = configured weight * agent percentage, ramped by slowstart."""
        base = (checked.state.weight * checked.agent_weight_percent + 50) // 100
        if checked.agent_weight_percent and base == 0 and checked.state.weight:
            base = 1
        spec = checked.spec
        up_since = checked.health.last_up_at
        weight = slowstart_weight(base, spec.slowstart, up_since, now)
        self.registry.set_weight(checked.state, min(weight, 256), now)
        if checked.ramp_timer is not None:
            checked.ramp_timer.cancel()
            checked.ramp_timer = None
        if not slowstart_done(spec.slowstart, up_since, now) and checked.health.up:
            step = min(spec.slowstart / SLOWSTART_STEPS, SLOWSTART_MAX_STEP)
            checked.ramp_timer = self.loop.call_later(
                step, self._ramp, checked)

    def _ramp(self, checked: _Checked) -> None:
        checked.ramp_timer = None
        if self._running and checked.health.up:
            self._apply_weight(checked, self.loop.time())


__all__ = ["AgentSpec", "CheckSpec", "HealthChecker", "HealthEvent", "spec_for",
           "spread_checks_of", "tcp_steps_for", "transition_message"]
