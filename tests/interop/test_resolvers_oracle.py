"""Runtime DNS resolution (`resolvers`) against HAProxy 2.6 on the same
configuration: a DNS server of the test's own on loopback UDP
(tests.support.dns_server) answers from a table the test changes, and both
proxies must move the server, take it into maintenance and back, at the same
steps, with the same addresses, states and log lines.

Each proxy gets a DNS server of its own with the same starting table, and
goes through the same changes; after each change the test waits (bounded)
for the proxy to settle before it reads `show servers state`, `show stat`
and an HTTP answer.
"""

from __future__ import annotations

import os
import tempfile
import time

import pytest

from tests.support.admin_cli import cli, wait_socket
from tests.support.dns_server import NXDOMAIN, REFUSED, SERVFAIL, SILENT, dns_server
from tests.support.haply_process import PROXIES
from tests.support.haproxy_oracle import EchoBackend, free_port, haproxy_available, http_get, run_haproxy

pytestmark = pytest.mark.skipif(not haproxy_available(), reason="HAProxy oracle not installed")

NAME = "app.test"
SETTLE = 3.0  # the longest a step may take: a hold period and a few resolutions


def config(sock: str, port: int, dns_port: int, backend_port: int, options: str = "") -> str:
    return f"""global
    maxconn 100
    stats socket {sock} level admin
    log stdout format raw local0
resolvers dns
    nameserver ns1 127.0.0.1:{dns_port}
    resolve_retries 2
    timeout resolve 100ms
    timeout retry 100ms
    hold nx 200ms
    hold timeout 200ms
    hold refused 200ms
    hold other 200ms
defaults
    mode http
    log global
    timeout connect 2s
    timeout client 5s
    timeout server 5s
frontend fe
    bind 127.0.0.1:{port}
    default_backend be
backend be
    server s {NAME}:{backend_port} resolvers dns resolve-prefer ipv4 init-addr none{options}
    server fixed 127.0.0.4:{backend_port} disabled
"""


def server_row(sock: str) -> tuple[str, str, str, str]:
    """(srv_addr, srv_op_state, srv_admin_state, the show stat status) of be/s."""
    rows = [line.split() for line in cli(sock, "show servers state be").splitlines()[2:] if line]
    row = next(r for r in rows if r[3] == "s")
    lines = cli(sock, "show stat").splitlines()
    names = lines[0].lstrip("# ").split(",")
    stat = next(dict(zip(names, line.split(","))) for line in lines[1:]
                if line.startswith("be,s,"))
    return row[4], row[5], row[6], stat["status"]


def settle(sock: str, wanted) -> tuple[str, str, str, str]:
    """The row once wanted(row) holds, or the last one after SETTLE seconds."""
    deadline = time.monotonic() + SETTLE
    row = server_row(sock)
    while not wanted(row) and time.monotonic() < deadline:
        time.sleep(0.05)
        row = server_row(sock)
    return row


def backend_name(port: int) -> str:
    answer = http_get(port)
    return answer.backend or str(answer.status)


# (table value for app.test, the address the server settles on, or None for
# maintenance). Which of several new addresses HAProxy takes depends on the
# records it cached from earlier answers (see resolution.choose_address):
# the steps give one new address at a time, or keep the current one.
STEPS = [
    (["127.0.0.2"], "127.0.0.2"),
    (["127.0.0.3"], "127.0.0.3"),
    (NXDOMAIN, None),
    (["127.0.0.2"], "127.0.0.2"),
    (["127.0.0.5", "127.0.0.2"], "127.0.0.2"),  # the current address is kept
    (SILENT, None),
    (["127.0.0.3"], "127.0.0.3"),
    (REFUSED, None),
    (["127.0.0.3"], "127.0.0.3"),
    (SERVFAIL, None),
    (["127.0.0.2"], "127.0.0.2"),
]


def dns_lines(output: str) -> list[str]:
    """The log lines of DNS resolution, as `log stdout format raw` prints them."""
    keys = ("changed its IP", "maintenance", "resolves again", "valid DNS answer")
    return [line for line in output.splitlines()
            if not line.startswith("[") and any(key in line for key in keys)]


