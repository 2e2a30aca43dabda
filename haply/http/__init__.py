"""HTTP/1.x decisions, without I/O: framing, keep-alive, head writing, error pages.

httptools parses bytes in the proxy; these modules decide from what it reports.
How the proxy uses them:

Once per route (frontend + backend), at configuration time::

    request_writer, response_writer = for_route(frontend, backend, compile_condition)
    client_mode, server_mode = connection_modes(frontend.http_connection_mode,
                                                backend.http_connection_mode)
    errorfiles = route_errorfiles(frontend.errorfiles, backend.errorfiles)

Once per client connection::

    ctx = SampleContext.from_sockets(peername, sockname, ssl_fc)

Per request, while the head arrives: count bytes fed to httptools and header
callbacks; past MAX_HEAD_SIZE raise head_too_large(len(url)), past MAX_HEADERS
raise too_many_headers(). When the head is complete::

    check_request_target(url, headers)
    framing = request_framing(method, version, headers)
    options = connection_options(headers)
    head = request_writer.write(method, url, version, headers, framing,
                                server_keep_alive(server_mode), ctx, upgrade, options)

When the response head is complete::

    rframing = response_framing(method, status, version, rheaders)
    keep_client = keep_alive(version, headers, client_mode, rframing)
    keep_server = keep_alive(rversion, rheaders, server_mode, rframing)
    head = response_writer.write(rversion, status, reason, rheaders, rframing,
                                 keep_client, version, ctx)

Any RemoteProtocolError: answer error_response(exc.status_hint, errorfiles),
log exc.message, close (must_close tells whether a page allows keeping it).
"""

from haply.http.errors import LocalProtocolError, ProtocolError, RemoteProtocolError
from haply.http.framing import (
    CHUNKED, CLOSE, KEEP_ALIVE, LENGTH, MAX_HEAD_SIZE, MAX_HEADERS, NONE, SERVER_CLOSE,
    UNTIL_CLOSE, Framing, check_request_target, connection_modes, connection_options,
    head_too_large, keep_alive, request_framing, response_framing, server_keep_alive,
    too_many_headers, validate_header_fields,
)
from haply.http.headers import (
    RequestHeadWriter, ResponseHeadWriter, SampleContext, compile_forward_for,
    compile_header_rules, compile_value, for_route,
)
from haply.http.responses import (
    ERRORFILE_CODES, error_response, must_close, route_errorfiles, validate_errorfile,
)

__all__ = [
    "CHUNKED", "CLOSE", "ERRORFILE_CODES", "Framing", "KEEP_ALIVE", "LENGTH",
    "LocalProtocolError", "MAX_HEADERS", "MAX_HEAD_SIZE", "NONE", "ProtocolError",
    "RemoteProtocolError", "RequestHeadWriter", "ResponseHeadWriter", "SERVER_CLOSE",
    "SampleContext", "UNTIL_CLOSE", "check_request_target", "compile_forward_for",
    "compile_header_rules", "compile_value", "connection_modes", "connection_options",
    "error_response", "for_route", "head_too_large", "keep_alive", "must_close",
    "request_framing", "response_framing", "route_errorfiles", "server_keep_alive",
    "too_many_headers",
    "validate_errorfile", "validate_header_fields",
]
