"""The table registry, *_maps search order, the result cache and hash: index
freshness (Postfix maps(3) and dict(3) rules, spec 2.1 and 2.2)."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import pytest

from mailhost.errors import TableEmptyResult, TableOpenError, TableTempFail
from mailhost.tables.base import Table, UnavailableTable
from mailhost.tables.cache import CachedTable
from mailhost.tables.hash import build_index
from mailhost.tables.maps import Maps, MapsProbe
from mailhost.tables.registry import TableRegistry, open_table


class CountingTable(Table):
    type_name = "counting"
    cacheable = True

    def __init__(self, answers: dict[str, str], fail: bool = False) -> None:
        super().__init__("test")
        self.answers = answers
        self.fail = fail
        self.calls = 0

    async def _lookup(self, key: str) -> str | None:
        self.calls += 1
        await asyncio.sleep(0)
        if self.fail:
            raise TableTempFail("down")
        return self.answers.get(key)


async def test_maps_first_table_that_answers_wins() -> None:
    maps = Maps("virtual_alias_maps", [open_table("inline:{a=1}"), open_table("inline:{a=2, b=3}")])
    assert await maps.lookup("a") == "1"
    assert await maps.lookup("B") == "3"
    assert await maps.lookup("c") is None


async def test_maps_error_stops_the_search_postfix_rule() -> None:
    broken = CountingTable({}, fail=True)
    later = open_table("inline:{a=1}")
    probes: list[MapsProbe] = []
    with pytest.raises(TableTempFail):
        await Maps("virtual_alias_maps", [broken, later]).lookup("a", probes=probes)
    assert [p.table for p in probes] == ["counting:test"]  # the later table was not asked


async def test_maps_empty_result_is_configuration_error(caplog: pytest.LogCaptureFixture) -> None:
    maps = Maps("virtual_mailbox_maps", [open_table("inline:{a=}")])
    with pytest.raises(TableEmptyResult):
        await maps.lookup("a")
    assert "virtual_mailbox_maps lookup of a returns an empty string result" in caplog.messages
    assert "virtual_mailbox_maps should return NO RESULT in case of NOT FOUND" in caplog.messages


async def test_maps_never_looks_up_empty_key() -> None:
    table = CountingTable({"": "x"})
    assert await Maps("p", [table]).lookup("") is None
    assert table.calls == 0


async def test_partial_keys_skip_regexp_tables(tmp_path: Path) -> None:
    (tmp_path / "re").write_text("/^@example/ regexp-hit\n")
    maps = Maps("virtual_alias_maps", [open_table(f"regexp:{tmp_path}/re")])
    assert await maps.lookup("@example.com") == "regexp-hit"
    assert await maps.lookup("@example.com", partial=True) is None


async def test_proxy_prefix_shares_the_table() -> None:
    registry = TableRegistry()
    assert registry.open("proxy:inline:{a=1}") is registry.open("inline:{a=1}")


def test_unopenable_table_is_unavailable_in_daemons_and_fatal_in_commands(tmp_path: Path) -> None:
    lenient = TableRegistry(strict=False).open(f"hash:{tmp_path}/missing")
    assert isinstance(lenient, UnavailableTable)
    with pytest.raises(TableOpenError, match=r"open database .*missing\.mhdb"):
        TableRegistry(strict=True).open(f"hash:{tmp_path}/missing")


async def test_unavailable_table_fails_temporarily(tmp_path: Path) -> None:
    table = TableRegistry(strict=False).open("nosuchtype:x")
    with pytest.raises(TableTempFail):
        await table.lookup("a")


async def test_cache_counts_hits_and_shares_concurrent_misses() -> None:
    inner = CountingTable({"a": "1"})
    cached = CachedTable(inner, ttl=60, negative_ttl=60)
    results = await asyncio.gather(*(cached.lookup("a") for _ in range(5)))
    assert results == ["1"] * 5
    assert inner.calls == 1
    assert await cached.lookup("zz") is None
    assert await cached.lookup("zz") is None
    assert inner.calls == 2
    assert (cached.stats.hits, cached.stats.misses) == (5, 2)


async def test_cache_never_keeps_temporary_failures() -> None:
    inner = CountingTable({"a": "1"}, fail=True)
    cached = CachedTable(inner, ttl=60, negative_ttl=60)
    with pytest.raises(TableTempFail):
        await cached.lookup("a")
    inner.fail = False
    assert await cached.lookup("a") == "1"


async def test_cache_expires_after_ttl() -> None:
    inner = CountingTable({"a": "1"})
    cached = CachedTable(inner, ttl=0.05, negative_ttl=0.05)
    await cached.lookup("a")
    await asyncio.sleep(0.08)
    await cached.lookup("a")
    assert inner.calls == 2


async def test_maps_answer_fresh_cache_hits_without_asking_the_table() -> None:
    inner = CountingTable({"a": "1"})
    cached = CachedTable(inner, ttl=0.05, negative_ttl=0.05)
    maps = Maps("virtual_alias_maps", [cached])
    assert cached.peek("a") is None  # nothing cached yet
    assert [await maps.lookup("a"), await maps.lookup("a")] == ["1", "1"]
    assert [await maps.lookup("zz"), await maps.lookup("zz")] == [None, None]
    assert inner.calls == 2
    assert cached.peek("a") == ("1",)
    assert cached.peek("zz") == (None,)
    assert (cached.stats.hits, cached.stats.misses) == (4, 2)
    await asyncio.sleep(0.08)
    assert cached.peek("a") is None  # expired: the table is asked again
    assert await maps.lookup("a") == "1"
    assert inner.calls == 3


def test_registry_caches_only_cacheable_tables() -> None:
    registry = TableRegistry(cache_ttl=10)
    assert not isinstance(registry.open("inline:{a=1}"), CachedTable)


async def test_stale_index_warning_matches_postfix_rule(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    source = tmp_path / "virtual"
    source.write_text("a@example.com b@example.com\n")
    build_index(str(source))
    now = time.time()
    os.utime(f"{source}.mhdb", (now - 300, now - 300))
    os.utime(source, (now - 200, now - 200))  # newer than the index, edited > 100 s ago
    open_table(f"hash:{source}")
    assert f"database {source}.mhdb is older than source file {source}" in caplog.messages
    caplog.clear()
    os.utime(source, (now - 50, now - 50))  # edited less than 100 s ago: no warning
    open_table(f"hash:{source}")
    assert not any("older than source" in m for m in caplog.messages)


async def test_rebuilt_index_is_picked_up_without_reopening(tmp_path: Path) -> None:
    source = tmp_path / "virtual"
    source.write_text("a@example.com one\n")
    build_index(str(source))
    table = open_table(f"hash:{source}")
    assert await table.lookup("a@example.com") == "one"
    source.write_text("a@example.com two\n")
    build_index(str(source))
    await asyncio.sleep(1.05)  # the index identity is checked at most once a second
    assert await table.lookup("a@example.com") == "two"
