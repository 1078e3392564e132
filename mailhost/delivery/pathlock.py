"""One delivery per mailbox or file at a time within this process.

fcntl/lockf locks belong to the process, so two delivery threads of one
mailhost process would both "hold" the same mailbox lock; the dotlock
serializes them only when configured, and then with one-second retries.
An asyncio lock per path keeps this process's own deliveries in line; the
file locks still keep other programs (and other mailhost processes) out.
The virtual, local and quota code all take their mailbox turns here.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator

from mailhost.fsutil import StrPath


class PathLocks:
    """Asyncio locks by path, dropped when nobody waits for them."""

    def __init__(self) -> None:
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    @contextlib.asynccontextmanager
    async def hold(self, *paths: StrPath) -> AsyncIterator[None]:
        """Hold the lock of every path; taken in sorted order, so two
        holders of overlapping sets cannot deadlock."""
        ordered = sorted({os.fspath(p) for p in paths})
        for path in ordered:
            lock, users = self._locks.get(path, (asyncio.Lock(), 0))
            self._locks[path] = (lock, users + 1)
        acquired: list[asyncio.Lock] = []
        try:
            for path in ordered:
                lock = self._locks[path][0]
                await lock.acquire()
                acquired.append(lock)
            yield
        finally:
            for lock in acquired:
                lock.release()
            for path in ordered:
                lock, users = self._locks[path]
                if users <= 1:
                    del self._locks[path]
                else:
                    self._locks[path] = (lock, users - 1)

    def __len__(self) -> int:
        return len(self._locks)
