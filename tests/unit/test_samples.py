"""Sample expressions and variables (haply.proxy.samples, haply.proxy.variables):
how an expression is read, the casts between types, the conditions of set-var
and where each scope keeps its variables. What each converter gives is compared
with HAProxy itself in tests/interop/test_variables_oracle.py."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from haply.config.model import VariableRule
from haply.proxy import samples, variables
from haply.proxy.samples import SampleError, compile_expression, parse_chain, variable_setter


class Context:
    """A client connection's SampleContext: what sess. variables live on."""


class View:
    def __init__(self, context=None, **fields):
        self.context = context or Context()
        self.fields = {k.lower(): v if isinstance(v, list) else [v] for k, v in fields.items()}
        self.client_ip, self.local_ip = "192.0.2.7", "198.51.100.1"
        self.client_port, self.local_port, self.ssl = 40000, 443, True
        self.uri, self.path, self.method = "/a/b?x=1&y=2&x=3", "/a/b", "GET"

    def header(self, name):
        return self.fields.get(name, [])


def value(expression, view=None, response=False):
    return compile_expression(expression, response)(view or View())


def test_the_chain_is_read_as_haproxy_reads_it():
    assert parse_chain("req.hdr(host),lower,field(1,:)") == [
        ("req.hdr", ["host"], "req.hdr(host)"), ("lower", [], "lower"), ("field", ["1", ":"], "field(1,:)")]
    # quotes and backslashes protect commas and parentheses; other backslashes stay
    assert parse_chain(r"""regsub("(a,b)",\1,g)""")[0][1] == ["(a,b)", r"\1", "g"]
    assert parse_chain(r"concat(\,,txn.x,\))")[0][1] == [",", "txn.x", ")"]
    assert parse_chain("str()") == [("str", [], "str()")]
    with pytest.raises(SampleError, match="missing '\\)'"):
        parse_chain("lower(")
    with pytest.raises(SampleError, match="unexpected"):
        parse_chain("regsub(^(a)$,b)")
    with pytest.raises(SampleError, match="expected a sample fetch or converter name"):
        parse_chain("lower,,upper")


@given(st.lists(st.text(st.characters(blacklist_categories=("Cs",)), max_size=8), min_size=1, max_size=4))
def test_any_quoted_argument_reads_back(arguments):
    quoted = ",".join('"' + a.replace("\\", "\\\\").replace('"', '\\"') + '"' for a in arguments)
    (name, args, _), = parse_chain(f"concat({quoted})")
    assert (name, args) == ("concat", arguments)


def test_casts():
    assert value("int(42),length") == 2 and value("bool(1),add(2)") == 3
    assert value("str(-12abc),add(0)") == -12 and value("str(x12),add(0)") == 0
    assert value("src") == ipaddress.ip_address("192.0.2.7") and value("src,add(0)") == 3221225991
    assert value("int(10),hex") == "000000000000000A" and value("src,hex") == "C0000207"
    assert value("int(9223372036854775807),add(1)") == 9223372036854775807  # saturated
    assert variables.as_text(True) == "1" and variables.as_text(ipaddress.ip_address("::1")) == "::1"


@pytest.mark.parametrize("expression,expected", [
    ("req.hdr(f),field(1,.)", "a"), ("req.hdr(f),field(-1,.)", ""), ("req.hdr(f),field(3,.)", "cC"),
    ("req.hdr(f),field(2,.,0)", "bBc.cC."), ("req.hdr(f),field(-2,.,2)", "bBc.cC"),
    ("req.hdr(f),field(9,.)", None), ("req.hdr(f),word(-1,.)", "cC"), ("req.hdr(f),word(2,.,0)", "bBc.cC"),
    ("req.hdr(f),word(-2,.,2)", "a.bBc"), ("req.hdr(g),word(2,/.)", "y"), ("req.hdr(g),field(2,/.)", ""),
])
def test_fields_and_words(expression, expected):
    assert value(expression, View(f="a.bBc.cC.", g="x/.y")) == expected


def test_missing_samples_pass_through_converters():
    assert value("req.hdr(none),lower,add(1),base64") is None
    assert value("var(txn.none),concat(a)") is None
    assert value("var(txn.none,fallback),upper") == "FALLBACK"
    assert value("urlp(x)") == "1" and value("urlp(z)") is None


def test_response_rules_cannot_read_the_request():
    assert value("status,add(0)", View(), response=True) is None  # no status yet: no sample
    with pytest.raises(SampleError, match="reads the request"):
        compile_expression("req.hdr(host)", response=True)


def test_scopes_keep_their_variables_where_they_live():
    connection = Context()
    first, second = View(connection), View(connection)
    for name in ("sess.s", "txn.t", "req.r", "proc.p"):
        variable_setter(name)(first, name)
    assert [value(f"var({n})", second) for n in ("sess.s", "txn.t", "req.r", "proc.p")] == \
        ["sess.s", None, None, "proc.p"]
    assert value("var(sess.s)", View()) is None  # another connection
    variables.clear_process()
    assert value("var(proc.p)", second) is None


def test_set_var_conditions():
    view = View()

    def set_to(sample, *conditions):
        variable_setter("txn.v", conditions)(view, sample)
        return variables.read(view, "txn.v")

    assert set_to("a", "ifexists") is None and set_to("a", "ifnotexists") == "a"
    assert set_to("b", "ifnotset") == "a" and set_to("", "ifnotempty") == "a" and set_to("", "ifempty") == ""
    assert set_to(5) == 5 and set_to(7, "ifgt") == 5 and set_to(3, "ifgt") == 3 and set_to(4, "iflt") == 4
    assert set_to("x", "ifgt") == "x"  # not two integers: the condition holds
    with pytest.raises(SampleError, match="at most four"):
        variable_setter("txn.v", ["ifset"] * 5)


def test_variable_steps():
    view = View(host="Example.ORG")
    samples.VariableStep(VariableRule("set-var", "txn.h", "req.hdr(host),lower")).apply(view)
    samples.VariableStep(VariableRule("set-var", "txn.h", "req.hdr(none)")).apply(view)  # no sample: kept
    samples.VariableStep(VariableRule("set-var-fmt", "txn.f", "%[var(txn.h)]:x")).apply(view)
    assert variables.read(view, "txn.h") == "example.org" and variables.read(view, "txn.f") == "example.org:x"
    samples.VariableStep(VariableRule("unset-var", "txn.h")).apply(view)
    assert variables.read(view, "txn.h") is None
