"""`http-request use-service prometheus-exporter`: HAProxy's metric names and
labels, so dashboards and alerts written for HAProxy's exporter work unchanged.

Names, types and labels are those HAProxy 2.6's built-in exporter prints
(observed on the same config); values come from the one stats snapshot. Text
exposition format 0.0.4, written here (one join, no per-metric objects).
"""

from __future__ import annotations

import math

from haply.admin import columns, rates, snapshot, vrrp_status
from haply.proxy import stick

F, L, B, S = "frontend", "listener", "backend", "server"
# (metric suffix, CSV column, type, kinds, help)
METRICS: tuple[tuple[str, str, str, str, str], ...] = (
    ("current_queue", "qcur", "gauge", "BS", "Current number of queued requests"),
    ("max_queue", "qmax", "gauge", "BS", "Maximum observed number of queued requests"),
    ("current_sessions", "scur", "gauge", "FBSL", "Number of current sessions on the frontend, backend or server"),
    ("max_sessions", "smax", "gauge", "FBSL", "Highest value of current sessions encountered since process started"),
    ("limit_sessions", "slim", "gauge", "FBSL", "Frontend/listener/server's maxconn, backend's fullconn"),
    ("sessions_total", "stot", "counter", "FBSL", "Total number of sessions since process started"),
    ("bytes_in_total", "bin", "counter", "FBSL", "Total number of request bytes since process started"),
    ("bytes_out_total", "bout", "counter", "FBSL", "Total number of response bytes since process started"),
    ("requests_denied_total", "dreq", "counter", "FBL", "Total number of denied requests since process started"),
    ("responses_denied_total", "dresp", "counter", "FBSL", "Total number of denied responses since process started"),
    ("request_errors_total", "ereq", "counter", "FL", "Total number of invalid requests since process started"),
    ("connection_errors_total", "econ", "counter", "BS", "Total number of failed connections to server since the worker process started"),
    ("response_errors_total", "eresp", "counter", "BS", "Total number of invalid responses since the worker process started"),
    ("client_aborts_total", "cli_abrt", "counter", "BS", "Total number of requests or connections aborted by the client since the worker process started"),
    ("server_aborts_total", "srv_abrt", "counter", "BS", "Total number of requests or connections aborted by the server since the worker process started"),
    ("retry_warnings_total", "wretr", "counter", "BS", "Total number of server connection retries since the worker process started"),
    ("redispatch_warnings_total", "wredis", "counter", "BS", "Total number of server redispatches due to connection failures since the worker process started"),
    ("weight", "weight", "gauge", "BS", "Server's effective weight, or sum of active servers' effective weights for a backend"),
    ("active_servers", "act", "gauge", "B", "Total number of active UP servers with a non-zero weight"),
    ("backup_servers", "bck", "gauge", "B", "Total number of backup UP servers with a non-zero weight"),
    ("check_failures_total", "chkfail", "counter", "S", "Total number of failed individual health checks per server/backend, since the worker process started"),
    ("check_up_down_total", "chkdown", "counter", "BS", "Total number of failed checks causing UP to DOWN server transitions, per server/backend, since the worker process started"),
    ("check_last_change_seconds", "lastchg", "gauge", "BS", "How long ago the last server state changed, in seconds"),
    ("downtime_seconds_total", "downtime", "counter", "BS", "Total time spent in DOWN state, for server or backend"),
    ("queue_limit", "qlimit", "gauge", "S", "Limit on the number of connections in queue, for servers only (maxqueue argument)"),
    ("loadbalanced_total", "lbtot", "counter", "BS", "Total number of requests routed by load balancing since the worker process started (ignores queue pop and stickiness)"),
    ("check_code", "check_code", "gauge", "S", "layer5-7 code, if available of the last health check."),
    ("http_comp_bytes_in_total", "comp_in", "counter", "FB", "Total number of bytes submitted to the HTTP compressor for this object since the worker process started"),
    ("http_comp_bytes_out_total", "comp_out", "counter", "FB", "Total number of bytes emitted by the HTTP compressor for this object since the worker process started"),
    ("http_comp_bytes_bypassed_total", "comp_byp", "counter", "FB", "Total number of bytes that bypassed HTTP compression for this object since the worker process started (CPU/memory/bandwidth limitation)"),
    ("http_comp_responses_total", "comp_rsp", "counter", "FB", "Total number of HTTP responses that were compressed for this object since the worker process started"),
    ("http_requests_total", "req_tot", "counter", "FB", "Total number of HTTP requests processed by this object since the worker process started"),
    ("connections_total", "conn_tot", "counter", "F", "Total number of new connections accepted on this frontend since the worker process started"),
    ("uweight", "uweight", "gauge", "BS", "Server's user weight, or sum of active servers' user weights for a backend"),
    ("max_session_rate", "rate_max", "gauge", "FBS", "Maximum observed number of sessions per second"),
    ("limit_session_rate", "rate_lim", "gauge", "F", "Configured limit on new sessions per second"),
    ("http_requests_rate_max", "req_rate_max", "gauge", "F", "Maximum observed number of HTTP requests per second observed since the worker process started"),
    ("connections_rate_max", "conn_rate_max", "gauge", "F", "Highest value of connections per second observed since the worker process started"),
    ("last_session_seconds", "lastsess", "gauge", "BS", "How long ago some traffic was seen on this object on this worker process, in seconds"),
    ("denied_connections_total", "dcon", "counter", "FL", "Total number of incoming connections blocked on a listener/frontend by a tcp-request connection rule since the worker process started"),
    ("denied_sessions_total", "dses", "counter", "FL", "Total number of incoming sessions blocked on a listener/frontend by a tcp-request connection rule since the worker process started"),
    ("failed_header_rewriting_total", "wrew", "counter", "FL", "Total number of failed HTTP header rewrites since the worker process started"),
    ("internal_errors_total", "eint", "counter", "FL", "Total number of internal errors since process started"),
)
# Columns in milliseconds that HAProxy's exporter gives in seconds.
MS_METRICS: tuple[tuple[str, str, str, str, str], ...] = (
    ("queue_time_average_seconds", "qtime", "gauge", "BS", "Avg. queue time for last 1024 successful connections."),
    ("connect_time_average_seconds", "ctime", "gauge", "BS", "Avg. connect time for last 1024 successful connections."),
    ("max_queue_time_seconds", "qtime_max", "gauge", "BS", "Maximum observed time spent in the queue"),
    ("max_connect_time_seconds", "ctime_max", "gauge", "BS", "Maximum observed time spent waiting for a connection to complete"),
)
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


