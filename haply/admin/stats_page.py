"""The statistics page: HTML for people, `;csv` and `;json` for scripts.

Everything shown comes from one `snapshot.take`, the same rows as `show stat`.
The page is built as one string join (500 servers render in a few ms); nothing
is computed per request unless the page is asked for.

URI suffixes as in HAProxy's manual ("stats uri"): `;csv`, `;json`, `;norefresh`,
`;up` (only servers that are up), `;st=STATUS` (result of the last admin action).

When the configuration has VRRP instances, the HTML page shows them above the
proxies (state, effective priority, master, last transition and its reason), as
the VRRP process last pushed them (haply.admin.vrrp_status: never waited for).
`;csv` and `;json` stay exactly HAProxy's: CSV parsers index columns by
position and HAProxy's JSON is a bare array of rows, so neither has a place for
rows of another kind; VRRP is in the Prometheus output (haply_vrrp_*) and in
`haply ctl show vrrp` instead.
With `stats admin if COND` true for the request, each server row gets a checkbox
and the table an action selector; the form POSTs `b=BACKEND&s=SERVER...&action=X`
and the answer is a 303 back to the page with `;st=DONE` (or the failure).
"""

from __future__ import annotations

import base64
import html
import time
from urllib.parse import parse_qs

from haply.admin import columns, rates, snapshot, vrrp_status
from haply.admin.runtime_api import set_admin
from haply.http import responses
from haply.runtime.registry import DRAIN, MAINT, READY

DEFAULT_REALM = "HAProxy Statistics"  # HAProxy's realm when `stats realm` is absent
ADMIN_ACTIONS = {"ready": READY, "drain": DRAIN, "maint": MAINT}
# The runtime API command each page action amounts to (passed on to the other
# worker processes through Engine.on_operator_change).
PAGE_ACTION_COMMANDS = {
    "ready": "set server {} state ready", "drain": "set server {} state drain",
    "maint": "set server {} state maint", "dhlth": "disable health {}",
    "ehlth": "enable health {}", "hrunn": "set server {} health up",
    "hdown": "set server {} health down",
}
# What `;st=` means, shown above the tables after an admin action.
ACTION_RESULTS = {
    "DONE": "Action processed successfully.",
    "NONE": "Nothing has changed.",
    "PART": "Action not processed for some servers.",
    "ERRP": "Action not processed: wrong parameters.",
    "DENY": "Action denied.",
}
# Row colours by status word (HAProxy's page uses the same colour families).
STATUS_CLASSES = (
    ("MAINT", "maint"), ("DRAIN", "drain"), ("no check", "nocheck"), ("OPEN", "up"),
    ("UP ", "goingdown"), ("UP", "up"), ("DOWN ", "goingup"), ("DOWN", "down"),
)


def status_class(status: str) -> str:
    if status.startswith(("UP ", "DOWN ")):
        # "UP 1/3" is going down, "DOWN 1/2" going up; "DOWN (agent)" is down
        if not status.split(" ", 1)[1][:1].isdigit():
            return "down" if status.startswith("DOWN") else "up"
    for prefix, klass in STATUS_CLASSES:
        if status.startswith(prefix):
            return klass
    return "other"


def response(status: int, reason: str, body: bytes, content_type: str,
             extra: list[tuple[str, str]] = ()) -> bytes:
    head = [f"HTTP/1.1 {status} {reason}", f"Content-Type: {content_type}",
            f"Content-Length: {len(body)}", "Cache-Control: no-cache", "Connection: close"]
    head += [f"{name}: {value}" for name, value in extra]
    return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body


def _refusal(request, realm: str | bool) -> bytes:
    """HAProxy's 401 page asking for credentials in realm, or its 403 page
    (realm False), saying 'connection: close' last when the client does not
    keep the connection (it closes after them either way)."""
    page = (responses.with_challenge(responses.error_response(401, close=False), realm)
            if realm else responses.error_response(403, close=False))
    return page if request.keep_alive else responses.with_close(page)


