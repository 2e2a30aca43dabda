"""HTTP/1.x decisions, without I/O: framing, keep-alive, head writing, error pages.

httptools parses bytes in the proxy; these modules decide from what it reports.
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
    ERRORFILE_CODES, error_response, must_close, validate_errorfile,
)

__all__ = [
    "CHUNKED", "CLOSE", "ERRORFILE_CODES", "Framing", "KEEP_ALIVE", "LENGTH",
    "LocalProtocolError", "MAX_HEADERS", "MAX_HEAD_SIZE", "NONE", "ProtocolError",
    "RemoteProtocolError", "RequestHeadWriter", "ResponseHeadWriter", "SERVER_CLOSE",
    "SampleContext", "UNTIL_CLOSE", "check_request_target", "compile_forward_for",
    "compile_header_rules", "compile_value", "connection_modes", "connection_options",
    "error_response", "for_route", "head_too_large", "keep_alive", "must_close",
    "request_framing", "response_framing", "server_keep_alive", "too_many_headers",
    "validate_errorfile", "validate_header_fields",
]
