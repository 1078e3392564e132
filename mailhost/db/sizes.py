"""Sizes as people write them: ``500M``, ``2G``, ``1024``, ``0``/``unlimited``.

Suffixes are binary (K = 1024, M = 1024², G = 1024³, T = 1024⁴), as Dovecot's
quota rules read them, optionally followed by ``B``/``iB``; a bare number is
bytes.  ``0``, ``unlimited`` and ``none`` mean no limit (0, PostfixAdmin's
"unlimited").
"""

from __future__ import annotations

import re

from mailhost.errors import EX_USAGE, MailhostError

_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}
_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?", re.IGNORECASE)
UNLIMITED_WORDS = frozenset({"unlimited", "none"})
#: Largest value a signed 64-bit column (bigint) can hold.
MAX_SIZE = 2**63 - 1


class BadSize(MailhostError):
    """A size argument that does not parse."""

    exit_status = EX_USAGE


def parse_size(text: str) -> int:
    """Bytes for a size argument; 0 means unlimited."""
    value = text.strip()
    if value.lower() in UNLIMITED_WORDS:
        return 0
    match = _SIZE.fullmatch(value)
    if match is None:
        raise BadSize(f"bad size: {text!r}: expected a number with an optional K, M, G or T")
    number: str = match.group(1)
    unit: str = match.group(2)
    factor = _UNITS[unit.lower()]
    if "." in number:
        whole, frac = number.split(".")
        scale: int = 10 ** len(frac)
        size = int(whole) * factor + (int(frac) * factor) // scale
    else:
        size = int(number) * factor
    if size > MAX_SIZE:
        raise BadSize(f"bad size: {text!r}: too large")
    return size


def format_size(size: int) -> str:
    """The shortest exact spelling: 524288000 → ``500M``; 0 → ``unlimited``."""
    if size == 0:
        return "unlimited"
    if size < 0:
        return "disabled"
    for suffix in ("T", "G", "M", "K"):
        factor = _UNITS[suffix.lower()]
        if size % factor == 0:
            return f"{size // factor}{suffix}"
    return str(size)