class StatsPage:
    """The stats service of one proxy, compiled once at start."""

    def __init__(self, proxy, engine, compile_condition):
        stats = proxy.stats
        self.proxy = proxy
        self.engine = engine
        self.uri = stats.uri.encode("latin-1")
        self.realm = stats.realm or DEFAULT_REALM
        self.credentials = {
            base64.b64encode(f"{user}:{password}".encode()).decode(): user
            for user, password in stats.auth}
        self.refresh = stats.refresh
        self.hide_version = stats.hide_version
        self.show_node = stats.show_node
        self.admin_test = compile_condition(stats.admin) if stats.admin is not None else None
        # `stats http-request` rules: (test or None, action, realm), first match wins
        self.rules = [(compile_condition(rule.condition), rule.action, rule.realm or DEFAULT_REALM)
                      for rule in stats.rules]
        self.admin_configured = stats.admin is not None
        # `stats scope`: only these proxies are shown ("." is this proxy itself)
        self.scopes = frozenset(proxy.name if name == "." else name for name in stats.scopes)
        self.description = (proxy.description or "") if stats.show_desc == "" else stats.show_desc
        self.vrrp = vrrp_status.for_engine(engine)
        rates.for_engine(engine)

    def matches(self, request) -> bool:
        return request.url.startswith(self.uri)

    # ------------------------------------------------------------- serving

    def answer(self, request, body: bytes = b"") -> bytes:
        for test, action, realm in self.rules:
            if test is None or test(request):
                if action != "allow":
                    return _refusal(request, action == "auth" and realm)
                break
        if self.credentials and not self._authorised(request):
            return _refusal(request, self.realm)
        suffix = request.url[len(self.uri):].decode("latin-1")
        options = [part for part in suffix.split(";") if part]
        admin = self.admin_configured and (self.admin_test is None or self.admin_test(request))
        if request.method_bytes == b"POST":
            return self._post(body, admin)
        now = self.engine.loop.time()
        rows = snapshot.take(self.engine, now)
        if self.scopes:
            rows.rows = [r for r in rows.rows if r["pxname"] in self.scopes]
        if "up" in options:
            rows.rows = [r for r in rows.rows if r["type"] != columns.TYPE_SERVER
                         or snapshot.is_running(str(r["status"]))]
        if "csv" in options:
            return response(200, "OK", columns.to_csv(rows.rows).encode(), "text/plain")
        if "json" in options:
            return response(200, "OK", columns.to_json(rows.rows).encode(),
                            "application/json")
        state = next((o[3:] for o in options if o.startswith("st=")), None)
        page = self.html(rows, admin, state, refresh=None if "norefresh" in options else self.refresh)
        extra = [("Refresh", str(int(self.refresh)))] if self.refresh and "norefresh" not in options else []
        return response(200, "OK", page.encode("utf-8"), "text/html; charset=utf-8", extra)

    def _authorised(self, request) -> bool:
        for value in request.header("authorization"):
            scheme, _, token = value.partition(" ")
            if scheme.lower() == "basic" and token.strip() in self.credentials:
                return True
        return False

    def _post(self, body: bytes, admin: bool) -> bytes:
        if not admin:
            status = "DENY"
        else:
            status = self.apply(parse_qs(body.decode("latin-1")))
        location = self.uri.decode("latin-1") + f";st={status}"
        return response(303, "See Other", b"", "text/plain", [("Location", location)])

    def apply(self, form: dict[str, list[str]]) -> str:
        """Run an admin action from the page through the registry; ;st= word."""
        backend = (form.get("b") or [""])[0]
        action = (form.get("action") or [""])[0]
        names = form.get("s") or []
        registry = self.engine.registry
        if backend not in self.engine.backends or not names:
            return "ERRP"
        now = self.engine.loop.time()
        done = failed = 0
        for name in names:
            state = registry.get(backend, name)
            if state is None:
                failed += 1
                continue
            if action in ADMIN_ACTIONS:
                set_admin(self.engine, state, ADMIN_ACTIONS[action], now)
            elif action in ("dhlth", "ehlth") and self.engine.health is not None \
                    and self.engine.health.health_of(backend, name) is not None:
                self.engine.health.set_health_enabled(backend, name, action == "ehlth")
            elif action in ("hrunn", "hdown") and self.engine.health is not None \
                    and self.engine.health.health_of(backend, name) is not None:
                self.engine.health.set_health(backend, name, "up" if action == "hrunn" else "down")
            else:
                failed += 1
                continue
            done += 1
            if self.engine.on_operator_change is not None:
                command = PAGE_ACTION_COMMANDS[action].format(f"{backend}/{name}")
                self.engine.on_operator_change(command)
        if not done:
            return "ERRP" if failed else "NONE"
        return "PART" if failed else "DONE"

    # ---------------------------------------------------------------- HTML

    def html(self, snap: snapshot.Snapshot, admin: bool, state: str | None,
             refresh: float | None) -> str:
        from haply import __version__
        esc = html.escape
        out = ["<!DOCTYPE html><html><head><meta charset=\"utf-8\">",
               "<title>Statistics Report for haply</title>"]
        if refresh:
            out.append(f'<meta http-equiv="refresh" content="{int(refresh)}">')
        out.append(STYLE)
        out.append("</head><body>")
        version = "" if self.hide_version else f" version {esc(__version__)}"
        node = ""
        if self.show_node is not None:
            node = f" on {esc(self.show_node or snap.info.get('node', ''))}"
        out.append(f"<h1>haply{version}{node}</h1>")
        if self.description:
            out.append(f'<p class="desc">{esc(self.description)}</p>')
        info = snap.info
        out.append(f"<p class=\"info\">pid = {info['Pid']} &middot; uptime = {esc(str(info['Uptime']))}"
                   f" &middot; current conns = {info['CurrConns']} &middot; "
                   f"{time.strftime('%Y-%m-%d %H:%M:%S')}</p>")
        if state in ACTION_RESULTS:
            klass = "ok" if state == "DONE" else "warn"
            out.append(f'<p class="result {klass}" id="result">{ACTION_RESULTS[state]}</p>')
        out.append(LEGEND)
        uri = esc(self.uri.decode("latin-1"))
        now = self.engine.loop.time()
        if self.vrrp is not None:
            instances, problem = self.vrrp.view(now)
            out.append(vrrp_table(instances, problem, time.time()))
        for name, rows in snap.proxies():
            out.append(self._table(name, rows, admin, uri, now))
        out.append("</body></html>")
        return "".join(out)

    def _table(self, name: str, rows: list[dict], admin: bool, uri: str, now: float) -> str:
        esc = html.escape
        has_servers = any(r["type"] == columns.TYPE_SERVER for r in rows)
        form = admin and has_servers
        out = [f'<section class="proxy" id="px-{esc(name)}"><h2>{esc(name)}</h2>']
        if form:
            out.append(f'<form method="post" action="{uri}">'
                       f'<input type="hidden" name="b" value="{esc(name)}">')
        out.append('<table><thead><tr>')
        if form:
            out.append("<th></th>")
        out.append(HEADER_CELLS)
        out.append("</tr></thead><tbody>")
        for row in rows:
            out.append(self._row(row, form, now))
        out.append("</tbody></table>")
        if form:
            out.append(f'<div class="actions"><label>Action: <select name="action" id="action-{esc(name)}">'
                       '<option value="">Choose an action</option>'
                       '<option value="ready">Set state to READY</option>'
                       '<option value="drain">Set state to DRAIN</option>'
                       '<option value="maint">Set state to MAINT</option>'
                       '<option value="dhlth">Health: disable checks</option>'
                       '<option value="ehlth">Health: enable checks</option>'
                       '<option value="hrunn">Health: force UP</option>'
                       '<option value="hdown">Health: force DOWN</option>'
                       f'</select></label> <button type="submit" id="apply-{esc(name)}">Apply</button></div></form>')
        out.append("</section>")
        return "".join(out)

    def _row(self, r: dict, form: bool, now: float) -> str:
        esc = html.escape
        status = str(r.get("status") or "")
        kind = r["type"]
        klass = {0: "frontend", 1: "backend", columns.TYPE_LISTENER: "socket"}.get(kind, "server")
        cells = []
        if form:
            if kind == columns.TYPE_SERVER:
                cells.append(f'<td><input type="checkbox" name="s" value="{esc(r["svname"])}"'
                             f' id="cb-{esc(r["pxname"])}-{esc(r["svname"])}"></td>')
            else:
                cells.append("<td></td>")
        g = r.get
        check = ""
        if g("check_status"):
            check = esc(f"{g('check_status')}")
            if g("check_code") not in (None, ""):
                check += f"/{g('check_code')}"
            if g("check_duration") not in (None, ""):
                check += f" in {g('check_duration')}ms"
            if g("last_chk"):
                check += f" <span class=\"reason\">({esc(str(g('last_chk')))})</span>"
        lastchg = g("lastchg")
        cells += [
            f'<td class="name">{esc(str(r["svname"]))}</td>',
            f'<td class="status {status_class(status)}">{esc(status)}</td>',
            _td(g("weight")), _td(g("qcur")), _td(g("qmax")), _td(g("qlimit")),
            _td(g("rate")), _td(g("rate_max")),
            _td(g("scur")), _td(g("smax")), _td(g("slim")), _td(g("stot")),
            _td(_bytes(g("bin"))), _td(_bytes(g("bout"))),
            _td(g("dreq")), _td(g("ereq")), _td(g("econ")), _td(g("eresp")),
            _td(g("wretr")), _td(g("wredis")),
            f"<td class=\"check\">{check}</td>",
            _td(_duration(lastchg) if lastchg not in (None, "") else ""),
            _td(_duration(g("downtime")) if g("downtime") else ""),
        ]
        return (f'<tr class="{klass} {status_class(status)}" '
                f'data-server="{esc(str(r["svname"]))}">' + "".join(cells) + "</tr>")


