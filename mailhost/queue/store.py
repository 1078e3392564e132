"""The queue directory: where a message lives from ``250 Ok: queued as QID``
until the last recipient is done.

Layout under ``queue_directory``, as Postfix's (spec 7.2): ``incoming`` (new
files, written by smtpd/pickup), ``active`` (owned by the queue manager),
``deferred`` (waiting for a retry), ``hold`` (``postsuper -h``), ``corrupt``
(files that failed verification), ``maildrop`` (local submissions and
``postsuper -r``).  A file's queue is its directory, so every state change is
one rename, and its name is its queue id (:mod:`mailhost.queue.ids`).

Writing a message (:meth:`QueueStore.begin` / :meth:`Transaction.commit`):

1. at the first accepted RCPT a nameless file is created in ``incoming``
   (``O_TMPFILE``; a temporary name ``incoming/USEC.PID.N`` where the file
   system has none, :mod:`mailhost.queue.newfiles`); its inode number gives
   the queue id, known before the content.  A transaction that ends without
   writing it (a message delivered inline, a session that ends before DATA)
   leaves it to the next one;
2. at end of DATA the whole file (:mod:`mailhost.queue.qfile`, ending in its
   end record) is written, marked ready with mode 0700 (Postfix's
   MAIL_QUEUE_STAT_READY) and fsynced;
3. it is linked to ``incoming/QID`` (link, not rename: an existing name is
   never replaced; a temporary name is then removed);
4. ``incoming`` is fsynced.  Only now does smtpd answer 250.

The link in step 3 is the commit point: a crash before it leaves no name (or
a temporary one, never acknowledged, which :meth:`QueueStore.recover` removes), a
crash after it leaves a complete, verified file.  Names that pass for queue ids
but whose content does not verify are moved to ``corrupt`` on recovery, as
Postfix's queue manager does, and never delivered.

Steps 2–4 are the durability idiom of :mod:`mailhost.fsutil` (the
transaction is its :class:`~mailhost.fsutil.DurableFile`), run by the store's
:class:`~mailhost.groupsync.Syncer`: by default the group commit
(:class:`~mailhost.groupsync.GroupSync`), where the files of concurrent
transactions are written, fsynced, linked and ``incoming`` fsynced once in
one trip to the offload pool.  Moves between queues are renames followed by
an fsync of both directories (the new one first), also through the syncer.
Reads, scans and renames run on the offload pool; creating a new
transaction's file and discarding an aborted one (an open and an fstat, a
close, none of which waits for the disk) run on the event loop, where they
cost less than the trip to the pool.
"""

from __future__ import annotations

import fcntl
import logging
import os
import stat
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from mailhost.config import Config
from mailhost.fsutil import StrPath
from mailhost.groupsync import GroupSync, Syncer
from mailhost.log import daemon_logger, logger
from mailhost.offload import run_blocking
from mailhost.queue import qfile
from mailhost.queue.ids import is_queue_id
from mailhost.queue.layout import (
    ACTIVE,
    CORRUPT,
    CORRUPT_MODE,
    DEFERRED,
    HOLD,
    HOLDABLE,
    INCOMING,
    MAILDROP,
    QUEUE_NAMES,
    REQUEUEABLE,
    SCAN_ORDER,
    QueueCounters,
    QueueEntry,
    QueueError,
    QueueFileNotFound,
    check_queue,
)
from mailhost.queue.newfiles import NewFile, NewFiles
from mailhost.queue.qfile import CorruptQueueFile, Envelope, QueueFile
from mailhost.queue.status import Expire, StatusRecord
from mailhost.queue.transaction import Transaction

log = logger("queue")
#: the queue manager's lines about queue files (``removed``), under the
#: store's logger so that a command can quiet them with the store's.
qmgr_log = daemon_logger("qmgr", "queue")


