"""The pure parts of the probes: response judges, codecs and reply parsers."""

from __future__ import annotations

import struct

from hypothesis import given
from hypothesis import strategies as st

from haply.health.probes import (
    CheckResult, HttpProbe, TcpStep, judge_http, mysql_handshake_response, mysql_packet,
    parse_agent_reply, parse_mysql_error, parse_mysql_handshake, tls_client_hello, unescape,
)


def test_reason_wording():
    assert CheckResult("L4CON", info="Connection refused").reason == \
        'Layer4 connection problem, info: "Connection refused"'
    assert CheckResult("L7OK", 200).reason == "Layer7 check passed, code: 200"
    assert CheckResult("L4TOUT").reason == "Layer4 timeout"
    assert CheckResult("L7STS", 503, "Service Unavailable").reason == \
        'Layer7 wrong status, code: 503, info: "Service Unavailable"'
    assert CheckResult("L4OK", duration=0.0123).duration_ms == 12


def test_default_http_request():
    assert HttpProbe().request() == b"OPTIONS / HTTP/1.0\r\n\r\n"
    req = HttpProbe("POST", "/h", "HTTP/1.1", (("Host", "x"),), "a=1").request()
    assert req == (b"POST /h HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n"
                   b"Connection: close\r\n\r\na=1")


@given(code=st.integers(100, 599))
def test_default_http_rule_is_2xx_3xx(code):
    status, got, _ = judge_http(b"HTTP/1.1 %d Whatever\r\n\r\n" % code, None)
    assert got == code
    assert (status == "L7OK") == (200 <= code < 400)
    assert status in ("L7OK", "L7STS")


@given(data=st.binary(max_size=200))
def test_judge_http_never_raises(data):
    status, _, _ = judge_http(data, ("rstring", "a+"))
    assert status in ("L7OK", "L7STS", "L7RSP")


def test_http_expect_status_lists_and_ranges():
    resp = b"HTTP/1.0 204 No Content\r\n\r\n"
    assert judge_http(resp, ("status", "200,204"))[0] == "L7OK"
    assert judge_http(resp, ("status", "200-299"))[0] == "L7OK"
    assert judge_http(resp, ("!status", "204"))[0] == "L7STS"


@given(words=st.lists(st.sampled_from(
    ["75%", "0%", "drain", "maint", "ready", "up", "down", "fail", "stopped",
     "maxconn:30", "junk"]), max_size=6),
    sep=st.sampled_from([" ", ",", "\t", " , "]))
def test_agent_reply_last_word_of_each_kind_wins(words, sep):
    reply = parse_agent_reply(sep.join(words))
    admins = [w for w in words if w in ("drain", "maint", "ready")]
    opers = [w for w in words if w in ("up", "down", "fail", "stopped")]
    weights = [w for w in words if w.endswith("%")]
    assert reply.admin == (admins[-1].upper() if admins else None)
    assert reply.operational == (
        None if not opers else ("UP" if opers[-1] == "up" else "DOWN"))
    assert reply.weight_percent == (int(weights[-1][:-1]) if weights else None)
    assert reply.maxconn == (30 if "maxconn:30" in words else None)


def test_agent_description():
    assert parse_agent_reply("down#disk full").description == "disk full"


@given(seq=st.integers(0, 255), payload=st.binary(max_size=300))
def test_mysql_packet_header(seq, payload):
    packet = mysql_packet(seq, payload)
    assert packet[4:] == payload and packet[3] == seq
    assert int.from_bytes(packet[:3], "little") == len(payload)


def test_mysql_handshake_response_layout():
    packet = mysql_handshake_response("haproxy")
    assert packet[3] == 1  # answers the server's sequence 0
    payload = packet[4:]
    caps, max_packet, charset = struct.unpack_from("<IIB", payload)
    assert caps & 0x200 and caps & 0x8000  # PROTOCOL_41, SECURE_CONNECTION
    assert payload[9:32] == b"\x00" * 23
    assert payload[32:] == b"haproxy\x00\x00"


def test_mysql_error_and_handshake_parsers():
    err = b"\xff" + struct.pack("<H", 1045) + b"#28000Access denied"
    assert parse_mysql_error(err) == (1045, "#28000Access denied")
    assert parse_mysql_handshake(b"\x0a5.5.5-10.11.6-MariaDB\x00rest") == "5.5.5-10.11.6-MariaDB"
    assert parse_mysql_handshake(b"\x09old\x00") is None
    assert parse_mysql_handshake(b"") is None


def test_tls_client_hello_is_well_formed():
    hello = tls_client_hello(b"\x00" * 32)
    assert hello[0] == 0x16 and hello[1:3] == b"\x03\x01"
    assert struct.unpack("!H", hello[3:5])[0] == len(hello) - 5
    assert hello[5] == 1  # ClientHello
    assert int.from_bytes(hello[6:9], "big") == len(hello) - 9
    assert hello[9:11] == b"\x03\x03"


def test_tcp_step_words():
    assert TcpStep.from_words(("send", "PING\\r\\n")).data == b"PING\r\n"
    step = TcpStep.from_words(("expect", "!", "string", "ERR"))
    assert step.negate and step.kind == "string" and step.data == b"ERR"
    assert TcpStep.from_words(("expect", "binary", "414d")).data == b"AM"
    assert TcpStep.from_words(("connect", "port", "6379")).port == 6379
    assert TcpStep.from_words(("expect", "string", "+PONG")).describe() == "expect string '+PONG'"


@given(text=st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126,
                                           blacklist_characters="\\"), max_size=50))
def test_unescape_plain_text_unchanged(text):
    assert unescape(text) == text.encode()


def test_unescape_escapes():
    assert unescape("a\\r\\n\\t\\\\\\x41") == b"a\r\n\t\\A"
