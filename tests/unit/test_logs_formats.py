"""log-format compilation and HAProxy's built-in formats."""

from __future__ import annotations

import json
import re
import time

import pytest
from hypothesis import given, strategies as st

from haply.logs import formats
from haply.logs.logger import Record

WHEN = 1795309474.25  # a fixed wall-clock time


def record(**overrides) -> Record:
    values = dict(
        client_ip="10.0.0.9", client_port="41234", frontend_ip="10.0.0.1", frontend_port=80,
        frontend="fe", ssl=False, backend="be", server="s1", server_ip="10.0.1.1",
        server_port=8080, accept_time=WHEN, request_time=WHEN, TR=1, Tw=2, Tc=3, Tr=4, Ta=10,
        Tt=12, Ti=0, status=200, bytes_read=1234, bytes_uploaded=99, termination="----",
        actconn=5, feconn=4, beconn=3, srv_conn=2, retries=0, srv_queue=0, backend_queue=0,
        request_line="GET /a?b=1 HTTP/1.1", method="GET", uri="/a?b=1", http_version="HTTP/1.1",
        hostname="node1", pid=77, request_counter=1)
    values.update(overrides)
    return Record(**values)


DATE = r"\d\d/[A-Z][a-z]{2}/\d{4}:\d\d:\d\d:\d\d\.\d{3}"


def test_httplog_layout():
    line = formats.compile_format("httplog")(record())
    assert re.fullmatch(
        rf'10\.0\.0\.9:41234 \[{DATE}\] fe be/s1 1/2/3/4/10 200 1234 - - ---- '
        r'5/4/3/2/0 0/0 "GET /a\?b=1 HTTP/1\.1"', line), line


def test_tcplog_layout():
    line = formats.compile_format("tcplog")(record(termination="--"))
    assert re.fullmatch(rf"10\.0\.0\.9:41234 \[{DATE}\] fe be/s1 2/3/12 1234 -- 5/4/3/2/0 0/0", line), line


def test_clf_layout():
    # HAProxy 2.6's own line for this format, observed:
    # 127.0.0.1 - - [22/Nov/2026:01:13:21 +0000] "GET /x?y=1 HTTP/1.1" 404 500 "" "" 35404 751
    #   "fe" "be" "s1" 0 0 0 6 6 ---- 1 1 0 0 0 0 0 "" "" (one line)
    line = formats.compile_format("httplog clf")(record())
    assert re.fullmatch(r'10\.0\.0\.9 - - \[\d\d/[A-Z][a-z]{2}/\d{4}:\d\d:\d\d:\d\d \+0000\] '
                        r'"GET /a\?b=1 HTTP/1\.1" 200 1234 "" "" 41234 250 "fe" "be" "s1" '
                        r'1 2 3 4 10 ---- 5 4 3 2 0 0 0 "" "" ', line), line


def test_custom_format_with_quotes_and_samples():
    render = formats.compile_format('%{+Q}ci %ST %[src] %HM %HP %HQ 100%% \\"x')
    assert render(record()) == '"10.0.0.9" 200 10.0.0.9 GET /a ?b=1 100% "x'


def test_a_variable_name_ends_at_the_first_character_not_a_letter_or_digit():
    assert formats.compile_format("%Tw/%Tt|%B_x")(record()) == "2/12|1234_x"
    # HAProxy reads "%Bx" as the variable Bx, which does not exist
    with pytest.raises(formats.FormatError, match="no such log-format variable '%Bx'"):
        formats.compile_format("%Bx")


def test_hexadecimal_flag_writes_addresses_ports_timestamp_and_counters_in_hex():
    render = formats.compile_format("%{+X}o %ci:%cp %fp %Ts %rt %pid %lc %ST %B %{-X}o %cp %Ts")
    line = render(record(frontend_port=80, log_counter=3))
    assert line == (f"0A000009:A112 0050 {int(WHEN):08X} 0001 004D 0003 200 1234 "
                    f"41234 {int(WHEN)}")
    assert formats.compile_format("%{+X}ci")(record(client_ip="2001:db8::1")) == \
        "20010DB8000000000000000000000001"


def test_escape_flag_and_request_text_encoding():
    uri = '/a"b]c\\d'
    line = formats.compile_format('%HU %{+E}HU %{+Q,+E}HP')(record(uri=uri))
    # '"' would end a quoted field: #22, as HAProxy writes it; +E puts a
    # backslash before backslashes and ']'
    assert line == '/a#22b]c\\d /a#22b\\]c\\\\d "/a#22b\\]c\\\\d"'


