"""`haply ctl COMMAND`: the runtime API for people.

Talks to a `stats socket` (unix path or HOST:PORT) and prints HAProxy's answers
as readable tables: `haply ctl status` shows every proxy with its servers,
`haply ctl drain be/web1` drains a server. Any runtime API command works as
written (`haply ctl show servers state`); `--raw` prints the answer untouched
for scripts.

The socket is taken from `-S`, else $HAPLY_SOCKET, else the first `stats socket`
of the config given with `-f`, else HAProxy's usual /run/haproxy/admin.sock.
"""

from __future__ import annotations

import argparse
import csv
import io
import os
import re
import socket
import sys

DEFAULT_SOCKET = "/run/haproxy/admin.sock"
TIMEOUT = 10.0

USAGE = """\
usage: haply ctl [-S SOCKET | -f CONFIG] [--raw] COMMAND...

friendly commands:
  status                       every proxy and server: state, weight, sessions, checks
  servers [BACKEND]            servers with state, address, weight, check
  info                         process information
  ready|drain|maint B/S        change a server's administrative state
  weight B/S N                 set a server's weight
  add B/S ADDR:PORT [OPTS]     add a server (in maintenance; `ready` puts it in service)
  del B/S                      remove a server (must be in maintenance)
any runtime API command, e.g.:
  show stat | show servers state | show errors | help
  show vrrp                    VRRP instances: state, priority, master, last transition
supervised programs:
  programs                     every instance: state, pid, port, uptime, restarts, last exit
  start|stop|restart program NAME[:N]   NAME may also be a service group
  rolling-restart program NAME drain, restart and re-enable each instance in turn
master process (haply -W, nbthread > 1; its socket is the stats socket + .master,
or --master PATH):
  reload                       load the configuration again, hitless; errors keep
                               the old one running and are printed
  show proc                    master, workers, old workers finishing, vrrp
  @N COMMAND                   a runtime API command in worker N only
"""


def socket_from_config(path: str) -> str | None:
    from haply.config import load
    config = load([path]).config
    sockets = config.global_.stats_sockets
    return sockets[0].path if sockets else None


def send(address: str, command: str, timeout: float = TIMEOUT) -> str:
    """One command, one answer (the connection closes after it)."""
    target = address
    for prefix in ("ipv4@", "ipv6@", "tcp@"):
        target = target.removeprefix(prefix)
    if target.startswith("/") or target.startswith("unix@") or ":" not in target:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        where: object = target.removeprefix("unix@")
    else:
        host, _, port = target.rpartition(":")
        host = host.strip("[]")
        sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
        where = (host, int(port))
    sock.settimeout(timeout)
    try:
        sock.connect(where)
        sock.sendall(command.encode() + b"\n")
        chunks = []
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        sock.close()
    return b"".join(chunks).decode("utf-8", "replace")


def table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [len(h) for h in headers]
    for row in rows:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))
    line = lambda cells: "  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()  # noqa: E731
    return "\n".join([line(headers), line(["-" * w for w in widths])] + [line(r) for r in rows]) + "\n"


def stat_records(text: str) -> list[dict]:
    lines = text.strip("\n").split("\n")
    if not lines or not lines[0].startswith("# "):
        raise ValueError(text.strip() or "empty answer")
    return list(csv.DictReader(io.StringIO(lines[0][2:] + "\n" + "\n".join(lines[1:]))))


def render_status(text: str) -> str:
    rows = []
    for r in stat_records(text):
        kind = r["svname"] if r["svname"] in ("FRONTEND", "BACKEND") else "server"
        check = r["check_status"]
        if check and r.get("check_duration"):
            check += f" {r['check_duration']}ms"
        if r.get("last_chk"):
            check += f" ({r['last_chk']})"
        sessions = f"{r['scur']}/{r['smax']}" + (f"/{r['slim']}" if r["slim"] else "")
        rows.append([r["pxname"], r["svname"] if kind == "server" else kind, r["status"],
                     r["weight"], sessions, r["qcur"], r["stot"], r["bin"], r["bout"],
                     r["econ"] or "", r["eresp"] or "", check, _ago(r["lastchg"])])
    return table(["PROXY", "NAME", "STATUS", "WEIGHT", "SESS cur/max/lim", "QUEUE", "TOTAL",
                  "BYTES IN", "BYTES OUT", "ECONN", "ERESP", "CHECK", "CHANGED"], rows)


