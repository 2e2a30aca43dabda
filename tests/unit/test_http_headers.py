"""haply.http.headers: request/response heads, hop-by-hop, forwardfor, header rules."""

from __future__ import annotations

import httptools
import pytest
from hypothesis import example, given, settings, strategies as st

from haply.config.diagnostics import Location
from haply.config.model import Condition, ForwardFor, HeaderRule, OriginalTo, Proxy
from haply.http.errors import LocalProtocolError
from haply.http.framing import CHUNKED, LENGTH, NONE, UNTIL_CLOSE, Framing
from haply.http.framing import response_framing
from haply.http.errors import RemoteProtocolError
from haply.http.headers import (
    RequestHeadWriter, ResponseHeadWriter, SampleContext, compile_forward_for,
    compile_header_rules, compile_original_to, compile_value, for_route, parse_fields,
)

CTX = SampleContext("192.0.2.7", 40000, "127.0.0.1", 8080)
NO_BODY = Framing(NONE)


def parse_request(head: bytes) -> tuple[bytes, bytes, str, list[tuple[bytes, bytes]]]:
    """Parse what the writer produced with httptools, as the server would."""
    class Sink:
        def __init__(self):
            self.url, self.headers = b"", []

        def on_url(self, url):
            self.url += url

        def on_header(self, name, value):
            self.headers.append((name, value))

    sink = Sink()
    parser = httptools.HttpRequestParser(sink)
    try:
        parser.feed_data(head)
    except httptools.HttpParserUpgrade:
        pass
    return parser.get_method(), sink.url, parser.get_http_version(), sink.headers


def names(headers) -> list[bytes]:
    return [name.lower() for name, _ in headers]


def rule(action, name, value=None, condition=None):
    return HeaderRule(action, name, value, condition, Location("haproxy.cfg", 12))


def write(writer, headers, framing=NO_BODY, keep_alive=True, version="1.1", ctx=CTX,
          upgrade=False):
    head = writer.write(b"GET", b"/p?q", version, headers, framing, keep_alive, ctx,
                        upgrade=upgrade)
    assert head.endswith(b"\r\n\r\n")
    return parse_request(head)


# ------------------------------------------------------------------- basics


def test_plain_request_is_forwarded_unchanged():
    headers = [(b"Host", b"api"), (b"Accept", b"*/*"), (b"X-Empty", b"")]
    head = RequestHeadWriter().write(b"GET", b"/v3/auth?x=1", "1.1", headers, NO_BODY,
                                     True, CTX)
    assert head == b"GET /v3/auth?x=1 HTTP/1.1\r\nHost: api\r\nAccept: */*\r\nX-Empty: \r\n\r\n"


def test_unknown_version_is_a_local_error():
    with pytest.raises(LocalProtocolError):
        RequestHeadWriter().write(b"GET", b"/", "2.0", [], NO_BODY, True, CTX)


def test_a_server_speaking_http_1_2_is_answered_for_in_http_1_1():
    head = ResponseHeadWriter().write("1.2", 200, b"OK", [(b"Content-Length", b"2")],
                                      Framing(LENGTH, 2), True, "1.1", CTX)
    assert head == b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n"
    with pytest.raises(LocalProtocolError):
        ResponseHeadWriter().write("2.0", 200, b"OK", [], Framing(LENGTH, 0), True, "1.1", CTX)


def test_hop_by_hop_fields_are_removed():
    headers = [(b"Host", b"a"), (b"Connection", b"X-Foo, TE, Keep-Alive"), (b"X-Foo", b"1"),
               (b"TE", b"trailers"), (b"Keep-Alive", b"300"),
               (b"Proxy-Connection", b"keep-alive"), (b"Upgrade", b"h2c"), (b"X-Bar", b"2"),
               (b"x-foo", b"again")]
    _, _, _, out = write(RequestHeadWriter(), headers)
    assert out == [(b"Host", b"a"), (b"X-Bar", b"2")]


@pytest.mark.parametrize("pass_options", [False, True])
def test_fields_named_by_connection_go_wherever_they_are(pass_options):
    from haply.http.framing import connection_options
    headers = [(b"X-Early", b"1"), (b"Host", b"a"), (b"connection", b"x-early"),
               (b"Connection", b"X-LATE"), (b"x-late", b"2"), (b"X-Keep", b"3")]
    options = connection_options(headers) if pass_options else None
    head = RequestHeadWriter().write(b"GET", b"/", "1.1", headers, NO_BODY, True, CTX,
                                     options=options)
    assert parse_request(head)[3] == [(b"Host", b"a"), (b"X-Keep", b"3")]


def test_connection_cannot_smuggle_away_forwardfor_if_none():
    writer = RequestHeadWriter((), compile_forward_for(ForwardFor(if_none=True), None))
    headers = [(b"X-Forwarded-For", b"6.6.6.6"), (b"Connection", b"X-Forwarded-For")]
    assert write(writer, headers)[3] == [(b"X-Forwarded-For", b"192.0.2.7")]


