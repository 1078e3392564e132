"""``open_table("type:name")``: the only way to get a lookup table.

Backends live one per module and are found by scheme.  A registry shares opened
tables between all callers (``proxy:mysql:/f`` and ``mysql:/f`` are the same
table with the same connection pool) and, for tables that benefit, puts the
result cache of :mod:`mailhost.tables.cache` in front of them.

Two opening modes, as in Postfix:

* strict (commands such as ``postmap``): a table that cannot be opened raises
  :class:`~mailhost.errors.TableOpenError` with Postfix's fatal text;
* lenient (daemons): it becomes an :class:`UnavailableTable` whose every lookup
  fails temporarily, so mail is deferred, never bounced, while it is broken.

A lenient registry made from a main.cf (:meth:`TableRegistry.from_config`, what
the daemons use) also lets ``hash:`` tables rebuild a missing or stale index
themselves (:mod:`mailhost.tables.hash`); it knows from ``alias_maps`` and
``alias_database`` which sources are aliases(5) files, built as postalias
builds them.  Commands (strict) never rebuild: ``postmap -q`` only warns, as
Postfix's does.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from mailhost.config.lists import split_list
from mailhost.errors import TableOpenError
from mailhost.tables.base import Table, UnavailableTable
from mailhost.tables.cache import CachedTable, CacheStats

if TYPE_CHECKING:
    from mailhost.config import Config

#: scheme -> module defining ``TABLE_TYPE`` (a Table subclass with ``open``).
BACKENDS: dict[str, str] = {
    "hash": "mailhost.tables.hash",
    "texthash": "mailhost.tables.texthash",
    "lmdb": "mailhost.tables.lmdb",
    "inline": "mailhost.tables.inline",
    "static": "mailhost.tables.static",
    "regexp": "mailhost.tables.regexp",
    "pcre": "mailhost.tables.pcre",
    "cidr": "mailhost.tables.cidr",
    "sqlite": "mailhost.tables.sql.sqlite",
    "mysql": "mailhost.tables.sql.mysql",
    "pgsql": "mailhost.tables.sql.pgsql",
    "unix": "mailhost.tables.unix",
    "nis": "mailhost.tables.nis",
    "fail": "mailhost.tables.fail",
}

#: Wrappers that change how a table is reached, not what it answers.
PASS_THROUGH = frozenset({"proxy"})


class TableFactory(Protocol):
    @classmethod
    def open(cls, name: str, ctx: OpenContext) -> Table: ...


@dataclass(frozen=True)
class OpenContext:
    """What a backend may need while opening: the registry (to open tables it
    refers to, e.g. an SQL ``domain = hash:/f`` list) and the folding flag."""

    registry: TableRegistry
    fold: bool = True


def split_spec(spec: str) -> tuple[str, str]:
    """``type:name`` → (type, name), with Postfix's error for other shapes."""
    kind, sep, name = spec.partition(":")
    if not sep or not kind or not name:
        raise TableOpenError(f'open dictionary: expecting "type:name" form instead of "{spec}"')
    return kind.lower(), name


