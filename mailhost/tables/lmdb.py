"""``lmdb:/file`` — read the ``FILE.lmdb`` index Postfix's own postmap builds.

Postfix 3.8+ makes ``lmdb`` its ``default_database_type``; an administrator's
``lmdb:/etc/postfix/virtual`` (built by Postfix's ``postmap lmdb:virtual``) is
read here unchanged.  mailhost does not build these indexes: use Postfix's
postmap (or ``hash:`` with ``mailhost postmap``).

The file format, as Postfix 3.7.11 writes it (``src/util/dict_lmdb.c``, checked
by reading files built with the real postmap, see
``tests/tables/record_postfix_lmdb.py``):

* one LMDB environment in a single file (``MDB_NOSUBDIR``), the entries in the
  unnamed main database, no named databases, no ``-lock`` file;
* keys folded to lower case when written (Unicode case folding with
  ``smtputf8_enable = yes``: ``Straße`` is stored as ``strasse``) unless
  ``postmap -f``; values verbatim;
* by default (and with ``postmap -N``) key and value each end in one NUL byte;
  ``postmap -n`` stores both without it.

Lookup, as ``dict_lmdb_lookup``: the folded key is tried with a trailing NUL,
then without; whichever form is found first sticks for the life of the opened
table (Postfix clears the other ``DICT_FLAG_TRY*NULL`` flag).  A value is read
up to its first NUL.  An empty key tried without NUL is LMDB's
``MDB_BAD_VALSIZE``, a fatal error in Postfix, a temporary failure here.

Locking, and why the reader never blocks a Postfix writer: Postfix opens LMDB
with ``MDB_NOLOCK`` — LMDB's reader table (the ``-lock`` file) is not used by
anyone, so opening with lmdb's own locking would only create a stray
``FILE.lmdb-lock`` that Postfix's writer ignores (and fail for a reader that
may not write the directory).  Instead Postfix serialises with ``fcntl`` locks
on the database file itself: every lookup holds a *shared* lock for the one
read, and a writer takes an *exclusive* lock at open (``postmap`` bulk mode,
then downgraded) or around each update, so it never reuses pages a reader is
still reading.  This table does the same: ``lock=False`` (``MDB_NOLOCK``) and
``readonly=True`` (``MDB_RDONLY``), and a shared ``fcntl`` lock held only
around one read transaction — microseconds; nothing is held between lookups,
so ``postmap lmdb:FILE`` is never blocked by mailhost.  (A shared lock held
for seconds does block Postfix's postmap: measured.)  The lock is tried
without waiting; while a writer holds its momentary exclusive lock the lookup
retries every :data:`LOCK_RETRY` seconds with ``asyncio.sleep`` (the event
loop keeps running) and fails temporarily after :data:`LOCK_TIMEOUT`.  fcntl
locks belong to the process, so every table on one file shares one
environment and one lock descriptor (py-lmdb refuses a second open of a file
in one process anyway), and nothing awaits between lock and unlock.

Postfix's postmap rewrites the index in place (same inode, one LMDB write
transaction), so every lookup looks at LMDB's last committed transaction id
(under the shared lock) and sees the newest committed data.  A file up to
:data:`~mailhost.tables.hashindex.MEMORY_INDEX_BYTES` (1 MiB) is read whole
into memory, again whenever that id has moved, and answers from there;
a larger one is read with one read transaction per key.  A file replaced
by another (new inode) is reopened within a second; a map grown past our
memory map (``MDB_MAP_RESIZED``) is adopted and the read retried.

Not imitated: ``postmap -N``/``-n`` while querying (Postfix then tries only
one form; ``mailhost postmap`` accepts and ignores both flags, so both forms
are tried); LMDB's own errors other than the ones recorded keep LMDB's text.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import threading
import time
from dataclasses import dataclass
from typing import ClassVar

import lmdb

from mailhost.errors import TableOpenError, TableTempFail
from mailhost.log import logger
from mailhost.tables import hashindex
from mailhost.tables.base import Table
from mailhost.tables.hashindex import IndexWatch
from mailhost.tables.registry import OpenContext

log = logger("tables")

INDEX_SUFFIX = ".lmdb"
#: How long a lookup waits for a writer's exclusive lock before failing temporarily.
LOCK_TIMEOUT = 10.0
LOCK_RETRY = 0.01
#: Postfix's text for LMDB's MDB_BAD_VALSIZE (mdb_strerror).
BAD_VALSIZE = "MDB_BAD_VALSIZE: Unsupported size of key/DB name/data, or wrong DUPFIXED size"


def index_path(source: str) -> str:
    return source + INDEX_SUFFIX


def _reason(exc: lmdb.Error, path: str) -> str:
    """py-lmdb says ``PATH: <mdb_strerror text>``; Postfix prints the text alone."""
    text = str(exc)
    return text.removeprefix(f"{path}: ")


def _c_string(data: bytes) -> str:
    """A value as Postfix copies it: up to the first NUL (vstring_strncpy)."""
    return data.split(b"\0", 1)[0].decode("utf-8")


@dataclass
class _OpenIndex:
    """One index file opened once per process, shared by every table on it.

    py-lmdb (like LMDB's documentation) refuses a second open of the same file
    in one process, and fcntl locks belong to the (process, file) pair anyway:
    ``lmdb:/f`` with and without key folding, or the tables of an old and a
    new registry during a reload, must share the environment and the lock
    descriptor.
    """

    identity: tuple[int, int]
    env: lmdb.Environment
    lock_fd: int
    users: int = 0
    #: The whole database when the file is small (module docstring), as of
    #: LMDB transaction :attr:`txnid`; None: read each key from the file.
    memory: dict[bytes, bytes] | None = None
    txnid: int = -1

    def refresh(self) -> None:
        """Under the shared lock: read the database into :attr:`memory`
        again when a writer has committed since (LMDB's last transaction id
        moved); a file grown past :data:`MEMORY_INDEX_BYTES` is read key by
        key instead."""
        if self.env.info()["last_txnid"] == self.txnid:
            return
        self.memory = None
        self.txnid = -1
        if os.fstat(self.lock_fd).st_size > hashindex.MEMORY_INDEX_BYTES:
            return
        for attempt in (1, 2):
            try:
                with self.env.begin(buffers=False) as txn:
                    self.memory = dict(txn.cursor())
                    self.txnid = txn.id()
                    return
            except lmdb.MapResizedError:
                if attempt == 2:
                    raise
                self.env.set_mapsize(0)  # adopt the size the writer grew the map to


_open_indexes: dict[tuple[int, int], _OpenIndex] = {}
_open_lock = threading.Lock()


def _acquire(path: str) -> tuple[_OpenIndex, os.stat_result]:
    """The shared handle of the file now at ``path`` and its status; raises
    TableOpenError with Postfix's text (``open database FILE.lmdb: ...``)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as exc:
        raise TableOpenError(f"open database {path}: {exc.strerror}") from None
    st = os.fstat(fd)
    identity = (st.st_dev, st.st_ino)
    with _open_lock:
        shared = _open_indexes.get(identity)
        if shared is None:
            try:
                env = lmdb.open(
                    path,
                    subdir=False,  # MDB_NOSUBDIR: the environment is the one file
                    readonly=True,  # MDB_RDONLY
                    lock=False,  # MDB_NOLOCK, as Postfix: fcntl locks on the file instead
                    create=False,
                    max_dbs=0,  # entries live in the unnamed main database
                )
            except lmdb.Error as exc:
                os.close(fd)
                raise TableOpenError(f"open database {path}: {_reason(exc, path)}") from None
            shared = _open_indexes[identity] = _OpenIndex(identity, env, fd)
        else:
            os.close(fd)
        shared.users += 1
    return shared, st


def _release(shared: _OpenIndex) -> None:
    with _open_lock:
        shared.users -= 1
        if shared.users > 0:
            return
        del _open_indexes[shared.identity]
    shared.env.close()
    os.close(shared.lock_fd)


class LmdbTable(Table):
    type_name: ClassVar[str] = "lmdb"

    def __init__(self, name: str, *, fold: bool = True) -> None:
        super().__init__(name, fold=fold)
        self.index = index_path(name)
        self._shared: _OpenIndex | None = None
        #: Only a different file at the path is reopened: Postfix's postmap
        #: rewrites in place, and every lookup reads the newest data anyway.
        self._watch = IndexWatch(name, self.index, _file_key)
        #: Postfix's DICT_FLAG_TRY1NULL / DICT_FLAG_TRY0NULL: both until one form is found.
        self.try_with_nul = True
        self.try_without_nul = True
        self._reopen()

    @classmethod
    def open(cls, name: str, ctx: OpenContext) -> Table:
        return cls(name, fold=ctx.fold)

    # opening

    def _reopen(self) -> None:
        shared, st = _acquire(self.index)
        if self._shared is not None:
            _release(self._shared)
        self._shared = shared
        self._watch.opened_now(st)

    @property
    def _opened(self) -> _OpenIndex:
        if self._shared is None:
            raise TableTempFail(f"table {self.spec}: closed")
        return self._shared

    # reading

    async def _shared_lock(self) -> None:
        """Postfix's MYFLOCK_OP_SHARED on the database file, without blocking the loop."""
        deadline = time.monotonic() + LOCK_TIMEOUT
        while True:
            try:
                fcntl.lockf(self._opened.lock_fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except OSError as exc:
                if time.monotonic() >= deadline:
                    raise TableTempFail(f"{self.name}: lock dictionary: {exc.strerror}") from None
                await asyncio.sleep(LOCK_RETRY)
            else:
                return

    def _unlock(self) -> None:
        fcntl.lockf(self._opened.lock_fd, fcntl.LOCK_UN)

    def _get(self, key: bytes) -> bytes | None:
        """From the copy in memory, or one read transaction (the caller
        holds the shared lock and has refreshed the copy)."""
        memory = self._opened.memory
        if memory is not None:
            return memory.get(key)
        env = self._opened.env
        for attempt in (1, 2):
            try:
                with env.begin(buffers=False) as txn:
                    value: bytes | None = txn.get(key)
                    return value
            except lmdb.MapResizedError:
                if attempt == 2:
                    raise
                env.set_mapsize(0)  # adopt the size the writer grew the map to
        return None

    async def _lookup(self, key: str) -> str | None:
        if self._watch.replaced(self.spec):
            self._reopen()
        raw = key.encode("utf-8")
        await self._shared_lock()
        try:
            try:
                self._opened.refresh()
                if self.try_with_nul:
                    value = self._get(raw + b"\0")
                    if value is not None:
                        self.try_without_nul = False
                        return _c_string(value)
                if self.try_without_nul:
                    if not raw:
                        raise TableTempFail(f"error reading {self.spec}: {BAD_VALSIZE}")
                    value = self._get(raw)
                    if value is not None:
                        self.try_with_nul = False
                        return _c_string(value)
            except lmdb.Error as exc:
                reason = _reason(exc, self.index)
                raise TableTempFail(f"error reading {self.spec}: {reason}") from exc
        finally:
            self._unlock()
        return None

    def items(self) -> list[tuple[str, str]]:
        """Every entry in LMDB key order (``postmap -s``), as Postfix's
        dict_lmdb_sequence copies them: key and value up to the first NUL."""
        fcntl.lockf(self._opened.lock_fd, fcntl.LOCK_SH)
        try:
            with self._opened.env.begin(buffers=False) as txn:
                return [(_c_string(k), _c_string(v)) for k, v in txn.cursor()]
        finally:
            self._unlock()

    async def close(self) -> None:
        if self._shared is not None:
            _release(self._shared)
            self._shared = None


def _file_key(st: os.stat_result) -> tuple[int, int]:
    return (st.st_dev, st.st_ino)


TABLE_TYPE = LmdbTable
