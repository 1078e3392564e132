"""Idle SMTP/LMTP sessions kept for reuse (Postfix's scache(8) and
``smtp_connection_cache_*``).

After a transaction succeeds, the transport sends RSET (``smtp_rset_timeout``)
and, if the server still answers 250, parks the session here under its
destination — the nexthop it was opened for — instead of QUIT.  The next
delivery to that destination takes it without a DNS lookup or a new
handshake.  A parked session is closed (QUIT) when it has been idle for
``smtp_connection_cache_time_limit`` (Postfix default 2s) or when it is older
than ``smtp_connection_reuse_time_limit`` (300s); a session taken from the
cache that turns out dead is simply discarded by the caller.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Hashable
from dataclasses import dataclass

from mailhost.delivery.smtp_client import ClientSession


@dataclass
class CacheCounters:
    """What the cache did (observability, DESIGN rule 15)."""

    saved: int = 0
    reused: int = 0
    expired: int = 0


class ConnectionCache:
    def __init__(self, idle_limit: float = 2.0, reuse_limit: float = 300.0) -> None:
        self.idle_limit = idle_limit
        self.reuse_limit = reuse_limit
        self.counters = CacheCounters()
        self._idle: dict[Hashable, list[tuple[float, ClientSession]]] = {}
        self._closing: set[asyncio.Task[None]] = set()
        self._timer: asyncio.TimerHandle | None = None

    @property
    def enabled(self) -> bool:
        return self.idle_limit > 0

    def _usable(self, parked: float, session: ClientSession, now: float) -> bool:
        return (
            not session.broken
            and now - parked < self.idle_limit
            and now - session.created < self.reuse_limit
        )

    def take(self, key: Hashable) -> ClientSession | None:
        """An idle session for ``key``, most recently parked first."""
        now = time.monotonic()
        sessions = self._idle.get(key, [])
        while sessions:
            parked, session = sessions.pop()
            if self._usable(parked, session, now):
                self.counters.reused += 1
                if not sessions:
                    self._idle.pop(key, None)
                return session
            self._close(session)
        self._idle.pop(key, None)
        return None

    async def save(self, key: Hashable, session: ClientSession) -> None:
        """Park ``session`` after a successful RSET, else close it."""
        now = time.monotonic()
        if (
            not self.enabled
            or now - session.created >= self.reuse_limit
            or not await session.rset()
        ):
            await session.quit()
            return
        self._idle.setdefault(key, []).append((time.monotonic(), session))
        self.counters.saved += 1
        self._schedule()

    def _schedule(self) -> None:
        if self._timer is None:
            loop = asyncio.get_running_loop()
            self._timer = loop.call_later(self.idle_limit, self._prune)

    def _prune(self) -> None:
        self._timer = None
        now = time.monotonic()
        for key in list(self._idle):
            keep = []
            for parked, session in self._idle[key]:
                if self._usable(parked, session, now):
                    keep.append((parked, session))
                else:
                    self._close(session)
            if keep:
                self._idle[key] = keep
            else:
                del self._idle[key]
        if self._idle:
            self._schedule()

    def _close(self, session: ClientSession) -> None:
        self.counters.expired += 1
        task = asyncio.get_running_loop().create_task(session.quit())
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    def idle_count(self) -> int:
        return sum(len(v) for v in self._idle.values())

    async def close(self) -> None:
        """QUIT every parked session (shutdown)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        sessions = [s for v in self._idle.values() for _, s in v]
        self._idle.clear()
        for session in sessions:
            with contextlib.suppress(Exception):
                await session.quit()
        if self._closing:
            await asyncio.gather(*list(self._closing), return_exceptions=True)