# Postfix: queue directories are private to the mail system (0700); maildrop
# is group-writable for postdrop and not readable (0730).
_DIR_MODE = {MAILDROP: 0o730}
_DEFAULT_DIR_MODE = 0o700


@dataclass
class Recovery:
    """What :meth:`QueueStore.recover` did."""

    #: temporary files removed from incoming (never acknowledged).
    removed: list[str] = field(default_factory=list)
    #: queue ids moved to the corrupt queue.
    corrupt: list[str] = field(default_factory=list)
    #: queue ids moved from active back to incoming.
    reactivated: list[str] = field(default_factory=list)
    #: complete queue ids left in incoming for the queue manager.
    incoming: list[str] = field(default_factory=list)


#: Files that failed verification, with why (start-up recovery).
_CorruptFiles = list[tuple[QueueEntry, str]]


class QueueStore:
    """The queue directory and every operation on its files."""

    def __init__(
        self,
        queue_directory: StrPath,
        *,
        long_ids: bool = False,
        syncer: Syncer | None = None,
        line_length_limit: int = qfile.LINE_LENGTH_LIMIT,
    ) -> None:
        self.root = Path(queue_directory)
        self.long_ids = long_ids
        self.syncer: Syncer = syncer if syncer is not None else GroupSync()
        self.line_length_limit = line_length_limit
        self.counters = QueueCounters()
        self._new_files: dict[str, NewFiles] = {}

    @classmethod
    def from_config(cls, cfg: Config) -> QueueStore:
        """The queue of ``queue_directory``, as main.cf configures it."""
        return cls(
            cfg.get("queue_directory"),
            long_ids=cfg.get_bool("enable_long_queue_ids"),
            line_length_limit=cfg.get_int("line_length_limit"),
        )

    # -- layout ---------------------------------------------------------------------

    def create_directories(self) -> None:
        """Create the queue directories that are missing (blocking)."""
        self.root.mkdir(parents=True, exist_ok=True)
        for name in QUEUE_NAMES:
            path = self.root / name
            if not path.is_dir():
                path.mkdir()
                # Set explicitly: mkdir's mode is filtered by the umask.
                path.chmod(_DIR_MODE.get(name, _DEFAULT_DIR_MODE))

    async def setup(self) -> None:
        await run_blocking(self.create_directories)

    def path(self, queue_name: str, queue_id: str) -> Path:
        if not is_queue_id(queue_id):
            raise QueueError(f"invalid mail queue id: {queue_id}")
        return self.root / check_queue(queue_name) / queue_id

    # -- writing --------------------------------------------------------------------

    def _create(self, queue_name: str = INCOMING) -> Transaction:
        files = self._new_files.get(queue_name)
        if files is None:
            directory = f"{self.root}/{queue_name}"
            # maildrop's files keep their names: pickup finds them there.
            files = NewFiles(directory, long_ids=self.long_ids, nameless=queue_name == INCOMING)
            self._new_files[queue_name] = files
        return Transaction(self, files.create(), queue_name)

    def give_back(self, file: NewFile, queue_name: str) -> bool:
        """A transaction ended without writing its file: keep the file for
        the next one (:meth:`NewFiles.give_back`)."""
        files = self._new_files.get(queue_name)
        return files is not None and files.give_back(file)

    async def begin(self, queue_name: str = INCOMING) -> Transaction:
        """Create the queue file for a new message; its id is known now.
        ``queue_name`` is ``incoming``, or ``maildrop`` for a local submission
        (``mailhost sendmail``; pickup later moves it on)."""
        if queue_name not in (INCOMING, MAILDROP):
            raise QueueError(f"cannot write new messages into queue {queue_name}")
        # One open(O_EXCL) and one fstat: metadata work that never waits for
        # the disk, cheaper on the event loop than a trip to the pool.
        return self._create(queue_name)

    async def enqueue(self, envelope: Envelope, content: Sequence[bytes]) -> str:
        """Queue a message durably in ``incoming``; return its queue id."""
        txn = await self.begin()
        await txn.commit(envelope, content)
        return txn.queue_id

    # -- finding and reading --------------------------------------------------------

    def _locate(self, queue_id: str, queues: Iterable[str]) -> QueueEntry:
        for name in queues:
            path = self.path(name, queue_id)
            if path.exists():
                return QueueEntry(name, queue_id, path)
        raise QueueFileNotFound(f"{queue_id}: no such queue file")

    async def locate(self, queue_id: str, queues: Iterable[str] = SCAN_ORDER) -> QueueEntry:
        """Which queue holds ``queue_id``; raises :class:`QueueFileNotFound`."""
        return await run_blocking(self._locate, queue_id, tuple(queues))

    def _list(self, queues: Sequence[str]) -> list[QueueEntry]:
        out: list[QueueEntry] = []
        for name in queues:
            directory = self.root / check_queue(name)
            try:
                # Directory order within a queue, as postqueue scans it.
                entries = list(os.scandir(directory))
            except FileNotFoundError:
                continue
            out.extend(
                QueueEntry(name, entry.name, Path(entry.path))
                for entry in entries
                if is_queue_id(entry.name) and entry.is_file(follow_symlinks=False)
            )
        return out

    async def list(self, queues: Iterable[str] = SCAN_ORDER) -> list[QueueEntry]:
        """Queue files in ``queues`` (default: mailq's scan order); temporary
        files are skipped."""
        return await run_blocking(self._list, tuple(queues))

    @staticmethod
    def _read_path(path: Path, content: bool) -> QueueFile:
        with path.open("rb") as f:
            return qfile.read(f, content=content)

    async def read_entry(self, entry: QueueEntry, *, content: bool = True) -> QueueFile:
        """Parse and verify a listed file; raises :class:`CorruptQueueFile`
        (or :class:`FileNotFoundError` when it was removed meanwhile)."""
        return await run_blocking(self._read_path, entry.path, content)

    async def read(
        self, queue_id: str, *, content: bool = True, queues: Iterable[str] = SCAN_ORDER
    ) -> tuple[QueueEntry, QueueFile]:
        """Find and parse one queue file."""
        entry = await self.locate(queue_id, queues)
        return entry, await self.read_entry(entry, content=content)

    # -- state changes --------------------------------------------------------------

    def _rename(self, entry: QueueEntry, to_queue: str) -> QueueEntry:
        target = self.path(to_queue, entry.queue_id)
        os.rename(entry.path, target)
        return QueueEntry(to_queue, entry.queue_id, target)

    def _locate_rename(
        self, queue_id: str, queues: Sequence[str], to_queue: str
    ) -> tuple[QueueEntry, QueueEntry | None]:
        # One trip to the offload pool for finding and renaming (each trip
        # costs the event loop more than the two system calls).
        entry = self._locate(queue_id, queues)
        if entry.queue_name == to_queue:
            return entry, None
        return entry, self._rename(entry, to_queue)

    async def move(
        self,
        queue_id: str,
        to_queue: str,
        *,
        from_queues: Iterable[str] = SCAN_ORDER,
        durable: bool = True,
    ) -> QueueEntry:
        """Move a queue file to ``to_queue`` durably; return its new place.

        ``durable=False`` skips the directory fsyncs, for a move whose loss
        in a crash changes nothing: the queue manager's ``incoming`` →
        ``active`` (start-up recovery moves ``active`` back to ``incoming``
        anyway, and rename(2) leaves one of the two names, never neither;
        Postfix's qmgr does not fsync it either)."""
        check_queue(to_queue)
        entry, moved = await run_blocking(
            self._locate_rename, queue_id, tuple(from_queues), to_queue
        )
        if moved is None:
            return entry
        if durable:
            # New name first: a crash between the two fsyncs may leave the old
            # name as well, never neither.
            await self.syncer.sync_dir(moved.path.parent)
            await self.syncer.sync_dir(entry.path.parent)
        self.counters.moved += 1
        return moved

    def _locate_unlink(self, queue_id: str, queues: Sequence[str]) -> QueueEntry:
        entry = self._locate(queue_id, queues)
        entry.path.unlink()
        return entry

    async def remove(
        self, queue_id: str, *, queues: Iterable[str] = SCAN_ORDER, durable: bool = True
    ) -> bool:
        """Delete a queue file (``postsuper -d``, or the queue manager when the
        last recipient is done); False when there is no such file.

        ``durable=False`` skips the directory fsync, for a file whose every
        recipient is already durably recorded as done: should a crash bring
        the name back, the queue manager finds nothing pending and removes it
        again (Postfix does not fsync this unlink either)."""
        try:
            entry = await run_blocking(self._locate_unlink, queue_id, tuple(queues))
        except (QueueFileNotFound, FileNotFoundError):
            return False
        if durable:
            await self.syncer.sync_dir(entry.path.parent)
        self.counters.removed += 1
        qmgr_log.info("%s: removed", queue_id)
        return True

    async def _change(
        self, queue_id: str, to_queue: str, from_queues: Sequence[str], what: str
    ) -> bool:
        try:
            await self.move(queue_id, to_queue, from_queues=from_queues)
        except (QueueFileNotFound, FileNotFoundError):
            return False
        log.info("%s: %s", queue_id, what)
        return True

    async def hold(self, queue_id: str, *, queues: Sequence[str] = HOLDABLE) -> bool:
        """``postsuper -h``: incoming/active/deferred → hold."""
        return await self._change(queue_id, HOLD, queues, "placed on hold")

    async def release(self, queue_id: str) -> bool:
        """``postsuper -H``: hold → deferred."""
        return await self._change(queue_id, DEFERRED, (HOLD,), "released from hold")

    async def requeue(self, queue_id: str, *, queues: Sequence[str] = REQUEUEABLE) -> bool:
        """``postsuper -r``: → maildrop, so pickup and cleanup see it again."""
        return await self._change(queue_id, MAILDROP, queues, "requeued")

    # -- status records -------------------------------------------------------------

    @staticmethod
    def _append(path: Path, records: Sequence[StatusRecord]) -> None:
        with path.open("r+b") as f:
            # One appender at a time: the queue manager and postsuper -e may
            # append to the same file (the lock goes with the close).
            fcntl.flock(f.fileno(), fcntl.LOCK_EX)
            parsed = qfile.read(f, content=False)
            # Drop a torn append left by a crash, so new records follow the
            # last complete one.
            f.truncate(parsed.valid_length)
            f.seek(parsed.valid_length)
            f.write(b"".join(qfile.encode_status(r) for r in records))
            f.flush()
            os.fsync(f.fileno())

    def _locate_append(
        self, queue_id: str, queues: Sequence[str], records: Sequence[StatusRecord]
    ) -> None:
        self._append(self._locate(queue_id, queues).path, records)

    async def append_status(
        self, queue_id: str, records: Sequence[StatusRecord], *, queues: Iterable[str] = SCAN_ORDER
    ) -> None:
        """Durably record delivery results / scheduling for a queue file (one
        append + fsync; the caller owns the file, as qmgr owns ``active``)."""
        await run_blocking(self._locate_append, queue_id, tuple(queues), records)
        self.counters.status_appends += 1

    async def expire(self, queue_id: str) -> bool:
        """``postsuper -e``: mark for expiry at the next delivery attempt."""
        try:
            await self.append_status(queue_id, [Expire(time.time(), forced=True)])
        except (QueueFileNotFound, FileNotFoundError):
            return False
        log.info("%s: expired", queue_id)
        return True

    # -- corrupt files --------------------------------------------------------------

    def _to_corrupt(self, entry: QueueEntry, mode: int | None) -> QueueEntry:
        target = self.path(CORRUPT, entry.queue_id)
        os.rename(entry.path, target)
        if mode is not None:
            os.chmod(target, mode)
        return QueueEntry(CORRUPT, entry.queue_id, target)

    async def save_corrupt(
        self,
        entry: QueueEntry,
        reason: str,
        *,
        log: logging.Logger = log,
        mode: int | None = CORRUPT_MODE,
        durable: bool = True,
    ) -> bool:
        """Move a queue file that does not verify from its queue to
        ``corrupt``, where nothing delivers it, and log why with ``log`` —
        the caller's daemon logger, so the lines carry its daemon name
        (pickup, qmgr; start-up recovery the process's own).  False when the file was
        gone already.

        ``mode`` is what the file is set to (Postfix's
        MAIL_QUEUE_STAT_CORRUPT, 0400); None leaves it as it is, as qmgr(8)'s
        qmgr_active_corrupt() only renames.  ``durable=False`` skips the
        directory fsyncs, for a caller that fsyncs both queues itself."""
        log.warning("%s: %s", entry.queue_id, reason)
        log.warning(
            'saving corrupt file "%s" from queue "%s" to queue "%s"',
            entry.queue_id, entry.queue_name, CORRUPT,
        )  # fmt: skip
        try:
            saved = await run_blocking(self._to_corrupt, entry, mode)
        except FileNotFoundError:
            return False
        if durable:
            # New name first, as in move().
            await self.syncer.sync_dir(saved.path.parent)
            await self.syncer.sync_dir(entry.path.parent)
        self.counters.corrupt += 1
        return True

    # -- start-up recovery ----------------------------------------------------------

    @staticmethod
    def _verify(entry: QueueEntry) -> str | None:
        """None when the file is complete (torn status appends are cut
        off), else why it is corrupt."""
        try:
            with entry.path.open("r+b") as f:
                parsed = qfile.read(f, content=True)
                if parsed.queue_id != entry.queue_id:
                    raise CorruptQueueFile(f"file claims queue id {parsed.queue_id}")
                if parsed.torn_tail:
                    f.truncate(parsed.valid_length)
                    os.fsync(f.fileno())
        except CorruptQueueFile as exc:
            return str(exc)
        return None

    def _recover(self, reactivate: bool) -> tuple[Recovery, _CorruptFiles]:
        self.create_directories()
        report = Recovery()
        corrupt: _CorruptFiles = []
        if reactivate:
            # qmgr(8) at start-up: whatever was active belongs to nobody now.
            for entry in self._list((ACTIVE,)):
                self._rename(entry, INCOMING)
                report.reactivated.append(entry.queue_id)
        for dirent in list(os.scandir(self.root / INCOMING)):
            if is_queue_id(dirent.name):
                continue
            if dirent.is_file(follow_symlinks=False):
                log.warning('removing incomplete queue file "%s/%s"', INCOMING, dirent.name)
                os.unlink(dirent.path)
                report.removed.append(dirent.name)
        for entry in self._list((INCOMING,)):
            reason = self._verify(entry)
            if reason is None:
                report.incoming.append(entry.queue_id)
            else:
                report.corrupt.append(entry.queue_id)
                corrupt.append((entry, reason))
        return report, corrupt

    async def recover(self, *, reactivate: bool = True) -> Recovery:
        """Start-up recovery: remove temporary files in ``incoming`` (they were
        never acknowledged), move files that do not verify to ``corrupt``, and
        with ``reactivate`` move ``active`` back to ``incoming`` as the queue
        manager does when it starts.  Run it before accepting mail."""
        report, corrupt = await run_blocking(self._recover, reactivate)
        for entry, reason in corrupt:
            await self.save_corrupt(entry, reason, durable=False)
        for name in (INCOMING, ACTIVE, CORRUPT):
            await self.syncer.sync_dir(self.root / name)
        return report


def file_mode(path: Path) -> int:
    """The permission bits of a queue file (0700 = complete, Postfix's ready bit)."""
    return stat.S_IMODE(path.stat().st_mode)
