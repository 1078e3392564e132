"""Recursive virtual alias expansion, as cleanup(8) does it after DATA (spec 3.4).

The list starts with the envelope recipient and grows while it is walked: each
position is looked up again and again (through :func:`~mailhost.resolve.keys.map_address`)
until it is not found or it maps to itself; the first result replaces it, the
others are appended.  A result equal (case-insensitively) to the address looked
up is "expanded into itself": kept and never looked up again — the PostfixAdmin
self-alias ``bob@d → bob@d`` that keeps a catch-all from swallowing a mailbox.

Limits (postconf(5)): more than ``virtual_alias_expansion_limit`` addresses,
``virtual_alias_recursion_limit`` rounds on one position (an ``a → b → a`` loop
gets there), or a result longer than ``virtual_alias_address_length_limit``
fail the message: ``451 4.6.0 Alias expansion error``; a table error fails it
with ``451 4.3.0 Error: queue file write error``.  Both are temporary.
"""

from __future__ import annotations

from dataclasses import dataclass

from mailhost.errors import TableTempFail
from mailhost.log import logger
from mailhost.reply import Reply
from mailhost.resolve import replies
from mailhost.resolve.keys import SearchPolicy, map_address
from mailhost.resolve.trace import Trace
from mailhost.tables.maps import Maps

log = logger("cleanup")


@dataclass(frozen=True)
class ExpansionLimits:
    expansion_limit: int = 1000
    recursion_limit: int = 1000
    address_length_limit: int = 1000


class AliasExpansionError(Exception):
    """Expansion could not finish.  ``problem`` is ``nesting``, ``size`` or
    ``lookup``; ``reply`` is the end-of-DATA answer."""

    def __init__(self, problem: str, address: str, parameter: str = "virtual_alias_maps") -> None:
        self.problem = problem
        self.address = address
        self.parameter = parameter
        super().__init__(self.log_text)

    @property
    def log_text(self) -> str:
        """cleanup's warning, without the ``QID: `` prefix."""
        what = {
            "nesting": "unreasonable %s map nesting",
            "size": "unreasonable %s map expansion size",
            "lookup": "%s map lookup problem",
        }[self.problem] % self.parameter
        return f"{what} for {self.address} -- message not accepted, try again later"

    @property
    def reply(self) -> Reply:
        if self.problem == "lookup":
            return replies.QUEUE_WRITE_ERROR
        return replies.ALIAS_EXPANSION_ERROR


async def expand_aliases(
    address: str,
    maps: Maps,
    policy: SearchPolicy,
    *,
    limits: ExpansionLimits = ExpansionLimits(),
    propagate: bool = True,
    trace: Trace | None = None,
) -> list[str]:
    """The final addresses of one recipient (internal form, in Postfix's order).
    Raises :class:`AliasExpansionError`."""
    addresses = [address]
    expanded_into_itself: set[str] = set()
    i = 0
    while i < len(addresses):
        if len(addresses) > limits.expansion_limit:
            raise AliasExpansionError("size", address, maps.parameter)
        rounds = 0
        while addresses[i].lower() not in expanded_into_itself:
            if rounds >= limits.recursion_limit:
                raise AliasExpansionError("nesting", address, maps.parameter)
            rounds += 1
            looked_up = addresses[i]
            try:
                results = await map_address(
                    maps, looked_up, policy, propagate=propagate, trace=trace
                )
            except TableTempFail as exc:
                raise AliasExpansionError("lookup", address, maps.parameter) from exc
            if results is None:
                break
            for result in results:
                if len(result) > limits.address_length_limit:
                    raise AliasExpansionError("size", address, maps.parameter)
                if result.lower() == looked_up.lower():
                    expanded_into_itself.add(result.lower())
            addresses[i] = results[0]
            addresses.extend(results[1:])
        i += 1
    return addresses


class DistinctPairs:
    """The (original, final) recipient pairs a message already has, compared
    without regard to case: with ``enable_original_recipient = yes`` cleanup
    keeps one copy per pair (spec 3.4).  Used wherever a message's recipients
    are expanded (cleanup for SMTP and local mail, the resolver's
    ``expand_all`` for ``mailhost trace``)."""

    def __init__(self) -> None:
        self.seen: set[tuple[str, str]] = set()

    def first(self, original: str, final: str) -> bool:
        """True the first time this pair is offered."""
        key = (original.lower(), final.lower())
        if key in self.seen:
            return False
        self.seen.add(key)
        return True
