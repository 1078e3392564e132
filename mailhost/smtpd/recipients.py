"""smtpd's production recipient check and address search: the resolver
(spec 3.5) and the per-mailbox quota after alias expansion
(:mod:`mailhost.quota.rcpt`) behind
:class:`~mailhost.smtpd.seams.RecipientPolicy`; mail_addr_find(3)'s key
sequence behind :data:`~mailhost.smtpd.seams.AddressSearch` (for
smtpd_sender_login_maps)."""

from __future__ import annotations

from mailhost.cleanup.seams import ClientInfo
from mailhost.quota.rcpt import RcptQuotaCheck
from mailhost.reply import Reply
from mailhost.resolve.keys import SearchPolicy, find
from mailhost.resolve.resolver import Resolver
from mailhost.resolve.restrictions import RestrictionClient
from mailhost.smtpd.seams import AddressSearch
from mailhost.tables.maps import Maps


class ResolverPolicy:
    """``check_recipient`` at RCPT TO: the resolver's verdict, then the quota."""

    def __init__(self, resolver: Resolver, quota: RcptQuotaCheck | None = None) -> None:
        self.resolver = resolver
        self.quota = quota

    async def check_recipient(
        self, recipient: str, sender: str, client: ClientInfo, size: int = 0
    ) -> Reply | None:
        verdict = await self.resolver.check_rcpt(
            recipient, RestrictionClient(client.address, client.sasl_username)
        )
        if not verdict.accepted:
            return verdict.reply
        if self.quota is not None:
            # Per-mailbox quota, judged on the final mailboxes (mailhost.quota.rcpt).
            return await self.quota.check(recipient, size)
        return None


def address_search(policy: SearchPolicy) -> AddressSearch:
    """mail_addr_find(3) as the resolver implements it (spec 3.3)."""

    async def search(maps: Maps, address: str) -> str | None:
        hit = await find(maps, address, policy)
        return hit.value if hit is not None else None

    return search