@dataclass
class TableRegistry:
    """Opened tables, shared by spec, with an optional result cache."""

    strict: bool = False
    cache_ttl: float = 0.0
    negative_cache_ttl: float | None = None
    #: Defaults for SQL tables (main.cf ``mailhost_sql_*``; a query file may override).
    sql_connect_timeout: float = 5.0
    sql_query_timeout: float = 5.0
    sql_pool_size: int = 4
    #: hash: tables rebuild a missing or stale index (daemons; see the module docstring).
    rebuild_indexes: bool = False
    #: Names of the hash: sources in alias_maps / alias_database (postalias format).
    alias_sources: frozenset[str] = frozenset()
    #: $myhostname, which postalias stores as YP_MASTER_NAME.
    myhostname: str = "localhost"
    _tables: dict[tuple[str, bool], Table] = field(default_factory=dict)
    _cached: dict[tuple[str, bool], CachedTable] = field(default_factory=dict)

    @classmethod
    def from_config(cls, config: Config, *, strict: bool = False) -> TableRegistry:
        """A registry with the cache and SQL settings of a main.cf."""
        return cls(
            strict=strict,
            cache_ttl=config.get_time("mailhost_table_cache_ttl"),
            negative_cache_ttl=config.get_time("mailhost_table_negative_cache_ttl"),
            sql_connect_timeout=config.get_time("mailhost_sql_connect_timeout"),
            sql_query_timeout=config.get_time("mailhost_sql_query_timeout"),
            sql_pool_size=config.get_int("mailhost_sql_pool_size"),
            rebuild_indexes=not strict,
            alias_sources=alias_sources(config),
            myhostname=config.get("myhostname"),
        )

    def open(self, spec: str, *, fold: bool = True, cached: bool = True) -> Table:
        """Open (or reuse) ``spec``.  ``cached`` puts the shared TTL cache in
        front when the registry has one and the backend benefits from it."""
        base = self._open_base(spec, fold)
        if not (cached and self.cache_ttl > 0 and base.cacheable):
            return base
        key = (base.spec, fold)
        wrapper = self._cached.get(key)
        if wrapper is None:
            negative = (
                self.cache_ttl if self.negative_cache_ttl is None else self.negative_cache_ttl
            )
            wrapper = CachedTable(base, ttl=self.cache_ttl, negative_ttl=negative)
            self._cached[key] = wrapper
        return wrapper

    def _open_base(self, spec: str, fold: bool) -> Table:
        try:
            kind, name = split_spec(spec)
            while kind in PASS_THROUGH:
                spec = name
                kind, name = split_spec(name)
        except TableOpenError as exc:
            if self.strict:
                raise
            return self._remember((spec, fold), UnavailableTable(spec, str(exc)))
        key = (f"{kind}:{name}", fold)
        table = self._tables.get(key)
        if table is not None:
            return table
        try:
            module_name = BACKENDS.get(kind)
            if module_name is None:
                raise TableOpenError(f"unsupported dictionary type: {kind}")
            factory: TableFactory = importlib.import_module(module_name).TABLE_TYPE
            table = factory.open(name, OpenContext(registry=self, fold=fold))
        except TableOpenError as exc:
            if self.strict:
                raise
            table = UnavailableTable(f"{kind}:{name}", str(exc))
        except OSError as exc:
            reason = f"open {exc.filename or name}: {exc.strerror or exc}"
            if self.strict:
                raise TableOpenError(reason) from exc
            table = UnavailableTable(f"{kind}:{name}", reason)
        return self._remember(key, table)

    def _remember(self, key: tuple[str, bool], table: Table) -> Table:
        self._tables[key] = table
        return table

    def cache_stats(self) -> dict[str, CacheStats]:
        """Hit/miss counters of every cached table, by spec."""
        return {spec: wrapper.stats for (spec, _), wrapper in self._cached.items()}

    async def close(self) -> None:
        """Close every table (connection pools, files)."""
        tables, self._tables = list(self._tables.values()), {}
        self._cached = {}
        for table in tables:
            await table.close()


def alias_sources(config: Config) -> frozenset[str]:
    """The ``hash:`` sources local(8) reads as aliases(5) files: those of
    ``alias_maps`` and ``alias_database`` (untyped names there are
    ``$default_database_type``, as newaliases reads them)."""
    default_type = config.get("default_database_type")
    names: set[str] = set()
    for item in split_list(config.get("alias_maps")) + split_list(config.get("alias_database")):
        try:
            kind, name = split_spec(item if ":" in item else f"{default_type}:{item}")
            while kind in PASS_THROUGH:
                kind, name = split_spec(name)
        except TableOpenError:
            continue
        if kind == "hash":
            names.add(name)
    return frozenset(names)


def open_table(spec: str, *, fold: bool = True, strict: bool = True) -> Table:
    """Open one table outside any long-lived registry (commands, tests)."""
    return TableRegistry(strict=strict).open(spec, fold=fold, cached=False)
