"""The supervisor's view of the proxy: drain a server, read its state.

A supervisor runs in the process that owns the children. In a single-process
haply the proxy engine is right there (`LocalProxyControl`); under the master
process the engine lives in workers, and the master implements the same
Protocol over its worker channels. Either way state changes go through the
runtime API's own function, so they are logged and passed on like an
operator's `set server ... state`.
"""

from __future__ import annotations

from typing import Protocol

from haply.runtime.registry import DRAIN, MAINT, READY

ADMIN_STATES = {"ready": READY, "drain": DRAIN, "maint": MAINT}


class ProxyControl(Protocol):
    async def set_server_state(self, backend: str, server: str, state: str) -> None:
        """state: "ready" | "drain" | "maint" (as `set server B/S state`)."""

    async def server_status(self, backend: str, server: str) -> tuple[str, int]:
        """(operational "UP" | "DOWN" | "MAINT", current sessions)."""


class LocalProxyControl:
    """ProxyControl for an Engine in this process (haply.proxy.engine)."""

    def __init__(self, engine):
        self.engine = engine

    def _state(self, backend: str, server: str):
        state = self.engine.registry.get(backend, server)
        if state is None:
            raise KeyError(f"no server {backend}/{server}")
        return state

    async def set_server_state(self, backend: str, server: str, state: str) -> None:
        from haply.admin.runtime_api import set_admin

        admin = ADMIN_STATES.get(state)
        if admin is None:
            raise ValueError(f"server state must be ready, drain or maint, not {state!r}")
        engine = self.engine
        set_admin(engine, self._state(backend, server), admin, engine.loop.time())
        if engine.on_operator_change is not None:  # other workers follow
            engine.on_operator_change(f"set server {backend}/{server} state {state}")

    async def server_status(self, backend: str, server: str) -> tuple[str, int]:
        state = self._state(backend, server)
        operational = "MAINT" if state.admin == MAINT else state.operational
        return operational, state.current_sessions


__all__ = ["ADMIN_STATES", "LocalProxyControl", "ProxyControl"]
