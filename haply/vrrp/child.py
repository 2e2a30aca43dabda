"""VRRP as a child process of the haply that also runs the proxy.

VRRP runs in its own process so that a proxy saturating its CPU can never delay an
advertisement and cause a false failover. The child is forked after the proxy has
bound its listeners (so a bad `bind` never leaves a VRRP instance holding the
address with no proxy behind it) and closes its copies of them (so clients are
never left in the backlog of a dead proxy's socket held open by VRRP).

Unless an instance says otherwise with its own `track_proxy`, every instance tracks
the proxy process itself through a pidfd: the moment the proxy dies, even by
SIGKILL, the instance goes to FAULT, hands over with priority 0 and the address
moves. `killall -0 haproxy` in a `vrrp_script` polls; this does not.
"""

from __future__ import annotations

import dataclasses
import os
import select
import signal
import sys

from haply.config.vrrp_model import TrackProxy

# How long a stopping VRRP child may take to hand over (priority 0 advert, VIPs
# removed, notify_stop run) before the parent stops waiting.
STOP_TIMEOUT = 5.0


def default_control_path(config) -> str:
    """Where `haply ctl show vrrp` finds the running instances: beside the first
    stats socket (haply.ctl.vrrp_control_path reads it the same way)."""
    from haply.ctl import vrrp_control_path

    sockets = config.global_.stats_sockets
    return vrrp_control_path(sockets[0].path if sockets else "")


def with_proxy_tracking(instances, proxy_pid: int):
    target = f"pid:{proxy_pid}"
    return tuple(
        instance if instance.track_proxy is not None
        else dataclasses.replace(instance, track_proxy=TrackProxy(target))
        for instance in instances)


def start(config, proxy_pid: int | None, inherited_fds: list[int]) -> int:
    """Fork the VRRP child; returns its pid in the parent."""
    control = default_control_path(config)
    instances = config.vrrp
    if proxy_pid is not None:
        instances = with_proxy_tracking(instances, proxy_pid)
    pid = os.fork()
    if pid:
        return pid
    # Child: no proxy sockets, default signal handling, then the service.
    status = 0
    try:
        for fd in inherited_fds:
            try:
                os.close(fd)
            except OSError:
                pass
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1):
            signal.signal(signum, signal.SIG_DFL)
        os.makedirs(os.path.dirname(control), exist_ok=True)
        from haply.vrrp import service
        service.run(instances, control_path=control)
    except BaseException as exc:  # noqa: BLE001 - the child must never return into the proxy
        print(f"haply: vrrp: {exc}", file=sys.stderr)
        status = 1
    finally:
        os._exit(status)


def stop(pid: int) -> None:
    """SIGTERM (priority 0 hand-over) and wait for the exit, SIGKILL if it hangs."""
    try:
        watch = os.pidfd_open(pid)
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        ready, _, _ = select.select([watch], [], [], STOP_TIMEOUT)
        if not ready:
            os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    except ChildProcessError:
        pass
    finally:
        os.close(watch)