def run(binary: str, backend_port: int, steps=STEPS, options: str = "") -> tuple[list, list[str]]:
    """steps: (table value, what the server settles on: an address, None for
    maintenance, or the whole expected row)."""
    directory = tempfile.mkdtemp(prefix="haply-dns-")
    sock, port = os.path.join(directory, "admin.sock"), free_port()
    seen = []
    with dns_server({NAME: steps[0][0]}) as dns:
        with run_haproxy(config(sock, port, dns.port, backend_port, options), binary=binary) as proxy:
            wait_socket(sock)
            for value, expected in steps:
                dns.set(NAME, value)
                if isinstance(expected, tuple):
                    row = settle(sock, lambda r, e=expected: r == e)
                else:
                    row = settle(sock, lambda r, a=expected or "-": r[0] == a)
                seen.append((row, backend_name(port)))
            output = proxy.output()
    return seen, dns_lines(output)


def with_backends(test):
    """test(backend_port) with echo servers b2 on 127.0.0.2 and b3 on 127.0.0.3."""
    backend_port = free_port()
    backends = [EchoBackend(name, host=host, port=backend_port)
                for name, host in (("b2", "127.0.0.2"), ("b3", "127.0.0.3"))]
    for backend in backends:
        backend.start()
    try:
        return test(backend_port)
    finally:
        for backend in backends:
            backend.stop()


def test_addresses_states_and_logs_follow_the_dns_answers():
    results = with_backends(lambda backend_port: {
        name: run(binary, backend_port) for name, binary in PROXIES.items()})
    assert results["haply"] == results["haproxy"]
    seen, lines = results["haply"]
    assert [row for row, _ in seen] == [
        ("127.0.0.2", "2", "0", "no check"),
        ("127.0.0.3", "2", "0", "no check"),
        ("-", "0", "32", "MAINT (resolution)"),
        ("127.0.0.2", "2", "0", "no check"),
        ("127.0.0.2", "2", "0", "no check"),
        ("-", "0", "32", "MAINT (resolution)"),
        ("127.0.0.3", "2", "0", "no check"),
        ("-", "0", "32", "MAINT (resolution)"),
        ("127.0.0.3", "2", "0", "no check"),
        ("-", "0", "32", "MAINT (resolution)"),
        ("127.0.0.2", "2", "0", "no check"),
    ]
    assert [answer for _, answer in seen] == ["b2", "b3", "503", "b2", "b2", "503", "b3", "503", "b3",
                                              "503", "b2"]
    down = ("Server be/s is going DOWN for maintenance ({}). 0 active and 0 backup servers left. "
            "0 sessions active, 0 requeued, 0 remaining in queue.")
    back = ["Server be/s ('app.test') is UP/READY (resolves again).",
            "Server be/s administratively READY thanks to valid DNS answer."]
    assert lines == [
        "be/s changed its IP from (none) to 127.0.0.2 by dns/ns1.", *back,
        "be/s changed its IP from 127.0.0.2 to 127.0.0.3 by dns/ns1.",
        down.format("DNS NX status"),
        "be/s changed its IP from (none) to 127.0.0.2 by dns/ns1.", *back,
        down.format("DNS timeout status"),
        "be/s changed its IP from (none) to 127.0.0.3 by dns/ns1.", *back,
        down.format("DNS refused status"),
        "be/s changed its IP from (none) to 127.0.0.3 by dns/ns1.", *back,
        down.format("unspecified DNS error"),  # SERVFAIL
        "be/s changed its IP from (none) to 127.0.0.2 by dns/ns1.", *back,
    ]


