"""The click parameter type for sizes (``--quota 500M``); the grammar is in
:mod:`mailhost.db.sizes`."""

from __future__ import annotations

import click

from mailhost.db.sizes import BadSize, format_size, parse_size

__all__ = ["SIZE", "BadSize", "SizeType", "format_size", "parse_size"]


class SizeType(click.ParamType):  # type: ignore[type-arg]  # generic only from click 8.2
    """click parameter type for sizes."""

    name = "size"

    def convert(
        self, value: object, param: click.Parameter | None, ctx: click.Context | None
    ) -> int:
        if isinstance(value, int):
            return value
        try:
            return parse_size(str(value))
        except BadSize as exc:
            self.fail(str(exc), param, ctx)


SIZE = SizeType()
