"""`option httplog`'s line, written out by hand for the compiled build.

The generated renderer (haply.logs.formats.compile_http) serves every format;
it is Python, and its ~25 attribute reads on the session and the request cost
a quarter of a logged request's time. The default format, the one the
OpenStack guides use, is written here instead so that mypyc reads the session
and the request as C structures. It must write exactly what the generated one
writes for the same format: tests/unit/test_httplog_line.py compares them.

    %ci:%cp [%tr] %ft %b/%s %TR/%Tw/%Tc/%Tr/%Ta %ST %B %CC %CS %tsc
    %ac/%fc/%bc/%sc/%rc %sq/%bq %hr %hs %{+Q}r

without captures, so %CC and %CS are "-" and %hr and %hs write nothing.
"""

from __future__ import annotations

from typing import Any

from haply.logs.exchange import Exchange
from haply.logs.formats import date_text, request_line
from haply.proxy.http import HttpSession, Request


def render(s: HttpSession, q: Request, x: Exchange, now: float, status: int, term: str,
           srv: Any, held: int, log: Any) -> str:
    """The line of one exchange: the generated renderer's arguments (s the
    session, q its request, x its Exchange, srv the server that answered or
    was tried, held 1 when the request still holds it, log the ProxyLog)."""
    constants = s.log_constants
    if constants is None:
        # the same for every request of the connection
        client = q.client_ip or "-"
        frontend = s.frontend.name + "~" if q.ssl else s.frontend.name
        constants = s.log_constants = (f"{client}:{q.context.src_port.decode()} [",
                                       f"] {frontend} ")
    begin = x.begin
    headers_at = x.headers_at
    response_at = x.response_at
    t_wait = q.t_wait
    t_connect = q.t_connect
    backend = q.backend
    if backend is not None:
        backend_name = backend.name
        backend_sessions = backend.current_sessions + backend.waiting - held
    else:
        backend_name = s.frontend.name
        backend_sessions = 0
    if srv is not None:
        server_name = srv.name
        server_sessions = srv.current_sessions - held
    else:
        server_name = "<NOSRV>"
        server_sessions = 0
    request_ms = int((headers_at - begin) * 1000) if headers_at else -1
    if response_at:
        response_ms = (int((response_at - (headers_at or begin)) * 1000)
                       - max(t_wait, 0) - max(t_connect, 0))
    else:
        response_ms = -1
    retries = f"+{q.attempts}" if q.redispatched else str(q.attempts)
    queued = q.queue_positions
    server_queue, backend_queue = queued if queued is not None else (0, 0)
    return (f"{constants[0]}{date_text(x.wall)}{constants[1]}{backend_name}/{server_name} "
            f"{request_ms}/{t_wait}/{t_connect}/{response_ms}/{int((now - begin) * 1000)} "
            f"{status} {s.transport.written - x.bytes_out} - - {term} "
            f"{log.engine.global_gate.current}/{s.frontend.gate.current}/{backend_sessions}/"
            f"{server_sessions}/{retries} {server_queue}/{backend_queue} \"{request_line(q)}\"")
