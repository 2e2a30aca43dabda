"""`unique-id-format`: an identifier per request, made when its head is read.

The format is a log-format string; it can print what is known of a request
when it arrives (addresses and ports, the frontend, the date and `%Ts`, the
request line, `%rt`, `%pid`, the host name); times and counts that come
later print as they would before them (-1, 0). HAProxy's usual recipe:

    unique-id-format %{+X}o\\ %ci:%cp_%fi:%fp_%Ts_%rt:%pid
    unique-id-header X-Unique-ID

The identifier goes to the server in `unique-id-header` (after every
http-request rule, as HAProxy adds it), to header values as `%[unique-id]`
and to the log as `%ID`.
"""

from __future__ import annotations

import itertools
import os
import socket
import time
from typing import Callable

from haply.logs import formats
from haply.logs.logger import Record

# %rt: requests given an identifier, numbered in this process from 0 (as HAProxy).
_numbers = itertools.count()


class RequestRecord(Record):
    """A record that also reaches the request and its session: what the
    format's %[samples] read (a field, the client's TLS server name)."""

    __slots__ = ("session", "request")

    def header(self, name: str) -> list[str]:
        return self.request.header(name)


def compile_generator(fmt: str | None, frontend: str) -> Callable | None:
    """A function (session, request) -> identifier for a frontend's
    `unique-id-format`, or None without one; raises formats.FormatError."""
    if fmt is None:
        return None
    render = formats.compile_format(fmt)
    pid, hostname = os.getpid(), socket.gethostname()
    wall_clock = time.time

    def generate(session, request) -> str:
        context = request.context
        now = wall_clock()
        record = RequestRecord(
            client_ip=request.client_ip, client_port=context.src_port.decode(),
            frontend_ip=context.dst.decode(), frontend_port=session.dest_port,
            frontend=frontend, ssl=request.ssl, backend=frontend, server="<NOSRV>",
            accept_time=now, request_time=now, TR=0, Tw=-1, Tc=-1, Tr=-1, Ta=0, Tt=0, Ti=0,
            status=-1, bytes_read=0, bytes_uploaded=0, termination="----", actconn=0,
            feconn=0, beconn=0, srv_conn=0, retries=0, srv_queue=0, backend_queue=0,
            request_line=formats.request_line(request), method=formats.method(request),
            uri=request.uri, http_version=f"HTTP/{request.version or '1.1'}",
            hostname=hostname, pid=pid, request_counter=next(_numbers), log_counter=0)
        record.session, record.request = session, request
        return render(record)

    return generate
