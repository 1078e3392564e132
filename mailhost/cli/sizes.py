"""The click parameter type for sizes (``--quota 500M``) and the spelling of
sizes in output; the grammar is in :mod:`mailhost.db.sizes`.

A size's ``M`` is ``mailhost_quota_multiplier`` bytes, known only once the
command has read main.cf: the type keeps the text (checking its grammar at
once) and the command turns it into bytes with :func:`to_bytes`; output uses
the multiplier :func:`use_multiplier` set for the command.
"""

from __future__ import annotations

from contextvars import ContextVar

import click

from mailhost.db.sizes import DEFAULT_MULTIPLIER, BadSize, SizeSpec, parse_size
from mailhost.db.sizes import format_size as _format_size

__all__ = ["SIZE", "BadSize", "SizeSpec", "SizeType", "format_size", "parse_size", "to_bytes"]

_MULTIPLIER: ContextVar[int] = ContextVar("mailhost_quota_multiplier", default=DEFAULT_MULTIPLIER)


def use_multiplier(multiplier: int) -> None:
    """The multiplier this command's sizes are read and shown with."""
    _MULTIPLIER.set(multiplier)


def to_bytes(spec: SizeSpec | None) -> int | None:
    return None if spec is None else spec.bytes(_MULTIPLIER.get())


def format_size(size: int) -> str:
    return _format_size(size, _MULTIPLIER.get())


def parse_quota(text: str) -> int:
    return parse_size(text, _MULTIPLIER.get())


class SizeType(click.ParamType):  # type: ignore[type-arg]  # generic only from click 8.2
    """click parameter type for sizes."""

    name = "size"

    def convert(
        self, value: object, param: click.Parameter | None, ctx: click.Context | None
    ) -> SizeSpec:
        if isinstance(value, SizeSpec):
            return value
        try:
            parse_size(str(value))
        except BadSize as exc:
            self.fail(str(exc), param, ctx)
        return SizeSpec(str(value))


SIZE = SizeType()