def test_dates_timestamp_and_derived_times():
    line = formats.compile_format("%T|%Tl|%Ts|%Td|%Tu")(record())
    gmt = time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(WHEN))
    local = time.strftime("%d/%b/%Y:%H:%M:%S %z", time.localtime(WHEN))
    # Td: the total (12) less TR, Tw, Tc and Tr (1, 2, 3, 4)
    assert line == f"{gmt}|{local}|{int(WHEN)}|2|12"
    assert formats.compile_format("%Td")(record(Tr=-1)) == "-1"


def test_unsupported_variables_and_unknown_flags_are_errors():
    with pytest.raises(formats.FormatError, match="'%bi' is not supported by haply"):
        formats.compile_format("%bi:%bp")
    with pytest.raises(formats.FormatError, match="unknown flag '\\+Z'"):
        formats.compile_format("%{+Z}o %ci")


def test_unknown_variable_is_an_error():
    with pytest.raises(formats.FormatError):
        formats.compile_format("%zz")
    with pytest.raises(formats.FormatError):
        formats.compile_format("%{+Q")


def test_json_format_is_json():
    data = json.loads(formats.compile_format("json")(record()))
    assert data["status"] == 200 and data["server"] == "s1" and data["uri"] == "/a?b=1"


@given(st.text(alphabet=st.characters(blacklist_characters="%\\"), max_size=60))
def test_text_without_variables_is_copied_with_spaces_as_separators(text):
    if text == "json" or text in formats.NAMED:  # the names of formats (json, tcplog, ...)
        return
    # HAProxy's rule: a run of spaces is one separator, and none starts a line
    expected = re.sub(" +", " ", text).removeprefix(" ")
    assert formats.compile_format(text)(record()) == expected


def test_separators_as_haproxy_writes_them():
    line = formats.compile_format
    assert line("a=%hr b=%hs c")(record()) == "a= b= c"
    assert line("q %hr  r")(record()) == "q r"
    assert line(" lead %ci  x")(record()) == "lead 10.0.0.9 x"
    assert line("a\\ \\ b")(record()) == "a b"


@given(st.lists(st.sampled_from(sorted(set(formats.VARIABLES) - {"o"})), min_size=1, max_size=8))
def test_any_sequence_of_variables_renders(names):
    line = formats.compile_format(" ".join("%" + name for name in names))(record())
    assert "\n" not in line


class WithHeaders(Record):
    __slots__ = ("headers",)

    def header(self, name):
        return [v for k, v in self.headers if k == name]


def test_sample_fetches_and_converters():
    r = WithHeaders(**{name: getattr(record(), name) for name in Record.__slots__})
    r.headers = [("host", "Example.ORG"), ("x-id", "1"), ("x-id", "2")]
    render = formats.compile_format(
        '%[req.hdr(Host),lower] %{+Q}[hdr(x-id)] %[path] %[be_name] %[hdr(none)] %[ssl_fc]')
    assert render(r) == 'example.org "2" /a be - 0'
    with pytest.raises(formats.FormatError):
        formats.compile_format("%[rand(5)]")
    with pytest.raises(formats.FormatError):
        formats.compile_format("%[src,sha1]")


@given(text=st.lists(st.sampled_from(list("ab{}'\"\\ %[]") + ["%ci", "%{+Q}r", "%ST", "%[src]",
                                                                "%hr", "%o ", "%{+Q}o ", "%CC", "%sq", "%f", "%{+Q}CC"]),
                     max_size=12).map("".join))
def test_fstring_line_is_the_concatenated_line(text):
    """The generated f-string (one allocation per line) writes exactly what
    the plain concatenation of the same parts writes, braces, quotes and
    backslashes in literals included."""
    try:
        parts = formats.parse_format(text)
    except formats.FormatError:
        return
    fast = formats._generate(parts)
    fstring = formats._fstring(parts, formats.VARIABLES)
    plain = formats._generate(parts, fstring=False)
    assert fast(record()) == plain(record())
    assert fstring is not None or plain(record()) == ""  # only an empty line has none


def test_sample_arguments_are_checked():
    with pytest.raises(formats.FormatError, match="capture's index is a number"):
        formats.compile_format("%[capture.req.hdr(host)]")
    with pytest.raises(formats.FormatError, match="unknown input code 'utf16'"):
        formats.compile_format("%[src,json(utf16)]")
    with pytest.raises(formats.FormatError, match="'capture.res.ver' is not supported"):
        formats.compile_format("%[capture.res.ver]")


def test_an_absent_sample_stays_a_dash_through_converters():
    assert formats.compile_format("%[capture.req.hdr(0),json(utf8),upper]|%{+Q}[dst,lower]")(
        record()) == '-|"10.0.0.1"'
