"""`use_backend` in mode tcp against HAProxy 2.6: rules on the connection's
addresses (src, dst with a dotted mask as the OpenStack charms write it,
dst_port) pick the backend, in order, with the default for the rest; a rule
reading HTTP is refused in mode tcp."""

from __future__ import annotations

import re
import socket
import subprocess
import sys

import pytest

from tests.interop.test_proxy_oracle import PRELUDE, run_both
from tests.support.haproxy_oracle import echo_backends, free_port, haproxy_available

pytestmark = pytest.mark.skipif(not haproxy_available(), reason="HAProxy oracle not installed")


def served_by(port: int, address: str = "127.0.0.1") -> str:
    with socket.create_connection((address, port), timeout=5) as sock:
        sock.sendall(b"GET / HTTP/1.0\r\n\r\n")
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
    return re.search(rb"(?i)x-backend: (\S+)", reply).group(1).decode()


def test_tcp_use_backend_by_address_as_haproxy():
    with echo_backends(["a", "b", "c", "d"]) as (a, b, c, d):
        cfg = PRELUDE.replace("mode http", "mode tcp") + f"""
frontend fe
    bind 127.0.0.1:@PORT@
    bind 127.0.0.2:@PORT@
    bind 127.0.0.3:@PORT2@
    acl via_second dst 127.0.0.2/255.255.255.255
    acl high_port dst_port @PORT2@
    use_backend be_b if via_second
    use_backend be_c if high_port
    use_backend be_d if {{ src 10.0.0.0/8 }}
    default_backend be_a

backend be_a
    server s {a.address}
backend be_b
    server s {b.address}
backend be_c
    server s {c.address}
backend be_d
    server s {d.address}
"""
        port2 = free_port()

        def exercise(port):
            return [served_by(port), served_by(port, "127.0.0.2"), served_by(port2, "127.0.0.3"),
                    served_by(port)]

        results = run_both(cfg.replace("@PORT2@", str(port2)), exercise)
    assert results["haply"] == results["haproxy"] == ["a", "b", "c", "a"]


def test_http_fetch_in_a_tcp_rule_is_refused(tmp_path):
    config = tmp_path / "tcp.cfg"
    config.write_text(PRELUDE.replace("mode http", "mode tcp") + """
frontend fe
    bind 127.0.0.1:9
    use_backend be if { path_beg /api }
    default_backend be
backend be
    server s 127.0.0.1:1
""")
    line = config.read_text().splitlines().index("    use_backend be if { path_beg /api }") + 1
    out = subprocess.run([sys.executable, "-m", "haply", "-c", "-f", str(config)],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode != 0
    assert f"{config}:{line}: error: use_backend condition reads 'path_beg'" in out.stderr, out.stderr
