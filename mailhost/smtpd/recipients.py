"""smtpd's production recipient check after the restriction stages: the
resolver's address class (spec 3.5) and the per-mailbox quota after alias
expansion (:mod:`mailhost.quota.rcpt`) behind
:class:`~mailhost.smtpd.seams.RecipientPolicy`."""

from __future__ import annotations

from mailhost.address import external_form
from mailhost.cleanup.seams import ClientInfo
from mailhost.errors import TableTempFail
from mailhost.quota.rcpt import RcptQuotaCheck
from mailhost.reply import Reply
from mailhost.resolve import replies
from mailhost.resolve.resolver import Resolver


class ResolverPolicy:
    """``check_recipient`` at RCPT TO, after the restriction stages accepted
    the recipient: its address class must be known (a table failure answers
    ``451 4.3.0``), then the quota."""

    def __init__(self, resolver: Resolver, quota: RcptQuotaCheck | None = None) -> None:
        self.resolver = resolver
        self.quota = quota

    async def check_recipient(
        self, recipient: str, sender: str, client: ClientInfo, size: int = 0
    ) -> Reply | None:
        if recipient.lower() == "postmaster":
            return None
        try:
            await self.resolver.classify(recipient)
        except TableTempFail:
            return replies.temporary_lookup_failure(external_form(recipient))
        if self.quota is not None:
            # Per-mailbox quota, judged on the final mailboxes (mailhost.quota.rcpt).
            return await self.quota.check(recipient, size)
        return None
