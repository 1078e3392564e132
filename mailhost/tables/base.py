"""The lookup-table interface every backend implements.

Postfix dict(3) semantics, in our words: a lookup has three outcomes — a string
value, "not found" (``None``), or :class:`~mailhost.errors.TableTempFail`.  A
backend must never turn an outage into "not found"; any exception it did not
classify is wrapped into a temporary failure by :meth:`Table.lookup`.

Fixed-string tables (hash, texthash, inline, static, SQL) fold the key to lower
case before the lookup, as every Postfix daemon and ``postmap -q`` do (unless
``postmap -f``).  Pattern tables (regexp) see the key as given and only ever
receive the full address, never the partial keys of an address search
(user@domain without extension, bare localpart, @domain).
"""

from __future__ import annotations

import abc
from typing import ClassVar

from mailhost.errors import TableTempFail
from mailhost.log import logger

log = logger("tables")


def fold_key(key: str) -> str:
    """Postfix's key folding: ASCII lower case, full Unicode case folding for
    UTF-8 keys (Postfix folds with ICU's default full folding when
    ``smtputf8_enable = yes``)."""
    return key.lower() if key.isascii() else key.casefold()


class Table(abc.ABC):
    """One opened ``type:name`` table."""

    #: The scheme this backend is registered under (``hash``, ``mysql``, ...).
    type_name: ClassVar[str]
    #: True for fixed-string tables (key folding, partial address keys allowed).
    fixed: ClassVar[bool] = True
    #: True when a result cache in front of this table saves real work (SQL).
    cacheable: ClassVar[bool] = False

    def __init__(self, name: str, *, fold: bool = True) -> None:
        self.name = name
        self.fold = fold and self.fixed

    @property
    def spec(self) -> str:
        """The table as written in main.cf: ``type:name``."""
        return f"{self.type_name}:{self.name}"

    async def lookup(self, key: str) -> str | None:
        """Look ``key`` up: the value, ``None`` for not found, or raise
        :class:`TableTempFail`.  (``Maps`` never asks for an empty key;
        ``postmap -q`` may, as Postfix's does.)"""
        if self.fold:
            key = fold_key(key)
        try:
            value = await self._lookup(key)
        except TableTempFail:
            raise
        except Exception as exc:  # an unclassified failure is temporary (DESIGN rule 2)
            log.warning('%s lookup error for "%s": %s', self.spec, key, exc)
            raise TableTempFail(f"table {self.spec}: query error: {exc}") from exc
        if value == "":
            # Postfix's dict layer says so for every table type (postmap -q shows it too).
            log.warning("table %s: key %s: empty string result is not allowed", self.spec, key)
            log.warning("table %s should return NO RESULT in case of NOT FOUND", self.spec)
        return value

    def peek(self, key: str) -> tuple[str | None] | None:
        """The answer :meth:`lookup` would give, as ``(value,)`` (``(None,)``:
        not found), when the table has it in memory with nothing to check or
        warn about first; None: ask :meth:`lookup`.  No coroutine: an access
        table is asked about twenty times per recipient under
        ``smtpd_delay_reject`` (docs/benchmarks.md, issue 17)."""
        return None

    @abc.abstractmethod
    async def _lookup(self, key: str) -> str | None:
        """Backend lookup of an already folded, non-empty key."""

    async def close(self) -> None:  # noqa: B027 - optional hook, most tables hold nothing
        """Release connections or file handles."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.spec}>"


class UnavailableTable(Table):
    """Stand-in for a table that could not be opened: every lookup fails
    temporarily, so a broken table never makes mail bounce (Postfix's
    dict_surrogate)."""

    type_name: ClassVar[str] = "unavailable"

    def __init__(self, spec: str, reason: str) -> None:
        super().__init__(spec, fold=False)
        self._spec = spec
        self.reason = reason
        log.warning("%s is unavailable. %s", spec, reason)

    @property
    def spec(self) -> str:
        return self._spec

    async def _lookup(self, key: str) -> str | None:
        log.warning('%s lookup error for "%s"', self._spec, key)
        raise TableTempFail(f"{self._spec} is unavailable. {self.reason}")
