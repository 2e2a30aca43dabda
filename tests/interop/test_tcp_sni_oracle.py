"""TLS passthrough routed by SNI (mode tcp content inspection) against
HAProxy 2.6: the same configuration, three nginx TLS backends that each
present their own certificate, and real clients (Python ssl, openssl
s_client -servername, curl --resolve). Compared: which backend each name
reaches (by the certificate the client sees, and the backend's answer), the
no-SNI default, a ClientHello split over several TCP segments, a plain HTTP
client, a rejected name, and what happens when the client says nothing until
inspect-delay has expired. A completed handshake also shows that the bytes
held for inspection reached the server unchanged."""

from __future__ import annotations

import contextlib
import socket
import ssl
import subprocess
import time
from pathlib import Path

import pytest

from tests.interop.test_proxy_oracle import run_both
from tests.support.certs import make_tls_files
from tests.support.haproxy_oracle import free_port, haproxy_available
from tests.support.nginx import run_nginx

pytestmark = pytest.mark.skipif(not haproxy_available(), reason="HAProxy oracle not installed")

BACKENDS = ("keystone", "nova", "horizon")
INSPECT_DELAY = 1.0
TIMEOUT = 5.0

CONFIG = """\
global
    maxconn 100

defaults
    mode tcp
    timeout connect 2s
    timeout client 5s
    timeout server 5s

frontend tls_in
    bind 127.0.0.1:@PORT@
    tcp-request inspect-delay 1s
    tcp-request content reject if { req.ssl_sni -i blocked.example }
    tcp-request content accept if { req.ssl_hello_type 1 }
    use_backend keystone if { req.ssl_sni -i keystone.example }
    use_backend nova if { req_ssl_sni -m end .nova.example }
    default_backend horizon
"""


@contextlib.contextmanager
def tls_backends(directory: Path):
    """An nginx per service, each with a certificate for its own name only
    and an answer naming it: ({name: port}, the CA file)."""
    files = make_tls_files(directory, ("unused.example",))
    ports = {}
    with contextlib.ExitStack() as stack:
        for name in BACKENDS:
            place = directory / name
            place.mkdir()
            pem = files.issue(place, "server.pem", f"{name}.example", f"api.{name}.example")
            ports[name] = free_port()
            stack.enter_context(run_nginx(place, ports[name], f"""\
                ssl_certificate {pem};
                ssl_certificate_key {pem};
                location / {{
                  default_type text/plain;
                  return 200 "backend={name} sni=$ssl_server_name\\n";
                }}
                """, listen_options="ssl"))
        yield ports, files.ca_file


def served_by(certificate: dict) -> str:
    common_name = dict(pair[0] for pair in certificate["subject"])["commonName"]
    return common_name.split(".")[0]


def client_context(ca_file: Path) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(ca_file))
    context.check_hostname = False  # the certificate tells which backend answered
    return context


def python_client(port: int, ca_file: Path, name: str | None, wait: float = 0.0) -> str:
    """The backend whose certificate the handshake meets; wait: seconds of
    silence after connecting, before the ClientHello."""
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as raw:
        time.sleep(wait)
        try:
            with client_context(ca_file).wrap_socket(raw, server_hostname=name) as sock:
                return served_by(sock.getpeercert())
        except (ConnectionError, ssl.SSLError):
            return "closed"


def split_hello_client(port: int, ca_file: Path, name: str, cuts: tuple[int, ...], gap: float) -> tuple[str, bool]:
    """A handshake whose ClientHello goes out in pieces (at cuts, gap seconds
    apart): the backend reached, and whether the handshake completed."""
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = client_context(ca_file).wrap_bio(incoming, outgoing, server_hostname=name)
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as sock:
        try:
            tls.do_handshake()
        except ssl.SSLWantReadError:
            pass
        hello = outgoing.read()
        bounds = (0, *cuts, len(hello))
        for index, (start, end) in enumerate(zip(bounds, bounds[1:])):
            if index:
                time.sleep(gap)
            sock.sendall(hello[start:end])
        while True:
            try:
                tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                sock.sendall(outgoing.read())
                data = sock.recv(65536)
                if not data:
                    return "closed", False
                incoming.write(data)
        sock.sendall(outgoing.read())
        return served_by(tls.getpeercert()), True


def openssl_client(port: int, name: str) -> str:
    """The backend whose certificate `openssl s_client -servername` meets."""
    result = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-servername", name],
                            input=b"", capture_output=True, timeout=20)
    for line in result.stdout.decode("latin-1").splitlines():
        if line.startswith("subject="):
            return line.split("CN", 1)[1].strip(" =").split(".")[0]
    return "closed"


