"""Cookie persistence core (haply.proxy.persistence): which server a request's
cookie names, the Cookie field the server sees, the response's Set-Cookie edits
and cacheability. The same behaviour is compared with HAProxy 2.6 end to end in
tests/interop/test_cookie_oracle.py."""

from __future__ import annotations

from hypothesis import given, strategies as st

from haply.config.model import CookiePersistence, Server
from haply.proxy.persistence import CookieRouting, cacheable
from haply.runtime.registry import DOWN, DRAIN, MAINT, ServerState


def states(*names: str) -> list[ServerState]:
    return [ServerState(backend="b", name=name, host="192.0.2.1", port=80, weight=1, backup=False,
                        maxconn=0, effective_weight=1, config=Server(name, "192.0.2.1", 80, cookie=name))
            for name in names]


def routing(mode="insert", **flags) -> tuple[CookieRouting, list[ServerState]]:
    servers = states("s1", "s2")
    return CookieRouting(CookiePersistence("SRV", mode, **flags), servers), servers


def test_request_cookie_names_a_server():
    cookie, servers = routing()
    s1, s2 = servers
    assert cookie.on_request([(b"Host", b"h")]) == (None, "N", None)
    assert cookie.on_request([(b"Cookie", b"a=1; SRV=s2")]) == (s2, "V", None)
    assert cookie.on_request([(b"cookie", b"SRV=nope")]) == (None, "I", None)
    assert cookie.on_request([(b"Cookie", b"xSRV=s1; SRVx=s1")]) == (None, "N", None)
    s2.operational = DOWN
    assert cookie.on_request([(b"Cookie", b"SRV=s2")]) == (None, "D", None)
    s2.operational, s2.admin = "UP", MAINT
    assert cookie.on_request([(b"Cookie", b"SRV=s2")])[1] == "D"
    s2.admin = DRAIN  # a draining server keeps its persistent clients
    assert cookie.on_request([(b"Cookie", b"SRV=s2")]) == (s2, "V", None)
    # `add server` at run time appends to the registry's list, which is read live.
    added = states("s3")[0]
    servers.append(added)
    assert cookie.on_request([(b"Cookie", b"SRV=s3")]) == (added, "V", None)


def test_indirect_insert_hides_the_cookie_from_the_server():
    cookie, (s1, _) = routing(indirect=True)
    cases = {
        b"SRV=s1": None,  # the field goes altogether
        b"a=1; SRV=s1; b=2": b"a=1; b=2",
        b"a=1;SRV=s1;b=2": b"a=1; b=2",
        b"SRV=s1;other=x": b"other=x",
        b"a=1;b=2;SRV=s1": b"a=1;b=2",
        b"a=1 ;  SRV=s1  ; c=3": b"a=1; c=3",
    }
    for sent, forwarded in cases.items():
        server, flag, headers = cookie.on_request([(b"Host", b"h"), (b"Cookie", sent)])
        assert (server, flag) == (s1, "V")
        expected = [(b"Host", b"h")] + ([(b"Cookie", forwarded)] if forwarded else [])
        assert headers == expected, sent


def test_prefix_reads_and_strips_the_server_value():
    servers = states("s1", "s2")
    cookie = CookieRouting(CookiePersistence("JSESSIONID", "prefix"), servers)
    server, flag, headers = cookie.on_request([(b"Cookie", b"JSESSIONID=s2~abc; x=1")])
    assert (server, flag, headers) == (servers[1], "V", [(b"Cookie", b"JSESSIONID=abc; x=1")])
    assert cookie.on_request([(b"Cookie", b"JSESSIONID=abc")]) == (None, "I", None)
    head = b"HTTP/1.1 200 OK\r\nSet-Cookie: JSESSIONID=abc; path=/app\r\n\r\n"
    edited, flag = cookie.edit_response(head, b"GET", 200, servers[0], valid=False)
    assert edited == b"HTTP/1.1 200 OK\r\nSet-Cookie: JSESSIONID=s1~abc; path=/app\r\n\r\n"
    assert flag == "R"


