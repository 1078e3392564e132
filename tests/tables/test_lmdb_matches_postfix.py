"""``lmdb:`` tables: ``mailhost postmap`` prints exactly what Postfix 3.7.11's
``postmap`` printed on the same index files (built by Postfix's own postmap,
committed in ``data/lmdb/``; answers in postfix_lmdb.json, recorded by
record_postfix_lmdb.py).  Postfix is not needed at test time.

One deliberate difference, as for every table type: an error while reading
(the empty key, LMDB's MDB_BAD_VALSIZE) is a temporary failure and exits 75
(EX_TEMPFAIL) instead of Postfix's 1, with Postfix's text.

The rest tests what a recording cannot show: the reader never holds the fcntl
lock a Postfix writer needs, waits for a writer's exclusive lock without
blocking the event loop, creates no ``-lock`` file, sees in-place updates,
follows a replaced file and a grown map.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import lmdb
import pytest

from mailhost.errors import TableOpenError, TableTempFail
from mailhost.tables import hashindex
from mailhost.tables import lmdb as lmdb_table
from mailhost.tables.registry import open_table
from tests.tables.postfix_lmdb_cases import CASES, INDEXES, make_broken, make_stale

DATA = Path(__file__).parent / "data" / "lmdb"
EXPECTED: dict[str, list[Any]] = json.loads(
    (Path(__file__).parent / "postfix_lmdb.json").read_text(encoding="utf-8")
)


def _copy_indexes(directory: Path) -> None:
    for name in INDEXES:
        shutil.copyfile(DATA / f"{name}.lmdb", directory / f"{name}.lmdb")


@pytest.fixture(scope="module")
def lmdb_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The committed Postfix-built indexes and the broken files, as recorded."""
    directory = tmp_path_factory.mktemp("lmdb")
    _copy_indexes(directory)
    make_stale(directory)
    make_broken(directory)
    return directory


def test_every_case_was_recorded() -> None:
    assert sorted(EXPECTED) == sorted(case_id for case_id, _ in CASES)


@pytest.mark.postfix
@pytest.mark.parametrize(("case_id", "args"), CASES, ids=[c[0] for c in CASES])
def test_lmdb_postmap_matches_postfix(
    mailhost_cli: Any, lmdb_dir: Path, case_id: str, args: tuple[str, ...]
) -> None:
    result = mailhost_cli("postmap", *(a.format(dir=lmdb_dir) for a in args))
    stdout, stderr, status = EXPECTED[case_id]
    if "fatal: error reading" in stderr:
        status = 75  # a read error is a temporary failure (see the module docstring)
    ours = result.stderr.replace(str(lmdb_dir), "{dir}")
    assert (result.stdout, ours, result.exit_code) == (stdout, stderr, status)


def test_committed_indexes_are_postfix_format() -> None:
    """The bytes the module docstring describes: one unnamed database, keys
    folded, key and value NUL-terminated unless built with ``postmap -n``."""
    for name in INDEXES:
        env = lmdb.open(str(DATA / f"{name}.lmdb"), subdir=False, readonly=True, lock=False)
        with env.begin() as txn:
            entries = dict(txn.cursor())
        env.close()
        nul = b"" if name == "nonul" else b"\0"
        user = b"User@Example.COM" if name == "nofold" else b"user@example.com"
        assert entries[user + nul] == b"Target@Example.NET" + nul
        assert all(k.endswith(nul) and v.endswith(nul) for k, v in entries.items())


def test_build_is_refused_without_traceback(mailhost_cli: Any, tmp_path: Path) -> None:
    (tmp_path / "virtual").write_text("a b\n")
    result = mailhost_cli("postmap", f"lmdb:{tmp_path}/virtual")
    assert result.exit_code == 1
    assert result.stderr.startswith("postmap: fatal: ")
    assert "lmdb" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "virtual.lmdb").exists()


