"""The postmap source format shared by ``hash:`` (indexed) and ``texthash:``.

Rules (postmap(1), verified with postmap 3.7.11, spec 2.2):

* logical lines exactly as main.cf (comments, blank lines, continuation lines
  that keep their leading whitespace);
* the key ends at the first whitespace that is neither inside double quotes nor
  escaped by a backslash; quotes and backslashes only decide where the key ends
  — the key is stored exactly as written;
* whitespace after the key is skipped, the value's trailing whitespace removed,
  its interior whitespace kept;
* keys are folded to lower case unless ``-f``; values keep their case;
* duplicates: the first value wins.
"""

from __future__ import annotations

from dataclasses import dataclass

from mailhost.config.maincf import logical_lines
from mailhost.errors import TableOpenError
from mailhost.log import logger
from mailhost.tables.base import fold_key

log = logger("tables")


@dataclass(frozen=True)
class SourceEntry:
    lineno: int
    key: str
    value: str


def split_key(text: str) -> tuple[str, str] | None:
    """(key, rest) of one logical line, or None when a quote is unbalanced."""
    in_quote = False
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch == "\\" and i + 1 < n:
            i += 2
            continue
        if ch == '"':
            in_quote = not in_quote
        elif ch in " \t" and not in_quote:
            break
        i += 1
    if in_quote:
        return None
    return text[:i], text[i:].strip(" \t")


def parse_source(
    text: str,
    filename: str,
    *,
    fold: bool = True,
    bad_line_suffix: str = "",
    duplicate_prefix: str | None = None,
) -> dict[str, SourceEntry]:
    """Entries of a source text by (folded) key, with Postfix's warnings.

    ``bad_line_suffix`` is appended to the "expected format" warning
    (texthash says `` -- ignoring this line``); ``duplicate_prefix`` replaces
    ``FILE, line N`` in the duplicate warning (postmap names the index file).
    """
    entries: dict[str, SourceEntry] = {}
    for line in logical_lines(text.splitlines(), filename):
        parts = split_key(line.text)
        if parts is None:
            log.warning(
                "%s, line %d: unbalanced '\"' in '%s' -- ignoring this line",
                filename,
                line.lineno,
                line.text,
            )
            continue
        key, value = parts
        if not key or not value:
            log.warning(
                "%s, line %d: expected format: key whitespace value%s",
                filename,
                line.lineno,
                bad_line_suffix,
            )
            continue
        if key.endswith(":"):
            log.warning(
                '%s, line %d: record is in "key: value" format; is this an alias file?',
                filename,
                line.lineno,
            )
        if fold:
            key = fold_key(key)
        if key in entries:
            where = duplicate_prefix or f"{filename}, line {line.lineno}"
            log.warning('%s: duplicate entry: "%s"', where, key)
            continue
        entries[key] = SourceEntry(line.lineno, key, value)
    return entries


def read_source(path: str) -> str:
    """A table's source text; a missing file is Postfix's open error."""
    try:
        with open(path, encoding="utf-8", errors="surrogateescape") as f:
            return f.read()
    except FileNotFoundError:
        raise TableOpenError(f"open {path}: No such file or directory") from None
