"""When on-marked-down / on-marked-up close sessions: the cases read off
HAProxy 2.6 (tests/interop/test_track_shutdown_oracle.py runs them beside it)."""

from __future__ import annotations

from haply.config.model import Config, Proxy, Server
from haply.health.shutdown import (
    SHUTDOWN_BACKUP_SESSIONS, SHUTDOWN_SESSIONS, SessionShutdown, shutdown_for,
)
from haply.runtime.registry import DOWN, DRAIN, MAINT, READY, UP, Registry

DOWN_OPTION = Server("s", "127.0.0.1", 80, on_marked_down="shutdown-sessions")
UP_OPTION = Server("s", "127.0.0.1", 80, on_marked_up="shutdown-backup-sessions")


def test_going_down_or_up_with_and_without_the_options():
    assert shutdown_for(DOWN_OPTION, False, False, True) == SHUTDOWN_SESSIONS
    assert shutdown_for(DOWN_OPTION, False, True, True) is None  # DOWN, then in maintenance
    assert shutdown_for(DOWN_OPTION, False, True, False) is None
    assert shutdown_for(UP_OPTION, False, True, False) == SHUTDOWN_BACKUP_SESSIONS
    assert shutdown_for(UP_OPTION, True, True, False) is None  # a backup has no backups to cut
    assert shutdown_for(UP_OPTION, False, False, True) is None
    assert shutdown_for(Server("s", "127.0.0.1", 80), False, False, True) is None


def setup():
    config = Config(proxies=[Proxy("b", "backend", servers=[
        Server("a", "127.0.0.1", 80, track="c", on_marked_down="shutdown-sessions",
               on_marked_up="shutdown-backup-sessions"),
        Server("plain", "127.0.0.1", 80),
        Server("bk", "127.0.0.1", 80, backup=True, on_marked_down="shutdown-sessions"),
        Server("c", "127.0.0.1", 80, check=True)])])
    registry = Registry()
    registry.add_backend(config.proxies[0])
    later = []
    shutdown = SessionShutdown(registry, config, lambda *call: later.append(call))
    shutdown.sessions = lambda state: ("sessions", state.name)
    shutdown.backup_sessions = lambda state: ("backups of", state.name)
    shutdown.start()
    return registry, later, shutdown


def done(later) -> list:
    calls = [function(*args) for function, *args in later]
    later.clear()
    return calls


def test_every_way_of_stopping_and_coming_back_counts():
    registry, later, _ = setup()
    a, plain = registry.get("b", "a"), registry.get("b", "plain")
    registry.set_operational(a, DOWN, 1.0)  # its checks, or the server it tracks
    registry.set_operational(plain, DOWN, 1.0)
    assert done(later) == [("sessions", "a")]
    registry.set_admin(a, MAINT, 2.0)  # already stopped: nothing more
    registry.set_operational(a, UP, 3.0)
    assert done(later) == []
    registry.set_admin(a, READY, 4.0)  # out of maintenance, UP: the backups lose theirs
    assert done(later) == [("backups of", "a")]
    registry.set_admin(a, DRAIN, 5.0)
    registry.set_admin(a, READY, 6.0)
    assert done(later) == []
    registry.set_admin(a, MAINT, 7.0, via="b/c")  # maintenance inherited through track
    assert done(later) == [("sessions", "a")]


def test_nothing_runs_before_the_change_is_announced():
    """The callbacks are handed to `later` (the loop's call_soon), never run
    inside the registry's notice: the log line first counts the sessions."""
    registry, later, shutdown = setup()
    ran = []
    shutdown.sessions = lambda state: ran.append(state.name)
    registry.set_admin(registry.get("b", "bk"), MAINT, 1.0)
    assert ran == [] and len(later) == 1
    done(later)
    assert ran == ["bk"]
