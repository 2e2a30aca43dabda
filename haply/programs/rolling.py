"""Rolling restart: one instance at a time, without losing a request.

For each instance (policy.rolling_order): drain its servers in every backend
(`set server ... state drain`), wait until their sessions end (bounded by
policy.DRAIN_TIMEOUT), restart it, wait until the new process accepts
connections and the proxy's checks see it UP (bounded by
policy.HEALTHY_TIMEOUT), put its servers back in service, next. The first
instance that does not come back ends the run: restarting more would only
take more capacity away. The answer has one line per instance.
"""

from __future__ import annotations

import asyncio

from haply.config.programs import INSTANCE_HOST
from haply.programs import policy
from haply.programs.policy import FATAL, RUNNING, STOPPED
from haply.programs.supervisor import KILL_GRACE

# How often the proxy is asked for a drained server's sessions and a
# restarted instance's port is probed: ProxyControl answers questions and has
# no subscription (a master asks its workers over their channels), and this
# runs once per operator command, never on the traffic path.
POLL = 0.05


async def rolling_restart(supervisor, runners: list) -> str:
    """One instance at a time: drain its servers, wait for their sessions
    to end (bounded), restart it, wait until it is healthy (bounded), put
    it back in service. Stops at the first instance that does not come back."""
    names = {r.instance.program.name for r in runners}
    busy = names & supervisor.rolling
    if busy:
        return f"A rolling restart of {', '.join(sorted(busy))} is already in progress.\n"
    supervisor.rolling |= names
    lines = []
    try:
        for instance in policy.rolling_order([r.instance for r in runners]):
            ok, line = await _roll_one(supervisor, next(r for r in runners if r.instance is instance))
            lines.append(line)
            if not ok:
                lines.append("rolling restart aborted\n")
                break
        else:
            lines.append(f"rolling restart done: {len(runners)} instance(s)\n")
    finally:
        supervisor.rolling -= names
    return "".join(lines)


async def _roll_one(supervisor, runner) -> tuple[bool, str]:
    instance = runner.instance
    places = supervisor.servers.get((instance.program.name, instance.number), []) if supervisor.proxy else []
    started = supervisor.loop.time()
    old_pid, old_restarts = instance.pid, instance.restarts
    # a server an operator put in maintenance takes no traffic and stays so
    places = [(b, s) for b, s in places if (await supervisor.proxy.server_status(b, s))[0] != "MAINT"]
    for backend, server in places:
        await supervisor.proxy.set_server_state(backend, server, "drain")
    drained = await _sessions_gone(supervisor, places, policy.DRAIN_TIMEOUT)
    if supervisor.stopping:  # haply is stopping: no instance starts again
        return False, f"program {instance.name}: not restarted, the supervisor is stopping\n"
    supervisor._apply(runner, instance.restart(supervisor.loop.time()))
    back = await supervisor._until(
        runner, lambda i: i.state == FATAL or (i.state == RUNNING and not i.spawning and i.restarts > old_restarts),
        instance.program.stop_timeout + KILL_GRACE + policy.HEALTHY_TIMEOUT)
    if not back or instance.state != RUNNING:
        return False, (f"program {instance.name}: did not come back ({instance.state}"
                       f"{', ' + instance.last_exit if instance.last_exit else ''}); left drained\n")
    healthy = await _healthy(supervisor, runner, places, policy.HEALTHY_TIMEOUT)
    if not healthy and instance.state != RUNNING:
        return False, (f"program {instance.name}: did not come back ({instance.state}"
                       f"{', ' + instance.last_exit if instance.last_exit else ''}); left drained\n")
    if not healthy:
        return False, f"program {instance.name}: pid {instance.pid} not healthy after " \
                      f"{policy.HEALTHY_TIMEOUT:g}s; left drained\n"
    for backend, server in places:
        await supervisor.proxy.set_server_state(backend, server, "ready")
    note = "" if drained else f" (sessions still open after {policy.DRAIN_TIMEOUT:g}s)"
    if not places:
        note += " (no server of it known to drain)"
    return True, (f"program {instance.name}: restarted, pid {old_pid} -> {instance.pid} in "
                  f"{supervisor.loop.time() - started:.1f}s{note}\n")


async def _sessions_gone(supervisor, places, timeout: float) -> bool:
    deadline = supervisor.loop.time() + timeout
    while True:
        counts = [(await supervisor.proxy.server_status(b, s))[1] for b, s in places]
        if not any(counts):
            return True
        if supervisor.loop.time() >= deadline:
            return False
        await asyncio.sleep(POLL)


async def _healthy(supervisor, runner, places, timeout: float) -> bool:
    """The new process accepts connections on its port and the proxy's
    checks see its servers UP (a check may still report the old process'
    state, so both are asked). A process that exits meanwhile is waited for
    through its restarts (a worker may fail once while starting) until it is
    healthy, FATAL or stopped."""
    deadline = supervisor.loop.time() + timeout
    port = runner.instance.port
    while supervisor.loop.time() < deadline:
        state = runner.instance.state
        if state in (FATAL, STOPPED):
            return False
        if state == RUNNING and (port is None or await _accepts(port)):
            statuses = [(await supervisor.proxy.server_status(b, s))[0] for b, s in places]
            if all(status == "UP" for status in statuses):
                return True
        await asyncio.sleep(POLL)
    return False


async def _accepts(port: int) -> bool:
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(INSTANCE_HOST, port), 1.0)
    except (OSError, TimeoutError):
        return False
    writer.close()
    return True


__all__ = ["POLL", "rolling_restart"]