VRRP_STATE_CLASSES = {"MASTER": "up", "BACKUP": "nocheck", "FAULT": "down", "STOP": "maint",
                      "INIT": "maint"}


def vrrp_table(instances: list[dict], problem: str | None, wall_now: float) -> str:
    """The VRRP section: one row per instance of the last snapshot, and the
    problem (process gone or silent) above it when there is one; rows from an
    old snapshot are marked stale."""
    esc = html.escape
    out = ['<section class="vrrp" id="vrrp"><h2>VRRP</h2>']
    if problem is not None:
        out.append(f'<p class="vrrp-problem down" id="vrrp-problem">{esc(problem)}'
                   f'{"; last known state below" if instances else ""}</p>')
    if instances:
        out.append("<table><thead><tr>" + "".join(f"<th>{h}</th>" for h in (
            "Instance", "State", "Priority", "Master", "Last transition", "Reason",
            "Interface", "VRID", "Addresses")) + "</tr></thead><tbody>")
        for inst in instances:
            state = str(inst.get("state", ""))
            klass = "stale" if problem is not None else VRRP_STATE_CLASSES.get(state, "other")
            priority, base = inst.get("priority"), inst.get("base_priority")
            prio = f"{priority}" if priority == base else f"{priority} (configured {base})"
            if state == "MASTER":
                master = f"this node ({inst.get('source') or inst.get('master') or ''})"
            else:
                master = inst.get("master") or "none seen"
            since = inst.get("last_transition")
            ago = f"{_duration(max(0, wall_now - since))} ago" if since is not None else ""
            name = str(inst.get("name", ""))
            out.append(
                f'<tr class="vrrp-instance" data-instance="{esc(name)}">'
                f'<td class="name">{esc(name)}</td>'
                f'<td class="status {klass}" data-state="{esc(state)}">{esc(state)}</td>'
                f'<td data-priority="{esc(str(priority))}">{esc(prio)}</td>'
                f'<td class="name" data-master="{esc(str(inst.get("master") or ""))}">{esc(master)}</td>'
                f"<td>{esc(ago)}</td>"
                f'<td class="name">{esc(str(inst.get("reason") or ""))}</td>'
                f'<td class="name">{esc(str(inst.get("interface", "")))}</td>'
                f'<td>{esc(str(inst.get("vrid", "")))}</td>'
                f'<td class="name">{esc(" ".join(map(str, inst.get("addresses") or ())))}</td></tr>')
        out.append("</tbody></table>")
    out.append("</section>")
    return "".join(out)


