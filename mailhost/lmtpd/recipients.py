"""lmtpd's RCPT TO: is the address a mailbox of this store, and is there
room in it?

The answer is the resolver's, as for inbound SMTP (:mod:`mailhost.resolve`):
the address is made canonical, its class must be one this host delivers
(local, virtual alias or virtual mailbox domain) and the address listed
there (what reject_unlisted_recipient checks), then it is expanded through
virtual_alias_maps exactly as cleanup expands it.  An edge in front of the
store normally hands over addresses it has already expanded, but a direct
mailbox address and an alias both work.  Every final address must be one
this store delivers itself — routed (transport_maps, the class's default
transport) to ``virtual`` or ``local`` and listed in its table — since an
LMTP store has no queue to relay from; anything else is an unknown user.

Refusals are worded as Dovecot's LMTP server words them
(:mod:`mailhost.lmtpd.replies`): ``550 5.1.1`` for an unknown user, ``552
5.2.2`` when every final mailbox is over quota (the RCPT-time quota
decision of mailhost's smtpd, :mod:`mailhost.quota.rcpt`, with the client's
``SIZE=`` or one byte, as Dovecot's ``lmtp_rcpt_check_quota``), ``451 4.3.0``
for a table outage (logged, never shown).
"""

from __future__ import annotations

from dataclasses import dataclass

from mailhost.address import external_form
from mailhost.config import Config
from mailhost.errors import TableTempFail
from mailhost.lmtpd import replies
from mailhost.log import daemon_logger
from mailhost.quota.rcpt import RcptQuotaCheck
from mailhost.quota.settings import RefusalTemplate
from mailhost.reply import Reply
from mailhost.resolve.aliases import AliasExpansionError
from mailhost.resolve.classify import AddressClass
from mailhost.resolve.resolver import Resolver, ResolverSettings
from mailhost.resolve.transport_maps import Router
from mailhost.tables.registry import TableRegistry

log = daemon_logger("lmtpd")

#: The address classes whose mail this host takes (quota-status's set).
FINAL_CLASSES = frozenset(
    {AddressClass.LOCAL, AddressClass.VIRTUAL_ALIAS, AddressClass.VIRTUAL_MAILBOX}
)
#: The transports an LMTP store delivers with itself.
STORE_TRANSPORTS = frozenset({"virtual", "local"})


@dataclass(frozen=True)
class Final:
    """One mailbox a recipient's copy goes to."""

    address: str
    transport: str
    nexthop: str


@dataclass(frozen=True)
class Accepted:
    """A recipient accepted at RCPT TO: as the client gave it, its canonical
    form (the ``orig_to``) and the mailboxes it expands to."""

    recipient: str
    original: str
    finals: tuple[Final, ...]


class StoreRecipients:
    """See the module docstring."""

    def __init__(self, resolver: Resolver, router: Router, quota: RcptQuotaCheck | None) -> None:
        self.resolver = resolver
        self.router = router
        self.quota = quota

    @classmethod
    def from_config(cls, cfg: Config, registry: TableRegistry) -> StoreRecipients:
        resolver = Resolver(ResolverSettings.from_config(cfg, registry))
        return cls(
            resolver,
            Router.from_config(cfg, registry, resolver),
            RcptQuotaCheck.from_config(cfg, registry, resolver),
        )

    async def judge(self, recipient: str, size: int = 0) -> Accepted | Reply:
        """The accepted recipient, or the reply refusing it."""
        try:
            accepted = await self._resolve(recipient)
        except TableTempFail as exc:
            log.warning("recipient %s: %s", external_form(recipient), exc)
            return replies.temporary_failure(recipient)
        except AliasExpansionError as exc:
            log.warning("recipient %s: %s", external_form(recipient), exc.log_text)
            return exc.reply
        if isinstance(accepted, Reply) or self.quota is None:
            return accepted
        verdict = await self.quota.judge(recipient, size)
        if isinstance(verdict, RefusalTemplate):
            return replies.over_quota(recipient, bounce=self.quota.quota.policy.bounce)
        if isinstance(verdict, Reply):
            log.warning("recipient %s: quota check: %s", external_form(recipient), verdict)
            return replies.temporary_failure(recipient)
        return accepted

    async def _resolve(self, recipient: str) -> Accepted | Reply:
        resolver = self.resolver
        shown = external_form(recipient)
        address = resolver.canonical(recipient)
        if (await resolver.classify(address)).address_class not in FINAL_CLASSES:
            return replies.user_unknown(recipient)
        if await resolver.unlisted_reply(address, shown) is not None:
            return replies.user_unknown(recipient)
        finals: list[Final] = []
        for record in await resolver.expand(address, resolve=True):
            if record.address_class not in FINAL_CLASSES:
                return replies.user_unknown(recipient)  # an alias to elsewhere: not ours
            if await resolver.unlisted_reply(record.final, shown) is not None:
                return replies.user_unknown(recipient)
            route = await self.router.route(record.final)
            if route.transport not in STORE_TRANSPORTS:
                return replies.user_unknown(recipient)
            finals.append(Final(record.final, route.transport, route.nexthop))
        if not finals:
            return replies.user_unknown(recipient)
        return Accepted(recipient, record_original(address, recipient), tuple(finals))


def record_original(canonical: str, given: str) -> str:
    """The original recipient the delivery records (X-Original-To, orig_to):
    the address as given when it has a domain, else its canonical form."""
    return given if "@" in given else canonical
