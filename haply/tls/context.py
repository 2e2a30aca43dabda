"""ssl.SSLContext objects from `bind ... ssl` and `server ... ssl` options.

Options come raw from the model (Bind.options, Server.extra: (keyword, value)
pairs as written) and from global `ssl-default-bind-*` / `ssl-default-server-*`,
which apply first so that the line's own options win, as in HAProxy's manual
(section 3.1, ssl-default-bind-options). Defaults where the configuration says
nothing: TLS 1.2 minimum, the "intermediate" cipher list of Mozilla's server-side
TLS guidelines (v5), no compression, no client-initiated renegotiation.
"""

from __future__ import annotations

import os
import ssl

from haply.config.diagnostics import Diagnostics
from haply.config.model import Bind, Config, Proxy, Server, used_acls
from haply.tls.certificates import (Bundle, CertificateError, load_crt,
                                    load_crt_list, name_matches)
from haply.tls.sni import SniExpression, SniSyntaxError, compile_sni, record_client_sni

# Mozilla server-side TLS, "intermediate" configuration, version 5.
DEFAULT_CIPHERS = ("ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
                   "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
                   "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:"
                   "DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384")
DEFAULT_MIN_VERSION = ssl.TLSVersion.TLSv1_2
VERSIONS = {
    "SSLv3": ssl.TLSVersion.SSLv3, "TLSv1.0": ssl.TLSVersion.TLSv1, "TLSv1.1": ssl.TLSVersion.TLSv1_1,
    "TLSv1.2": ssl.TLSVersion.TLSv1_2, "TLSv1.3": ssl.TLSVersion.TLSv1_3,
}
# no-tlsvXX / force-tlsvXX keywords -> version
FLAG_VERSIONS = {"sslv3": "SSLv3", "tlsv10": "TLSv1.0", "tlsv11": "TLSv1.1",
                 "tlsv12": "TLSv1.2", "tlsv13": "TLSv1.3"}
ORDER = list(VERSIONS)
# What `alpn` may offer while haply speaks HTTP/1.x only.
HTTP1_PROTOCOLS = ("http/1.1", "http/1.0")
# Options that take a value in ssl-default-*-options (the others are flags).
VALUED = frozenset({"ssl-min-ver", "ssl-max-ver"})


class TlsOptionError(Exception):
    """An ssl option haply cannot apply; the message says which and why."""


def bind_uses_tls(bind: Bind) -> bool:
    return any(option == "ssl" for option, _ in bind.options)


def _global(config: Config, key: str) -> tuple[str, ...]:
    values: tuple[str, ...] = ()
    for name, args in config.global_.extra:
        if name == key:
            values = tuple(args)
    return values


def _default_options(config: Config, side: str) -> list[tuple[str, str]]:
    words = list(_global(config, f"ssl-default-{side}-options"))
    options, i = [], 0
    while i < len(words):
        word = words[i]
        if word in VALUED and i + 1 < len(words):
            options.append((word, words[i + 1]))
            i += 2
        else:
            options.append((word, ""))
            i += 1
    for what in ("ciphers", "ciphersuites"):
        value = _global(config, f"ssl-default-{side}-{what}")
        if value:
            options.append((what, value[0]))
    return options


def _base(config: Config, key: str, path: str) -> str:
    base = _global(config, key)
    return os.path.join(base[0], path) if base and not os.path.isabs(path) else path


