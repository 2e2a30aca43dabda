"""The one owner of servers' runtime state.

Health checks, the runtime API, the stats page and the balancers read and change a
server's state only through this registry, so every change is seen by all of them
and a balancer is told to recompute exactly once per change. Counters are plain
integer attributes bumped once per event on the hot path; pages and metrics read
them, they never lock.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Callable

from haply.runtime.dynamic_limit import is_dynamic
from haply.config.model import Proxy, Server

# Administrative state, set by operators (runtime API, stats page, config `disabled`).
READY = "READY"
DRAIN = "DRAIN"  # no new traffic except persistent; weight effectively 0
MAINT = "MAINT"  # no traffic at all, checks stopped

# Operational state, set by health checks.
UP = "UP"
DOWN = "DOWN"


@dataclass(eq=False, slots=True)
class ServerState:
    """Runtime state of one server of one backend. Mutable, identity-compared."""

    backend: str
    name: str
    host: str
    port: int | None
    weight: int  # configured weight
    backup: bool
    maxconn: int  # the limit in force (0: none); the balancers read it
    maxqueue: int = 0
    # `minconn` (0: none): maxconn then moves between minconn and `ceiling`
    # (its configured maxconn) with the backend's load (haply.proxy.dynamic_backend)
    minconn: int = 0
    ceiling: int = 0
    server_id: int = 0  # 1-based position in its backend, HAProxy's "sid"
    admin: str = READY
    # the server whose maintenance or drain this one inherits through `track`
    # ("proxy/server"), "" when the administrative state is its own
    admin_via: str = ""
    operational: str = UP
    effective_weight: int = 0  # set at creation; runtime `set weight` changes it
    # resolved connect address (host may be a name); the proxy fills it at start
    address: tuple | None = None
    # started without an address (`init-addr none`): in maintenance until
    # `set server B/S addr` gives it one
    unresolved: bool = False
    # counters
    current_sessions: int = 0
    max_sessions: int = 0
    total_sessions: int = 0
    # times the balancer chose it (lbtot): not for a request served from the
    # queue, nor for one that persistence sent here
    balanced: int = 0
    queued: int = 0
    max_queued: int = 0
    dequeued: int = 0  # requests that left its queue, served or not (the log's %sq)
    bytes_in: int = 0
    bytes_out: int = 0
    connect_errors: int = 0
    response_errors: int = 0
    # exchanges the client (cli_abrt) or the server (srv_abrt) broke off
    client_aborts: int = 0
    server_aborts: int = 0
    retries: int = 0
    redispatches: int = 0
    # connections opened or tried (`connect`), and exchanges sent on one
    # taken back from the pool or kept by the session (`reuse`)
    connects: int = 0
    reuses: int = 0
    # checks that failed while the server was UP (HAProxy's `chkfail`)
    failed_checks: int = 0
    # queue and connect times in ms (stats qtime/ctime: Registry.record_times)
    queue_time_avg: float = 0.0
    connect_time_avg: float = 0.0
    queue_time_max: int = 0
    connect_time_max: int = 0
    timed_upto: int = 0  # total_sessions when the averages were last brought up to date
    # response and total times in ms (stats rtime/ttime: Registry.record_exchange):
    # every TCP session, and the first HTTP exchange after the stats sampler
    # sets `timing` (once a second), so that keep-alive exchanges pay a test
    # of a flag rather than two clock reads
    timing: bool = False
    response_time_avg: float = 0.0
    total_time_avg: float = 0.0
    response_time_max: int = 0
    total_time_max: int = 0
    timed: int = 0  # exchanges or sessions timed
    http_responses: Counter[int] = field(default_factory=Counter)  # status class 1..5
    # health details for pages and logs
    last_change: float = 0.0
    check_status: str = ""
    check_reason: str = ""
    check_duration: float | None = None
    check_code: int | None = None  # HTTP status / MySQL error of the last check
    config: Server | None = None

    def count_abort(self, ending: str, response_error: bool) -> None:
        """An exchange or session on this server ended out of order; `ending`
        is the log's termination state (C, c: the client; S, s: the server).
        Counted in cli_abrt or srv_abrt, and in eresp when response_error."""
        if ending[0] in "Cc":
            self.client_aborts += 1
        else:
            self.server_aborts += 1
            if response_error:
                self.response_errors += 1

    @property
    def usable(self) -> bool:
        """May receive new traffic from the balancer."""
        return (
            self.admin == READY
            and self.operational == UP
            and self.effective_weight > 0
        )

    @property
    def stopped(self) -> bool:
        """HAProxy's stopped state: DOWN by its checks, or in maintenance,
        which stops a server whatever its checks say."""
        return self.operational == DOWN or self.admin == MAINT

    @property
    def takes_persistent(self) -> bool:
        """May take a client that a cookie or a stick table sends to it: not
        DOWN and not in maintenance (a draining server keeps its clients)."""
        return self.admin != MAINT and self.operational != DOWN

    @property
    def has_free_slot(self) -> bool:
        return self.maxconn <= 0 or self.current_sessions < self.maxconn

    def __repr__(self) -> str:
        return f"<ServerState {self.backend}/{self.name} {self.admin}/{self.operational} w={self.effective_weight}>"


Listener = Callable[[ServerState], None]


class Registry:
    """Server states keyed by (backend, server), and who to tell when one changes."""

    def __init__(self) -> None:
        self._servers: dict[tuple[str, str], ServerState] = {}
        self._by_backend: dict[str, list[ServerState]] = {}
        self._listeners: dict[str, list[Listener]] = {}

    # ------------------------------------------------------------ construction

    def add_backend(self, proxy: Proxy, now: float = 0.0) -> list[ServerState]:
        states = self._by_backend.setdefault(proxy.name, [])
        for server in proxy.servers:
            self.add_server(proxy.name, server, now)
        return states

    def add_server(self, backend: str, server: Server, now: float = 0.0) -> ServerState:
        key = (backend, server.name)
        if key in self._servers:
            raise KeyError(f"server {backend}/{server.name} already exists")
        states = self._by_backend.setdefault(backend, [])
        state = ServerState(
            backend=backend,
            name=server.name,
            host=server.host,
            port=server.port,
            weight=server.weight,
            backup=server.backup,
            maxqueue=server.maxqueue,
            **_limits(server),
            server_id=server.id if server.id is not None else _free_id(states),
            admin=MAINT if server.disabled else READY,
            effective_weight=server.weight,
            last_change=now,
            config=server,
        )
        self._servers[key] = state
        states.append(state)
        self._notify(state)
        return state

    def set_maxconn(self, state: ServerState, maxconn: int) -> None:
        """A new maxconn (an agent's `maxconn:N`): the ceiling of a dynamic
        limit, else the limit itself."""
        if state.minconn:
            state.ceiling = max(maxconn, state.minconn)
            state.maxconn = min(state.maxconn, state.ceiling)
        else:
            state.maxconn = maxconn

    def remove_server(self, backend: str, name: str) -> ServerState:
        state = self._servers.pop((backend, name))
        self._by_backend[backend].remove(state)
        self._notify(state)
        return state

    # ------------------------------------------------------------------ lookup

    def get(self, backend: str, name: str) -> ServerState | None:
        return self._servers.get((backend, name))

    def servers(self, backend: str) -> list[ServerState]:
        """The live list for one backend; callers must not mutate it."""
        return self._by_backend.setdefault(backend, [])

    def backends(self) -> list[str]:
        return list(self._by_backend)

    def all(self) -> list[ServerState]:
        return list(self._servers.values())

    # ------------------------------------------------------------------ change

    def subscribe(self, backend: str, listener: Listener) -> None:
        """Call listener(state) after any state or weight change in backend."""
        self._listeners.setdefault(backend, []).append(listener)

    def set_admin(self, state: ServerState, admin: str, now: float, via: str = "") -> None:
        """via: the tracked server the state is inherited from; an
        operator's change (no via) makes the state the server's own."""
        if admin not in (READY, DRAIN, MAINT):
            raise ValueError(f"unknown administrative state {admin!r}")
        state.admin_via = via if admin != READY else ""
        if state.admin != admin:
            state.admin = admin
            state.last_change = now
            self._notify(state)

    def set_operational(self, state: ServerState, operational: str, now: float,
                        status: str = "", reason: str = "",
                        duration: float | None = None, code: int | None = None) -> None:
        if operational not in (UP, DOWN):
            raise ValueError(f"unknown operational state {operational!r}")
        state.check_status = status
        state.check_reason = reason
        state.check_duration = duration
        state.check_code = code
        if state.operational != operational:
            state.operational = operational
            state.last_change = now
            self._notify(state)

    def count_failed_check(self, state: ServerState) -> None:
        """A health check of state failed; HAProxy's `chkfail` counts only those
        that fail while the server is UP (management guide 9.1)."""
        if state.operational == UP:
            state.failed_checks += 1

    def record_times(self, state: ServerState, queue_ms: int, connect_ms: int) -> None:
        """A session that queued and/or opened a new connection to state
        (HAProxy's qtime/ctime: averages over the last TIME_WINDOW sessions).
        Sessions served on a pooled connection waited and connected for 0 ms
        and are not reported one by one: they are folded in here and at read
        time (timing_averages), so the keep-alive path pays nothing."""
        _fold_idle_sessions(state, state.total_sessions - 1)
        n = min(state.timed_upto + 1, TIME_WINDOW)
        state.queue_time_avg += (queue_ms - state.queue_time_avg) / n
        state.connect_time_avg += (connect_ms - state.connect_time_avg) / n
        state.timed_upto = state.total_sessions
        if queue_ms > state.queue_time_max:
            state.queue_time_max = queue_ms
        if connect_ms > state.connect_time_max:
            state.connect_time_max = connect_ms

    def record_exchange(self, state: ServerState, response_ms: int, total_ms: int) -> None:
        """A timed exchange (or TCP session) with state: from the request's
        send to the answer's head (0 in TCP), and in all (HAProxy's rtime and
        ttime, averaged over the last TIME_WINDOW timed)."""
        timed = state.timed = state.timed + 1
        n = timed if timed < TIME_WINDOW else TIME_WINDOW
        state.response_time_avg += (response_ms - state.response_time_avg) / n
        state.total_time_avg += (total_ms - state.total_time_avg) / n
        if response_ms > state.response_time_max:
            state.response_time_max = response_ms
        if total_ms > state.total_time_max:
            state.total_time_max = total_ms

    def set_weight(self, state: ServerState, weight: int, now: float) -> None:
        if not 0 <= weight <= 256:
            raise ValueError("weight must be between 0 and 256")
        if state.effective_weight != weight:
            state.effective_weight = weight
            self._notify(state)

    def _notify(self, state: ServerState) -> None:
        for listener in self._listeners.get(state.backend, ()):
            listener(state)


# HAProxy averages qtime/ctime/rtime/ttime over the last 1024 sessions
# (management guide 9.1); a running mean until then, a 1/1024 moving average after.
TIME_WINDOW = 1024


def _idle_factor(done: int, upto: int) -> float:
    """What the averages after session done become at session upto when every
    session in between counted 0 ms: a running mean until TIME_WINDOW
    sessions (x * done / upto), a 1/TIME_WINDOW moving average after."""
    zeros = upto - done
    if zeros <= 0:
        return 1.0
    factor = 1.0
    if done < TIME_WINDOW:
        m = min(zeros, TIME_WINDOW - done)
        factor = done / (done + m) if done else 0.0
        zeros -= m
    if zeros:
        factor *= (1 - 1 / TIME_WINDOW) ** zeros
    return factor


def _fold_idle_sessions(state: ServerState, upto: int) -> None:
    """Bring state's averages up to session number upto (see _idle_factor);
    totals cleared since (upto below the mark) restart the count there."""
    factor = _idle_factor(state.timed_upto, upto)
    state.queue_time_avg *= factor
    state.connect_time_avg *= factor
    state.timed_upto = upto


def timing_averages(state: ServerState) -> tuple[int, int]:
    """(qtime, ctime) in whole ms as of now, pooled sessions counted as 0;
    reads only (pages take snapshots without changing state)."""
    factor = _idle_factor(state.timed_upto, state.total_sessions)
    return int(state.queue_time_avg * factor + 0.5), int(state.connect_time_avg * factor + 0.5)


def _limits(server: Server) -> dict:
    """A server whose minconn makes its limit move starts at minconn (no load)."""
    if not is_dynamic(server.minconn, server.maxconn):
        return {"maxconn": server.maxconn}
    return {"maxconn": server.minconn, "minconn": server.minconn, "ceiling": server.maxconn}


def _free_id(states) -> int:
    """HAProxy's automatic server id: the smallest one no server of the
    backend has (an `id N` keeps its number)."""
    taken = {state.server_id for state in states}
    candidate = 1
    while candidate in taken:
        candidate += 1
    return candidate