@pytest.fixture
def index(tmp_path: Path) -> Path:
    """A private copy of the default index (tmp/virtual.lmdb); returns tmp/virtual."""
    shutil.copyfile(DATA / "virtual.lmdb", tmp_path / "virtual.lmdb")
    return tmp_path / "virtual"


WRITER = textwrap.dedent("""
    import json, sys, lmdb
    path, map_size, entries = sys.argv[1], int(sys.argv[2]), json.loads(sys.argv[3])
    env = lmdb.open(path, subdir=False, lock=False, map_size=map_size)
    with env.begin(write=True) as txn:
        for key, value, count in entries:
            for n in range(count):
                k = key.format(n=n).encode() + b"\\0"
                txn.put(k, value.encode() + b"\\0")
    env.close()
""")


def _write(path: Path, *entries: tuple[str, str, int], map_size: int = 10 << 20) -> None:
    """Write as Postfix does, from another process (py-lmdb allows one open
    per file and process): no LMDB lock file (MDB_NOLOCK), one file, keys and
    values NUL-terminated.  ``entries``: (key format with {n}, value, count)."""
    args = [str(path), str(map_size), json.dumps(entries)]
    subprocess.run([sys.executable, "-c", WRITER, *args], check=True)


LOCK_PROBE = textwrap.dedent("""
    import fcntl, os, sys
    fd = os.open(sys.argv[1], os.O_RDWR)
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        sys.exit(1)
""")


def _writer_could_lock(path: Path) -> bool:
    """Could another process (a Postfix writer) take the exclusive lock now?"""
    probe = subprocess.run([sys.executable, "-c", LOCK_PROBE, str(path)], check=False)
    return probe.returncode == 0


async def test_open_is_read_only_and_leaves_no_lock_file(index: Path) -> None:
    before = (index.parent / "virtual.lmdb").read_bytes()
    table = open_table(f"lmdb:{index}")
    assert await table.lookup("user@example.com") == "Target@Example.NET"
    assert sorted(p.name for p in index.parent.iterdir()) == ["virtual.lmdb"]
    assert _writer_could_lock(index.parent / "virtual.lmdb")  # nothing held between lookups
    await table.close()
    assert (index.parent / "virtual.lmdb").read_bytes() == before


async def test_lookup_waits_for_a_writers_exclusive_lock(index: Path) -> None:
    table = open_table(f"lmdb:{index}")
    holder = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        "import fcntl, os, sys, time\n"
        "fd = os.open(sys.argv[1], os.O_RDWR)\n"
        "fcntl.lockf(fd, fcntl.LOCK_EX)\n"
        "print('locked', flush=True)\n"
        "time.sleep(0.5)\n",
        str(index.parent / "virtual.lmdb"),
        stdout=asyncio.subprocess.PIPE,
    )
    assert holder.stdout is not None
    assert await holder.stdout.readline() == b"locked\n"
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.01)

    tick_task = asyncio.create_task(ticker())
    assert await table.lookup("user@example.com") == "Target@Example.NET"
    tick_task.cancel()
    await holder.wait()
    assert ticks > 10  # the event loop ran while the lookup waited
    await table.close()


