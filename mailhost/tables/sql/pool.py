"""Pooled, failover-aware access to one SQL table's database servers.

Each SQL table owns a small thread pool (:class:`~mailhost.offload.BlockingPool`)
for its blocking driver, so a database that hangs ties up only its own
threads, never the event loop or another table.  Connections are kept and
reused; one idle for 60 s is closed.

Failover follows Postfix's dict_mysql/dict_pgsql (spec 2.7): reuse an open
connection if there is one (UNIX sockets preferred); otherwise try the hosts
not marked down in random order, UNIX sockets before TCP hosts before URIs.  A
host whose connect or query fails is marked down for ``retry_interval`` (60 s,
as Postfix) and the next host is tried.  When no host answers the lookup is a
temporary failure — never "not found".  Every lookup is bounded in time.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from mailhost.errors import TableTempFail
from mailhost.log import logger
from mailhost.offload import BlockingPool
from mailhost.tables.sql.hosts import Host

log = logger("tables.sql")

IDLE_TIMEOUT = 60.0
Rows = list[tuple[Any, ...]]


class ConnectionPool:
    """Connections to the hosts of one table, used from its worker threads."""

    def __init__(
        self,
        spec: str,
        hosts: Sequence[Host],
        *,
        connect: Callable[[Host], Any],
        execute: Callable[[Any, str, tuple[object, ...]], Rows],
        describe: Callable[[Host], str],
        size: int,
        connect_timeout: float,
        query_timeout: float,
        retry_interval: float = 60.0,
    ) -> None:
        self.spec = spec
        self.hosts = list(hosts)
        self._connect = connect
        self._execute = execute
        self._describe = describe
        self.connect_timeout = connect_timeout
        self.query_timeout = query_timeout
        self.retry_interval = retry_interval
        self._idle: list[tuple[Host, Any, float]] = []
        self._lock = threading.Lock()
        self._threads = BlockingPool(f"sql-{spec}", max_workers=size)
        self.queries = 0
        self.failures = 0

    async def query(self, sql: str, params: tuple[object, ...]) -> Rows:
        """Run one query with failover, bounded by the configured timeouts."""
        deadline = self.connect_timeout * max(1, len(self.hosts)) + self.query_timeout + 1.0
        try:
            return await asyncio.wait_for(self._threads.run(self._query, sql, params), deadline)
        except TimeoutError:
            self.failures += 1
            log.warning("%s: lookup timed out after %.1fs", self.spec, deadline)
            raise TableTempFail(f"table {self.spec}: query error: timed out") from None

    def _take_idle(self) -> tuple[Host, Any] | None:
        now = time.monotonic()
        with self._lock:
            keep: list[tuple[Host, Any, float]] = []
            stale: list[Any] = []
            for entry in self._idle:
                (keep if now - entry[2] < IDLE_TIMEOUT else stale).append(entry)
            self._idle = keep
            usable = [e for e in keep if e[0].down_until <= now]
            chosen = min(usable, key=lambda e: e[0].rank) if usable else None
            if chosen is not None:
                self._idle.remove(chosen)
        for _, conn, _ in stale:
            self._close(conn)
        return (chosen[0], chosen[1]) if chosen is not None else None

    def _candidates(self) -> list[Host]:
        now = time.monotonic()
        up = [h for h in self.hosts if h.down_until <= now]
        random.shuffle(up)
        return sorted(up, key=lambda h: h.rank)

    def _mark_down(self, host: Host) -> None:
        host.down_until = time.monotonic() + self.retry_interval

    @staticmethod
    def _close(conn: Any) -> None:
        # Closing a broken connection may fail too; there is nothing left to do then.
        with contextlib.suppress(Exception):
            conn.close()

    def _query(self, sql: str, params: tuple[object, ...]) -> Rows:
        self.queries += 1
        idle = self._take_idle()
        tried: set[int] = set()
        attempts: list[tuple[Host, Any]] = [idle] if idle is not None else []
        attempts += [(h, None) for h in self._candidates() if idle is None or h is not idle[0]]
        for host, reused in attempts:
            if id(host) in tried and reused is None:
                continue
            tried.add(id(host))
            conn = reused
            if conn is None:
                try:
                    conn = self._connect(host)
                except Exception as exc:
                    self._mark_down(host)
                    log.warning("connect to %s: %s", self._describe(host), _one_line(exc))
                    continue
            try:
                rows = self._execute(conn, sql, params)
            except Exception as exc:
                self._close(conn)
                self._mark_down(host)
                log.warning("%s: query failed: %s: %s", self.spec, host.text, _one_line(exc))
                continue
            with self._lock:
                self._idle.append((host, conn, time.monotonic()))
            return rows
        self.failures += 1
        raise TableTempFail(f"table {self.spec}: query error: no database server available")

    async def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for _, conn, _ in idle:
            self._close(conn)
        self._threads.shutdown()


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__
