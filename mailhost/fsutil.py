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
started* durable.  :class:`GroupSync` exploits that to let concurrent
transactions share directory fsyncs (group commit); :class:`FsyncEach` is the
plain one-fsync-per-request form.  Writers ask a :class:`Syncer` and await it,
so the policy can change without touching them.

``safe_join`` turns a path from a table or database into a path that is
guaranteed to stay below a base directory.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import stat
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Protocol

from mailhost.offload import run_blocking

StrPath = str | os.PathLike[str]


class UnsafePathError(ValueError):
    """A path from a table that would leave its base directory."""


# -- the blocking primitives -----------------------------------------------------


def fsync_dir(directory: StrPath) -> None:
    """Make a rename, link or unlink in ``directory`` durable."""
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


def _chunks(data: bytes | Iterable[bytes]) -> Iterable[bytes]:
    if isinstance(data, bytes | bytearray):
        return (bytes(data),)
    return data


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
    target = Path(target)
    tmp = temp_name(target)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "wb") as f:
            for chunk in _chunks(data):
                f.write(chunk)
            f.flush()
            # The umask must not weaken or widen the mode the caller asked for.
            os.fchmod(f.fileno(), mode)
            os.fsync(f.fileno())
        if replace:
            os.replace(tmp, target)
        else:
            os.link(tmp, target)
            os.unlink(tmp)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(target.parent)


def commit_file(tmp: Path, target: Path) -> None:
    """fsync an already written file, rename it over ``target``, fsync the dir."""
    fsync_path(tmp)
    os.replace(tmp, target)
    fsync_dir(target.parent)


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


# -- sync policies ------------------------------------------------------------------


class Syncer(Protocol):
    """How a writer waits for durability.  ``sync_file`` returns once the data
    written to ``fd`` is on disk; ``sync_dir`` once every name change made in
    ``directory`` before the call is on disk."""

    async def sync_file(self, fd: int) -> None: ...

    async def sync_dir(self, directory: StrPath) -> None: ...


class FsyncEach:
    """One fsync per request, each on the offload pool."""

    def __init__(self, fsync_dir_fn: Callable[[StrPath], None] = fsync_dir) -> None:
        self._fsync_dir = fsync_dir_fn
        self.file_syncs = 0
        self.dir_syncs = 0

    async def sync_file(self, fd: int) -> None:
        self.file_syncs += 1
        await run_blocking(os.fsync, fd)

    async def sync_dir(self, directory: StrPath) -> None:
        self.dir_syncs += 1
        await run_blocking(self._fsync_dir, directory)


class _DirQueue:
    __slots__ = ("busy", "waiting")

    def __init__(self) -> None:
        self.busy = False
        self.waiting: list[asyncio.Future[None]] = []


class GroupSync(FsyncEach):
    """Group commit of directory fsyncs.

    A caller's rename happened before it calls ``sync_dir``; it is durable
    once a directory fsync that *started after the call* has finished.  So a
    caller arriving while an fsync is in flight joins the next batch, which
    starts as soon as the running fsync ends and serves everyone who queued up
    meanwhile: N concurrent commits in one directory cost about two fsyncs,
    not N.  File fsyncs stay one per file (each file's data is its own).
    ``requests``/``dir_syncs`` show the saving.
    """

    def __init__(self, fsync_dir_fn: Callable[[StrPath], None] = fsync_dir) -> None:
        super().__init__(fsync_dir_fn)
        self.requests = 0
        self._dirs: dict[str, _DirQueue] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    async def sync_dir(self, directory: StrPath) -> None:
        self.requests += 1
        key = os.fspath(directory)
        queue = self._dirs.setdefault(key, _DirQueue())
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        queue.waiting.append(waiter)
        if not queue.busy:
            queue.busy = True
            task = asyncio.create_task(self._drain(key, queue))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        # shield: a cancelled caller must not cancel the fsync others wait for.
        await asyncio.shield(waiter)

    async def _drain(self, key: str, queue: _DirQueue) -> None:
        batch: list[asyncio.Future[None]] = []
        try:
            while queue.waiting:
                batch, queue.waiting = queue.waiting, []
                self.dir_syncs += 1
                try:
                    await run_blocking(self._fsync_dir, key)
                except OSError as exc:
                    _settle(batch, exc)
                else:
                    _settle(batch, None)
        except BaseException:
            # The loop is going away: nobody may wait forever on a lost fsync.
            for waiter in [*batch, *queue.waiting]:
                waiter.cancel()
            raise
        finally:
            queue.busy = False
            if not queue.waiting:
                self._dirs.pop(key, None)


def _settle(batch: list[asyncio.Future[None]], exc: OSError | None) -> None:
    for waiter in batch:
        if waiter.done():
            continue
        if exc is None:
            waiter.set_result(None)
        else:
            waiter.set_exception(exc)


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


def safe_join(base: StrPath, relative: str) -> Path:
    """``base/relative``, refusing absolute paths, ``..`` components, NUL bytes
    and anything that resolves (through symlinks too) outside ``base``."""
    if "\0" in relative:
        raise UnsafePathError(f"path contains a NUL byte: {relative!r}")
    if relative.startswith("/"):
        raise UnsafePathError(f"absolute path not allowed: {relative}")
    if ".." in relative.split("/"):
        raise UnsafePathError(f"path with '..' not allowed: {relative}")
    root = resolved_base(base)
    top = os.fspath(root)
    candidate = _resolve_below(top, relative)
    if candidate != top and not candidate.startswith(top.rstrip("/") + "/"):
        raise UnsafePathError(f"path resolves outside {root}: {relative}")
    return root / relative
