"""Pooled, failover-aware access to one SQL table's database servers.

Each SQL table owns a small thread pool (:class:`~mailhost.offload.BlockingPool`)
for its blocking driver, so a database that hangs ties up only its own
threads, never the event loop or another table.  Connections are kept and
reused; one idle for ``idle_interval`` (60 s, as Postfix) is closed.

Failover follows Postfix's dict_pgsql.c/dict_mysql.c (``dict_*_get_active``,
``dict_*_find_host``, ``pl*_down_host``; pgsql_table(5)/mysql_table(5)
"hosts"):

* an open connection is reused first, UNIX sockets before TCP before URIs,
  a random one among those of the same kind;
* otherwise the hosts not marked down are tried in random order, again UNIX
  sockets before TCP hosts before URIs, until one connects;
* a host whose connect or query fails is marked down for ``retry_interval``
  (Postfix 3.9+ query-file key, default 60 s) and the same lookup goes on to
  the next host;
* a single host is entered twice, so one failure (a connection the server
  dropped) is retried at once ("don't blacklist the load balancer",
  Postfix 3.10+);
* when no host answers the lookup is a temporary failure, never "not found".

One thing is mailhost's own: a host marked down is re-probed in the
background (connect + ``SELECT 1``, every ``probe_interval`` seconds, only
while some host is down, from one thread per table) and is live again as soon
as it answers.  Postfix instead skips it for the whole ``retry_interval`` —
after a failover that leaves the table on fewer servers than it has, and when
every host was down it answers "try again" for up to a minute after the
database is back.  ``probe_interval = 0`` restores Postfix's behaviour.
Every lookup is bounded in time.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import random
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from typing import Any

from mailhost.errors import TableTempFail
from mailhost.log import logger
from mailhost.observe import metrics
from mailhost.offload import BlockingPool
from mailhost.tables.sql.hosts import Host

log = logger("tables.sql")

IDLE_INTERVAL = 60.0
PROBE_INTERVAL = 2.0
PROBE_SQL = "SELECT 1"
Rows = list[tuple[Any, ...]]

#: Every open pool, for the ``mailhost_sql_host_up`` gauge of /metrics (which
#: reads it from the scrape thread: hence the lock).
_OPEN_POOLS: weakref.WeakSet[ConnectionPool] = weakref.WeakSet()
_OPEN_LOCK = threading.Lock()


def open_pools() -> list[ConnectionPool]:
    """The pools of the SQL tables open in this process."""
    with _OPEN_LOCK:
        return list(_OPEN_POOLS)


def _host_states() -> list[metrics.HostState]:
    return [(pool.spec, host, live) for pool in open_pools() for host, live in pool.host_states()]


metrics.add_host_source(_host_states)


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
        idle_interval: float = IDLE_INTERVAL,
        probe_interval: float = PROBE_INTERVAL,
    ) -> None:
        self.spec = spec
        # dict_pgsql.c/dict_mysql.c pgsql_parse_config(): one host is listed twice.
        self.hosts = list(hosts) if len(hosts) != 1 else [hosts[0], dataclasses.replace(hosts[0])]
        self._connect = connect
        self._execute = execute
        self._describe = describe
        self.connect_timeout = connect_timeout
        self.query_timeout = query_timeout
        self.retry_interval = retry_interval
        self.idle_interval = idle_interval
        self.probe_interval = probe_interval
        self._idle: list[tuple[Host, Any, float]] = []
        self._lock = threading.Lock()
        self._threads = BlockingPool(f"sql-{spec}", max_workers=size)
        self.queries = 0
        self.failures = 0
        self.probes = 0
        self._prober: threading.Thread | None = None
        self._closing = threading.Event()
        with _OPEN_LOCK:
            _OPEN_POOLS.add(self)

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
                (keep if now - entry[2] < self.idle_interval else stale).append(entry)
            self._idle = keep
            usable = [e for e in keep if e[0].down_until <= now]
            chosen = None
            if usable:
                best = min(e[0].rank for e in usable)
                chosen = random.choice([e for e in usable if e[0].rank == best])  # noqa: S311
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
        if self.probe_interval > 0 and self.hosts:
            with self._lock:
                if self._prober is None and not self._closing.is_set():
                    self._prober = threading.Thread(
                        target=self._probe_down_hosts, name=f"sql-probe-{self.spec}", daemon=True
                    )
                    self._prober.start()

    def _probe_down_hosts(self) -> None:
        """The background re-probe: while some host is marked down, try each
        one every ``probe_interval`` seconds; one that answers is live again."""
        while not self._closing.wait(self.probe_interval):
            with self._lock:
                down = [h for h in self.hosts if h.down_until > time.monotonic()]
                if not down:
                    self._prober = None
                    return
            answered: dict[str, bool] = {}  # a host listed twice is probed once
            for host in down:
                if self._closing.is_set():
                    break
                if host.text not in answered:
                    answered[host.text] = self._probe(host)
                    if answered[host.text]:
                        log.info("%s: %s answers again", self.spec, self._describe(host))
                if answered[host.text]:
                    host.down_until = 0.0
        with self._lock:
            self._prober = None

    def _probe(self, host: Host) -> bool:
        self.probes += 1
        try:
            self._ask(host, PROBE_SQL)
        except Exception:  # any failure: the host stays down until the next probe
            return False
        return True

    def _ask(self, host: Host, sql: str) -> Rows:
        conn = self._connect(host)
        try:
            return self._execute(conn, sql, ())
        finally:
            self._close(conn)

    async def ask(self, host: Host, sql: str) -> Rows:
        """Run ``sql`` on ``host`` alone, on a connection of its own: no
        failover, no marking down (``mailhost status`` asks each host its role)."""
        return await self._threads.run(self._ask, host, sql)

    def host_states(self) -> list[tuple[str, bool]]:
        """``(host as written, live)`` for each distinct host, in file order
        (live: not marked down; a URI's password masked); for the metrics."""
        now = time.monotonic()
        states: dict[str, bool] = {}
        for host in self.hosts:
            states[host.shown] = states.get(host.shown, False) or host.down_until <= now
        return list(states.items())

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
                log.warning("%s: query failed: %s: %s", self.spec, host.shown, _one_line(exc))
                continue
            with self._lock:
                self._idle.append((host, conn, time.monotonic()))
            return rows
        self.failures += 1
        raise TableTempFail(f"table {self.spec}: query error: no database server available")

    async def close(self) -> None:
        self._closing.set()
        with _OPEN_LOCK:
            _OPEN_POOLS.discard(self)
        with self._lock:
            idle, self._idle = self._idle, []
            prober = self._prober
        for _, conn, _ in idle:
            self._close(conn)
        self._threads.shutdown()
        if prober is not None:
            # A probe under way ends within its connect timeout; wait for it so
            # no connection of this table outlives close().
            await asyncio.to_thread(prober.join, self.connect_timeout + self.query_timeout)


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__
