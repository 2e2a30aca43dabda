"""haply.tls.sni: `sni EXPR` compiled once, evaluated per request."""

import ssl

import pytest
from hypothesis import given, strategies as st

from haply.tls.sni import (CLIENT_SNI_ATTRIBUTE, SniSyntaxError, client_sni, compile_sni,
                           record_client_sni, sendable)


class Source:
    """A request as the proxy's Request shows itself: header(lower-case name)."""

    def __init__(self, **headers):
        self.headers = {k.replace("_", "-"): v if isinstance(v, list) else [v] for k, v in headers.items()}

    def header(self, name):
        return self.headers.get(name, [])


class Transport:
    def __init__(self, ssl_object):
        self.ssl_object = ssl_object

    def get_extra_info(self, name):
        return self.ssl_object if name == "ssl_object" else None


class SslObject:
    pass


def test_constant():
    expression = compile_sni("str(api.internal)")
    assert expression.constant == "api.internal"
    assert expression(Source()) == "api.internal"
    assert compile_sni("str(API.Internal),lower").constant == "api.internal"
    assert compile_sni("str()").constant == ""


def test_host_header_as_written():
    expression = compile_sni("req.hdr(host)")
    assert expression.constant is None
    assert expression(Source(host="a.example")) == "a.example"
    assert expression(Source(host="b.example:8443")) == "b.example:8443"  # HAProxy keeps the port
    assert expression(Source(host="A.Example")) == "A.Example"
    assert expression(Source()) is None  # no Host: no SNI
    assert compile_sni("hdr(Host)")(Source(host="c.example")) == "c.example"


def test_field_strips_the_port_and_lower_folds():
    expression = compile_sni("req.hdr(host),field(1,:),lower")
    assert expression(Source(host="B.Example:8443")) == "b.example"
    assert expression(Source(host="b.example")) == "b.example"
    assert compile_sni("req.hdr(host),field(-1,.)")(Source(host="a.b.c")) == "c"
    assert compile_sni("req.hdr(host),field(3,.)")(Source(host="a.b")) is None


def test_occurrences_and_comma_splitting():
    source = Source(x_name=["one, two", "three"])
    assert compile_sni("req.hdr(x-name)")(source) == "three"  # the last, as HAProxy
    assert compile_sni("req.hdr(x-name,1)")(source) == "one"
    assert compile_sni("req.hdr(x-name,2)")(source) == "two"
    assert compile_sni("req.hdr(x-name,-2)")(source) == "two"
    assert compile_sni("req.hdr(x-name,9)")(source) is None
    assert compile_sni("req.fhdr(x-name,1)")(source) == "one, two"  # not split
    assert compile_sni("req.fhdr(x-name,-1)")(source) == "three"


def test_client_sni_read_lazily_from_the_transport():
    expression = compile_sni("ssl_fc_sni")
    ssl_object = SslObject()
    assert expression(Source(), Transport(ssl_object)) is None  # the client sent none
    record_client_sni(ssl_object, "front.example", None)
    assert getattr(ssl_object, CLIENT_SNI_ATTRIBUTE) == "front.example"
    assert expression(Source(), Transport(ssl_object)) == "front.example"
    assert expression(Source(), Transport(None)) is None  # plain TCP client
    assert expression(Source()) is None
    assert client_sni(None) is None


@pytest.mark.parametrize("text, words", [
    ("req.cook(x)", "fetch 'req.cook'"),
    ("req.hdr()", "needs a header name"),
    ("req.hdr(host,0)", "occurrence 0"),
    ("req.hdr(host,x)", "not a number"),
    ("req.hdr(host),base64", "converter 'base64'"),
    ("req.hdr(host),field(0,:)", "index"),
    ("req.hdr(host),field(1,:,2)", "count"),
    ("ssl_fc_sni(1)", "no argument"),
    ("%[req.hdr(host)]", "not a sample fetch"),
])
def test_refusals_say_what_is_supported(text, words):
    with pytest.raises(SniSyntaxError) as error:
        compile_sni(text)
    assert words in str(error.value)
    assert "req.hdr(NAME" in str(error.value) and f"'sni {text}'" in str(error.value)


def test_sendable_matches_what_pythons_ssl_accepts():
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    for name in ["a.example", "b.example:8443", "x" * 63 + ".example", "10.0.0.1", "bad host!"]:
        assert sendable(name) == name
        context.wrap_bio(ssl.MemoryBIO(), ssl.MemoryBIO(), server_hostname=name)
    for name in ["", ".leading", "x" * 64 + ".example", "nul\0byte", "caf\xe9.example", "a" * 254,
                 "0..", "a..example"]:  # empty labels (hypothesis found "0..")
        assert sendable(name) is None


@given(st.text(max_size=300))
def test_any_header_value_is_sendable_or_dropped(value):
    """A client writes the Host header: whatever it holds, the name handed to
    the TLS library is one it takes, or there is none."""
    name = compile_sni("req.hdr(host)")(Source(host=value))
    if name is None:
        return
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.wrap_bio(ssl.MemoryBIO(), ssl.MemoryBIO(), server_hostname=name)


@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=60))
def test_parser_refuses_or_compiles(text):
    try:
        expression = compile_sni(text)
    except SniSyntaxError:
        return
    result = expression(Source(host="h.example"))
    assert result is None or isinstance(result, str)


# ------------------------------------------------------- the bind side (ssl_fc_sni)

def _handshake(server_context: ssl.SSLContext, name: str | None):
    """A real TLS handshake in memory; returns the server's SSLObject."""
    client_context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client_context.check_hostname = False
    client_context.verify_mode = ssl.CERT_NONE
    c_in, c_out, s_in, s_out = (ssl.MemoryBIO() for _ in range(4))
    client = client_context.wrap_bio(c_in, c_out, server_hostname=name)
    server = server_context.wrap_bio(s_in, s_out, server_side=True)
    for _ in range(10):
        for side in (client, server):
            try:
                side.do_handshake()
            except ssl.SSLWantReadError:
                pass
        s_in.write(c_out.read())
        c_in.write(s_out.read())
    return server


@pytest.mark.parametrize("certificates", [1, 2])
def test_binds_record_the_client_name_only_when_a_server_reads_it(tmp_path, certificates):
    from haply.config.model import Bind, Config, Proxy, Server
    from haply.tls.context import bind_context
    from tests.support.certs import make_tls_files

    files = make_tls_files(tmp_path, ("front.example",))
    crts = [("crt", str(files.pem))]
    if certificates == 2:
        crts.append(("crt", str(files.issue(tmp_path, "other.pem", "other.example"))))
    bind = Bind("127.0.0.1", 443, options=(("ssl", ""), *crts))
    front = Proxy("front", "frontend", mode="http", binds=(bind,))
    reader = Server("s", "127.0.0.1", 443, extra=(("ssl", ""), ("verify", "none"), ("sni", "ssl_fc_sni")))
    back = Proxy("back", "backend", mode="http", servers=(reader,))
    recording = bind_context(bind, front, Config(proxies=(front, back)))
    server = _handshake(recording, "front.example")
    assert getattr(server, CLIENT_SNI_ATTRIBUTE) == "front.example"
    assert not hasattr(_handshake(recording, None), CLIENT_SNI_ATTRIBUTE)
    quiet = bind_context(bind, front, Config(proxies=(front,)))
    if certificates == 1:
        assert quiet.sni_callback is None  # nobody reads it: no Python call per handshake
