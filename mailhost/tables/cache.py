"""A TTL result cache in front of a table, shared by all callers.

Values and "not found" are cached (each with its own TTL); temporary failures
never are, so a database that comes back is used at once.  Concurrent misses on
the same key share one backend query instead of stampeding the database.

The bound that matters in a cluster: an answer is kept for its TTL counted
from when its query was *sent* (not when it returned), so a "not found" for a
mailbox just created on the primary is served at most
``mailhost_table_negative_cache_ttl`` after a query that could have seen it —
the edge sees the mailbox within that TTL plus the replication lag of the
replica it reads (the resolver's address-search memo, mailhost/tables/maps.py,
adds at most min(1 s, the TTLs) on top; docs/tables.md "Cache").
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import ClassVar

from mailhost.observe import metrics
from mailhost.tables.base import Table


@dataclass
class CacheStats:
    hits: int = 0
    misses: int = 0

    @property
    def ratio(self) -> float:
        total = self.hits + self.misses
        return self.hits / total if total else 0.0


class CachedTable(Table):
    """Wraps one table; answers repeated keys from memory for ``ttl`` seconds."""

    type_name: ClassVar[str] = "cache"

    def __init__(
        self, inner: Table, *, ttl: float, negative_ttl: float, max_entries: int = 100_000
    ) -> None:
        super().__init__(inner.name, fold=False)  # the inner table folds
        self.inner = inner
        self.ttl = ttl
        self.negative_ttl = negative_ttl
        self.max_entries = max_entries
        self.stats = CacheStats()
        self._entries: dict[str, tuple[float, str | None]] = {}
        self._pending: dict[str, asyncio.Future[str | None]] = {}

    @property
    def spec(self) -> str:
        return self.inner.spec

    @property
    def fixed(self) -> bool:  # type: ignore[override]
        return self.inner.fixed

    def peek(self, key: str) -> tuple[str | None] | None:
        """The fresh cached answer as ``(value,)`` (``(None,)``: cached as
        not found); None when the table must be asked.  No coroutine: the
        event loop's hot path for repeated recipients.  An empty-string
        value is left to :meth:`lookup`, which warns about it each time."""
        entry = self._entries.get(key)
        if entry is None or entry[0] <= time.monotonic() or entry[1] == "":
            return None
        self.stats.hits += 1
        metrics.cache(hit=True)
        return (entry[1],)

    async def _lookup(self, key: str) -> str | None:
        now = time.monotonic()
        entry = self._entries.get(key)
        if entry is not None and entry[0] > now:
            self.stats.hits += 1
            metrics.cache(hit=True)
            return entry[1]
        pending = self._pending.get(key)
        if pending is not None:
            self.stats.hits += 1
            metrics.cache(hit=True)
            return await asyncio.shield(pending)
        self.stats.misses += 1
        metrics.cache(hit=False)
        future: asyncio.Future[str | None] = asyncio.get_running_loop().create_future()
        self._pending[key] = future
        try:
            value = await self.inner.lookup(key)
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # mark retrieved: waiters re-raise it themselves
            raise
        else:
            future.set_result(value)
            ttl = self.ttl if value is not None else self.negative_ttl
            if ttl > 0:  # expiry from ``now``, taken before the query was sent
                if len(self._entries) >= self.max_entries:
                    self._entries.clear()
                self._entries[key] = (now + ttl, value)
            return value
        finally:
            del self._pending[key]

    def invalidate(self) -> None:
        self._entries.clear()

    async def close(self) -> None:
        await self.inner.close()


def cached_answer(table: Table, key: str) -> tuple[str | None] | None:
    """``table``'s answer for ``key`` from memory as ``(value,)`` (a
    :class:`CachedTable`'s fresh one, an in-memory table's, see
    :meth:`Table.peek`), else None (ask ``table.lookup``)."""
    return table.peek(key)
