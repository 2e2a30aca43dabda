"""The VRRP process: instances, their sockets and timers on one event loop.

The process does nothing but VRRP, so a proxy at 100% CPU never delays an
advertisement. Each `InstanceRunner` wires one `state.Machine` to its socket,
addresses, GARP sender and trackers; the machine decides, the runner acts.
Time is the loop's monotonic clock. A single `call_at` handle per instance is
re-armed after every event to the machine's `next_deadline()`: no polling.

Entry points for the rest of haply:
* `run(config_part, control_path=None, proxy_health=None)` blocks until
  SIGTERM/SIGINT, then gives up mastership (priority 0), removes the VIPs and runs
  notify_stop.
* `query(control_path)` returns the state snapshot list from a running service
  (for `haply ctl show vrrp`); `Service.snapshot()` is the same in-process.
* `watch vrrp` on the control socket keeps the connection open and pushes one
  JSON line per change of an instance's state, priority, master or reason, and
  one every WATCH_HEARTBEAT (counters, and proof of life): the proxy's stats page
  keeps the last line (haply.admin.vrrp_status) and never waits for this process.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import time
from dataclasses import fields, is_dataclass, replace
from typing import Callable, Iterable

from haply.config.diagnostics import NOWHERE
from haply.config.vrrp_model import VrrpConfig, VrrpInstance
from haply.vrrp import packet, scripts, state
from haply.vrrp.addresses import AddressManager, spawn_guard, update_guard
from haply.vrrp.garp import GarpSender
from haply.vrrp.io import VrrpSocket, VrrpSocket6

log = logging.getLogger("haply.vrrp")

DROP_LOG_EVERY = 10.0  # seconds between two log lines about dropped packets
INTERFACE_POLL_MAX = 0.5  # track_interface polling never slower than this
CONTROL_READ_LIMIT = 4096
NOTIFY_TIMEOUT = 30.0  # a notify script still running after this is killed
# `watch vrrp`: a line at least this often, so a watcher can tell a live process
# from a stopped one (it calls the process unresponsive after a few missed beats).
WATCH_HEARTBEAT = 1.0
# A watcher that stops reading is dropped once this much is queued for it: the
# VRRP process never buffers without bound for a stuck reader.
WATCH_BUFFER_LIMIT = 256 * 1024


class InstanceRunner:
    def __init__(self, service: "Service", inst: VrrpInstance, addrs: AddressManager):
        self.service, self.inst, self.addrs = service, inst, addrs
        self.loop = asyncio.get_running_loop()
        self.vips = [a.address for a in inst.addresses]
        self.advertised = tuple(a.address for a in inst.advertised_addresses)
        ifindex = addrs.index(inst.interface)
        ipv6 = inst.ipv6
        src = inst.unicast_src_ip or addrs.primary_address(inst.interface, set(self.vips), ipv6)
        if src is None:
            kind = "IPv6 link-local" if ipv6 else "IPv4"
            raise OSError(f"vrrp_instance {inst.name}: {inst.interface} has no {kind} address "
                          "to advertise from")
        self.src = src
        g = inst.garp
        self.machine = state.Machine(state.Params(
            vrid=inst.virtual_router_id, priority=inst.priority, advert_int=inst.advert_int,
            version=inst.version, preempt=inst.preempt, preempt_delay=inst.preempt_delay,
            initial_state=inst.initial_state, local_ip=src, garp_repeat=g.master_repeat,
            garp_delay=g.master_delay, garp_refresh=g.master_refresh,
            garp_refresh_repeat=g.master_refresh_repeat))
        self.sock = (VrrpSocket6 if ipv6 else VrrpSocket)(inst.interface, ifindex, src,
                                                          inst.unicast_peers)
        self.garp = GarpSender(inst.interface)
        self.timer: asyncio.TimerHandle | None = None
        self.tasks: list[asyncio.Task] = []
        self.notify_queue: asyncio.Queue = asyncio.Queue()
        self.weights: dict[str, int] = {}  # tracked thing -> priority delta now in force
        self.drops: dict[str, int] = {}
        self.drops_logged_at = 0.0
        self.received = self.sent = 0
        self.summary: tuple = ()  # what watchers last heard (see _publish_if_changed)

    # --- lifecycle
    def start(self) -> None:
        for vip in self.inst.addresses:  # stale VIPs from an earlier crash
            self.addrs.remove(vip, self.inst.interface)
        self.loop.add_reader(self.sock.fileno(), self._readable)
        self.tasks.append(self.loop.create_task(self._notifier()))
        self._start_trackers()
        self.apply(self.machine.start(self.loop.time()))

    def _start_trackers(self) -> None:
        inst = self.inst
        for tracked in inst.track_scripts:
            s = tracked.script
            key = f"script:{s.name}"
            self._track(key, tracked.weight, s.weight_reverse, healthy=True)
            self.tasks.append(self.loop.create_task(scripts.track_script(
                key, s.script, s.interval, s.timeout, s.rise, s.fall, s.user or inst.script_user,
                s.group or inst.script_group, inst.enable_script_security, self._tracked_changed)))
        for ti in inst.track_interfaces:
            key = f"interface:{ti.name}"
            self._track(key, ti.weight, False, healthy=True)
            self.tasks.append(self.loop.create_task(scripts.track_interface(
                ti.name, min(inst.advert_int, INTERFACE_POLL_MAX),
                lambda _n, ok, key=key: self._tracked_changed(key, ok))))
        tp = inst.track_proxy
        if tp is not None or self.service.proxy_health is not None:
            key = "proxy"
            self._track(key, tp.weight if tp else 0, False, healthy=True)
            self.tasks.append(self.loop.create_task(scripts.track_proxy(
                tp.target if tp else "callable:", tp.interval if tp else 0.2, tp.rise if tp else 1,
                tp.fall if tp else 1, lambda _n, ok: self._tracked_changed(key, ok),
                self.service.proxy_health)))

    def _track(self, key: str, weight: int, reverse: bool, healthy: bool) -> None:
        self.weights[key] = 0
        self._tracking = getattr(self, "_tracking", {})
        self._tracking[key] = (weight, reverse)
        self._tracked_changed(key, healthy, quiet=True)

    def _tracked_changed(self, key: str, healthy: bool, quiet: bool = False) -> None:
        weight, reverse = self._tracking[key]
        now = self.loop.time()
        if not quiet:
            log.info("%s: %s is %s", self.inst.name, key, "up" if healthy else "down")
        if weight == 0:
            self.apply(self.machine.set_fault(now, key, scripts.faulted(reverse, healthy)))
            self.service.sync_faults(self)
            return
        self.weights[key] = scripts.priority_delta(weight, reverse, healthy)
        self.apply(self.machine.set_priority(now, self.inst.priority + sum(self.weights.values())))

    def stop(self, reason: str = "shutdown") -> None:
        self.apply(self.machine.shutdown(self.loop.time(), reason))
        if self.timer:
            self.timer.cancel()
        self.loop.remove_reader(self.sock.fileno())

    async def close(self) -> None:
        # let queued notify scripts (notify_stop) run, bounded
        try:
            await asyncio.wait_for(self.notify_queue.join(), 5.0)
        except asyncio.TimeoutError:
            log.warning("%s: notify scripts still running at exit", self.inst.name)
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        self.sock.close()
        self.garp.close()

    # --- events
    def _readable(self) -> None:
        for _ in range(64):  # bounded: a flood cannot starve the timers
            try:
                rx = self.sock.recv()
            except packet.PacketError as exc:
                self._drop(exc)
                continue
            if rx is None:
                return
            self._received(rx)

    def _received(self, rx: packet.Received) -> None:
        try:
            if rx.src == self.src:
                return  # our own packet (a multicast loop we did not ask for)
            packet.check(rx, vrid=self.inst.virtual_router_id, version=self.inst.version,
                         addresses=self.advertised,
                         advert_int=self.inst.advert_int if self.inst.version == 2 else None,
                         auth_pass=self.inst.auth_pass, unicast_peers=self.inst.unicast_peers,
                         local_dst=(self.src,))
        except packet.PacketError as exc:
            self._drop(exc)
            return
        self.received += 1
        adv = rx.advert
        self.apply(self.machine.on_advert(self.loop.time(), rx.src, adv.priority, adv.advert_int))

    def _drop(self, exc: packet.PacketError) -> None:
        self.drops[exc.reason] = self.drops.get(exc.reason, 0) + 1
        if exc.reason == "vrid":
            return  # another virtual router on the same link: normal, not logged
        now = time.monotonic()
        if now - self.drops_logged_at >= DROP_LOG_EVERY:
            self.drops_logged_at = now
            log.warning("%s: dropped VRRP packet (%s); drops so far: %s", self.inst.name, exc,
                        self.drops)

    def _on_timer(self) -> None:
        self.timer = None
        self.apply(self.machine.on_timer(self.loop.time()))

    # --- actions
    def apply(self, actions: Iterable[state.Action]) -> None:
        for action in actions:
            try:
                self._do(action)
            except OSError as exc:
                log.error("%s: %s failed: %s", self.inst.name, type(action).__name__, exc)
        self._rearm()
        self._publish_if_changed()

    def _publish_if_changed(self) -> None:
        # Called after every event (an advert a second per instance): a tuple
        # compare, and a push to watchers only when what operators see changed.
        m = self.machine
        summary = (m.state, m.priority, m.master, m.last_reason)
        if summary != self.summary:
            self.summary = summary
            if self.service.watchers:
                self.service.publish()

    def _rearm(self) -> None:
        deadline = self.machine.next_deadline()
        if self.timer is not None:
            if deadline is not None and self.timer.when() == deadline:
                return
            self.timer.cancel()
            self.timer = None
        if deadline is not None:
            self.timer = self.loop.call_at(deadline, self._on_timer)

    def _do(self, action: state.Action) -> None:
        inst = self.inst
        if isinstance(action, state.SendAdvert):
            adv = packet.Advertisement(
                version=inst.version, vrid=inst.virtual_router_id, priority=action.priority,
                advert_int=inst.advert_int, addresses=self.advertised,
                auth_type=packet.AUTH_PASS if inst.auth_pass is not None else packet.AUTH_NONE,
                auth_data=packet.auth_bytes(inst.auth_pass))
            for dst in self.sock.destinations:
                self.sock.send(packet.encode(adv, self.src, dst), dst)
                self.sent += 1
        elif isinstance(action, state.AddAddresses):
            for vip in inst.addresses:
                self.addrs.add(vip, inst.interface)
        elif isinstance(action, state.RemoveAddresses):
            for vip in inst.addresses:
                self.addrs.remove(vip, inst.interface)
        elif isinstance(action, state.SendGarp):
            # The first round goes out now, in the same loop turn as the
            # addresses and the advertisement: clients switch on it, so it must
            # not wait behind the notify and logging work queued after it.
            self._garp_round()
            if action.repeat > 1:
                self.tasks.append(self.loop.create_task(self._garp(action.repeat - 1)))
        elif isinstance(action, state.Notify):
            log.info("%s: %s (priority %d): %s", inst.name, action.state, action.priority,
                     action.reason)
            self.notify_queue.put_nowait(action)
            self.service.member_changed(self, action.state)

    def _garp_round(self) -> None:
        by_dev: dict[str, list[str]] = {}
        for vip in self.inst.addresses:
            by_dev.setdefault(vip.dev or self.inst.interface, []).append(vip.address)
        for dev, addresses in by_dev.items():
            sender = self.garp if dev == self.inst.interface else GarpSender(dev)
            sender.send(addresses)
            if sender is not self.garp:
                sender.close()

    async def _garp(self, repeat: int) -> None:
        """repeat more rounds, garp interval apart (the first went out already)."""
        for _ in range(repeat):
            await asyncio.sleep(self.inst.garp.interval)
            if self.machine.state != state.MASTER:
                return
            self._garp_round()
        self.tasks = [t for t in self.tasks if not t.done()]

    async def _notifier(self) -> None:
        # One at a time, in order: a MASTER script must finish before BACKUP's runs.
        inst = self.inst
        while True:
            action: state.Notify = await self.notify_queue.get()
            try:
                await self.service.run_notify(inst.notify, "INSTANCE", inst.name, action.state,
                                              action.priority, inst)
            finally:
                self.notify_queue.task_done()

    def snapshot(self) -> dict:
        snap = self.machine.snapshot()
        now_mono, now_wall = self.loop.time(), time.time()
        if snap["last_transition"] is not None:
            snap["last_transition"] = now_wall - (now_mono - snap["last_transition"])
        snap.update(name=self.inst.name, interface=self.inst.interface,
                    vrid=self.inst.virtual_router_id, version=self.inst.version,
                    addresses=self.vips, source=self.src, sync_group=self.inst.sync_group and self.inst.sync_group.name,
                    received=self.received, sent=self.sent, dropped=dict(self.drops),
                    tracking={k: v for k, v in self.weights.items()})
        return snap


def _without_locations(value):
    """A model value with every `location` blanked, to compare meaning only."""
    if is_dataclass(value):
        changes = {f.name: _without_locations(getattr(value, f.name)) for f in fields(value)}
        if "location" in changes:
            changes["location"] = NOWHERE
        return replace(value, **changes)
    if isinstance(value, tuple):
        return tuple(_without_locations(v) for v in value)
    return value


class Service:
    def __init__(self, config: VrrpConfig, control_path: str | None = None,
                 proxy_health: Callable[[], bool] | None = None,
                 reloader: Callable[[], VrrpConfig] | None = None, guard_fd: int | None = None):
        self.config = config
        self.control_path = control_path
        self.proxy_health = proxy_health
        self.reloader = reloader
        self.guard_fd = guard_fd
        self.runners: list[InstanceRunner] = []
        self.stopping = False
        self.addrs: AddressManager | None = None
        self.watchers: set[asyncio.StreamWriter] = set()  # `watch vrrp` connections
        self._heartbeat: asyncio.TimerHandle | None = None

    async def main(self, ready: Callable[[], None] | None = None) -> None:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        loop.add_signal_handler(signal.SIGHUP, self._sighup)
        self.addrs = addrs = AddressManager()
        server = None
        try:
            for inst in self.config.instances:
                try:
                    self.runners.append(InstanceRunner(self, inst, addrs))
                except OSError as exc:
                    # an instance without its interface or source address cannot
                    # take part; refuse to start rather than run half the config
                    log.error("vrrp_instance %s (%s): %s", inst.name, inst.location, exc)
                    raise SystemExit(1) from None
            for runner in self.runners:
                runner.start()
            if self.control_path:
                if os.path.exists(self.control_path):
                    os.unlink(self.control_path)
                server = await asyncio.start_unix_server(self._control, self.control_path)
            if ready:
                ready()
            await stop.wait()
        finally:
            self.stopping = True
            for runner in self.runners:
                runner.stop()
            await asyncio.gather(*(r.close() for r in self.runners), return_exceptions=True)
            if self._heartbeat is not None:
                self._heartbeat.cancel()
            for writer in list(self.watchers):  # they heard STOP; EOF tells them we are gone
                writer.close()
            if server:
                server.close()
                if os.path.exists(self.control_path):
                    os.unlink(self.control_path)
            addrs.close()

    # --- reload: unchanged instances keep their state (no failover on reload)
    def _sighup(self) -> None:
        if self.reloader is None:
            log.warning("SIGHUP: no configuration source to reload from")
            return
        try:
            config = self.reloader()
        except Exception as exc:  # noqa: BLE001 - a bad file must not stop a running router
            log.error("reload refused, keeping the running configuration: %s", exc)
            return
        asyncio.get_running_loop().create_task(self.reload(config))

    async def reload(self, config: VrrpConfig) -> None:
        """Apply a new configuration. An instance whose settings are unchanged
        (file positions aside) keeps running untouched; a changed one is stopped
        (priority 0 if master) and started again; a removed one is stopped."""
        new = {inst.name: inst for inst in config.instances}
        keep: list[InstanceRunner] = []
        gone: list[InstanceRunner] = []
        for runner in self.runners:
            inst = new.get(runner.inst.name)
            if inst is not None and _without_locations(inst) == _without_locations(runner.inst):
                runner.inst = inst
                keep.append(runner)
            else:
                gone.append(runner)
        for runner in gone:
            runner.stop("reload: instance changed" if runner.inst.name in new else "reload: removed")
        await asyncio.gather(*(r.close() for r in gone), return_exceptions=True)
        kept = {r.inst.name for r in keep}
        started = []
        for inst in config.instances:
            if inst.name not in kept:
                try:
                    started.append(InstanceRunner(self, inst, self.addrs))
                except OSError as exc:
                    log.error("vrrp_instance %s not started: %s", inst.name, exc)
        self.config = config
        self.runners = keep + started
        if self.guard_fd is not None:
            update_guard(self.guard_fd, [(a, r.inst.interface) for r in self.runners
                                         for a in r.inst.addresses])
        for runner in started:
            runner.start()
        log.info("reloaded: %d kept, %d stopped, %d started", len(keep), len(gone), len(started))

    def snapshot(self) -> list[dict]:
        return [runner.snapshot() for runner in self.runners]

    async def _control(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            line = (await asyncio.wait_for(reader.readline(), 5.0))[:CONTROL_READ_LIMIT]
            command = line.decode(errors="replace").strip()
            if command in ("show", "show vrrp"):
                writer.write(json.dumps(self.snapshot()).encode() + b"\n")
            elif command == "watch vrrp":
                await self._watch(reader, writer)
            else:
                writer.write(json.dumps({"error": f"unknown command {command!r}"}).encode() + b"\n")
            await writer.drain()
        except (asyncio.TimeoutError, ConnectionError):
            pass
        finally:
            writer.close()

    async def _watch(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Push snapshots to writer until it hangs up (see the module docstring)."""
        self.watchers.add(writer)
        self.publish()
        try:
            while await reader.read(CONTROL_READ_LIMIT):
                pass  # a watcher has nothing more to say; EOF ends the watch
        finally:
            self.watchers.discard(writer)
            if not self.watchers and self._heartbeat is not None:
                self._heartbeat.cancel()
                self._heartbeat = None

    def publish(self) -> None:
        """One snapshot line to every watcher, and the next heartbeat re-armed."""
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            self._heartbeat = None
        if not self.watchers:
            return
        line = json.dumps(self.snapshot()).encode() + b"\n"
        for writer in list(self.watchers):
            transport = writer.transport
            if transport.is_closing() or transport.get_write_buffer_size() > WATCH_BUFFER_LIMIT:
                self.watchers.discard(writer)
                transport.abort()
                continue
            writer.write(line)
        if self.watchers:
            self._heartbeat = asyncio.get_running_loop().call_later(WATCH_HEARTBEAT, self.publish)

    # --- sync groups: a member in FAULT puts the whole group in FAULT
    def member_changed(self, runner: InstanceRunner, new_state: str) -> None:
        group = runner.inst.sync_group
        if group is None or self.stopping:
            return
        self.sync_faults(runner)
        members = self._members(group.name)
        if all(r.machine.state == new_state for r in members):
            loop = asyncio.get_running_loop()
            loop.create_task(self.run_notify(group.notify, "GROUP", group.name, new_state, 0,
                                             runner.inst))

    def _members(self, group_name: str) -> list[InstanceRunner]:
        return [r for r in self.runners if r.inst.sync_group and r.inst.sync_group.name == group_name]

    def sync_faults(self, runner: InstanceRunner) -> None:
        """Each member carries the group fault while another member has a fault
        of its own (keepalived's sync group: the group fails over as one)."""
        group = runner.inst.sync_group
        if group is None or self.stopping:
            return
        key = f"sync_group:{group.name}"
        members = self._members(group.name)
        now = asyncio.get_running_loop().time()
        for r in members:
            want = any(o.machine.faults - {key} for o in members if o is not r)
            if (key in r.machine.faults) != want:
                r.apply(r.machine.set_fault(now, key, want))

    async def run_notify(self, notify, kind: str, name: str, state_name: str, priority: int,
                         inst: VrrpInstance) -> None:
        specific = {state.MASTER: notify.master, state.BACKUP: notify.backup,
                    state.FAULT: notify.fault, state.STOP: notify.stop}.get(state_name)
        which = {state.MASTER: "master", state.BACKUP: "backup", state.FAULT: "fault",
                 state.STOP: "stop"}.get(state_name, "")

        def run_as(key: str) -> dict:
            user, group = notify.user_for(key)
            return dict(user=user or inst.script_user, group=group or (None if user else inst.script_group),
                        secure=inst.enable_script_security)
        if specific:
            await scripts.run_command(specific, (), NOTIFY_TIMEOUT, **run_as(which))
        if notify.any:
            # keepalived.conf(5): notify gets TYPE NAME STATE PRIORITY after its own arguments
            await scripts.run_command(notify.any, (kind, name, state_name, str(priority)),
                                      NOTIFY_TIMEOUT, **run_as("any"))


