"""``asyncio.gather`` for coroutines that usually finish without waiting.

A fan-out's lookups are mostly answered by the table cache: each coroutine
returns at its first step, and a task per recipient is pure overhead.
:func:`gather_eager` runs each coroutine's first step at once, in order (the
order in which ``gather``'s tasks would take their first steps); only those
that then wait for something go on as tasks, gathered as before.  Results
come back in the order of the coroutines; an exception of one propagates as
from ``gather`` (the others still run to their end, unheard).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Coroutine, Generator, Sequence
from typing import Any, TypeVar

T = TypeVar("T")


class _Resume:
    """The rest of a coroutine suspended on ``yielded``, as an awaitable."""

    def __init__(self, coro: Coroutine[Any, Any, Any], yielded: Any) -> None:
        self.coro = coro
        self.yielded = yielded
        self.started = False

    def __await__(self) -> Generator[Any, Any, Any]:
        self.started = True
        coro, value = self.coro, self.yielded
        if getattr(value, "_asyncio_future_blocking", None) is not None:
            # As Future.__await__ set it when the coroutine yielded (see
            # gather_eager): the task taking it now clears it again.
            value._asyncio_future_blocking = True
        while True:
            try:
                sent = yield value
            except GeneratorExit:
                coro.close()
                raise
            except BaseException as exc:  # cancellation, thrown into the coroutine
                try:
                    value = coro.throw(exc)
                except StopIteration as stop:
                    return stop.value
            else:
                try:
                    value = coro.send(sent)
                except StopIteration as stop:
                    return stop.value


async def _resume(resume: _Resume) -> Any:
    return await resume


def _unblock(yielded: Any) -> None:
    if getattr(yielded, "_asyncio_future_blocking", None):
        # Cleared as a task does on taking the future, so the next
        # coroutine may await the same one (a shared lookup).
        yielded._asyncio_future_blocking = False


def _task(coro: Coroutine[Any, Any, Any], yielded: Any) -> asyncio.Task[Any]:
    """A task for the rest of ``coro``, suspended on ``yielded``."""
    _unblock(yielded)
    resume = _Resume(coro, yielded)
    task = asyncio.ensure_future(_resume(resume))
    task.add_done_callback(lambda done: _cancelled_unstarted(done, resume))
    return task


def _cancelled_unstarted(task: asyncio.Task[Any], resume: _Resume) -> None:
    """A task cancelled before its first step never ran the coroutine's
    rest: the cancellation reaches it as it would have under its own task
    (what it waits for cancelled, CancelledError at its ``await``)."""
    if not task.cancelled() or resume.started:
        return
    if isinstance(resume.yielded, asyncio.Future):
        resume.yielded.cancel()
    try:
        yielded = resume.coro.throw(asyncio.CancelledError())
    except BaseException:
        return  # ended, as under its own task (and nobody hears of it)
    _task(resume.coro, yielded).add_done_callback(_retrieved)


def _retrieved(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()


async def gather_eager(coros: Sequence[Coroutine[Any, Any, T]]) -> list[T]:
    """The results of ``coros`` in order, a task only for those that wait."""
    results: list[Any] = [None] * len(coros)
    waiting: list[tuple[int, asyncio.Task[Any]]] = []
    for i, coro in enumerate(coros):
        try:
            yielded = coro.send(None)
        except StopIteration as stop:
            results[i] = stop.value
        except BaseException:
            # As from gather: the others still run to their end, as tasks,
            # and nobody hears of them.
            rest: list[Awaitable[Any]] = [*(task for _, task in waiting), *coros[i + 1 :]]
            if rest:
                asyncio.gather(*rest).add_done_callback(_retrieved)
            raise
        else:
            waiting.append((i, _task(coro, yielded)))
    if waiting:
        finished = await asyncio.gather(*(task for _, task in waiting))
        for (i, _), result in zip(waiting, finished, strict=True):
            results[i] = result
    return results
