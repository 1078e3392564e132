"""``inline:{ key=value, { key = value with spaces } }`` — a table written in
main.cf itself (Postfix dict_inline(3), spec 2.4).

Elements are separated by commas and/or whitespace; an inner ``{...}`` holds one
``key = value`` whose value may contain blanks (the blanks after ``{``, around
``=`` and before ``}`` are dropped).  Keys are folded when the table is built.
"""

from __future__ import annotations

from typing import ClassVar

from mailhost.config.lists import split_list
from mailhost.errors import TableOpenError
from mailhost.tables.base import Table, fold_key
from mailhost.tables.registry import OpenContext


def parse_inline(name: str, *, fold: bool = True) -> dict[str, str]:
    spec = f"inline:{name}"
    need = 'need "inline:{name=value...}"'
    body = name.strip()
    if not (body.startswith("{") and body.endswith("}")):
        raise TableOpenError(f'bad syntax: "{spec}"; {need}')
    entries: dict[str, str] = {}
    for raw in split_list(body[1:-1]):
        element = raw[1:-1].strip() if raw.startswith("{") and raw.endswith("}") else raw
        key, sep, value = element.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not key:
            raise TableOpenError(f"missing '=' after attribute name: \"{spec}\"; {need}")
        if fold:
            key = fold_key(key)
        entries.setdefault(key, value)
    return entries


class InlineTable(Table):
    type_name: ClassVar[str] = "inline"

    def __init__(self, name: str, *, fold: bool = True) -> None:
        super().__init__(name, fold=fold)
        self.entries = parse_inline(name, fold=fold)

    @classmethod
    def open(cls, name: str, ctx: OpenContext) -> Table:
        return cls(name, fold=ctx.fold)

    async def _lookup(self, key: str) -> str | None:
        return self.entries.get(key)

    def items(self) -> list[tuple[str, str]]:
        return list(self.entries.items())


TABLE_TYPE = InlineTable
