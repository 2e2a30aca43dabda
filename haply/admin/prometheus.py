"""`http-request use-service prometheus-exporter`: HAProxy's metric names and
labels, so dashboards and alerts written for HAProxy's exporter work unchanged.

Every family HAProxy 2.6's built-in exporter prints, with its name, help,
type, labels and place (observed on the same configs); values come from the
one stats snapshot: the `show stat` columns and the `show info` fields. As in
HAProxy, a family is printed only once it has a sample (a backend in mode tcp
has no HTTP responses; a server without checks no check status). Text
exposition format 0.0.4, written here (one join, no per-metric objects).
"""

from __future__ import annotations

import math

from haply.admin import columns, rates, snapshot, vrrp_status
from haply.proxy import stick

F, L, B, S = "frontend", "listener", "backend", "server"

# HAProxy 2.6's process metrics, in its order: (name, type, `show info` field, help).
PROCESS: tuple[tuple[str, str, str, str], ...] = (
    ('nbthread', 'gauge', 'Nbthread',
     'Number of started threads (global.nbthread)'),
    ('nbproc', 'gauge', 'Nbproc',
     'Number of started worker processes (historical, always 1)'),
    ('relative_process_id', 'gauge', 'Process_num',
     'Relative worker process number (1)'),
    ('uptime_seconds', 'gauge', 'Uptime_sec',
     'How long ago this worker process was started (seconds)'),
    ('pool_failures_total', 'counter', 'PoolFailed',
     'Number of failed pool allocations since this worker was started'),
    ('max_fds', 'gauge', 'Ulimit-n',
     'Hard limit on the number of per-process file descriptors'),
    ('max_sockets', 'gauge', 'Maxsock',
     'Hard limit on the number of per-process sockets'),
    ('max_connections', 'gauge', 'Maxconn',
     'Hard limit on the number of per-process connections (configured or imposed by Ulimit-n)'),
    ('hard_max_connections', 'gauge', 'Hard_maxconn',
     'Hard limit on the number of per-process connections (imposed by Memmax_MB or Ulimit-n)'),
    ('current_connections', 'gauge', 'CurrConns',
     'Current number of connections on this worker process'),
    ('connections_total', 'counter', 'CumConns',
     'Total number of connections on this worker process since started'),
    ('requests_total', 'counter', 'CumReq',
     'Total number of requests on this worker process since started'),
    ('max_ssl_connections', 'gauge', 'MaxSslConns',
     'Hard limit on the number of per-process SSL endpoints (front+back), 0=unlimited'),
    ('current_ssl_connections', 'gauge', 'CurrSslConns',
     'Current number of SSL endpoints on this worker process (front+back)'),
    ('ssl_connections_total', 'counter', 'CumSslConns',
     'Total number of SSL endpoints on this worker process since started (front+back)'),
    ('max_pipes', 'gauge', 'Maxpipes',
     'Hard limit on the number of pipes for splicing, 0=unlimited'),
    ('pipes_used_total', 'counter', 'PipesUsed',
     'Current number of pipes in use in this worker process'),
    ('pipes_free_total', 'counter', 'PipesFree',
     'Current number of allocated and available pipes in this worker process'),
    ('current_connection_rate', 'gauge', 'ConnRate',
     'Number of front connections created on this worker process over the last second'),
    ('limit_connection_rate', 'gauge', 'ConnRateLimit',
     'Hard limit for ConnRate (global.maxconnrate)'),
    ('max_connection_rate', 'gauge', 'MaxConnRate',
     'Highest ConnRate reached on this worker process since started (in connections per second)'),
    ('current_session_rate', 'gauge', 'SessRate',
     'Number of sessions created on this worker process over the last second'),
    ('limit_session_rate', 'gauge', 'SessRateLimit',
     'Hard limit for SessRate (global.maxsessrate)'),
    ('max_session_rate', 'gauge', 'MaxSessRate',
     'Highest SessRate reached on this worker process since started (in sessions per second)'),
    ('current_ssl_rate', 'gauge', 'SslRate',
     'Number of SSL connections created on this worker process over the last second'),
    ('limit_ssl_rate', 'gauge', 'SslRateLimit',
     'Hard limit for SslRate (global.maxsslrate)'),
    ('max_ssl_rate', 'gauge', 'MaxSslRate',
     'Highest SslRate reached on this worker process since started (in connections per second)'),
    ('current_frontend_ssl_key_rate', 'gauge', 'SslFrontendKeyRate',
     'Number of SSL keys created on frontends in this worker process over the last second'),
    ('max_frontend_ssl_key_rate', 'gauge', 'SslFrontendMaxKeyRate',
     'Highest SslFrontendKeyRate reached on this worker process since started (in SSL keys per second)'),
    ('frontend_ssl_reuse', 'gauge', 'SslFrontendSessionReuse_pct',
     'Percent of frontend SSL connections which did not require a new key'),
    ('current_backend_ssl_key_rate', 'gauge', 'SslBackendKeyRate',
     'Number of SSL keys created on backends in this worker process over the last second'),
    ('max_backend_ssl_key_rate', 'gauge', 'SslBackendMaxKeyRate',
     'Highest SslBackendKeyRate reached on this worker process since started (in SSL keys per second)'),
    ('ssl_cache_lookups_total', 'counter', 'SslCacheLookups',
     'Total number of SSL session ID lookups in the SSL session cache on this worker since started'),
    ('ssl_cache_misses_total', 'counter', 'SslCacheMisses',
     "Total number of SSL session ID lookups that didn't find a session in the SSL session cache on this worker since started"),
    ('http_comp_bytes_in_total', 'counter', 'CompressBpsIn',
     'Number of bytes submitted to the HTTP compressor in this worker process over the last second'),
    ('http_comp_bytes_out_total', 'counter', 'CompressBpsOut',
     'Number of bytes emitted by the HTTP compressor in this worker process over the last second'),
    ('limit_http_comp', 'gauge', 'CompressBpsRateLim',
     'Limit of CompressBpsOut beyond which HTTP compression is automatically disabled'),
    ('current_zlib_memory', 'gauge', 'ZlibMemUsage',
     'Amount of memory currently used by HTTP compression on the current worker process (in bytes)'),
    ('max_zlib_memory', 'gauge', 'MaxZlibMemUsage',
     'Limit on the amount of memory used by HTTP compression above which it is automatically disabled (in bytes, see global.maxzlibmem)'),
    ('current_tasks', 'gauge', 'Tasks',
     'Total number of tasks in the current worker process (active + sleeping)'),
    ('current_run_queue', 'gauge', 'Run_queue',
     'Total number of active tasks+tasklets in the current worker process'),
    ('idle_time_percent', 'gauge', 'Idle_pct',
     'Percentage of last second spent waiting in the current worker thread'),
    ('stopping', 'gauge', 'Stopping',
     '1 if the worker process is currently stopping, otherwise zero'),
    ('jobs', 'gauge', 'Jobs',
     'Current number of active jobs on the current worker process (frontend connections, master connections, listeners)'),
    ('unstoppable_jobs', 'gauge', 'Unstoppable Jobs',
     'Current number of unstoppable jobs on the current worker process (master connections)'),
    ('listeners', 'gauge', 'Listeners',
     'Current number of active listeners on the current worker process'),
    ('active_peers', 'gauge', 'ActivePeers',
     'Current number of verified active peers connections on the current worker process'),
    ('connected_peers', 'gauge', 'ConnectedPeers',
     'Current number of peers having passed the connection step on the current worker process'),
    ('dropped_logs_total', 'counter', 'DroppedLogs',
     'Total number of dropped logs for current worker process since started'),
    ('busy_polling_enabled', 'gauge', 'BusyPolling',
     '1 if busy-polling is currently in use on the worker process, otherwise zero (config.busy-polling)'),
    ('failed_resolutions', 'counter', 'FailedResolutions',
     'Total number of failed DNS resolutions in current worker process since started'),
    ('bytes_out_total', 'counter', 'TotalBytesOut',
     'Total number of bytes emitted by current worker process since started'),
    ('spliced_bytes_out_total', 'counter', 'TotalSplicdedBytesOut',
     'Total number of bytes emitted by current worker process through a kernel pipe since started'),
    ('bytes_out_rate', 'gauge', 'BytesOutRate',
     'Number of bytes emitted by current worker process over the last second'),
    ('recv_logs_total', 'counter', 'CumRecvLogs',
     'Total number of log messages received by log-forwarding listeners on this worker process since started'),
    ('build_info', 'gauge', 'Build info',
     'Build info'),
    ('max_memory_bytes', 'gauge', 'Memmax_bytes',
     "Worker process's hard limit on memory usage in byes (-m on command line)"),
    ('pool_allocated_bytes', 'gauge', 'PoolAlloc_bytes',
     'Amount of memory allocated in pools (in bytes)'),
    ('pool_used_bytes', 'gauge', 'PoolUsed_bytes',
     'Amount of pool memory currently used (in bytes)'),
    ('start_time_seconds', 'gauge', 'Start_time_sec',
     'Start time in seconds'),
)
# Per-object metrics: name -> (type, `show stat` column or None when drawn
# otherwise, help).
OBJECT: dict[str, tuple[str, str | None, str]] = {
    'current_sessions': ('gauge', 'scur',
        'Number of current sessions on the frontend, backend or server'),
    'max_sessions': ('gauge', 'smax',
        'Highest value of current sessions encountered since process started'),
    'limit_sessions': ('gauge', 'slim',
        "Frontend/listener/server's maxconn, backend's fullconn"),
    'sessions_total': ('counter', 'stot',
        'Total number of sessions since process started'),
    'bytes_in_total': ('counter', 'bin',
        'Total number of request bytes since process started'),
    'bytes_out_total': ('counter', 'bout',
        'Total number of response bytes since process started'),
    'requests_denied_total': ('counter', 'dreq',
        'Total number of denied requests since process started'),
    'responses_denied_total': ('counter', 'dresp',
        'Total number of denied responses since process started'),
    'request_errors_total': ('counter', 'ereq',
        'Total number of invalid requests since process started'),
    'status': ('gauge', None,
        'Current status of the service, per state label value.'),
    'limit_session_rate': ('gauge', 'rate_lim',
        "Limit on the number of sessions accepted in a second (frontend only, 'rate-limit sessions' setting)"),
    'max_session_rate': ('gauge', 'rate_max',
        'Highest value of sessions per second observed since the worker process started'),
    'http_responses_total': ('counter', None,
        'Total number of HTTP responses with status 100-199 returned by this object since the worker process started'),
    'http_requests_rate_max': ('gauge', 'req_rate_max',
        'Highest value of http requests observed since the worker process started'),
    'http_requests_total': ('counter', 'req_tot',
        'Total number of HTTP requests processed by this object since the worker process started'),
    'http_comp_bytes_in_total': ('counter', 'comp_in',
        'Total number of bytes submitted to the HTTP compressor for this object since the worker process started'),
    'http_comp_bytes_out_total': ('counter', 'comp_out',
        'Total number of bytes emitted by the HTTP compressor for this object since the worker process started'),
    'http_comp_bytes_bypassed_total': ('counter', 'comp_byp',
        'Total number of bytes that bypassed HTTP compression for this object since the worker process started (CPU/memory/bandwidth limitation)'),
    'http_comp_responses_total': ('counter', 'comp_rsp',
        'Total number of HTTP responses that were compressed for this object since the worker process started'),
    'connections_rate_max': ('gauge', 'conn_rate_max',
        'Highest value of connections per second observed since the worker process started'),
    'connections_total': ('counter', 'conn_tot',
        'Total number of new connections accepted on this frontend since the worker process started'),
    'intercepted_requests_total': ('counter', 'intercepted',
        'Total number of HTTP requests intercepted on the frontend (redirects/stats/services) since the worker process started'),
    'denied_connections_total': ('counter', 'dcon',
        'Total number of incoming connections blocked on a listener/frontend by a tcp-request connection rule since the worker process started'),
    'denied_sessions_total': ('counter', 'dses',
        'Total number of incoming sessions blocked on a listener/frontend by a tcp-request connection rule since the worker process started'),
    'failed_header_rewriting_total': ('counter', 'wrew',
        'Total number of failed HTTP header rewrites since the worker process started'),
    'http_cache_lookups_total': ('counter', 'cache_lookups',
        'Total number of HTTP requests looked up in the cache on this frontend/backend since the worker process started'),
    'http_cache_hits_total': ('counter', 'cache_hits',
        'Total number of HTTP requests not found in the cache on this frontend/backend since the worker process started'),
    'internal_errors_total': ('counter', 'eint',
        'Total number of internal errors since process started'),
    'current_queue': ('gauge', 'qcur',
        'Number of current queued connections'),
    'max_queue': ('gauge', 'qmax',
        'Highest value of queued connections encountered since process started'),
    'connection_errors_total': ('counter', 'econ',
        'Total number of failed connections to server since the worker process started'),
    'response_errors_total': ('counter', 'eresp',
        'Total number of invalid responses since the worker process started'),
    'retry_warnings_total': ('counter', 'wretr',
        'Total number of server connection retries since the worker process started'),
    'redispatch_warnings_total': ('counter', 'wredis',
        'Total number of server redispatches due to connection failures since the worker process started'),
    'weight': ('gauge', 'weight',
        "Server's effective weight, or sum of active servers' effective weights for a backend"),
    'active_servers': ('gauge', 'act',
        'Total number of active UP servers with a non-zero weight'),
    'backup_servers': ('gauge', 'bck',
        'Total number of backup UP servers with a non-zero weight'),
    'check_up_down_total': ('counter', 'chkdown',
        'Total number of failed checks causing UP to DOWN server transitions, per server/backend, since the worker process started'),
    'check_last_change_seconds': ('gauge', 'lastchg',
        'How long ago the last server state changed, in seconds'),
    'downtime_seconds_total': ('counter', 'downtime',
        'Total time spent in DOWN state, for server or backend'),
    'loadbalanced_total': ('counter', 'lbtot',
        'Total number of requests routed by load balancing since the worker process started (ignores queue pop and stickiness)'),
    'client_aborts_total': ('counter', 'cli_abrt',
        'Total number of requests or connections aborted by the client since the worker process started'),
    'server_aborts_total': ('counter', 'srv_abrt',
        'Total number of requests or connections aborted by the server since the worker process started'),
    'last_session_seconds': ('gauge', 'lastsess',
        'How long ago some traffic was seen on this object on this worker process, in seconds'),
    'queue_time_average_seconds': ('gauge', 'qtime',
        'Avg. queue time for last 1024 successful connections.'),
    'connect_time_average_seconds': ('gauge', 'ctime',
        'Avg. connect time for last 1024 successful connections.'),
    'response_time_average_seconds': ('gauge', 'rtime',
        'Avg. response time for last 1024 successful connections.'),
    'total_time_average_seconds': ('gauge', 'ttime',
        'Avg. total time for last 1024 successful connections.'),
    'connection_attempts_total': ('counter', 'connect',
        'Total number of outgoing connection attempts on this backend/server since the worker process started'),
    'connection_reuses_total': ('counter', 'reuse',
        'Total number of reused connection on this backend/server since the worker process started'),
    'max_queue_time_seconds': ('gauge', 'qtime_max',
        'Maximum observed time spent in the queue'),
    'max_connect_time_seconds': ('gauge', 'ctime_max',
        'Maximum observed time spent waiting for a connection to complete'),
    'max_response_time_seconds': ('gauge', 'rtime_max',
        'Maximum observed time spent waiting for a server response'),
    'max_total_time_seconds': ('gauge', 'ttime_max',
        'Maximum observed total request+response time (request+queue+connect+response+processing)'),
    'uweight': ('gauge', 'uweight',
        "Server's user weight, or sum of active servers' user weights for a backend"),
    'agg_server_status': ('gauge', None,
        "Backend's aggregated gauge of servers' status"),
    'agg_server_check_status': ('gauge', None,
        "Backend's aggregated gauge of servers' state check status"),
    'agg_check_status': ('gauge', None,
        "Backend's aggregated gauge of servers' state check status"),
    'check_failures_total': ('counter', 'chkfail',
        'Total number of failed individual health checks per server/backend, since the worker process started'),
    'queue_limit': ('gauge', 'qlimit',
        'Limit on the number of connections in queue, for servers only (maxqueue argument)'),
    'current_throttle': ('gauge', 'throttle',
        "Throttling ratio applied to a server's maxconn and weight during the slowstart period (0 to 100%)"),
    'check_status': ('gauge', None,
        'Status of last health check, per state label value.'),
    'check_code': ('gauge', 'check_code',
        'layer5-7 code, if available of the last health check.'),
    'check_duration_seconds': ('gauge', 'check_duration',
        'Total duration of the latest server health check, in seconds.'),
    'idle_connections_current': ('gauge', 'srv_icur',
        'Current number of idle connections available for reuse on this server'),
    'idle_connections_limit': ('gauge', 'src_ilim',
        "Limit on the number of available idle connections on this server (server 'pool_max_conn' directive)"),
    'unsafe_idle_connections_current': ('gauge', 'idle_conn_cur',
        'Current number of unsafe idle connections'),
    'safe_idle_connections_current': ('gauge', 'safe_conn_cur',
        'Current number of safe idle connections'),
    'used_connections_current': ('gauge', 'used_conn_cur',
        'Current number of connections in use'),
    'need_connections_current': ('gauge', 'need_conn_est',
        'Estimated needed number of connections'),
}
# Which metrics each kind of object has, in the order HAProxy prints them.
ORDER = {
    F: (
        'current_sessions', 'max_sessions', 'limit_sessions', 'sessions_total', 'bytes_in_total',
        'bytes_out_total', 'requests_denied_total', 'responses_denied_total',
        'request_errors_total', 'status', 'limit_session_rate', 'max_session_rate',
        'http_responses_total', 'http_requests_rate_max', 'http_requests_total',
        'http_comp_bytes_in_total', 'http_comp_bytes_out_total', 'http_comp_bytes_bypassed_total',
        'http_comp_responses_total', 'connections_rate_max', 'connections_total',
        'intercepted_requests_total', 'denied_connections_total', 'denied_sessions_total',
        'failed_header_rewriting_total', 'http_cache_lookups_total', 'http_cache_hits_total',
        'internal_errors_total',
    ),
    L: (
        'current_sessions', 'max_sessions', 'limit_sessions', 'sessions_total', 'bytes_in_total',
        'bytes_out_total', 'requests_denied_total', 'responses_denied_total',
        'request_errors_total', 'status', 'denied_connections_total', 'denied_sessions_total',
        'failed_header_rewriting_total', 'internal_errors_total',
    ),
    B: (
        'current_queue', 'max_queue', 'current_sessions', 'max_sessions', 'limit_sessions',
        'sessions_total', 'bytes_in_total', 'bytes_out_total', 'requests_denied_total',
        'responses_denied_total', 'connection_errors_total', 'response_errors_total',
        'retry_warnings_total', 'redispatch_warnings_total', 'status', 'weight', 'active_servers',
        'backup_servers', 'check_up_down_total', 'check_last_change_seconds',
        'downtime_seconds_total', 'loadbalanced_total', 'max_session_rate', 'http_responses_total',
        'http_requests_total', 'client_aborts_total', 'server_aborts_total',
        'http_comp_bytes_in_total', 'http_comp_bytes_out_total', 'http_comp_bytes_bypassed_total',
        'http_comp_responses_total', 'last_session_seconds', 'queue_time_average_seconds',
        'connect_time_average_seconds', 'response_time_average_seconds',
        'total_time_average_seconds', 'failed_header_rewriting_total', 'connection_attempts_total',
        'connection_reuses_total', 'http_cache_lookups_total', 'http_cache_hits_total',
        'max_queue_time_seconds', 'max_connect_time_seconds', 'max_response_time_seconds',
        'max_total_time_seconds', 'internal_errors_total', 'uweight', 'agg_server_status',
        'agg_server_check_status', 'agg_check_status',
    ),
    S: (
        'current_queue', 'max_queue', 'current_sessions', 'max_sessions', 'limit_sessions',
        'sessions_total', 'bytes_in_total', 'bytes_out_total', 'responses_denied_total',
        'connection_errors_total', 'response_errors_total', 'retry_warnings_total',
        'redispatch_warnings_total', 'status', 'weight', 'check_failures_total',
        'check_up_down_total', 'check_last_change_seconds', 'downtime_seconds_total',
        'queue_limit', 'current_throttle', 'loadbalanced_total', 'max_session_rate',
        'check_status', 'check_code', 'check_duration_seconds', 'http_responses_total',
        'client_aborts_total', 'server_aborts_total', 'last_session_seconds',
        'queue_time_average_seconds', 'connect_time_average_seconds',
        'response_time_average_seconds', 'total_time_average_seconds',
        'failed_header_rewriting_total', 'connection_attempts_total', 'connection_reuses_total',
        'idle_connections_current', 'idle_connections_limit', 'max_queue_time_seconds',
        'max_connect_time_seconds', 'max_response_time_seconds', 'max_total_time_seconds',
        'internal_errors_total', 'unsafe_idle_connections_current',
        'safe_idle_connections_current', 'used_connections_current', 'need_connections_current',
        'uweight',
    ),
}