async def test_lock_timeout_is_a_temporary_failure(
    index: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(lmdb_table, "LOCK_TIMEOUT", 0.1)
    table = open_table(f"lmdb:{index}")
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import fcntl, os, sys, time\n"
            "fd = os.open(sys.argv[1], os.O_RDWR)\n"
            "fcntl.lockf(fd, fcntl.LOCK_EX)\n"
            "print('locked', flush=True)\n"
            "sys.stdin.read()\n",
            str(index.parent / "virtual.lmdb"),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline() == b"locked\n"
        with pytest.raises(TableTempFail, match="lock dictionary"):
            await table.lookup("user@example.com")
    finally:
        holder.communicate(b"")
    assert await table.lookup("user@example.com") == "Target@Example.NET"
    await table.close()


async def test_in_place_update_is_seen_by_the_next_lookup(index: Path) -> None:
    table = open_table(f"lmdb:{index}")
    assert await table.lookup("new@example.com") is None
    _write(
        index.parent / "virtual.lmdb",
        ("new@example.com", "fresh", 1),
        ("user@example.com", "changed", 1),
    )
    assert await table.lookup("NEW@example.com") == "fresh"
    assert await table.lookup("user@example.com") == "changed"
    await table.close()


async def test_replaced_file_is_reopened(index: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hashindex, "RECHECK_INTERVAL", 0.0)
    table = open_table(f"lmdb:{index}")
    assert await table.lookup("user@example.com") == "Target@Example.NET"
    replacement = index.parent / "next.lmdb"
    _write(replacement, ("user@example.com", "replaced", 1))
    os.replace(replacement, index.parent / "virtual.lmdb")
    assert await table.lookup("user@example.com") == "replaced"
    await table.close()


async def test_map_grown_by_the_writer_is_adopted(index: Path) -> None:
    table = open_table(f"lmdb:{index}")
    assert await table.lookup("user@example.com") == "Target@Example.NET"
    _write(
        index.parent / "virtual.lmdb",
        ("bulk{n}@example.com", "x" * 10_000, 2000),
        map_size=64 << 20,
    )
    assert (index.parent / "virtual.lmdb").stat().st_size > 10 << 20
    assert await table.lookup("bulk1999@example.com") == "x" * 10_000
    assert await table.lookup("user@example.com") == "Target@Example.NET"
    await table.close()


async def test_found_form_sticks_as_in_postfix(index: Path) -> None:
    """Once a key was found with its NUL, Postfix stops trying without it, so
    the empty key is then simply not found (no MDB_BAD_VALSIZE)."""
    table = open_table(f"lmdb:{index}")
    with pytest.raises(TableTempFail, match="MDB_BAD_VALSIZE"):
        await table.lookup("")
    assert await table.lookup("user@example.com") == "Target@Example.NET"
    assert await table.lookup("") is None
    await table.close()


def test_missing_index_is_postfix_open_error(tmp_path: Path) -> None:
    with pytest.raises(TableOpenError, match=r"^open database .*/nonexist\.lmdb: No such file"):
        open_table(f"lmdb:{tmp_path}/nonexist")


async def test_tables_on_one_file_share_it(index: Path) -> None:
    """Folding and non-folding tables on the same file in one process (py-lmdb
    refuses a second environment on one file): both work, closing one leaves
    the other working."""
    folding = open_table(f"lmdb:{index}")
    exact = open_table(f"lmdb:{index}", fold=False)
    assert await folding.lookup("USER@example.com") == "Target@Example.NET"
    assert await exact.lookup("USER@example.com") is None
    await folding.close()
    assert await exact.lookup("user@example.com") == "Target@Example.NET"
    await exact.close()
    assert lmdb_table._open_indexes == {}


async def test_small_index_answers_from_memory_and_follows_writes(
    index: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 17: a small file is read whole, again after every committed write."""
    keys = ("user@example.com", "USER@example.com", "other@example.com", "new@example.com")
    table = open_table(f"lmdb:{index}")
    assert isinstance(table, lmdb_table.LmdbTable)
    in_memory = [await table.lookup(k) for k in keys]
    assert table._opened.memory is not None
    _write(index.parent / "virtual.lmdb", ("new@example.com", "fresh", 1))
    assert await table.lookup("new@example.com") == "fresh"
    await table.close()
    monkeypatch.setattr(hashindex, "MEMORY_INDEX_BYTES", 0)  # every file is "large"
    shutil.copyfile(DATA / "virtual.lmdb", index.parent / "virtual.lmdb")
    table = open_table(f"lmdb:{index}")
    assert isinstance(table, lmdb_table.LmdbTable)
    assert [await table.lookup(k) for k in keys] == in_memory
    assert table._opened.memory is None
    await table.close()
