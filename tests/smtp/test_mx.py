"""Destination → hosts (mailhost.delivery.mx) against the local DNS server."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailhost.delivery.mx import MxResolver, Nexthop, NoRoute, parse_dns_servers, parse_nexthop
from mailhost.errors import ConfigError
from tests.qmgr.helpers import Site, captured_log
from tests.smtp.dnsserver import DnsServer


def resolver(dns: DnsServer, **kw: object) -> MxResolver:
    return MxResolver([dns.address], protocols="ipv4", own_addresses={"127.0.0.1"}, **kw)  # type: ignore[arg-type]


async def test_mx_preference_order(dns_server: DnsServer) -> None:
    hosts = await resolver(dns_server).hosts(parse_nexthop("mx.test", 25))
    assert [(h.name, h.address, h.preference) for h in hosts] == [
        ("mx1.mx.test", "127.0.0.2", 10),
        ("mx2.mx.test", "127.0.0.3", 20),
    ]


async def test_equal_preference_is_shuffled(dns_server: DnsServer) -> None:
    r = resolver(dns_server)
    orders = {
        tuple(h.name for h in await r.hosts(parse_nexthop("equal.test", 25))) for _ in range(40)
    }
    assert len(orders) > 1
    assert all(sorted(o) == ["e1.equal.test", "e2.equal.test", "e3.equal.test"] for o in orders)
    fixed = resolver(dns_server, randomize=False)
    assert (
        len(
            {
                tuple(h.name for h in await fixed.hosts(parse_nexthop("equal.test", 25)))
                for _ in range(5)
            }
        )
        == 1
    )


async def test_mx_address_limit(dns_server: DnsServer) -> None:
    hosts = await resolver(dns_server, address_limit=2).hosts(parse_nexthop("equal.test", 25))
    assert len(hosts) == 2


async def test_no_mx_falls_back_to_a(dns_server: DnsServer) -> None:
    (host,) = await resolver(dns_server).hosts(parse_nexthop("nomx.test", 25))
    assert (host.name, host.address) == ("nomx.test", "127.0.0.4")


async def test_null_mx_bounces(dns_server: DnsServer) -> None:
    with pytest.raises(NoRoute) as info:
        await resolver(dns_server).hosts(parse_nexthop("nullmx.test", 25))
    assert info.value.status.dsn == "5.1.0"
    assert info.value.status.text == "Domain nullmx.test does not accept mail (nullMX)"


async def test_bracketed_literal_needs_no_dns(dns_server: DnsServer) -> None:
    before = len(dns_server.zone.queries)
    (host,) = await resolver(dns_server).hosts(parse_nexthop("[127.0.0.10]:2525", 25))
    assert (host.name, host.address, host.at(2525)) == (
        "127.0.0.10",
        "127.0.0.10",
        "127.0.0.10[127.0.0.10]:2525",
    )
    assert len(dns_server.zone.queries) == before


async def test_bracketed_name_skips_mx(dns_server: DnsServer) -> None:
    dns_server.zone.queries.clear()
    (host,) = await resolver(dns_server).hosts(parse_nexthop("[relay.test]", 25))
    assert (host.name, host.address) == ("relay.test", "127.0.0.6")
    assert ("relay.test.", "MX") not in dns_server.zone.queries


async def test_mx_to_myself_loops(dns_server: DnsServer) -> None:
    for domain in ("self.test", "backup.test"):
        with pytest.raises(NoRoute) as info:
            await resolver(dns_server).hosts(parse_nexthop(domain, 25))
        assert (info.value.status.dsn, info.value.status.text) == (
            "5.4.6",
            f"mail for {domain} loops back to myself",
        )


async def test_servfail_defers_nxdomain_bounces(dns_server: DnsServer) -> None:
    with pytest.raises(NoRoute) as soft:
        await resolver(dns_server).hosts(parse_nexthop("broken.test", 25))
    assert soft.value.status.dsn == "4.4.3"
    with pytest.raises(NoRoute) as hard:
        await resolver(dns_server).hosts(parse_nexthop("nonexistent.test", 25))
    assert hard.value.status.dsn == "5.4.4"


def test_nexthop_forms() -> None:
    assert parse_nexthop("[mail.example.com]:587", 25) == Nexthop("mail.example.com", 587, False)
    assert parse_nexthop("[mail.example.com]", 25) == Nexthop("mail.example.com", 25, False)
    assert parse_nexthop("Example.COM:submission", 25) == Nexthop("example.com", 587, True)
    assert parse_nexthop("example.com", 24) == Nexthop("example.com", 24, True)
    assert parse_nexthop("[ipv6:::1]:25", 25).literal == "::1"
    for bad in ("[unclosed", "[]", "[h]x", ":25", "host:notaservice"):
        with pytest.raises(ConfigError):
            parse_nexthop(bad, 25)


names = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?(\.[a-z0-9]{1,8}){0,3}", fullmatch=True)


@given(names, st.integers(1, 65535), st.booleans())
def test_nexthop_round_trip(host: str, port: int, bracket: bool) -> None:
    text = f"[{host}]:{port}" if bracket else f"{host}:{port}"
    assert parse_nexthop(text, 25) == Nexthop(host, port, not bracket)


@given(st.text(max_size=40))
def test_nexthop_parser_never_crashes(text: str) -> None:
    try:
        hop = parse_nexthop(text, 25)
    except ConfigError:
        return
    assert 0 < hop.port < 65536


def test_dns_server_list_forms() -> None:
    servers = parse_dns_servers(["127.0.0.1", "127.0.0.1:5353", "[::1]:53", "::1"])
    assert [(s.address, s.port) for s in servers] == [
        ("127.0.0.1", 53),
        ("127.0.0.1", 5353),
        ("::1", 53),
        ("::1", 53),
    ]
    with pytest.raises(ConfigError):
        parse_dns_servers(["dns.example"])


async def test_bad_dns_server_defers(tmp_path: Path) -> None:
    site = Site(tmp_path, extra="mailhost_dns_servers = resolver.example\n")
    qid = await site.enqueue("far@remote.example")
    with captured_log() as log:
        await site.manager().run_once()
    assert "fatal: mailhost_dns_servers: not an IP address: resolver.example" in log.text()
    assert site.queue_of(qid) == "deferred"
