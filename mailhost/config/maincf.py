"""The main.cf lexer: logical lines and ``name = value`` pairs.

Postfix's rules (postconf(5), verified against postconf 3.7.11, spec 1.1):

* a physical line whose first character is a space or TAB continues the
  previous logical line; the newline is dropped and the continuation keeps its
  leading whitespace;
* empty lines, whitespace-only lines and lines whose first non-blank character
  is ``#`` are dropped completely, also between a line and its continuation;
* ``#`` anywhere else is ordinary text;
* a logical line is ``name = value``; whitespace around ``=`` and at the end is
  removed; the value may be empty or contain ``=``.

The same logical-line rules hold for Postfix query files and postmap sources,
so :func:`logical_lines` is shared with the table backends.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from mailhost.errors import ConfigError
from mailhost.log import logger

log = logger("config")

_NAME_CHARS = re.compile(r"[^\s=]+")


@dataclass(frozen=True)
class LogicalLine:
    """One logical line and the number of the physical line it started on."""

    lineno: int
    text: str


def logical_lines(lines: Iterable[str], filename: str) -> Iterator[LogicalLine]:
    """Join continuation lines and drop comments/blank lines (spec 1.1).

    A logical line that would start with whitespace (a continuation with
    nothing before it) is reported with Postfix's warning and skipped.
    """
    current: list[str] = []
    start = 0
    for number, raw in enumerate(lines, start=1):
        line = raw.rstrip("\r\n")
        stripped = line.lstrip(" \t")
        if not stripped or stripped.startswith("#"):
            continue
        if line[0] in " \t":
            if current:
                current.append(line)
                continue
            text = line.rstrip()
            shown = text if len(text) <= 30 else text[:30] + "..."
            log.warning('%s: logical line must not start with whitespace: "%s"', filename, shown)
            continue
        if current:
            yield LogicalLine(start, "".join(current).rstrip())
        current = [line]
        start = number
    if current:
        yield LogicalLine(start, "".join(current).rstrip())


def split_assignment(line: LogicalLine, filename: str) -> tuple[str, str]:
    """``name = value`` → (name, value) with Postfix's fatal texts."""
    text = line.text
    name_part, sep, value = text.partition("=")
    name = name_part.strip()
    if not name:
        raise ConfigError(f'{filename}, line {line.lineno}: missing attribute name: "{text}"')
    if not sep or not _NAME_CHARS.fullmatch(name):
        raise ConfigError(
            f"{filename}, line {line.lineno}: missing '=' after attribute name: \"{text}\""
        )
    return name, value.strip()


@dataclass(frozen=True)
class Assignment:
    name: str
    value: str
    lineno: int


def parse_assignments(
    text: str, filename: str, *, warn_duplicates: bool = True
) -> list[Assignment]:
    """All ``name = value`` lines of a main.cf-syntax text, in file order."""
    result: list[Assignment] = []
    seen: dict[str, Assignment] = {}
    for line in logical_lines(text.splitlines(), filename):
        name, value = split_assignment(line, filename)
        earlier = seen.get(name)
        if earlier is not None and warn_duplicates:
            log.warning(
                "%s, line %d: overriding earlier entry: %s=%s",
                filename,
                line.lineno,
                name,
                earlier.value,
            )
        entry = Assignment(name, value, line.lineno)
        seen[name] = entry
        result.append(entry)
    return result


def read_main_cf(path: Path) -> dict[str, str]:
    """Parameters set in a main.cf file: the last setting of each name wins."""
    text = path.read_text(encoding="utf-8", errors="surrogateescape")
    return {a.name: a.value for a in parse_assignments(text, str(path))}
