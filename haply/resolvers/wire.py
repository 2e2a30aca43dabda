"""DNS messages in and out, through dnspython: a query for A or AAAA, and what
an answer says in the resolution's terms (haply.resolvers.resolution).

Pure: bytes in, bytes or a tuple out.
"""

from __future__ import annotations

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdatatype

from haply.resolvers.resolution import NX, OTHER, REFUSED, VALID

# Every counter `show resolvers` prints, in its order (management guide 9.3).
COUNTERS = ("sent", "snd_error", "valid", "update", "cname", "cname_error", "any_err", "nx",
            "timeout", "refused", "other", "invalid", "too_big", "truncated", "outdated")


def query(host: str, qtype: str, query_id: int, payload: int) -> bytes:
    """A recursive query with EDNS0 announcing `payload` bytes."""
    message = dns.message.make_query(host, qtype, use_edns=0, payload=payload, id=query_id)
    return message.to_wire()


class Answer:
    """What a name server answered: the query it answers (id, name, type),
    the status, the addresses of the type asked, and the counter it counts in."""

    __slots__ = ("id", "name", "qtype", "status", "addresses", "counter")

    def __init__(self, query_id: int, name: str, qtype: str, status: str,
                 addresses: tuple[str, ...], counter: str) -> None:
        self.id, self.name, self.qtype = query_id, name, qtype
        self.status, self.addresses, self.counter = status, addresses, counter


def read(data: bytes) -> Answer | None:
    """The answer in a datagram, or None when it is not a DNS response."""
    try:
        message = dns.message.from_wire(data)
    except dns.exception.DNSException:
        return None
    if not message.flags & dns.flags.QR or len(message.question) != 1:
        return None
    question = message.question[0]
    name = question.name.to_text(omit_final_dot=True).lower()
    qtype = dns.rdatatype.to_text(question.rdtype)
    rcode = message.rcode()
    if message.flags & dns.flags.TC:
        return Answer(message.id, name, qtype, OTHER, (), "truncated")
    if rcode == dns.rcode.NXDOMAIN:
        return Answer(message.id, name, qtype, NX, (), "nx")
    if rcode == dns.rcode.REFUSED:
        return Answer(message.id, name, qtype, REFUSED, (), "refused")
    if rcode != dns.rcode.NOERROR:
        return Answer(message.id, name, qtype, OTHER, (), "other")
    addresses = tuple(rdata.address for rrset in message.answer if rrset.rdtype == question.rdtype
                      for rdata in rrset)
    cname = any(rrset.rdtype == dns.rdatatype.CNAME for rrset in message.answer)
    if addresses:
        return Answer(message.id, name, qtype, VALID, addresses, "valid")
    # no record of the type asked: HAProxy counts it with the other errors
    return Answer(message.id, name, qtype, OTHER, (), "cname_error" if cname else "any_err")


__all__ = ["Answer", "COUNTERS", "query", "read"]
