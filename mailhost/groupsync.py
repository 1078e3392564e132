"""The group commit: how writers on the event loop wait for durability.

Writers on the event loop go through a :class:`Syncer`.  :class:`GroupSync`
is the group commit, the one place that batches: files of concurrent callers
that arrive while a trip to the offload pool is running go together in the
next trip, one :func:`mailhost.fsutil.commit_durably` for all of them — a
directory such as ``incoming`` or a popular mailbox's ``new/`` is fsynced
once per trip, not once per file, and the event loop pays one pool trip
instead of several per file.  :class:`FsyncEach` runs the same idiom with
each fsync its own pool trip (the plain form, and a seam for tests).  The
queue store and Maildir delivery both use it (docs/concurrency.md).
"""

from __future__ import annotations

import asyncio
import functools
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from mailhost.fsutil import (
    CommitCounts,
    DirectoryOnly,
    DurableFile,
    LinkedFile,
    Round,
    StrPath,
    commit_durably,
    fsync_dir,
    raise_first,
)
from mailhost.offload import DEFAULT_POOL, run_blocking

#: What a writer hands a :class:`Syncer`: run on the pool, at the start of
#: the trip, it writes nothing yet and returns the files to commit (so work
#: such as preparing a message's copies stays off the event loop too).
Prepare = Callable[[], Sequence[DurableFile]]


class Syncer(Protocol):
    """How a writer on the event loop waits for durability.  ``commit``
    returns once every file ``prepare()`` returned went through
    :func:`commit_durably` (raising the first file's error); ``sync_file``
    once the data written to ``fd`` is on disk; ``sync_dir`` once every name
    change made in ``directory`` before the call is on disk.

    A caller cancelled while its files are being committed does not stop
    them (they are shielded: other callers' files share the trip); its
    ``abandon`` runs on the event loop once they are done, to undo what the
    caller will never report."""

    async def commit(
        self, prepare: Prepare, *, abandon: Callable[[], None] | None = None
    ) -> None: ...

    async def sync_file(self, fd: int) -> None: ...

    async def sync_dir(self, directory: StrPath) -> None: ...


async def _shielded(future: asyncio.Future[None], abandon: Callable[[], None] | None) -> None:
    try:
        await asyncio.shield(future)
    except asyncio.CancelledError:

        def later(done: asyncio.Future[None]) -> None:
            if done.cancelled():
                return  # the trip was lost with the loop: nothing to undo safely
            done.exception()  # retrieved: the caller is gone
            if abandon is not None:
                abandon()

        if future.done():
            later(future)
        else:
            future.add_done_callback(later)
        raise


class FsyncEach:
    """The idiom with one pool trip per step and per fsync, nothing shared
    between callers."""

    def __init__(self, fsync_dir_fn: Callable[[StrPath], None] = fsync_dir) -> None:
        self._fsync_dir = fsync_dir_fn
        self.file_syncs = 0
        self.dir_syncs = 0
        self.link_syncs = 0

    async def sync_file(self, fd: int) -> None:
        self.file_syncs += 1
        await run_blocking(os.fsync, fd)

    async def sync_dir(self, directory: StrPath) -> None:
        self.dir_syncs += 1
        await run_blocking(self._fsync_dir, directory)

    async def commit(self, prepare: Prepare, *, abandon: Callable[[], None] | None = None) -> None:
        await _shielded(asyncio.ensure_future(self._commit(prepare)), abandon)

    async def _commit(self, prepare: Prepare) -> None:
        step = Round(await run_blocking(prepare))
        for fd in await run_blocking(step.write):
            try:
                await self.sync_file(fd)
            except OSError as exc:
                step.sync_errors[fd] = exc
        for directory in await run_blocking(step.place):
            try:
                if isinstance(directory, LinkedFile):
                    self.link_syncs += 1
                    await run_blocking(os.fsync, directory.fd)
                else:
                    await self.sync_dir(directory)
            except OSError as exc:
                step.dir_errors[directory] = exc
        raise_first(await run_blocking(step.finish))


#: Group commit trips to the offload pool in flight at once, per GroupSync.
LANES = 2


@dataclass
class _Request:
    prepare: Prepare
    future: asyncio.Future[None]
    abandon: Callable[[], None] | None = None


