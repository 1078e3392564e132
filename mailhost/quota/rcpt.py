"""The quota check at RCPT TO, after virtual alias expansion.

Postfix with Dovecot's quota-status policy service asks about the address
given at RCPT, before cleanup expands aliases; mailhost asks about every
final mailbox instead (the same expansion cleanup will do after DATA).  The
recipient is refused only when **every** final recipient is a Maildir
delivered by the ``virtual`` transport whose mailbox cannot take a message
of the client's declared ``SIZE=`` (1 byte when none was declared, as
quota-status tests): a fan-out with some full members is accepted and those
members are handled at delivery (bounced 5.2.2 or deferred 4.2.2).

The reply is ``mailhost_quota_status_overquota`` (or ``..._toolarge`` when
the declared size exceeds even the whole limit), worded as Postfix words a
numeric policy answer.  A table failure on the way is ``451 4.3.0 <ADDR>:
Temporary lookup failure`` as every other RCPT lookup; an alias expansion
problem is left to end of DATA, where cleanup reports it.  ``maildirsize`` is
read off the event loop and never written from here, through descriptors
below ``virtual_mailbox_base`` (:mod:`mailhost.delivery.dirfd`).

A mailbox whose usage cannot be read — a ``maildirsize``, ``new/``, ``cur/``
or a directory above them that is a symbolic link, an I/O error — is a
temporary failure worded as Postfix words Dovecot's quota-status answer for
the same case (``action=DEFER_IF_PERMIT Internal quota calculation error``,
recorded in tests/delivery/postfix_symlinks.json): ``450 4.7.1 <ADDR>:
Recipient address rejected: Internal quota calculation error``, and a
warning naming the file is logged.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mailhost.address import external_form
from mailhost.config import Config
from mailhost.delivery.paths import check_mailbox_base, mailbox_path
from mailhost.delivery.status import DeliveryError, strerror
from mailhost.errors import ConfigError, TableTempFail
from mailhost.log import logger
from mailhost.quota.enforce import current_quota
from mailhost.quota.maildirsize import QuotaLimits, QuotaState
from mailhost.quota.policy import QuotaValueError, fits
from mailhost.quota.settings import QuotaConfig, RefusalTemplate
from mailhost.reply import Reply
from mailhost.resolve import replies
from mailhost.resolve.aliases import AliasExpansionError
from mailhost.resolve.classify import AddressClass
from mailhost.resolve.resolver import Resolution, Resolver
from mailhost.resolve.trace import Trace
from mailhost.resolve.transport_maps import Router
from mailhost.tables.registry import TableRegistry

log = logger("smtpd")

#: The transport whose deliveries mailhost's quota governs.
VIRTUAL = "virtual"

#: What Postfix answers with Dovecot's quota-status when the usage cannot
#: be read (DEFER_IF_PERMIT, recorded from Postfix 3.7 + Dovecot 2.3).
CALCULATION_ERROR = RefusalTemplate(450, "4.7.1", "Internal quota calculation error")


@dataclass(frozen=True)
class MailboxQuota:
    """One final mailbox's quota as seen now."""

    address: str
    maildir: Path
    configured: QuotaLimits | None
    state: QuotaState


class RcptQuotaCheck:
    """Judge a recipient accepted by the resolver against its mailboxes' quota."""

    def __init__(
        self, resolver: Resolver, router: Router, quota: QuotaConfig, mailbox_base: str
    ) -> None:
        self.resolver = resolver
        self.router = router
        self.quota = quota
        self.mailbox_base = mailbox_base

    @classmethod
    def from_config(
        cls, cfg: Config, registry: TableRegistry, resolver: Resolver
    ) -> RcptQuotaCheck | None:
        """None when quota is off (``virtual_mailbox_limit_maps`` empty)."""
        quota = QuotaConfig.from_config(cfg, registry)
        if quota is None:
            return None
        router = Router.from_config(cfg, registry, resolver)
        return cls(resolver, router, quota, cfg.get("virtual_mailbox_base"))

    async def mailbox(self, record: Resolution, trace: Trace | None = None) -> MailboxQuota | None:
        """The quota of a final recipient delivered into a Maildir by the
        virtual transport; None for anything else.  Raises TableTempFail,
        QuotaValueError."""
        if record.address_class is not AddressClass.VIRTUAL_MAILBOX or record.mailbox is None:
            return None
        if not record.mailbox.endswith("/"):
            return None  # mbox: no Maildir++ quota
        route = await self.router.route(record.final)
        if route.transport != VIRTUAL:
            return None  # another agent (LMTP to Dovecot ...) enforces its own
        try:
            check_mailbox_base(self.mailbox_base)
            where = mailbox_path(self.mailbox_base, record.mailbox, record.final)
        except (DeliveryError, ConfigError):
            return None  # virtual(8) will defer it; nothing to judge here
        configured = await self.quota.limits_for(record.final, self.resolver.settings.search)
        state = await current_quota(where.path, configured, persist=False, base=where.base)
        if trace is not None:
            trace.add(
                "decision",
                "quota",
                record.final,
                outcome=f"{state.usage.bytes} bytes, {state.usage.count} messages, "
                f"limit {state.limits.bytes or 'none'}",
            )
        return MailboxQuota(record.final, where.path, configured, state)

    async def check(
        self, recipient: str, size: int = 0, trace: Trace | None = None
    ) -> Reply | None:
        """None to accept ``recipient`` (internal form as given at RCPT TO,
        already accepted by the resolver), else the refusal for a declared
        ``size``; the reply names the address as the client wrote it."""
        verdict = await self.judge(recipient, size, trace)
        if isinstance(verdict, RefusalTemplate):
            reply = verdict.reply(external_form(recipient))
            if trace is not None:
                trace.add(
                    "decision", "quota", self.resolver.canonical(recipient), outcome=str(reply)
                )
            return reply
        return verdict

    async def judge(
        self, recipient: str, size: int = 0, trace: Trace | None = None
    ) -> RefusalTemplate | Reply | None:
        """What :meth:`check` decides, before it is worded for smtpd: None
        (accept), the quota-status refusal, or a temporary failure reply
        (also what mailhost's quota-status service answers from)."""
        if recipient.lower() == "postmaster":
            return None  # smtpd accepts the bare postmaster unconditionally
        shown = external_form(recipient)
        address = self.resolver.canonical(recipient)
        try:
            finals = await self.resolver.expand(address, resolve=True, trace=trace)
        except AliasExpansionError:
            return None  # cleanup answers at end of DATA
        except TableTempFail:
            return replies.temporary_lookup_failure(shown)
        wanted = max(1, size)
        policy = self.quota.policy
        too_large = True
        for record in finals:
            try:
                mailbox = await self.mailbox(record, trace)
            except TableTempFail:
                return replies.temporary_lookup_failure(shown)
            except QuotaValueError as exc:
                log.warning("recipient %s: %s", record.final, exc)
                return None  # delivery defers it with a configuration error
            except OSError as exc:
                log.warning(
                    "recipient %s: quota check failed: %s: %s",
                    record.final, exc.filename or record.mailbox, strerror(exc),
                )  # fmt: skip
                return CALCULATION_ERROR.reply(shown)
            if mailbox is None:
                return None
            limits, usage = mailbox.state.limits, mailbox.state.usage
            if fits(limits, usage, wanted, policy):
                return None
            too_large = too_large and bool(limits.bytes) and wanted > limits.bytes
        if not finals:
            return None
        template = self.quota.toolarge if too_large and self.quota.toolarge else None
        return template or self.quota.overquota
