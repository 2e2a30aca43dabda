"""TLS: certificates as operators keep them, and the SSLContexts built from them.

    from haply.tls import validate, bind_context, server_context
    validate(config, diagnostics)       # at load: every crt/ca-file checked, file:line
    bind_context(bind, proxy, config)   # ssl.SSLContext for a `bind ... ssl crt ...`
    server_context(server, config)      # (context, server_hostname), DynamicServerTls or None

Contexts are built once, before the first connection; nothing on the request path
touches a file or parses an option.
"""

from haply.tls.certificates import CertificateError, load_bundle, load_crt
from haply.tls.context import (DynamicServerTls, TlsOptionError, bind_context,
                               bind_uses_tls, server_context, validate)
from haply.tls.sni import client_sni, compile_sni

__all__ = ["CertificateError", "DynamicServerTls", "TlsOptionError", "bind_context", "bind_uses_tls",
           "client_sni", "compile_sni", "load_bundle", "load_crt", "server_context", "validate"]