SERVER_STATES = ("DOWN", "UP", "MAINT", "DRAIN", "NOLB")
LISTENER_STATES = ("WAITING", "OPEN", "FULL")
CHECK_STATES = ("HANA", "SOCKERR", "L4OK", "L4TOUT", "L4CON", "L6OK", "L6TOUT", "L6RSP",
                "L7TOUT", "L7RSP", "L7OK", "L7OKC", "L7STS", "PROCERR", "PROCTOUT", "PROCOK")
VRRP_STATES = vrrp_status.STATES
CODES = ("1xx", "2xx", "3xx", "4xx", "5xx", "other")
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _label(value: str) -> str:
    return str(value).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value) -> str:
    if value is None or value == "":
        return "NaN"
    if isinstance(value, float):
        return "NaN" if math.isnan(value) else repr(value)
    return str(value)


def server_state(status: str) -> str:
    """HAProxy's exporter state word for a server's `status` column."""
    if status.startswith("MAINT"):
        return "MAINT"
    if status.startswith("DRAIN"):
        return "DRAIN"
    if status.startswith("DOWN"):
        return "DOWN"
    return "UP"  # UP, UP n/m, no check


# Families a proxy in mode tcp has no sample in.
HTTP_ONLY = frozenset((
    "http_responses_total", "http_requests_rate_max", "http_requests_total",
    "http_comp_bytes_in_total", "http_comp_bytes_out_total", "http_comp_bytes_bypassed_total",
    "http_comp_responses_total", "intercepted_requests_total", "http_cache_lookups_total",
    "http_cache_hits_total"))