def curl_client(port: int, ca_file: Path, name: str) -> str:
    """What the backend answers curl on https://NAME:PORT/ (resolved to the
    proxy, the certificate verified for NAME)."""
    result = subprocess.run(["curl", "-sS", "--max-time", "5", "--cacert", str(ca_file),
                             "--resolve", f"{name}:{port}:127.0.0.1", f"https://{name}:{port}/"],
                            capture_output=True, timeout=20)
    return result.stdout.decode().strip() or f"error {result.returncode}"


def plain_http_client(port: int) -> tuple[str, float]:
    """A client that speaks HTTP to the TLS port: the status line it gets
    back (from whichever nginx), and how long that took."""
    start = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as sock:
        sock.sendall(b"GET / HTTP/1.0\r\nHost: keystone.example\r\n\r\n")
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    return answer.split(b"\r\n", 1)[0].decode(), time.monotonic() - start


def exercise(port: int, ca_file: Path) -> dict:
    seen: dict = {}
    seen["python keystone"] = python_client(port, ca_file, "keystone.example")
    seen["python KEYSTONE (-i)"] = python_client(port, ca_file, "KEYSTONE.example")
    seen["python api.nova"] = python_client(port, ca_file, "api.nova.example")
    seen["python no sni"] = python_client(port, ca_file, None)
    seen["python other"] = python_client(port, ca_file, "glance.example")
    seen["python blocked"] = python_client(port, ca_file, "blocked.example")
    seen["openssl api.nova"] = openssl_client(port, "api.nova.example")
    seen["openssl keystone"] = openssl_client(port, "keystone.example")
    seen["curl keystone"] = curl_client(port, ca_file, "keystone.example")
    seen["curl api.nova"] = curl_client(port, ca_file, "api.nova.example")
    # a ClientHello in three segments 0.2 s apart, well inside inspect-delay
    seen["split hello"] = split_hello_client(port, ca_file, "keystone.example", (3, 40), 0.2)
    # the record header alone, then the rest once inspect-delay has expired:
    # the rules read 5 bytes as final, the name is unknown: the default backend
    seen["hello after the delay"] = split_hello_client(port, ca_file, "keystone.example", (5,),
                                                       INSPECT_DELAY + 0.5)
    # silence past inspect-delay: routed on no bytes at all (default backend)
    seen["silent past the delay"] = python_client(port, ca_file, "keystone.example", INSPECT_DELAY + 0.5)
    seen["silent briefly"] = python_client(port, ca_file, "keystone.example", 0.3)
    status, took = plain_http_client(port)
    # not TLS: decided at once (no waiting for inspect-delay), to the default backend
    seen["plain http"] = (status, took < INSPECT_DELAY)
    return seen


def test_sni_routing_as_haproxy(tmp_path):
    with tls_backends(tmp_path) as (ports, ca_file):
        config = CONFIG + "".join(f"\nbackend {name}\n    server s 127.0.0.1:{port}\n"
                                  for name, port in ports.items())
        results = run_both(config, lambda port: exercise(port, ca_file))
    assert results["haply"] == results["haproxy"]
    seen = results["haply"]  # and what they agree on is what the configuration says
    assert seen["python keystone"] == seen["split hello"][0] == "keystone"
    assert seen["python api.nova"] == seen["openssl api.nova"] == "nova"
    assert seen["python no sni"] == seen["silent past the delay"] == seen["hello after the delay"][0] == "horizon"
    assert seen["python blocked"] == "closed"
    assert seen["curl keystone"] == "backend=keystone sni=keystone.example"
    assert seen["plain http"] == ("HTTP/1.1 400 Bad Request", True)


def test_stick_on_sni_as_haproxy(tmp_path):
    """`stick on req.ssl_sni` in a backend of two servers: each name stays on
    the server it first reached, as the certificates show."""
    with tls_backends(tmp_path) as (ports, ca_file):
        config = CONFIG.replace("    use_backend keystone if { req.ssl_sni -i keystone.example }\n"
                                "    use_backend nova if { req_ssl_sni -m end .nova.example }\n"
                                "    default_backend horizon\n", "    default_backend pair\n") + f"""
backend pair
    balance roundrobin
    stick-table type string len 64 size 100
    stick on req.ssl_sni
    server k 127.0.0.1:{ports['keystone']}
    server n 127.0.0.1:{ports['nova']}
"""
        names = ["one.example", "two.example", "three.example", "one.example", "two.example",
                 "three.example", "three.example", "one.example"]
        results = run_both(config, lambda port: [python_client(port, ca_file, name) for name in names])
    assert results["haply"] == results["haproxy"]
    seen = dict(zip(names, results["haply"]))
    assert all(results["haply"][i] == seen[name] for i, name in enumerate(names))
    assert set(seen.values()) == {"keystone", "nova"}
