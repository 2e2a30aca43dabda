"""haply.config.pound: Pound's configuration dialect -> the model."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from haply.config import ConfigError, load
from haply.config.diagnostics import Diagnostics
from haply.config.pound import parse, tokenize

SEED = Path("/work/shared/fixtures/seed-configs/dair.pound.cfg")


def parsed(text: str, tmp_path: Path, name: str = "test.pound.cfg"):
    path = tmp_path / name
    path.write_text(text)
    return load([str(path)])


def errors(text: str, tmp_path: Path) -> list[str]:
    path = tmp_path / "bad.pound.cfg"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load([str(path)])
    return [str(d) for d in info.value.diagnostics if d.severity == "error"]


@pytest.fixture
def cert(tmp_path):
    from tests.support.certs import make_tls_files
    return make_tls_files(tmp_path).pem


def test_seed_configuration(tmp_path, cert):
    text = SEED.read_text().replace("/etc/ssl/pound.crt-key", str(cert))
    config = parsed(text, tmp_path, "dair.pound.cfg").config
    http, https, service = config.proxies
    assert (http.name, http.kind, http.mode) == ("listenhttp_8773", "frontend", "http")
    assert [(b.host, b.port, b.options) for b in http.binds] == [("0.0.0.0", 8773, ())]
    assert [(b.host, b.port) for b in https.binds] == [("136.159.94.150", 8772)]
    assert https.binds[0].options == (("ssl", ""), ("crt", str(cert)))
    for listener in (http, https):
        xhttp, head_remove = listener.http_request_rules
        assert (xhttp.action, xhttp.status, xhttp.condition.unless) == ("deny", 501, True)
        assert xhttp.condition.any_of[0][0].acl.patterns == ("GET", "POST", "HEAD")
        assert (head_remove.action, head_remove.name) == ("del-header", "X-Forwarded-For")
        assert listener.forward_for is not None and listener.forward_for.header == "X-Forwarded-For"
        assert [s.backend for s in listener.backend_switches] == ["service1"]
        assert listener.backend_switches[0].condition is None
    assert [(s.host, s.port, s.weight, s.backup) for s in service.servers] == [
        ("127.0.0.1", port, 5, False) for port in (8781, 8782, 8783, 8784)]
    assert service.timeouts.server == 15.0 and http.timeouts.client == 10.0
    assert service.redispatch and service.retries == 4


def test_seed_as_shipped_names_its_missing_certificate():
    with pytest.raises(ConfigError) as info:
        load([str(SEED)])
    messages = [str(d) for d in info.value.diagnostics]
    assert messages[0].startswith(f"{SEED}:13: error: Cert '/etc/ssl/pound.crt-key': no such file")
    assert len([m for m in messages if "error" in m]) == 1


def test_services_backends_emergency_session(tmp_path):
    text = """
    TimeOut 20
    Alive 5
    ListenHTTP
        Address 127.0.0.1
        Port 8080
        xHTTP 1
        AddHeader "X-Via: pound 100%"
        Service "api"
            URL "^/api/.*\\.json$"
            HeadRequire "Host: .*example\\.com"
            BackEnd
                Address 10.0.0.1
                Port 80
                Priority 9
                TimeOut 30
            End
            Emergency
                Address 10.0.0.9
                Port 80
            End
            Session
                Type IP
                TTL 300
            End
        End
    End
    Service
        HeadDeny "User-Agent: bot"
        BackEnd
            Address 10.0.0.2
            Port 81
            HAport 9000
            HTTPS
        End
    End
    Service "old"
        Redirect 301 "https://new.example"
    End
    """
    config = parsed(text, tmp_path).config
    frontend = config.proxy("listenhttp_8080")
    api, other = config.proxy("api"), config.proxy("service2")
    # The redirect Service comes after Services with back-ends: it becomes a
    # back-end of its own (a frontend redirect would be evaluated before them).
    assert [s.backend for s in frontend.backend_switches] == ["api", "service2", "old"]
    terms = frontend.backend_switches[0].condition.any_of[0]
    assert [(t.acl.fetch, t.acl.arg, t.acl.patterns, t.negated) for t in terms] == [
        ("url_reg", None, (r"^/api/.*\.json$",), False), ("hdr_reg", "host", (r".*example\.com",), False)]
    deny = frontend.backend_switches[1].condition.any_of[0][0]
    assert (deny.acl.arg, deny.negated) == ("user-agent", True)
    assert frontend.redirects == ()
    assert [(r.kind, r.target, r.code, r.condition) for r in config.proxy("old").redirects] == [
        ("prefix", "https://new.example", 301, None)]
    assert config.proxy("old").servers == ()
    xhttp, add_header = frontend.http_request_rules
    assert (xhttp.action, xhttp.status) == ("deny", 501)
    assert xhttp.condition.any_of[0][0].acl.patterns == ("GET", "POST", "HEAD", "PUT", "PATCH", "DELETE")
    assert (add_header.action, add_header.name, add_header.value) == ("add-header", "X-Via", "pound 100%%")
    assert api.balance == "source" and api.timeouts.server == 30.0
    assert [(s.host, s.weight, s.backup, s.inter) for s in api.servers] == [
        ("10.0.0.1", 9, False, 5.0), ("10.0.0.9", 5, True, 5.0)]
    assert other.servers[0].check_port == 9000
    assert ("ssl", "") in other.servers[0].extra and ("verify", "none") in other.servers[0].extra


@pytest.mark.parametrize("text,expected", [
    ("ListenHTTP\n Address 127.0.0.1\n Port 80\n Frobnicate 1\nEnd\nService\n BackEnd\n  Address 1.2.3.4\n  Port 80\n End\nEnd\n",
     ":4: error: unknown Pound keyword 'frobnicate' in ListenHTTP"),
    ("Bogus 1\n", ":1: error: unknown Pound keyword 'bogus' at the top level"),
    ("ListenHTTP\n Address 127.0.0.1\n Port 80\n", ":1: error: 'listenhttp' block opened here has no matching End"),
    ("ListenHTTP\n Port 80\nEnd\n", ":1: error: ListenHTTP has no Address"),
    ("ListenHTTPS\n Address 127.0.0.1\n Port 443\nEnd\n", ":1: error: ListenHTTPS has no Cert"),
    ("ListenHTTP\n Address 127.0.0.1\n Port 80\n HeadRemove \"^X-.*\"\nEnd\n", ":4: error: 'HeadRemove \"^X-.*\"': haply removes headers by name"),
    ("Service\n Session\n  Type COOKIE\n  ID \"sid\"\n End\n BackEnd\n  Address 1.2.3.4\n  Port 80\n End\nEnd\n",
     ":2: error: Session Type COOKIE is not supported by haply"),
    ("Service\n BackEnd\n  Address 1.2.3.4\n  Priority 12\n  Port 80\n End\nEnd\n",
     ":4: error: 'priority 12': expected a whole number between 1 and 9"),
    ("Service\n URL \"([\"\n BackEnd\n  Address 1.2.3.4\n  Port 80\n End\nEnd\n", ":2: error: invalid regular expression"),
    ("End\n", ":1: error: 'End' without an open block"),
])
def test_errors_have_file_and_line(tmp_path, text, expected):
    found = errors(text, tmp_path)
    assert any(expected in message and message.startswith(str(tmp_path / "bad.pound.cfg")) for message in found), found


def test_ignored_keywords_warn(tmp_path):
    text = "LogLevel 3\nListenHTTP\n Address 127.0.0.1\n Port 80\nEnd\nService\n BackEnd\n  Address 127.0.0.1\n  Port 81\n End\nEnd\n"
    loaded = parsed(text, tmp_path)
    assert [str(w).split(": ", 1)[1] for w in loaded.diagnostics.warnings] == [
        "warning: 'loglevel' is accepted and ignored: haply logs through its own log settings"]


def test_dialect_chosen_by_first_keyword(tmp_path):
    text = "ListenHTTP\n Address 127.0.0.1\n Port 80\nEnd\nService\n BackEnd\n  Address 127.0.0.1\n  Port 81\n End\nEnd\n"
    assert parsed(text, tmp_path, "front.cfg").config.proxy("listenhttp_80") is not None


words = st.text(alphabet=st.characters(blacklist_characters='"\\#\r\n\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029',
                                       blacklist_categories=("Cs", "Zs", "Cc")), min_size=1, max_size=12)


@given(st.lists(st.tuples(words, st.booleans()), min_size=1, max_size=6))
def test_tokenize_words_and_quoted_strings(items):
    line = " ".join(f'"{w} x"' if quoted else w for w, quoted in items)
    [parsed_line] = tokenize(line + "  # trailing comment", "f")
    expected = [f"{w} x" if quoted else w for w, quoted in items]
    assert [parsed_line.keyword, *parsed_line.args] == [expected[0].lower(), *expected[1:]]


def test_parse_without_loader_collects_diagnostics():
    diagnostics = Diagnostics()
    parse("Nonsense\n", "x.pound.cfg", {}, diagnostics)
    assert [str(d) for d in diagnostics.errors] == ["x.pound.cfg:1: error: unknown Pound keyword 'nonsense' at the top level"]


def test_include_nested_relative_and_located(tmp_path):
    (tmp_path / "conf.d").mkdir()
    (tmp_path / "conf.d" / "services.cfg").write_text(
        'Service\n BackEnd\n  Address 127.0.0.1\n  Port 81\n End\nEnd\nInclude "more.cfg"\n')
    (tmp_path / "conf.d" / "more.cfg").write_text("Bogus 1\n")
    text = 'ListenHTTP\n Address 127.0.0.1\n Port 80\nEnd\nInclude "conf.d/services.cfg"\n'
    found = errors(text, tmp_path)
    assert found == [f"{tmp_path}/conf.d/more.cfg:1: error: unknown Pound keyword 'bogus' at the top level"]
    (tmp_path / "conf.d" / "more.cfg").write_text('Include "services.cfg"\n')
    found = errors(text, tmp_path)
    assert len(found) == 1 and "more.cfg:1: error: 'Include \"services.cfg\"' includes itself" in found[0]
    (tmp_path / "conf.d" / "more.cfg").write_text("")
    config = parsed(text, tmp_path).config
    assert [s.port for s in config.proxy("service1").servers] == [81]


@pytest.mark.parametrize("kind, balance, arg", [("URL", "url_param", "sid"), ("HEADER", "hdr", "X-Session"),
                                                ("ip", "source", None)])
def test_session_types_map_to_hashing(tmp_path, kind, balance, arg):
    text = (f'ListenHTTP\n Address 127.0.0.1\n Port 8080\n Service "s"\n  Session\n   Type {kind}\n'
            f'   ID "{arg or "x"}"\n   TTL 60\n  End\n  BackEnd\n   Address 10.0.0.1\n   Port 80\n  End\n End\nEnd\n')
    backend = parsed(text, tmp_path).config.proxy("s")
    assert (backend.balance, backend.balance_arg) == (balance, arg)