# Families of a server's own health check: none for a server without one.
CHECK_ONLY = frozenset(("check_status", "check_code", "check_duration_seconds"))
HRSP = ("hrsp_1xx", "hrsp_2xx", "hrsp_3xx", "hrsp_4xx", "hrsp_5xx", "hrsp_other")


def _seconds(value) -> str:
    """A column in milliseconds, as the exporter gives it: seconds."""
    return "NaN" if value is None or value == "" else format(value / 1000, ".6f")


def _process(info: dict) -> list[str]:
    out = []
    for name, kind, field, text in PROCESS:
        metric = f"haproxy_process_{name}"
        if name == "build_info":
            sample = f'{metric}{{version="{_label(info.get(field, ""))}"}} 1'
        else:
            sample = f"{metric} {_number(info.get(field))}"
        out.append(f"# HELP {metric} {text}\n# TYPE {metric} {kind}\n{sample}\n")
    return out


def _aggregates(servers: list[dict]) -> dict[str, list[int]]:
    """A backend's agg_* families: how many of its servers are in each state,
    and how many of those that run checks had each last check status."""
    states = [0] * len(SERVER_STATES)
    checks = [0] * len(CHECK_STATES)
    for row in servers:
        states[SERVER_STATES.index(server_state(str(row.get("status") or "")))] += 1
        status = str(row.get("check_status") or "").lstrip("* ")
        if status in CHECK_STATES:
            checks[CHECK_STATES.index(status)] += 1
    return {"agg_server_status": states, "agg_server_check_status": states,
            "agg_check_status": checks}


