"""The one durability idiom: write to a temporary name, fsync the file, rename
(or link) it into place, fsync the directory.  After the directory fsync a
reader sees the whole new file or the whole old one, never a mixture, and the
name survives a crash — the basis of "250 means on disk" for queue files and
Maildir messages, and of atomic index rebuilds for ``postmap``.

Two fsyncs make a name durable: one of the file (its data and inode) and one
of the directory holding the new name (fsync(2): "Calling fsync() does not
necessarily ensure that the entry in the directory containing the file has
also reached disk").  The directory fsync is the expensive, shareable part:
one fsync of a directory makes every rename done in it *before the fsync
started* durable.

The idiom is written once, :func:`commit_durably`, for any number of files
at a time: each :class:`DurableFile` writes its file, every file is fsynced,
each one whose fsync succeeded is put in place, every directory that got a
new name is fsynced once, and each file learns its outcome.  The fsyncs of
one step are issued side by side, from a few threads of their own
(:func:`sync_all`): the journal commits concurrent fsyncs together, so the
ten copies of a ten-recipient message are durable in about half the time
ten fsyncs in a row take.  What differs
between users is policy, kept in their ``DurableFile``: how the temporary
name is chosen, link or rename, what a failure means (:func:`write_durably`
here; a queue file, :class:`mailhost.queue.store.Transaction`; a Maildir
copy, :mod:`mailhost.delivery.maildir`).

Writers on the event loop reach the idiom through a syncer of
:mod:`mailhost.groupsync` (the group commit).

``safe_join`` turns a path from a table or database into a path that is
guaranteed to stay below a base directory.
"""

from __future__ import annotations

import os
import queue
import secrets
import stat
import threading
import time
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, Self, TypeVar

from mailhost.offload import run_blocking

StrPath = str | os.PathLike[str]


class UnsafePathError(ValueError):
    """A path from a table that would leave its base directory."""


# -- the blocking primitives -----------------------------------------------------


class OpenDir(str):
    """A directory to fsync through its descriptor, for
    :func:`mailhost.fsutil.commit_durably`.  The string is its key: the
    path and the inode (``PATH [DEV:INO]``), so two descriptors of one
    directory are fsynced once and two directories that had the same name
    at different times are each fsynced."""

    fd: int
    path: str

    def __new__(cls, path: str, fd: int, st: os.stat_result) -> Self:
        self = super().__new__(cls, f"{path} [{st.st_dev}:{st.st_ino}]")
        self.fd = fd
        self.path = path
        return self


class LinkedFile(OpenDir):
    """A file that got its first name after its fsync (a nameless file,
    ``O_TMPFILE``, linked in by :func:`os.link`): the link count the link
    gave its inode must reach the disk as well.  On a file system without
    a journal (ext4 without one), fsyncing the directory writes the new
    entry but not the file's inode, which stays on disk with a link count
    of 0; after a crash fsck takes such an inode for a deleted one and
    removes the name (seen with e2fsck 1.47 on an image copied right after
    the directory's fsync).  A :class:`DurableFile` returns it from
    ``place`` beside its directory, so it is fsynced, through its
    descriptor, in the same step as the directories; it is counted apart
    (``CommitCounts.link_syncs``)."""


def fsync_dir(directory: StrPath) -> None:
    """Make a rename, link or unlink in ``directory`` durable (an
    :class:`OpenDir` through its descriptor, anything else by name)."""
    if isinstance(directory, OpenDir):
        os.fsync(directory.fd)
        return
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_path(path: StrPath) -> None:
    """fsync an already written file by name."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def temp_name(target: Path) -> Path:
    """A unique temporary name beside ``target`` (same directory, so same file
    system: rename and link stay atomic).  The leading dot and the ``.tmp``
    suffix keep it out of every listing that wants real entries."""
    return target.with_name(f".{target.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")


def write_all(fd: int, data: bytes | Iterable[bytes]) -> None:
    """Write ``data`` (bytes or an iterable of chunks) to ``fd`` completely."""
    for chunk in (data,) if isinstance(data, bytes | bytearray) else data:
        view = memoryview(chunk)
        while view:
            view = view[os.write(fd, view) :]


# -- the idiom ----------------------------------------------------------------------


class DurableFile(Protocol):
    """One file through :func:`commit_durably`.  The three steps are called
    in this order, on one thread, each at most once; a step that raises ends
    the file's commit (the exception is its outcome) and must leave nothing
    behind itself."""

    def write(self) -> Sequence[int]:
        """Write the file under its temporary name; return the open
        descriptors to fsync (usually one, none for a commit that only
        fsyncs a directory).  They stay open: closing them is this file's."""
        ...

    def place(self, sync_errors: Sequence[OSError | None]) -> Iterable[StrPath]:
        """The fsyncs are done (``sync_errors``, one per descriptor: None or
        why it failed): put the file in place, by link or rename; return the
        directories that got a new name."""
        ...

    def finish(self, dir_errors: Mapping[str, OSError]) -> None:
        """The directories are fsynced (``dir_errors``: the ones whose fsync
        failed, by ``os.fspath``): record the outcome, remove the temporary
        name, raise if the file is not durable."""
        ...


