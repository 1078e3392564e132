"""smtp(8)'s ``smtp_generic_maps``: outgoing addresses made globally valid at delivery.

generic(5): when the smtp client sends a message, each envelope address
(MAIL FROM, every RCPT TO) and each address of the sender and recipient
headers of the primary header section is looked up once (no recursion, unlike
canonical(5)) with the address key sequence of spec 3.3 — ``user@domain``,
then ``user`` when the domain is ``$myorigin`` or local, then ``@domain``.
``@domain`` as a result keeps the local part.  An extension is put back only
when propagate_unmatched_extensions lists ``generic`` (it does not by
default).  Of a multi-address value only the first is used.  The queue file
is not changed: the rewriting is of the copy sent.  A table failure raises
TableTempFail: the delivery is deferred.

This module is pure apart from the table lookups; the smtp transport calls
:func:`generic_envelope` and :func:`generic_headers` for each delivery.
Expected values: tests/rewrite/postfix_rewrite.json ("sent"), recorded from
Postfix 3.7.11 delivering to smtp-sink.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from mailhost.address import external_form, internal_form
from mailhost.config import Config
from mailhost.config.lists import split_list
from mailhost.log import logger
from mailhost.resolve.header_addresses import rewrite_headers
from mailhost.resolve.keys import SearchPolicy, map_address
from mailhost.resolve.resolver import ResolverSettings
from mailhost.tables.maps import Maps
from mailhost.tables.registry import TableRegistry

log = logger("smtp")


@dataclass(frozen=True)
class GenericSettings:
    maps: Maps
    search: SearchPolicy
    #: propagate_unmatched_extensions contains "generic".
    propagate: bool = False

    @classmethod
    def from_config(
        cls,
        cfg: Config,
        registry: TableRegistry,
        parameter: str = "smtp_generic_maps",
        search: SearchPolicy | None = None,
    ) -> GenericSettings:
        """``parameter`` is smtp_generic_maps (or lmtp_generic_maps for lmtp);
        ``search`` the resolver's key policy when the caller has it."""
        return cls(
            maps=Maps.from_value(parameter, cfg.get(parameter), registry),
            search=search or ResolverSettings.from_config(cfg, registry).search,
            propagate="generic"
            in [v.lower() for v in split_list(cfg.get("propagate_unmatched_extensions"))],
        )


async def generic_address(settings: GenericSettings, address: str, queue_id: str = "") -> str:
    """One address (internal form) as it is sent; raises TableTempFail."""
    if address == "" or not settings.maps:
        return address
    results = await map_address(
        settings.maps, address, settings.search, propagate=settings.propagate
    )
    if results is None:
        return address
    if len(results) > 1:
        prefix = f"{queue_id}: " if queue_id else ""
        log.warning("%smulti-valued %s entry for %s", prefix, settings.maps.parameter, address)
    return results[0]


async def generic_envelope(
    settings: GenericSettings, sender: str, recipients: Sequence[str], queue_id: str = ""
) -> tuple[str, list[str]]:
    """MAIL FROM and the RCPT TO addresses to send (internal form)."""
    new_sender = await generic_address(settings, sender, queue_id)
    return new_sender, [await generic_address(settings, r, queue_id) for r in recipients]


async def generic_headers(
    settings: GenericSettings, lines: list[bytes], queue_id: str = ""
) -> list[bytes]:
    """The message (lines without line ends) with the addresses of its sender
    and recipient headers mapped; the same list when nothing changed."""
    if not settings.maps:
        return lines

    async def one(address: str, sender: bool) -> str:
        del sender  # generic(5) treats both header classes alike
        return external_form(await generic_address(settings, internal_form(address), queue_id))

    return await rewrite_headers(lines, one)


class GenericRewrite:
    """smtp_generic_maps as the smtp transport's outbound rewrite
    (:class:`mailhost.qmgr.smtp.OutboundRewrite`): envelope addresses and the
    sender/recipient headers of the copy sent; the queue file is unchanged."""

    def __init__(self, settings: GenericSettings) -> None:
        self.settings = settings

    async def address(self, address: str, role: str) -> str:
        del role  # generic(5) maps the sender and the recipients alike
        return await generic_address(self.settings, address)

    async def message(self, message: bytes) -> bytes:
        if not self.settings.maps:
            return message
        lines = message.split(b"\n")
        rewritten = await generic_headers(self.settings, lines)
        return message if rewritten is lines else b"\n".join(rewritten)
