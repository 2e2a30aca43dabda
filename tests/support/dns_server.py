"""A small authoritative DNS server on loopback UDP, answering from a table the
test changes while the proxies run.

    with dns_server({"app.test": ["127.0.0.2"]}) as dns:
        ...                                  # nameserver dns 127.0.0.1:{dns.port}
        dns.set("app.test", ["127.0.0.3"])   # the next answers carry the new address
        dns.set("app.test", NXDOMAIN)        # the name no longer exists
        dns.set("app.test", SILENT)          # queries get no answer at all (timeouts)
        dns.set("app.test", REFUSED)
        dns.set("app.test", SERVFAIL)

Records go out in the order the table gives them (dnspython shuffles them
unless told not to). A and AAAA queries are answered from the table (an IPv6 address answers AAAA,
an IPv4 one A; a name with addresses of the other family only gets an empty
answer, NOERROR); a name not in the table gets NXDOMAIN. Every query is kept
in `queries` as (time, name, type) so a test can count the resolutions.
dnspython parses the queries and builds the answers.
"""

from __future__ import annotations

import contextlib
import ipaddress
import socket
import threading
import time
from typing import Iterator

import dns.message
import dns.rcode
import dns.rdatatype
import dns.rrset

NXDOMAIN = "NXDOMAIN"
REFUSED = "REFUSED"
SERVFAIL = "SERVFAIL"
SILENT = "SILENT"
TTL = 1


class DnsServer:
    def __init__(self, table: dict, host: str = "127.0.0.1") -> None:
        self.table = {name.rstrip(".").lower(): value for name, value in table.items()}
        self.queries: list[tuple[float, str, str]] = []
        self._lock = threading.Lock()
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._sock.bind((host, 0))
        self._sock.settimeout(0.1)
        self.host, self.port = self._sock.getsockname()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="dns-server", daemon=True)

    def set(self, name: str, value) -> None:
        """value: a list of addresses, NXDOMAIN, REFUSED, SERVFAIL or SILENT."""
        with self._lock:
            self.table[name.rstrip(".").lower()] = value

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join(timeout=2)
        self._sock.close()

    def _serve(self) -> None:
        while not self._stopping.is_set():
            try:
                data, peer = self._sock.recvfrom(4096)
            except socket.timeout:
                continue
            except OSError:
                return
            try:
                query = dns.message.from_wire(data)
            except Exception:  # noqa: BLE001 - a datagram that is not DNS gets no answer
                continue
            answer = self._answer(query)
            if answer is not None:
                with contextlib.suppress(OSError):
                    self._sock.sendto(answer.to_wire(want_shuffle=False), peer)

    def _answer(self, query: dns.message.Message):
        question = query.question[0]
        name = question.name.to_text().rstrip(".").lower()
        rdtype = question.rdtype
        with self._lock:
            self.queries.append((time.monotonic(), name, dns.rdatatype.to_text(rdtype)))
            value = self.table.get(name, NXDOMAIN)
        if value == SILENT:
            return None
        response = dns.message.make_response(query)
        response.flags |= dns.flags.AA
        if value == NXDOMAIN:
            response.set_rcode(dns.rcode.NXDOMAIN)
        elif value == REFUSED:
            response.set_rcode(dns.rcode.REFUSED)
        elif value == SERVFAIL:
            response.set_rcode(dns.rcode.SERVFAIL)
        else:
            family = 6 if rdtype == dns.rdatatype.AAAA else 4
            addresses = [a for a in value if ipaddress.ip_address(a).version == family]
            if addresses and rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA):
                response.answer.append(dns.rrset.from_text_list(
                    question.name, TTL, "IN", dns.rdatatype.to_text(rdtype), addresses))
        return response


@contextlib.contextmanager
def dns_server(table: dict, host: str = "127.0.0.1") -> Iterator[DnsServer]:
    server = DnsServer(table, host)
    server.start()
    try:
        yield server
    finally:
        server.stop()


__all__ = ["DnsServer", "NXDOMAIN", "REFUSED", "SERVFAIL", "SILENT", "dns_server"]