#: Files written and fsynced together at most (each is open until synced).
ROUND_FILES = 64


@dataclass
class CommitCounts:
    """What one :func:`commit_durably` cost."""

    file_syncs: int = 0
    dir_syncs: int = 0
    #: fsyncs of files linked after their first fsync (:class:`LinkedFile`).
    link_syncs: int = 0


class Round:
    """One pass of the idiom over some files; the steps apart, so a
    :class:`Syncer` can run the fsyncs in between as it likes."""

    def __init__(self, files: Sequence[DurableFile]) -> None:
        self.files = files
        self.errors: list[Exception | None] = [None] * len(files)
        self.fds: list[Sequence[int]] = [()] * len(files)
        self.sync_errors: dict[int, OSError] = {}
        self.dirs: set[str] = set()
        self.dir_errors: dict[str, OSError] = {}

    def write(self) -> list[int]:
        for i, file in enumerate(self.files):
            try:
                self.fds[i] = file.write()
            except Exception as exc:  # one file's failure is its own
                self.errors[i] = exc
        return [fd for fds in self.fds for fd in fds]

    def place(self) -> list[str]:
        for i, file in enumerate(self.files):
            if self.errors[i] is not None:
                continue
            try:
                placed = file.place([self.sync_errors.get(fd) for fd in self.fds[i]])
                # An OpenDir is a str: kept as it is, its descriptor with it.
                self.dirs.update(os.fspath(d) for d in placed)
            except Exception as exc:
                self.errors[i] = exc
        return sorted(self.dirs)

    def finish(self) -> list[Exception | None]:
        for i, file in enumerate(self.files):
            if self.errors[i] is not None:
                continue
            try:
                file.finish(self.dir_errors)
            except Exception as exc:
                self.errors[i] = exc
        return self.errors


#: Threads that run the fsyncs of one round side by side.
SYNC_THREADS = 8

K = TypeVar("K", bound=Hashable)
#: One fsync's answer: the index of its item in the round's list, and its
#: exception if it raised.
_Answer = tuple[int, BaseException | None]
#: One fsync for the threads: the function, its item, the item's index and
#: the round's queue for the answer.
_Job = tuple[Callable[[Any], None], Any, int, "queue.SimpleQueue[_Answer]"]


class _SyncThreads:
    """Threads that only ever run an fsync, never a round, so a round
    waiting on them cannot wait on itself.  A plain queue of jobs, each
    answered on its round's own queue: cheaper per fsync than an executor's
    futures (this runs for every group commit)."""

    def __init__(self, count: int) -> None:
        self.jobs: queue.SimpleQueue[_Job] = queue.SimpleQueue()
        for i in range(count):
            threading.Thread(target=self._run, name=f"mailhost-fsync-{i}", daemon=True).start()

    def _run(self) -> None:
        while True:
            fsync, item, index, answers = self.jobs.get()
            try:
                fsync(item)
            except BaseException as exc:  # the round's to judge
                answers.put((index, exc))
            else:
                answers.put((index, None))


class _Started:
    """This process's fsync threads, started on first use."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.threads: _SyncThreads | None = None


_started = [_Started()]
# A forked child has none of its parent's threads (and the lock may have
# been held by one of them): it starts its own.
os.register_at_fork(after_in_child=lambda: _started.__setitem__(0, _Started()))


def _threads() -> _SyncThreads:
    """This process's fsync threads."""
    started = _started[0]
    threads = started.threads
    if threads is None:
        with started.lock:
            threads = started.threads
            if threads is None:
                threads = started.threads = _SyncThreads(SYNC_THREADS)
    return threads


def sync_all(items: Sequence[K], fsync: Callable[[K], None]) -> dict[K, OSError]:
    """``fsync(item)`` for every item, side by side when there are several
    (the file system's journal commits concurrent fsyncs together: ten
    take about half the time of ten in a row); returns once every one has
    returned, with the OSError of each that failed.  Any other exception is
    raised, once all are done."""
    errors: dict[K, OSError] = {}
    if not items:
        return errors
    answers: queue.SimpleQueue[_Answer] | None = None
    if len(items) > 1:
        answers = queue.SimpleQueue()
        jobs = _threads().jobs
        for index in range(1, len(items)):
            jobs.put((fsync, items[index], index, answers))
    other: BaseException | None = None
    try:
        fsync(items[0])  # this thread does one of them itself
    except OSError as exc:
        errors[items[0]] = exc
    except BaseException as exc:
        other = exc
    for _ in range(len(items) - 1):
        assert answers is not None
        index, error = answers.get()
        if isinstance(error, OSError):
            errors[items[index]] = error
        elif error is not None and other is None:
            other = error
    if other is not None:
        raise other
    return errors


