"""The seed's Pound configuration run by haply against real back-ends on
loopback (addresses adapted in a test copy), and `haply convert` checked by
running its output in HAProxy 2.6 side by side."""

from __future__ import annotations

import contextlib
import re
import socket
import ssl
import subprocess
from pathlib import Path

import pytest

from tests.support.certs import make_tls_files
from tests.support.haply_process import HAPLY_BIN
from tests.support.haproxy_oracle import (HAProxy, echo_backends, free_port, haproxy_available,
                                          http_get, run_haproxy)

SEED = Path("/work/shared/fixtures/seed-configs/dair.pound.cfg")


def adapted_seed(http_port: int, https_port: int, backend_ports: list[int], cert: Path) -> str:
    """The seed with its listeners on 127.0.0.1 and free ports, its BackEnd
    ports on the test's servers and its Cert on a generated file."""
    text = SEED.read_text()
    text = re.sub(r"(?m)^(\s*Address)\s+(0\.0\.0\.0|136\.159\.94\.150)$", r"\1 127.0.0.1", text)
    text = re.sub(r"(?m)^(\s*Port)\s+8773$", rf"\g<1> {http_port}", text)
    text = re.sub(r"(?m)^(\s*Port)\s+8772$", rf"\g<1> {https_port}", text)
    for seed_port, port in zip((8781, 8782, 8783, 8784), backend_ports):
        text = re.sub(rf"(?m)^(\s*Port)\s+{seed_port}$", rf"\g<1> {port}", text)
    text = text.replace("/etc/ssl/pound.crt-key", str(cert))
    # Every seed address and port was replaced (word bounds: a free port such
    # as 38789 may contain "878").
    assert not re.search(r"\b(8773|8772|878[1-4])\b|136\.159", text), text
    return text


class _PoundHaply(HAProxy):
    """haply run as the oracle runner runs it, on a file named *.pound.cfg (the
    name selects the dialect), waiting for the listeners the test chose."""

    def __init__(self, config: str, ports: list[int]):
        super().__init__(config, HAPLY_BIN)
        self.ports = ports

    def _write_config(self) -> None:
        import os
        import tempfile

        if self._dir is None:
            self._dir = tempfile.TemporaryDirectory(prefix="haply-pound-")
            self.config_path = os.path.join(self._dir.name, "dair.pound.cfg")
            with open(self.config_path, "w") as f:
                f.write(self.config)

    def start(self) -> None:
        import os

        self.check()
        self._log = open(os.path.join(self._dir.name, "haply.log"), "wb")
        self.process = subprocess.Popen([self.binary, "-db", "-f", self.config_path], stdin=subprocess.DEVNULL,
                                        stdout=self._log, stderr=subprocess.STDOUT)
        self._wait_ready([("127.0.0.1", port) for port in self.ports])


@contextlib.contextmanager
def run_pound(text: str, *ports: int):
    proxy = _PoundHaply(text, list(ports))
    try:
        proxy.start()
        yield proxy
    finally:
        proxy.stop()


def https_request(port: int, ca: Path, request: bytes) -> bytes:
    context = ssl.create_default_context(cafile=str(ca))
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        with context.wrap_socket(raw, server_hostname="localhost") as sock:
            sock.sendall(request)
            data = b""
            while chunk := sock.recv(65536):
                data += chunk
    return data