def _td(value) -> str:
    return "<td></td>" if value is None else f"<td>{value}</td>"


def _bytes(value) -> str | None:
    if value is None:
        return None
    for unit in ("", "K", "M", "G", "T"):
        if value < 1024 or unit == "T":
            return f"{value}{unit}" if unit == "" else f"{value:.1f}{unit}"
        value /= 1024
    return str(value)


def _duration(seconds) -> str:
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60}s"
    if seconds < 86400:
        return f"{seconds // 3600}h{seconds % 3600 // 60}m"
    return f"{seconds // 86400}d{seconds % 86400 // 3600}h"


HEADER_CELLS = "".join(f"<th>{h}</th>" for h in (
    "Name", "Status", "Weight", "Queue cur", "Queue max", "Queue limit",
    "Session rate", "Session rate max",
    "Sessions cur", "Sessions max", "Sessions limit", "Sessions total",
    "Bytes in", "Bytes out", "Denied req", "Errors req", "Errors conn",
    "Errors resp", "Retries", "Redispatches", "Last check", "Last change", "Downtime"))

LEGEND = ('<p class="legend">'
          '<span class="up">UP</span> <span class="goingdown">UP, going down</span> '
          '<span class="goingup">DOWN, going up</span> <span class="down">DOWN</span> '
          '<span class="drain">DRAIN</span> <span class="maint">MAINT</span> '
          '<span class="nocheck">not checked</span></p>')

STYLE = """<style>
body{font-family:sans-serif;font-size:13px;margin:1em;background:#fff;color:#222}
h1{font-size:18px;margin:0 0 .3em}h2{font-size:15px;margin:1em 0 .3em;background:#20507a;color:#fff;padding:.2em .5em}
table{border-collapse:collapse;width:100%}th,td{border:1px solid #bbb;padding:2px 5px;text-align:right}
th{background:#dde;font-weight:normal}td.name,td.status,td.check{text-align:left}
tr.frontend td,tr.backend td{font-weight:bold;background:#eef}
.up{background:#b8f0b8}.goingdown{background:#fff080}.goingup{background:#ffc880}
.down{background:#ff9090}.drain{background:#a0c8ff}.maint{background:#c8c8c8}.nocheck{background:#e8f8e8}
td.status{font-weight:bold}.reason{color:#555;font-weight:normal}
.legend span{padding:1px 6px;margin-right:4px}.result{padding:.4em;font-weight:bold}
.ok{background:#b8f0b8}.warn{background:#ffc880}.actions{margin:.3em 0}
.stale{background:#e0e0e0;color:#666}.vrrp-problem{padding:.4em;font-weight:bold}
</style>"""