def _placed_sync(fsync_dir_fn: Callable[[StrPath], None]) -> Callable[[StrPath], None]:
    """How an item that ``place`` returned is fsynced: a directory by
    ``fsync_dir_fn``, a :class:`LinkedFile` by its descriptor."""

    def sync(item: StrPath) -> None:
        if isinstance(item, LinkedFile):
            os.fsync(item.fd)
        else:
            fsync_dir_fn(item)

    return sync


def commit_durably(
    files: Sequence[DurableFile],
    *,
    fsync_dir_fn: Callable[[StrPath], None] = fsync_dir,
    counts: CommitCounts | None = None,
) -> list[Exception | None]:
    """The idiom for ``files`` at once (blocking): write every file, fsync
    every one, put each durable one in place, fsync every directory that got
    a name once, finish each.  No name appears before its file is durable
    and no file is finished before its directory is; one outcome per file
    (None or its exception).  At most :data:`ROUND_FILES` files are open at
    a time; each round fsyncs its own directories.  The fsyncs of a step
    run side by side (:func:`sync_all`); the steps stay one after the
    other."""
    counts = counts if counts is not None else CommitCounts()
    outcomes: list[Exception | None] = []
    for start in range(0, len(files), ROUND_FILES):
        step = Round(files[start : start + ROUND_FILES])
        fds = step.write()
        counts.file_syncs += len(fds)
        step.sync_errors.update(sync_all(fds, os.fsync))
        directories = step.place()
        linked = sum(1 for d in directories if isinstance(d, LinkedFile))
        counts.link_syncs += linked
        counts.dir_syncs += len(directories) - linked
        step.dir_errors.update(sync_all(directories, _placed_sync(fsync_dir_fn)))
        outcomes.extend(step.finish())
    return outcomes


class NewFile:
    """A :class:`DurableFile` with all its content at hand: written to a
    :func:`temp_name` beside ``target``, then renamed over it
    (``replace=True``) or linked to it, never replacing (``replace=False``,
    raising :class:`FileExistsError`)."""

    def __init__(
        self, target: StrPath, data: bytes | Iterable[bytes], mode: int, *, replace: bool
    ) -> None:
        self.target = Path(target)
        self.data = data
        self.mode = mode
        self.replace = replace
        self.tmp = temp_name(self.target)
        self.fd: int | None = None

    def write(self) -> Sequence[int]:
        fd = os.open(self.tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, self.mode)
        self.fd = fd
        try:
            write_all(fd, self.data)
            # The umask must not weaken or widen the mode the caller asked for.
            os.fchmod(fd, self.mode)
        except BaseException:
            self._discard()
            raise
        return (fd,)

    def place(self, sync_errors: Sequence[OSError | None]) -> Iterable[StrPath]:
        try:
            if sync_errors[0] is not None:
                raise sync_errors[0]
            if self.replace:
                os.replace(self.tmp, self.target)
            else:
                os.link(self.tmp, self.target)
                os.unlink(self.tmp)
        except BaseException:
            self._discard()
            raise
        self._close()
        return (self.target.parent,)

    def finish(self, dir_errors: Mapping[str, OSError]) -> None:
        error = dir_errors.get(os.fspath(self.target.parent))
        if error is not None:
            raise error

    def _close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    def _discard(self) -> None:
        self._close()
        self.tmp.unlink(missing_ok=True)


class _Written(NewFile):
    """A file already written under ``tmp``: only opened to be fsynced."""

    def __init__(self, tmp: Path, target: Path) -> None:
        super().__init__(target, b"", 0, replace=True)
        self.tmp = tmp

    def write(self) -> Sequence[int]:
        self.fd = os.open(self.tmp, os.O_RDONLY)
        return (self.fd,)


class DirectoryOnly:
    """A :class:`DurableFile` without a file: the names already changed in
    ``directory`` (a rename, an unlink) made durable."""

    def __init__(self, directory: StrPath) -> None:
        self.directory = directory

    def write(self) -> Sequence[int]:
        return ()

    def place(self, sync_errors: Sequence[OSError | None]) -> Iterable[StrPath]:
        return (self.directory,)

    def finish(self, dir_errors: Mapping[str, OSError]) -> None:
        error = dir_errors.get(os.fspath(self.directory))
        if error is not None:
            raise error


def raise_first(outcomes: Sequence[Exception | None]) -> None:
    """Raise the first error of :func:`commit_durably`'s outcomes, if any."""
    for error in outcomes:
        if error is not None:
            raise error


