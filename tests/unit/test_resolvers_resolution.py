"""The resolution state machine (time passed in), the choice of an address,
and the DNS messages through dnspython."""

from __future__ import annotations

import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
import dns.rrset

from haply.resolvers import wire
from haply.resolvers.resolution import (KEEP, MAINTENANCE, MOVE, NX, OTHER, REFUSED, TIMEOUT, VALID, Outcome,
                                        Query, Resolution, choose_address, verdict)


def machine(prefer="ipv6", nameservers=1, retries=3, resolve=1.0, retry=0.5, now=0.0) -> Resolution:
    return Resolution("app.test", prefer, nameservers, retries, resolve, retry, now)


def test_a_valid_answer_ends_the_resolution_and_the_next_starts_a_period_later():
    r = machine()
    assert r.poll(0.0) == Query("AAAA", 1)  # ipv6 first by default
    assert r.poll(0.2) is None
    assert r.answer(0.3, 1, VALID, ("::1",)) == Outcome(VALID, ("::1",))
    assert (r.last_valid, r.wake_at()) == (0.3, 1.3)
    assert r.poll(1.2) is None
    assert r.poll(1.3) == Query("AAAA", 2)


def test_an_error_asks_the_other_type_at_once_and_ipv4_is_asked_first_when_preferred():
    r = machine(prefer="ipv4")
    assert r.poll(0.0) == Query("A", 1)
    assert r.answer(0.01, 1, OTHER) == Query("AAAA", 2)  # no A record: ask AAAA
    assert r.answer(0.02, 2, VALID, ("::1",)) == Outcome(VALID, ("::1",))


def test_failed_tries_are_spaced_by_timeout_retry_then_the_last_error_ends_it():
    r = machine(retries=2, retry=0.5)
    assert r.poll(0.0) == Query("AAAA", 1)
    assert r.answer(0.01, 1, NX) == Query("A", 2)
    assert r.answer(0.02, 2, NX) is None  # the try is over; the next one starts at 0.5
    assert r.wake_at() == 0.5
    assert r.poll(0.4) is None
    assert r.poll(0.5) == Query("AAAA", 3)
    assert r.answer(0.51, 3, REFUSED) == Query("A", 4)
    assert r.answer(0.52, 4, NX) == Outcome(NX)
    assert r.wake_at() == 1.52  # a new resolution a `timeout resolve` later
    assert r.last_valid == 0.0


def test_a_timeout_resends_the_same_type_and_ends_as_timeout():
    r = machine(retries=2, retry=0.5)
    assert r.poll(0.0) == Query("AAAA", 1)
    assert r.wake_at() == 0.5
    assert r.poll(0.5) == Query("AAAA", 2)  # a timeout does not switch the type
    assert r.answer(0.6, 1, VALID, ("::1",)) is None  # the answer to the first query is outdated
    assert r.poll(1.0) == Outcome(TIMEOUT)


def test_every_nameserver_must_fail_before_the_query_fails():
    r = machine(nameservers=2)
    assert r.poll(0.0) == Query("AAAA", 1)
    assert r.answer(0.01, 1, NX) is None  # the other may still answer well
    assert r.answer(0.02, 1, VALID, ("::2",)) == Outcome(VALID, ("::2",))
    r = machine(nameservers=2)
    r.poll(0.0)
    r.answer(0.01, 1, NX)
    assert r.answer(0.02, 1, REFUSED) == Query("A", 2)


def test_an_error_and_a_silence_fail_the_query_at_timeout_retry():
    r = machine(nameservers=2, retries=1)
    r.poll(0.0)
    assert r.answer(0.01, 1, OTHER) is None  # no AAAA; the other name server never answers
    assert r.poll(0.5) == Query("A", 2)  # the other type, as after errors from both
    assert r.answer(0.51, 2, REFUSED) is None
    assert r.poll(1.0) == Outcome(REFUSED)


def test_verdict_holds_errors_for_their_period():
    assert verdict(Outcome(VALID, ("127.0.0.1",)), 5.0, 0.0, 0.0) == MOVE
    assert verdict(Outcome(NX), 5.0, 4.0, 1.0) == KEEP
    assert verdict(Outcome(NX), 5.0, 3.9, 1.0) == MAINTENANCE


