"""examples/cluster/*/transport_maps.cf: a mailbox's own store first, then
its domain's, answered identically by Postfix 3.7.11 (``postmap -q``, run
here against the same database) and by mailhost's table layer, on SQLite,
MariaDB and PostgreSQL; then the whole transport(5) search (address,
address without extension, domain) as mailhost's edge runs it.
"""

from __future__ import annotations

import asyncio

import pytest

from mailhost.config import load_config
from mailhost.resolve.resolver import Resolver, ResolverSettings
from mailhost.resolve.transport_maps import Route, Router, TransportMaps
from mailhost.tables.maps import Maps
from mailhost.tables.registry import TableRegistry, open_table
from tests.cluster_routing.conftest import STORE_1, STORE_2, STORE_3, write_edge

#: (key, answer recorded from Postfix 3.7.11 ``postmap -q``; None = not found)
EXPECTED = [
    ("u1@a.example", STORE_1),  # no own route: the domain's
    ("u2@a.example", STORE_2),  # moved
    ("u3@b.example", STORE_3),  # moved, out of a domain routed 'virtual'
    ("u4@a.example", None),  # disabled mailbox: no answer for the address
    ("u5@b.example", "virtual"),  # empty own route: the domain's
    ("U2@A.Example", STORE_2),  # keys are folded to lower case
    ("team@a.example", None),  # an alias is no mailbox: the domain key answers
    ("nobody@a.example", None),
    ("a.example", STORE_1),
    ("b.example", "virtual"),
    ("off.example", None),  # disabled domain
    ("nosuch.example", None),
    ("example", None),
    ("*", None),
    ("u2@a.example' OR '1'='1", None),
    ("a.example' OR '1'='1", None),
]


def _mailhost(spec: str, key: str) -> str | None:
    async def run() -> str | None:
        table = open_table(spec)
        try:
            return await table.lookup(key)
        finally:
            await table.close()

    return asyncio.run(run())


@pytest.mark.parametrize(("key", "expected"), EXPECTED, ids=[k for k, _ in EXPECTED])
def test_transport_query_matches_postfix(transport_spec, postmap_q, key, expected):
    assert postmap_q(key, transport_spec) == expected
    assert _mailhost(transport_spec, key) == expected


#: (recipient, route from the transport(5) search; None = the class default)
SEARCH = [
    ("u2+tag@a.example", Route("lmtp", "inet:127.0.0.12:24")),  # user@domain without extension
    ("u3@b.example", Route("lmtp", "inet:[127.0.0.13]:2424")),
    ("team@a.example", Route("lmtp", "inet:127.0.0.11:24")),  # the domain key
    ("u4@a.example", Route("lmtp", "inet:127.0.0.11:24")),  # disabled: the domain key
    ("u5@b.example", Route("virtual", "")),
    ("x@off.example", None),
]


def test_transport_search_mailbox_then_domain(transport_spec):
    async def run() -> list[Route | None]:
        registry = TableRegistry()
        maps = Maps.from_value("transport_maps", transport_spec, registry)
        search = TransportMaps(maps, delimiters="+")
        try:
            return [await search.lookup(address) for address, _ in SEARCH]
        finally:
            await maps.close()

    assert asyncio.run(run()) == [route for _, route in SEARCH]


#: recipient -> (transport, nexthop) as the edge's queue manager routes it:
#: the address class's transport (virtual_transport = virtual, nexthop the
#: domain) overridden by the cluster's transport_maps (transport(5)).
ROUTES = {
    "u1@a.example": ("lmtp", "inet:127.0.0.11:24"),
    "u2+tag@a.example": ("lmtp", "inet:127.0.0.12:24"),
    "u3@b.example": ("lmtp", "inet:[127.0.0.13]:2424"),
    "u5@b.example": ("virtual", "b.example"),  # PostfixAdmin's default route
    "someone@elsewhere.example": ("smtp", "elsewhere.example"),  # default_transport
}


def test_edge_router_mailbox_then_domain_then_class(cluster_db, tmp_path):
    cfg = load_config(write_edge(tmp_path, cluster_db))

    async def run() -> dict[str, tuple[str, str]]:
        registry = TableRegistry.from_config(cfg)
        router = Router.from_config(
            cfg, registry, Resolver(ResolverSettings.from_config(cfg, registry))
        )
        try:
            routes = [await router.route(address) for address in ROUTES]
        finally:
            await registry.close()
        return {a: (r.transport, r.nexthop) for a, r in zip(ROUTES, routes, strict=True)}

    assert asyncio.run(run()) == ROUTES