def write_durably(
    target: StrPath,
    data: bytes | Iterable[bytes],
    mode: int = 0o644,
    *,
    replace: bool = True,
) -> None:
    """Write ``data`` (bytes or an iterable of chunks) to ``target`` atomically
    and durably.

    ``replace=True`` renames over an existing ``target`` (index rebuilds);
    ``replace=False`` links the new file into place and raises
    :class:`FileExistsError` instead of touching an existing one (Maildir's
    "link, never overwrite" rule).  Either way the temporary file is gone
    afterwards, also when writing fails.
    """
    raise_first(commit_durably([NewFile(target, data, mode, replace=replace)]))


def commit_file(tmp: Path, target: Path) -> None:
    """fsync an already written file, rename it over ``target``, fsync the dir."""
    raise_first(commit_durably([_Written(tmp, target)]))


# -- async wrappers ---------------------------------------------------------------


async def write_durably_async(
    target: StrPath,
    data: bytes | Iterable[bytes],
    mode: int = 0o644,
    *,
    replace: bool = True,
) -> None:
    """:func:`write_durably` off the event loop."""
    # A generator would be consumed on the worker thread; materialize it here
    # so a generator bound to loop state is never driven from another thread.
    chunks = data if isinstance(data, bytes | bytearray) else list(data)
    await run_blocking(write_durably, target, chunks, mode, replace=replace)


async def fsync_dir_async(directory: StrPath) -> None:
    """:func:`fsync_dir` off the event loop."""
    await run_blocking(fsync_dir, directory)


async def commit_file_async(tmp: Path, target: Path) -> None:
    """:func:`commit_file` off the event loop."""
    await run_blocking(commit_file, tmp, target)


# -- paths from untrusted sources ----------------------------------------------------


#: How long a resolved base directory is reused (see :func:`resolved_base`).
BASE_RESOLVE_TTL = 1.0
_resolved: dict[str, tuple[float, Path]] = {}


def resolved_base(base: StrPath) -> Path:
    """``Path(base).resolve()``, reused for :data:`BASE_RESOLVE_TTL` seconds.

    The base (``virtual_mailbox_base``) is the administrator's and changes
    rarely; resolving it component by component for every delivery was a
    tenth of the event loop's time under load (docs/benchmarks.md).  The part
    below it, which a table or a mailbox owner controls, is still resolved on
    every call."""
    key = os.fspath(base)
    now = time.monotonic()
    hit = _resolved.get(key)
    if hit is not None and now - hit[0] < BASE_RESOLVE_TTL:
        return hit[1]
    root = Path(key).resolve()
    if len(_resolved) > 64:
        _resolved.clear()
    _resolved[key] = (now, root)
    return root


def _resolve_below(root: str, relative: str) -> str:
    """``realpath(root/relative)`` for an already resolved ``root`` and a
    ``relative`` without ``..``: one lstat per component of ``relative``, not
    per component of the whole path; a symlink anywhere takes the full
    resolve.  Strings, not Paths: this runs for every delivery."""
    current = root
    parts = [part for part in relative.split("/") if part not in ("", ".")]
    for i, part in enumerate(parts):
        step = os.path.join(current, part)
        try:
            mode = os.lstat(step).st_mode
        except OSError:
            # Nothing more exists: resolve() keeps the rest as written.
            return os.path.join(current, *parts[i:])
        if stat.S_ISLNK(mode):
            return os.path.realpath(os.path.join(root, relative))
        current = step
    return current


def check_relative(relative: str) -> None:
    """Refuse a path from a table that is absolute, has a ``..`` component
    or a NUL byte (:class:`UnsafePathError`).  Symbolic links are for the
    caller to refuse when it uses the path (delivery opens it below the
    base without following any: :mod:`mailhost.delivery.dirfd`)."""
    if "\0" in relative:
        raise UnsafePathError(f"path contains a NUL byte: {relative!r}")
    if relative.startswith("/"):
        raise UnsafePathError(f"absolute path not allowed: {relative}")
    if ".." in relative.split("/"):
        raise UnsafePathError(f"path with '..' not allowed: {relative}")


def safe_join(base: StrPath, relative: str) -> Path:
    """``base/relative``, refusing absolute paths, ``..`` components, NUL bytes
    and anything that resolves (through symlinks too) outside ``base``: for
    tools that show or read a path once (``mailhost trace``, the mailbox
    commands).  Delivery never uses a path by name below the base."""
    check_relative(relative)
    root = resolved_base(base)
    top = os.fspath(root)
    candidate = _resolve_below(top, relative)
    if candidate != top and not candidate.startswith(top.rstrip("/") + "/"):
        raise UnsafePathError(f"path resolves outside {root}: {relative}")
    return root / relative