def _samples(kind: str, name: str, rows: list[dict], labels: list[str],
             servers: dict[str, list[dict]]) -> list[str]:
    """The sample lines of one family for the rows of one kind of object."""
    metric = f"haproxy_{kind}_{name}"
    column = OBJECT[name][1]
    http_only = name in HTTP_ONLY
    out = []
    if name == "http_responses_total":
        # code by code, every object under each (HAProxy's order)
        for code, column in zip(CODES, HRSP):
            for row, label in zip(rows, labels):
                if row.get("mode") == "http":
                    out.append(f'{metric}{{{label},code="{code}"}} {_number(row.get(column) or 0)}\n')
        return out
    for row, label in zip(rows, labels):
        if http_only and row.get("mode") != "http":
            continue
        if name in CHECK_ONLY and not row.get("check_status"):
            continue
        if name == "status":
            if kind == S:
                current, states = server_state(str(row.get("status") or "")), SERVER_STATES
            elif kind == L:
                current, states = row.get("status"), LISTENER_STATES
            else:
                current = "UP" if row.get("status") in ("OPEN", "UP") else "DOWN"
                states = ("DOWN", "UP")
            out.extend(f'{metric}{{{label},state="{state}"}} {int(state == current)}\n'
                       for state in states)
        elif name == "check_status":
            current = str(row["check_status"]).lstrip("* ")
            out.extend(f'{metric}{{{label},state="{state}"}} {int(state == current)}\n'
                       for state in CHECK_STATES)
        elif name.startswith("agg_"):
            counts = _aggregates(servers.get(row["pxname"], []))[name]
            states = CHECK_STATES if name == "agg_check_status" else SERVER_STATES
            out.extend(f'{metric}{{{label},state="{state}"}} {count}\n'
                       for state, count in zip(states, counts))
        elif name == "check_code":
            # a check without a layer 5-7 code (a connect) reads 0
            out.append(f"{metric}{{{label}}} {_number(row.get(column) or 0)}\n")
        elif name in SECONDS:
            out.append(f"{metric}{{{label}}} {_seconds(row.get(column))}\n")
        else:
            out.append(f"{metric}{{{label}}} {_number(row.get(column))}\n")
    return out


