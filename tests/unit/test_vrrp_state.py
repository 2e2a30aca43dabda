"""VRRP state machine: machines joined by an in-memory link under a fake clock."""

from __future__ import annotations

import heapq
import itertools

import pytest

from haply.vrrp import state
from haply.vrrp.state import BACKUP, FAULT, MASTER, STOP, Machine, Params

LATENCY = 0.001


class Link:
    """Delivers every advertisement to every other live machine after LATENCY."""

    def __init__(self, **machines: Machine):
        self.machines = machines
        self.alive = set(machines)
        self.now = 0.0
        self.queue: list = []
        self.seq = itertools.count()
        self.holding: set[str] = set()  # names that hold the VIPs
        self.garps: dict[str, int] = {n: 0 for n in machines}
        self.notes: list[tuple[float, str, str]] = []
        self.sent: list[tuple[float, str, int]] = []
        self.max_holders = 0

    def apply(self, name: str, actions) -> None:
        for a in actions:
            if isinstance(a, state.SendAdvert):
                self.sent.append((self.now, name, a.priority))
                for other in self.alive - {name}:
                    heapq.heappush(self.queue, (self.now + LATENCY, next(self.seq), other, name, a.priority))
            elif isinstance(a, state.AddAddresses):
                self.holding.add(name)
            elif isinstance(a, state.RemoveAddresses):
                self.holding.discard(name)
            elif isinstance(a, state.SendGarp):
                self.garps[name] += a.repeat
            elif isinstance(a, state.Notify):
                self.notes.append((self.now, name, a.state))
        live_holders = self.holding & self.alive
        self.max_holders = max(self.max_holders, len(live_holders))

    def start(self, *names: str) -> None:
        for name in names or self.machines:
            self.alive.add(name)
            self.apply(name, self.machines[name].start(self.now))

    def kill(self, name: str) -> None:
        """SIGKILL: no priority 0, addresses gone with the node."""
        self.alive.discard(name)
        self.holding.discard(name)

    def run(self, duration: float) -> None:
        end = self.now + duration
        while True:
            deadlines = [(m.next_deadline(), n) for n, m in self.machines.items()
                         if n in self.alive and m.next_deadline() is not None]
            t_timer, who = min(deadlines) if deadlines else (float("inf"), None)
            t_msg = self.queue[0][0] if self.queue else float("inf")
            t = min(t_timer, t_msg)
            if t > end:
                break
            self.now = t
            if t_msg <= t_timer:
                _, _, dst, src, prio = heapq.heappop(self.queue)
                if dst in self.alive:
                    m = self.machines[dst]
                    self.apply(dst, m.on_advert(t, ip(src), prio, m.params.advert_int))
            else:
                self.apply(who, self.machines[who].on_timer(t))
        self.now = end

    def masters(self) -> list[str]:
        return sorted(n for n in self.alive if self.machines[n].state == MASTER)


IPS = {"a": "192.0.2.10", "b": "192.0.2.11", "c": "192.0.2.12"}


def ip(name: str) -> str:
    return IPS[name]


def machine(name: str, priority: int, version=3, advert=0.1, **kw) -> Machine:
    return Machine(Params(vrid=51, priority=priority, advert_int=advert, version=version,
                          local_ip=ip(name), garp_delay=kw.pop("garp_delay", 0.0), **kw))


@pytest.mark.parametrize("version, advert", [(2, 1.0), (3, 0.1)])
def test_election_by_priority(version, advert):
    net = Link(a=machine("a", 100, version, advert), b=machine("b", 200, version, advert))
    net.start()
    net.run(10 * advert)
    assert net.masters() == ["b"] and net.holding == {"b"}
    assert net.machines["a"].master == ip("b")
    assert net.max_holders == 1


def test_skew_and_master_down_interval():
    m = machine("a", 100, version=2, advert=1.0)
    assert m.skew_time() == pytest.approx(156 / 256)
    assert m.master_down_interval() == pytest.approx(3 + 156 / 256)
    m3 = machine("a", 100, version=3, advert=0.5)
    assert m3.skew_time() == pytest.approx(156 * 0.5 / 256)
    assert m3.master_down_interval() == pytest.approx(1.5 + 156 * 0.5 / 256)
    # v3 backups learn the master's interval (RFC 5798 6.4.2)
    m3.start(0)
    m3.on_advert(0.1, ip("b"), 200, 1.0)
    assert m3.master_adver_int == 1.0
    assert m3.next_deadline() == pytest.approx(0.1 + 3 + 156 / 256)


def test_equal_priority_higher_address_wins():
    net = Link(a=machine("a", 100, initial_state=MASTER), b=machine("b", 100, initial_state=MASTER))
    net.start()
    net.run(1)
    assert net.masters() == ["b"]


def test_failover_on_kill_takes_master_down_interval():
    net = Link(a=machine("a", 200), b=machine("b", 100))
    net.start()
    net.run(1)
    assert net.masters() == ["a"]
    net.kill("a")
    killed_at = net.now
    net.run(1)
    assert net.masters() == ["b"]
    took_over = next(t for t, n, s in net.notes if n == "b" and s == MASTER)
    b = net.machines["b"]
    assert took_over - killed_at <= b.master_down_interval() + 0.1 + 1e-9
    assert took_over - killed_at >= 3 * 0.1 - 0.1  # not before three intervals could be missed