def _apply_common(context: ssl.SSLContext, options: list[tuple[str, str]]) -> None:
    """Versions, ciphers, tickets: what bind and server lines share."""
    low, high = DEFAULT_MIN_VERSION, None
    disabled: set[str] = set()
    forced = None
    for option, value in options:
        if option in ("ssl-min-ver", "ssl-max-ver"):
            if value not in VERSIONS:
                raise TlsOptionError(f"'{option} {value}': expected one of {', '.join(VERSIONS)}")
            if option == "ssl-min-ver":
                low = VERSIONS[value]
            else:
                high = VERSIONS[value]
        elif option.startswith("no-") and option[3:] in FLAG_VERSIONS:
            disabled.add(FLAG_VERSIONS[option[3:]])
        elif option.startswith("force-") and option[6:] in FLAG_VERSIONS:
            forced = FLAG_VERSIONS[option[6:]]
        elif option == "ciphers":
            try:
                context.set_ciphers(value)
            except ssl.SSLError:
                raise TlsOptionError(f"'ciphers {value}': OpenSSL knows none of these ciphers") from None
        elif option == "ciphersuites":
            set_ciphersuites(context, value)
        elif option == "no-tls-tickets":
            context.options |= ssl.OP_NO_TICKET
    if forced is not None:
        low = high = VERSIONS[forced]
    elif disabled:
        # no-tlsvXX: the enabled range is what remains at the ends (OpenSSL has no holes).
        allowed = [v for v in ORDER if v not in disabled and VERSIONS[v] >= low
                   and (high is None or VERSIONS[v] <= high)]
        if not allowed:
            raise TlsOptionError("every TLS version is disabled by the no-tlsvXX options")
        low, high = VERSIONS[allowed[0]], VERSIONS[allowed[-1]]
    if high is not None and high < low:
        raise TlsOptionError("ssl-max-ver is lower than the minimum version "
                             "(haply's minimum is TLSv1.2 unless ssl-min-ver says otherwise)")
    if low < ssl.TLSVersion.TLSv1_2:
        # OpenSSL 3 refuses TLS < 1.2 at its default security level.
        context.set_ciphers(context_ciphers(options) + ":@SECLEVEL=0")
    context.minimum_version = low
    if high is not None:
        context.maximum_version = high


def context_ciphers(options: list[tuple[str, str]]) -> str:
    value = DEFAULT_CIPHERS
    for option, v in options:
        if option == "ciphers":
            value = v
    return value


def set_ciphersuites(context: ssl.SSLContext, value: str) -> None:
    """TLS 1.3 suites: Python's ssl module has no setter, so call OpenSSL's
    SSL_CTX_set_ciphersuites on the context's SSL_CTX (the first field after
    the object header of _ssl._SSLContext)."""
    import _ssl
    import ctypes
    import sys

    try:
        lib = ctypes.CDLL(_ssl.__file__)
        setter = lib.SSL_CTX_set_ciphersuites
    except (OSError, AttributeError):
        raise TlsOptionError("'ciphersuites' cannot be applied: this Python's OpenSSL "
                             "does not expose SSL_CTX_set_ciphersuites") from None
    setter.argtypes = (ctypes.c_void_p, ctypes.c_char_p)
    setter.restype = ctypes.c_int
    header = object.__basicsize__ if sys.implementation.name == "cpython" else None
    if header is None:
        raise TlsOptionError("'ciphersuites' needs CPython")
    pointer = ctypes.c_void_p.from_address(id(context) + header).value
    if not pointer or setter(pointer, value.encode()) != 1:
        raise TlsOptionError(f"'ciphersuites {value}': OpenSSL knows none of these TLS 1.3 suites")


def _server_side_base(options: list[tuple[str, str]]) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.options |= ssl.OP_NO_COMPRESSION | ssl.OP_NO_RENEGOTIATION | ssl.OP_CIPHER_SERVER_PREFERENCE
    context.set_ciphers(DEFAULT_CIPHERS)
    _apply_common(context, options)
    return context