def test_connection_cannot_remove_host():
    headers = [(b"Host", b"a"), (b"Connection", b"close, Host")]
    _, _, _, out = write(RequestHeadWriter(), headers)
    assert (b"Host", b"a") in out


def test_upgrade_is_kept_when_tunnelling():
    headers = [(b"Host", b"a"), (b"Connection", b"Upgrade"), (b"Upgrade", b"websocket")]
    _, _, _, out = write(RequestHeadWriter(), headers, upgrade=True)
    assert out == [(b"Host", b"a"), (b"Upgrade", b"websocket"), (b"Connection", b"upgrade")]


# -------------------------------------------------------------- framing fields


@pytest.mark.parametrize("fields,framing,expected", [
    ([(b"Content-Length", b"0003 ")], Framing(LENGTH, 3), [(b"Content-Length", b"3")]),
    ([(b"Content-Length", b"0")], Framing(LENGTH, 0), [(b"Content-Length", b"0")]),
    ([(b"Transfer-Encoding", b"CHUNKED")], Framing(CHUNKED),
     [(b"Transfer-Encoding", b"chunked")]),
])
def test_framing_fields_are_reemitted_canonically(fields, framing, expected):
    _, _, _, out = write(RequestHeadWriter(), [(b"Host", b"a")] + fields, framing)
    assert out == [(b"Host", b"a")] + expected


def test_response_without_body_keeps_its_content_length():
    writer = ResponseHeadWriter()
    head = writer.write("1.1", 304, b"Not Modified", [(b"Content-Length", b"512")],
                        Framing(NONE), True, "1.1", CTX)
    assert head == b"HTTP/1.1 304 Not Modified\r\nContent-Length: 512\r\n\r\n"


# -------------------------------------------------------- Connection emitted


@pytest.mark.parametrize("version,keep,expected", [
    # Observed with HAProxy 2.6 (see module doc of haply.http.headers).
    ("1.1", True, None), ("1.0", True, b"keep-alive"),
    ("1.1", False, b"close"), ("1.0", False, None),
])
def test_connection_towards_the_server(version, keep, expected):
    headers = [(b"Host", b"a"), (b"Connection", b"close")]
    _, _, got_version, out = write(RequestHeadWriter(), headers, keep_alive=keep,
                                   version=version)
    assert got_version == version
    connection = [v for n, v in out if n.lower() == b"connection"]
    assert connection == ([] if expected is None else [expected])


@pytest.mark.parametrize("request_version,keep,framing,expected", [
    ("1.1", True, Framing(LENGTH, 2), None),
    ("1.0", True, Framing(LENGTH, 2), b"Connection: keep-alive\r\n"),
    ("1.1", False, Framing(LENGTH, 2), b"Connection: close\r\n"),
    ("1.0", False, Framing(LENGTH, 2), b"Connection: close\r\n"),
    ("1.1", True, Framing(UNTIL_CLOSE), b"Connection: close\r\n"),
])
def test_connection_towards_the_client(request_version, keep, framing, expected):
    head = ResponseHeadWriter().write(
        "1.1", 200, b"OK", [(b"Content-Length", b"2"), (b"Connection", b"close")], framing,
        keep, request_version, CTX)
    assert head.count(b"Connection") == (0 if expected is None else 1)
    if expected:
        assert expected in head
    assert head.startswith(b"HTTP/1.1 200 OK\r\n")


def test_interim_and_upgrade_responses():
    writer = ResponseHeadWriter()
    assert writer.write("1.1", 100, b"Continue", [], NO_BODY, False, "1.0", CTX) == \
        b"HTTP/1.1 100 Continue\r\n\r\n"
    head = writer.write("1.1", 101, b"Switching Protocols",
                        [(b"Upgrade", b"websocket"), (b"Connection", b"Upgrade")], NO_BODY,
                        True, "1.1", CTX, upgrade=True)
    assert head == (b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                    b"Connection: upgrade\r\n\r\n")


def test_sample_context_from_sockets():
    ctx = SampleContext.from_sockets(("::ffff:10.0.0.9", 4242, 0, 0), ("10.0.0.1", 443),
                                     ssl_fc=True)
    assert (ctx.src, ctx.src_port, ctx.dst, ctx.dst_port, ctx.ssl_fc) == \
        (b"10.0.0.9", b"4242", b"10.0.0.1", b"443", b"1")
    unix = SampleContext.from_sockets("", "/run/haply.sock")
    assert (unix.src, unix.src_ip, unix.src_port) == (b"", None, b"0")


# ------------------------------------------------------------------ forwardfor


def ff_writer(frontend=None, backend=None):
    return RequestHeadWriter((), compile_forward_for(frontend, backend))