def test_shutdown_advertises_priority_zero_for_fast_takeover():
    net = Link(a=machine("a", 200), b=machine("b", 100))
    net.start()
    net.run(1)
    net.apply("a", net.machines["a"].shutdown(net.now))
    assert net.sent[-1] == (net.now, "a", 0)
    assert net.machines["a"].state == STOP and "a" not in net.holding
    stopped_at = net.now
    net.alive.discard("a")
    net.run(0.5)
    took_over = next(t for t, n, s in net.notes if n == "b" and s == MASTER)
    assert took_over - stopped_at <= net.machines["b"].skew_time() + LATENCY + 1e-9


def test_failback_with_preempt():
    net = Link(a=machine("a", 200), b=machine("b", 100))
    net.start()
    net.run(1)
    net.kill("a")
    net.run(1)
    assert net.masters() == ["b"]
    net.machines["a"] = machine("a", 200)
    restarted = net.now
    net.start("a")
    net.run(2)
    assert net.masters() == ["a"] and net.holding == {"a"}
    # Make-before-break: the returning node claims within one interval (to hear
    # b) plus Skew_Time, not after a whole Master_Down_Interval; b lets go of the
    # addresses and answers priority 0; a takes over Skew_Time after that answer.
    skew = net.machines["a"].skew_time()
    took = [t for t, n, s in net.notes if n == "a" and s == MASTER][-1]
    assert took - restarted <= 0.1 + 2 * skew + 2 * LATENCY + 1e-9
    yielded = [t for t, n, s in net.notes if n == "b" and s == BACKUP][-1]
    assert 0 < took - yielded <= skew + LATENCY + 1e-9  # b first: never two holders


def test_failback_with_nopreempt_keeps_current_master():
    net = Link(a=machine("a", 200, preempt=False), b=machine("b", 100, preempt=False))
    net.start()
    net.run(1)
    assert net.masters() == ["a"]
    net.kill("a")
    net.run(1)
    net.machines["a"] = machine("a", 200, preempt=False)
    net.start("a")
    net.run(3)
    assert net.masters() == ["b"] and net.machines["a"].state == BACKUP


def test_preempt_delay():
    net = Link(a=machine("a", 200, preempt_delay=1.0), b=machine("b", 100))
    net.start("b")
    net.run(1)
    assert net.masters() == ["b"]
    net.start("a")
    net.run(0.8)
    assert net.masters() == ["b"]  # still waiting out preempt_delay
    net.run(0.5)
    assert net.masters() == ["a"]


def test_split_brain_is_answered_at_once():
    a, b = machine("a", 200), machine("b", 100)
    for m in (a, b):
        m.start(0)
    a.on_timer(10)
    b.on_timer(10)
    assert a.state == b.state == MASTER  # e.g. after a partition
    actions = a.on_advert(10.01, ip("b"), 100, 0.1)
    assert state.SendAdvert(200) in actions  # answered now, not at the next tick
    assert any(isinstance(x, state.SendGarp) for x in actions)
    assert state.Notify(MASTER, 200, actions[-1].reason) in actions
    assert a.on_advert(10.02, ip("b"), 100, 0.1) == []  # at most once per interval
    loser = b.on_advert(10.011, ip("a"), 200, 0.1)
    assert b.state == BACKUP and state.RemoveAddresses() in loser
    # It lets go of the addresses, then tells the winner it gave up (see below).
    assert loser.index(state.RemoveAddresses()) < loser.index(state.SendAdvert(0))


def test_winner_reasserts_when_the_loser_steps_down_first():
    a = machine("a", 200)
    a.start(0)
    a.on_timer(a.next_deadline())
    assert a.state == MASTER
    became = a.last_transition
    # the loser heard us first and says it gives up: re-GARP and re-notify
    actions = a.on_advert(became + 5, ip("b"), 0, 0.1)
    assert actions[0] == state.SendAdvert(200)
    assert any(isinstance(x, state.SendGarp) for x in actions)
    assert any(isinstance(x, state.Notify) and x.state == MASTER for x in actions)
    # a master that has just preempted only answers (no notify storm on failback)
    c = machine("c", 200)
    c.start(0)
    c.on_timer(c.next_deadline())
    assert c.on_advert(c.last_transition + 0.01, ip("b"), 0, 0.1) == [state.SendAdvert(200)]


def test_rate_limited_conflict_does_not_delay_the_next_advert():
    a = machine("a", 200)
    a.start(0)
    a.on_timer(a.next_deadline())
    t = a.last_transition + 1
    a.on_advert(t, ip("b"), 100, 0.1)
    due = a.next_deadline()
    assert a.on_advert(t + 0.05, ip("b"), 100, 0.1) == []
    assert a.next_deadline() == due


