"""Postfix match lists of domain names (postconf(5) "domain lists", spec 1.3).

Used by ``mydestination``, ``relay_domains``, ``virtual_alias_domains``,
``virtual_mailbox_domains`` and the SQL ``domain`` setting.  Elements, tried
left to right, first match wins:

* ``name`` — the name itself (case-insensitive);
* ``!pattern`` — a match of ``pattern`` means "does not match";
* ``/file/name`` — the file's contents as more elements;
* ``type:table`` — matches when the name is a key of the table (value ignored);
  a table error makes the whole match a temporary failure.

With ``match_subdomains`` (``parent_domain_matches_subdomains``, used for
``relay_domains``), ``example.com`` also matches ``sub.example.com`` and
``.example.com`` matches subdomains only.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mailhost.config.lists import split_list
from mailhost.tables.base import Table, fold_key
from mailhost.tables.cache import cached_answer
from mailhost.tables.registry import TableRegistry


@dataclass(frozen=True)
class Element:
    negated: bool
    name: str = ""
    table: Table | None = None


class DomainList:
    def __init__(self, elements: list[Element], *, match_subdomains: bool = False) -> None:
        self.elements = elements
        self.match_subdomains = match_subdomains

    @classmethod
    def parse(
        cls, value: str, registry: TableRegistry, *, match_subdomains: bool = False
    ) -> DomainList:
        return cls(_elements(value, registry, depth=0), match_subdomains=match_subdomains)

    def __bool__(self) -> bool:
        return bool(self.elements)

    def _name_matches(self, pattern: str, name: str) -> bool:
        if pattern.startswith("."):
            return self.match_subdomains and name.endswith(pattern)
        if name == pattern:
            return True
        return self.match_subdomains and name.endswith("." + pattern)

    async def match(self, name: str) -> bool:
        """True when ``name`` is in the list; raises TableTempFail on table errors."""
        name = fold_key(name)
        for element in self.elements:
            if element.table is not None:
                cached = cached_answer(element.table, name)
                value = cached[0] if cached is not None else await element.table.lookup(name)
                hit = value is not None
                if not hit and self.match_subdomains:
                    labels = name.split(".")
                    for i in range(1, len(labels)):
                        parent = ".".join(labels[i:])
                        if await element.table.lookup(parent) is not None:
                            hit = True
                            break
            else:
                hit = self._name_matches(element.name, name)
            if hit:
                return not element.negated
        return False


def _elements(value: str, registry: TableRegistry, depth: int) -> list[Element]:
    result: list[Element] = []
    for item in split_list(value):
        negated = item.startswith("!")
        body = item[1:] if negated else item
        if body.startswith("/"):
            text = Path(body).read_text(encoding="utf-8") if depth < 10 else ""
            nested = _elements(
                "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#")),
                registry,
                depth + 1,
            )
            if negated:
                nested = [Element(not e.negated, e.name, e.table) for e in nested]
            result += nested
        elif ":" in body and not body.startswith("["):
            result.append(Element(negated, table=registry.open(body)))
        else:
            result.append(Element(negated, name=fold_key(body)))
    return result