def test_forwardfor_appends_the_client_address_last():
    headers = [(b"Host", b"a"), (b"X-Forwarded-For", b"10.9.9.9")]
    _, _, _, out = write(ff_writer(ForwardFor()), headers)
    assert out == [(b"Host", b"a"), (b"X-Forwarded-For", b"10.9.9.9"),
                   (b"X-Forwarded-For", b"192.0.2.7")]


def test_forwardfor_custom_header_backend_name_wins():
    _, _, _, out = write(ff_writer(ForwardFor(header="X-Fe"), ForwardFor(header="X-Client")),
                         [(b"Host", b"a")])
    assert out[-1] == (b"X-Client", b"192.0.2.7")


@pytest.mark.parametrize("src,network,added", [
    ("127.0.0.1", "127.0.0.1", False), ("127.0.0.2", "127.0.0.1", True),
    ("10.1.2.3", "10.0.0.0/8", False), ("::ffff:10.1.2.3", "10.0.0.0/8", False),
    ("::1", "10.0.0.0/8", True), ("fd00::5", "fd00::/8", False), ("", "10.0.0.0/8", True),
])
def test_forwardfor_except(src, network, added):
    ctx = SampleContext(src, 1, "127.0.0.1", 80)
    _, _, _, out = write(ff_writer(ForwardFor(except_network=network)), [(b"Host", b"a")],
                         ctx=ctx)
    assert (b"x-forwarded-for" in names(out)) is added


def test_forwardfor_mapped_ipv6_prints_as_ipv4():
    ctx = SampleContext("::ffff:192.0.2.9", 1, "::", 80)
    _, _, _, out = write(ff_writer(ForwardFor()), [], ctx=ctx)
    assert out == [(b"X-Forwarded-For", b"192.0.2.9")]


# (frontend's except, backend's except) -> added, for a client at 127.0.0.1; None:
# the proxy does not enable the option, "": enabled without except. HAProxy 2.6
# leaves the field out when either enabling proxy excepts the client.
EXCEPT_MERGES = [
    ("127.0.0.0/8", None, False), (None, "127.0.0.0/8", False),
    ("127.0.0.0/8", "", False), ("", "127.0.0.0/8", False),
    ("10.0.0.0/8", "127.0.0.0/8", False), ("127.0.0.0/8", "10.0.0.0/8", False),
    ("10.0.0.0/8", "10.0.0.0/8", True), ("10.0.0.0/8", "", True), ("", None, True),
]


@pytest.mark.parametrize("frontend,backend,added", EXCEPT_MERGES)
def test_forwardfor_except_of_either_proxy_skips_the_field(frontend, backend, added):
    writer = ff_writer(*(None if net is None else ForwardFor(except_network=net or None)
                         for net in (frontend, backend)))
    ctx = SampleContext("127.0.0.1", 1, "192.0.2.1", 80)
    assert (b"x-forwarded-for" in names(write(writer, [], ctx=ctx)[3])) is added


def test_forwardfor_if_none():
    writer = ff_writer(ForwardFor(if_none=True))
    assert write(writer, [(b"x-forwarded-for", b"1.1.1.1")])[3] == \
        [(b"x-forwarded-for", b"1.1.1.1")]
    assert write(writer, [])[3] == [(b"X-Forwarded-For", b"192.0.2.7")]
    # if-none counts only when every enabling proxy says it.
    both = ff_writer(ForwardFor(if_none=True), ForwardFor())
    assert len(write(both, [(b"x-forwarded-for", b"1.1.1.1")])[3]) == 2


def test_forwardfor_comes_after_rules():
    ops = compile_header_rules([rule("del-header", "X-Forwarded-For")])
    writer = RequestHeadWriter(ops, compile_forward_for(ForwardFor(), None))
    assert write(writer, [(b"X-Forwarded-For", b"6.6.6.6")])[3] == \
        [(b"X-Forwarded-For", b"192.0.2.7")]


def test_forwardfor_invalid_network():
    with pytest.raises(ValueError, match="invalid network"):
        compile_forward_for(ForwardFor(except_network="10.0.0.300/8"), None)


# ------------------------------------------------------------------ originalto


def ot_writer(frontend=None, backend=None, forward_for=None):
    return RequestHeadWriter((), forward_for, compile_original_to(frontend, backend))


def test_originalto_appends_the_destination_address_after_forwardfor():
    """The client's own X-Original-To stays; haply's comes last, after
    X-Forwarded-For, as HAProxy 2.6 writes them."""
    writer = ot_writer(OriginalTo(), forward_for=compile_forward_for(ForwardFor(), None))
    headers = [(b"Host", b"a"), (b"X-Original-To", b"9.9.9.9")]
    assert write(writer, headers)[3] == headers + [
        (b"X-Forwarded-For", b"192.0.2.7"), (b"X-Original-To", b"127.0.0.1")]