def _as_config(config_part) -> VrrpConfig:
    if isinstance(config_part, VrrpConfig):
        return config_part
    instances = tuple(getattr(config_part, "vrrp", config_part))
    return VrrpConfig(instances=instances)


RT_PRIORITY = 1  # the lowest real-time priority: above every normal task, below kernel threads


def _realtime() -> None:
    """Best effort: SCHED_RR so that proxies busy on every core cannot delay an
    advertisement by a scheduler tick or more (a separate process alone gives
    fairness, not promptness). The process needs microseconds of CPU per
    advert; the kernel's real-time throttling bounds the cost of a bug.
    SCHED_RESET_ON_FORK: scripts we start run at normal priority."""
    try:
        policy = os.SCHED_RR | getattr(os, "SCHED_RESET_ON_FORK", 0x40000000)
        os.sched_setscheduler(0, policy, os.sched_param(RT_PRIORITY))
    except (OSError, AttributeError) as exc:
        log.info("running without real-time priority: %s", exc)


def run(config_part, control_path: str | None = None,
        proxy_health: Callable[[], bool] | None = None, guard: bool = True,
        realtime: bool = True, reloader: Callable[[], VrrpConfig] | None = None) -> None:
    """Run the VRRP service until SIGTERM/SIGINT (blocking).

    `config_part`: a VrrpConfig, a haply Config (its `.vrrp` instances), or a
    sequence of VrrpInstance. `proxy_health`: a callable polled by instances
    with `track_proxy` (or, when given, by every instance: weight 0, FAULT when
    False). `guard`: fork the SIGKILL guard that removes the VIPs if this process
    dies without cleaning up (see addresses.py). `realtime`: see _realtime().
    `reloader`: called on SIGHUP for the new configuration (raise to refuse it);
    instances whose settings did not change keep their state.
    """
    config = _as_config(config_part)
    if realtime:
        _realtime()
    guard_fd = None
    if guard:
        guard_fd = spawn_guard([(a, i.interface) for i in config.instances for a in i.addresses])
    try:
        # The standard event loop, not uvloop: libuv keeps time and timers in
        # whole milliseconds, so a Master_Down_Interval or an advertisement fired
        # up to ~1.2 ms late (0.6 ms on average, measured); asyncio's selector
        # loop fires within ~0.3 ms. This process handles a few packets a
        # second, where uvloop's throughput buys nothing (bench/vrrp_failover.py).
        asyncio.run(Service(config, control_path, proxy_health, reloader, guard_fd).main())
    finally:
        if guard_fd is not None:
            os.close(guard_fd)


def query(control_path: str, timeout: float = 2.0) -> list[dict]:
    """The snapshot of a running service, through its control socket."""
    import socket
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(control_path)
        s.sendall(b"show vrrp\n")
        chunks = []
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
    return json.loads(b"".join(chunks))


snapshot = query  # `haply ctl show vrrp` reads this: one dict per instance
