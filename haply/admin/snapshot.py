"""One stats snapshot: the single source for CSV, JSON, HTML, Prometheus and
`show stat`.

Pure: it reads counters from the engine's runtimes and the registry and returns
rows (dicts keyed by HAProxy's column names, see `columns.COLUMNS`); it never
changes anything and takes the time as an argument, so every surface shows the
same numbers and tests can build rows without a loop.

Which columns a row type fills (value 0 when nothing happened) and which it
leaves empty follows HAProxy 2.6's own `show stat` output, observed on the same
config: existing parsers treat "" and "0" differently (e.g. "no check").
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from haply.admin import rates as _rates
from haply.admin.columns import TYPE_BACKEND, TYPE_FRONTEND, TYPE_LISTENER, TYPE_SERVER
from haply.admin.counters import backend_down
from haply.health.probes import STATUS_WORDS
from haply.runtime.registry import DOWN, DRAIN, MAINT, TIME_WINDOW, UP, ServerState, timing_averages

_H2H1 = ("ssl_sess ssl_reused_sess ssl_failed_handshake h2_headers_rcvd h2_data_rcvd "
         "h2_settings_rcvd h2_rst_stream_rcvd h2_goaway_rcvd "
         "h2_detected_conn_protocol_errors h2_detected_strm_protocol_errors "
         "h2_rst_stream_resp h2_goaway_resp h2_open_connections h2_backend_open_streams "
         "h2_total_connections h2_backend_total_streams h1_open_connections "
         "h1_open_streams h1_total_connections h1_total_streams h1_bytes_in h1_bytes_out "
         "h1_spliced_bytes_in h1_spliced_bytes_out").split()
_HRSP = "hrsp_1xx hrsp_2xx hrsp_3xx hrsp_4xx hrsp_5xx hrsp_other".split()

# Numeric columns each row type fills, 0 until counted (HAProxy 2.6, observed).
FRONTEND_ZEROS = tuple(
    "scur smax stot bin bout dreq dresp ereq rate rate_lim rate_max req_rate "
    "req_rate_max req_tot comp_in comp_out comp_byp comp_rsp conn_rate conn_rate_max "
    "conn_tot intercepted dcon dses wrew cache_lookups cache_hits eint".split()
) + tuple(_HRSP) + tuple(_H2H1)
SERVER_ZEROS = tuple(
    "qcur qmax scur smax stot bin bout dresp econ eresp wretr wredis weight act bck "
    "lbtot rate rate_max req_tot cli_abrt srv_abrt qtime ctime rtime ttime wrew "
    "connect reuse srv_icur qtime_max ctime_max rtime_max ttime_max eint "
    "idle_conn_cur safe_conn_cur used_conn_cur need_conn_est uweight ssl_sess "
    "ssl_reused_sess ssl_failed_handshake".split()) + tuple(_HRSP)
BACKEND_ZEROS = tuple(
    "qcur qmax scur smax stot bin bout dreq dresp econ eresp wretr wredis weight act "
    "bck chkdown downtime lbtot rate rate_max req_tot cli_abrt srv_abrt comp_in "
    "comp_out comp_byp comp_rsp qtime ctime rtime ttime wrew connect reuse "
    "cache_lookups cache_hits qtime_max ctime_max rtime_max ttime_max eint uweight "
    "agg_server_status agg_server_check_status agg_check_status".split()
) + tuple(_HRSP) + tuple(_H2H1)

# HAProxy manual 9.1: check_desc wording for check_status codes.
CHECK_DESC = STATUS_WORDS


@dataclass
class Snapshot:
    """Rows in display order, plus what `show info` and Prometheus need."""

    rows: list[dict]
    info: dict = field(default_factory=dict)

    def proxies(self) -> list[tuple[str, list[dict]]]:
        """Rows grouped by proxy name, in order (for the HTML page)."""
        groups: list[tuple[str, list[dict]]] = []
        for row in self.rows:
            if not groups or groups[-1][0] != row["pxname"]:
                groups.append((row["pxname"], []))
            groups[-1][1].append(row)
        return groups


def server_status(state: ServerState, health) -> str:
    """The `status` column of a server row (HAProxy's words)."""
    if state.admin == MAINT:
        if state.admin_via:  # inherited through `track`
            return f"MAINT (via {state.admin_via})"
        return "MAINT (resolution)" if state.unresolved else "MAINT"
    if health is None:
        if state.operational == DOWN:
            return "DOWN"
        return "DRAIN" if state.admin == DRAIN else "no check"
    text = health.status_text()
    if state.admin == DRAIN and text.startswith("UP"):
        return "DRAIN" + text[2:]
    return text


# HTTP-only columns HAProxy leaves empty on TCP frontends and backends.
TCP_BLANK = tuple(_HRSP) + ("intercepted", "cache_lookups", "cache_hits")


def _blank(row: dict, names) -> None:
    for name in names:
        row[name] = None


def is_running(status: str) -> bool:
    """What `;up` and `show stat up` keep: servers neither in maintenance nor down
    (a draining or unchecked server still runs)."""
    return not status.startswith(("MAINT", "DOWN"))


def _hrsp(row: dict, counts: dict[int, int]) -> None:
    other = 0
    for klass, count in counts.items():
        if 1 <= klass <= 5:
            row[_HRSP[klass - 1]] = count
        else:
            other += count
    row["hrsp_other"] = other


def take(engine, now: float, pid: int | None = None, merged: bool = True) -> Snapshot:
    """Rows for every proxy of engine's config, in config order.

    engine needs: config, frontends, backends (runtimes by name), registry,
    health (or None). now is on the clock of the registry's last_change (the
    loop's time). In a worker of the master process, the other workers' latest
    rows are added in (engine.peers, haply.master.worker), unless merged is
    False (what a worker reports about itself)."""
    pid = pid if pid is not None else 1
    health = getattr(engine, "health", None)
    counters = getattr(engine, "check_counters", None)
    sampler = _rates.of(engine)
    rows: list[dict] = []
    pool = getattr(engine, "pool", None)
    idle = pool.census() if pool is not None else {}
    ids = engine.config.proxy_ids()
    for proxy in engine.config.proxies:
        iid = ids[proxy.name]
        mode = proxy.mode
        frontend = engine.frontends.get(proxy.name)
        if frontend is not None:
            rows.append(_frontend_row(frontend, iid, pid, mode))
            if sampler is not None:
                _frontend_rates(rows[-1], sampler, frontend, now)
            rows.extend(_listener_row(frontend.name, listener, iid, pid, mode)
                        for listener in frontend.listeners)
        backend = engine.backends.get(proxy.name)
        if backend is not None:
            servers = [server_row(state, health, iid, pid, mode, now, counters,
                                  idle.get(state, _NO_IDLE))
                       for state in engine.registry.servers(proxy.name)]
            rows.extend(servers)
            rows.append(_backend_row(backend, servers, iid, pid, mode, now,
                                     getattr(engine, "started_at", now),
                                     counters.backend(proxy.name) if counters else None))
            if sampler is not None:
                _session_rates(rows[-1], sampler, ("sess", proxy.name, None),
                               backend.routed, now)
                for row, state in zip(servers, engine.registry.servers(proxy.name)):
                    _session_rates(row, sampler, ("sess", proxy.name, state.name),
                                   state.total_sessions, now)
    snap = Snapshot(rows, info(engine, now, pid))
    peers = getattr(engine, "peers", None)
    return peers.merge(snap) if merged and peers is not None else snap


def _frontend_rates(row: dict, sampler, frontend, now: float) -> None:
    # sessions: the connections the tcp-request connection and session rules let in
    key = ("frontend sessions", frontend.name, None)
    row["rate"] = sampler.rate(key, row["stot"], now)
    row["rate_max"] = sampler.maximum(key)
    key = ("conn", frontend.name, None)
    row["conn_rate"] = sampler.rate(key, row["conn_tot"], now)
    row["conn_rate_max"] = sampler.maximum(key)
    key = ("req", frontend.name, None)
    row["req_rate"] = sampler.rate(key, frontend.http_requests, now)
    row["req_rate_max"] = sampler.maximum(key)


def _session_rates(row: dict, sampler, key, total: int, now: float) -> None:
    row["rate"] = sampler.rate(key, total, now)
    row["rate_max"] = sampler.maximum(key)
    row["lastsess"] = sampler.idle_seconds(key, total, now)


def _compression(row: dict, proxy) -> None:
    """comp_in, comp_out, comp_byp, comp_rsp of a frontend or backend runtime
    (0 in mode tcp, as HAProxy shows them)."""
    counters = proxy.comp
    row.update(comp_in=counters.comp_in, comp_out=counters.comp_out,
               comp_byp=counters.comp_byp, comp_rsp=counters.comp_rsp)
    cache = getattr(proxy, "cache", None)
    if cache is not None:
        row.update(cache_lookups=cache.lookups, cache_hits=cache.hits)


def _frontend_row(frontend, iid: int, pid: int, mode: str) -> dict:
    row = dict.fromkeys(FRONTEND_ZEROS, 0)
    gate = frontend.gate
    row.update(
        pxname=frontend.name, svname="FRONTEND", type=TYPE_FRONTEND, pid=pid, iid=iid,
        sid=0, status=getattr(frontend, "listening", "OPEN"), mode=mode,
        scur=gate.current, smax=getattr(gate, "max_seen", gate.current),
        slim=gate.limit or frontend.global_gate.limit or None,
        rate_lim=frontend.proxy.rate_limit_sessions,
        stot=getattr(gate, "total", 0),
        # every connection accepted, those refused by the rules or for their PROXY header too
        conn_tot=(getattr(gate, "total", 0) + frontend.denied_connections + frontend.denied_sessions
                  + frontend.header_failures),
        bin=frontend.bytes_in, bout=frontend.bytes_out, dreq=frontend.denied,
        dcon=frontend.denied_connections, dses=frontend.denied_sessions,
        ereq=frontend.request_errors, req_tot=frontend.http_requests,
        intercepted=frontend.intercepted)
    _compression(row, frontend)
    row["-"] = "-"
    if mode == "http":
        _hrsp(row, frontend.http_responses)
    else:
        _blank(row, TCP_BLANK)
    return row


def _listener_row(proxy: str, listener, iid: int, pid: int, mode: str) -> dict:
    """A listening address's row (`option socket-stats`), with the columns
    HAProxy 2.6 fills for one."""
    gate = listener.gate
    row = dict(
        pxname=proxy, svname=listener.name, type=TYPE_LISTENER, pid=pid, iid=iid,
        sid=listener.sid, status="FULL" if gate.full else "OPEN", mode=mode, addr=listener.addr,
        scur=gate.current, smax=gate.max_seen, slim=gate.limit, stot=listener.total,
        bin=listener.bytes_in, bout=listener.bytes_out, dreq=listener.denied, dresp=0,
        ereq=listener.request_errors, dcon=listener.denied_connections,
        dses=listener.denied_sessions, wrew=0, eint=0, ssl_sess=0, ssl_reused_sess=0,
        ssl_failed_handshake=0)
    row["-"] = "-"
    return row


_NO_IDLE = (0, 0)


def server_row(state: ServerState, health_checker, iid: int, pid: int, mode: str,
               now: float, counters=None, idle=_NO_IDLE) -> dict:
    """One server's row; health_checker and counters may be None (no checks).
    idle: its idle connections in the pool, (unsafe, safe)."""
    row = dict.fromkeys(SERVER_ZEROS, 0)
    health = health_checker.shown_health_of(state.backend, state.name) if health_checker else None
    track = state.config.track if state.config is not None else None
    # a tracking server shows the tracked chain's health, and no check of its own
    shown = health_checker.tracked_health_of(state.backend, state.name) \
        if track and health_checker else health
    active = not state.backup
    row.update(
        pxname=state.backend, svname=state.name, type=TYPE_SERVER, pid=pid, iid=iid,
        sid=state.server_id, mode=mode,
        qcur=state.queued, qmax=state.max_queued,
        scur=state.current_sessions, smax=state.max_sessions,
        # a moving limit shows its configured maxconn, as HAProxy's does
        slim=state.ceiling or state.maxconn or None, stot=state.total_sessions, lbtot=state.balanced,
        bin=state.bytes_in, bout=state.bytes_out, econ=state.connect_errors,
        eresp=state.response_errors, wretr=state.retries, wredis=state.redispatches,
        cli_abrt=state.client_aborts, srv_abrt=state.server_aborts,
        status=server_status(state, shown), tracked=track,
        weight=state.effective_weight, uweight=state.weight,
        act=int(active), bck=int(not active),
        lastchg=max(0, int(now - state.last_change)),
        qlimit=state.maxqueue or None,
        addr=_addr(state), req_tot=sum(state.http_responses.values()) if mode == "http" else None,
        connect=state.connects, reuse=state.reuses, throttle=_throttle(state, health, now),
        idle_conn_cur=idle[0], safe_conn_cur=idle[1], srv_icur=idle[0] + idle[1],
        # a connection per exchange or tunnel in progress: haply never shares one
        used_conn_cur=state.current_sessions)
    # what the server has now, busy or idle: the pool keeps no longer-term estimate
    row["need_conn_est"] = row["used_conn_cur"] + row["srv_icur"]
    row["qtime"], row["ctime"] = timing_averages(state)
    row["qtime_max"], row["ctime_max"] = state.queue_time_max, state.connect_time_max
    row["rtime"] = int(state.response_time_avg + 0.5)
    row["ttime"] = int(state.total_time_avg + 0.5)
    row["rtime_max"], row["ttime_max"] = state.response_time_max, state.total_time_max
    row["-"] = "-"
    if health is not None:
        row.update(
            chkfail=getattr(state, "failed_checks", 0),
            chkdown=counters.chkdown(state.backend, state.name) if counters else 0,
            downtime=counters.downtime(state.backend, state.name, now) if counters else 0)
        if state.admin != MAINT:
            # maintenance stops the checks: HAProxy shows none of their
            # results there (its counters above stay)
            t = health.timing
            status = state.check_status or "INI"
            row.update(
                check_status=status,
                check_code=state.check_code,
                # the registry keeps seconds; the column is in ms
                check_duration=(int(state.check_duration * 1000)
                                if state.check_duration is not None else None),
                check_desc=CHECK_DESC.get(status, status), last_chk=last_check_info(state),
                check_rise=t.rise, check_fall=t.fall, check_health=health.health)
    if mode == "http":
        _hrsp(row, state.http_responses)
    else:
        for name in _HRSP:
            row[name] = None
    row["lastsess"] = -1 if not state.total_sessions else row.get("lastsess", 0)
    return row


def _throttle(state: ServerState, health, now: float) -> int | None:
    """How far into its `slowstart` ramp a server is, in percent (None when
    it is not ramping up: no slowstart, up since the start, or done)."""
    slowstart = state.config.slowstart if state.config is not None else 0
    since = getattr(health, "last_up_at", None)
    if not slowstart or since is None or state.operational != UP or now - since >= slowstart:
        return None
    return max(0, int(100 * (now - since) / slowstart))


def last_check_info(state: ServerState) -> str | None:
    """`last_chk`: the check's own words ("Connection refused", "HTTP status
    check returned code <503>"), not the status description HAProxy puts in
    check_desc, nor the code it has a column for: a check that passed with
    "Layer7 check passed, code: 200" has no words of its own (empty, as in
    HAProxy 2.6). A reason that is not a check's ("changed from CLI") is
    shown whole."""
    reason = state.check_reason or ""
    marker = 'info: "'
    cut = reason.find(marker)
    if cut >= 0:
        return reason[cut + len(marker):].rstrip('"') or None
    described = CHECK_DESC.get(state.check_status or "")
    if not reason or (described and reason.split(", code: ")[0] == described):
        return None
    return reason


def _addr(state: ServerState) -> str:
    if state.port is None:
        return state.host
    host = state.host
    if ":" in host:
        host = f"[{host}]"
    return f"{host}:{state.port}"


def _backend_row(backend, servers: list[dict], iid: int, pid: int, mode: str,
                 now: float, started_at: float, history=None) -> dict:
    row = dict.fromkeys(BACKEND_ZEROS, 0)
    states = backend.servers
    # HAProxy counts servers that can take traffic: up, ready, weight above 0.
    usable_active = [s for s in states if not s.backup and s.usable]
    usable_backup = [s for s in states if s.backup and s.usable]
    # HAProxy reads the backend's state off its servers' usable weight: one
    # draining or at weight 0 does not keep it UP. Without servers (a
    # stats-only `listen`) it shows UP.
    up = not backend_down(states)
    last = history.since if history is not None else started_at
    row.update(
        pxname=backend.name, svname="BACKEND", type=TYPE_BACKEND, pid=pid, iid=iid,
        sid=0, mode=mode, algo=backend.proxy.balance,
        qcur=backend.queued, qmax=backend.max_queued,
        scur=backend.current_sessions + backend.waiting, smax=backend.max_sessions,
        stot=backend.routed, lbtot=sum(s.balanced for s in states),
        # HTTP exchanges count bytes on servers only; a backend's are its servers'.
        bin=max(backend.bytes_in, sum(s.bytes_in for s in states)),
        bout=max(backend.bytes_out, sum(s.bytes_out for s in states)),
        # a request that found no server, or none in time, is a connection error too
        dreq=backend.denied, econ=backend.connect_errors + backend.no_server,
        eresp=sum(s.response_errors for s in states),
        cli_abrt=backend.client_aborts + sum(s.client_aborts for s in states),
        srv_abrt=sum(s.server_aborts for s in states),
        wretr=backend.retried, wredis=backend.redispatched,
        connect=sum(s.connects for s in states), reuse=sum(s.reuses for s in states),
        status="UP" if up else "DOWN",
        weight=sum(s.effective_weight for s in (usable_active or usable_backup)),
        uweight=sum(s.weight for s in (usable_active or usable_backup)),
        act=len(usable_active), bck=len(usable_backup),
        lastchg=max(0, int(now - last)),
        chkdown=history.downs if history is not None else 0,
        downtime=history.downtime(now) if history is not None else 0,
        req_tot=None)
    _compression(row, backend)
    row["slim"] = backend.fullconn  # configured or derived (haply.runtime.dynamic_limit)
    # The backend's averages: its servers', weighted by the sessions each average
    # covers (the servers' rows were just computed, so no state is touched here).
    weights = [min(s.total_sessions, TIME_WINDOW) for s in states]
    if sum(weights):
        for column in ("qtime", "ctime"):
            row[column] = int(sum(w * r[column] for w, r in zip(weights, servers))
                              / sum(weights) + 0.5)
    weights = [min(s.timed, TIME_WINDOW) for s in states]
    if sum(weights):
        for column, average in (("rtime", "response_time_avg"), ("ttime", "total_time_avg")):
            row[column] = int(sum(w * getattr(s, average) for w, s in zip(weights, states))
                              / sum(weights) + 0.5)
    for column in ("qtime_max", "ctime_max", "rtime_max", "ttime_max"):
        row[column] = max((r[column] for r in servers), default=0)
    if not states:
        row["downtime"] = None
    row["-"] = "-"
    if mode == "http":
        # every answer to a request routed here: its servers' final ones
        # (their 1xx count on the servers alone) and haply's own, as HAProxy counts
        counts: dict[int, int] = dict(backend.local_responses)
        for s in states:
            for klass, n in s.http_responses.items():
                if klass != 1:
                    counts[klass] = counts.get(klass, 0) + n
        _hrsp(row, counts)
        row["req_tot"] = sum(counts.values()) + backend.unanswered
    else:
        _blank(row, TCP_BLANK)
    row["lastsess"] = -1 if not backend.routed else 0
    return row


def info(engine, now: float, pid: int) -> dict:
    """`show info` fields haply can answer truthfully, in HAProxy's order.
    What haply does not have (memory pools, pipes for splicing, busy polling,
    a debugging CLI, log forwarding, ssl session caches of its own) reads as
    HAProxy reads for a process that uses none: 0; limits haply does not
    enforce (maxconnrate, maxsessrate, maxsslconn, maxsslrate, maxcomprate,
    -m) read 0, "none"."""
    import resource
    import time
    from haply import __version__
    started = getattr(engine, "started_at", now)
    uptime = max(0, int(now - started))
    gate = engine.global_gate
    # HAProxy counts every listening socket, stats sockets included
    listeners = len(getattr(engine, "_sockets", ())) + len(getattr(engine, "_stats_sockets", ()))
    files = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if files == resource.RLIM_INFINITY:
        files = 0
    sampler = _rates.of(engine)
    totals = _rates.process_totals(engine)
    rates = {}
    for name in ("conn", "bytes out", "comp in", "comp out"):
        key = ("process", None, name)
        rates[name] = ((sampler.rate(key, totals[name], now), sampler.maximum(key))
                       if sampler is not None else (0, 0))
    peers = sum(len(service.sessions) for service in getattr(engine, "peer_services", ()))
    version = __version__
    return {
        "Name": "haply",
        "Version": version,
        "Nbthread": 1,
        "Nbproc": 1,
        "Process_num": 1,
        "Pid": os.getpid(),
        "Uptime": f"{uptime // 86400}d {uptime % 86400 // 3600}h"
                  f"{uptime % 3600 // 60:02d}m{uptime % 60:02d}s",
        "Uptime_sec": uptime,
        "Memmax_MB": 0,
        "PoolAlloc_MB": 0,
        "PoolUsed_MB": 0,
        "PoolFailed": 0,
        "Ulimit-n": files,
        "Maxsock": _max_sockets(engine, files),
        "Maxconn": gate.limit or 0,
        # what `set maxconn global` may not exceed: the configured limit
        "Hard_maxconn": engine.config.global_.maxconn or 0,
        "CurrConns": gate.current,
        "CumConns": getattr(gate, "total", 0),
        "CumReq": sum(f.http_requests for f in engine.frontends.values()),
        "MaxSslConns": 0,
        "CurrSslConns": 0,
        "CumSslConns": 0,
        "Maxpipes": 0,
        "PipesUsed": 0,
        "PipesFree": 0,
        "ConnRate": rates["conn"][0],
        "ConnRateLimit": 0,
        "MaxConnRate": rates["conn"][1],
        # every connection accepted is a session (no stage refuses one after)
        "SessRate": rates["conn"][0],
        "SessRateLimit": 0,
        "MaxSessRate": rates["conn"][1],
        "SslRate": 0,
        "SslRateLimit": 0,
        "MaxSslRate": 0,
        "SslFrontendKeyRate": 0,
        "SslFrontendMaxKeyRate": 0,
        "SslFrontendSessionReuse_pct": 0,
        "SslBackendKeyRate": 0,
        "SslBackendMaxKeyRate": 0,
        "SslCacheLookups": 0,
        "SslCacheMisses": 0,
        "CompressBpsIn": rates["comp in"][0],
        "CompressBpsOut": rates["comp out"][0],
        "CompressBpsRateLim": 0,
        "Tasks": _tasks(engine),
        # the event loop does not tell how many callbacks are ready to run
        "Run_queue": 0,
        "Idle_pct": sampler.idle_percent() if sampler is not None else 100,
        "node": os.uname().nodename,
        "Stopping": int(getattr(engine, "stopping", False)),
        "Jobs": gate.current + listeners,
        "Unstoppable Jobs": 0,
        "Listeners": listeners,
        "ActivePeers": peers,
        "ConnectedPeers": peers,
        "DroppedLogs": getattr(getattr(engine, "logging", None), "dropped", 0),
        "BusyPolling": 0,
        "FailedResolutions": sum(getattr(r, "failed", 0) for r in getattr(engine, "resolvers", ())),
        "TotalBytesOut": totals["bytes out"],
        "TotalSplicdedBytesOut": 0,
        "BytesOutRate": rates["bytes out"][0],
        "DebugCommandsIssued": 0,
        "CumRecvLogs": 0,
        "Build info": version,
        "Memmax_bytes": 0,
        "PoolAlloc_bytes": 0,
        "PoolUsed_bytes": 0,
        "Start_time_sec": int(time.time() - (now - started)),
        "Tainted": 0,
    }


def _max_sockets(engine, files: int) -> int:
    """The descriptors maxconn and the rest of the configuration need, as
    haply counts them to set its open-file limit (haply.limits); without a
    bound on connections, the open-file limit itself."""
    from haply import limits
    need = limits.descriptors_needed(engine.config)
    return need.total if need.maxconn is not None else files


def _tasks(engine) -> int:
    """The event loop's tasks (sessions connecting, checks, timers of the
    services), as HAProxy counts its own."""
    import asyncio
    loop = getattr(engine, "loop", None)
    try:
        return len(asyncio.all_tasks(loop)) if loop is not None else 0
    except (RuntimeError, TypeError):
        return 0