@pytest.mark.parametrize("dst,printed", [
    ("127.0.0.1", b"127.0.0.1"), ("::1", b"::1"), ("fd00:0:0::5", b"fd00::5"),
    ("::ffff:192.0.2.9", b"192.0.2.9"),  # a dual-stack listener: as forwardfor prints it
])
def test_originalto_prints_ipv4_and_ipv6(dst, printed):
    ctx = SampleContext("192.0.2.7", 1, dst, 80)
    assert write(ot_writer(OriginalTo()), [], ctx=ctx)[3] == [(b"X-Original-To", printed)]


def test_originalto_backend_name_wins():
    writer = ot_writer(OriginalTo(header="X-Fe"), OriginalTo(header="X-Client-Dst"))
    assert write(writer, [])[3] == [(b"X-Client-Dst", b"127.0.0.1")]
    assert write(ot_writer(OriginalTo(header="X-Fe")), [])[3] == [(b"X-Fe", b"127.0.0.1")]


@pytest.mark.parametrize("dst,network,added", [
    ("127.0.0.1", "127.0.0.1", False), ("127.0.0.2", "127.0.0.1", True),
    ("10.1.2.3", "10.0.0.0/8", False), ("::1", "::1", False), ("::1", "10.0.0.0/8", True),
    ("fd00::5", "fd00::/8", False), ("", "10.0.0.0/8", True),
])
def test_originalto_except_looks_at_the_destination(dst, network, added):
    ctx = SampleContext("10.9.9.9", 1, dst, 80)  # the client's address plays no part
    out = write(ot_writer(OriginalTo(except_network=network)), [], ctx=ctx)[3]
    assert (b"x-original-to" in names(out)) is added


@pytest.mark.parametrize("frontend,backend,added", EXCEPT_MERGES)
def test_originalto_except_merges_as_forwardfor(frontend, backend, added):
    writer = ot_writer(*(None if net is None else OriginalTo(except_network=net or None)
                         for net in (frontend, backend)))
    ctx = SampleContext("192.0.2.1", 1, "127.0.0.1", 80)
    assert (b"x-original-to" in names(write(writer, [], ctx=ctx)[3])) is added


def test_originalto_on_a_plain_request_and_for_a_route():
    fe = Proxy("fe", "frontend", mode="http", original_to=OriginalTo(header="X-Fe"))
    be = Proxy("be", "backend", mode="http", original_to=OriginalTo(except_network="10.0.0.0/8"))
    writer, _ = for_route(fe, be)
    assert writer.plain
    head = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"
    assert writer.write_plain(head, None, "1.1", True, CTX) == (
        b"GET / HTTP/1.1\r\nHost: a\r\nX-Original-To: 127.0.0.1\r\n\r\n")
    assert for_route(fe, fe)[0].original_to.name == b"X-Fe"
    assert for_route(Proxy("fe", "frontend"), Proxy("be", "backend"))[0].original_to is None


def test_originalto_invalid_network():
    with pytest.raises(ValueError, match="option originalto: invalid network"):
        compile_original_to(None, OriginalTo(except_network="10.0.0.300/8"))


# --------------------------------------------------------------- header rules


def test_set_add_del_in_order_case_insensitive():
    ops = compile_header_rules([
        rule("add-header", "X-Tag", "one"),
        rule("set-header", "x-forwarded-proto", "https"),
        rule("del-header", "x-secret"),
        rule("add-header", "X-Tag", "two"),
        rule("redirect", "ignored"),  # not a header action: left to other layers
    ])
    headers = [(b"Host", b"a"), (b"X-Forwarded-Proto", b"http"), (b"X-SECRET", b"s"),
               (b"x-forwarded-proto", b"ftp"), (b"X-Tag", b"zero")]
    _, _, _, out = write(RequestHeadWriter(ops), headers)
    assert out == [(b"Host", b"a"), (b"X-Tag", b"zero"), (b"X-Tag", b"one"),
                   (b"x-forwarded-proto", b"https"), (b"X-Tag", b"two")]


def test_later_rules_see_fields_added_by_earlier_ones():
    ops = compile_header_rules([rule("add-header", "X-A", "1"), rule("del-header", "x-a"),
                                rule("add-header", "X-B", "1"), rule("set-header", "X-B", "2")])
    assert write(RequestHeadWriter(ops), [])[3] == [(b"X-B", b"2")]


def test_dynamic_values_and_conditions():
    seen = []

    def compile_condition(condition):
        def check(ctx):
            seen.append(ctx)
            return ctx.ssl_fc == b"1"
        return check

    cond = Condition(False, ((),))
    ops = compile_header_rules([
        rule("set-header", "X-Forwarded-Proto", "https", cond),
        rule("add-header", "X-Client", "%[src]:%[src_port] via %fi:%fp %% ssl=%[ssl_fc]"),
    ], compile_condition)
    writer = RequestHeadWriter(ops)
    plain = write(writer, [])[3]
    assert plain == [(b"X-Client", b"192.0.2.7:40000 via 127.0.0.1:8080 % ssl=0")]
    tls = SampleContext("192.0.2.7", 40000, "127.0.0.1", 8443, ssl_fc=True)
    assert write(writer, [], ctx=tls)[3][0] == (b"X-Forwarded-Proto", b"https")
    assert seen == [CTX, tls]