def raw_request(port: int, request: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(request)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    return data


@pytest.fixture
def tls(tmp_path):
    return make_tls_files(tmp_path, ("localhost",))


def exercise(run, text: str, http_port: int, https_port: int, backends, tls) -> dict:
    """Requests every Pound behaviour of the seed; what the back-ends saw."""
    found: dict = {}
    with run(text):
        for backend in backends:
            backend.clear()
        statuses = [http_get(http_port, "/x", headers={"X-Forwarded-For": "6.6.6.6"}).status for _ in range(8)]
        found["statuses"] = statuses
        found["spread"] = sorted(len(b.requests) for b in backends)
        seen = [r for b in backends for r in b.requests]
        found["xff"] = sorted({tuple(v for k, v in r.headers if k.lower() == "x-forwarded-for") for r in seen})
        for backend in backends:
            backend.clear()
        reply = https_request(https_port, tls.ca_file, b"GET /secure HTTP/1.1\r\nHost: localhost\r\n"
                                                       b"X-Forwarded-For: 7.7.7.7\r\nConnection: close\r\n\r\n")
        found["https_status"] = reply.split(b"\r\n", 1)[0]
        seen = [r for b in backends for r in b.requests]
        found["https_xff"] = [tuple(v for k, v in r.headers if k.lower() == "x-forwarded-for") for r in seen]
        # xHTTP 0: GET, POST and HEAD only.
        found["put"] = raw_request(http_port, b"PUT /x HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n"
                                              b"Connection: close\r\n\r\n").split(b"\r\n", 1)[0]
        found["post"] = raw_request(http_port, b"POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n"
                                               b"Connection: close\r\n\r\nhi").split(b"\r\n", 1)[0]
    return found


def test_seed_runs_with_pound_semantics(tmp_path, tls):
    with echo_backends(["b1", "b2", "b3", "b4"]) as backends:
        http_port, https_port = free_port(), free_port()
        path = tmp_path / "dair.pound.cfg"
        path.write_text(adapted_seed(http_port, https_port, [b.port for b in backends], tls.pem))
        found = exercise(lambda text: run_pound(text, http_port, https_port), path.read_text(),
                         http_port, https_port, backends, tls)
    assert found["statuses"] == [200] * 8
    assert found["spread"] == [2, 2, 2, 2]  # equal Priority: round robin
    # The client's X-Forwarded-For is gone; the real address is added once.
    assert found["xff"] == [("127.0.0.1",)]
    assert found["https_status"] == b"HTTP/1.1 200 OK" and found["https_xff"] == [("127.0.0.1",)]
    assert found["put"] == b"HTTP/1.1 501 Not Implemented"
    assert found["post"] == b"HTTP/1.1 200 OK"


def test_dead_backend_is_skipped(tmp_path, tls):
    with echo_backends(["b1", "b2", "b3"]) as backends:
        http_port, https_port, dead = free_port(), free_port(), free_port()
        text = adapted_seed(http_port, https_port, [b.port for b in backends] + [dead], tls.pem)
        with run_pound(text, http_port, https_port):
            statuses = [http_get(http_port, "/").status for _ in range(8)]
    assert statuses == [200] * 8


@pytest.mark.skipif(not haproxy_available(), reason="HAProxy 2.6 not installed")
def test_convert_output_behaves_the_same_in_haproxy(tmp_path, tls):
    with echo_backends(["b1", "b2", "b3", "b4"]) as backends:
        http_port, https_port = free_port(), free_port()
        path = tmp_path / "dair.pound.cfg"
        path.write_text(adapted_seed(http_port, https_port, [b.port for b in backends], tls.pem))
        converted = subprocess.run([HAPLY_BIN, "convert", str(path)], capture_output=True, text=True,
                                   timeout=30)
        assert converted.returncode == 0, converted.stderr
        assert "option forwardfor" in converted.stdout and "http-request del-header X-Forwarded-For" in converted.stdout
        ours = exercise(lambda text: run_pound(text, http_port, https_port), path.read_text(), http_port, https_port, backends, tls)
        theirs = exercise(lambda text: run_haproxy(text), converted.stdout, http_port, https_port, backends, tls)
    assert ours == theirs


def test_convert_errors_are_located(tmp_path):
    path = tmp_path / "bad.pound.cfg"
    path.write_text("ListenHTTP\n Address 127.0.0.1\n Port 80\n Bogus 1\nEnd\n")
    result = subprocess.run([HAPLY_BIN, "convert", str(path)], capture_output=True, text=True, timeout=30)
    assert result.returncode == 1 and f"{path}:4: error: unknown Pound keyword 'bogus'" in result.stderr
    assert result.stdout == ""
    result = subprocess.run([HAPLY_BIN, "-c", "-f", str(path)], capture_output=True, text=True, timeout=30)
    assert result.returncode == 1 and f"{path}:4: error:" in result.stderr


@pytest.mark.skipif(not haproxy_available(), reason="HAProxy 2.6 not installed")
def test_services_with_patterns_route_the_same_in_haproxy(tmp_path):
    """URL / HeadRequire / HeadDeny regular expressions (backslashes included)
    survive the conversion: both proxies route the same requests the same way."""
    with echo_backends(["api", "site", "bots"]) as (api, site, bots):
        port = free_port()
        text = f"""
ListenHTTP
    Address 127.0.0.1
    Port {port}
    xHTTP 1
    Service "api"
        URL "^/api/.*\\.json$"
        HeadRequire "Host: .*example\\.com"
        BackEnd
            Address 127.0.0.1
            Port {api.port}
        End
    End
End
Service "humans"
    HeadDeny "User-Agent: .*[Bb]ot"
    BackEnd
        Address 127.0.0.1
        Port {site.port}
    End
End
Service "everyone else"
    BackEnd
        Address 127.0.0.1
        Port {bots.port}
    End
End
"""
        path = tmp_path / "routes.pound.cfg"
        path.write_text(text)
        converted = subprocess.run([HAPLY_BIN, "convert", str(path)], capture_output=True, text=True,
                                   timeout=30)
        assert converted.returncode == 0, converted.stderr
        cases = [("/api/x.json", {"Host": "www.example.com"}), ("/api/xjson", {"Host": "www.example.com"}),
                 ("/api/x.json", {"Host": "other.org"}), ("/page", {"User-Agent": "GoogleBot"}),
                 ("/page", {"User-Agent": "curl"}), ("/api/x.json", {"Host": "EXAMPLE.COM"})]
        results = {}
        for name, runner in (("haply", lambda: run_pound(text, port)),
                             ("haproxy", lambda: run_haproxy(converted.stdout))):
            with runner():
                results[name] = [http_get(port, p, headers=h).backend for p, h in cases]
                results[name].append(raw_request(port, b"DELETE /x HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
                                     .split(b"\r\n", 1)[0])
                results[name].append(raw_request(port, b"OPTIONS /x HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
                                     .split(b"\r\n", 1)[0])
    assert results["haply"] == results["haproxy"]
    assert results["haply"][:6] == ["api", "site", "site", "bots", "site", "api"]
    assert results["haply"][6:] == [b"HTTP/1.1 200 OK", b"HTTP/1.1 501 Not Implemented"]
