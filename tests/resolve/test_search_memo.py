"""find() reuses a whole address search for a moment when every table of
the maps answers from memory anyway (cached SQL, inline:, static:), and
never otherwise."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from mailhost.config import Config
from mailhost.errors import TableTempFail
from mailhost.resolve.classify import AddressClass, DomainClasses, NoDomains, classify
from mailhost.resolve.keys import find
from mailhost.resolve.resolver import ResolverSettings
from mailhost.resolve.trace import Trace
from mailhost.tables.cache import CachedTable
from mailhost.tables.maps import MEMO_TTL, Maps
from mailhost.tables.matchlist import DomainList, Element
from mailhost.tables.registry import TableRegistry, open_table
from tests.tables.test_registry_maps_cache import CountingTable


def policy():  # type: ignore[no-untyped-def]
    cfg = Config(Path("/nonexistent"), {"mydestination": "", "recipient_delimiter": "+"})
    return ResolverSettings.from_config(cfg, TableRegistry()).search


async def test_a_search_of_cached_tables_is_reused_then_redone() -> None:
    inner = CountingTable({"@example.com": "catchall@example.net"})
    maps = Maps("virtual_alias_maps", [CachedTable(inner, ttl=0.1, negative_ttl=0.1)])
    assert maps.memo_ttl == pytest.approx(0.1)
    search = policy()
    first = await find(maps, "a+x@example.com", search)
    probes = inner.calls  # full key, no-extension key, then @domain
    assert first is not None
    assert first.value == "catchall@example.net"
    assert probes == 3
    assert await find(maps, "a+x@example.com", search) == first
    assert inner.calls == probes  # nothing asked again
    await asyncio.sleep(0.15)  # the cache entries are stale too
    assert await find(maps, "a+x@example.com", search) == first
    assert inner.calls > probes


async def test_literal_tables_are_reused_for_at_most_memo_ttl() -> None:
    maps = Maps("m", [open_table("inline:{a@example.com=b}"), open_table("static:x")])
    assert maps.memo_ttl == MEMO_TTL


async def test_tables_that_can_change_under_us_are_never_reused(tmp_path: Path) -> None:
    (tmp_path / "t").write_text("a@example.com b\n")
    maps = Maps("m", [open_table(f"texthash:{tmp_path}/t"), open_table("inline:{x=y}")])
    assert maps.memo_ttl == 0
    uncached = Maps("m", [CountingTable({})])
    assert uncached.memo_ttl == 0


async def test_failures_and_traced_searches_are_not_remembered() -> None:
    inner = CountingTable({"a@example.com": "b"}, fail=True)
    maps = Maps("m", [CachedTable(inner, ttl=60, negative_ttl=60)])
    search = policy()
    with pytest.raises(TableTempFail):
        await find(maps, "a@example.com", search)
    inner.fail = False
    hit = await find(maps, "a@example.com", search)
    assert hit is not None
    assert hit.value == "b"
    trace = Trace()
    assert await find(maps, "a@example.com", search, trace) == hit
    assert [e.kind for e in trace.events] == ["lookup"]  # done again, probe by probe


async def test_a_domain_class_is_reused_while_the_domain_lists_allow() -> None:
    inner = CountingTable({"example.com": "1"})
    lists = DomainList([Element(False, table=CachedTable(inner, ttl=0.1, negative_ttl=0.1))])
    classes = DomainClasses(
        NoDomains(), NoDomains(), lists, NoDomains(), frozenset(), "example.com",
        {c: f"{c.value}:" for c in AddressClass},
    )  # fmt: skip
    first = await classify("example.com", classes)
    assert first.address_class is AddressClass.VIRTUAL_MAILBOX
    calls = inner.calls
    assert await classify("example.com", classes) == first
    assert inner.calls == calls
    trace = Trace()
    assert await classify("example.com", classes, trace) == first
    assert trace.events  # a traced classification is done in full
    await asyncio.sleep(0.15)
    await classify("example.com", classes)
    assert inner.calls > calls