def test_condition_without_evaluator_is_a_config_error():
    with pytest.raises(ValueError, match=r"haproxy.cfg:12: set-header: .*ACL"):
        compile_header_rules([rule("set-header", "X", "1", Condition(False, ((),)))])


def test_response_rules():
    ops = compile_header_rules([rule("del-header", "Server"),
                                rule("set-header", "Strict-Transport-Security",
                                     "max-age=31536000")])
    head = ResponseHeadWriter(ops).write(
        "1.1", 200, b"OK", [(b"Server", b"Apache"), (b"Content-Length", b"2")],
        Framing(LENGTH, 2), True, "1.1", CTX)
    # The framing field keeps its place (as with HAProxy); rule fields come after.
    assert head == (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n"
                    b"Strict-Transport-Security: max-age=31536000\r\n\r\n")


# -------------------------------------------------------------- compile_value


@pytest.mark.parametrize("fmt,expected", [
    ("", b""), ("https", b"https"), ("100%%", b"100%"), ("%%%%", b"%%"),
    ("%[src]", b"192.0.2.7"), ("%ci:%cp", b"192.0.2.7:40000"), ("%[ dst ]", b"127.0.0.1"),
    ("a%[dst_port]b", b"a8080b"), ("caf\u00e9", "caf\u00e9".encode()),
])
def test_compile_value(fmt, expected):
    value = compile_value(fmt)
    assert (value if isinstance(value, bytes) else value(CTX)) == expected


def test_literal_value_compiles_to_bytes():
    assert compile_value("plain") == b"plain"


@pytest.mark.parametrize("fmt,words", [
    ("%", "'%'"), ("50%", "'%'"), ("%[req.hdr(host)]", "%[req.hdr(host)]"),
    ("%[src,sha1]", "'sha1'"), ("%{+Q}ci", "'%{'"), ("%[src", "missing"),
    ("%HM", "'%HM'"), ("a\r\nX-Evil: 1", "control character"), ("\x00", "control"),
])
def test_compile_value_refuses(fmt, words):
    with pytest.raises(ValueError) as info:
        compile_value(fmt)
    assert words in str(info.value)
    if "unsupported" in str(info.value):
        assert "%[src]" in str(info.value)  # the message lists what is supported


def test_invalid_rule_name():
    with pytest.raises(ValueError, match="haproxy.cfg:12: add-header: invalid header name"):
        compile_header_rules([rule("add-header", "X Y", "1")])


# ------------------------------------------------------------------ for_route


def test_for_route_orders_rules_like_haproxy():
    fe = Proxy("fe", "frontend", mode="http", forward_for=ForwardFor(),
               http_request_rules=(rule("add-header", "X-Order", "fe"),),
               http_response_rules=(rule("add-header", "X-Order", "fe"),))
    be = Proxy("be", "backend", mode="http",
               http_request_rules=(rule("add-header", "X-Order", "be"),),
               http_response_rules=(rule("add-header", "X-Order", "be"),))
    request_writer, response_writer = for_route(fe, be)
    assert write(request_writer, [])[3] == [(b"X-Order", b"fe"), (b"X-Order", b"be"),
                                            (b"X-Forwarded-For", b"192.0.2.7")]
    head = response_writer.write("1.1", 200, b"OK", [], Framing(LENGTH, 0), True, "1.1", CTX)
    assert head.index(b"X-Order: be") < head.index(b"X-Order: fe")


def test_for_route_listen_uses_its_rules_once():
    listen = Proxy("api", "listen", mode="http",
                   http_request_rules=(rule("add-header", "X-Once", "1"),))
    request_writer, _ = for_route(listen, listen)
    assert write(request_writer, [])[3] == [(b"X-Once", b"1")]


# ------------------------------------------------------------------ hypothesis

_token = st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-_!#",
                 min_size=1, max_size=12).map(str.encode)
_value = st.binary(max_size=20).map(lambda v: bytes(b for b in v if b >= 0x20 and b != 0x7f)
                                    .strip(b" "))


@settings(max_examples=200, deadline=None)
@given(fields=st.lists(st.tuples(_token, _value), max_size=15),
       framing=st.sampled_from([Framing(NONE), Framing(LENGTH, 5), Framing(CHUNKED)]),
       keep=st.booleans(), version=st.sampled_from(["1.0", "1.1"]))
