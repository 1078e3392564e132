"""Where a new queue file in ``incoming`` comes from: a nameless file,
reused while it was never written.

A transaction needs its file at the first accepted RCPT (its inode number is
the queue id), but most messages never write one: a message delivered inline
(:mod:`mailhost.qmgr.inline`) and every session that ends before DATA give
theirs back.  Creating and removing an inode per message is not free: the file
system allocates the inode, and on ext4 without a journal every allocation
walks past the inodes freed in the last minute (``recently_deleted``); at a
thousand messages a second that walk took a fifth of the server's CPU on the
benchmark machine (docs/benchmarks.md, "Third round").

So the file is made with ``O_TMPFILE``: it has no name in ``incoming`` until
:meth:`~mailhost.queue.transaction.Transaction.commit` links it to its queue
id (through ``/proc/self/fd``), and a crash leaves nothing behind (the kernel
frees an unlinked inode).  A transaction that ends without writing its file
hands it back (:meth:`NewFiles.give_back`) and the next one takes it with a
new queue id: same inode, new time part (:func:`~mailhost.queue.ids.new_queue_id`),
never the id it had before.  A file that was written is never reused.

Where ``O_TMPFILE`` or ``/proc`` is not available the file is created under
a temporary name (``USEC.PID.N``, Postfix's pattern; the dots make it an
invalid queue id) and removed when the transaction ends without a commit.
"""

from __future__ import annotations

import errno
import itertools
import os
import time

from mailhost.log import current_pid
from mailhost.queue.ids import new_queue_id
from mailhost.queue.layout import WRITING_MODE

#: Nameless files kept open for reuse, per store and process.
SPARE_FILES = 16
#: What open(O_TMPFILE) fails with where the file system has no support.
NO_TMPFILE = frozenset({errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL})

_sequence = itertools.count()


class NewFile:
    """An open file for a transaction: ``temp`` is its temporary name, or
    None for a nameless file; ``queue_id`` carries its inode number."""

    __slots__ = ("dir_fd", "fd", "inode", "queue_id", "temp")

    def __init__(
        self, fd: int, temp: str | None, inode: int, queue_id: str, dir_fd: int | None
    ) -> None:
        self.fd = fd
        self.temp = temp
        self.inode = inode
        self.queue_id = queue_id
        #: A nameless file's directory, open: with a directory descriptor
        #: os.link calls linkat, which can follow /proc/self/fd (link_nameless).
        self.dir_fd = dir_fd


class NewFiles:
    """The new files of one queue directory's ``incoming`` (or ``maildrop``,
    where files are always named: pickup looks for them there)."""

    def __init__(self, directory: str, *, long_ids: bool, nameless: bool = True) -> None:
        self.directory = directory
        self.long_ids = long_ids
        #: Whether O_TMPFILE is tried (None: not known yet, decided at the first file).
        self._nameless: bool | None = None if nameless else False
        #: (descriptor, inode, the queue id it had last), reusable in this process.
        self._spares: list[tuple[int, int, str]] = []
        self._pid = current_pid()
        #: The directory, open, once a nameless file was made.
        self._dir_fd: int | None = None

    def create(self) -> NewFile:
        """A new file and its queue id (blocking, but only metadata work)."""
        if self._spares:
            if self._pid == current_pid():
                fd, inode, last = self._spares.pop()
                queue_id = new_queue_id(inode, long_ids=self.long_ids)
                while queue_id == last:  # the same microsecond: take the next
                    queue_id = new_queue_id(inode, long_ids=self.long_ids)
                return NewFile(fd, None, inode, queue_id, self._dir_fd)
            # A forked child: the parent's files are the parent's.
            for fd, _, _ in self._spares:
                os.close(fd)
            self._spares.clear()
        self._pid = current_pid()
        if self._nameless is not False:
            try:
                fd = os.open(self.directory, os.O_TMPFILE | os.O_RDWR | os.O_CLOEXEC, WRITING_MODE)
            except OSError as exc:
                if exc.errno not in NO_TMPFILE:
                    raise
                self._nameless = False
            else:
                if self._nameless is None:
                    self._nameless = _proc_links(fd)
                if self._nameless:
                    if self._dir_fd is None:
                        flags = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
                        self._dir_fd = os.open(self.directory, flags)
                    return self._file(fd, None)
                os.close(fd)
        return self._create_named()

    def _create_named(self) -> NewFile:
        pid = current_pid()
        while True:
            usec = time.time_ns() // 1000 % 1_000_000
            # Postfix names its temporary files USEC.PID; the sequence number
            # keeps concurrent transactions of one process apart.
            temp = f"{self.directory}/{usec}.{pid}.{next(_sequence)}"
            try:
                fd = os.open(temp, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, WRITING_MODE)
            except FileExistsError:
                continue
            return self._file(fd, temp)

    def _file(self, fd: int, temp: str | None) -> NewFile:
        inode = os.fstat(fd).st_ino
        queue_id = new_queue_id(inode, long_ids=self.long_ids)
        return NewFile(fd, temp, inode, queue_id, None if temp is not None else self._dir_fd)

    def give_back(self, file: NewFile) -> bool:
        """Keep a nameless file that was never written for the next
        transaction; False when it is not kept (the caller closes it)."""
        if file.temp is not None or len(self._spares) >= SPARE_FILES:
            return False
        if self._pid != current_pid():
            return False
        self._spares.append((file.fd, file.inode, file.queue_id))
        return True


def link_nameless(file: NewFile, target: str) -> None:
    """Give a nameless file its name: ``linkat`` of ``/proc/self/fd/N`` with
    AT_SYMLINK_FOLLOW, which needs no privilege; FileExistsError if the name
    exists.  (os.link calls linkat only when a directory descriptor is
    given; with an absolute target the descriptor is not used.)"""
    os.link(
        f"/proc/self/fd/{file.fd}",
        os.path.abspath(target),
        dst_dir_fd=file.dir_fd,
        follow_symlinks=True,
    )


def _proc_links(fd: int) -> bool:
    """Whether /proc/self/fd names this process's descriptors (it is what
    :func:`link_nameless` goes through)."""
    return os.path.exists(f"/proc/self/fd/{fd}")
