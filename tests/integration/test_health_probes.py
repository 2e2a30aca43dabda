"""Every probe against real servers on 127.0.0.1, on uvloop as in production."""

from __future__ import annotations

import ssl
import time

import pytest
import trustme
import uvloop

from haply.health.probes import (
    Deadlines, HttpProbe, Target, TcpStep, agent_check, http_check, ssl_hello_check,
    tcp_check, tcp_check_rules,
)
from tests.support.health_backends import (
    Agent, Backend, BackendThread, Banner, HttpHealth, black_hole, closed_port,
)

FAST = Deadlines(connect=1.0, read=0.3)


@pytest.fixture
def backends():
    thread = BackendThread()
    try:
        yield thread
    finally:
        thread.close()


def run(coro):
    return uvloop.run(coro)


def here(backend: Backend) -> Target:
    return Target("127.0.0.1", backend.port)


# ------------------------------------------------------------------------ tcp


def test_tcp_connect_ok(backends):
    server = Backend(backends, HttpHealth()).start()
    result = run(tcp_check(here(server), FAST))
    assert result.status == "L4OK" and result.ok
    assert result.reason == "Layer4 check passed"
    assert 0 <= result.duration < 1.0


def test_closed_port_is_l4con_connection_refused():
    result = run(tcp_check(Target("127.0.0.1", closed_port()), FAST))
    assert result.status == "L4CON" and not result.ok
    assert result.reason == 'Layer4 connection problem, info: "Connection refused"'


def test_killed_and_restarted_server(backends):
    health = HttpHealth(200)
    server = Backend(backends, health).start()
    probe = HttpProbe("GET", "/healthcheck")
    assert run(http_check(here(server), FAST, probe)).status == "L7OK"
    server.stop()
    assert run(http_check(here(server), FAST, probe)).status == "L4CON"
    server.start()
    assert run(http_check(here(server), FAST, probe)).status == "L7OK"


# ----------------------------------------------------------------------- http


def test_http_default_request_is_options_http10(backends):
    health = HttpHealth(200)
    server = Backend(backends, health).start()
    result = run(http_check(here(server), FAST, HttpProbe()))
    assert result.status == "L7OK" and result.code == 200
    assert result.reason == "Layer7 check passed, code: 200"
    assert health.requests[0].startswith(b"OPTIONS / HTTP/1.0\r\n")


def test_http_status_switches_between_200_and_503(backends):
    health = HttpHealth(200)
    server = Backend(backends, health).start()
    probe = HttpProbe("GET", "/healthcheck", "HTTP/1.1", (("Host", "api"),))
    assert run(http_check(here(server), FAST, probe)).status == "L7OK"
    health.status = 503
    result = run(http_check(here(server), FAST, probe))
    assert result.status == "L7STS" and result.code == 503
    assert result.reason == 'Layer7 wrong status, code: 503, info: "Service Unavailable"'
    assert b"Host: api\r\n" in health.requests[-1]
    health.status = 200
    assert run(http_check(here(server), FAST, probe)).ok


def test_http_expect_status_string_rstring(backends):
    health = HttpHealth(200, body=b"state: ready\n")
    server = Backend(backends, health).start()
    target = here(server)

    def check(expect):
        return run(http_check(target, FAST, HttpProbe("GET", "/healthcheck", expect=expect)))

    assert check(("status", "200")).ok
    assert check(("status", "201")).status == "L7STS"
    assert check(("rstatus", "^2")).ok
    assert check(("string", "ready")).ok
    bad = check(("string", "maintenance"))
    assert bad.status == "L7RSP"
    assert check(("rstring", r"state: (ready|busy)")).ok
    assert check(("!string", "maintenance")).ok
    health.status = 404
    assert check(None).status == "L7STS"  # the path answers 404 -> default 2xx/3xx rule
    assert check(("status", "404")).ok


def test_http_black_hole_times_out_after_read_deadline(backends):
    server = Backend(backends, black_hole).start()
    started = time.monotonic()
    result = run(http_check(here(server), Deadlines(connect=1.0, read=0.25), HttpProbe()))
    elapsed = time.monotonic() - started
    assert result.status == "L7TOUT" and result.reason == "Layer7 timeout"
    assert 0.24 <= result.duration < 0.6 and elapsed < 0.8