# Columns in milliseconds that the exporter gives in seconds.
SECONDS = frozenset((
    "queue_time_average_seconds", "connect_time_average_seconds", "response_time_average_seconds",
    "total_time_average_seconds", "max_queue_time_seconds", "max_connect_time_seconds",
    "max_response_time_seconds", "max_total_time_seconds", "check_duration_seconds"))


def render(snap: snapshot.Snapshot) -> str:
    out = _process(snap.info)
    by_kind: dict[str, list[dict]] = {F: [], L: [], B: [], S: []}
    servers: dict[str, list[dict]] = {}
    for row in snap.rows:
        kind = {columns.TYPE_FRONTEND: F, columns.TYPE_BACKEND: B,
                columns.TYPE_LISTENER: L}.get(row["type"], S)
        by_kind[kind].append(row)
        if kind == S:
            servers.setdefault(row["pxname"], []).append(row)
    for kind in (F, L, B, S):
        rows = by_kind[kind]
        if not rows:
            continue
        labels = [_labels(kind, row) for row in rows]
        for name in ORDER[kind]:
            samples = _samples(kind, name, rows, labels, servers)
            if samples:
                mtype, _, text = OBJECT[name]
                metric = f"haproxy_{kind}_{name}"
                out.append(f"# HELP {metric} {text}\n# TYPE {metric} {mtype}\n")
                out.extend(samples)
    return "".join(out)


