"""HAProxy 2.6's `show stat` / `;csv` columns, in their order.

The order is the contract: scripts and exporters written for HAProxy index these
columns by position (HAProxy management guide, 9.1 "CSV format"). The list is
HAProxy 2.6's header as the program prints it, trailing empty field included.
"""

from __future__ import annotations

COLUMNS: tuple[str, ...] = tuple("""
pxname svname qcur qmax scur smax slim stot bin bout dreq dresp ereq econ eresp wretr
wredis status weight act bck chkfail chkdown lastchg downtime qlimit pid iid sid
throttle lbtot tracked type rate rate_lim rate_max check_status check_code
check_duration hrsp_1xx hrsp_2xx hrsp_3xx hrsp_4xx hrsp_5xx hrsp_other hanafail
req_rate req_rate_max req_tot cli_abrt srv_abrt comp_in comp_out comp_byp comp_rsp
lastsess last_chk last_agt qtime ctime rtime ttime agent_status agent_code
agent_duration check_desc agent_desc check_rise check_fall check_health agent_rise
agent_fall agent_health addr cookie mode algo conn_rate conn_rate_max conn_tot
intercepted dcon dses wrew connect reuse cache_lookups cache_hits srv_icur src_ilim
qtime_max ctime_max rtime_max ttime_max eint idle_conn_cur safe_conn_cur
used_conn_cur need_conn_est uweight agg_server_status agg_server_check_status
agg_check_status - ssl_sess ssl_reused_sess ssl_failed_handshake h2_headers_rcvd
h2_data_rcvd h2_settings_rcvd h2_rst_stream_rcvd h2_goaway_rcvd
h2_detected_conn_protocol_errors h2_detected_strm_protocol_errors h2_rst_stream_resp
h2_goaway_resp h2_open_connections h2_backend_open_streams h2_total_connections
h2_backend_total_streams h1_open_connections h1_open_streams h1_total_connections
h1_total_streams h1_bytes_in h1_bytes_out h1_spliced_bytes_in h1_spliced_bytes_out
""".split())

INDEX = {name: i for i, name in enumerate(COLUMNS)}

# How a column's values from several worker processes combine into one row
# (each worker counts its own traffic):
#   "sum"    counters, current values and per-second rates: they add up
#   "max"    highest values seen: the largest worker's is a lower bound of the
#            true one, the sum an upper bound; either is an approximation
#   "min"    lastsess (seconds since the last session): the most recent worker's
#   "avg"    averages over each worker's last 1024 sessions: weight by req_tot
#            or stot where known, else the plain mean
#   "state"  names, ids, states, check results, configured limits and
#            weights: the same in every worker, or first-hand only in the one
#            that runs the checks; take that worker's value, never add
COLUMN_KIND: dict[str, str] = {}
for _kind, _names in (
    ("state", """pxname svname slim status weight act bck chkfail chkdown lastchg downtime
        qlimit pid iid sid throttle tracked type rate_lim check_status check_code
        check_duration hanafail last_chk last_agt agent_status agent_code agent_duration
        check_desc agent_desc check_rise check_fall check_health agent_rise agent_fall
        agent_health addr cookie mode algo src_ilim uweight agg_server_status
        agg_server_check_status agg_check_status -"""),
    ("max", """qmax smax rate_max req_rate_max conn_rate_max qtime_max ctime_max rtime_max
        ttime_max"""),
    ("min", "lastsess"),
    ("avg", "qtime ctime rtime ttime"),
):
    for _name in _names.split():
        COLUMN_KIND[_name] = _kind
for _name in COLUMNS:
    COLUMN_KIND.setdefault(_name, "sum")
del _kind, _names, _name

# `type` column values.
TYPE_FRONTEND = 0
TYPE_BACKEND = 1
TYPE_SERVER = 2
TYPE_LISTENER = 3


def csv_header() -> str:
    return "# " + ",".join(COLUMNS) + ","


def csv_value(value) -> str:
    """One CSV field as HAProxy writes it: empty for None, no quoting (HAProxy
    never quotes; commas inside free text are replaced so columns stay aligned)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float):
        return str(int(value))
    text = str(value)
    if "," in text or "\n" in text:
        text = text.replace(",", " ").replace("\n", " ")
    return text


def csv_line(row: dict) -> str:
    get = row.get
    out = []
    for name in COLUMNS:
        value = get(name)
        if value is None:
            out.append("")
        elif value.__class__ is int:  # most fields: no checks needed
            out.append(str(value))
        else:
            out.append(csv_value(value))
    return ",".join(out) + ","


def to_csv(rows: list[dict]) -> str:
    return csv_header() + "\n" + "".join(csv_line(row) + "\n" for row in rows) + "\n"


_OBJ_TYPES = {TYPE_FRONTEND: "Frontend", TYPE_BACKEND: "Backend", TYPE_SERVER: "Server",
              TYPE_LISTENER: "Listener"}


def json_fields(row: dict) -> list[dict]:
    """One row as HAProxy's typed JSON (`show stat json`, `;json`): one object per
    non-empty field, with its position, name and value type."""
    obj = _OBJ_TYPES.get(row.get("type"), "Server")
    iid, sid = row.get("iid", 0), row.get("sid", 0)
    out = []
    for pos, name in enumerate(COLUMNS):
        value = row.get(name)
        if value is None:
            continue
        if isinstance(value, bool):
            value = int(value)
        if isinstance(value, float):
            value = int(value)
        if isinstance(value, int):
            kind = "s32" if value < 0 else "u64"
        else:
            kind, value = "str", str(value)
        out.append({"objType": obj, "proxyId": iid, "id": sid,
                    "field": {"pos": pos, "name": name}, "processNum": 1,
                    "tags": {"origin": "Key" if pos < 2 else "Metric",
                             "nature": "Name" if pos < 2 else "Gauge",
                             "scope": "Service" if pos < 2 else "Process"},
                    "value": {"type": kind, "value": value}})
    return out


def to_json(rows: list[dict]) -> str:
    import json
    return json.dumps([json_fields(row) for row in rows], separators=(",", ":"))