def render(snap: snapshot.Snapshot) -> str:
    out: list[str] = []
    info = snap.info
    for name, kind, value, text in (
        ("process_uptime_seconds", "gauge", info.get("Uptime_sec", 0), "How long ago this worker process was started (seconds)"),
        ("process_max_connections", "gauge", info.get("Maxconn", 0), "Maximum number of concurrent connections (global.maxconn)"),
        ("process_current_connections", "gauge", info.get("CurrConns", 0), "Current number of connections on this worker process"),
        ("process_connections_total", "counter", info.get("CumConns", 0), "Total number of connections on this worker process since started"),
        ("process_requests_total", "counter", info.get("CumReq", 0), "Total number of requests on this worker process since started"),
        ("process_dropped_logs_total", "counter", info.get("DroppedLogs", 0), "Total number of dropped logs for current worker process since started"),
        ("process_stopping", "gauge", info.get("Stopping", 0), "Non zero means stopping in progress"),
    ):
        out.append(f"# HELP haproxy_{name} {text}\n# TYPE haproxy_{name} {kind}\n"
                   f"haproxy_{name} {_number(value)}\n")
    by_kind = {F: [], L: [], B: [], S: []}
    for row in snap.rows:
        kind = {columns.TYPE_FRONTEND: F, columns.TYPE_BACKEND: B,
                columns.TYPE_LISTENER: L}.get(row["type"], S)
        by_kind[kind].append(row)
    for kind, letter in ((F, "F"), (L, "L"), (B, "B"), (S, "S")):
        rows = by_kind[kind]
        if not rows:
            continue
        labels = [_labels(kind, row) for row in rows]
        # status, per state label
        metric = f"haproxy_{kind}_status"
        out.append(f"# HELP {metric} Current status of the service, per state label value.\n"
                   f"# TYPE {metric} gauge\n")
        for row, label in zip(rows, labels):
            if kind == S:
                current = server_state(str(row.get("status") or ""))
                states = SERVER_STATES
            elif kind == L:
                current, states = row.get("status"), LISTENER_STATES
            else:
                current = "UP" if row.get("status") in ("OPEN", "UP") else "DOWN"
                states = ("DOWN", "UP")
            for state in states:
                out.append(f'{metric}{{{label},state="{state}"}} {int(state == current)}\n')
        for suffix, column, mtype, kinds, text in METRICS:
            if letter not in kinds:
                continue
            metric = f"haproxy_{kind}_{suffix}"
            out.append(f"# HELP {metric} {text}\n# TYPE {metric} {mtype}\n")
            for row, label in zip(rows, labels):
                out.append(f"{metric}{{{label}}} {_number(row.get(column))}\n")
        for suffix, column, mtype, kinds, text in MS_METRICS:
            if letter not in kinds:
                continue
            metric = f"haproxy_{kind}_{suffix}"
            out.append(f"# HELP {metric} {text}\n# TYPE {metric} {mtype}\n")
            for row, label in zip(rows, labels):
                value = row.get(column)
                out.append(f"{metric}{{{label}}} "
                           f"{'NaN' if value in (None, '') else format(value / 1000, '.6f')}\n")
        if kind == S:
            metric = "haproxy_server_check_status"
            out.append(f"# HELP {metric} Status of last health check, per state label value.\n"
                       f"# TYPE {metric} gauge\n")
            for row, label in zip(rows, labels):
                if not row.get("check_status"):
                    continue
                current = str(row["check_status"]).lstrip("* ")
                for state in CHECK_STATES:
                    out.append(f'{metric}{{{label},state="{state}"}} {int(state == current)}\n')
            metric = "haproxy_server_check_duration_seconds"
            out.append(f"# HELP {metric} Total duration of the latest server health check, in seconds.\n"
                       f"# TYPE {metric} gauge\n")
            for row, label in zip(rows, labels):
                duration = row.get("check_duration")
                value = "NaN" if duration in (None, "") else f"{duration / 1000:.6f}"
                out.append(f"{metric}{{{label}}} {value}\n")
        if kind == L:
            continue  # listeners count no responses
        metric = f"haproxy_{kind}_http_responses_total"
        out.append(f"# HELP {metric} Total number of HTTP responses with status 100-199 returned"
                   f" by this object since the worker process started\n# TYPE {metric} counter\n")
        for row, label in zip(rows, labels):
            if row.get("mode") != "http":
                continue
            for code, column in zip(CODES, ("hrsp_1xx", "hrsp_2xx", "hrsp_3xx", "hrsp_4xx",
                                            "hrsp_5xx", "hrsp_other")):
                out.append(f'{metric}{{{label},code="{code}"}} {_number(row.get(column) or 0)}\n')
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