class GroupSync(FsyncEach):
    """The group commit: one trip to the offload pool for the files of every
    caller waiting, at most :data:`LANES` trips at a time.

    A caller arriving while fewer than ``LANES`` trips run starts one at
    once; otherwise it waits for the next, which starts as soon as a running
    one ends and takes everyone who queued up meanwhile: N concurrent commits
    cost a few trips and a few fsyncs of each directory, not N.  A caller's
    file is written, and its name created, after it asked, and reported
    durable only after the fsyncs of that trip — of the file and of its
    directory — have finished.  ``requests``, ``file_syncs`` and
    ``dir_syncs`` show the saving.
    """

    def __init__(
        self, fsync_dir_fn: Callable[[StrPath], None] = fsync_dir, *, lanes: int = LANES
    ) -> None:
        super().__init__(fsync_dir_fn)
        self.lanes = lanes
        self.requests = 0
        #: Trips finished.
        self.trips = 0
        self._trips = 0
        self._waiting: list[_Request] = []
        #: The loop of the trips in flight and the requests waiting.
        self._loop: asyncio.AbstractEventLoop | None = None

    async def commit(self, prepare: Prepare, *, abandon: Callable[[], None] | None = None) -> None:
        self.requests += 1
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            # A trip still running when its loop closed never answers (its
            # answer has no loop to run on), nor do that loop's waiters.
            self._loop, self._trips, self._waiting = loop, 0, []
        future: asyncio.Future[None] = loop.create_future()
        self._waiting.append(_Request(prepare, future, abandon))
        if self._trips < self.lanes:
            self._start()
        # The future is the caller's alone, so no shield is needed: a caller
        # cancelled meanwhile cancels it, and the trip, which goes on for
        # the others, runs its abandon once the files are done (_answer).
        try:
            await future
        except asyncio.CancelledError:
            if not future.cancelled():  # answered just as the caller went
                future.exception()  # retrieved: the caller is gone
                if abandon is not None:
                    loop.call_soon(abandon)
            raise

    async def sync_dir(self, directory: StrPath) -> None:
        await self.commit(lambda: (DirectoryOnly(directory),))

    def _start(self) -> None:
        batch, self._waiting = self._waiting, []
        self._trips += 1
        # No task per trip: the pool hands the outcome straight to _answer on
        # the loop, which wakes the callers one loop pass sooner.
        DEFAULT_POOL.start(functools.partial(self._answer, batch), self._run_trip, batch)

    def _run_trip(self, batch: Sequence[_Request]) -> tuple[list[Exception | None], CommitCounts]:
        """One trip (blocking): every request's files in one commit."""
        outcomes: list[Exception | None] = [None] * len(batch)
        files: list[DurableFile] = []
        owners: list[int] = []
        for i, request in enumerate(batch):
            try:
                mine = request.prepare()
            except Exception as exc:  # one bad request must not fail the others
                outcomes[i] = exc
                continue
            files.extend(mine)
            owners.extend([i] * len(mine))
        counts = CommitCounts()
        results = commit_durably(files, fsync_dir_fn=self._fsync_dir, counts=counts)
        for owner, error in zip(owners, results, strict=True):
            if error is not None and outcomes[owner] is None:
                outcomes[owner] = error
        return outcomes, counts

    def _answer(
        self,
        batch: list[_Request],
        error: BaseException | None,
        done: tuple[list[Exception | None], CommitCounts] | None,
    ) -> None:
        """On the loop, once a trip is over: each caller's outcome."""
        self._trips -= 1
        outcomes: Sequence[BaseException | None]
        if isinstance(error, asyncio.CancelledError):
            # The pool was shut down before the trip started (the loop is
            # going away): nobody may wait forever on a lost trip.
            for request in batch:
                request.future.cancel()
            return
        if error is not None or done is None:  # the trip itself failed: every caller hears it
            outcomes = [error] * len(batch)
        else:
            outcomes, counts = done
            self.trips += 1
            self.file_syncs += counts.file_syncs
            self.dir_syncs += counts.dir_syncs
            self.link_syncs += counts.link_syncs
        if self._waiting and self._trips < self.lanes:
            self._start()
        loop = asyncio.get_running_loop()
        for request, outcome in zip(batch, outcomes, strict=True):
            if request.future.cancelled():  # the caller is gone: undo its part
                if request.abandon is not None:
                    loop.call_soon(request.abandon)
                continue
            if request.future.done():
                continue
            if outcome is None:
                request.future.set_result(None)
            else:
                request.future.set_exception(outcome)