def render_tables(tables: list) -> str:
    """The stick-tables' size and entries, as HAProxy 2.6's exporter gives them
    (this worker's own: each worker keeps its tables)."""
    if not tables:
        return ""
    out = ["# HELP haproxy_sticktable_size Stick table size.\n# TYPE haproxy_sticktable_size gauge\n"]
    labels = [f'name="{_label(table.name)}",type="{table.kind}"' for table in tables]
    out += [f"haproxy_sticktable_size{{{label}}} {table.size}\n" for table, label in zip(tables, labels)]
    out.append("# HELP haproxy_sticktable_used Number of entries used in this stick table.\n"
               "# TYPE haproxy_sticktable_used gauge\n")
    out += [f"haproxy_sticktable_used{{{label}}} {len(table.entries)}\n" for table, label in zip(tables, labels)]
    return "".join(out)


def _labels(kind: str, row: dict) -> str:
    if kind == S:
        return f'proxy="{_label(row["pxname"])}",server="{_label(row["svname"])}"'
    if kind == L:
        return f'proxy="{_label(row["pxname"])}",listener="{_label(row["svname"])}"'
    return f'proxy="{_label(row["pxname"])}"'


def render_vrrp(instances: list[dict], problem: str | None) -> str:
    """haply's own VRRP metrics (HAProxy has none; the prefix says whose they
    are): whether the VRRP process answers, and per instance its state (one
    series per state, 1 for the current one, as HAProxy's *_status metrics) and
    effective priority. Instances of a silent process are not reported: a
    stale MASTER=1 would contradict the node that really is master now."""
    up = int(problem is None)
    out = ["# HELP haply_vrrp_up Whether the VRRP process answers (1) or is gone or silent (0).\n"
           "# TYPE haply_vrrp_up gauge\n", f"haply_vrrp_up {up}\n"]
    if not up:
        return "".join(out)
    out.append("# HELP haply_vrrp_state Current state of the VRRP instance, per state label value.\n"
               "# TYPE haply_vrrp_state gauge\n")
    for inst in instances:
        label = f'instance="{_label(inst.get("name", ""))}"'
        for state in VRRP_STATES:
            out.append(f'haply_vrrp_state{{{label},state="{state}"}} {int(inst.get("state") == state)}\n')
    out.append("# HELP haply_vrrp_priority Effective priority of the VRRP instance (configured priority plus tracking weights).\n"
               "# TYPE haply_vrrp_priority gauge\n")
    for inst in instances:
        out.append(f'haply_vrrp_priority{{instance="{_label(inst.get("name", ""))}"}} '
                   f'{_number(inst.get("priority"))}\n')
    out.append("# HELP haply_vrrp_transitions_total State transitions of the VRRP instance since its start.\n"
               "# TYPE haply_vrrp_transitions_total counter\n")
    for inst in instances:
        out.append(f'haply_vrrp_transitions_total{{instance="{_label(inst.get("name", ""))}"}} '
                   f'{_number(inst.get("transitions"))}\n')
    return "".join(out)


class Exporter:
    def __init__(self, engine):
        self.engine = engine
        self.vrrp = vrrp_status.for_engine(engine)
        rates.for_engine(engine)

    def answer(self, request, body: bytes = b"") -> bytes:
        from haply.admin.stats_page import response
        now = self.engine.loop.time()
        text = render(snapshot.take(self.engine, now)) + render_tables(stick.listed(self.engine.tables))
        if self.vrrp is not None:
            text += render_vrrp(*self.vrrp.view(now))
        return response(200, "OK", text.encode("utf-8"), CONTENT_TYPE)