def test_priority_tracking_moves_mastership():
    net = Link(a=machine("a", 150), b=machine("b", 100))
    net.start()
    net.run(1)
    assert net.masters() == ["a"]
    net.apply("a", net.machines["a"].set_priority(net.now, 150 - 60))  # tracked script failed
    assert net.sent[-1][1:] == ("a", 90)  # advertised at once
    net.run(1)
    assert net.masters() == ["b"] and net.holding == {"b"}
    net.apply("a", net.machines["a"].set_priority(net.now, 150))
    net.run(1)
    assert net.masters() == ["a"]


def test_fault_releases_and_recovers():
    net = Link(a=machine("a", 150), b=machine("b", 100))
    net.start()
    net.run(1)
    net.apply("a", net.machines["a"].set_fault(net.now, "script:chk", True))
    assert net.machines["a"].state == FAULT and "a" not in net.holding
    assert net.sent[-1][1:] == ("a", 0)  # hands over with priority 0
    net.run(0.5)
    assert net.masters() == ["b"]
    net.apply("a", net.machines["a"].set_fault(net.now, "script:chk", False))
    assert net.machines["a"].state == BACKUP
    net.run(1)
    assert net.masters() == ["a"]
    assert net.machines["a"].snapshot()["reason"].startswith("no advertisement")


def test_owner_priority_255_is_master_at_once_and_fixed():
    m = machine("a", 255)
    actions = m.start(0)
    assert m.state == MASTER and state.AddAddresses() in actions
    assert m.set_priority(1, 100) == [] and m.priority == 255


def test_fault_at_startup():
    m = machine("a", 100)
    m.set_fault(0, "interface:eth0", True)
    m.start(0)
    assert m.state == FAULT and m.next_deadline() is None


def test_garp_delay_and_refresh_timers():
    m = machine("a", 255, garp_delay=2.0, garp_refresh=5.0, garp_repeat=3, garp_refresh_repeat=2)
    first = m.start(0)
    assert state.SendGarp(3) in first
    seen: list = []
    t = 0.0
    while t < 11:
        t = m.next_deadline()
        seen += [(round(t, 2), a.repeat) for a in m.on_timer(t) if isinstance(a, state.SendGarp)]
    assert seen == [(2.0, 3), (5.0, 2), (10.0, 2)]


def test_master_advertises_every_interval():
    m = machine("a", 255, advert=0.25)
    m.start(0)
    sent = []
    while True:
        t = m.next_deadline()
        if t > 2.01:
            break
        sent += [t for a in m.on_timer(t) if isinstance(a, state.SendAdvert)]
    assert sent == pytest.approx([0.25 * i for i in range(1, 9)])


def test_snapshot_fields():
    m = machine("a", 100)
    m.start(3.0)
    snap = m.snapshot()
    assert snap["state"] == BACKUP and snap["priority"] == 100 and snap["last_transition"] == 3.0
    assert snap["reason"] == "startup" and snap["master"] is None


# ----------------------------------------------------------------- properties

from hypothesis import example, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

EVENTS = st.lists(st.tuples(st.sampled_from(["kill", "restart", "stop", "prio", "wait"]),
                            st.sampled_from(["a", "b", "c"]), st.integers(1, 254),
                            st.floats(0.0, 0.5)), max_size=12)


@settings(max_examples=150, deadline=None)
@given(events=EVENTS, preempt=st.booleans(), version=st.sampled_from([2, 3]))
# the master lowers its priority to a backup's: it stays master
@example(events=[("kill", "b", 1, 0.0), ("prio", "a", 100, 0.0)], preempt=True, version=2)
def test_any_history_converges_to_one_master(events, preempt, version):
    advert = 1.0 if version == 2 else 0.1
    prios = {"a": 200, "b": 150, "c": 100}

    def fresh(name):
        return machine(name, prios[name], version, advert, preempt=preempt)

    net = Link(**{n: fresh(n) for n in prios})
    net.start()
    for kind, name, prio, pause in events:
        if kind == "kill" and name in net.alive:
            net.kill(name)
        elif kind == "restart" and name not in net.alive:
            net.machines[name] = fresh(name)
            net.start(name)
        elif kind == "stop" and name in net.alive:
            net.apply(name, net.machines[name].shutdown(net.now))
            net.alive.discard(name)
        elif kind == "prio" and name in net.alive:
            net.apply(name, net.machines[name].set_priority(net.now, prio))
        net.run(pause * advert * 10)
    # quiet period: every live router settles
    net.run(3 * (3 * advert + 1))
    if not net.alive:
        return
    masters = net.masters()
    assert len(masters) == 1, (masters, events)
    assert net.holding & net.alive == set(masters)
    for name in net.alive - set(masters):
        assert net.machines[name].state == BACKUP
        assert net.machines[name].master == ip(masters[0])
    if preempt:
        # The master has the highest priority. Between equal priorities the
        # higher address wins only an election (two masters meeting, or none):
        # a backup whose priority equals the master's does not preempt it (RFC
        # 3768 6.4.2: "greater than or equal ... reset the Master_Down_Timer"),
        # so a master that lowered its priority to another router's keeps it.
        top = max(net.machines[n].priority for n in net.alive)
        assert net.machines[masters[0]].priority == top, (masters, events)
