"""`haply convert FILE.pound.cfg`: the output loads in both `haply -c` and
`haproxy -c` (xHTTP and Err pages as http-request deny and http-error) and
behaves alike in both; Session types route like Pound's."""

from __future__ import annotations

import re
import subprocess
import textwrap
from pathlib import Path

import pytest

from tests.integration.test_pound import adapted_seed, run_pound
from tests.support.certs import make_tls_files
from tests.support.haply_process import HAPLY_BIN
from tests.support.haproxy_oracle import (HAPROXY_BIN, echo_backends, free_port, haproxy_available,
                                          http_get, run_haproxy)

needs_haproxy = pytest.mark.skipif(not haproxy_available(), reason="HAProxy 2.6 not installed")

XHTTP_AND_ERRORS = """\
ListenHTTP
    Address 127.0.0.1
    Port {port}
    xHTTP 1
    Err503 "{err}"
    Err500 "{err}"
    Service "api"
        URL "^/api/"
        BackEnd
            Address 127.0.0.1
            Port {backend}
        End
    End
    Service
        Redirect 301 "https://example.org/"
    End
End
"""

SESSIONS = """\
ListenHTTP
    Address 127.0.0.1
    Port {port}
    Service
        Session
            Type {kind}
            ID "{name}"
            TTL 300
        End
        BackEnd
            Address 127.0.0.1
            Port {b1}
        End
        BackEnd
            Address 127.0.0.1
            Port {b2}
        End
        BackEnd
            Address 127.0.0.1
            Port {b3}
        End
    End
End
"""


def convert(path: Path, *flags: str) -> subprocess.CompletedProcess:
    return subprocess.run([HAPLY_BIN, "convert", *flags, str(path)], capture_output=True, text=True,
                          timeout=30, stdin=subprocess.DEVNULL)


def check(binary: str, text: str, directory: Path) -> subprocess.CompletedProcess:
    path = directory / f"converted-{Path(binary).name}.cfg"
    path.write_text(text)
    return subprocess.run([binary, "-c", "-f", str(path)], capture_output=True, text=True, timeout=30,
                          stdin=subprocess.DEVNULL)


def pound_files(tmp_path: Path) -> dict[str, Path]:
    """Pound configurations covering what the converter writes."""
    tls = make_tls_files(tmp_path, ("localhost",))
    err = tmp_path / "error.html"
    err.write_text("<html><body>try again</body></html>\n")
    files = {
        "seed": adapted_seed(free_port(), free_port(), [free_port() for _ in range(4)], tls.pem),
        "xhttp-errors": XHTTP_AND_ERRORS.format(port=free_port(), err=err, backend=free_port()),
        "session-header": SESSIONS.format(port=free_port(), kind="HEADER", name="X-Session",
                                          b1=free_port(), b2=free_port(), b3=free_port()),
        "session-url": SESSIONS.format(port=free_port(), kind="URL", name="sid",
                                       b1=free_port(), b2=free_port(), b3=free_port()),
    }
    paths = {}
    for name, text in files.items():
        paths[name] = tmp_path / f"{name}.pound.cfg"
        paths[name].write_text(text)
    return paths


@needs_haproxy
def test_default_output_loads_in_haply_and_haproxy(tmp_path):
    for name, path in pound_files(tmp_path).items():
        converted = convert(path)
        assert converted.returncode == 0, (name, converted.stderr)
        ours = check(HAPLY_BIN, converted.stdout, tmp_path)
        assert ours.returncode == 0, (name, ours.stderr, converted.stdout)
        theirs = check(HAPROXY_BIN, converted.stdout, tmp_path)
        assert theirs.returncode == 0, (name, theirs.stdout + theirs.stderr, converted.stdout)


