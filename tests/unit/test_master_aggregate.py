from haply.admin.columns import COLUMNS, COLUMN_KIND
from haply.master.aggregate import counted_rows, merge_info, merge_rows


def row(svname, **values):
    base = {"pxname": "be", "svname": svname}
    base.update(values)
    return base


def test_counters_add_states_come_from_the_checking_worker():
    local = [row("s1", stot=3, scur=1, smax=2, status="DOWN", check_status="L4CON",
                 slim=2, ttime=10, req_tot=1, lastsess=5)]
    leader = [row("s1", stot=4, scur=0, smax=3, status="UP", check_status="L4OK",
                  slim=1, ttime=40, req_tot=3, lastsess=2)]
    merged = merge_rows(local, [leader], leader)
    (s1,) = merged
    assert (s1["stot"], s1["scur"], s1["smax"]) == (7, 1, 5)
    assert (s1["status"], s1["check_status"]) == ("UP", "L4OK")
    assert s1["slim"] == 3  # shares of a split limit add up
    assert s1["ttime"] == (10 * 1 + 40 * 3) // 4  # weighted by requests
    assert s1["lastsess"] == 2


def test_the_checking_worker_keeps_its_own_states():
    local = [row("s1", stot=1, status="UP")]
    peer = [row("s1", stot=2, status="DOWN")]
    (s1,) = merge_rows(local, [peer], None)
    assert s1["status"] == "UP" and s1["stot"] == 3


def test_rows_only_one_worker_has_are_kept_and_order_is_local():
    local = [row("s1", stot=1), row("new", stot=1), row("BACKEND", stot=2)]
    peer = [row("BACKEND", stot=5), row("s1", stot=1)]
    merged = merge_rows(local, [peer], peer)
    assert [r["svname"] for r in merged] == ["s1", "new", "BACKEND"]
    assert [r["stot"] for r in merged] == [2, 1, 7]


def test_no_peers_is_the_identity():
    local = [row("s1", stot=1)]
    assert merge_rows(local, [], None) is local


def test_every_column_has_a_kind():
    assert set(COLUMN_KIND) >= set(COLUMNS)
    assert set(COLUMN_KIND.values()) <= {"sum", "max", "min", "avg", "state"}


def test_show_info_adds_current_and_cumulated_connections():
    merged = merge_info({"CurrConns": 2, "CumConns": 10, "Name": "haply", "Pid": 7},
                        [{"CurrConns": 3, "CumConns": 5, "Name": "haply", "Pid": 8}])
    assert merged["CurrConns"] == 5 and merged["CumConns"] == 15
    assert merged["Pid"] == 7 and merged["Nbproc"] == 2


def test_a_non_checking_workers_report_merges_into_every_row_it_has():
    """Listener rows of one bind line share pxname and svname: the report of a
    worker that does not run the checks keeps their number (sid) so that its
    counters and limit shares still find their rows."""
    ours = [{"pxname": "fe", "svname": "FRONTEND", "sid": 0, "slim": 4, "stot": 1,
             "status": "OPEN"},
            {"pxname": "fe", "svname": "sock-1", "sid": 1, "stot": 1, "status": "OPEN"},
            {"pxname": "fe", "svname": "sock-1", "sid": 2, "stot": 0, "status": "OPEN"}]
    theirs = [{"pxname": "fe", "svname": "FRONTEND", "sid": 0, "slim": 3, "stot": 2,
               "status": "STOP"},
              {"pxname": "fe", "svname": "sock-1", "sid": 1, "stot": 5, "status": "STOP"},
              {"pxname": "fe", "svname": "sock-1", "sid": 2, "stot": 7, "status": "STOP"}]
    report = counted_rows(theirs)
    assert all("status" not in r for r in report)
    merged = merge_rows(ours, [report], None)
    assert [(r["slim"] if "slim" in r else None, r["stot"], r["status"]) for r in merged] == [
        (7, 3, "OPEN"), (None, 6, "OPEN"), (None, 7, "OPEN")]
