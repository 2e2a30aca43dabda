"""haply.tls.context: SSLContexts from bind/server options and global defaults."""

from __future__ import annotations

import ssl

import pytest

from haply.config.diagnostics import Diagnostics, Location
from haply.config.model import Bind, Config, Global, Proxy, Server
from haply.tls.context import (DEFAULT_CIPHERS, TlsOptionError, bind_context, server_context,
                               set_ciphersuites)
from tests.support.certs import make_tls_files

HERE = Location("haproxy.cfg", 7)


@pytest.fixture
def pem(tmp_path):
    return str(make_tls_files(tmp_path).pem)


def bind(*options: tuple[str, str]) -> Bind:
    return Bind("127.0.0.1", 443, options=(("ssl", ""),) + options, location=HERE)


def config(*extra) -> Config:
    return Config(global_=Global(extra=tuple(extra)))


HTTP = Proxy("fe", "frontend", mode="http")


def test_defaults(pem):
    context = bind_context(bind(("crt", pem)), HTTP, config())
    assert context.minimum_version == ssl.TLSVersion.TLSv1_2
    assert context.options & ssl.OP_NO_COMPRESSION and context.options & ssl.OP_NO_RENEGOTIATION
    assert not context.options & ssl.OP_NO_TICKET
    names = {c["name"] for c in context.get_ciphers() if c["protocol"] == "TLSv1.2"}
    assert names and names <= set(DEFAULT_CIPHERS.split(":"))
    assert context.verify_mode == ssl.CERT_NONE


def test_line_options_win_over_global_defaults(pem):
    cfg = config(("ssl-default-bind-options", ("ssl-min-ver", "TLSv1.3", "no-tls-tickets")),
                 ("ssl-default-bind-ciphers", ("ECDHE-RSA-AES128-GCM-SHA256",)))
    context = bind_context(bind(("crt", pem)), HTTP, cfg)
    assert context.minimum_version == ssl.TLSVersion.TLSv1_3
    assert context.options & ssl.OP_NO_TICKET
    context = bind_context(bind(("crt", pem), ("ssl-min-ver", "TLSv1.2"), ("ssl-max-ver", "TLSv1.2")), HTTP, cfg)
    assert (context.minimum_version, context.maximum_version) == (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_2)


@pytest.mark.parametrize("options,low,high", [
    ((("no-tlsv13", ""),), ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_2),
    ((("no-tlsv12", ""),), ssl.TLSVersion.TLSv1_3, ssl.TLSVersion.TLSv1_3),
    ((("force-tlsv12", ""),), ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_2),
])
def test_version_flags(pem, options, low, high):
    context = bind_context(bind(("crt", pem), *options), HTTP, config())
    assert (context.minimum_version, context.maximum_version) == (low, high)


@pytest.mark.parametrize("options,message", [
    ((("ssl-min-ver", "TLSv9"),), "expected one of"),
    ((("ssl-max-ver", "TLSv1.1"),), "lower than the minimum"),
    ((("no-tlsv12", ""), ("no-tlsv13", "")), "every TLS version is disabled"),
    ((("ciphers", "NOPE-NOTHING"),), "knows none of these ciphers"),
    ((("ciphersuites", "TLS_NOPE"),), "knows none of these TLS 1.3 suites"),
    ((("verify", "required"),), "needs 'ca-file FILE'"),
    ((("verify", "sometimes"),), "expected none, optional or required"),
])
def test_option_errors(pem, options, message):
    with pytest.raises(TlsOptionError, match=message):
        bind_context(bind(("crt", pem), *options), HTTP, config())


def test_no_certificate():
    with pytest.raises(TlsOptionError, match="needs a certificate"):
        bind_context(bind(), HTTP, config())


def test_alpn_h2_dropped_for_http_with_warning(pem):
    diagnostics = Diagnostics()
    bind_context(bind(("crt", pem), ("alpn", "h2,http/1.1")), HTTP, config(), diagnostics)
    [warning] = diagnostics.warnings
    assert str(warning).startswith("haproxy.cfg:7: warning: 'alpn h2,http/1.1'")
    diagnostics = Diagnostics()
    bind_context(bind(("crt", pem), ("alpn", "h2,http/1.1")), Proxy("t", "frontend", mode="tcp"), config(),
                 diagnostics)
    assert diagnostics.warnings == []


def test_ciphersuites_setter_reaches_openssl(pem):
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    set_ciphersuites(context, "TLS_AES_256_GCM_SHA384")
    tls13 = [c["name"] for c in context.get_ciphers() if c["protocol"] == "TLSv1.3"]
    assert tls13 == ["TLS_AES_256_GCM_SHA384"]


def server(*extra) -> Server:
    return Server("s1", "127.0.0.1", 443, extra=tuple(extra))


def test_server_contexts(tmp_path):
    files = make_tls_files(tmp_path)
    assert server_context(server(), config()) is None
    assert server_context(server(("ssl", ""), ("no-ssl", "")), config()) is None
    context, name = server_context(server(("ssl", ""), ("verify", "none")), config())
    assert context.verify_mode == ssl.CERT_NONE and name == ""
    context, name = server_context(server(("ssl", ""), ("ca-file", str(files.ca_file)),
                                          ("sni", "str(api.internal)")), config())
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname and name == "api.internal"
    with pytest.raises(TlsOptionError, match="needs 'ca-file FILE'"):
        server_context(server(("ssl", "")), config())
    # ssl-server-verify none in global turns verification off by default
    context, _ = server_context(server(("ssl", "")), config(("ssl-server-verify", ("none",))))
    assert context.verify_mode == ssl.CERT_NONE


def test_crt_base_and_ca_base_resolve_relative_names(tmp_path):
    files = make_tls_files(tmp_path)
    cfg = config(("crt-base", (str(tmp_path),)), ("ca-base", (str(tmp_path),)))
    context = bind_context(bind(("crt", files.pem.name), ("ca-file", files.ca_file.name), ("verify", "optional")),
                           HTTP, cfg)
    assert context.verify_mode == ssl.CERT_OPTIONAL
    context, _ = server_context(server(("ssl", ""), ("ca-file", files.ca_file.name)), cfg)
    assert context.verify_mode == ssl.CERT_REQUIRED


def test_several_certificates_select_by_sni_callback(tmp_path):
    files = make_tls_files(tmp_path)
    second = files.issue(tmp_path, "second.pem", "second.test")
    context = bind_context(bind(("crt", str(files.pem)), ("crt", str(second))), HTTP, config())
    assert context.sni_callback is not None
    single = bind_context(bind(("crt", str(files.pem))), HTTP, config())
    assert single.sni_callback is None  # one certificate: no callback on the handshake path
