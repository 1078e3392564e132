"""The file behind a ``hash:`` table: ``FILE.mhdb``, an SQLite file with one
``entries`` table, written whole and put in place atomically (postmap(1) and
postalias(1) build it, the daemons rebuild it, :mod:`mailhost.tables.hash`
reads it).  Also what every table read from an index built from a source
shares (``hash:``, ``lmdb:``): :class:`IndexWatch` (is the index still the
one opened? is it older than its source?) and :data:`MEMORY_INDEX_BYTES`,
the size under which a table answers from a copy in memory."""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from mailhost.fsutil import commit_file, temp_name
from mailhost.log import logger

log = logger("tables")

INDEX_SUFFIX = ".mhdb"
#: How often (seconds) a table looks whether its index file was replaced.
RECHECK_INTERVAL = 1.0
#: An index file up to this size is read whole into memory when it is opened
#: (and again when it is replaced): every lookup is then a dict probe instead
#: of a query.  Larger indexes are queried on disk.  1 MiB holds about ten
#: thousand typical access-table entries, a few MB of Python objects per process.
MEMORY_INDEX_BYTES = 1 << 20

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


class IndexWatch:
    """When to reopen an index, and the stale-source warning, for a table
    read from ``index`` built from ``source``: at most once every
    :data:`RECHECK_INTERVAL` seconds, a stat of the index compared with the
    one opened (``key`` says which fields count: a file replaced by a new
    one, or also rewritten in place)."""

    def __init__(
        self,
        source: str,
        index: str,
        key: Callable[[os.stat_result], tuple[int, ...]],
    ) -> None:
        self.source = source
        self.index = index
        self.key = key
        #: ``key`` of the index file opened (None: none yet).
        self.opened: tuple[int, ...] | None = None
        #: When the index was last looked at (time.monotonic()).
        self.checked = 0.0

    def opened_now(self, st: os.stat_result, *, warn: bool = True) -> None:
        """The index described by ``st`` was just opened; ``warn``: log
        Postfix's warning when its source is newer (dict_db.c, dict_lmdb.c)."""
        self.opened = self.key(st)
        self.checked = time.monotonic()
        if warn and index_is_stale(self.source, st.st_mtime):
            log.warning("database %s is older than source file %s", self.index, self.source)

    def due(self) -> bool:
        """True when it is time to look at the index file again (and the
        look is counted as done)."""
        now = time.monotonic()
        if now - self.checked < RECHECK_INTERVAL:
            return False
        self.checked = now
        return True

    def replaced(self, spec: str) -> bool:
        """At most once an interval: True (logged as Postfix's daemons
        do) when the file at the index path is no longer the one opened.
        A file that cannot be looked at counts as unchanged: the open index
        keeps answering, as Postfix's would."""
        if not self.due():
            return False
        try:
            st = os.stat(self.index)
        except OSError:
            return False
        if self.key(st) == self.opened:
            return False
        log.info("table %s has changed -- reopening", spec)
        return True
