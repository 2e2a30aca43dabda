"""A proxy worker of the master process: runs in the child right after fork.

The worker serves with the sockets the master handed it, its share of the
connection limits (haply.master.shares), and the server states the master
carried over. It talks to the master over its channel:

  to the master        ready; health (an UP/DOWN change decided here);
                       dns (a server's address DNS resolution changed here);
                       command (an operator changed server state here);
                       stats (every STATS_PERIOD: rows, info, servers state)
  from the master      health / dns (decided in another worker: apply silently);
                       command (made on another worker: apply it);
                       peers (the others' latest stats);
                       query (answer with a reply carrying the same id)

Only worker 0 runs active health checks and DNS resolutions; the others follow
its decisions, so a server is checked and its name resolved once per interval
whatever the number of workers. Worker 0 also speaks for all (Engine.announces):
it logs and mails the changes an operator makes, wherever they were made, and
the other workers apply them silently, so each is logged and mailed once as by
HAProxy's single process.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from dataclasses import dataclass

from haply.admin import snapshot
from haply.admin.runtime_api import RuntimeApi
from haply.master.aggregate import counted_rows, merge_info, merge_rows
from haply.master.channel import Channel, open_channel
from haply.master.shares import for_worker, share

# How often a worker reports its counters and server states to the master:
# the staleness bound of the other workers' figures on any stats view.
STATS_PERIOD = 1.0
CHECKING_WORKER = 0


@dataclass
class WorkerSpec:
    config: object
    index: int
    count: int
    generation: int
    sockets: object  # haply.master.sockets.SocketSet (the master's)
    channel_fd: int
    state_text: str = ""


def run(spec: WorkerSpec) -> None:
    """Never returns: the worker's whole life, then os._exit."""
    status = 1
    try:
        status = _run(spec)
    except BaseException as exc:  # noqa: BLE001 - never return into the master's code
        print(f"haply: worker {spec.index}: {exc!r}", file=sys.stderr)
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)


def _forget_master_state() -> None:
    """The fork copied the master's running event loop, signal handlers and
    descriptors. None of it is ours: the old loop is never touched again (so
    its shared epoll set is never changed from here)."""
    signal.set_wakeup_fd(-1)
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1, signal.SIGUSR2,
                   signal.SIGHUP, signal.SIGCHLD):
        signal.signal(signum, signal.SIG_DFL)
    asyncio.events._set_running_loop(None)


def _close_other_fds(keep: set[int]) -> None:
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd > 2 and fd not in keep:
            try:
                os.close(fd)
            except OSError:
                pass


def _run(spec: WorkerSpec) -> int:
    import uvloop

    from haply.lifecycle import StopSignals, bind_to_cpus, serve_until_stopped
    from haply.privileges import PrivilegeError, drop_privileges
    from haply.proxy.engine import Engine, StartError
    from haply.runtime import server_state

    _forget_master_state()
    sockets = spec.sockets.take_over(spec.index)
    keep = {spec.channel_fd} | sockets.fds()
    _close_other_fds(keep)

    loop = uvloop.new_event_loop()
    asyncio.set_event_loop(loop)
    config = for_worker(spec.config, spec.index, spec.count)
    try:
        bind_to_cpus(config.global_, spec.index + 1)  # first: everything after runs there
    except OSError as exc:
        print(f"[ALERT] worker {spec.index}: {exc}", file=sys.stderr)
        return 1
    engine = Engine(config, loop, sockets=sockets)
    engine.health_probing = spec.index == CHECKING_WORKER
    engine.limit_share = lambda limit: share(limit, spec.index, spec.count)
    engine.whole_global_maxconn = spec.config.global_.maxconn
    try:
        if spec.state_text:
            engine.carried_states = server_state.parse(spec.state_text)
        engine.prepare()
        drop_privileges(config.global_)
    except (StartError, PrivilegeError, OSError, server_state.StateFileError) as exc:
        print(f"[ALERT] worker {spec.index}: {exc}", file=sys.stderr)
        return 1
    signals = StopSignals(loop)
    link = MasterLink(engine, spec, signals)

    async def main() -> None:
        await link.connect()
        await serve_until_stopped(engine, signals, link.started)
        link.close()

    try:
        loop.run_until_complete(main())
    finally:
        loop.close()
    return 0