def test_written_requests_always_parse_and_keep_end_to_end_fields(fields, framing, keep,
                                                                  version):
    writer = RequestHeadWriter((), compile_forward_for(ForwardFor(), None))
    method, url, got_version, out = write(writer, fields, framing, keep, version)
    assert (method, url, got_version) == (b"GET", b"/p?q", version)
    dropped = {b"connection", b"keep-alive", b"proxy-connection", b"te", b"upgrade",
               b"content-length", b"transfer-encoding"}
    from haply.http.framing import connection_options
    dropped |= connection_options(fields) - {b"host"}
    kept = [(n, v) for n, v in fields if n.lower() not in dropped]
    assert out[:len(kept)] == kept
    assert (b"X-Forwarded-For", b"192.0.2.7") in out[len(kept):]


# ------------------------------------------------- raw heads (no field list)


def llhttp_fields(head: bytes) -> list[tuple[bytes, bytes]] | None:
    """The fields llhttp reports for a response head, or None if it refuses it."""
    class Sink:
        def __init__(self):
            self.headers = []

        def on_header(self, name, value):
            self.headers.append((name, value))

    sink = Sink()
    try:
        httptools.HttpResponseParser(sink).feed_data(head)
    except httptools.HttpParserError:
        return None
    return sink.headers


_special_name = st.sampled_from([b"Connection", b"connection", b"Keep-Alive", b"TE",
                                 b"Upgrade", b"Proxy-Connection", b"Content-Length",
                                 b"content-length", b"Transfer-Encoding", b"X-Kept",
                                 b"Set-Cookie", b"Content-Type", b"Tea"])
_special_value = st.sampled_from([b"keep-alive", b"close", b"Close, X-Kept", b"5", b"12",
                                  b"0012", b"chunked", b"Chunked", b"gzip", b"x", b"",
                                  b"upgrade"])
_spacing = st.sampled_from([b": ", b":", b":  ", b":\t"])


@settings(max_examples=300, deadline=None)
@given(fields=st.lists(st.tuples(st.one_of(_special_name, _token),
                                 st.one_of(_special_value, _value), _spacing), max_size=10),
       status=st.sampled_from([200, 204, 304, 404]), method=st.sampled_from([b"GET", b"HEAD"]),
       keep=st.booleans(), request_version=st.sampled_from(["1.0", "1.1"]),
       rules=st.sampled_from([(), (rule("del-header", "X-Kept"),),
                              (rule("set-header", "X-Added", "1"),)]))
# A framing value in another case than the canonical one (found by hypothesis):
# both paths write "chunked".
@example(fields=[(b"Transfer-Encoding", b"Chunked", b": ")], status=200, method=b"GET",
         keep=False, request_version="1.0", rules=())
def test_raw_response_head_is_written_as_from_the_field_list(fields, status, method, keep,
                                                              request_version, rules):
    """write_raw, from the server's bytes, gives write()'s head with the kept
    fields exactly as the server spaced them; framing read from scan() is the
    framing read from the whole list."""
    head = b"HTTP/1.1 %d Fine\r\n" % status + b"".join(
        name + spacing + value + b"\r\n" for name, value, spacing in fields) + b"\r\n"
    parsed = llhttp_fields(head)
    if parsed is None:
        return  # llhttp refuses it (duplicate Content-Length ...): never reaches a writer
    assert parse_fields(head) == parsed
    writer = ResponseHeadWriter(compile_header_rules(rules))
    low, found = writer.scan(head)
    try:
        framing = response_framing(method, status, "1.1", parsed)
    except RemoteProtocolError as exc:
        with pytest.raises(RemoteProtocolError) as raised:
            response_framing(method, status, "1.1", found)
        assert str(raised.value) == str(exc)
        return
    assert response_framing(method, status, "1.1", found) == framing
    raw = writer.write_raw(head, low, found, status, framing, keep, request_version)
    expected = writer.write("1.1", status, b"Fine", parsed, framing, keep, request_version, CTX)
    if raw is None:
        # Only a Connection option naming a field falls back to the list.
        from haply.http.framing import connection_options
        assert connection_options(parsed) - {b"close", b"keep-alive", b"upgrade", b"host",
                                             b"content-length", b"transfer-encoding"}
        return
    normal = b"".join(name + b": " + value + b"\r\n" for name, value in llhttp_fields(raw))
    assert raw.split(b"\r\n", 1)[0] == expected.split(b"\r\n", 1)[0]
    assert normal == b"".join(name + b": " + value + b"\r\n"
                              for name, value in llhttp_fields(expected))


def test_raw_response_head_keeps_the_server_bytes():
    head = (b"HTTP/1.1 200 OK\r\nServer: nginx\r\nContent-Length: 5\r\n"
            b"Connection: keep-alive\r\nX-A:b\r\n\r\n")
    writer = ResponseHeadWriter()
    low, fields = writer.scan(head)
    assert fields == [(b"content-length", b"5"), (b"connection", b"keep-alive")]
    assert writer.write_raw(head, low, fields, 200, Framing(LENGTH, 5), True, "1.1") == (
        b"HTTP/1.1 200 OK\r\nServer: nginx\r\nContent-Length: 5\r\nX-A:b\r\n\r\n")
    assert writer.write_raw(head, low, fields, 200, Framing(LENGTH, 5), False, "1.1") == (
        b"HTTP/1.1 200 OK\r\nServer: nginx\r\nContent-Length: 5\r\nX-A:b\r\n"
        b"Connection: close\r\n\r\n")
    # A status line without a reason phrase, or rules that read the request,
    # are left to write().
    bare = b"HTTP/1.1 200\r\nContent-Length: 5\r\n\r\n"
    assert writer.write_raw(bare, *writer.scan(bare), 200, Framing(LENGTH, 5), True,
                            "1.1") is None


