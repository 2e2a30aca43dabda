"""A bounded client loop in a thread: requests through a proxy while a test
reloads or restarts things, counting every failure with its reason."""

from __future__ import annotations

import http.client
import threading
import time
from dataclasses import dataclass, field


@dataclass
class LoopResult:
    ok: int = 0
    failures: list[str] = field(default_factory=list)
    backends: dict[str, int] = field(default_factory=dict)


class ClientLoop:
    """GET `path` on 127.0.0.1:port until stopped, at most `limit` requests
    and `seconds` seconds. keepalive=False opens a connection per request."""

    def __init__(self, port: int, path: str = "/", keepalive: bool = False,
                 limit: int = 200_000, seconds: float = 120.0) -> None:
        self.port = port
        self.path = path
        self.keepalive = keepalive
        self.limit = limit
        self.seconds = seconds
        self.result = LoopResult()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="client-loop")

    def __enter__(self) -> "ClientLoop":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def stop(self) -> LoopResult:
        self._stop.set()
        self._thread.join(timeout=self.seconds + 10)
        return self.result

    def _run(self) -> None:
        deadline = time.monotonic() + self.seconds
        conn = None
        result = self.result
        for _ in range(self.limit):
            if self._stop.is_set() or time.monotonic() > deadline:
                break
            try:
                if conn is None:
                    conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
                conn.request("GET", self.path,
                             headers={} if self.keepalive else {"Connection": "close"})
                response = conn.getresponse()
                response.read()
                if response.status != 200:
                    result.failures.append(f"status {response.status}")
                else:
                    result.ok += 1
                    name = response.getheader("X-Backend") or ""
                    result.backends[name] = result.backends.get(name, 0) + 1
                if not self.keepalive or response.getheader("Connection", "").lower() == "close":
                    conn.close()
                    conn = None
            except (OSError, http.client.HTTPException) as exc:
                result.failures.append(f"{type(exc).__name__}: {exc}")
                if conn is not None:
                    conn.close()
                conn = None
        if conn is not None:
            conn.close()
