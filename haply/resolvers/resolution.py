"""The resolution of one server's host name, as a pure state machine.

A resolution starts every `timeout resolve` once the previous one ended. It
asks every name server of the section for the preferred record type (AAAA
for `resolve-prefer ipv6`, the default; A for ipv4):

- the first answer with addresses ends it: valid;
- when every name server answered with an error (NXDOMAIN, REFUSED, no
  record of that type, ...), the same name is asked once with the other type
  (A instead of AAAA, or the opposite); when that fails too, the try is over;
- a query that gets no answer at all within `timeout retry` is sent again
  with the same type (a timeout does not switch the type); one that got an
  error from some name server and silence from the others failed as above;
- a new try, with the preferred type, starts `timeout retry` after the
  previous one started; after `resolve_retries` tries the resolution ends
  with the last error (nx, refused, timeout or other).

What a server makes of the end is `verdict`: a valid answer gives it an
address (`choose_address`); an error is held for `hold <status>` after the
last valid answer before the server goes into maintenance.

No I/O and no clock: the caller passes `now` and sends the queries the
machine asks for (haply.resolvers.service).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

VALID, NX, REFUSED, TIMEOUT, OTHER = "valid", "nx", "refused", "timeout", "other"
TYPES = {"ipv6": "AAAA", "ipv4": "A"}
OTHER_TYPE = {"AAAA": "A", "A": "AAAA"}
# verdicts
KEEP, MOVE, MAINTENANCE = "keep", "move", "maintenance"


@dataclass(frozen=True, slots=True)
class Query:
    """Send this query to every name server; answers carry `serial` back."""

    qtype: str
    serial: int


@dataclass(frozen=True, slots=True)
class Outcome:
    """The end of a resolution: VALID with the addresses, or an error status."""

    status: str
    addresses: tuple[str, ...] = ()


class Resolution:
    """One host name resolved through one resolvers section.

    `poll(now)` and `answer(...)` return what to do: a Query to send, an
    Outcome, or None; `wake_at()` says when poll has something to do next.
    """

    def __init__(self, host: str, prefer: str, nameservers: int, retries: int,
                 timeout_resolve: float, timeout_retry: float, now: float) -> None:
        self.host = host
        self.preferred = TYPES[prefer]
        self.nameservers = max(1, nameservers)
        self.retries = retries
        self.timeout_resolve = timeout_resolve
        self.timeout_retry = timeout_retry
        # The address in use at start counts as valid then: a server that
        # started with one keeps it for the hold periods like any other.
        self.last_valid = now
        self.next_start = now  # the first resolution starts at once
        self.running = False
        self.qtype = self.preferred
        self.serial = 0
        self.tries_left = 0
        self.switched = False  # this try already asked the other type
        self.try_started = 0.0
        self.deadline = 0.0  # the query in flight times out then; inf: none in flight
        self.retry_at = 0.0  # between two tries: the next starts then
        self.errors = 0  # error answers to the query in flight
        self.last_error = OTHER

    # -- driving

    def wake_at(self) -> float:
        if not self.running:
            return self.next_start
        return min(self.deadline, self.retry_at) if self.waiting_retry else self.deadline

    @property
    def waiting_retry(self) -> bool:
        return self.running and self.deadline == float("inf")

    def poll(self, now: float) -> Query | Outcome | None:
        if not self.running:
            if now < self.next_start:
                return None
            self.running = True
            self.tries_left = self.retries
            return self._new_try(now)
        if self.waiting_retry:
            return self._new_try(now) if now >= self.retry_at else None
        if now < self.deadline:
            return None
        # The query in flight got no valid answer in time: with an error from
        # some name server it failed as if all had answered so (manual 5.3.2:
        # "NX domain and ... a timeout, then HAProxy retries the query with a
        # new type"); with none, it timed out.
        if self.errors:
            return self._failed(now)
        self.last_error = TIMEOUT
        return self._try_over(now, resend=True)

    def answer(self, now: float, serial: int, status: str,
               addresses: tuple[str, ...] = ()) -> Query | Outcome | None:
        """A name server's answer to query `serial`: VALID with its addresses
        (of the type asked), or an error status. Answers to a query that is
        no longer in flight are ignored (see `current`)."""
        if not self.current(serial):
            return None
        if status == VALID and addresses:
            self.running = False
            self.last_valid = now
            self.next_start = now + self.timeout_resolve
            return Outcome(VALID, tuple(addresses))
        self.errors += 1
        self.last_error = OTHER if status == VALID else status
        if self.errors < self.nameservers:
            return None  # another name server may still answer well
        return self._failed(now)

    def current(self, serial: int) -> bool:
        return self.running and serial == self.serial and self.deadline != float("inf")

    # -- steps

    def _failed(self, now: float) -> Query | Outcome | None:
        """The query failed with an error: ask the other type, or end the try."""
        if not self.switched:
            self.switched = True
            self.qtype = OTHER_TYPE[self.qtype]
            return self._send(now)
        return self._try_over(now, resend=False)

    def _new_try(self, now: float) -> Query:
        self.qtype = self.preferred
        self.switched = False
        self.try_started = now
        return self._send(now)

    def _send(self, now: float) -> Query:
        self.serial += 1
        self.errors = 0
        self.deadline = now + self.timeout_retry
        return Query(self.qtype, self.serial)

    def _try_over(self, now: float, resend: bool) -> Query | Outcome | None:
        self.tries_left -= 1
        if self.tries_left <= 0:
            self.running = False
            self.deadline = 0.0
            self.next_start = now + self.timeout_resolve
            return Outcome(self.last_error)
        if resend:  # after a timeout the same type is asked again at once
            self.try_started = now
            return self._send(now)
        self.deadline = float("inf")
        self.retry_at = self.try_started + self.timeout_retry
        return self._new_try(now) if now >= self.retry_at else None


def verdict(outcome: Outcome, now: float, last_valid: float, hold: float) -> str:
    """MOVE (to an address of the answer), KEEP (an error within its hold
    period), or MAINTENANCE (an error with no valid answer for longer than
    `hold <status>`)."""
    if outcome.status == VALID:
        return MOVE
    return KEEP if now - last_valid <= hold else MAINTENANCE


def choose_address(addresses: tuple[str, ...], current: str | None, prefer: str = "ipv6",
                   networks: tuple[str, ...] = (), taken: frozenset[str] = frozenset()) -> str | None:
    """The address a server takes from an answer: its current one while the
    answer still has it; else the best by, in order, the preferred family and
    a `resolve-net` network, among those no other server has (`taken`, empty
    with allow-dup-ip); None when every one is taken, as HAProxy 2.6 leaves
    such a server as it is (observed: without an address, in maintenance).

    Among equals, the first after the answer's first record, wrapping around,
    as HAProxy 2.6 took them in the simplest cases observed (.2 of [.3, .2],
    .6 of [.5, .6, .7]). HAProxy's own pick among several new addresses also
    depends on the records it cached from earlier answers (after being at .2:
    .6 of [.3, .5, .6]; back to .2 of [.3, .2, .5] after a maintenance), a
    history haply does not reproduce."""
    if current in addresses:
        return current
    family = 6 if prefer == "ipv6" else 4
    nets = [ipaddress.ip_network(n) for n in networks]

    def score(text: str) -> tuple[bool, bool]:
        ip = ipaddress.ip_address(text)
        return ip.version == family, any(ip.version == n.version and ip in n for n in nets)

    addresses = tuple(a for a in addresses if a not in taken)
    if not addresses:
        return None
    best = max(score(a) for a in addresses)
    rotated = addresses[1:] + addresses[:1]
    return next(a for a in rotated if score(a) == best)


__all__ = ["KEEP", "MAINTENANCE", "MOVE", "NX", "OTHER", "Outcome", "Query", "REFUSED", "Resolution",
           "TIMEOUT", "VALID", "choose_address", "verdict"]
