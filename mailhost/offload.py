"""The one way blocking work leaves the event loop.

Synchronous database drivers, fsync and password hashing run on a bounded
thread pool so the event loop keeps serving other sessions.  Each user of a
slow resource (one SQL table's connection pool, say) gets its own pool, so a
database that hangs can only exhaust its own threads, never another table's.

A trip is lean: the job goes on a :class:`queue.SimpleQueue`, a pool thread
runs it and hands the outcome back with ``loop.call_soon_threadsafe`` straight
onto the awaited asyncio future (no ``concurrent.futures.Future`` in
between; :meth:`BlockingPool.start` hands it to a function instead, for a
caller with no task waiting: the group commit).  The semantics are those of
``loop.run_in_executor``: a caller
cancelled before its job started means the job never runs; cancelled while it
runs, the job finishes and its outcome is dropped; :meth:`BlockingPool.shutdown`
cancels the jobs not yet started (their callers see ``CancelledError``) and
lets the running ones finish.  Threads start on demand up to ``max_workers``,
named ``mailhost-NAME_N``; at interpreter exit the pool's threads finish what
was queued; a forked child starts with no threads and makes its own.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import contextvars
import os
import queue
import threading
import weakref
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")


class Handoff:
    """Takes a future's place for a job nobody awaits (:meth:`BlockingPool.start`):
    its outcome goes to ``answer(error, result)`` on the loop as soon as it
    arrives — one loop pass sooner than waking a task that awaits a future.
    A job that never started (:meth:`BlockingPool.shutdown`) answers
    :class:`asyncio.CancelledError`."""

    __slots__ = ("answer",)

    def __init__(self, answer: Callable[[BaseException | None, Any], None]) -> None:
        self.answer = answer

    def cancelled(self) -> bool:
        return False  # nobody awaits it, so nobody cancels it early

    def cancel(self) -> None:
        self.answer(asyncio.CancelledError(), None)

    def set_result(self, result: Any) -> None:
        self.answer(None, result)

    def set_exception(self, error: BaseException) -> None:
        self.answer(error, None)


#: One job: the caller's loop and future, the context to run in, the call.
_Job = tuple[
    asyncio.AbstractEventLoop,
    "asyncio.Future[Any] | Handoff",
    contextvars.Context,
    Callable[..., Any],
    tuple[Any, ...],
    dict[str, Any],
]


def _settle(
    future: asyncio.Future[Any] | Handoff, error: BaseException | None, result: Any
) -> None:
    """On the caller's loop: the job's outcome, unless the caller is gone."""
    if future.cancelled():
        return
    if error is None:
        future.set_result(result)
    else:
        future.set_exception(error)


def _cancel(future: asyncio.Future[Any] | Handoff) -> None:
    future.cancel()


def _answer(loop: asyncio.AbstractEventLoop, callback: Callable[..., None], *args: Any) -> None:
    """Hand ``callback(*args)`` to ``loop``; nothing when the loop is closed."""
    # A loop closed meanwhile (RuntimeError) has nobody waiting any more.
    with contextlib.suppress(RuntimeError):
        loop.call_soon_threadsafe(callback, *args)


class _Threads:
    """One generation of a pool's threads and their job queue."""

    def __init__(self, name: str, max_workers: int) -> None:
        self.name = name
        self.max_workers = max_workers
        self.jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self.threads: list[threading.Thread] = []
        self.idle = 0
        self.lock = threading.Lock()

    def submit(self, job: _Job) -> None:
        with self.lock:
            if self.idle > 0:
                self.idle -= 1
            elif len(self.threads) < self.max_workers:
                thread = threading.Thread(
                    target=self._work, name=f"mailhost-{self.name}_{len(self.threads)}", daemon=True
                )
                self.threads.append(thread)
                thread.start()
        self.jobs.put(job)

    def _work(self) -> None:
        get = self.jobs.get
        while True:
            job = get()
            if job is None:
                self.jobs.put(None)  # wake the next thread too
                return
            loop, future, ctx, fn, args, kwargs = job
            if not future.cancelled():  # a caller gone before the start: never run
                try:
                    result = ctx.run(fn, *args, **kwargs)
                except BaseException as exc:
                    _answer(loop, _settle, future, exc, None)
                    del exc
                else:
                    _answer(loop, _settle, future, None, result)
                    del result
            del job, future, fn, args, kwargs
            with self.lock:
                self.idle += 1

    def stop(self, *, cancel: bool) -> None:
        """No more jobs: those not started are cancelled (``cancel``) or run."""
        if cancel:
            while True:
                try:
                    job = self.jobs.get_nowait()
                except queue.Empty:
                    break
                if job is not None:
                    _answer(job[0], _cancel, job[1])
        self.jobs.put(None)


class BlockingPool:
    """A named, bounded thread pool for one kind of blocking work."""

    def __init__(self, name: str, max_workers: int = 4) -> None:
        self.name = name
        self.max_workers = max_workers
        self._threads: _Threads | None = None
        self._lock = threading.Lock()
        _POOLS.add(self)

    def _get(self) -> _Threads:
        threads = self._threads
        if threads is None:
            with self._lock:
                threads = self._threads
                if threads is None:
                    threads = self._threads = _Threads(self.name, self.max_workers)
        return threads

    async def run(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """Run ``fn(*args, **kwargs)`` on this pool and await its result."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._get().submit((loop, future, contextvars.copy_context(), fn, args, kwargs))
        return await future

    def start(
        self,
        answer: Callable[[BaseException | None, T], None],
        fn: Callable[P, T],
        /,
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> None:
        """Run ``fn(*args, **kwargs)`` on this pool; ``answer(error, result)``
        runs on the running loop once it is done (:class:`Handoff`)."""
        loop = asyncio.get_running_loop()
        handoff = Handoff(answer)
        self._get().submit((loop, handoff, contextvars.copy_context(), fn, args, kwargs))

    def shutdown(self) -> None:
        """Cancel the jobs not started; the running ones finish.  The next
        :meth:`run` starts new threads."""
        with self._lock:
            threads, self._threads = self._threads, None
        if threads is not None:
            threads.stop(cancel=True)

    def _forked(self) -> None:
        # The child has none of the parent's threads, and the lock may have
        # been held by one of them at the fork.
        self._lock = threading.Lock()
        self._threads = None

    def _exit(self) -> None:
        threads = self._threads
        if threads is not None:
            threads.stop(cancel=False)
            for thread in list(threads.threads):
                thread.join()


_POOLS: weakref.WeakSet[BlockingPool] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for pool in list(_POOLS):
        pool._forked()


def _at_exit() -> None:
    for pool in list(_POOLS):
        pool._exit()


os.register_at_fork(after_in_child=_after_fork_in_child)
atexit.register(_at_exit)


#: Shared pool for short blocking work (fsync, file reads, password hashing).
DEFAULT_POOL = BlockingPool("io", max_workers=8)


async def run_blocking(fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
    """Run short blocking work on the shared pool."""
    return await DEFAULT_POOL.run(fn, *args, **kwargs)
