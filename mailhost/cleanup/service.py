"""cleanup(8) for both of its callers: smtpd at end of DATA, pickup for each
maildrop file.

One :class:`Cleanup` per configuration generation owns, in Postfix's order:

1. canonical rewriting and masquerading of envelope and headers
   (:class:`~mailhost.cleanup.seams.CleanupRewrite`);
2. virtual alias expansion, one copy per distinct (original, final)
   (:func:`mailhost.cleanup.expand.expand_unique`);
3. for local submissions, the headers cleanup adds
   (:func:`mailhost.cleanup.headers.clean_local`);
4. the durable queue write — or, for SMTP mail whose recipients all go to
   the virtual transport, the hand-off to inline delivery
   (:class:`~mailhost.cleanup.seams.InlineDelivery`), with only what was not
   delivered queued;
5. the ``cleanup`` (``message-id=``) and ``qmgr`` (``from=..., size=,
   nrcpt= (queue active)``) log lines, under those daemon names as log
   analysers (pflogsumm) expect;
6. the queue manager's wake-up (Postfix's cleanup triggers qmgr after a
   file is committed).

Where header_checks, body_checks and non_smtpd_milters will plug in: between
steps 3 and 4, on the content list both paths build.
"""

from __future__ import annotations

import errno
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace

from mailhost.address import external_form
from mailhost.cleanup.expand import expand_unique
from mailhost.cleanup.headers import Cleaned, CleanupSettings, clean_local
from mailhost.cleanup.seams import (
    CleanupRewrite,
    ClientInfo,
    ExpansionFailed,
    FinalRecipient,
    InlineDelivery,
    InlinePlan,
    MessageActions,
    QueueSink,
    QueueTransaction,
    RecipientExpansion,
    Submission,
)
from mailhost.errors import MailhostError
from mailhost.log import daemon_logger, logger
from mailhost.queue.qfile import QueueFile, Recipient, SubmissionKind
from mailhost.queue.store import QueueStore
from mailhost.reply import NO_DISK_SPACE, QUEUE_WRITE_ERROR, Reply
from mailhost.resolve.rewrite import RewriteSettings, cleanup_rewrite
from mailhost.rfc822 import message_id

log = logger("cleanup")
cleanup_log = daemon_logger("cleanup")
qmgr_log = daemon_logger("qmgr")


@dataclass(frozen=True)
class Message:
    """What smtpd hands cleanup at end of DATA."""

    sender: str
    #: the accepted recipients, as given at RCPT TO.
    recipients: Sequence[str]
    client: ClientInfo
    #: the message as received (header section and body, no line ends).
    lines: list[bytes]
    #: smtpd's ``Received:`` header lines, put above the (rewritten) message.
    received: list[bytes]
    arrival_time: float
    mail_params: tuple[tuple[str, str], ...] = ()
    #: What smtpd's access(5) actions asked (HOLD, DISCARD, REDIRECT, BCC,
    #: FILTER, PREPEND); cleanup's own header/body checks add to it.
    actions: MessageActions = field(default_factory=MessageActions)


class Cleanup:
    """See the module docstring."""

    def __init__(
        self,
        queue: QueueSink,
        expansion: RecipientExpansion,
        *,
        rewrite: CleanupRewrite | None = None,
        inline: InlineDelivery | None = None,
        trigger: Callable[[str], None] | None = None,
    ) -> None:
        self.queue = queue
        self.expansion = expansion
        self.rewrite = rewrite
        self.inline = inline
        #: wakes the queue manager for a committed queue id.
        self.trigger = trigger

    async def open(self) -> QueueTransaction:
        """A new queue file: its id is the message's from now on (smtpd
        opens one at the first accepted recipient, as Postfix does)."""
        return await self.queue.open()

    async def submit(self, txn: QueueTransaction, message: Message) -> None:
        """Cleanup for SMTP mail; returns once the message is durable (queued,
        or delivered inline); raises :class:`ExpansionFailed` with the
        end-of-DATA reply otherwise (the queue file is then removed)."""
        qid = txn.queue_id
        sender, lines = message.sender, message.lines
        try:
            targets: Sequence[str] = message.recipients
            if self.rewrite is not None:
                done = await self.rewrite.rewrite(
                    qid, sender, message.recipients, lines, message.client
                )
                sender, targets, lines = done.sender, done.recipients, done.lines
            expanded = await expand_unique(
                zip(message.recipients, message.recipients, targets, strict=True),
                self.expansion.expand,
            )
        except ExpansionFailed:
            await txn.abort()
            raise
        content = [*message.received, *lines]
        submission = Submission(
            queue_id=qid,
            sender=sender,
            recipients=tuple(FinalRecipient(original, final) for _, original, final in expanded),
            client=message.client,
            arrival_time=message.arrival_time,
            mail_params=message.mail_params,
        )
        plan = await self.inline.plan(submission, content) if self.inline else None
        if plan is not None:
            await self._deliver_inline(txn, submission, content, message.lines, plan)
            return
        try:
            size = await txn.commit(submission, content)
        except (OSError, MailhostError) as exc:
            raise await _commit_failed(txn, exc) from None
        log_queued(
            qid, message_id(message.lines), submission.sender, size, len(submission.recipients)
        )
        self._wake(qid)

    async def _deliver_inline(
        self,
        txn: QueueTransaction,
        submission: Submission,
        content: list[bytes],
        lines: list[bytes],
        plan: InlinePlan,
    ) -> None:
        """Deliver now; queue only the recipients that were not delivered."""
        qid = submission.queue_id
        log_queued(qid, message_id(lines), submission.sender, plan.size, len(submission.recipients))
        left = await plan.deliver()
        if not left:
            await quiet_abort(txn)
            return
        rest = replace(submission, recipients=tuple(submission.recipients[i] for i in left))
        try:
            await txn.commit(rest, content)
        except (OSError, MailhostError) as exc:
            # The client will send it again; the copies already delivered
            # will then be delivered twice (nothing is lost).
            raise await _commit_failed(txn, exc) from None
        self._wake(qid)

    def _wake(self, queue_id: str) -> None:
        if self.trigger is not None:
            self.trigger(queue_id)


