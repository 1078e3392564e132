"""``hash:/file`` — a postmap source compiled into an index beside it.

Postfix keeps ``hash:`` tables in Berkeley DB (``FILE.db``).  This Python has no
Berkeley DB module, so mailhost's index is an SQLite file ``FILE.mhdb``: always
available in the standard library, crash-safe, and it never clobbers the
``FILE.db`` a Postfix on the same machine may keep.  ``mailhost postmap FILE``
builds it atomically (write a temporary file, fsync, rename, fsync the
directory), so a reader sees the old index or the new one, never half of one.

A small index (up to :data:`~mailhost.tables.hashindex.MEMORY_INDEX_BYTES`,
1 MiB) is read whole into a dict when it is opened, and a lookup is a dict
probe: an access table is asked about sixteen times per recipient under
``smtpd_delay_reject``, and a query each cost more than the rest of the
restriction (docs/benchmarks.md, issue 17).  A larger index is queried: a
primary-key probe on a B-tree whose pages stay in the page cache, as Postfix
itself reads its .db files.  Either way, when the index is replaced the table
notices (at most once a second) and reopens it — reading it again — the way
Postfix daemons restart when a table changes.  A source edited after the
index was built, and not within the last 100 seconds, logs Postfix's warning
(``database FILE.mhdb is older than source file FILE``, dict_db.c) — in
commands such as ``postmap -q``, which, as Postfix's, never rebuild.

**Daemons rebuild the index themselves** (a registry with
``rebuild_indexes``, see :mod:`mailhost.tables.registry`), so ``mailhost serve
-c /etc/postfix`` needs no hand-run ``postmap``/``newaliases``: when the index
is missing, cannot be opened, or is older than its source, the next lookup
rebuilds it — once, whatever the number of concurrent lookups — and logs one
warning saying so.

* Tables are opened on the event loop (at start-up and on every reload, while
  other sessions are served), so opening only looks at the files; the build
  (read, parse, write, fsync) runs through :func:`mailhost.offload.run_blocking`
  and the lookup awaits it.  Other lookups keep answering from the old index
  meanwhile; without one they wait for the build.
* The build is :func:`write_index`'s: a temporary name, fsync, rename, fsync of
  the directory.  It is abandoned when the source changed while it was read or
  the index was replaced meanwhile (a concurrent ``postmap``: theirs stays).
  The new index carries the source's modification time, so a source edited
  during a build is still seen as newer, and rebuilt again.
* A build that fails (unreadable source, unwritable directory) logs a warning
  naming the files; lookups go on from the old index, or fail temporarily when
  there is none (mail is deferred).  It is tried again once the source changes.
* Format: an aliases(5) file must be built as postalias builds it.  The index
  itself says how it was built (postalias stores ``YP_MASTER_NAME``), the
  configuration says whether the source is an alias table (``alias_maps``,
  ``alias_database``).  A missing index follows the configuration; when the
  two disagree the table cannot know which is meant, so it does not rebuild
  and warns (Postfix's text plus why).
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import time
from pathlib import Path
from typing import ClassVar

from mailhost.errors import TableOpenError, TableTempFail
from mailhost.log import logger
from mailhost.offload import run_blocking
from mailhost.tables import hashindex
from mailhost.tables.aliases import alias_items, parse_aliases
from mailhost.tables.base import Table
from mailhost.tables.hashindex import (
    Identity,
    IndexWatch,
    file_identity,
    identity,
    index_path,
    write_index,
)
from mailhost.tables.registry import OpenContext
from mailhost.tables.source import parse_source, read_source

log = logger("tables")

#: The key postalias stores and postmap (which folds keys) never does.
ALIAS_MARKER = "YP_MASTER_NAME"


def build_index(source: str, *, fold: bool = True) -> int:
    """Compile ``source`` into ``source.mhdb``; returns the number of entries."""
    text = read_source(source)
    index = Path(index_path(source))
    entries = parse_source(text, source, fold=fold, duplicate_prefix=index.name)
    write_index(source, ((e.key, e.value) for e in entries.values()))
    return len(entries)


def rebuild_index(
    source: str, *, aliases_host: str | None, fold: bool, index_was: Identity | None
) -> int | None:
    """The daemon's rebuild (blocking; run it off the event loop): ``source``
    compiled as postmap would, or as postalias would with ``aliases_host`` as
    ``$myhostname``.  Returns the number of entries, or None when the build
    was abandoned because the source changed while it was read or the index
    is no longer ``index_was`` (someone else rebuilt it)."""
    before = identity(os.stat(source))
    text = read_source(source)
    items: list[tuple[str, str]]
    if aliases_host is not None:
        aliases = parse_aliases(text, source, fold=fold, duplicate_prefix=index_path(source))
        items, count = alias_items(aliases, aliases_host), len(aliases)
    else:
        name = Path(index_path(source)).name
        entries = parse_source(text, source, fold=fold, duplicate_prefix=name)
        items, count = [(e.key, e.value) for e in entries.values()], len(entries)

    def unchanged() -> bool:
        return file_identity(source) == before and file_identity(index_path(source)) == index_was

    return count if write_index(source, items, mtime_ns=before[3], commit_if=unchanged) else None


class HashTable(Table):
    type_name: ClassVar[str] = "hash"

    def __init__(
        self,
        name: str,
        *,
        fold: bool = True,
        rebuild: bool = False,
        aliases: bool = False,
        myhostname: str = "localhost",
    ) -> None:
        super().__init__(name, fold=fold)
        self.index = index_path(name)
        self._conn: sqlite3.Connection | None = None
        #: The whole index, when it is small (module docstring); else None.
        self._memory: dict[str, str] | None = None
        self._watch = IndexWatch(name, self.index, _reopen_key)
        #: Daemon mode: rebuild a missing or stale index (module docstring).
        self.rebuild = rebuild
        self.aliases = aliases
        self.myhostname = myhostname
        self._lock = asyncio.Lock()
        #: Why there is no open index (lookups fail temporarily with it).
        self._problem = ""
        #: The source identity whose rebuild failed or was refused.
        self._given_up: Identity | None = None
        if not rebuild:
            self._reopen()
            return
        try:
            self._reopen(warn=False)
        except TableOpenError as exc:
            if not os.path.exists(name):
                raise
            self._problem = str(exc)  # the first lookup builds the index
        self._watch.checked = float("-inf")  # the first lookup checks freshness

    @classmethod
    def open(cls, name: str, ctx: OpenContext) -> Table:
        registry = ctx.registry
        return cls(
            name,
            fold=ctx.fold,
            rebuild=registry.rebuild_indexes,
            aliases=name in registry.alias_sources,
            myhostname=registry.myhostname,
        )

    def _reopen(self, *, warn: bool = True) -> None:
        try:
            st = os.stat(self.index)
        except FileNotFoundError:
            raise TableOpenError(f"open database {self.index}: No such file or directory") from None
        memory: dict[str, str] | None = None
        try:
            conn = sqlite3.connect(f"file:{self.index}?mode=ro", uri=True, check_same_thread=False)
            try:
                conn.execute("SELECT 1 FROM entries LIMIT 1")
                if st.st_size <= hashindex.MEMORY_INDEX_BYTES:
                    rows = conn.execute("SELECT key, value FROM entries")
                    memory = {str(k): str(v) for k, v in rows}
            except sqlite3.Error:
                conn.close()
                raise
        except sqlite3.Error as exc:
            raise TableOpenError(f"open database {self.index}: {exc}") from None
        if self._conn is not None:
            self._conn.close()
        self._conn = conn
        self._memory = memory
        self._watch.opened_now(st, warn=warn)

    # -- daemon mode: rebuilding the index -----------------------------------------

    async def _refresh(self) -> None:
        """Daemon mode's check (at most once a second, or on every lookup
        while there is no index): reopen a replaced index, rebuild a missing
        or stale one."""
        watch = self._watch
        if self._conn is not None and (
            time.monotonic() - watch.checked < hashindex.RECHECK_INTERVAL or self._lock.locked()
        ):
            return  # checked a moment ago, or being rebuilt: the open index answers
        async with self._lock:
            if self._conn is not None and not watch.due():
                return  # another lookup has just done it
            watch.checked = time.monotonic()
            index_st = _stat(self.index)
            if index_st is not None and _reopen_key(index_st) != watch.opened:
                if watch.opened is not None:
                    log.info("table %s has changed -- reopening", self.spec)
                try:
                    self._reopen(warn=False)
                    self._problem = ""
                except TableOpenError as exc:
                    if self._conn is None:
                        self._problem = str(exc)
            source_st = _stat(self.name)
            if source_st is None or identity(source_st) == self._given_up:
                return
            if index_st is None:
                why = "does not exist"
            elif self._conn is None:
                why = f"cannot be opened ({self._problem})"
            elif source_st.st_mtime_ns > index_st.st_mtime_ns:
                why = ""  # stale: Postfix's words
            else:
                return
            await self._rebuild(why, identity(source_st), index_st)

    def _built_by_postalias(self) -> bool | None:
        """What the open index says about its format (None: no index)."""
        if self._conn is None:
            return None
        row = self._conn.execute("SELECT 1 FROM entries WHERE key = ?", (ALIAS_MARKER,))
        return row.fetchone() is not None

    async def _rebuild(
        self, why: str, source_id: Identity, index_st: os.stat_result | None
    ) -> None:
        what = (
            f"database {self.index} is older than source file {self.name}"
            if not why
            else f"database {self.index} {why}"
        )
        built_by_postalias = self._built_by_postalias()
        if built_by_postalias is not None and built_by_postalias != self.aliases:
            self._given_up = source_id
            log.warning(
                "%s; not rebuilt: the index was built by %s but %s is %snamed in "
                "alias_maps or alias_database -- run postmap or postalias by hand",
                what,
                "postalias" if built_by_postalias else "postmap",
                self.spec,
                "" if self.aliases else "not ",
            )
            return
        tool = "postalias" if self.aliases else "postmap"
        try:
            count = await run_blocking(
                rebuild_index,
                self.name,
                aliases_host=self.myhostname if self.aliases else None,
                fold=self.fold,
                index_was=None if index_st is None else identity(index_st),
            )
        except Exception as exc:  # any failure: keep what we have (DESIGN rule 2)
            self._given_up = source_id
            reason = _reason(exc)
            if self._conn is not None:
                log.warning("%s; rebuilding it failed, lookups use the old index: %s", what, reason)
            else:
                self._problem = f"{what}; building it from {self.name} failed: {reason}"
                log.warning("%s", self._problem)
            return
        if count is None:
            # The source or the index changed under the build: look again next time.
            self._watch.checked = float("-inf")
            return
        log.warning(
            "%s; index rebuilt from source file %s as %s would (%d %s)",
            what,
            self.name,
            tool,
            count,
            "entry" if count == 1 else "entries",
        )
        self._given_up = None
        self._reopen(warn=False)
        self._problem = ""

    # -- lookups ----------------------------------------------------------------------

    def peek(self, key: str) -> tuple[str | None] | None:
        """A small index's answer from memory, unless the index is due for
        its look at the file (then :meth:`lookup` does that first)."""
        memory = self._memory
        if memory is None or self._conn is None:
            return None
        watch = self._watch
        if time.monotonic() - watch.checked >= hashindex.RECHECK_INTERVAL and not (
            self.rebuild and self._lock.locked()
        ):
            return None
        if self.fold:  # fold_key(), inline (some twenty probes per RCPT)
            key = key.lower() if key.isascii() else key.casefold()
        value = memory.get(key)
        return None if value == "" else (value,)

    async def _lookup(self, key: str) -> str | None:
        if self.rebuild:
            await self._refresh()
        elif self._watch.replaced(self.spec):
            self._reopen()
        conn = self._conn
        if conn is None:
            raise TableTempFail(f"table {self.spec}: {self._problem}")
        memory = self._memory
        if memory is not None:
            return memory.get(key)
        try:
            row = conn.execute("SELECT value FROM entries WHERE key = ?", (key,)).fetchone()
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
            self._memory = None


def _stat(path: str) -> os.stat_result | None:
    try:
        return os.stat(path)
    except OSError:
        return None


def _reopen_key(st: os.stat_result) -> tuple[int, int, int]:
    return (st.st_dev, st.st_ino, st.st_mtime_ns)


def _reason(exc: Exception) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return f"{exc.filename + ': ' if exc.filename else ''}{exc.strerror}"
    return str(exc) or type(exc).__name__


TABLE_TYPE = HashTable
