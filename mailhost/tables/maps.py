"""``*_maps`` parameters: an ordered list of tables searched until one answers.

Postfix maps(3): each key is tried against every table in order; the first
value wins; an error in a table stops the search and the whole lookup fails
temporarily (later tables are not consulted, so an outage can never be masked
by a later "not found").  An empty-string result is a configuration error.
Every warning names the parameter, so a log line says *which* map failed.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from mailhost.config.lists import split_list
from mailhost.errors import TableEmptyResult, TableTempFail
from mailhost.log import logger
from mailhost.observe import metrics
from mailhost.tables.base import Table
from mailhost.tables.cache import CachedTable
from mailhost.tables.inline import InlineTable
from mailhost.tables.registry import TableRegistry
from mailhost.tables.static import StaticTable

log = logger("tables")


@dataclass(frozen=True)
class MapsProbe:
    """One step of a search, for ``mailhost trace``: which table saw which key
    and what came back (``value``, ``None`` for not found, or ``error``)."""

    table: str
    key: str
    value: str | None = None
    error: str | None = None
    skipped: bool = False


#: The longest an address search result is reused (seconds).
MEMO_TTL = 1.0


def memo_ttl(tables: Sequence[Table]) -> float:
    """Searches may be remembered when every table answers from memory
    anyway: literal tables (inline:, static:) and cached ones, for no longer
    than their cache keeps an answer (and at most MEMO_TTL)."""
    ttl = MEMO_TTL
    for table in tables:
        if isinstance(table, CachedTable):
            ttl = min(ttl, table.ttl, table.negative_ttl)
        elif not isinstance(table, (InlineTable, StaticTable)):
            return 0.0
    return max(ttl, 0.0)


class Maps:
    """The tables of one ``*_maps`` parameter, in order."""

    def __init__(self, parameter: str, tables: Sequence[Table]) -> None:
        self.parameter = parameter
        self.tables = tuple(tables)
        #: Each table with its ``type:name``, as the metrics label it.
        self._specs = tuple((table, table.spec) for table in self.tables)
        #: The one (table, spec) pair that peek() answers for, None with several tables.
        self._single = self._specs[0] if len(self._specs) == 1 else None
        #: How long a whole address search may be remembered (0: never);
        #: see :func:`mailhost.resolve.keys.find`.
        self.memo_ttl = memo_ttl(self.tables)
        #: (address, id(policy)) → (expiry, policy, result), for find().
        self.memo: dict[tuple[str, int], tuple[float, object, object]] = {}

    @classmethod
    def from_value(cls, parameter: str, value: str, registry: TableRegistry) -> Maps:
        """Open every ``type:name`` element of a parameter value."""
        return cls(parameter, [registry.open(spec) for spec in split_list(value)])

    def __bool__(self) -> bool:
        return bool(self.tables)

    def __repr__(self) -> str:
        return f"<Maps {self.parameter} = {', '.join(t.spec for t in self.tables)}>"

    def peek(self, key: str, *, partial: bool = False) -> tuple[str | None] | None:
        """:meth:`lookup`'s answer as ``(value,)`` when a one-table search is
        answered from memory (:meth:`Table.peek`), counted in the metrics as
        lookup() counts it; None: call lookup() (several tables, or the table
        must be asked).  No coroutine: access maps are searched key by key,
        some twenty keys per recipient."""
        single = self._single
        if single is None:
            return None
        table, spec = single
        if key == "" or (partial and not table.fixed):
            return (None,)
        started = time.perf_counter()
        cached = table.peek(key)
        if cached is None or cached[0] == "":
            return None  # lookup() asks the table, or warns about the empty value
        metrics.lookup(self.parameter, spec, started, "notfound" if cached[0] is None else "found")
        return cached

    def peek_search(
        self, keys: Iterator[tuple[str, bool]]
    ) -> tuple[str | None, tuple[str, bool] | None]:
        """:meth:`peek` over ``keys`` (each with its ``partial`` flag) in
        order, while the one table answers from memory: ``(value, None)``
        once a key is found or the keys ran out (value None), ``(None,
        (key, partial))`` at the first key memory cannot answer (the caller
        goes on with :meth:`lookup` from that key).  The probes are counted
        in the metrics as peek() counts them, in one go: an access-map
        search costs one metrics update, not one per key."""
        single = self._single
        if single is None:
            return None, next(keys, None)
        table, spec = single
        fixed, peek = table.fixed, table.peek
        started = time.perf_counter()
        notfound = 0
        value: str | None = None
        pending: tuple[str, bool] | None = None
        for probe in keys:
            key, partial = probe
            if key == "" or (partial and not fixed):
                continue  # never looked up (peek() answers None uncounted)
            cached = peek(key)
            if cached is None or cached[0] == "":
                pending = probe  # lookup() asks the table, or warns about the empty value
                break
            value = cached[0]
            if value is not None:
                break
            notfound += 1
        metrics.lookups(self.parameter, spec, started, notfound, 0 if value is None else 1)
        return value, pending

    async def lookup(
        self, key: str, *, partial: bool = False, probes: list[MapsProbe] | None = None
    ) -> str | None:
        """Search the tables in order.  ``partial`` marks a derived key of an
        address search, which pattern (regexp) tables never see.  ``probes``
        collects what each table answered.  An empty key is never looked up."""
        if key == "":
            return None
        for table, spec in self._specs:
            if partial and not table.fixed:
                if probes is not None:
                    probes.append(MapsProbe(spec, key, skipped=True))
                continue
            started = time.perf_counter()
            try:
                # An in-memory or cached answer without a coroutine (Table.peek).
                cached = table.peek(key)
                value = cached[0] if cached is not None else await table.lookup(key)
            except TableTempFail as exc:
                metrics.lookup(self.parameter, spec, started, "error")
                log.warning('%s: %s lookup error for "%s"', self.parameter, spec, key)
                if probes is not None:
                    probes.append(MapsProbe(spec, key, error=str(exc)))
                raise
            metrics.lookup(self.parameter, spec, started, "notfound" if value is None else "found")
            if probes is not None:
                probes.append(MapsProbe(spec, key, value=value))
            if value == "":
                log.warning("%s lookup of %s returns an empty string result", self.parameter, key)
                log.warning("%s should return NO RESULT in case of NOT FOUND", self.parameter)
                raise TableEmptyResult(f"{self.parameter}: empty string result for {key}")
            if value is not None:
                return value
        return None

    async def close(self) -> None:
        for table in self.tables:
            await table.close()
