"""``static:value`` — the same value for every key (Postfix dict_static(3)).

``static:{ hello world }`` allows blanks (those after ``{`` and before ``}`` are
dropped); ``static:{}`` answers an empty string, which the lookup layer reports
as a configuration error.
"""

from __future__ import annotations

from typing import ClassVar

from mailhost.tables.base import Table
from mailhost.tables.registry import OpenContext


class StaticTable(Table):
    type_name: ClassVar[str] = "static"

    def __init__(self, name: str, *, fold: bool = True) -> None:
        super().__init__(name, fold=fold)
        text = name
        if text.startswith("{") and text.endswith("}"):
            text = text[1:-1].strip()
        self.value = text

    @classmethod
    def open(cls, name: str, ctx: OpenContext) -> Table:
        return cls(name, fold=ctx.fold)

    async def _lookup(self, key: str) -> str | None:
        return self.value


TABLE_TYPE = StaticTable