def test_choose_address():
    # the current address is kept while the answer has it
    assert choose_address(("10.0.0.1", "10.0.0.2"), "10.0.0.2") == "10.0.0.2"
    # among equals, the record after the first (HAProxy 2.6 rotates its list once)
    assert choose_address(("10.0.0.3", "10.0.0.2"), None) == "10.0.0.2"
    assert choose_address(("10.0.0.5", "10.0.0.6", "10.0.0.7"), "10.0.0.1") == "10.0.0.6"
    assert choose_address(("10.0.0.5",), None) == "10.0.0.5"
    # a resolve-net network first, then an address no other server has
    assert choose_address(("10.0.0.5", "192.168.1.5", "10.0.0.7"), None,
                          networks=("192.168.0.0/16",)) == "192.168.1.5"
    assert choose_address(("10.0.0.5", "10.0.0.6", "10.0.0.7"), None,
                          taken=frozenset({"10.0.0.6", "10.0.0.7"})) == "10.0.0.5"
    # all taken: none (the server stays as it is)
    assert choose_address(("10.0.0.5",), None, taken=frozenset({"10.0.0.5"})) is None
    # the preferred family first
    assert choose_address(("::1", "10.0.0.5"), None, prefer="ipv4") == "10.0.0.5"


def test_wire_query_and_answers():
    data = wire.query("app.test", "AAAA", 4242, 1232)
    query = dns.message.from_wire(data)
    assert (query.id, query.question[0].name.to_text(), query.question[0].rdtype, query.payload) == (
        4242, "app.test.", dns.rdatatype.AAAA, 1232)
    assert query.flags & dns.flags.RD

    def answered(rcode=dns.rcode.NOERROR, records=(), flags=0):
        response = dns.message.make_response(query)
        response.set_rcode(rcode)
        response.flags |= flags
        if records:
            response.answer.append(dns.rrset.from_text_list("app.test.", 1, "IN", "AAAA", list(records)))
        return wire.read(response.to_wire(want_shuffle=False))

    valid = answered(records=("::1", "::2"))
    assert (valid.id, valid.name, valid.qtype, valid.status, valid.addresses, valid.counter) == (
        4242, "app.test", "AAAA", VALID, ("::1", "::2"), "valid")
    assert (answered(dns.rcode.NXDOMAIN).status, answered(dns.rcode.NXDOMAIN).counter) == (NX, "nx")
    assert answered(dns.rcode.REFUSED).status == REFUSED
    assert (answered(dns.rcode.SERVFAIL).status, answered(dns.rcode.SERVFAIL).counter) == (OTHER, "other")
    assert (answered().status, answered().counter) == (OTHER, "any_err")  # no record of the type
    assert answered(flags=dns.flags.TC).counter == "truncated"
    assert wire.read(b"\x00junk") is None
    assert wire.read(data) is None  # a query, not an answer


def test_log_messages_in_haproxy_words():
    from haply.logs import events
    from haply.runtime.registry import DOWN, ServerState

    def server(name, operational="UP", backup=False):
        return ServerState("be", name, "app.test", 80, 1, backup, 0, operational=operational)

    s, other, spare = server("s"), server("t"), server("b", backup=True)
    assert events.dns_address_message(s, None, "10.0.0.1", "dns/ns1") == (
        "notice", "be/s changed its IP from (none) to 10.0.0.1 by dns/ns1.")
    assert events.dns_address_message(s, "10.0.0.1", "10.0.0.2", "DNS cache") == (
        "notice", "be/s changed its IP from 10.0.0.1 to 10.0.0.2 by DNS cache.")
    assert events.dns_maintenance_message(s, "nx", [s, other, spare]) == (
        "alert", "Server be/s is going DOWN for maintenance (DNS NX status). 1 active and 1 backup "
        "servers left. 0 sessions active, 0 requeued, 0 remaining in queue.")
    assert events.dns_maintenance_message(s, "other", [s, spare])[1].startswith(
        "Server be/s is going DOWN for maintenance (unspecified DNS error). 0 active and 1 backup "
        "servers left. Running on backup.")
    assert events.dns_maintenance_message(server("s", DOWN), "timeout", [s]) == (
        "notice", "Server be/s was DOWN and now enters maintenance (DNS timeout status).")
    assert events.dns_ready_messages(s) == [
        ("notice", "Server be/s ('app.test') is UP/READY (resolves again)."),
        ("notice", "Server be/s administratively READY thanks to valid DNS answer.")]
