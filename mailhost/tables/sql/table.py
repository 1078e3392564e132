"""What the ``sqlite:``, ``mysql:`` and ``pgsql:`` tables share.

A lookup: apply the query file's ``domain`` filter (no query when it does not
match), bind the key into the compiled template (no query when an expansion is
suppressed), run the statement through the table's connection pool, and
assemble the result as Postfix does.  Keys that are not valid UTF-8 are not
found.  Each backend module only says how to connect and execute.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from typing import Any, ClassVar

from mailhost.tables.base import Table
from mailhost.tables.matchlist import DomainList
from mailhost.tables.registry import OpenContext
from mailhost.tables.sql.hosts import Host
from mailhost.tables.sql.pool import IDLE_INTERVAL, PROBE_INTERVAL, ConnectionPool, Rows
from mailhost.tables.sql.queryfile import QueryFile, read_query_file
from mailhost.tables.sql.result import assemble
from mailhost.tables.sql.template import DIALECTS, CompiledQuery, Suppressed, compile_query


class SqlTable(Table):
    cacheable: ClassVar[bool] = True

    def __init__(
        self, name: str, query_file: QueryFile, pool: ConnectionPool, domain: DomainList | None,
        *, fold: bool = True,
    ) -> None:  # fmt: skip
        super().__init__(name, fold=fold)
        self.query_file = query_file
        self.compiled: CompiledQuery = compile_query(
            query_file.query, DIALECTS[self.type_name], name
        )
        self.pool = pool
        self.domain = domain

    @classmethod
    def open(cls, name: str, ctx: OpenContext) -> Table:
        registry = ctx.registry
        query_file = read_query_file(
            name,
            cls.type_name,
            connect_timeout=registry.sql_connect_timeout,
            query_timeout=registry.sql_query_timeout,
            pool_size=registry.sql_pool_size,
        )
        domain = DomainList.parse(query_file.domain, ctx.registry) if query_file.domain else None
        return cls(name, query_file, cls.make_pool(name, query_file), domain, fold=ctx.fold)

    @classmethod
    @abc.abstractmethod
    def make_pool(cls, name: str, query_file: QueryFile) -> ConnectionPool:
        """The backend's connection pool for this query file."""

    async def _lookup(self, key: str) -> str | None:
        try:
            key.encode("utf-8")
        except UnicodeEncodeError:
            return None
        if self.domain is not None:
            local, at, domain = key.rpartition("@")
            if not at or not local or not await self.domain.match(domain):
                return None
        try:
            params = self.compiled.bind(key)
        except Suppressed:
            return None
        rows = await self.pool.query(self.compiled.sql, params)
        qf = self.query_file
        return assemble(
            rows,
            spec=self.spec,
            kind=self.type_name,
            key=key,
            result_format=qf.result_format,
            expansion_limit=qf.expansion_limit,
            path=qf.path,
        )

    async def close(self) -> None:
        await self.pool.close()


def make_pool(
    spec: str,
    query_file: QueryFile,
    hosts: list[Host],
    connect: Callable[[Host], Any],
    execute: Callable[[Any, str, tuple[object, ...]], Rows],
    describe: Callable[[Host], str],
) -> ConnectionPool:
    """A connection pool with the query file's size, timeouts and retry interval."""
    return ConnectionPool(
        spec,
        hosts,
        connect=connect,
        execute=execute,
        describe=describe,
        size=query_file.pool_size,
        connect_timeout=query_file.connect_timeout,
        query_timeout=query_file.query_timeout,
        retry_interval=retry_interval(query_file),
        idle_interval=_seconds(query_file, "idle_interval", IDLE_INTERVAL),
        probe_interval=_seconds(query_file, "probe_interval", PROBE_INTERVAL),
    )


def retry_interval(query_file: QueryFile) -> float:
    """How long a failed host stays marked down: the query file's
    ``retry_interval`` (pgsql_table(5), mysql_table(5): Postfix 3.9+, default
    60 s); 1 s for an sqlite file, which has no other host to fail over to."""
    return _seconds(query_file, "retry_interval", 1.0 if query_file.kind == "sqlite" else 60.0)


def _seconds(query_file: QueryFile, key: str, default: float) -> float:
    """A non-negative number of seconds from the query file (Postfix's
    cfg_get_int() takes whole seconds; fractions are mailhost's, for tests)."""
    text = query_file.settings.get(key, "")
    try:
        value = float(text) if text else default
    except ValueError:
        return default
    return value if value >= 0 else default
