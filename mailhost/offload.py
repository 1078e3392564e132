"""The one way blocking work leaves the event loop.

Synchronous database drivers, fsync and password hashing run on a bounded
thread pool so the event loop keeps serving other sessions.  Each user of a
slow resource (one SQL table's connection pool, say) gets its own pool, so a
database that hangs can only exhaust its own threads, never another table's.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")


class BlockingPool:
    """A named, bounded thread pool for one kind of blocking work."""

    def __init__(self, name: str, max_workers: int = 4) -> None:
        self.name = name
        self.max_workers = max_workers
        self._executor: ThreadPoolExecutor | None = None

    def _get(self) -> ThreadPoolExecutor:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(
                max_workers=self.max_workers, thread_name_prefix=f"mailhost-{self.name}"
            )
        return self._executor

    async def run(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """Run ``fn(*args, **kwargs)`` on this pool and await its result."""
        loop = asyncio.get_running_loop()
        ctx = contextvars.copy_context()
        call = functools.partial(ctx.run, fn, *args, **kwargs)
        return await loop.run_in_executor(self._get(), call)

    def shutdown(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None


#: Shared pool for short blocking work (fsync, file reads, password hashing).
DEFAULT_POOL = BlockingPool("io", max_workers=8)


async def run_blocking(fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
    """Run short blocking work on the shared pool."""
    return await DEFAULT_POOL.run(fn, *args, **kwargs)
