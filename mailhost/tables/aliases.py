"""The aliases(5) source format and its index, as postalias(1) builds it.

``/etc/aliases`` is not a postmap source (spec 3.7, verified with postalias
3.7.11): each logical line (comments, blank and continuation lines as in
main.cf) is scanned into RFC 822 tokens (:mod:`mailhost.tables.tok822`), so

* the name ends at the first ``:`` token — white space before it is allowed
  and a quoted name may hold ``:``, ``@`` or blanks (``"a 9": x`` is stored
  as ``a 9``); the name is stored in internal (unquoted) form, folded to
  lower case unless ``-f``;
* the value is the rest re-printed in external form: ``x,y`` → ``x, y``,
  ``x   y`` → ``x y``, continuation lines joined the same way;
* no ``:``, nothing before it, nothing after it, or a ``,`` before it:
  ``FILE, line N: need name:value pair`` (skipped); an ``@`` or ``%`` before
  it: ``FILE, line N: name must be local`` (skipped); a second entry for a
  name: ``FILE.db: duplicate entry: "NAME"`` (the first one is kept);
* after the entries, postalias stores Sendmail's ``@`` → ``@`` ("the
  database is complete") and NIS's ``YP_LAST_MODIFIED`` (seconds since the
  epoch) and ``YP_MASTER_NAME`` (``$myhostname``) — upper case, so folded
  lookups never find them.

The index is the ``hash:`` one (:func:`mailhost.tables.hashindex.write_index`,
``FILE.mhdb``), so ``alias_maps = hash:/etc/aliases`` reads it unchanged.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass

from mailhost.config.maincf import LogicalLine
from mailhost.log import logger
from mailhost.tables import tok822
from mailhost.tables.base import fold_key
from mailhost.tables.hashindex import index_path, write_index
from mailhost.tables.source import read_source

log = logger("tables")

#: Sendmail's "alias database is complete" sentinel that postalias adds.
SENTINEL = ("@", "@")


@dataclass(frozen=True)
class AliasEntry:
    lineno: int
    name: str
    value: str


def source_lines(text: str, filename: str) -> Iterator[LogicalLine]:
    """Logical lines as main.cf's, but with trailing white space kept:
    postalias tokenizes the raw text, and an escaped or quoted blank at the
    end of a line is part of the value."""
    current: list[str] = []
    start = 0
    for number, line in enumerate(text.split("\n"), start=1):
        stripped = line.lstrip(" \t")
        if not stripped.strip() or stripped.startswith("#"):
            continue
        if line[0] in " \t":
            if current:
                current.append(line)
                continue
            shown = line.rstrip()
            shown = shown if len(shown) <= 30 else shown[:30] + "..."
            log.warning('%s: logical line must not start with whitespace: "%s"', filename, shown)
            continue
        if current:
            yield LogicalLine(start, "".join(current))
        current, start = [line], number
    if current:
        yield LogicalLine(start, "".join(current))


def parse_line(text: str) -> tuple[str, str] | str:
    """(name, value) of one logical line, or the warning text for a bad one."""
    tokens = tok822.scan(text)
    kinds = [t.kind for t in tokens]
    if ":" not in kinds:
        return "need name:value pair"
    colon = kinds.index(":")
    if colon == 0 or colon == len(tokens) - 1 or "," in kinds[:colon]:
        return "need name:value pair"
    if "@" in kinds[:colon] or "%" in kinds[:colon]:
        return "name must be local"
    return tok822.internalize(tokens[:colon]), tok822.externalize(tokens[colon + 1 :])


def parse_aliases(
    text: str, filename: str, *, fold: bool = True, duplicate_prefix: str | None = None
) -> dict[str, AliasEntry]:
    """Entries of an aliases source by (folded) name, logging Postfix's
    warnings; ``duplicate_prefix`` names the index in the duplicate warning
    (postalias says ``FILE.db``)."""
    entries: dict[str, AliasEntry] = {}
    for line in source_lines(text, filename):
        if not tok822.scan(line.text):
            continue
        parsed = parse_line(line.text)
        if isinstance(parsed, str):
            log.warning("%s, line %d: %s", filename, line.lineno, parsed)
            continue
        name, value = parsed
        if fold:
            name = fold_key(name)
        if name in entries:
            where = duplicate_prefix or f"{filename}, line {line.lineno}"
            log.warning('%s: duplicate entry: "%s"', where, name)
            continue
        entries[name] = AliasEntry(line.lineno, name, value)
    return entries


def alias_items(
    entries: dict[str, AliasEntry], myhostname: str, now: float | None = None
) -> list[tuple[str, str]]:
    """What postalias stores: the entries, then the ``@`` and YP_* records."""
    items = [(e.name, e.value) for e in entries.values()]
    extra = [
        SENTINEL,
        ("YP_LAST_MODIFIED", str(int(time.time() if now is None else now))),
        ("YP_MASTER_NAME", myhostname),
    ]
    # With -f (no folding) a name may already be spelled like a sentinel.
    items += [(k, v) for k, v in extra if k not in entries]
    return items


def build_alias_index(source: str, myhostname: str, *, fold: bool = True) -> int:
    """Compile the aliases file ``source`` into ``source.mhdb``; returns the
    number of aliases (the sentinels not counted)."""
    text = read_source(source)
    entries = parse_aliases(text, source, fold=fold, duplicate_prefix=index_path(source))
    write_index(source, alias_items(entries, myhostname))
    return len(entries)
