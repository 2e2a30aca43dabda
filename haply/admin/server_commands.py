"""Runtime API commands on a server's agent and sessions: `disable agent`,
`enable agent`, `shutdown sessions server`, and on one session: `shutdown
session`, answered in HAProxy 2.6's words (admin level).
"""

from __future__ import annotations

from haply.admin.answers import CommandError

NEED_SERVER = "Require 'backend/server'."


def _server(api, args: list[str]):
    if not args:
        raise CommandError(NEED_SERVER)
    return api.server(args[0])


def check_toggle(enabled: bool, what: str, configured, switch):
    """`disable|enable health|agent <bk>/<srv>`: configured(health, state)
    says whether the server has that check, switch(health, state, enabled)
    turns it on or off; what names it in HAProxy's refusal."""
    def run(api, args: list[str]) -> str:
        state = _server(api, args)
        health = api.engine.health
        if health is None or not configured(health, state):
            if not enabled:
                return ""  # nothing to disable: HAProxy answers nothing either
            raise CommandError(f"{what} was not configured on this server, cannot enable.")
        switch(health, state, enabled)
        return ""
    return run


def _agent_toggle(enabled: bool):
    return check_toggle(enabled, "Agent",
                        lambda health, state: health.has_agent(state.backend, state.name),
                        lambda health, state, on: health.set_agent_enabled(state.backend, state.name, on))


def server_of(session):
    """The server a client session is using now, if any."""
    requests = getattr(session, "requests", None)
    if requests is not None:
        return requests[0].server if requests else None
    return getattr(session, "server", None)


def cmd_shutdown_sessions_server(api, args: list[str]) -> str:
    state = _server(api, args)
    for session in [s for s in api.engine.sessions if server_of(s) is state]:
        session.close()
    return ""


SESSION_EXPECTED = "Session pointer expected (use 'show sess')."


def cmd_shutdown_session(api, args: list[str]) -> str:
    """The id is the one `show sess` prints first (this process's sessions)."""
    try:
        wanted = int(args[0], 16) if args else 0
    except ValueError:
        wanted = 0
    if not wanted:
        raise CommandError(SESSION_EXPECTED)
    session = next((s for s in api.engine.sessions if id(s) == wanted), None)
    if session is None:
        raise CommandError("No such session (use 'show sess').")
    session.close()
    return ""


COMMANDS = [
    ("disable agent", "admin", "disable agent", "disable agent checks", _agent_toggle(False)),
    ("enable agent", "admin", "enable agent", "enable agent checks", _agent_toggle(True)),
    ("shutdown session", "admin", "shutdown session [id]", "kill a specific session",
     cmd_shutdown_session),
    ("shutdown sessions server", "admin", "shutdown sessions server <bk>/<srv>",
     "kill sessions on a server", cmd_shutdown_sessions_server),
]
# (`disable agent` and `enable agent` are among runtime_api's own.) A session
# lives in one worker: `shutdown session` is not passed on.
CHANGES = frozenset({("shutdown", "sessions", "server")})
