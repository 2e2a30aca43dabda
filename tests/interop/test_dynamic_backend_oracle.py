"""`use_backend %[...]` with a map against HAProxy 2.6: kolla-ansible's single
external frontend picks each API's backend from the Host field through a
domain map (`%[req.hdr(host),lower,map_dom(FILE,DEFAULT)]`). The same
requests must reach the same backends, a name that is no backend included
(HAProxy then takes the default backend, whatever the rules after it)."""

from __future__ import annotations

import pytest

from tests.support.haply_process import PROXIES
from tests.support.haproxy_oracle import (echo_backends, free_port, haproxy_available,
                                          haproxy_config, http_get, run_haproxy)

pytestmark = pytest.mark.skipif(not haproxy_available(), reason="HAProxy oracle not installed")

MAP = """# kolla-ansible external-frontend-map
keystone.example.com keystone_external_back
glance.example.com   glance_external_back
example.org          org_back
ghost.example.net    no_such_back
"""

REQUESTS = [("keystone.example.com", "/"), ("KEYSTONE.Example.COM:5000", "/v3"),
            ("api.keystone.example.com", "/"), ("glance.example.com", "/v2/images"),
            ("www.example.org", "/"), ("example.org.evil.net", "/"), ("myexample.org", "/"),
            ("other.net", "/"), ("other.net", "/prefix"), ("ghost.example.net", "/"),
            ("ghost.example.net", "/prefix"), ("nomap.example.com", "/prefix"), ("", "/")]


def config(port: int, map_path: str, backends) -> str:
    keystone, glance, org, fallback, prefix = backends
    return haproxy_config(f"""
frontend external
    bind 127.0.0.1:{port}
    use_backend %[req.hdr(host),lower,map_dom({map_path},default_back)] if {{ req.hdr(host) -i -m sub example }}
    use_backend prefix_back if {{ path_beg /prefix }}
    default_backend default_back
backend keystone_external_back
    server s {keystone.address}
backend glance_external_back
    server s {glance.address}
backend org_back
    server s {org.address}
backend default_back
    server s {fallback.address}
backend prefix_back
    server s {prefix.address}
""")


def test_use_backend_from_a_domain_map_as_haproxy(tmp_path):
    map_path = tmp_path / "external-frontend-map"
    map_path.write_text(MAP)
    seen = {}
    with echo_backends(["keystone", "glance", "org", "default", "prefix"]) as backends:
        for name, binary in PROXIES.items():
            port = free_port()
            with run_haproxy(config(port, str(map_path), backends), binary=binary):
                seen[name] = [http_get(port, path, headers={"Host": host}).backend
                              for host, path in REQUESTS]
    assert seen["haply"] == seen["haproxy"], seen
    assert seen["haproxy"] == ["keystone", "keystone", "keystone", "glance", "org", "org",
                               "default", "default", "prefix", "default", "default", "default",
                               "default"]
