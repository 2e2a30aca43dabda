"""Stats rows of several workers merged into the totals an operator expects.

Every worker counts its own traffic; the one that answers `show stat`, the stats
page or /metrics adds the others' latest rows (pushed to the master every
STATS_PERIOD, so they are at most that old) to its own live ones. Rows are
matched by (pxname, svname, sid). Counters and current values add up; state and
check columns come from the worker that runs the health checks (index 0),
because only its values are first-hand; averages are weighted by sessions.
"""

from __future__ import annotations

from haply.admin.columns import COLUMN_KIND

# Limits are split between the workers (haply.master.shares): their shares
# add up to the configured limit.
SPLIT_LIMITS = frozenset({"slim", "qlimit", "rate_lim"})


# What identifies a row in every worker (listeners of one bind line share
# their name: their number tells them apart). Rows passed between workers keep
# these columns whatever else they leave out.
KEY_COLUMNS = ("pxname", "svname", "sid")


def _key(row: dict) -> tuple:
    return tuple(row.get(name) for name in KEY_COLUMNS)


# What a worker other than the checking one reports per row: the row's key and
# the columns that add up across workers.
COUNTED = frozenset(set(KEY_COLUMNS) | SPLIT_LIMITS |
                    {name for name, kind in COLUMN_KIND.items() if kind != "state"})


def counted_rows(rows: list[dict]) -> list[dict]:
    """rows as a worker that does not run the checks reports them: its state
    columns are second-hand, so only what adds up goes to the others."""
    return [{name: value for name, value in row.items() if name in COUNTED} for row in rows]


def merge_rows(local: list[dict], peers: list[list[dict]], leader: list[dict] | None) -> list[dict]:
    """local rows (in display order) with peers' rows added in, column by
    column as haply.admin.columns.COLUMN_KIND says.

    leader: the checking worker's rows when it is a peer (None when local is
    the checking worker's own). "max" columns are added: each worker's maximum
    is a lower bound of the true one and their sum an upper bound; the sum is
    shown so that a limit being reached is never hidden."""
    if not peers:
        return local
    by_key = [{_key(r): r for r in rows} for rows in peers]
    lead = {_key(r): r for r in leader} if leader else None
    merged = []
    for row in local:
        key = _key(row)
        others = [rows[key] for rows in by_key if key in rows]
        if not others:
            merged.append(row)
            continue
        out = dict(row)
        source = lead.get(key) if lead is not None else None
        everyone = [row] + others
        for name, value in row.items():
            kind = "sum" if name in SPLIT_LIMITS else COLUMN_KIND.get(name, "state")
            if kind == "state":
                if source is not None and name in source:
                    out[name] = source[name]
                continue
            values = [r.get(name) for r in everyone if _number(r.get(name))]
            if not values:
                continue
            if kind in ("sum", "max"):
                out[name] = sum(values)
            elif kind == "min":
                known = [v for v in values if v >= 0]
                out[name] = min(known) if known else value
            elif kind == "avg":
                out[name] = _weighted_mean(everyone, name)
        merged.append(out)
    return merged


def _weighted_mean(rows: list[dict], name: str) -> int:
    pairs = [(r[name], r.get("req_tot") or r.get("stot") or 0) for r in rows if _number(r.get(name))]
    weight = sum(w for _, w in pairs if _number(w))
    if not weight:
        return int(sum(v for v, _ in pairs) / len(pairs))
    return int(sum(v * w for v, w in pairs if _number(w)) / weight)


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
    # each worker is busy or waiting on its own: their mean is the pool's
    idle = [i.get("Idle_pct") for i in [local] + peers if _number(i.get("Idle_pct"))]
    if idle:
        out["Idle_pct"] = int(round(sum(idle) / len(idle)))
    return out


# Highest rates add up as the "max" stat columns do (merge_rows): the sum is
# an upper bound that never hides a limit being reached.
INFO_SUMS = ("CurrConns", "CumConns", "CumReq", "CurrSslConns", "CumSslConns",
             "Maxsock", "Maxconn", "Hard_maxconn", "PipesUsed", "PipesFree", "ConnRate",
             "MaxConnRate", "SessRate", "MaxSessRate", "SslRate", "MaxSslRate",
             "CompressBpsIn", "CompressBpsOut", "Run_queue", "Tasks", "Stopping", "Jobs",
             "Unstoppable Jobs", "Listeners", "ActivePeers", "ConnectedPeers", "DroppedLogs",
             "BusyPolling", "FailedResolutions", "TotalBytesOut", "TotalSplicdedBytesOut",
             "BytesOutRate", "CumRecvLogs", "PoolAlloc_MB", "PoolUsed_MB", "PoolFailed",
             "PoolAlloc_bytes", "PoolUsed_bytes")


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
