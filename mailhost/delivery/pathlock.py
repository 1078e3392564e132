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
import os

from mailhost.fsutil import StrPath


class PathLocks:
    """Asyncio locks by path, dropped when nobody waits for them."""

    def __init__(self) -> None:
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    def hold(self, *paths: StrPath) -> _Held:
        """Hold the lock of every path (``async with``); taken in sorted
        order, so two holders of overlapping sets cannot deadlock."""
        if len(paths) <= 1:
            return _Held(self, [os.fspath(p) for p in paths])
        return _Held(self, sorted({os.fspath(p) for p in paths}))

    def __len__(self) -> int:
        return len(self._locks)


class _Held:
    """One :meth:`PathLocks.hold`: a plain class, not a generator-based
    context manager (this runs for every delivery)."""

    __slots__ = ("_acquired", "_locks", "_paths")

    def __init__(self, locks: PathLocks, paths: list[str]) -> None:
        self._locks = locks
        self._paths = paths
        self._acquired: list[asyncio.Lock] = []

    async def __aenter__(self) -> None:
        table = self._locks._locks
        for path in self._paths:
            entry = table.get(path)
            table[path] = (asyncio.Lock(), 1) if entry is None else (entry[0], entry[1] + 1)
        try:
            for path in self._paths:
                lock = table[path][0]
                await lock.acquire()
                self._acquired.append(lock)
        except BaseException:
            self._release()
            raise

    async def __aexit__(self, *exc: object) -> None:
        self._release()

    def _release(self) -> None:
        for lock in self._acquired:
            lock.release()
        self._acquired = []
        table = self._locks._locks
        for path in self._paths:
            lock, users = table[path]
            if users <= 1:
                del table[path]
            else:
                table[path] = (lock, users - 1)
