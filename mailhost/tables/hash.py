"""``hash:/file`` — a postmap source compiled into an index beside it.

Postfix keeps ``hash:`` tables in Berkeley DB (``FILE.db``).  This Python has no
Berkeley DB module, so mailhost's index is an SQLite file ``FILE.mhdb``: always
available in the standard library, crash-safe, and it never clobbers the
``FILE.db`` a Postfix on the same machine may keep.  ``mailhost postmap FILE``
builds it atomically (write a temporary file, fsync, rename, fsync the
directory), so a reader sees the old index or the new one, never half of one.

A lookup is a primary-key probe on a B-tree whose pages stay in the page cache,
a few microseconds in-process — as Postfix itself reads its .db files.  When the
index is replaced the table notices (at most once a second) and reopens it, the
way Postfix daemons restart when a table changes.  A source edited after the
index was built, and not within the last 100 seconds, logs Postfix's warning.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Iterable
from pathlib import Path
from typing import ClassVar

from mailhost.errors import TableOpenError, TableTempFail
from mailhost.fsutil import commit_file, temp_name
from mailhost.log import logger
from mailhost.tables.base import Table
from mailhost.tables.registry import OpenContext
from mailhost.tables.source import parse_source, read_source

log = logger("tables")

INDEX_SUFFIX = ".mhdb"
#: Postfix warns about a stale index only when the source is this old (seconds).
STALE_GRACE = 100
RECHECK_INTERVAL = 1.0


def index_path(source: str) -> str:
    return source + INDEX_SUFFIX


def build_index(source: str, *, fold: bool = True) -> int:
    """Compile ``source`` into ``source.mhdb``; returns the number of entries."""
    text = read_source(source)
    index = Path(index_path(source))
    entries = parse_source(text, source, fold=fold, duplicate_prefix=index.name)
    write_index(source, ((e.key, e.value) for e in entries.values()))
    return len(entries)


def write_index(source: str, items: Iterable[tuple[str, str]]) -> None:
    """Replace ``source.mhdb`` atomically with ``items`` (key, value), in
    order; postalias(1) writes its aliases index through this too."""
    index = Path(index_path(source))
    tmp = temp_name(index)
    try:
        conn = sqlite3.connect(tmp)
        try:
            conn.execute("PRAGMA journal_mode=OFF")
            conn.execute("CREATE TABLE entries (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
            conn.execute("CREATE TABLE meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)")
            conn.executemany("INSERT INTO entries (key, value) VALUES (?, ?)", items)
            conn.execute("INSERT INTO meta VALUES ('format', 'mailhost-hash-1')")
            conn.commit()
        finally:
            conn.close()
        os.chmod(tmp, 0o644)
        commit_file(tmp, index)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


class HashTable(Table):
    type_name: ClassVar[str] = "hash"

    def __init__(self, name: str, *, fold: bool = True) -> None:
        super().__init__(name, fold=fold)
        self.index = index_path(name)
        self._conn: sqlite3.Connection | None = None
        self._identity: tuple[int, int, int] | None = None
        self._checked = 0.0
        self._reopen()

    @classmethod
    def open(cls, name: str, ctx: OpenContext) -> Table:
        return cls(name, fold=ctx.fold)

    def _reopen(self) -> None:
        try:
            st = os.stat(self.index)
        except FileNotFoundError:
            raise TableOpenError(f"open database {self.index}: No such file or directory") from None
        try:
            conn = sqlite3.connect(f"file:{self.index}?mode=ro", uri=True, check_same_thread=False)
            conn.execute("SELECT 1 FROM entries LIMIT 1")
        except sqlite3.Error as exc:
            raise TableOpenError(f"open database {self.index}: {exc}") from None
        if self._conn is not None:
            self._conn.close()
        self._conn = conn
        self._identity = (st.st_dev, st.st_ino, st.st_mtime_ns)
        self._checked = time.monotonic()
        self._warn_if_stale(st.st_mtime)

    def _warn_if_stale(self, index_mtime: float) -> None:
        try:
            source_mtime = os.stat(self.name).st_mtime
        except OSError:
            return
        if source_mtime > index_mtime and source_mtime < time.time() - STALE_GRACE:
            log.warning("database %s is older than source file %s", self.index, self.name)

    def _maybe_reopen(self) -> None:
        now = time.monotonic()
        if now - self._checked < RECHECK_INTERVAL:
            return
        self._checked = now
        try:
            st = os.stat(self.index)
        except OSError:
            return  # keep answering from the open index, as Postfix would
        if (st.st_dev, st.st_ino, st.st_mtime_ns) != self._identity:
            log.info("table %s has changed -- reopening", self.spec)
            self._reopen()

    async def _lookup(self, key: str) -> str | None:
        self._maybe_reopen()
        assert self._conn is not None
        try:
            row = self._conn.execute("SELECT value FROM entries WHERE key = ?", (key,)).fetchone()
        except sqlite3.Error as exc:
            raise TableTempFail(f"table {self.spec}: query error: {exc}") from exc
        return None if row is None else str(row[0])

    def items(self) -> list[tuple[str, str]]:
        """Every entry in index order (``postmap -s``)."""
        assert self._conn is not None
        return [(str(k), str(v)) for k, v in self._conn.execute("SELECT key, value FROM entries")]

    async def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


TABLE_TYPE = HashTable