def render_servers(text: str, backend: str | None) -> str:
    rows = []
    for r in stat_records(text):
        if r["svname"] in ("FRONTEND", "BACKEND") or (backend and r["pxname"] != backend):
            continue
        rows.append([f"{r['pxname']}/{r['svname']}", r["status"], r["addr"], r["weight"],
                     "backup" if r["bck"] == "1" else "active", r["scur"],
                     r["check_status"], _ago(r["lastchg"])])
    return table(["SERVER", "STATUS", "ADDRESS", "WEIGHT", "ROLE", "SESSIONS", "CHECK", "CHANGED"], rows)


def render_info(text: str) -> str:
    rows = [line.split(": ", 1) for line in text.splitlines() if ": " in line]
    return table(["FIELD", "VALUE"], rows)


def _ago(seconds: str) -> str:
    if not seconds:
        return ""
    s = int(seconds)
    if s < 60:
        return f"{s}s ago"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s ago"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60:02d}m ago"
    return f"{s // 86400}d{s % 86400 // 3600}h ago"


def translate(words: list[str]) -> tuple[str, str | None]:
    """(runtime API command, renderer name or None) for friendly words."""
    head = words[0]
    if head == "status":
        return "show stat", "status"
    if head == "servers":
        return "show stat", "servers"
    if head == "info":
        return "show info", "info"
    if head in ("ready", "drain", "maint") and len(words) == 2:
        return f"set server {words[1]} state {head}", None
    if head == "weight" and len(words) == 3:
        return f"set server {words[1]} weight {words[2]}", None
    if head == "add" and len(words) >= 3:
        return "add server " + " ".join(words[1:]), None
    if head == "del" and len(words) == 2:
        return f"del server {words[1]}", None
    return " ".join(words), None


def vrrp_control_path(stats_socket: str) -> str:
    """The VRRP process's control socket lies beside the stats socket
    (haply.vrrp.child.default_control_path)."""
    if stats_socket.startswith("/"):
        return stats_socket + ".vrrp"
    return "/run/haply-vrrp.sock"


def show_vrrp(stats_socket: str, raw: bool) -> int:
    """Each VRRP instance: state, effective priority, master, last transition."""
    from haply.vrrp import service, show

    path = vrrp_control_path(stats_socket)
    try:
        snapshots = service.query(path)
    except OSError as exc:
        print(f"haply ctl: no VRRP process answers at {path}: {exc.strerror or exc}",
              file=sys.stderr)
        return 1
    if raw:
        import json
        print(json.dumps(snapshots, indent=2, sort_keys=True))
    else:
        print(show.format_table(snapshots), end="")
    return 0


MASTER_COMMANDS = (("reload",), ("show", "proc"))


def render_programs(text: str) -> str:
    """`show programs` as a table with words for headers and short uptimes."""
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines or not lines[0].startswith("#<program>"):
        raise ValueError(text.strip() or "empty answer")
    rows = []
    for line in lines[1:]:
        cells = re.split(r"\s{2,}", line.strip(), maxsplit=6)
        cells += [""] * (7 - len(cells))
        name, state, pid, port, uptime, restarts, last = cells
        rows.append([name, state, pid, port, _short_uptime(uptime), restarts, last])
    return table(["INSTANCE", "STATE", "PID", "PORT", "UPTIME", "RESTARTS", "LAST EXIT"], rows)


def _short_uptime(text: str) -> str:
    """0d01h02m05s -> 1h02m (two units are enough to read); "-" stays."""
    match = re.fullmatch(r"(\d+)d(\d+)h(\d+)m(\d+)s", text)
    if not match:
        return text
    days, hours, minutes, seconds = (int(x) for x in match.groups())
    if days:
        return f"{days}d{hours:02d}h"
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{seconds:02d}s" if minutes else f"{seconds}s"


