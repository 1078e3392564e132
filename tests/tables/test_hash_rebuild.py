"""Daemons rebuild a missing or stale ``hash:`` index themselves
(docs/tables.md, mailhost/tables/hash.py); commands never do.

A daemon's registry is ``TableRegistry.from_config(cfg)`` (lenient): it
rebuilds, and knows from alias_maps / alias_database which sources are
aliases(5) files.  The build runs off the event loop, atomically, once for
any number of concurrent lookups, and a failed build keeps the old index.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest

import mailhost.tables.hash as hash_table
from mailhost.config import load_config
from mailhost.errors import TableOpenError, TableTempFail
from mailhost.tables import hashindex
from mailhost.tables.aliases import build_alias_index
from mailhost.tables.base import UnavailableTable
from mailhost.tables.hash import build_index, rebuild_index
from mailhost.tables.hashindex import file_identity
from mailhost.tables.registry import TableRegistry

SOURCE = "a@example.com one\nb@example.com two\n"


def daemon_registry(directory: Path, **params: str) -> TableRegistry:
    """The registry ``mailhost serve`` makes from a main.cf in ``directory``."""
    lines = {"myhostname": "mx.example.com", "alias_maps": "", **params}
    (directory / "main.cf").write_text("".join(f"{k} = {v}\n" for k, v in lines.items()))
    return TableRegistry.from_config(load_config(directory))


def warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]


def make_stale(source: Path, text: str) -> None:
    """Edit ``source`` after its index was built (the index an hour old)."""
    source.write_text(text)
    now = time.time()
    os.utime(f"{source}.mhdb", (now - 3600, now - 3600))


def entries(index: Path) -> dict[str, str]:
    with sqlite3.connect(index) as conn:
        return dict(conn.execute("SELECT key, value FROM entries").fetchall())


@pytest.fixture
def quick_recheck(monkeypatch: pytest.MonkeyPatch) -> None:
    """Check the files on every lookup instead of at most once a second."""
    monkeypatch.setattr(hashindex, "RECHECK_INTERVAL", 0.0)


async def test_daemon_builds_missing_index_on_first_lookup(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    offloaded: list[object] = []
    real = hash_table.run_blocking

    async def spy(fn: Any, *args: Any, **kwargs: Any) -> Any:
        offloaded.append(fn)
        return await real(fn, *args, **kwargs)

    monkeypatch.setattr(hash_table, "run_blocking", spy)
    source = tmp_path / "virtual"
    source.write_text(SOURCE + "a@example.com duplicate\n")
    (tmp_path / "virtual.db").write_bytes(b"Postfix's own index")
    registry = daemon_registry(tmp_path)
    table = registry.open(f"hash:{source}")
    assert not isinstance(table, UnavailableTable)
    assert await table.lookup("B@Example.com") == "two"
    assert await table.lookup("nobody@example.com") is None
    assert warnings(caplog) == [
        'virtual.mhdb: duplicate entry: "a@example.com"',  # postmap's own warning
        f"database {source}.mhdb does not exist; index rebuilt from source file {source} "
        "as postmap would (2 entries)",
    ]
    assert offloaded == [rebuild_index]  # the build ran on the offload pool, not the loop
    assert entries(tmp_path / "virtual.mhdb") == {"a@example.com": "one", "b@example.com": "two"}
    assert (tmp_path / "virtual.db").read_bytes() == b"Postfix's own index"  # left alone
    assert not list(tmp_path.glob(".*.tmp"))
    await registry.close()


async def test_concurrent_lookups_share_one_build(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    source = tmp_path / "virtual"
    source.write_text(SOURCE)
    registry = daemon_registry(tmp_path)
    table = registry.open(f"hash:{source}")
    answers = await asyncio.gather(*(table.lookup("a@example.com") for _ in range(20)))
    assert answers == ["one"] * 20
    assert len([m for m in warnings(caplog) if "index rebuilt" in m]) == 1
    await registry.close()


async def test_stale_index_rebuilt_with_one_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    source = tmp_path / "virtual"
    source.write_text(SOURCE)
    build_index(str(source))
    make_stale(source, "a@example.com changed\n")
    registry = daemon_registry(tmp_path)
    table = registry.open(f"hash:{source}")
    assert warnings(caplog) == []  # opening only looks at the files
    assert await table.lookup("a@example.com") == "changed"
    assert await table.lookup("b@example.com") is None
    assert warnings(caplog) == [
        f"database {source}.mhdb is older than source file {source}; "
        f"index rebuilt from source file {source} as postmap would (1 entry)"
    ]
    # The new index carries the source's time: not older, so no second rebuild.
    assert os.stat(f"{source}.mhdb").st_mtime_ns == source.stat().st_mtime_ns
    await asyncio.sleep(1.05)
    assert await table.lookup("a@example.com") == "changed"
    assert len(warnings(caplog)) == 1
    await registry.close()


async def test_source_edited_while_serving_is_rebuilt(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, quick_recheck: None
) -> None:
    source = tmp_path / "virtual"
    source.write_text(SOURCE)
    registry = daemon_registry(tmp_path)
    table = registry.open(f"hash:{source}")
    assert await table.lookup("a@example.com") == "one"
    source.write_text("a@example.com three\n")
    later = time.time() + 5
    os.utime(source, (later, later))  # surely newer than the index just built
    assert await table.lookup("a@example.com") == "three"
    assert len([m for m in warnings(caplog) if "is older than source file" in m]) == 1
    await registry.close()


async def test_alias_maps_source_rebuilt_as_postalias(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    aliases = tmp_path / "aliases"
    aliases.write_text("Root: admin,bob\npostmaster:   root\n")
    registry = daemon_registry(
        tmp_path, alias_maps=f"hash:{aliases}, nis:mail.aliases", alias_database=f"hash:{aliases}"
    )
    assert registry.alias_sources == {str(aliases)}
    table = registry.open(f"hash:{aliases}")
    assert await table.lookup("root") == "admin, bob"  # postalias's external form
    assert await table.lookup("@") == "@"  # its sentinel
    assert any(
        m.endswith(f"index rebuilt from source file {aliases} as postalias would (2 entries)")
        for m in warnings(caplog)
    )
    ours = entries(tmp_path / "aliases.mhdb")
    (tmp_path / "ref").mkdir()
    (tmp_path / "ref" / "aliases").write_text(aliases.read_text())
    build_alias_index(str(tmp_path / "ref" / "aliases"), "mx.example.com")
    reference = entries(tmp_path / "ref" / "aliases.mhdb")
    assert ours.keys() == reference.keys()
    assert ours["YP_MASTER_NAME"] == "mx.example.com"
    del ours["YP_LAST_MODIFIED"], reference["YP_LAST_MODIFIED"]
    assert ours == reference
    await registry.close()


def test_alias_sources_from_alias_maps_and_alias_database(tmp_path: Path) -> None:
    registry = daemon_registry(
        tmp_path,
        alias_maps="proxy:hash:/etc/aliases, texthash:/etc/more, nis:mail.aliases",
        alias_database="/etc/local-aliases, hash:/etc/aliases",
        default_database_type="hash",
    )
    assert registry.alias_sources == {"/etc/aliases", "/etc/local-aliases"}


async def test_unreadable_source_keeps_old_index_and_warns(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, quick_recheck: None
) -> None:
    source = tmp_path / "virtual"
    source.write_text(SOURCE)
    build_index(str(source))
    now = time.time()
    os.utime(f"{source}.mhdb", (now - 3600, now - 3600))
    source.unlink()
    source.mkdir()  # a source that cannot be read (works as root, unlike chmod)
    registry = daemon_registry(tmp_path)
    table = registry.open(f"hash:{source}")
    assert await table.lookup("a@example.com") == "one"  # from the old index
    assert warnings(caplog) == [
        f"database {source}.mhdb is older than source file {source}; rebuilding it failed, "
        f"lookups use the old index: {source}: Is a directory"
    ]
    assert await table.lookup("b@example.com") == "two"
    assert len(warnings(caplog)) == 1  # tried again only once the source changes
    source.rmdir()
    source.write_text("a@example.com fixed\n")
    later = time.time() + 5
    os.utime(source, (later, later))
    assert await table.lookup("a@example.com") == "fixed"
    assert "index rebuilt" in warnings(caplog)[-1]
    await registry.close()


async def test_missing_index_that_cannot_be_built_fails_temporarily(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    source = tmp_path / "virtual"
    source.mkdir()
    registry = daemon_registry(tmp_path)
    table = registry.open(f"hash:{source}")
    with pytest.raises(TableTempFail, match=r"does not exist; building it from .* failed"):
        await table.lookup("a@example.com")
    assert warnings(caplog) == [
        f"database {source}.mhdb does not exist; building it from {source} failed: "
        f"{source}: Is a directory"
    ]
    await registry.close()


async def test_missing_source_and_index_is_unavailable_as_before(tmp_path: Path) -> None:
    registry = daemon_registry(tmp_path)
    assert isinstance(registry.open(f"hash:{tmp_path}/missing"), UnavailableTable)


async def test_ambiguous_format_is_not_rebuilt(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # An index postmap built, for a source main.cf names in alias_maps: which
    # format is meant cannot be known, so the table keeps the index and says so.
    aliases = tmp_path / "aliases"
    aliases.write_text("root admin\n")
    build_index(str(aliases))
    make_stale(aliases, "root: other\n")
    registry = daemon_registry(tmp_path, alias_maps=f"hash:{aliases}")
    table = registry.open(f"hash:{aliases}")
    assert await table.lookup("root") == "admin"
    assert warnings(caplog) == [
        f"database {aliases}.mhdb is older than source file {aliases}; not rebuilt: the index "
        f"was built by postmap but hash:{aliases} is named in alias_maps or alias_database "
        "-- run postmap or postalias by hand"
    ]
    await registry.close()


def test_build_abandoned_when_a_concurrent_postmap_replaced_the_index(tmp_path: Path) -> None:
    source = tmp_path / "virtual"
    source.write_text(SOURCE)
    build_index(str(source))
    seen = file_identity(f"{source}.mhdb")
    build_index(str(source))  # another postmap, after the daemon decided to rebuild
    theirs = file_identity(f"{source}.mhdb")
    assert theirs != seen
    assert rebuild_index(str(source), aliases_host=None, fold=True, index_was=seen) is None
    assert file_identity(f"{source}.mhdb") == theirs  # theirs stays
    assert not list(tmp_path.glob(".*.tmp"))
    assert rebuild_index(str(source), aliases_host=None, fold=True, index_was=theirs) == 2


async def test_commands_never_rebuild(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    source = tmp_path / "virtual"
    source.write_text(SOURCE)
    build_index(str(source))
    make_stale(source, "a@example.com changed\n")
    old = time.time() - 600
    os.utime(source, (old, old))
    (tmp_path / "main.cf").write_text("myhostname = mx.example.com\n")
    strict = TableRegistry.from_config(load_config(tmp_path), strict=True)
    assert not strict.rebuild_indexes
    table = strict.open(f"hash:{source}")
    assert await table.lookup("a@example.com") == "one"  # the stale index
    assert warnings(caplog) == [f"database {source}.mhdb is older than source file {source}"]
    with pytest.raises(TableOpenError, match="No such file or directory"):
        strict.open(f"hash:{tmp_path}/no-index-here")
    await strict.close()


async def test_old_index_answers_while_the_rebuild_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = tmp_path / "virtual"
    source.write_text(SOURCE)
    build_index(str(source))
    make_stale(source, "a@example.com changed\n")
    release = asyncio.Event()
    real = hash_table.run_blocking

    async def held(*args: object, **kwargs: object) -> object:
        await release.wait()
        return await real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(hash_table, "run_blocking", held)
    registry = daemon_registry(tmp_path)
    table = registry.open(f"hash:{source}")
    first = asyncio.create_task(table.lookup("a@example.com"))  # starts the rebuild
    await asyncio.sleep(0.01)
    monkeypatch.setattr(hashindex, "RECHECK_INTERVAL", 0.0)  # would check again...
    assert await table.lookup("a@example.com") == "one"  # ...but the build is running
    release.set()
    assert await first == "changed"
    assert await table.lookup("a@example.com") == "changed"
    await registry.close()
