"""Dynamic server limits: `minconn`, `maxconn` and the backend's `fullconn` (no I/O).

HAProxy's manual ("minconn", "fullconn"): a server with both minconn and
maxconn "will always accept at least <minconn> connections, never more than
<maxconn>, and the limit will be on the ramp between both values when the
backend has less than <fullconn> concurrent connections". The ramp, as HAProxy
2.6 applies it (observed with `show stat`: 12 slow requests on two servers
`minconn 2 maxconn 10`, `fullconn 20`, leave each server at 2 and queue 8; the
first request to end lets its server take 6) is the backend's share of
fullconn applied to maxconn, truncated, and never below minconn:

    limit = maxconn                                   load >= fullconn
          = max(minconn, load * maxconn // fullconn)  otherwise

where load is every request (or TCP connection) on the backend at that moment,
queued or served, the one being placed included.

Without `fullconn`, HAProxy takes a tenth of the sum of the maxconn of the
frontends that may send to the backend (default_backend, use_backend and a
listen's own), rounded up and at least 1 (`haproxy -c` then `show stat`:
frontends of maxconn 95 and 1000 give 110; none gives 1). A frontend without
maxconn counts the global one.
"""

from __future__ import annotations

from haply.config.model import Config, Proxy

# fullconn's default: this fraction of the reaching frontends' maxconn (manual, "fullconn").
FULLCONN_DIVISOR = 10


def is_dynamic(minconn: int, maxconn: int) -> bool:
    """Whether minconn makes the limit move: set, and below maxconn (the parser
    already raised a maxconn below minconn to it, as HAProxy does)."""
    return 0 < minconn < maxconn


def dynamic_maxconn(minconn: int, maxconn: int, fullconn: int, load: int) -> int:
    """The limit in force for a server at this backend load."""
    if load >= fullconn or not is_dynamic(minconn, maxconn):
        return maxconn
    return max(minconn, load * maxconn // fullconn)


def fullconn_from(frontend_limits) -> int:
    """fullconn when not configured, from the maxconn of the frontends that
    can reach the backend."""
    total = sum(frontend_limits)
    return max(1, -(-total // FULLCONN_DIVISOR))


def reaches(frontend: Proxy, backend: str) -> bool:
    """Whether frontend may send to backend by name (a use_backend whose name
    is a log-format expression counts for none, as in HAProxy)."""
    return (frontend.default_backend == backend
            or any(switch.backend == backend for switch in frontend.backend_switches))


def backend_fullconn(config: Config, backend: Proxy, default_maxconn: int = 0) -> int:
    """backend's fullconn: its own, else derived from the frontends.
    default_maxconn: a frontend's maxconn when neither it nor the global
    section sets one (HAProxy derives it from the open-file limit)."""
    if backend.fullconn:
        return backend.fullconn
    fallback = config.global_.maxconn or default_maxconn
    return fullconn_from(frontend.maxconn or fallback for frontend in config.frontends
                         if reaches(frontend, backend.name))


__all__ = ["FULLCONN_DIVISOR", "backend_fullconn", "dynamic_maxconn", "fullconn_from", "is_dynamic",
           "reaches"]