def test_without_timeout_check_inter_bounds_the_whole_check(backends):
    server = Backend(backends, black_hole).start()
    deadlines = Deadlines.from_settings(inter=0.3, timeout_check=None, timeout_connect=5.0)
    result = run(http_check(here(server), deadlines, HttpProbe()))
    assert result.status == "L7TOUT" and 0.29 <= result.duration < 0.6


def test_deadlines_follow_the_manual():
    d = Deadlines.from_settings(inter=2.0, timeout_check=10.0, timeout_connect=5.0)
    assert (d.connect, d.read, d.total) == (2.0, 10.0, None)
    d = Deadlines.from_settings(inter=2.0, timeout_check=10.0, timeout_connect=1.0)
    assert (d.connect, d.read) == (1.0, 10.0)
    d = Deadlines.from_settings(inter=2.0, timeout_check=None, timeout_connect=1.0)
    assert (d.connect, d.read, d.total) == (2.0, 2.0, 2.0)


async def _ssh_banner_then_close(reader, writer):
    writer.write(b"SSH-2.0-OpenSSH_9.2\r\n")
    await writer.drain()


def test_garbage_http_answer_is_l7rsp(backends):
    # HAProxy 2.6 against the same server: "reason: Layer7 invalid response"
    server = Backend(backends, _ssh_banner_then_close).start()
    result = run(http_check(here(server), FAST, HttpProbe()))
    assert result.status == "L7RSP" and result.reason == "Layer7 invalid response"


# ---------------------------------------------------------------- tcp-check


def redis_steps():
    return (TcpStep.from_words(("send", "PING\\r\\n")),
            TcpStep.from_words(("expect", "string", "+PONG")))


def test_tcp_check_redis_ping_pong(backends):
    server = Backend(backends, Banner(replies={b"PING": b"+PONG\r\n"})).start()
    result = run(tcp_check_rules(here(server), FAST, redis_steps()))
    assert result.status == "L7OK", result


def test_tcp_check_redis_wrong_answer_and_silence(backends):
    loading = Backend(backends, Banner(replies={b"PING": b"-LOADING Redis is loading\r\n"})).start()
    result = run(tcp_check_rules(here(loading), FAST, redis_steps()))
    # the server keeps the connection open: more data might still match
    assert result.status == "L7TOUT"
    silent = Backend(backends, Banner()).start()
    result = run(tcp_check_rules(here(silent), FAST, redis_steps()))
    # HAProxy 2.6's wording for the same rules, leading space included
    assert result.status == "L7TOUT"
    assert result.info == " at step 2 of tcp-check (expect string '+PONG')"


def test_tcp_check_amqp_banner(backends):
    # RabbitMQ answers a bad protocol header with its own: "AMQP" 0 0 9 1
    rabbit = Backend(backends, Banner(replies={b"PING": b"AMQP\x00\x00\x09\x01"})).start()
    steps = (TcpStep.from_words(("send", "PING\\r\\n")),
             TcpStep.from_words(("expect", "binary", "414d5150")))
    assert run(tcp_check_rules(here(rabbit), FAST, steps)).ok
    banner = Backend(backends, Banner(banner=b"220 smtp ready\r\n")).start()
    steps = (TcpStep.from_words(("expect", "rstring", "^220 ")),)
    assert run(tcp_check_rules(here(banner), FAST, steps)).ok
    steps = (TcpStep.from_words(("expect", "string", "AMQP")),)
    assert run(tcp_check_rules(here(banner), FAST, steps)).status == "L7TOUT"
    # a server that says something else and closes: a definite mismatch
    closing = Backend(backends, _ssh_banner_then_close).start()
    result = run(tcp_check_rules(here(closing), FAST, steps))
    assert result.status == "L7RSP"
    assert result.reason == ('Layer7 invalid response, info: '
                             '"TCPCHK did not match content \'AMQP\' at step 1"')


