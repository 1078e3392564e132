"""Turning SQL rows into a Postfix lookup result (db_common(3), spec 2.7).

* mysql and pgsql contribute every column of every row, sqlite only the first
  column of each row;
* NULL is skipped (silently for mysql and sqlite; pgsql hands NULL over as an
  empty string, which is then skipped with the same warning as a real empty
  string);
* each remaining value is formatted with ``result_format`` and the pieces are
  joined with ``,``; no piece left means not found;
* more pieces than ``expansion_limit`` (when > 0) is a temporary error.
"""

from __future__ import annotations

import datetime
import decimal
from collections.abc import Sequence

from mailhost.errors import TableTempFail
from mailhost.log import logger
from mailhost.tables.sql.template import KeyParts, Suppressed

log = logger("tables.sql")


def text_of(value: object) -> str | None:
    """A column value as the text a C client library would hand Postfix."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "t" if value else "f"  # PostgreSQL's text form of booleans
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).decode("utf-8", errors="replace")
    if isinstance(value, decimal.Decimal | int | float | datetime.date | datetime.time):
        return str(value)
    return str(value)


def format_value(result_format: str, value: str, key: KeyParts) -> str | None:
    """Apply ``result_format`` to one value; None when the value is skipped."""
    out: list[str] = []
    own = KeyParts.of(value)
    i = 0
    while i < len(result_format):
        ch = result_format[i]
        if ch != "%" or i + 1 >= len(result_format):
            out.append(ch)
            i += 1
            continue
        token = result_format[i + 1]
        i += 2
        if token == "%":
            out.append("%")
        elif token == "s":
            out.append(value)
        elif token == "u":
            if value.startswith("@"):
                return None
            out.append(own.local)
        elif token == "d":
            if not own.has_at or not own.domain:
                return None
            out.append(own.domain)
        elif token in "SUD123456789":
            try:
                out.append(key.value(token))
            except Suppressed:
                return None
        else:
            out.append("%" + token)
    return "".join(out)


def assemble(
    rows: Sequence[Sequence[object]],
    *,
    spec: str,
    kind: str,
    key: str,
    result_format: str,
    expansion_limit: int,
    path: str,
) -> str | None:
    parts = KeyParts.of(key)
    pieces: list[str] = []
    for row in rows:
        columns = row[:1] if kind == "sqlite" else row
        for column in columns:
            value = text_of(column)
            if value is None and kind != "pgsql":
                continue
            if not value:
                log.warning('table "%s": empty lookup result for: "%s" -- ignored', spec, key)
                continue
            formatted = format_value(result_format, value, parts)
            if formatted is None:
                continue
            pieces.append(formatted)
            if expansion_limit and len(pieces) > expansion_limit:
                sep = " " if kind == "sqlite" else ": "
                log.warning(
                    "dict_%s_lookup: %s: Expansion limit exceeded for key%s'%s'",
                    kind, path, sep, key,
                )  # fmt: skip
                raise TableTempFail(f"table {spec}: query error: Expansion limit exceeded")
    return ",".join(pieces) if pieces else None