@needs_haproxy
def test_xhttp_and_error_pages_become_directives_both_run_alike(tmp_path):
    path = pound_files(tmp_path)["xhttp-errors"]
    converted = convert(path)
    assert converted.returncode == 0 and not converted.stderr, converted.stderr
    text = converted.stdout
    assert re.search(r"(?m)^    http-request deny deny_status 501 unless \{ method GET POST HEAD PUT PATCH DELETE \}$", text)
    assert re.search(r"(?m)^    http-error status 503 content-type text/html file \S+error\.html$", text)
    port = int(re.search(r"(?m)^    bind 127\.0\.0\.1:(\d+)$", text).group(1))
    answers = {}
    for name, runner in (("pound file under haply", lambda: run_pound(path.read_text(), port)),
                         ("conversion under haply", lambda: run_haproxy(text, binary=HAPLY_BIN)),
                         ("conversion under HAProxy", lambda: run_haproxy(text))):
        with runner():
            answers[name] = (http_get(port, "/api/x", method="OPTIONS").status,
                             http_get(port, "/api/x", method="MKCOL").status,
                             http_get(port, "/api/x").status)
    assert set(answers.values()) == {(501, 501, 503)}, answers


def test_session_types_in_the_model_and_the_output(tmp_path):
    paths = pound_files(tmp_path)
    header = convert(paths["session-header"]).stdout
    assert re.search(r"(?m)^    balance hdr\(X-Session\)$", header)
    url = convert(paths["session-url"]).stdout
    assert re.search(r"(?m)^    balance url_param sid$", url)


@needs_haproxy
@pytest.mark.parametrize("kind, name", [("HEADER", "X-Session"), ("URL", "sid")])
def test_sessions_stick_in_haply_and_in_haproxy(tmp_path, kind, name):
    """Each session key keeps reaching one back-end, whatever the order of the
    requests, under haply reading the Pound file and under HAProxy reading the
    conversion. Which back-end a key lands on differs: haply's hash function
    is not HAProxy's (haply.balance.hashing)."""
    keys = [f"user-{n}" for n in range(13)]

    def request(port, key):
        if kind == "HEADER":
            return http_get(port, "/", headers={name: key}).backend
        return http_get(port, f"/page?a=1&{name}={key}").backend

    with echo_backends(["b1", "b2", "b3"]) as backends:
        port = free_port()
        path = tmp_path / "session.pound.cfg"
        path.write_text(SESSIONS.format(port=port, kind=kind, name=name,
                                        b1=backends[0].port, b2=backends[1].port, b3=backends[2].port))
        converted = convert(path).stdout
        for proxy, runner in (("haply", lambda: run_pound(path.read_text(), port)),
                              ("haproxy", lambda: run_haproxy(converted))):
            with runner():
                forward = {key: request(port, key) for key in keys}
                backward = {key: request(port, key) for key in reversed(keys)}
                without = [request(port, "") if kind == "HEADER" else http_get(port, "/page").backend
                           for _ in range(3)]
            assert forward == backward, proxy  # sticky, not a rotation
            assert len(set(forward.values())) > 1, proxy  # still spread over the back-ends
            assert sorted(without) == ["b1", "b2", "b3"], proxy  # no key: balanced normally


@pytest.mark.parametrize("body, message", [
    ('Type URL\n            TTL 300', "Session Type URL needs ID"),
    ('Type COOKIE\n            ID "sid"', "Session Type COOKIE is not supported by haply (Types IP, URL and HEADER are)"),
])
def test_session_errors_are_located(tmp_path, body, message):
    path = tmp_path / "bad.pound.cfg"
    text = textwrap.dedent(f"""\
        ListenHTTP
            Address 127.0.0.1
            Port 1
            Service
                Session
                    {body}
                End
                BackEnd
                    Address 127.0.0.1
                    Port 2
                End
            End
        End
        """)
    path.write_text(text)
    result = subprocess.run([HAPLY_BIN, "-c", "-f", str(path)], capture_output=True, text=True, timeout=30,
                            stdin=subprocess.DEVNULL)
    assert result.returncode == 1
    assert f"{path}:5: error: {message}" in result.stderr, result.stderr