class LocalCleanup:
    """Cleanup for mail from maildrop (``sendmail``, ``postsuper -r``):
    qualification with ``myorigin``, rewriting, alias expansion, the headers
    cleanup adds to a local submission, and the write into ``incoming``
    under a new queue id."""

    def __init__(
        self,
        store: QueueStore,
        expansion: RecipientExpansion,
        settings: CleanupSettings,
        *,
        rewrite: RewriteSettings | None = None,
        trigger: Callable[[str], None] | None = None,
    ) -> None:
        self.store = store
        self.expansion = expansion
        self.settings = settings
        #: cleanup's canonical mapping and masquerading, as at end of DATA.
        self.rewrite = rewrite
        self.trigger = trigger

    async def envelope(self, qf: QueueFile) -> tuple[str, tuple[Recipient, ...]]:
        """The sender and the alias-expanded recipients of a maildrop file:
        qualified with myorigin, then canonical-mapped and masqueraded
        (cleanup's order, before virtual alias expansion); raises
        RewriteError, ExpansionFailed or another MailhostError."""
        qualifier = self.settings.qualifier
        sender = qualifier.address(qf.envelope.sender)
        targets = [qualifier.address(r.address) for r in qf.envelope.recipients]
        if self.rewrite is not None:
            done = await cleanup_rewrite(self.rewrite, sender, targets, [])
            sender, targets = done.sender, list(done.recipients)
        expanded = await expand_unique(
            (
                (rcpt, rcpt.original or rcpt.address, target)
                for rcpt, target in zip(qf.envelope.recipients, targets, strict=True)
            ),
            self.expansion.expand,
        )
        return sender, tuple(
            replace(rcpt, address=final, original=original) for rcpt, original, final in expanded
        )

    async def submit(
        self,
        qf: QueueFile,
        *,
        owner: int,
        sender: str,
        recipients: tuple[Recipient, ...],
        opened: Callable[[str], None],
        committed: Callable[[], Awaitable[None]],
    ) -> str:
        """Write the new queue file; the new queue id.  ``opened`` runs once
        the id is known (pickup's own log line), ``committed`` once the file
        is durable (pickup removes the maildrop file).  Raises RewriteError
        or OSError, with nothing left in ``incoming``."""
        envelope = qf.envelope
        txn = await self.store.begin()
        qid = txn.queue_id
        opened(qid)
        try:
            lines = qf.lines()
            if self.rewrite is not None:
                # Header addresses as read (local submissions are always
                # rewritten); the headers cleanup adds below are not.
                done = await cleanup_rewrite(self.rewrite, sender, [], lines, queue_id=qid)
                lines = done.lines
            if envelope.submission:
                cleaned = clean_local(
                    lines,
                    queue_id=qid,
                    sender=sender,
                    full_name=envelope.full_name,
                    uid=owner,
                    arrival=envelope.arrival_time,
                    settings=self.settings,
                    local=envelope.submission is SubmissionKind.LOCAL,
                )
            else:
                cleaned = Cleaned(lines, message_id(lines), None)
            new = replace(
                envelope, sender=sender, recipients=recipients, submission=SubmissionKind.NONE
            )
        except BaseException:
            await txn.abort()
            raise
        size = await txn.commit(new, cleaned.lines)
        await committed()
        if cleaned.resent_message_id is not None:
            cleanup_log.info("%s: resent-message-id=<%s>", qid, cleaned.resent_message_id)
        log_queued(qid, cleaned.message_id, sender, size, len(recipients))
        if self.trigger is not None:
            self.trigger(qid)
        return qid


def log_queued(queue_id: str, msgid: str, sender: str, size: int, nrcpt: int) -> None:
    """Postfix writes these two from cleanup(8) and qmgr(8); log analysers
    (pflogsumm) key on those daemon names, so the lines carry them."""
    cleanup_log.info("%s: message-id=<%s>", queue_id, msgid)
    qmgr_log.info(
        "%s: from=<%s>, size=%d, nrcpt=%d (queue active)",
        queue_id,
        external_form(sender),
        size,
        nrcpt,
    )


async def _commit_failed(txn: QueueTransaction, exc: OSError | MailhostError) -> ExpansionFailed:
    smtpd = logger("smtpd")
    smtpd.warning("%s: queue file write error: %s", txn.queue_id, exc)
    await quiet_abort(txn)
    return ExpansionFailed(queue_error(exc) if isinstance(exc, OSError) else QUEUE_WRITE_ERROR)


def queue_error(exc: OSError) -> Reply:
    """The reply for a queue file that could not be written."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return NO_DISK_SPACE
    return QUEUE_WRITE_ERROR


async def quiet_abort(txn: QueueTransaction) -> None:
    """Remove the queue file; a failure to do so is logged, not raised."""
    try:
        await txn.abort()
    except (OSError, MailhostError) as exc:
        logger("smtpd").warning("%s: cannot remove queue file: %s", txn.queue_id, exc)