def test_insert_adds_the_cookie_unless_the_client_has_it():
    cookie, (s1, _) = routing(nocache=True, httponly=True, domains=(".example.org",))
    head = b'HTTP/1.1 200 OK\r\nETag: "x"\r\nSet-Cookie: SRV=app\r\nContent-Length: 0\r\n\r\n'
    edited, flag = cookie.edit_response(head, b"GET", 200, s1, valid=False)
    assert flag == "I"
    assert edited == (b'HTTP/1.1 200 OK\r\nETag: "x"\r\nContent-Length: 0\r\n'
                      b"Set-Cookie: SRV=s1; path=/; domain=.example.org; HttpOnly\r\n"
                      b"Cache-control: private\r\n\r\n")  # cacheable (a validator): private
    edited, flag = cookie.edit_response(head, b"GET", 200, s1, valid=True)
    assert flag == "D" and b"Set-Cookie" not in edited  # the server's own is removed
    plain = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
    assert cookie.edit_response(plain, b"GET", 200, s1, valid=True) == (plain, "N")
    preserve, _ = routing(preserve=True)
    assert preserve.edit_response(head, b"GET", 200, s1, valid=False) == (head, "P")
    postonly, _ = routing(postonly=True)
    assert postonly.edit_response(plain, b"GET", 200, s1, valid=False) == (plain, "N")
    assert postonly.edit_response(plain, b"POST", 200, s1, valid=False)[1] == "I"
    nameless = states("x")[0]
    nameless.config = Server("x", "192.0.2.1", 80)
    assert cookie.edit_response(plain, b"GET", 200, nameless, valid=False) == (plain, "N")


def test_rewrite_and_passive_indirect():
    rewrite, (s1, _) = routing("rewrite")
    head = b"HTTP/1.1 200 OK\r\nset-cookie: SRV=app; Path=/; HttpOnly\r\n\r\n"
    assert rewrite.edit_response(head, b"GET", 200, s1, valid=True) == (
        b"HTTP/1.1 200 OK\r\nset-cookie: SRV=s1; Path=/; HttpOnly\r\n\r\n", "R")
    passive, _ = routing("passive", indirect=True)
    assert passive.edit_response(head, b"GET", 200, s1, valid=False) == (head, "P")
    assert passive.edit_response(head, b"GET", 200, s1, valid=True) == (
        b"HTTP/1.1 200 OK\r\n\r\n", "D")


def test_cacheable():
    assert not cacheable(b"GET", 200, [])  # nothing to store it with
    assert cacheable(b"GET", 200, [(b"ETag", b'"x"')])
    assert cacheable(b"HEAD", 404, [(b"Cache-Control", b"max-age=60")])
    assert cacheable(b"GET", 200, [(b"Cache-Control", b"public")])
    assert not cacheable(b"POST", 200, [(b"Cache-Control", b"public")])
    assert not cacheable(b"GET", 302, [(b"Cache-Control", b"max-age=60")])
    assert not cacheable(b"GET", 200, [(b"Cache-Control", b"max-age=60, no-store")])
    assert not cacheable(b"GET", 200, [(b"Pragma", b"no-cache"), (b"ETag", b'"x"')])
    assert not cacheable(b"GET", 200, [(b"Cache-Control", b'no-cache="set-cookie"'),
                                       (b"ETag", b'"x"')])


@given(st.binary(max_size=200))
def test_any_cookie_field_is_read_without_error(value):
    for mode, flags in (("insert", {"indirect": True}), ("prefix", {}), ("passive", {})):
        servers = states("s1")
        cookie = CookieRouting(CookiePersistence("SRV", mode, **flags), servers)
        server, flag, headers = cookie.on_request([(b"Cookie", value)])
        assert flag in "NIVD" and (server is None or server is servers[0])
        if headers is not None:
            assert all(b"SRV=" not in v.replace(b" ", b"") or mode != "insert" for _, v in headers)