def bind_context(bind: Bind, proxy: Proxy, config: Config,
                 diagnostics: Diagnostics | None = None) -> ssl.SSLContext:
    """The server-side context of a `bind ... ssl` line (certificates checked).

    Raises CertificateError or TlsOptionError; warnings go to diagnostics."""
    options = _default_options(config, "bind") + list(bind.options)
    bundles: list[Bundle] = []
    strict = False
    alpn: list[str] | None = None
    verify, ca_file = "none", None
    for option, value in options:
        if option == "crt":
            bundles.extend(load_crt(_base(config, "crt-base", value)))
        elif option == "crt-list":
            bundles.extend(load_crt_list(_base(config, "crt-base", value)))
        elif option == "strict-sni":
            strict = True
        elif option == "alpn":
            alpn = [p for p in value.split(",") if p]
        elif option == "verify":
            if value not in ("none", "optional", "required"):
                raise TlsOptionError(f"'verify {value}': expected none, optional or required")
            verify = value
        elif option == "ca-file":
            ca_file = _base(config, "ca-base", value)
    if not bundles:
        raise TlsOptionError("'ssl' needs a certificate: add 'crt FILE' or 'crt-list FILE'")
    if alpn is not None and proxy.mode == "http":
        offered = [p for p in alpn if p in HTTP1_PROTOCOLS]
        if len(offered) != len(alpn) and diagnostics is not None:
            dropped = ",".join(p for p in alpn if p not in HTTP1_PROTOCOLS)
            diagnostics.warning(bind.location, f"'alpn {','.join(alpn)}': haply speaks HTTP/1.1 only, "
                                f"so it does not offer {dropped} and negotiates http/1.1")
        alpn = offered or ["http/1.1"]
    dh_file = _global(config, "ssl-dh-param-file")

    def build(bundle: Bundle) -> ssl.SSLContext:
        context = _server_side_base(options)
        if dh_file:  # the parameters of DHE key exchanges (TLS 1.2 DHE ciphers)
            path = dh_file[0]
            try:
                context.load_dh_params(path)
            except (OSError, ssl.SSLError) as exc:
                raise TlsOptionError(f"ssl-dh-param-file '{path}' cannot be loaded: {exc}") from None
        context.load_cert_chain(bundle.path, None if bundle.key_path == bundle.path else bundle.key_path)
        if alpn:
            context.set_alpn_protocols(alpn)
        if verify != "none":
            if ca_file is None:
                raise TlsOptionError(f"'verify {verify}' needs 'ca-file FILE' to check client certificates")
            try:
                context.load_verify_locations(cafile=ca_file)
            except (OSError, ssl.SSLError) as exc:
                raise TlsOptionError(f"ca-file '{ca_file}' cannot be loaded: {exc}") from None
            context.verify_mode = ssl.CERT_REQUIRED if verify == "required" else ssl.CERT_OPTIONAL
        return context

    contexts = [build(b) for b in bundles]
    if diagnostics is not None:
        for bundle in bundles:
            for warning in bundle.warnings:
                diagnostics.warning(bind.location, warning)
    default = contexts[0]
    if len(contexts) > 1 or strict:
        default.sni_callback = _sni_selector(list(zip(bundles, contexts)), default, strict)
    elif _reads_client_sni(config):
        # Only to remember the name asked for, when a server's `sni ssl_fc_sni`
        # needs it; otherwise the handshake path has no Python call.
        default.sni_callback = record_client_sni
    return default


def _reads_client_sni(config: Config) -> bool:
    """A server's `sni`, a frontend's log line or its unique-id, or an acl
    reads ssl_fc_sni."""
    return any(option == "sni" and "ssl_fc_sni" in value
               for proxy in config.backends for server in proxy.servers
               for option, value in server.extra) or any(
        "ssl_fc_sni" in (proxy.log_format or "") + (proxy.unique_id_format or "")
        for proxy in config.frontends) or any(
        acl.fetch.startswith("ssl_fc_sni") for proxy in config.proxies for acl in used_acls(proxy))


def _sni_selector(table: list[tuple[Bundle, ssl.SSLContext]], default: ssl.SSLContext, strict: bool):
    """The certificate for the requested name: exact names first, then wildcards,
    then (unless strict-sni) the first certificate."""
    exact: dict[str, ssl.SSLContext] = {}
    wildcards: list[tuple[str, ssl.SSLContext]] = []
    excluded: dict[int, set[str]] = {}
    for bundle, context in table:
        names = [f for f in bundle.filters if not f.startswith("!")] or list(bundle.names)
        excluded[id(context)] = {f[1:] for f in bundle.filters if f.startswith("!")}
        for name in names:
            if name.startswith("*."):
                wildcards.append((name, context))
            else:
                exact.setdefault(name, context)

    def select(ssl_object, server_name, _context):
        chosen = None
        if server_name:
            record_client_sni(ssl_object, server_name, _context)
            name = server_name.lower()
            chosen = exact.get(name)
            if chosen is None:
                chosen = next((c for pattern, c in wildcards
                               if name_matches(pattern, name) and name not in excluded[id(c)]), None)
        if chosen is None:
            if strict:
                return ssl.ALERT_DESCRIPTION_UNRECOGNIZED_NAME
            return None
        if chosen is not default:
            ssl_object.context = chosen
        return None

    return select


class DynamicServerTls:
    """A `server ... ssl` whose SNI is evaluated per connection (`sni req.hdr(host)`).

    Two contexts: with `verify required`, a connection that sends a name has the
    certificate checked against it (HAProxy's rule when `verifyhost` is absent);
    one that sends none (no Host header) has the chain checked only.
    """

    __slots__ = ("named", "unnamed", "expression")

    def __init__(self, named: ssl.SSLContext, unnamed: ssl.SSLContext, expression: SniExpression):
        self.named = named
        self.unnamed = unnamed
        self.expression = expression

    def server_name(self, source, client=None) -> str | None:
        """The SNI for one connection (also the key of pooled connections).
        client: the client's transport, read by ssl_fc_sni only."""
        return self.expression(source, client)

    def resolve(self, source, client=None) -> tuple[ssl.SSLContext, str]:
        """(context, server_hostname) for create_connection ("": no SNI)."""
        name = self.expression(source, client)
        return (self.named, name) if name else (self.unnamed, "")