def test_health_checks_follow_the_address():
    """A checked server moved to an address where nothing listens goes DOWN,
    enters maintenance from DOWN when its name stops resolving, and comes
    back UP at a live address."""
    steps = [
        (["127.0.0.2"], ("127.0.0.2", "2", "0", "UP")),
        (["127.0.0.3"], ("127.0.0.3", "2", "0", "UP")),
        (["127.0.0.6"], ("127.0.0.6", "0", "0", "DOWN")),
        (NXDOMAIN, ("-", "0", "32", "MAINT (resolution)")),
        (["127.0.0.2"], ("127.0.0.2", "2", "0", "UP")),
    ]
    results = with_backends(lambda backend_port: {
        name: run(binary, backend_port, steps, " check inter 100ms rise 1 fall 1")
        for name, binary in PROXIES.items()})
    assert results["haply"] == results["haproxy"]
    seen, lines = results["haply"]
    assert seen == [(row, answer) for (_, row), answer in zip(steps, ["b2", "b3", "503", "503", "b2"])]
    assert "Server be/s was DOWN and now enters maintenance (DNS NX status)." in lines


def addresses(sock: str) -> dict[str, str]:
    return {row[3]: row[4] for row in (line.split() for line in
            cli(sock, "show servers state be").splitlines()[2:] if line)}


def test_servers_of_one_name_do_not_share_an_address_and_errors_are_held():
    """By default (prevent-dup-ip) a second server of the same name waits
    without an address for one the first does not have; allow-dup-ip shares;
    an NXDOMAIN shorter than `hold nx` changes nothing."""
    def exercise(binary: str):
        directory = tempfile.mkdtemp(prefix="haply-dns-")
        sock, port = os.path.join(directory, "admin.sock"), free_port()
        with dns_server({NAME: ["127.0.0.2"]}) as dns:
            text = config(sock, port, dns.port, 80).replace("hold nx 200ms", "hold nx 10s").replace(
                "    server fixed", f"    server s2 {NAME}:80 resolvers dns resolve-prefer ipv4 init-addr none\n"
                f"    server s3 {NAME}:80 resolvers dns resolve-prefer ipv4 init-addr none "
                "resolve-opts allow-dup-ip\n    server fixed")
            with run_haproxy(text, binary=binary) as proxy:
                wait_socket(sock)
                deadline = time.monotonic() + SETTLE
                while addresses(sock)["s3"] == "-" and time.monotonic() < deadline:
                    time.sleep(0.05)
                time.sleep(0.3)  # more answers, alike: s2 stays without
                seen = [addresses(sock)]
                dns.set(NAME, ["127.0.0.2", "127.0.0.3"])
                deadline = time.monotonic() + SETTLE
                while addresses(sock)["s2"] == "-" and time.monotonic() < deadline:
                    time.sleep(0.05)
                seen.append(addresses(sock))
                dns.set(NAME, NXDOMAIN)
                time.sleep(0.8)  # several failed resolutions, well within hold nx
                seen.append(addresses(sock))
                return seen, dns_lines(proxy.output())

    results = {name: exercise(binary) for name, binary in PROXIES.items()}
    assert results["haply"] == results["haproxy"]
    seen, lines = results["haply"]
    assert seen == [
        {"s": "127.0.0.2", "s2": "-", "s3": "127.0.0.2", "fixed": "127.0.0.4"},
        {"s": "127.0.0.2", "s2": "127.0.0.3", "s3": "127.0.0.2", "fixed": "127.0.0.4"},
        {"s": "127.0.0.2", "s2": "127.0.0.3", "s3": "127.0.0.2", "fixed": "127.0.0.4"},
    ]
    # one resolution for the three: the first hears from the name server
    assert [line for line in lines if "changed its IP" in line] == [
        "be/s changed its IP from (none) to 127.0.0.2 by dns/ns1.",
        "be/s3 changed its IP from (none) to 127.0.0.2 by DNS cache.",
        "be/s2 changed its IP from (none) to 127.0.0.3 by DNS cache.",
    ]
    assert not any("maintenance" in line for line in lines)


def shape(text: str) -> list[str]:
    """`show resolvers` with the counters that depend on timing (how many
    resolutions ran) written as 0 or N."""
    out = []
    for line in text.splitlines():
        name, _, value = line.partition(":")
        if value.strip().isdigit() and name.strip() not in ("update",):
            line = f"{name}: {'N' if int(value) else '0'}"
        out.append(line)
    return out


