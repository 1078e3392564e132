"""One queue file being written: created at the first accepted RCPT (its
inode gives the queue id), committed at end of DATA through the store's group
commit, or aborted (see :mod:`mailhost.queue.store` for the steps)."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Protocol

from mailhost.fsutil import DurableFile, LinkedFile, StrPath
from mailhost.groupsync import Syncer
from mailhost.log import logger
from mailhost.queue import qfile
from mailhost.queue.layout import INCOMING, READY_MODE, QueueCounters, QueueError
from mailhost.queue.newfiles import NewFile, link_nameless
from mailhost.queue.qfile import Envelope
from mailhost.queue.spool import Content

log = logger("queue")


class Spool(Protocol):
    """What a transaction needs of its queue store
    (:class:`mailhost.queue.store.QueueStore`)."""

    root: Path
    line_length_limit: int
    syncer: Syncer
    counters: QueueCounters

    def give_back(self, file: NewFile, queue_name: str) -> bool: ...


class Transaction:
    """One queue file being written; :attr:`queue_id` is known from the start.

    It holds the open descriptor of its file (nameless, or under a
    temporary name: :mod:`mailhost.queue.newfiles`); a buffered writer is
    made only when the file is written — a message delivered inline
    (mailhost.qmgr.inline) never writes it, and gives the file back for the
    next transaction."""

    def __init__(self, store: Spool, file: NewFile, queue_name: str = INCOMING) -> None:
        self.store = store
        self.queue_id = file.queue_id
        #: incoming (smtpd, pickup) or maildrop (sendmail, a local submission).
        self.queue_name = queue_name
        #: Its file: open, and nameless or under a temporary name (``temp``).
        self._file = file
        self._fd: int | None = file.fd
        self._linked = False
        #: A nameless file once linked: its inode is fsynced again with the
        #: directory (:class:`~mailhost.fsutil.LinkedFile`).
        self._relinked: LinkedFile | None = None
        #: Whether the file was written (then it is never given back).
        self._written = False
        self._content: tuple[Envelope, Sequence[bytes] | Content] | None = None
        #: The size Postfix logs, known once written.
        self.size = 0
        self.committed = False

    @property
    def path(self) -> Path:
        """Where the file will be once committed."""
        return self.store.root / self.queue_name / self.queue_id

    # -- the durability idiom's steps (fsutil.DurableFile), run on the pool ------

    def _prepare(
        self, envelope: Envelope, content: Sequence[bytes] | Content
    ) -> Sequence[DurableFile]:
        self._content = (envelope, content)
        return (self,)

    def _write(self, envelope: Envelope, lines: Sequence[bytes] | Content) -> int:
        assert self._fd is not None
        content = lines if isinstance(lines, Content) else Content(list(lines))
        limit = self.store.line_length_limit
        size = content.size(limit)
        body = content.body
        with os.fdopen(self._fd, "wb", buffering=1 << 16, closefd=False) as file:
            for chunk in qfile.encode_parts(
                self.queue_id,
                envelope,
                content.header,
                body.chunks(),
                body_length=body.length,
                body_size=size - qfile.postfix_size(content.header, limit),
                line_length_limit=limit,
            ):
                file.write(chunk)
        os.fchmod(self._fd, READY_MODE)
        return size

    def write(self) -> Sequence[int]:
        """Write the whole file (open since :meth:`QueueStore.begin`) and
        mark it ready, mode 0700 (Postfix's MAIL_QUEUE_STAT_READY)."""
        assert self._fd is not None
        assert self._content is not None
        envelope, content = self._content
        self._content = None
        self._written = True
        self.size = self._write(envelope, content)
        return (self._fd,)

    def place(self, sync_errors: Sequence[OSError | None]) -> Iterable[StrPath]:
        """Link the fsynced file to its queue id (the commit point)."""
        if sync_errors[0] is not None:
            raise sync_errors[0]
        # link() refuses to replace an existing name, so an id collision
        # (impossible while ids carry a live inode, see ids.py) fails loudly.
        temp = self._file.temp
        if temp is None:
            assert self._fd is not None
            target = os.fspath(self.path)
            link_nameless(self._file, target)
            self._linked = True
            # The link count is in the inode, which the directory's fsync
            # does not write (fsutil.LinkedFile): it is fsynced once more.
            self._relinked = LinkedFile(target, self._fd, os.fstat(self._fd))
            return (self.path.parent, self._relinked)
        os.link(temp, self.path)
        self._linked = True
        os.unlink(temp)
        return (self.path.parent,)

    def finish(self, dir_errors: Mapping[str, OSError]) -> None:
        """Durable once its queue directory is (and a nameless file's inode
        again, with its link): close the file."""
        for synced in (os.fspath(self.path.parent), self._relinked):
            error = dir_errors.get(synced) if synced is not None else None
            if error is not None:
                raise error
        self._close()

    async def commit(self, envelope: Envelope, content: Sequence[bytes] | Content) -> int:
        """Write envelope and content (lines without line ends, Received:
        header included; a :class:`~mailhost.queue.spool.Content` is copied
        from its spool file in bounded chunks), make the file durable under
        its queue id, return the size Postfix would log.  On any error
        nothing stays behind (the content's spool file is the caller's)."""
        if self._fd is None:
            raise QueueError(f"{self.queue_id}: transaction already finished")
        try:
            # Written, fsynced, linked and its directory fsynced in one trip
            # of the store's group commit, with those of concurrent messages.
            await self.store.syncer.commit(
                lambda: self._prepare(envelope, content), abandon=self._abandon
            )
        except asyncio.CancelledError:
            raise  # the syncer finishes the file, then _abandon removes it
        except BaseException:
            await self.abort()
            raise
        self.committed = True
        self.store.counters.enqueued += 1
        self.store.counters.enqueued_bytes += self.size
        return self.size

    def _close(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)

    def _discard(self) -> None:
        self._close()
        if self._file.temp is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._file.temp)
        if self._linked:
            # The client will not get a 250 for this file; do not deliver it.
            self.path.unlink(missing_ok=True)

    def _abandon(self) -> None:
        """The committing caller was cancelled and will never report the
        file: once the syncer is done with it, it goes as an aborted one."""
        self._discard()
        self.store.counters.aborted += 1

    async def abort(self) -> None:
        """Forget the transaction (nothing was acknowledged)."""
        if self._fd is None:
            return
        if not self._written and self.store.give_back(self._file, self.queue_name):
            self._fd = None  # the next transaction's now
        else:
            # close() and unlink() of a file nobody fsyncs: no disk wait.
            self._discard()
        self.store.counters.aborted += 1
