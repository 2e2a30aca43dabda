"""`no option httpchk` and its kind, checked by `haproxy -c` and `haply -c`
on the same files.

HAProxy 2.6 refuses to negate a check type (httpchk, mysql-check, redis-check,
smtpchk, pgsql-check, ldap-check, tcp-check, ssl-hello-chk, external-check,
spop-check) and a few other options, in a defaults section as in a backend:
"parsing [haproxy.cfg:7]: negation/default is not supported for option
'httpchk'." Nothing is reset: the line is an error. Each file below holds
every such line at once (both programs report every error of a file), so
three runs of each program compare exit status, lines and words.
"""

from __future__ import annotations

import re
import subprocess

import pytest

from tests.support.haply_process import PROXIES
from tests.support.haproxy_oracle import free_port, haproxy_available

pytestmark = pytest.mark.skipif(not haproxy_available(), reason="HAProxy 2.6 not installed")

CHECK_OPTIONS = ("httpchk", "mysql-check", "redis-check", "smtpchk", "pgsql-check",
                 "ldap-check", "tcp-check", "ssl-hello-chk", "external-check", "spop-check")
# the other options HAProxy refuses to negate that haply knows
OTHER_OPTIONS = ("httplog", "tcplog", "forwardfor", "originalto", "tcpka")
# negations both accept, beside them
NEGATABLE = ("log-health-checks", "redispatch", "http-server-close", "abortonclose")

HEAD = """defaults
    mode http
    timeout connect 1s
    timeout client 1s
    timeout server 1s
    option httpchk GET /health
"""


def negations(options) -> str:
    return "".join(f"    no option {option}\n" for option in options)


def listen(body: str = "") -> str:
    return (f"listen app\n    bind 127.0.0.1:{free_port()}\n{body}"
            "    server s 127.0.0.1:9 check\n")


FILES = {
    "in defaults": HEAD + negations(CHECK_OPTIONS + OTHER_OPTIONS) + listen(),
    "in a proxy": HEAD + listen(negations(CHECK_OPTIONS + OTHER_OPTIONS)),
    "negatable": HEAD + negations(NEGATABLE) + listen(negations(NEGATABLE)),
}

THEIRS = re.compile(r"parsing \[\S*haproxy\.cfg:(\d+)\]: (negation/default is not supported "
                    r"for option '[^']+')\.")
OURS = re.compile(r"haproxy\.cfg:(\d+): error: (.*)")


def check(binary: str, path) -> tuple[int, list[tuple[int, str]]]:
    """Exit status and (line, message) of each error `-c` reports."""
    result = subprocess.run([binary, "-c", "-f", str(path)], capture_output=True, text=True,
                            timeout=30, stdin=subprocess.DEVNULL)
    pattern = THEIRS if binary == PROXIES["haproxy"] else OURS
    found = [(int(m.group(1)), m.group(2)) for m in pattern.finditer(result.stdout + result.stderr)]
    return result.returncode, found


@pytest.mark.parametrize("case", FILES)
def test_check_refuses_the_same_negations(tmp_path, case):
    path = tmp_path / "haproxy.cfg"
    path.write_text(FILES[case])
    theirs = check(PROXIES["haproxy"], path)
    ours = check(PROXIES["haply"], path)
    if case == "negatable":
        assert theirs == ours == (0, [])
        return
    assert theirs[0] != 0 and ours[0] != 0
    assert len(theirs[1]) == len(CHECK_OPTIONS + OTHER_OPTIONS)
    assert ours[1] == theirs[1]
