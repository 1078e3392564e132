"""``texthash:/file`` — a postmap source file read directly into memory.

Same parser and answers as ``hash:`` without a ``postmap`` step (Postfix
dict_thash(3)).  Like Postfix, the file is read once when the table is opened
and never re-read; a reload (SIGHUP) opens it again.
"""

from __future__ import annotations

from typing import ClassVar

from mailhost.tables.base import Table
from mailhost.tables.registry import OpenContext
from mailhost.tables.source import parse_source, read_source


class TextHashTable(Table):
    type_name: ClassVar[str] = "texthash"

    def __init__(self, name: str, entries: dict[str, str], *, fold: bool = True) -> None:
        super().__init__(name, fold=fold)
        self.entries = entries

    @classmethod
    def open(cls, name: str, ctx: OpenContext) -> Table:
        text = read_source(name)
        parsed = parse_source(text, name, fold=ctx.fold, bad_line_suffix=" -- ignoring this line")
        return cls(name, {k: e.value for k, e in parsed.items()}, fold=ctx.fold)

    async def _lookup(self, key: str) -> str | None:
        return self.entries.get(key)

    def items(self) -> list[tuple[str, str]]:
        return list(self.entries.items())


TABLE_TYPE = TextHashTable
