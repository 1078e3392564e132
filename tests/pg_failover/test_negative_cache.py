"""The lookup cache in front of a replica: a "not found" is served for at
most ``mailhost_table_negative_cache_ttl`` (counted from when the query was
sent), so a mailbox created on the primary is seen within that TTL plus the
replication lag — while a found value keeps its own, longer TTL."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from mailhost.tables.cache import CachedTable, cached_answer
from mailhost.tables.registry import TableRegistry
from tests.pg_failover.tables import prepare, query_file
from tests.support.pg_cluster import PgCluster

pytestmark = pytest.mark.db

TTL = 30.0
NEGATIVE_TTL = 1.0
#: Replication lag and polling step on a loaded test machine.
LAG = 1.0


async def test_not_found_is_cached_for_the_negative_ttl_and_no_longer(
    pg_cluster: PgCluster, tmp_path: Path
) -> None:
    pg_cluster.reset()
    prepare(pg_cluster)
    pg_cluster.primary.execute("DELETE FROM fo_mailbox WHERE username = 'late@example.com'")
    pg_cluster.wait_caught_up()
    registry = TableRegistry(cache_ttl=TTL, negative_cache_ttl=NEGATIVE_TTL)
    table = registry.open(query_file(tmp_path / "mbox.cf", pg_cluster.replicas))
    assert isinstance(table, CachedTable)
    try:
        asked = time.monotonic()
        assert await table.lookup("late@example.com") is None
        assert await table.lookup("user@example.com") == "example.com/user/"
        pg_cluster.primary.execute(
            "INSERT INTO fo_mailbox VALUES ('late@example.com', 'example.com/late/')"
        )
        created = time.monotonic()
        pg_cluster.primary.execute(
            "UPDATE fo_mailbox SET maildir = 'moved/' WHERE username = 'user@example.com'"
        )
        pg_cluster.wait_caught_up()
        # Inside the negative TTL the cached "not found" still answers ...
        if time.monotonic() - asked < NEGATIVE_TTL * 0.8:
            assert cached_answer(table, "late@example.com") == (None,)
        # ... and once it has passed the new mailbox is found.
        while (value := await table.lookup("late@example.com")) is None:
            assert time.monotonic() - created < NEGATIVE_TTL + LAG, (
                "negative answer outlived its TTL"
            )
            await asyncio.sleep(0.05)
        assert value == "example.com/late/"
        assert time.monotonic() - asked >= NEGATIVE_TTL
        # A found value keeps the (longer) positive TTL.
        assert await table.lookup("user@example.com") == "example.com/user/"
    finally:
        await table.close()


async def test_negative_ttl_zero_caches_no_not_found(tmp_path: Path) -> None:
    """``mailhost_table_negative_cache_ttl = 0``: every "not found" asks again."""
    import sqlite3

    path = tmp_path / "m.sqlite"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE m (k TEXT, v TEXT)")
    (tmp_path / "m.cf").write_text(f"dbpath = {path}\nquery = SELECT v FROM m WHERE k='%s'\n")
    table = TableRegistry(cache_ttl=TTL, negative_cache_ttl=0).open(f"sqlite:{tmp_path / 'm.cf'}")
    try:
        assert await table.lookup("a@example.com") is None
        with sqlite3.connect(path) as db:
            db.execute("INSERT INTO m VALUES ('a@example.com', 'found')")
        assert await table.lookup("a@example.com") == "found"
    finally:
        await table.close()
