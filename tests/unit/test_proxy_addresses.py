"""init-addr: the methods tried in order for a server's address at start."""

from __future__ import annotations

import pytest

from haply.proxy.addresses import AddressError, initial_address


def lookup_table(**names):
    def lookup(host):
        if host in names:
            return names[host]
        raise OSError(-2, "Name or service not known")
    return lookup


def test_an_ip_address_is_never_looked_up():
    assert initial_address("192.0.2.1", ("none",), lookup=lookup_table()) == "192.0.2.1"
    assert initial_address("2001:db8::1", lookup=lookup_table()) == "2001:db8::1"


def test_default_is_last_then_libc():
    known = lookup_table(controller="192.0.2.10")
    assert initial_address("controller", last="192.0.2.99", lookup=known) == "192.0.2.99"
    assert initial_address("controller", last=None, lookup=known) == "192.0.2.10"
    with pytest.raises(AddressError) as error:
        initial_address("elsewhere", lookup=known)
    assert str(error.value) == ("cannot resolve address 'elsewhere' (init-addr last,libc): no saved "
                                "address (last); the resolver failed (libc): Name or service not known")


def test_methods_in_the_order_written():
    known = lookup_table(controller="192.0.2.10")
    assert initial_address("controller", ("libc", "last"), last="192.0.2.99", lookup=known) == "192.0.2.10"
    assert initial_address("elsewhere", ("libc", "none"), lookup=known) is None
    assert initial_address("elsewhere", ("none", "libc"), lookup=known) is None
    assert initial_address("controller", ("none",), lookup=known) is None
    assert initial_address("elsewhere", ("libc", "192.0.2.7"), lookup=known) == "192.0.2.7"
    assert initial_address("elsewhere", ("last",), last="192.0.2.99", lookup=known) == "192.0.2.99"