class MasterLink:
    """The worker's side of the channel."""

    def __init__(self, engine, spec: WorkerSpec, signals) -> None:
        self.engine = engine
        self.spec = spec
        self.signals = signals
        self.loop = engine.loop
        self.channel: Channel | None = None
        self.peers = PeerStats(spec.index)
        self._timer = None
        self._applying = False

    async def connect(self) -> None:
        sock = socket.socket(fileno=self.spec.channel_fd)
        self.channel = await open_channel(self.loop, sock, self.on_message, self.on_master_lost)
        self.engine.on_operator_change = self.operator_changed
        self.engine.on_dns_change = self.dns_changed
        if self.spec.count > 1:
            self.engine.peers = self.peers

    def started(self) -> None:
        health = self.engine.health
        if health is not None:
            health.subscribe(self.health_changed)
        self.channel.send({"t": "ready", "pid": os.getpid()})
        self._report()

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if self.channel is not None:
            self.channel.close()

    # ------------------------------------------------------------ outgoing

    def health_changed(self, event) -> None:
        self.channel.send({"t": "health", "backend": event.backend, "server": event.server,
                           "up": event.up, "status": event.status, "reason": event.reason,
                           "duration": event.duration})

    def dns_changed(self, backend: str, server: str, address: str | None) -> None:
        self.channel.send({"t": "dns", "backend": backend, "server": server, "address": address})

    def operator_changed(self, line: str) -> None:
        if not self._applying:
            self.channel.send({"t": "command", "line": line})

    def _report(self) -> None:
        now = self.loop.time()
        snap = snapshot.take(self.engine, now, merged=False)
        rows = snap.rows
        if self.spec.index != CHECKING_WORKER:
            # The others take state columns from the checking worker only.
            rows = counted_rows(rows)
        state = RuntimeApi(self.engine).execute("show servers state")
        self.channel.send({"t": "stats", "rows": rows, "info": snap.info, "state": state})
        self._timer = self.loop.call_later(STATS_PERIOD, self._report)

    # ------------------------------------------------------------ incoming

    def on_message(self, message: dict) -> None:
        kind = message.get("t")
        if kind == "health":
            health = self.engine.health
            if health is not None:
                health.follow(message["backend"], message["server"], message["up"],
                              self.loop.time(), message.get("status", ""),
                              message.get("reason", ""), message.get("duration"))
        elif kind == "dns":
            from haply.resolvers.service import follow
            follow(self.engine, message["backend"], message["server"], message["address"])
        elif kind == "command":
            self._apply_command(message["line"])
        elif kind == "peers":
            self.peers.update(message["stats"])
        elif kind == "query":
            self.channel.send({"t": "reply", "id": message["id"], **self._answer(message)})

    def _apply_command(self, line: str) -> str:
        self._applying = True
        try:
            return RuntimeApi(self.engine).execute(line)
        finally:
            self._applying = False

    def _answer(self, message: dict) -> dict:
        what = message.get("what")
        if what == "server":
            state = self.engine.registry.get(message["backend"], message["server"])
            if state is None:
                return {"error": "no such server"}
            return {"operational": state.operational, "admin": state.admin,
                    "current_sessions": state.current_sessions}
        if what == "command":
            # `@N command` on the master socket: this worker's own view, as
            # HAProxy's master CLI shows one process's own counters.
            # A change made so is passed on like any operator's, unless the
            # master is already sending it to every worker (relay False).
            peers, self.engine.peers = self.engine.peers, None
            try:
                if message.get("relay", True):
                    return {"answer": RuntimeApi(self.engine).execute(message["line"])}
                return {"answer": self._apply_command(message["line"])}
            finally:
                self.engine.peers = peers
        if what == "servers_state":
            return {"answer": RuntimeApi(self.engine).execute("show servers state")}
        return {"error": f"unknown query {what!r}"}

    def on_master_lost(self) -> None:
        # The master is gone (killed): no one can restart or reload us, and its
        # VRRP process is handing the address over. Finish what is in flight.
        if self.engine.stopping:
            return
        print(f"haply: worker {self.spec.index}: master process lost; stopping",
              file=sys.stderr)
        self.signals.stop(signal.SIGTERM)


class PeerStats:
    """The other workers' latest rows, merged into this worker's snapshots."""

    def __init__(self, index: int) -> None:
        self.index = index
        self.rows: dict[int, list[dict]] = {}
        self.info: dict[int, dict] = {}

    def update(self, stats: dict) -> None:
        self.rows = {int(i): s["rows"] for i, s in stats.items() if int(i) != self.index}
        self.info = {int(i): s["info"] for i, s in stats.items() if int(i) != self.index}

    def merge(self, snap):
        peers = [self.rows[i] for i in sorted(self.rows)]
        leader = self.rows.get(CHECKING_WORKER) if self.index != CHECKING_WORKER else None
        return snapshot.Snapshot(merge_rows(snap.rows, peers, leader),
                        merge_info(snap.info, [self.info[i] for i in sorted(self.info)]))
