"""Sizes as people write them: ``500M``, ``2G``, ``1024``, ``0``/``unlimited``,
in PostfixAdmin's units.

PostfixAdmin knows one unit, the "MB" of ``$CONF['quota_multiplier']`` bytes
(1024000 by default), and stores ``mailbox.quota`` as MB × multiplier.  So
that a quota typed into either tool is the same number of bytes, and shows as
the same number, ``M`` here is one multiplier (``mailhost_quota_multiplier``):
with the default, ``5M`` is 5,120,000 bytes, which PostfixAdmin shows as 5.
``G`` is 1024 M, ``T`` 1024 G and ``K`` M/1024 (1000 bytes with the default);
``B``/``iB`` may follow; a bare number is bytes.  ``0``, ``unlimited`` and
``none`` mean no limit (0, PostfixAdmin's "unlimited").
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from mailhost.errors import EX_USAGE, MailhostError

#: PostfixAdmin's default ``quota_multiplier``.
DEFAULT_MULTIPLIER = 1024000
_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?", re.IGNORECASE)
UNLIMITED_WORDS = frozenset({"unlimited", "none"})
#: Largest value a signed 64-bit column (bigint) can hold.
MAX_SIZE = 2**63 - 1


class BadSize(MailhostError):
    """A size argument that does not parse."""

    exit_status = EX_USAGE


def units(multiplier: int = DEFAULT_MULTIPLIER) -> dict[str, int]:
    """Bytes per suffix for a quota multiplier."""
    return {
        "": 1,
        "k": multiplier // 1024 or 1,
        "m": multiplier,
        "g": multiplier * 1024,
        "t": multiplier * 1024**2,
    }


def parse_size(text: str, multiplier: int = DEFAULT_MULTIPLIER) -> int:
    """Bytes for a size argument; 0 means unlimited."""
    value = text.strip()
    if value.lower() in UNLIMITED_WORDS:
        return 0
    match = _SIZE.fullmatch(value)
    if match is None:
        raise BadSize(f"bad size: {text!r}: expected a number with an optional K, M, G or T")
    number: str = match.group(1)
    unit: str = match.group(2)
    factor = units(multiplier)[unit.lower()]
    if "." in number:
        whole, frac = number.split(".")
        scale: int = 10 ** len(frac)
        size = int(whole) * factor + (int(frac) * factor) // scale
    else:
        size = int(number) * factor
    if size > MAX_SIZE:
        raise BadSize(f"bad size: {text!r}: too large")
    return size


def format_size(size: int, multiplier: int = DEFAULT_MULTIPLIER) -> str:
    """The shortest exact spelling: 512000000 → ``500M``; 0 → ``unlimited``."""
    if size == 0:
        return "unlimited"
    if size < 0:
        return "disabled"
    table = units(multiplier)
    for suffix in ("T", "G", "M", "K"):
        factor = table[suffix.lower()]
        if factor > 1 and size % factor == 0:
            return f"{size // factor}{suffix}"
    return str(size)


@dataclass(frozen=True)
class SizeSpec:
    """A size as typed, turned into bytes once the multiplier is known."""

    text: str

    def bytes(self, multiplier: int = DEFAULT_MULTIPLIER) -> int:
        return parse_size(self.text, multiplier)