def test_tcp_check_connect_port_and_closed(backends):
    server = Backend(backends, Banner(banner=b"hello\n")).start()
    steps = (TcpStep.from_words(("connect", "port", str(server.port))),
             TcpStep.from_words(("expect", "string", "hello")))
    assert run(tcp_check_rules(Target("127.0.0.1", closed_port()), FAST, steps)).ok
    assert run(tcp_check_rules(Target("127.0.0.1", closed_port()), FAST, ())).status == "L4CON"


# ------------------------------------------------------------- ssl-hello-chk


@pytest.fixture(scope="module")
def tls_context():
    ca = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost").configure_cert(context)
    return context


async def _tls_echo(reader, writer):
    await reader.read(100)


def test_ssl_hello_gets_server_hello(backends, tls_context):
    server = Backend(backends, _tls_echo, ssl_context=tls_context).start()
    result = run(ssl_hello_check(here(server), FAST))
    assert result.status == "L6OK" and result.reason == "Layer6 check passed"


def test_ssl_hello_against_plain_http_is_l6rsp(backends):
    server = Backend(backends, Banner(banner=b"HTTP/1.0 400 Bad Request\r\n\r\n")).start()
    result = run(ssl_hello_check(here(server), FAST))
    assert result.status == "L6RSP" and result.reason == "Layer6 invalid response"


def test_ssl_hello_silence_is_l6tout(backends):
    server = Backend(backends, black_hole).start()
    assert run(ssl_hello_check(here(server), FAST)).status == "L6TOUT"


# --------------------------------------------------------------- agent-check


@pytest.mark.parametrize("reply,weight,admin,oper", [
    ("75%", 75, None, None),
    ("drain", None, "DRAIN", None),
    ("maint", None, "MAINT", None),
    ("ready up 100%", 100, "READY", "UP"),
    ("down #disk full", None, None, "DOWN"),
    ("stopped", None, None, "DOWN"),
    ("fail,50%", 50, None, "DOWN"),
])
def test_agent_replies(backends, reply, weight, admin, oper):
    server = Backend(backends, Agent(reply)).start()
    result = run(agent_check(here(server), FAST))
    assert result.ok and result.agent is not None
    assert (result.agent.weight_percent, result.agent.admin, result.agent.operational) == (
        weight, admin, oper)
    if "#" in reply:
        assert result.agent.description == "disk full"


def test_agent_unreachable_is_not_ok():
    result = run(agent_check(Target("127.0.0.1", closed_port()), FAST))
    assert result.status == "L4CON" and result.agent is None


def test_tcp_check_over_tls(backends, tls_context):
    # redis with TLS: tcp-check connect ssl, then PING / +PONG inside TLS
    server = Backend(backends, Banner(replies={b"PING": b"+PONG\r\n"}),
                     ssl_context=tls_context).start()
    steps = (TcpStep.from_words(("connect", "ssl", "sni", "localhost")),) + redis_steps()
    assert run(tcp_check_rules(here(server), FAST, steps)).status == "L7OK"
    # TLS expected, plain text found: a layer-6 failure
    plain = Backend(backends, Banner(replies={b"PING": b"+PONG\r\n"})).start()
    silent = run(tcp_check_rules(here(plain), FAST, steps))
    assert silent.status in ("L6TOUT", "L6RSP")
    chatty = Backend(backends, _ssh_banner_then_close).start()
    assert run(tcp_check_rules(here(chatty), FAST, steps)).status == "L6RSP"


def test_checks_inside_tls(backends, tls_context):
    # check-ssl: the HTTP check runs inside TLS; a plain connect check passes at L6
    health = HttpHealth(200)
    server = Backend(backends, health, ssl_context=tls_context).start()
    target = Target("127.0.0.1", server.port, tls=True, sni="localhost")
    assert run(http_check(target, FAST, HttpProbe("GET", "/healthcheck"))).status == "L7OK"
    health.status = 503
    assert run(http_check(target, FAST, HttpProbe("GET", "/healthcheck"))).status == "L7STS"
    assert run(tcp_check(target, FAST)).status == "L6OK"
    # plain HTTP sent to a TLS port: the server drops it
    plain = run(http_check(here(server), FAST, HttpProbe()))
    assert plain.status in ("L7RSP", "L7TOUT")