def test_show_resolvers():
    """Two name servers, one of which is not there: the other's empty AAAA
    answers and valid A answers are counted, as is the one address change;
    a section no server uses shows zeros; an unknown section is refused;
    without an argument, every section."""
    def exercise(binary: str):
        directory = tempfile.mkdtemp(prefix="haply-dns-")
        sock, port = os.path.join(directory, "admin.sock"), free_port()
        with dns_server({NAME: ["127.0.0.2"]}) as dns:
            text = f"""global
    stats socket {sock} level admin
resolvers dns
    nameserver ns1 127.0.0.1:{dns.port}
    nameserver absent 127.0.0.1:{free_port()}
    timeout resolve 100ms
    timeout retry 100ms
resolvers spare
    nameserver x 127.0.0.1:{dns.port}
defaults
    mode http
    timeout connect 1s
    timeout client 1s
    timeout server 1s
frontend fe
    bind 127.0.0.1:{port}
    default_backend be
backend be
    server s {NAME}:80 resolvers dns init-addr none
"""
            with run_haproxy(text, binary=binary):
                wait_socket(sock)
                settle(sock, lambda r: r[0] == "127.0.0.2")
                time.sleep(0.3)  # a few more resolutions, answered alike
                return (shape(cli(sock, "show resolvers dns")), cli(sock, "show resolvers spare"),
                        cli(sock, "show resolvers nope"), shape(cli(sock, "show resolvers")))

    results = {name: exercise(binary) for name, binary in PROXIES.items()}
    assert results["haply"] == results["haproxy"]
    dns, spare, unknown, everything = results["haply"]
    assert dns[:5] == ["Resolvers section dns", " nameserver ns1:", "  sent: N", "  snd_error: 0", "  valid: N"]
    assert "  update:      1" in dns and "  any_err: N" in dns
    assert spare.splitlines()[:3] == ["Resolvers section spare", " nameserver x:", "  sent:        0"]
    assert unknown == "Can't find that resolvers section\n\n"
    # every section, and the `default` one both make from /etc/resolv.conf
    sections = [line for line in everything if line.startswith("Resolvers section")]
    assert sections[:2] == ["Resolvers section dns", "Resolvers section spare"]
    assert sections[2:] in ([], ["Resolvers section default"])


def test_workers_follow_one_resolution():
    """haply with two workers (nbthread 2): the checking worker resolves and
    logs; the other follows its changes silently, so every worker's runtime
    API tells the same, and each line is logged once."""
    directory = tempfile.mkdtemp(prefix="haply-dns-")
    sock, port = os.path.join(directory, "admin.sock"), free_port()
    with dns_server({NAME: ["127.0.0.2"]}) as dns:
        text = config(sock, port, dns.port, 80).replace("    maxconn 100\n", "    maxconn 100\n    nbthread 2\n")
        with run_haproxy(text, binary=PROXIES["haply"]) as proxy:
            wait_socket(sock)

            def every_worker_says(address: str) -> bool:
                # each connection reaches one worker or the other: ask a few times
                return all(addresses(sock)["s"] == address for _ in range(6))

            seen = []
            for value, address in ((["127.0.0.2"], "127.0.0.2"), (NXDOMAIN, "-"), (["127.0.0.3"], "127.0.0.3")):
                dns.set(NAME, value)
                deadline = time.monotonic() + SETTLE
                while not every_worker_says(address) and time.monotonic() < deadline:
                    time.sleep(0.05)
                seen.append(every_worker_says(address))
            lines = dns_lines(proxy.output())
    assert seen == [True, True, True]
    assert [line for line in lines if "changed its IP" in line or "maintenance" in line] == [
        "be/s changed its IP from (none) to 127.0.0.2 by dns/ns1.",
        "Server be/s is going DOWN for maintenance (DNS NX status). 0 active and 0 backup servers left. "
        "0 sessions active, 0 requeued, 0 remaining in queue.",
        "be/s changed its IP from (none) to 127.0.0.3 by dns/ns1.",
    ]
