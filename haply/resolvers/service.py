"""The I/O shell of runtime DNS resolution: one UDP socket per name server,
one timer per resolvers section, and the servers' addresses changed as the
runtime API's `set server addr` changes them.

The servers with `resolvers` whose host is a name share a Resolution per
name and family (haply.resolvers.resolution, which decides everything), as
HAProxy shares them; this module sends
the queries it asks for to every name server of the section, gives it the
answers, and applies its outcomes:

- a valid answer without the server's address moves the server to one of
  its addresses (`choose_address`), logged as HAProxy logs it ("be/s changed
  its IP from A to B by dns/ns1."); a server in maintenance for want of an
  address leaves it;
- an error held longer than `hold <status>` takes the server's address away
  and puts it into maintenance ("MAINT (resolution)").
"""

from __future__ import annotations

import asyncio
import random
import socket

from haply.logs import events
from haply.proxy.addresses import is_ip
from haply.resolvers import wire
from haply.resolvers.resolution import MAINTENANCE, MOVE, Outcome, Query, Resolution, choose_address, verdict
from haply.runtime.registry import MAINT, READY


class _Endpoint(asyncio.DatagramProtocol):
    """One name server's socket: datagrams in go to the section."""

    def __init__(self, section: "SectionResolver", index: int) -> None:
        self.section = section
        self.index = index
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr) -> None:
        self.section.received(self.index, data)

    def error_received(self, exc: Exception) -> None:
        # An ICMP unreachable (no name server there): HAProxy 2.6 counts it
        # nowhere (observed: a silent name server's snd_error and timeout
        # stay 0), and the query times out.
        pass


class _Group:
    """The servers of one section resolving one name for one family: like
    HAProxy, they share one resolution (and its queries)."""

    __slots__ = ("host", "members", "resolution")

    def __init__(self, host: str, resolution: Resolution) -> None:
        self.host = host
        self.members: list[tuple[object, object]] = []  # (ServerState, model.Server), in config order
        self.resolution = resolution


