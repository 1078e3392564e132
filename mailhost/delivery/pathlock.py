"""One delivery per mailbox or file at a time within this process.

fcntl/lockf locks belong to the process, so two delivery threads of one
mailhost process would both "hold" the same mailbox lock; the dotlock
serializes them only when configured, and then with one-second retries.
An asyncio lock per path keeps this process's own deliveries in line; the
file locks still keep other programs (and other mailhost processes) out.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator


class PathLocks:
    """Asyncio locks by path, dropped when nobody waits for them."""

    def __init__(self) -> None:
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    @contextlib.asynccontextmanager
    async def hold(self, path: str) -> AsyncIterator[None]:
        lock, users = self._locks.get(path, (asyncio.Lock(), 0))
        self._locks[path] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[path]
            if users <= 1:
                del self._locks[path]
            else:
                self._locks[path] = (lock, users - 1)

    def __len__(self) -> int:
        return len(self._locks)