def server_context(server: Server, config: Config) -> tuple[ssl.SSLContext, str] | DynamicServerTls | None:
    """How to encrypt towards a `server ... ssl` line; None without ssl.

    (context, server_hostname) when the name sent is constant: the `sni`
    value, else `verifyhost`'s, else "" (no SNI, as HAProxy sends none without
    `sni`). A DynamicServerTls when `sni` depends on the request or the client
    (haply.tls.sni)."""
    options = _default_options(config, "server") + list(server.extra)
    flags = [o for o, _ in options if o in ("ssl", "no-ssl")]
    if not flags or flags[-1] != "ssl":
        return None
    verify_default = _global(config, "ssl-server-verify")
    verify = verify_default[0] if verify_default else "required"
    ca_file = verifyhost = cert = None
    expression: SniExpression | None = None
    alpn = None
    for option, value in options:
        if option == "verify":
            verify = value
        elif option == "ca-file":
            ca_file = _base(config, "ca-base", value)
        elif option == "sni":
            try:
                expression = compile_sni(value)
            except SniSyntaxError as exc:
                raise TlsOptionError(str(exc)) from None
        elif option == "verifyhost":
            verifyhost = value
        elif option == "crt":
            cert = _base(config, "crt-base", value)
        elif option == "alpn":
            alpn = [p for p in value.split(",") if p in HTTP1_PROTOCOLS] or ["http/1.1"]
    if verify != "none" and ca_file is None:
        raise TlsOptionError("'verify required' needs 'ca-file FILE' (or 'verify none')")
    sni = expression.constant if expression is not None else None

    def build(check_hostname: bool) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.options |= ssl.OP_NO_COMPRESSION
        context.set_ciphers(DEFAULT_CIPHERS)
        _apply_common(context, options)
        context.check_hostname = False
        if verify == "none":
            context.verify_mode = ssl.CERT_NONE
        else:
            try:
                if ca_file == "@system-ca":
                    context.load_default_certs()
                else:
                    context.load_verify_locations(cafile=ca_file)
            except (OSError, ssl.SSLError) as exc:
                raise TlsOptionError(f"ca-file '{ca_file}' cannot be loaded: {exc}") from None
            context.verify_mode = ssl.CERT_REQUIRED
            # OpenSSL checks the name given as server_hostname.
            context.check_hostname = check_hostname
        if cert is not None:
            bundle = load_crt(cert)[0]
            context.load_cert_chain(bundle.path, None if bundle.key_path == bundle.path else bundle.key_path)
        if alpn:
            context.set_alpn_protocols(alpn)
        return context

    if expression is not None and sni is None:
        if verifyhost and verify != "none":
            # Python's ssl checks the certificate against the name it sends.
            raise TlsOptionError(f"'verifyhost' with 'sni {expression.text}' is not supported by haply: "
                                 "the certificate is checked against the name sent; drop verifyhost")
        return DynamicServerTls(build(verify != "none"), build(False), expression)
    context = build(bool(verifyhost or sni))
    hostname = verifyhost if (verifyhost and not sni) else (sni or "")
    return context, hostname


def validate(config: Config, diagnostics: Diagnostics) -> None:
    """Load every certificate and build every context once, so `haply -c` and
    start-up report TLS problems with the line that names them."""
    for proxy in config.proxies:
        if proxy.is_frontend:
            for bind in proxy.binds:
                if bind_uses_tls(bind):
                    try:
                        bind_context(bind, proxy, config, diagnostics)
                    except (CertificateError, TlsOptionError) as exc:
                        diagnostics.error(bind.location, str(exc))
                    except ssl.SSLError as exc:
                        diagnostics.error(bind.location, f"TLS set-up failed: {exc.reason or exc}")
        if proxy.is_backend:
            for server in proxy.servers:
                try:
                    server_context(server, config)
                except (CertificateError, TlsOptionError) as exc:
                    diagnostics.error(server.location, f"server '{server.name}': {exc}")
                except ssl.SSLError as exc:
                    diagnostics.error(server.location, f"server '{server.name}': TLS set-up failed: {exc.reason or exc}")


__all__ = ["DEFAULT_CIPHERS", "DynamicServerTls", "TlsOptionError", "bind_context", "bind_uses_tls",
           "server_context", "set_ciphersuites", "validate"]
