"""permit_mynetworks' answers are remembered per client address only when
mynetworks lists no table (issue 17): a table's answer may change."""

from __future__ import annotations

from typing import cast

from mailhost.resolve.networks import NetworkList
from mailhost.resolve.resolver import Resolver
from mailhost.smtpd_check.facts import ResolverFacts
from mailhost.tables.registry import TableRegistry

NO_RESOLVER = cast(Resolver, None)  # in_mynetworks never asks it


async def test_address_lists_are_remembered_and_answer_as_the_list() -> None:
    networks = NetworkList.parse("mynetworks", "127.0.0.0/8, !10.1.0.0/16, 10.0.0.0/8, [::1]/128")
    facts = ResolverFacts(NO_RESOLVER, networks)
    for _ in range(2):
        assert await facts.in_mynetworks("x", "127.0.0.1")
        assert not await facts.in_mynetworks("x", "10.1.2.3")
        assert await facts.in_mynetworks("x", "10.2.3.4")
        assert await facts.in_mynetworks("x", "::1")
        assert not await facts.in_mynetworks("x", "192.0.2.1")
    assert facts._mynetworks_known == {
        "127.0.0.1": True, "10.1.2.3": False, "10.2.3.4": True, "::1": True, "192.0.2.1": False,
    }  # fmt: skip


async def test_lists_with_a_table_are_asked_every_time() -> None:
    registry = TableRegistry()
    networks = NetworkList.parse("mynetworks", "inline:{127.0.0.1=ok}", registry)
    facts = ResolverFacts(NO_RESOLVER, networks)
    assert facts._mynetworks_known is None
    assert await facts.in_mynetworks("x", "127.0.0.1")
    assert not await facts.in_mynetworks("x", "127.0.0.2")
    await registry.close()
