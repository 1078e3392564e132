"""``nis:map`` — NIS maps, as in Postfix's default ``alias_maps =
hash:/etc/aliases, nis:mail.aliases``.

mailhost has no NIS client.  Postfix on a host without a NIS domain disables
NIS lookups with a warning and answers "not found"; mailhost does exactly that,
so a Postfix default or a main.cf naming ``nis:`` loads and behaves the same.
"""

from __future__ import annotations

from typing import ClassVar

from mailhost.log import logger
from mailhost.tables.base import Table
from mailhost.tables.registry import OpenContext

log = logger("tables")


class NisTable(Table):
    type_name: ClassVar[str] = "nis"

    @classmethod
    def open(cls, name: str, ctx: OpenContext) -> Table:
        log.warning("dict_nis_init: NIS domain name not set - NIS lookups disabled")
        return cls(name, fold=ctx.fold)

    async def _lookup(self, key: str) -> str | None:
        return None


TABLE_TYPE = NisTable
