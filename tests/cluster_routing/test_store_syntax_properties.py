"""Properties of the store route checks (mailhost.resolve.stores): any text
gets a value or TransportSyntaxError, never another exception; a checked
value reads back as the transport and nexthop it was built from; the store
host of an lmtp route is the host and port written."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailhost.resolve.stores import (
    StoreHost,
    TransportSyntaxError,
    check_transport,
    parse_store,
    store_host,
)
from mailhost.resolve.transport_maps import Route

labels = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?", fullmatch=True)
hostnames = st.lists(labels, min_size=1, max_size=4).map(".".join)
ipv4 = st.ip_addresses(v=4).map(str)
ports = st.integers(min_value=1, max_value=65535)


@given(st.text(max_size=80))
def test_any_text_is_a_route_or_a_clear_error(text):
    try:
        value = check_transport(text)
    except TransportSyntaxError as exc:
        message = str(exc)
    else:
        assert value == text.strip()
        assert value
        return
    assert message.startswith("bad transport ")


@given(st.text(max_size=80))
def test_any_store_is_a_route_or_a_clear_error(text):
    try:
        route = parse_store(text)
    except TransportSyntaxError:
        return
    assert route.transport
    assert route.nexthop


@given(st.one_of(hostnames, ipv4), ports, st.booleans(), st.booleans())
def test_inet_store_round_trip(host, port, bracket, prefix):
    shown = f"[{host}]" if bracket else host
    value = f"lmtp:{'inet:' if prefix else ''}{shown}:{port}"
    route = parse_store(value)
    assert route == Route("lmtp", value[5:])
    assert store_host(route) == StoreHost(host, port)


@given(st.ip_addresses(v=6).map(str), ports)
def test_ipv6_store(host, port):
    route = parse_store(f"lmtp:inet:[{host}]:{port}")
    found = store_host(route)
    assert found is not None
    assert found.port == port
    assert ipaddress.ip_address(found.host or "") == ipaddress.ip_address(host)


@given(hostnames)
def test_default_port_is_lmtp(host):
    assert store_host(parse_store(f"lmtp:inet:{host}")) == StoreHost(host, 24)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("lmtp:unix:private/dovecot-lmtp", StoreHost(None, 0, "private/dovecot-lmtp")),
        ("virtual:", None),
        ("virtual", None),
        ("error:mailbox moved", None),
        ("relay:[10.0.0.1]:25", StoreHost("10.0.0.1", 25)),
    ],
)
def test_store_host_of_other_routes(value, expected):
    from mailhost.resolve.transport_maps import parse_route

    assert store_host(parse_route(value)) == expected


@pytest.mark.parametrize(
    "value", ["virtual", "relay", "local", ":[mx.example]", "smtp:[mx.example]:587", "error:"]
)
def test_domain_routes_postfixadmin_offers_are_accepted(value):
    assert check_transport(value) == value
