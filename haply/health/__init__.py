"""Health checks: the rise/fall machine (state), probes, and their scheduler.

The proxy engine builds one `HealthChecker(registry, config, loop)`, registers its
session callbacks, calls `start()`, reports passive events with `observe()`, and
`await stop()`s it on shutdown.
"""

from haply.health.probes import CheckResult, Deadlines, HttpProbe, Target, TcpStep
from haply.health.scheduler import CheckSpec, HealthChecker, HealthEvent, spec_for
from haply.health.state import Health, Passive, Timing, Transition, slowstart_weight

__all__ = [
    "CheckResult", "CheckSpec", "Deadlines", "Health", "HealthChecker", "HealthEvent",
    "HttpProbe", "Passive", "Target", "TcpStep", "Timing", "Transition", "spec_for",
    "slowstart_weight",
]
