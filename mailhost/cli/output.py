"""Command output: aligned tables for people, ``--json`` for scripts.

Tables are plain text, one header line and one line per row, columns separated
by two spaces and padded to the widest cell (wide characters counted by their
display width so IDN domains line up).  JSON output is the same records with
sizes in bytes and booleans as booleans, one document per command.
"""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import click

json_option = click.option(
    "--json", "as_json", is_flag=True, default=False, help="Print JSON for scripts."
)


def display_width(text: str) -> int:
    """Terminal columns a string occupies (East Asian wide/fullwidth = 2)."""
    width = 0
    for char in text:
        if unicodedata.combining(char):
            continue
        width += 2 if unicodedata.east_asian_width(char) in ("W", "F") else 1
    return width


def _pad(text: str, width: int) -> str:
    return text + " " * (width - display_width(text))


def render_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Aligned columns; the last column is not padded (no trailing blanks)."""
    widths = [display_width(h) for h in headers]
    for row in rows:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], display_width(cell))
    lines = []
    for row in [list(headers), *rows]:
        cells = [_pad(cell, widths[i]) for i, cell in enumerate(row[:-1])]
        lines.append("  ".join([*cells, row[-1]]).rstrip())
    return "\n".join(lines)


def render_record(record: Mapping[str, str]) -> str:
    """``key: value`` lines with the keys aligned (for ``show``)."""
    width = max((display_width(k) for k in record), default=0)
    return "\n".join(f"{_pad(k + ':', width + 1)} {v}".rstrip() for k, v in record.items())


def emit_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, ensure_ascii=False, sort_keys=False))


def emit_list(
    records: Sequence[Mapping[str, Any]],
    columns: Sequence[tuple[str, Callable[[Mapping[str, Any]], str]]],
    *,
    as_json: bool,
) -> None:
    """A list command's output: JSON array or an aligned table."""
    if as_json:
        emit_json(list(records))
        return
    if not records:
        return
    click.echo(
        render_table([name for name, _ in columns], [[fn(r) for _, fn in columns] for r in records])
    )


def emit_record(
    record: Mapping[str, Any],
    fields: Sequence[tuple[str, Callable[[Mapping[str, Any]], str]]],
    *,
    as_json: bool,
) -> None:
    """A show command's output: JSON object or aligned ``key: value`` lines."""
    if as_json:
        emit_json(dict(record))
        return
    click.echo(render_record({name: fn(record) for name, fn in fields}))


def yes_no(value: object) -> str:
    return "yes" if value else "no"


def both_ways(ascii_name: str, unicode_name: str) -> str:
    """``xn--bcher-kva.example (bücher.example)``; plain ASCII names once."""
    return ascii_name if ascii_name == unicode_name else f"{ascii_name} ({unicode_name})"


def limit_text(value: int) -> str:
    """A PostfixAdmin count limit: 0 unlimited, -1 none allowed."""
    if value == 0:
        return "unlimited"
    if value < 0:
        return "disabled"
    return str(value)