@settings(max_examples=300, deadline=None)
@given(fields=st.lists(st.tuples(st.one_of(st.sampled_from([b"Host", b"User-Agent", b"X-Forwarded-For",
                                                          b"Accept", b"X-Long-Name-Field"]),
                                           _token),
                                 _value, _spacing), max_size=10),
       connection=st.sampled_from([None, b"keep-alive", b"close", b"Keep-Alive"]),
       version=st.sampled_from(["1.0", "1.1"]), keep=st.booleans(),
       rules=st.sampled_from([(), (rule("add-header", "X-Added", "1"),)]),
       src=st.sampled_from(["192.0.2.7", "10.1.2.3"]))
def test_plain_request_head_passes_as_received(fields, connection, version, keep, rules, src):
    """write_plain, from the client's bytes, gives the fields write() gives
    from the list (spacing aside) for heads without hop-by-hop or framing
    fields, a plain Connection field cut."""
    from haply.http.headers import REWRITTEN
    fields = [f for f in fields if f[0].lower() not in REWRITTEN]
    if connection is not None:
        fields.insert(len(fields) // 2, (b"Connection", connection, b": "))
    head = (b"GET /p?q HTTP/%s\r\n" % version.encode() + b"".join(
        name + spacing + value + b"\r\n" for name, value, spacing in fields) + b"\r\n")
    method, url, got_version, parsed = parse_request(head)
    if got_version != version:
        return  # llhttp refused it
    ctx = SampleContext(src, 40000, "127.0.0.1", 8080)
    writer = RequestHeadWriter(compile_header_rules(rules),
                               compile_forward_for(ForwardFor(except_network="10.0.0.0/8"), None),
                               compile_original_to(OriginalTo(except_network="10.0.0.0/8"), None))
    assert writer.plain
    cut = None if connection is None else b"Connection: " + connection
    plain = writer.write_plain(head, cut, version, keep, ctx)
    expected = writer.write(b"GET", b"/p?q", version, parsed, NO_BODY, keep, ctx)
    if plain is None:
        assert connection is not None  # only a Connection field spaced otherwise
        return
    assert parse_request(plain) == parse_request(expected)
    assert plain.split(b"\r\n", 1)[0] == expected.split(b"\r\n", 1)[0]


def test_plain_request_writer_only_without_deletions_or_if_none():
    ff = compile_forward_for(ForwardFor(), None)
    assert RequestHeadWriter((), ff).plain
    assert not RequestHeadWriter(compile_header_rules([rule("del-header", "X-A")]), ff).plain
    assert not RequestHeadWriter((), compile_forward_for(ForwardFor(if_none=True), None)).plain
    head = b"GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive\r\nX-B: c\r\n\r\n"
    writer = RequestHeadWriter((), ff)
    assert writer.write_plain(head, b"Connection: keep-alive", "1.1", False, CTX) == (
        b"GET / HTTP/1.1\r\nHost: a\r\nX-B: c\r\nX-Forwarded-For: 192.0.2.7\r\n"
        b"Connection: close\r\n\r\n")


# ------------------------------------------------------- live HAProxy oracle

from tests.support.haproxy_oracle import (  # noqa: E402
    echo_backends, free_port, haproxy_available, haproxy_config, run_haproxy,
)


def raw_request(port: int, data: bytes) -> bytes:
    """Send one request, return the response head HAProxy sent back."""
    import socket
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(data)
        received = b""
        while b"\r\n\r\n" not in received:
            chunk = sock.recv(65536)
            if not chunk:
                break
            received += chunk
        return received.partition(b"\r\n\r\n")[0]


@pytest.mark.oracle
@pytest.mark.skipif(not haproxy_available(), reason="HAProxy not installed")
def test_rules_and_forwardfor_match_haproxy():
    """The same rules on HAProxy 2.6 and on our writer give the same fields, in
    the same order (HAProxy lower-cases names), hop-by-hop fields aside."""
    rules_text = [
        ("add-header", "X-Tag", "one"),
        ("set-header", "x-forwarded-proto", "https"),
        ("del-header", "x-secret", None),
        ("add-header", "X-Tag", "two"),
        ("add-header", "X-Client", "%[src] %% %ci"),
        ("del-header", "X-Gone", None),
    ]
    headers = [(b"Host", b"api"), (b"X-Forwarded-Proto", b"http"), (b"X-SECRET", b"s"),
               (b"x-forwarded-proto", b"ftp"), (b"X-Tag", b"zero"),
               (b"X-Forwarded-For", b"10.9.9.9"), (b"X-Gone", b"1"), (b"Accept", b"*/*")]
    with echo_backends(["s1"]) as (backend,):
        port = free_port()
        lines = "".join(f"    http-request {a} {n}" + (f' "{v}"' if v is not None else "")
                        + "\n" for a, n, v in rules_text)
        config = haproxy_config(f"listen app\n    bind 127.0.0.1:{port}\n"
                                f"    option forwardfor\n{lines}"
                                f"    server s1 {backend.address}\n")
        with run_haproxy(config):
            head = b"GET /x HTTP/1.1\r\n" + b"".join(n + b": " + v + b"\r\n"
                                                     for n, v in headers) + b"\r\n"
            raw_request(port, head)
        theirs = [(n.lower().encode(), v.encode()) for n, v in backend.requests[0].headers]

    ops = compile_header_rules([rule(a, n, v) for a, n, v in rules_text])
    writer = RequestHeadWriter(ops, compile_forward_for(ForwardFor(), None))
    ctx = SampleContext("127.0.0.1", 1, "127.0.0.1", port)
    ours = [(n.lower(), v) for n, v in write(writer, headers, ctx=ctx)[3]]
    assert ours == theirs, (ours, theirs)
    assert (b"x-client", b"127.0.0.1 % 127.0.0.1") in theirs


@pytest.mark.oracle
@pytest.mark.skipif(not haproxy_available(), reason="HAProxy not installed")
def test_connection_fields_match_haproxy():
    """For each frontend/backend connection mode and client version, the
    Connection field the server receives and the one the client receives are
    those HAProxy 2.6 sends."""
    from haply.http.framing import (CLOSE, KEEP_ALIVE, SERVER_CLOSE, connection_modes,
                                    keep_alive, server_keep_alive)
    options = {KEEP_ALIVE: "option http-keep-alive", SERVER_CLOSE: "option http-server-close",
               CLOSE: "option httpclose"}
    modes = list(options)
    clients = [("1.1", []), ("1.1", [(b"Connection", b"close")]), ("1.0", []),
               ("1.0", [(b"Connection", b"keep-alive")])]
    with echo_backends(["s1"]) as (backend,):
        ports = {mode: free_port() for mode in modes}
        sections = "".join(f"frontend fe-{m}\n    bind 127.0.0.1:{ports[m]}\n    {options[m]}\n"
                           + "".join(f"    use_backend be-{b} if {{ path_beg /{b}/ }}\n"
                                     for b in modes)
                           for m in modes)
        sections += "".join(f"backend be-{b}\n    {options[b]}\n"
                            f"    server s1 {backend.address}\n" for b in modes)
        observed = []
        with run_haproxy(haproxy_config(sections)):
            for fe in modes:
                for be in modes:
                    for version, fields in clients:
                        backend.clear()
                        head = (f"GET /{be}/x HTTP/{version}\r\nHost: a\r\n".encode()
                                + b"".join(n + b": " + v + b"\r\n" for n, v in fields)
                                + b"\r\n")
                        answer = raw_request(ports[fe], head)
                        sent = backend.requests[0].header("Connection")
                        got = [line.split(b":", 1)[1].strip() for line in answer.split(b"\r\n")
                               if line.lower().startswith(b"connection:")]
                        observed.append((fe, be, version, fields, sent, got))
    assert len(observed) == 36
    for fe, be, version, fields, sent, got in observed:
        client_mode, server_mode = connection_modes(fe, be)
        request_head = RequestHeadWriter().write(
            b"GET", b"/", version, [(b"Host", b"a")] + fields, NO_BODY,
            server_keep_alive(server_mode), CTX)
        ours_sent = [v for n, v in parse_request(request_head)[3] if n == b"Connection"]
        assert ours_sent == ([] if sent is None else [sent.encode()]), (fe, be, version, fields)
        framing = Framing(LENGTH, 10)
        response_head = ResponseHeadWriter().write(
            "1.1", 200, b"OK", [(b"Content-Length", b"10")], framing,
            keep_alive(version, fields, client_mode, framing), version, CTX)
        ours_got = [line.split(b":", 1)[1].strip() for line in response_head.split(b"\r\n")
                    if line.lower().startswith(b"connection:")]
        assert ours_got == got, (fe, be, version, fields)


@settings(max_examples=300, deadline=None)
@given(fmt=st.text(alphabet=st.sampled_from(list("%[]{}srcdt_po ciefhx\r\n\u00e9+Q,")),
                   max_size=25))
def test_compile_value_never_crashes_and_never_emits_a_line_break(fmt):
    try:
        value = compile_value(fmt)
    except ValueError as error:
        assert str(error)
        return
    data = value if isinstance(value, bytes) else value(CTX)
    assert b"\r" not in data and b"\n" not in data
