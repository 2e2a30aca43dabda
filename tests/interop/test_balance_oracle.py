"""Differential test: haply's balancers against the real HAProxy 2.6.

For each case HAProxy runs `balance <algo>` in mode http in front of named
echo backends on 127.0.0.1; N sequential requests, each on its own
connection, record which server answered. The haply balancer for the same
server lines (weights, backup, disabled, option allbackups) picks N times;
the two sequences of names must be identical.

Every case must match exactly, static-rr's unevenly spaced cycles included
((4,2,1) gives 1 1 2 1 2 1 3; see haply/balance/static_rr.py).
"""

from __future__ import annotations


import pytest

from haply.balance import make_balancer
from haply.runtime.registry import MAINT
from tests.support.balance_servers import farm
from tests.support.haproxy_oracle import (
    echo_backends, free_port, haproxy_available, haproxy_config, http_get, run_haproxy,
)

pytestmark = [
    pytest.mark.oracle,
    pytest.mark.skipif(not haproxy_available(), reason="HAProxy 2.6 not installed"),
]

# Largest farm any case uses; one set of backends serves every case.
MAX_SERVERS = 5
# Requests per case: two full cycles, bounded so the file stays well under 20 s.
MAX_REQUESTS = 40


class Case:
    def __init__(self, algorithm: str, weights: tuple[int, ...], *, backups=(), disabled=(),
                 allbackups=False, arg=None, path="/", requests=None):
        self.algorithm = algorithm
        self.weights = weights
        self.backups = tuple(backups)
        self.disabled = tuple(disabled)
        self.allbackups = allbackups
        self.arg = arg
        self.path = path
        active = sum(w for i, w in enumerate(weights)
                     if i not in self.backups and i not in self.disabled) or sum(weights)
        self.requests = requests or min(2 * active + 1, MAX_REQUESTS)

    @property
    def id(self) -> str:
        parts = [self.algorithm + (f"({self.arg})" if self.arg else ""),
                 ",".join(map(str, self.weights))]
        if self.backups:
            parts.append("backup=" + ",".join(f"s{i + 1}" for i in self.backups))
        if self.disabled:
            parts.append("disabled=" + ",".join(f"s{i + 1}" for i in self.disabled))
        if self.allbackups:
            parts.append("allbackups")
        return "-".join(parts)


CASES = [
    # roundrobin: the brief's mixes, plus mixes whose first cycle differs
    # from the steady state in HAProxy (3,3,2 / 7,3,3,4) and larger ones
    Case("roundrobin", (1, 1, 1)),
    Case("roundrobin", (3, 2, 1)),
    Case("roundrobin", (5, 1)),
    Case("roundrobin", (2, 3, 4, 1)),
    Case("roundrobin", (1, 1, 1, 1), backups=[3]),
    Case("roundrobin", (3, 3, 2)),
    Case("roundrobin", (7, 3, 3, 4)),
    Case("roundrobin", (4, 7, 1, 4, 8), requests=MAX_REQUESTS),
    Case("roundrobin", (2, 0, 1)),
    Case("roundrobin", (1, 1, 2, 1, 3), disabled=[0, 1], backups=[2, 3, 4]),
    Case("roundrobin", (1, 1, 2, 1, 3), disabled=[0, 1], backups=[2, 3, 4], allbackups=True),
    # static-rr
    Case("static-rr", (1, 1, 1)),
    Case("static-rr", (3, 2, 1)),
    Case("static-rr", (5, 1)),
    Case("static-rr", (2, 3, 4, 1)),
    Case("static-rr", (1, 1, 1, 1), backups=[3]),
    Case("static-rr", (3, 3, 2)),
    Case("static-rr", (2, 5)),
    Case("static-rr", (1, 2, 3)),
    Case("static-rr", (4, 2, 1)),
    Case("static-rr", (10, 1, 1), requests=24),
    Case("static-rr", (1, 2, 1, 3), disabled=[0], allbackups=True, backups=[1, 2, 3]),
    # leastconn with sequential requests: equal loads rotate in server order
    Case("leastconn", (1, 1, 1)),
    Case("leastconn", (3, 2, 1)),
    # first without maxconn: always the first server
    Case("first", (1, 1, 1)),
    # hashing without the hashed value falls back to round robin
    Case("url_param", (3, 2, 1), arg="id", path="/no/param?x=1"),
    Case("hdr", (1, 2, 3), arg="x-user"),
]

