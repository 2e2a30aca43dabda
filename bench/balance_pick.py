"""Micro-benchmark: cost of one Balancer.pick() per algorithm.

    python bench/balance_pick.py [--number N]

Times pick() with timeit for each algorithm on farms of 3 and 100 servers
(weights 1..4, no server full), and prints nanoseconds per pick. It is a
measurement, not a test: nothing fails; compare runs on the same machine.
For leastconn each pick is paired with connection_started/ended, as the proxy
would call them, so the number is the cost of a whole request's balancing.
"""

from __future__ import annotations

import argparse
import os
import sys
import timeit

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from haply.balance import make_balancer  # noqa: E402
from haply.config.model import Proxy, Server  # noqa: E402
from haply.runtime.registry import Registry  # noqa: E402

CASES = [
    ("roundrobin", None, "map-based"),
    ("static-rr", None, "map-based"),
    ("leastconn", None, "map-based"),
    ("first", None, "map-based"),
    ("source", None, "map-based"),
    ("source", None, "consistent"),
    ("uri", None, "consistent"),
    ("url_param", "id", "map-based"),
    ("hdr", "x-user", "map-based"),
    ("random", None, "map-based"),
]


class Key:
    __slots__ = ("client_ip", "path", "uri", "query", "headers")

    def __init__(self) -> None:
        self.client_ip = "192.0.2.17"
        self.path = "/v3/auth/tokens"
        self.uri = "/v3/auth/tokens?id=42"
        self.query = "id=42"
        self.headers = {"x-user": "alice", "host": "keystone"}

    def header(self, name: str) -> list[str]:
        value = self.headers.get(name)
        return [] if value is None else [value]


def states(n: int):
    servers = tuple(Server(name=f"s{i}", host="127.0.0.1", port=8000 + i, weight=1 + i % 4)
                    for i in range(n))
    return Registry().add_backend(Proxy(name="bench", kind="backend", servers=servers))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--number", type=int, default=20000, help="picks per measurement")
    args = parser.parse_args()
    key = Key()
    print(f"{'algorithm':<28}{'3 servers':>12}{'100 servers':>14}   (ns per pick, best of 3)")
    for algorithm, arg, hash_type in CASES:
        row = []
        for n in (3, 100):
            balancer = make_balancer(algorithm, states(n), arg=arg, hash_type=hash_type)
            if algorithm == "leastconn":
                def one(b=balancer):
                    s = b.pick(key)
                    s.current_sessions += 1
                    b.connection_started(s)
                    s.current_sessions -= 1
                    b.connection_ended(s)
            else:
                def one(b=balancer):
                    b.pick(key)
            best = min(timeit.repeat(one, number=args.number, repeat=3))
            row.append(best / args.number * 1e9)
        label = algorithm + (f"({arg})" if arg else "") + ("/consistent" if hash_type == "consistent" else "")
        print(f"{label:<28}{row[0]:>12.0f}{row[1]:>14.0f}")


if __name__ == "__main__":
    main()
