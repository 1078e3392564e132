"""``fail:name`` — a table whose every lookup fails temporarily (Postfix 3.5+
dict_fail(3)), used to force deferral: ``virtual_alias_maps = fail:defer``
makes every recipient wait in the queue.

The name is only a label.  Texts as Postfix 3.7.11 prints them (recorded in
``tests/tables/postfix_fail_hash.json``): a lookup is ``table fail:NAME:
query error: Application error``, a sequential read (``postmap -s``) ``table
fail:NAME: sequence error: Application error`` — Postfix sets its own
``EAPPERR`` errno, whose text is "Application error".
"""

from __future__ import annotations

from typing import ClassVar

from mailhost.errors import TableTempFail
from mailhost.tables.base import Table
from mailhost.tables.registry import OpenContext

#: strerror of Postfix's EAPPERR, the errno dict_fail sets.
APPLICATION_ERROR = "Application error"


class FailTable(Table):
    type_name: ClassVar[str] = "fail"

    @classmethod
    def open(cls, name: str, ctx: OpenContext) -> Table:
        return cls(name, fold=ctx.fold)

    async def _lookup(self, key: str) -> str | None:
        raise TableTempFail(f"table {self.spec}: query error: {APPLICATION_ERROR}")

    def items(self) -> list[tuple[str, str]]:
        """``postmap -s``: fails as Postfix's sequential read does."""
        raise TableTempFail(f"table {self.spec}: sequence error: {APPLICATION_ERROR}")


TABLE_TYPE = FailTable