class SectionResolver:
    """The resolutions of one resolvers section."""

    def __init__(self, engine, section, now: float) -> None:
        self.engine = engine
        self.section = section
        self.loop = engine.loop
        self.endpoints: list[_Endpoint] = []
        self.counters = [dict.fromkeys(wire.COUNTERS, 0) for _ in section.nameservers]
        self.failed = 0  # resolutions that ended without an address (show info)
        self.groups: dict[tuple[str, str], _Group] = {}  # (host, resolve-prefer) -> group
        self.in_flight: dict[int, tuple[_Group, int, str]] = {}  # id -> (group, serial, type)
        self.timer: asyncio.TimerHandle | None = None
        self.timer_at = 0.0  # when the timer fires (uvloop's handles do not say)
        self.random = random.Random()

    def track(self, state, server, now: float) -> None:
        key = (server.host.rstrip(".").lower(), server.resolve_prefer)
        group = self.groups.get(key)
        if group is None:
            section = self.section
            group = self.groups[key] = _Group(key[0], Resolution(
                key[0], server.resolve_prefer, len(section.nameservers), section.resolve_retries,
                section.timeout_resolve, section.timeout_retry, now))
        group.members.append((state, server))

    async def start(self) -> None:
        for index, nameserver in enumerate(self.section.nameservers):
            family = socket.AF_INET6 if ":" in nameserver.host else socket.AF_INET
            endpoint = _Endpoint(self, index)
            await self.loop.create_datagram_endpoint(
                lambda endpoint=endpoint: endpoint, remote_addr=(nameserver.host, nameserver.port),
                family=family)
            self.endpoints.append(endpoint)
        self._run()

    def close(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        for endpoint in self.endpoints:
            if endpoint.transport is not None:
                endpoint.transport.close()
        self.endpoints.clear()

    # -- the timer

    def _run(self) -> None:
        self.timer = None
        now = self.loop.time()
        for group in self.groups.values():
            self._follow(group, group.resolution.poll(now), now, None)
        if self.groups and self.endpoints:
            self._arm(max(min(g.resolution.wake_at() for g in self.groups.values()), now + 0.001))

    def _arm(self, when: float) -> None:
        if self.timer is not None:
            self.timer.cancel()
        self.timer_at = when
        self.timer = self.loop.call_at(when, self._run)

    def _reschedule(self) -> None:
        """An answer may have brought the next step forward (a new query)."""
        if self.timer is None or not self.endpoints:
            return
        wake = min(g.resolution.wake_at() for g in self.groups.values())
        if wake < self.timer_at:
            self._arm(max(wake, self.loop.time()))

    # -- queries and answers

    def _follow(self, group: _Group, step, now: float, nameserver: int | None) -> bool:
        """Do what the resolution asks; True when a server's address changed."""
        if isinstance(step, Query):
            self._send(group, step)
        elif isinstance(step, Outcome):
            return self._apply(group, step, now, nameserver)
        return False

    def _send(self, group: _Group, query: Query) -> None:
        # the answers to the queries this one replaces are outdated
        for query_id in [i for i, (g, _, _) in self.in_flight.items() if g is group]:
            del self.in_flight[query_id]
        query_id = self.random.randrange(1, 65536)
        while query_id in self.in_flight:
            query_id = self.random.randrange(1, 65536)
        self.in_flight[query_id] = (group, query.serial, query.qtype)
        data = wire.query(group.host, query.qtype, query_id, self.section.accepted_payload_size)
        for index, endpoint in enumerate(self.endpoints):
            try:
                endpoint.transport.sendto(data)
                self.counters[index]["sent"] += 1
            except OSError:
                self.counters[index]["snd_error"] += 1

    def received(self, index: int, data: bytes) -> None:
        counters = self.counters[index]
        answer = wire.read(data)
        if answer is None:
            counters["invalid"] += 1
            return
        found = self.in_flight.get(answer.id)
        if found is None or found[2] != answer.qtype or found[0].host != answer.name \
                or not found[0].resolution.current(found[1]):
            counters["outdated"] += 1
            return
        group, serial, _ = found
        counters[answer.counter] += 1
        now = self.loop.time()
        step = group.resolution.answer(now, serial, answer.status, answer.addresses)
        if isinstance(step, Outcome):
            self.in_flight.pop(answer.id, None)
        if self._follow(group, step, now, index):
            counters["update"] += 1
        self._reschedule()

    # -- outcomes

    def _apply(self, group: _Group, outcome: Outcome, now: float, nameserver: int | None) -> bool:
        """The end of a resolution for each server of the group. The first
        hears it from the name server, the others from HAProxy's "DNS cache"
        (as HAProxy 2.6 logs them, observed)."""
        hold = self.section.held(outcome.status) if outcome.status != "valid" else 0.0
        if outcome.status != "valid":
            self.failed += 1
        decided = verdict(outcome, now, group.resolution.last_valid, hold)
        source = (f"{self.section.name}/{self.section.nameservers[nameserver].name}"
                  if nameserver is not None else "DNS cache")
        changed = False
        for position, (state, server) in enumerate(group.members):
            said = source if position == 0 else "DNS cache"
            changed |= self._apply_one(state, server, outcome, decided, now, said)
        return changed

    def _apply_one(self, state, server, outcome: Outcome, decided: str, now: float, source: str) -> bool:
        registry = self.engine.registry
        if decided == MOVE:
            current = state.address[0] if state.address else None
            new = choose_address(outcome.addresses, current, server.resolve_prefer, server.resolve_net,
                                 self._taken(state, server))
            if new is None or (new == current and not state.unresolved):
                return False  # every address is another server's: as it is
            unresolved = state.unresolved
            move(self.engine, state, new, now)
            self._log(state, [events.dns_address_message(state, current, new, source)])
            if unresolved and not state.unresolved:
                self._log(state, events.dns_ready_messages(state))
            self._tell_others(state, new)
            return True
        if decided == MAINTENANCE and not state.unresolved:
            message = events.dns_maintenance_message(state, outcome.status, registry.servers(state.backend))
            move(self.engine, state, None, now)
            self._log(state, [message])
            self._tell_others(state, None)
        return False

    def _tell_others(self, state, address: str | None) -> None:
        if self.engine.on_dns_change is not None:
            self.engine.on_dns_change(state.backend, state.name, address)

    def _taken(self, state, server) -> frozenset[str]:
        """The addresses of the other servers of the backend resolving the same
        name, which this one avoids unless it allows duplicates."""
        if "allow-dup-ip" in server.resolve_opts:
            return frozenset()
        return frozenset(other.address[0] for group in self.groups.values() for other, config in group.members
                         if other is not state and other.backend == state.backend
                         and config.host == server.host and other.address)

    def _log(self, state, messages) -> None:
        logging = self.engine.logging
        if logging is None:
            return
        proxy = self.engine.config.proxy(state.backend)
        targets = logging.targets_of(proxy) if proxy is not None else logging.global_targets
        for severity, text in messages:
            logging.send(targets, severity, text)


def move(engine, state, address: str | None, now: float) -> None:
    """Give a server the address DNS resolution gave it (the runtime API's
    `set server addr` path), out of maintenance; or, with None, take its
    address away and put it into maintenance (resolution)."""
    from haply.admin.runtime_api import change_address  # the runtime API imports the engine

    registry = engine.registry
    if address is None:
        change_address(engine, state, None, state.port)
        registry.set_admin(state, MAINT, now)
        return
    unresolved = state.unresolved
    change_address(engine, state, address, state.port)
    if unresolved and state.admin == MAINT and (state.config is None or not state.config.disabled):
        registry.set_admin(state, READY, now)
    elif unresolved:
        state.unresolved = True  # still in the maintenance the configuration asked for: unchanged


def follow(engine, backend: str, server: str, address: str | None) -> None:
    """Another worker's resolution moved a server: the same here, silently
    (that worker logged it), as workers follow the checking worker's health."""
    state = engine.registry.get(backend, server)
    if state is None:
        return
    current = state.address[0] if state.address else None
    if address != current or (address is not None and state.unresolved):
        move(engine, state, address, engine.loop.time())


def resolved_servers(config):
    """(backend, server, section name) of every server DNS resolves at run time."""
    for proxy in config.backends:
        for server in proxy.servers:
            if server.resolvers is not None and not is_ip(server.host):
                yield proxy, server, server.resolvers


async def start(engine) -> list[SectionResolver]:
    """A SectionResolver per resolvers section some server uses, started:
    in the worker that runs the health checks (or the only process); the
    other workers follow it (`follow`)."""
    if not engine.health_probing:
        return []
    now = engine.loop.time()
    sections = {section.name: section for section in engine.config.resolvers}
    running: dict[str, SectionResolver] = {}
    for proxy, server, name in resolved_servers(engine.config):
        state = next((s for s in engine.registry.servers(proxy.name) if s.name == server.name), None)
        if state is None:
            continue
        resolver = running.get(name)
        if resolver is None:
            resolver = running[name] = SectionResolver(engine, sections[name], now)
        resolver.track(state, server, now)
    for resolver in running.values():
        await resolver.start()
    return list(running.values())


__all__ = ["SectionResolver", "follow", "move", "resolved_servers", "start"]
