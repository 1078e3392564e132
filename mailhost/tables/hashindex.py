"""The file behind a ``hash:`` table: ``FILE.mhdb``, an SQLite file with one
``entries`` table, written whole and put in place atomically (postmap(1) and
postalias(1) build it, the daemons rebuild it, :mod:`mailhost.tables.hash`
reads it)."""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from mailhost.fsutil import commit_file, temp_name

INDEX_SUFFIX = ".mhdb"

#: A file's identity: (device, inode, size, mtime in ns).
Identity = tuple[int, int, int, int]


def index_path(source: str) -> str:
    return source + INDEX_SUFFIX


def identity(st: os.stat_result) -> Identity:
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def file_identity(path: str) -> Identity | None:
    try:
        return identity(os.stat(path))
    except OSError:
        return None


def write_index(
    source: str,
    items: Iterable[tuple[str, str]],
    *,
    mtime_ns: int | None = None,
    commit_if: Callable[[], bool] | None = None,
) -> bool:
    """Replace ``source.mhdb`` atomically with ``items`` (key, value), in
    order; postalias(1) writes its aliases index through this too.
    ``mtime_ns`` dates the new index; ``commit_if`` is asked just before the
    rename, and False abandons the build (returns False)."""
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
        if mtime_ns is not None:
            os.utime(tmp, ns=(time.time_ns(), mtime_ns))
        if commit_if is not None and not commit_if():
            tmp.unlink(missing_ok=True)
            return False
        commit_file(tmp, index)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return True


#: Postfix warns about a stale index only when the source is this old (seconds).
STALE_GRACE = 100


def index_is_stale(source: str, index_mtime: float) -> bool:
    """Postfix's "database INDEX is older than source file SOURCE" test, for
    any index built from a source (``hash:``, ``lmdb:``): the source changed
    after the index was built — in whole seconds, as Postfix compares
    ``time_t`` values — and more than :data:`STALE_GRACE` seconds ago."""
    try:
        source_mtime = os.stat(source).st_mtime
    except OSError:
        return False
    return int(source_mtime) > int(index_mtime) and source_mtime < time.time() - STALE_GRACE
