"""A small ``hash:`` index answers from memory (mailhost/tables/hash.py,
issue 17): the same answers as the queried index, and a replaced index
(``mailhost postmap`` again) is read again as before, at most a second later.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import pytest

from mailhost.tables import hashindex
from mailhost.tables.hash import HashTable, build_index
from mailhost.tables.registry import open_table

SOURCE = """\
user@example.com      OK
@example.com          REJECT no mail for you
example.org           550 5.7.1 go away
Straße@example.de     DISCARD
1.2.3                 DUNNO
user+                 HOLD
"""
KEYS = (
    "user@example.com",
    "USER@Example.COM",
    "other@example.com",
    "@example.com",
    "example.org",
    "sub.example.org",
    "STRASSE@example.de",
    "straße@example.de",
    "1.2.3",
    "user+",
    "nobody",
)


@pytest.fixture
def source(tmp_path: Path) -> Path:
    path = tmp_path / "access"
    path.write_text(SOURCE)
    build_index(str(path))
    return path


async def answers(source: Path) -> dict[str, str | None]:
    table = open_table(f"hash:{source}")
    try:
        return {key: await table.lookup(key) for key in KEYS}
    finally:
        await table.close()


async def test_small_index_is_read_into_memory(source: Path) -> None:
    table = open_table(f"hash:{source}")
    assert isinstance(table, HashTable)
    assert table._memory is not None
    assert len(table._memory) == 6
    await table.close()


async def test_memory_answers_as_the_queried_index(
    source: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    in_memory = await answers(source)
    monkeypatch.setattr(hashindex, "MEMORY_INDEX_BYTES", 0)  # every index is "large"
    table = open_table(f"hash:{source}")
    assert isinstance(table, HashTable)
    assert table._memory is None
    await table.close()
    assert await answers(source) == in_memory
    assert in_memory["USER@Example.COM"] == "OK"
    assert in_memory["other@example.com"] is None
    assert in_memory["@example.com"] == "REJECT no mail for you"


async def test_replaced_index_is_read_again(
    source: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    table = open_table(f"hash:{source}")
    assert await table.lookup("user@example.com") == "OK"
    source.write_text("user@example.com REJECT changed\nnew@example.com OK\n")
    build_index(str(source))
    # Within the recheck interval the open copy still answers, as before.
    assert await table.lookup("new@example.com") is None
    monkeypatch.setattr(hashindex, "RECHECK_INTERVAL", 0.0)
    with caplog.at_level(logging.INFO, logger="mailhost.tables"):
        assert await table.lookup("new@example.com") == "OK"
    assert await table.lookup("user@example.com") == "REJECT changed"
    assert f"table hash:{source} has changed -- reopening" in caplog.text
    await table.close()


async def test_stale_source_warns_once_at_open(
    source: Path, caplog: pytest.LogCaptureFixture
) -> None:
    old = time.time() - 3600
    os.utime(f"{source}.mhdb", (old, old))
    os.utime(source, (old + 60, old + 60))
    with caplog.at_level(logging.WARNING, logger="mailhost.tables"):
        assert await answers(source)
    assert caplog.text.count(f"database {source}.mhdb is older than source file {source}") == 1


async def test_peek_answers_as_lookup_and_leaves_the_recheck_to_it(
    source: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Maps.lookup asks peek() first: the same answers as lookup(), and None
    # (lookup's turn, which looks at the index file) once the recheck is due.
    table = open_table(f"hash:{source}")
    assert isinstance(table, HashTable)
    expected = await answers(source)
    assert await table.lookup("nobody") is None
    assert {key: table.peek(key) for key in KEYS} == {k: (v,) for k, v in expected.items()}
    source.write_text("user@example.com REJECT changed\n")
    build_index(str(source))
    monkeypatch.setattr(hashindex, "RECHECK_INTERVAL", 0.0)
    assert table.peek("user@example.com") is None
    assert await table.lookup("user@example.com") == "REJECT changed"
    await table.close()


async def test_maps_peek_answers_and_counts_as_lookup(source: Path) -> None:
    from mailhost.observe import metrics
    from mailhost.tables.maps import Maps

    table = open_table(f"hash:{source}")
    maps = Maps("check_sender_access", [table])
    expected = {key: await maps.lookup(key) for key in KEYS}
    metrics.reset()
    assert {key: maps.peek(key) for key in KEYS} == {k: (v,) for k, v in expected.items()}
    assert maps.peek("", partial=False) == (None,)
    counted = {labels[2]: h.count for labels, h in metrics.snapshot().lookups.items()}
    found = sum(1 for v in expected.values() if v is not None)
    assert counted == {"found": found, "notfound": len(KEYS) - found}
    # Two tables: lookup()'s turn.
    assert Maps("x", [table, table]).peek("user@example.com") is None
    await table.close()
