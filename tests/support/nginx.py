"""A real nginx for tests: one `server` block on 127.0.0.1, its files and
temporary directories in the test's own directory, in the foreground."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import textwrap
import time
from pathlib import Path
from typing import Iterator

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"


def nginx_available() -> bool:
    return os.access(NGINX, os.X_OK)


@contextlib.contextmanager
def run_nginx(directory: Path, port: int, server_body: str, listen_options: str = "") -> Iterator[subprocess.Popen]:
    """nginx listening on 127.0.0.1:port with `server_body` inside its server
    block; stopped on exit."""
    conf = directory / "nginx.conf"
    conf.write_text(textwrap.dedent(f"""\
        daemon off;
        master_process off;
        worker_processes 1;
        pid {directory}/nginx.pid;
        error_log {directory}/error.log warn;
        events {{ worker_connections 1024; }}
        http {{
          access_log off;
          client_body_temp_path {directory}/body;
          proxy_temp_path {directory}/proxy;
          fastcgi_temp_path {directory}/fastcgi;
          uwsgi_temp_path {directory}/uwsgi;
          scgi_temp_path {directory}/scgi;
          keepalive_requests 1000;
          server {{
            listen 127.0.0.1:{port}{' ' + listen_options if listen_options else ''};
        """) + textwrap.indent(textwrap.dedent(server_body), "    ") + "  }\n}\n")
    process = subprocess.Popen([NGINX, "-p", str(directory), "-c", str(conf)],
                               stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"nginx did not start: {process.stderr.read().decode()}")
                time.sleep(0.05)
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


def nginx_tls(directory, pem, port: int):
    """nginx serving HTTPS on 127.0.0.1:port; the answer names the SNI and the
    connection serial, so a test sees both the name sent and connection reuse."""
    return run_nginx(directory, port, f"""\
        ssl_certificate {pem};
        ssl_certificate_key {pem};
        location / {{
          default_type text/plain;
          return 200 "sni=$ssl_server_name conn=$connection proto=$ssl_protocol\\n";
        }}
        """, listen_options="ssl")
