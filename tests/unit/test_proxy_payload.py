"""Content inspection's three-valued conditions (haply.proxy.conditions
compile_inspection, inspect) over the bytes of a connection
(haply.proxy.payload.InspectedKey): a condition that may still change is
MAYBE until the bytes are final."""

from __future__ import annotations

from haply.config.acl import AclTable, parse_condition
from haply.config.diagnostics import Location
from haply.config.lexer import Word
from haply.proxy.conditions import MAYBE, compile_acl, compile_inspection, inspect
from haply.proxy.payload import InspectedKey
from tests.unit.test_tls_client_hello import python_hello

HELLO = python_hello("API.Nova.Example", ["h2", "http/1.1"])


def condition(text: str):
    location = Location("t.cfg", 1)
    words = [Word(part, location) for part in text.split()]
    return parse_condition(Word("if", location), words, AclTable())


def view(data: bytes, final: bool = False) -> InspectedKey:
    key = InspectedKey("192.0.2.1", 40000, "192.0.2.2", 443)
    key.payload, key.final = data, final
    return key


def test_a_name_test_waits_for_the_whole_hello():
    test = compile_inspection(condition("{ req.ssl_sni -i -m end .nova.example }"))
    assert test(view(b"")) is MAYBE
    assert test(view(HELLO[:100])) is MAYBE
    assert test(view(HELLO[:100], final=True)) is False
    assert test(view(HELLO)) is True
    assert test(view(b"GET / HTTP/1.1\r\n")) is False  # not TLS: no waiting


def test_three_valued_and_or_not():
    waiting = view(HELLO[:50])
    assert compile_inspection(condition("{ req.ssl_hello_type 1 } { src 10.0.0.0/8 }"))(waiting) is False
    assert compile_inspection(condition("{ req.ssl_hello_type 1 } { src 192.0.2.0/24 }"))(waiting) is MAYBE
    assert compile_inspection(condition("{ req.ssl_hello_type 1 } || { src 192.0.2.1 }"))(waiting) is True
    assert compile_inspection(condition("!{ req.ssl_hello_type 1 }"))(waiting) is MAYBE
    assert compile_inspection(condition("!{ req.ssl_hello_type 1 }"))(view(HELLO)) is False


def test_req_len_holds_as_soon_as_it_can():
    assert compile_inspection(condition("{ req.len eq 0 }"))(view(b"")) is True
    assert compile_inspection(condition("{ req.len gt 10 }"))(view(b"abc")) is MAYBE
    assert compile_inspection(condition("{ req.len gt 10 }"))(view(b"abc", final=True)) is False


def test_fields_versions_and_blocks():
    whole = view(HELLO)
    for text in ("{ req.ssl_alpn http/1.1 }", "{ req.ssl_ver 3.3 }", "{ req.ssl_ver 3.1:3.4 }",
                 "{ req.ssl_ec_ext }", "{ req.ssl_st_ext 1 }", "{ req.payload(0,1) -m bin 16 }",
                 "{ req_ssl_sni -i api.nova.example }", "{ req.ssl_sni -m found }"):
        assert compile_inspection(condition(text))(whole) is True, text
    assert compile_inspection(condition("{ req.ssl_ver lt 3.3 }"))(whole) is False
    assert compile_inspection(condition("{ req.payload(600,2) -m bin 0000 }"))(whole) is MAYBE


def test_acls_outside_inspection_read_the_bytes_as_final():
    acl = condition("{ req.ssl_sni -i api.nova.example }").any_of[0][0].acl
    assert compile_acl(acl)(view(HELLO[:10])) is False
    assert compile_acl(acl)(view(HELLO)) is True


def test_rules_resume_at_the_rule_that_waits():
    rules = [(compile_inspection(condition("{ req.ssl_sni -i blocked.example }")), False),
             (compile_inspection(condition("{ req.ssl_hello_type 1 }")), True)]
    assert inspect(rules, view(HELLO[:20])) == (MAYBE, 0)
    assert inspect(rules, view(HELLO), 0) == (False, 1)  # accepted by the second rule
    assert inspect(rules, view(b"GET /"), 0) == (False, 2)  # no rule applies: accepted
    assert inspect(rules, view(python_hello("blocked.example"))) == (True, 0)  # rejected


def test_configuration_errors(tmp_path):
    from tests.unit.test_haproxy_config import messages

    base = ("defaults\n    mode {mode}\n    timeout connect 1s\n    timeout client 1s\n    timeout server 1s\n"
            "frontend f\n    bind :8443\n    {line}\n    default_backend b\n"
            "backend b\n    server s 127.0.0.1:1\n")
    assert messages(tmp_path, base.format(mode="tcp", line="use_backend b if { req.payload(0,1) 16 }")) == [
        "8: fetch 'req.payload(0,1)' is binary: say how to match it, as in req.payload(0,1) -m bin 160301 "
        "(HAProxy asks for -m too)"]
    assert messages(tmp_path, base.format(mode="tcp", line="use_backend b if { req.ssl_ver 3.x }")) == [
        "8: invalid version '3.x' for 'req.ssl_ver': expected MAJOR.MINOR (3.1 is TLS 1.0), LOW:HIGH "
        "or eq|ge|gt|le|lt MAJOR.MINOR"]
    assert messages(tmp_path, base.format(mode="http", line="use_backend b if { req.ssl_sni x.example }")) == [
        "8: fetch 'req.ssl_sni' reads the first bytes of a mode tcp connection: haply does not support it "
        "in mode http ('f')"]
    # HAProxy refuses it there too: the request buffer is gone when the line is logged
    assert "sample fetch 'req.ssl_sni' is not supported in haply's log-format" in messages(
        tmp_path, base.format(mode="tcp", line="log-format %[req.ssl_sni]"))[0]