def haproxy_sequence(case: Case, backends) -> list[str]:
    lines = []
    for i, weight in enumerate(case.weights):
        words = [f"server s{i + 1} {backends[i].address} weight {weight}"]
        if i in case.backups:
            words.append("backup")
        if i in case.disabled:
            words.append("disabled")
        lines.append("    " + " ".join(words))
    balance = case.algorithm
    if case.algorithm == "hdr":
        balance = f"hdr({case.arg})"
    elif case.arg:
        balance = f"{case.algorithm} {case.arg}"
    port = free_port()
    config = haproxy_config(
        f"listen app\n    bind 127.0.0.1:{port}\n    balance {balance}\n"
        + ("    option allbackups\n" if case.allbackups else "")
        + "\n".join(lines) + "\n")
    with run_haproxy(config):
        return [http_get(port, case.path).backend for _ in range(case.requests)]


def haply_sequence(case: Case) -> list[str]:
    registry, states = farm(case.weights, backups=case.backups)
    for i in case.disabled:
        registry.set_admin(states[i], MAINT, 0.0)
    balancer = make_balancer(case.algorithm, states, arg=case.arg, allbackups=case.allbackups)
    out = []
    for _ in range(case.requests):
        server = balancer.pick(None)
        assert server is not None
        # each request ends before the next starts, as in the HAProxy run
        server.current_sessions += 1
        balancer.connection_started(server)
        server.current_sessions -= 1
        balancer.connection_ended(server)
        out.append(server.name)
    return out


@pytest.fixture(scope="module")
def backends():
    with echo_backends([f"s{i + 1}" for i in range(MAX_SERVERS)]) as started:
        yield started


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_same_sequence_as_haproxy(case, backends):
    expected = haproxy_sequence(case, backends)
    got = haply_sequence(case)
    assert got == expected


# ------------------------------------------------------------------ hash keys

# Client addresses on the loopback (any 127.x.y.z can be a source on Linux).
SOURCES = [f"127.{i % 5}.{i * 3 % 7}.{i * 11 % 250 + 1}" for i in range(20)]
PATHS = [f"/v2.1/servers/{i}/action" for i in range(12)] + ["/", "/v3/auth/tokens", "/a?b=1", "/a?b=2"]
HASH_CASES = [
    # (balance, hash-type, weights)
    ("uri", "map-based", (1, 1, 1)),
    ("uri", "map-based", (2, 3, 2)),
    ("uri", "map-based djb2", (2, 3, 2)),
    ("uri", "map-based crc32", (1, 2)),
    ("uri", "map-based sdbm avalanche", (2, 3, 2)),
    ("uri whole", "map-based", (1, 1, 1)),
    ("url_param id", "map-based djb2 avalanche", (1, 1, 1)),
    ("hdr(x-user)", "map-based", (3, 1, 2)),
    ("source", "map-based", (1, 1, 1)),
    ("source", "map-based", (2, 3, 2, 1)),
    ("source", "map-based crc32 avalanche", (2, 3, 2)),
]


def answered(port: int, balance: str) -> list[str]:
    if balance == "source":
        return [http_get(port, source=source).backend for source in SOURCES]
    if balance.startswith("url_param"):
        return [http_get(port, f"/servers?id={i}&x=1").backend for i in range(16)]
    if balance.startswith("hdr"):
        return [http_get(port, headers={"X-User": f"user-{i}"}).backend for i in range(16)]
    return [http_get(port, path).backend for path in PATHS]


@pytest.mark.parametrize("balance,hash_type,weights", HASH_CASES,
                         ids=[f"{b}-{h}-{','.join(map(str, w))}" for b, h, w in HASH_CASES])
def test_same_server_for_the_same_key_as_haproxy(balance, hash_type, weights, backends):
    """haply maps keys to servers as HAProxy does with map-based hashing, so
    either may serve a client that the other served before."""
    from tests.support.haply_process import PROXIES

    servers = "".join(f"    server s{i + 1} {backends[i].address} weight {weight}\n"
                      for i, weight in enumerate(weights))
    results = {}
    for name, binary in PROXIES.items():
        port = free_port()
        config = haproxy_config(f"listen app\n    bind 127.0.0.1:{port}\n    balance {balance}\n"
                                f"    hash-type {hash_type}\n{servers}")
        with run_haproxy(config, binary=binary):
            results[name] = answered(port, balance)
    assert results["haply"] == results["haproxy"]
    assert len(set(results["haply"])) > 1  # the keys do spread