def show_programs(address: str, master_socket: str | None) -> int:
    """`haply ctl programs`: from the master when one runs, else the proxy."""
    words = ["show", "programs"]
    target = master_socket or master_control_path(address)
    if not (master_socket or for_master(words, address)):
        target = address
    try:
        answer = send(target, "show programs")
    except OSError as exc:
        print(f"haply ctl: cannot talk to {target}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    try:
        print(render_programs(answer), end="")
    except ValueError as exc:
        print(f"haply ctl: {exc}", file=sys.stderr)
        return 1
    return 0


def master_control_path(stats_socket: str) -> str:
    """The master process's socket lies beside the stats socket
    (haply.master.control.master_socket_path)."""
    return stats_socket.removeprefix("unix@") + ".master"


def for_master(words: list[str], stats_socket: str) -> bool:
    """Commands only the master answers; program commands too when a master
    runs (otherwise the proxy's own runtime API has them)."""
    lowered = tuple(w.lower() for w in words)
    if any(lowered[:len(c)] == c for c in MASTER_COMMANDS) or lowered[:1] == ("@",) \
            or (lowered and lowered[0].startswith("@")):
        return True
    programs = "program" in lowered[:2] or lowered[:2] == ("show", "programs")
    return programs and os.path.exists(master_control_path(stats_socket))


def master_command(path: str, words: list[str]) -> int:
    """`haply ctl reload` and friends: one command on the master socket."""
    try:
        answer = send(path, " ".join(words), timeout=MASTER_TIMEOUT)
    except OSError as exc:
        print(f"haply ctl: no master process answers at {path}: {exc.strerror or exc} "
              "(is haply running with -W or nbthread > 1?)", file=sys.stderr)
        return 1
    text = answer.rstrip("\n")
    if words[0].lower() == "reload":
        ok = text.startswith("Success=1")
        report = text.split("--\n", 1)[1] if "--\n" in text else ""
        print(("reloaded" if ok else "reload failed") + (f":\n{report}" if report else ""),
              file=sys.stdout if ok else sys.stderr)
        return 0 if ok else 1
    if text:
        print(text)
    return 1 if text.startswith(("Unknown command", "No such")) else 0


# A reload or a rolling restart answers when done.
MASTER_TIMEOUT = 600.0


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="haply ctl", usage=USAGE, add_help=False)
    parser.add_argument("-S", "--socket")
    parser.add_argument("-f", "--config")
    parser.add_argument("--raw", action="store_true")
    parser.add_argument("--master", dest="master_socket")
    parser.add_argument("-h", "--help", action="store_true")
    parser.add_argument("words", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    if args.help or not args.words:
        print(USAGE, end="")
        return 0 if args.help else 2
    address = args.socket or os.environ.get("HAPLY_SOCKET")
    if address is None and args.config:
        try:
            address = socket_from_config(args.config)
        except Exception as exc:  # the config's own located error
            print(f"haply ctl: {exc}", file=sys.stderr)
            return 2
        if address is None:
            print(f"haply ctl: {args.config} has no 'stats socket' in its global section",
                  file=sys.stderr)
            return 2
    address = address or DEFAULT_SOCKET
    if [w.lower() for w in args.words] in (["show", "vrrp"], ["vrrp"]):
        return show_vrrp(address, args.raw)
    if [w.lower() for w in args.words] in (["programs"], ["show", "programs"]) and not args.raw:
        return show_programs(address, args.master_socket)
    if [w.lower() for w in args.words] == ["programs"]:
        args.words = ["show", "programs"]
    if for_master(args.words, address):
        return master_command(args.master_socket or master_control_path(address), args.words)
    command, renderer = translate(args.words)
    # program commands answer when done (a rolling restart: every instance back)
    long = "program" in command.split()[1:2]
    try:
        answer = send(address, command, MASTER_TIMEOUT if long else TIMEOUT)
    except OSError as exc:
        print(f"haply ctl: cannot talk to the stats socket {address}: {exc.strerror or exc}",
              file=sys.stderr)
        return 1
    if args.raw or renderer is None:
        text = answer.rstrip("\n")
        if text:
            print(text)
        failed = text.startswith(("Permission denied", "Unknown command", "No such",
                                  "Require", "Can't find")) or "expects" in text \
            or "rolling restart aborted" in text or text.startswith("No programs")
        return 1 if failed else 0
    try:
        if renderer == "status":
            out = render_status(answer)
        elif renderer == "servers":
            out = render_servers(answer, args.words[1] if len(args.words) > 1 else None)
        else:
            out = render_info(answer)
    except ValueError as exc:
        print(f"haply ctl: {exc}", file=sys.stderr)
        return 1
    print(out, end="")
    return 0
