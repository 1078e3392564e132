"""Virtual alias expansion of a message's recipients, one copy per distinct
(original, final) pair.

The one place both of cleanup's callers expand recipients: smtpd's accepted
recipients at end of DATA and pickup's envelope recipients.  Postfix keeps
the original recipient (``enable_original_recipient = yes``) and drops a
final recipient that repeats for the same original
(:class:`~mailhost.resolve.aliases.DistinctPairs`, spec 3.4).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import TypeVar

from mailhost.resolve.aliases import DistinctPairs

#: What the caller keeps with each recipient (smtpd: nothing; pickup: the
#: queue file's recipient record).
Source = TypeVar("Source")


async def expand_unique(
    recipients: Iterable[tuple[Source, str, str]],
    expand: Callable[[str], Awaitable[Sequence[str]]],
) -> list[tuple[Source, str, str]]:
    """(source, original, final) for every final address of each (source,
    original, target) in ``recipients`` — ``target`` being the rewritten
    address expansion starts from — in order, each distinct (original, final)
    once."""
    pairs = DistinctPairs()
    out: list[tuple[Source, str, str]] = []
    for source, original, target in recipients:
        for final in await expand(target):
            if pairs.first(original, final):
                out.append((source, original, final))
    return out
