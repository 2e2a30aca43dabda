"""Stats rows of several workers merged into the totals an operator expects.

Every worker counts its own traffic; the one that answers `show stat`, the stats
page or /metrics adds the others' latest rows (pushed to the master every
STATS_PERIOD, so they are at most that old) to its own live ones. Rows are
matched by (pxname, svname). Counters and current values add up; state and
check columns come from the worker that runs the health checks (index 0),
because only its values are first-hand; averages are averaged.
"""

from __future__ import annotations

# Columns that describe state rather than count something: taken from the
# checking worker's row, never added.
STATE_COLUMNS = frozenset("""
pxname svname status weight act bck chkfail chkdown lastchg downtime pid iid sid
throttle tracked type check_status check_code check_duration hanafail last_chk
last_agt agent_status agent_code agent_duration check_desc agent_desc check_rise
check_fall check_health agent_rise agent_fall agent_health addr cookie mode algo
uweight agg_server_status agg_server_check_status agg_check_status lastsess
rate_lim src_ilim -
""".split())

# Averages over recent sessions (HAProxy: the last 1024): the mean of the
# workers' averages.
AVERAGE_COLUMNS = frozenset({"qtime", "ctime", "rtime", "ttime"})

# Highest values seen: each worker's maximum is a lower bound of the true one,
# their sum an upper bound; the sum is shown so that a limit is never hidden.
# (Documented approximation.)


def merge_rows(local: list[dict], peers: list[list[dict]], leader: list[dict] | None) -> list[dict]:
    """local rows (in display order) with peers' rows added in.

    leader: the checking worker's rows when it is a peer (None when local is
    the checking worker's own)."""
    if not peers:
        return local
    by_key = [{(r.get("pxname"), r.get("svname")): r for r in rows} for rows in peers]
    lead = {(r.get("pxname"), r.get("svname")): r for r in leader} if leader else None
    merged = []
    for row in local:
        key = (row.get("pxname"), row.get("svname"))
        others = [rows[key] for rows in by_key if key in rows]
        if not others:
            merged.append(row)
            continue
        out = dict(row)
        source = lead.get(key) if lead is not None else None
        for name, value in row.items():
            if name in STATE_COLUMNS:
                if source is not None and name in source:
                    out[name] = source[name]
                continue
            if not _number(value):
                continue
            values = [value] + [o.get(name) for o in others if _number(o.get(name))]
            total = sum(values)
            out[name] = total / len(values) if name in AVERAGE_COLUMNS else total
        merged.append(out)
    return merged


def merge_info(local: dict, peers: list[dict]) -> dict:
    """`show info` over all workers: counters and current values add up; names,
    versions, dates and limits stay the local worker's."""
    if not peers:
        return local
    out = dict(local)
    for name in INFO_SUMS:
        if _number(local.get(name)):
            out[name] = local[name] + sum(p.get(name, 0) for p in peers if _number(p.get(name)))
    out["Nbproc"] = 1 + len(peers)
    return out


INFO_SUMS = ("CurrConns", "CumConns", "CumReq", "CurrSslConns", "CumSslConns",
             "Maxsock", "Maxconn", "Hard_maxconn", "ConnRate", "SessRate", "SslRate",
             "Run_queue", "Tasks", "Stopping", "Jobs", "Unstoppable_jobs", "Listeners",
             "ActivePeers", "ConnectedPeers", "DroppedLogs", "BusyPolling", "FailedResolutions",
             "TotalBytesOut", "TotalSplicdedBytesOut", "BytesOutRate", "PoolAlloc_MB",
             "PoolUsed_MB", "PoolFailed")


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
