"""cleanup(8) for SMTP mail, called by smtpd at end of DATA (mail from
maildrop goes through :mod:`mailhost.cleanup.local`).

One :class:`Cleanup` per configuration generation owns, in Postfix's order:

1. content inspection and the actions it and smtpd's access maps asked for
   (below);
2. canonical rewriting and masquerading of envelope and headers
   (:class:`~mailhost.cleanup.seams.CleanupRewrite`);
3. virtual alias expansion, one copy per distinct (original, final)
   (:func:`mailhost.cleanup.expand.expand_unique`);
4. the durable queue write — or, for SMTP mail whose recipients all go to
   the virtual transport, the hand-off to inline delivery
   (:class:`~mailhost.cleanup.seams.InlineDelivery`), with only what was not
   delivered queued;
5. the ``cleanup`` (``message-id=``) and ``qmgr`` (``from=..., size=,
   nrcpt= (queue active)``) log lines, under those daemon names as log
   analysers (pflogsumm) expect;
6. the queue manager's wake-up (Postfix's cleanup triggers qmgr after a
   file is committed).

Content inspection (header_checks, mime_header_checks, nested_header_checks,
body_checks: :mod:`mailhost.cleanup.inspect`) runs first, on the content as
received (smtpd's ``Received:`` header included), as Postfix's cleanup
inspects a header before it rewrites it.  Its actions and those smtpd's
access maps asked for (``Message.actions``) are applied at the queue write
(:mod:`mailhost.cleanup.actions`): DISCARD queues nothing (the client still
gets 250), HOLD writes into ``hold``, REDIRECT and FILTER (or main.cf
``content_filter``) are recorded in the queue file for the queue manager,
BCC adds a recipient, PREPEND puts header lines above the message's own.
Such a message is never delivered inline.
"""

from __future__ import annotations

import errno
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from mailhost.address import external_form
from mailhost.cleanup import actions as apply
from mailhost.cleanup.expand import expand_unique
from mailhost.cleanup.inspect import ContentChecks, Inspected, LogContext
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
from mailhost.config import Config
from mailhost.errors import MailhostError
from mailhost.log import daemon_logger, logger
from mailhost.queue.layout import INCOMING
from mailhost.queue.qfile import LINE_LENGTH_LIMIT
from mailhost.queue.spool import HEADER_SIZE_LIMIT, Body, Content
from mailhost.reply import NO_DISK_SPACE, QUEUE_WRITE_ERROR, Reply
from mailhost.rfc822 import message_id

log = logger("cleanup")
cleanup_log = daemon_logger("cleanup")
qmgr_log = daemon_logger("qmgr")


@dataclass(frozen=True)
class SpoolSettings:
    """Where a message's body is spooled while it is received (None: the
    system's temporary directory) and where its header section ends."""

    directory: Path | None = None
    header_size_limit: int = HEADER_SIZE_LIMIT
    line_length_limit: int = LINE_LENGTH_LIMIT

    @classmethod
    def from_config(cls, cfg: Config) -> SpoolSettings:
        return cls(
            Path(cfg.get("queue_directory")) / INCOMING,
            cfg.get_int("header_size_limit"),
            cfg.get_int("line_length_limit"),
        )


@dataclass(frozen=True)
class Message:
    """What smtpd hands cleanup at end of DATA."""

    sender: str
    #: the accepted recipients, as given at RCPT TO.
    recipients: Sequence[str]
    client: ClientInfo
    #: the message as received: the header section in memory, the body
    #: spooled (:mod:`mailhost.queue.spool`; discarding it is smtpd's).
    content: Content
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
        checks: ContentChecks | None = None,
        content_filter: str = "",
        spool: SpoolSettings | None = None,
    ) -> None:
        self.queue = queue
        #: where and how smtpd keeps a message being received.
        self.spool = spool if spool is not None else SpoolSettings()
        self.expansion = expansion
        self.rewrite = rewrite
        self.inline = inline
        #: wakes the queue manager for a committed queue id.
        self.trigger = trigger
        #: header_checks, body_checks and friends (None: no inspection).
        self.checks = checks if checks is not None and checks.active else None
        #: main.cf content_filter (this listener's), unless FILTER overrides it.
        self.content_filter = content_filter

    def new_body(self) -> Body:
        """An empty body for DATA (its spool file, once needed, goes into
        the queue's ``incoming``, as Postfix's smtpd streams to cleanup)."""
        return Body(self.spool.directory, line_length_limit=self.spool.line_length_limit)

    async def open(self) -> QueueTransaction:
        """A new queue file: its id is the message's from now on (smtpd
        opens one at the first accepted recipient, as Postfix does)."""
        return await self.queue.open()

    async def submit(self, txn: QueueTransaction, message: Message) -> None:
        """Cleanup for SMTP mail; returns once the message is durable (queued,
        delivered inline, or discarded); raises :class:`ExpansionFailed` with
        the end-of-DATA reply otherwise (the queue file is then removed)."""
        qid = txn.queue_id
        actions = apply.copy_actions(message.actions)
        # smtpd's PREPEND headers come before its Received: header, and are
        # inspected with the rest (Postfix smtpd writes them first).
        content = message.content.with_header(
            [*apply.prepended(actions), *message.received, *message.content.header]
        )
        inspected: Inspected | None = None
        if self.checks is not None:
            inspected, content = await self.checks.inspect_content(
                qid, content, smtp_context(message)
            )
        try:
            await self._submit(txn, message, content, actions, inspected)
        finally:
            if inspected is not None and content.body is not message.content.body:
                content.discard()  # the inspection's copy of the body

    async def _submit(
        self,
        txn: QueueTransaction,
        message: Message,
        content: Content,
        actions: MessageActions,
        inspected: Inspected | None,
    ) -> None:
        qid = txn.queue_id
        sender = message.sender
        if inspected is not None:
            log_inspection(qid, inspected, message_id(content.header))
            if inspected.reject is not None:
                await quiet_abort(txn)
                raise ExpansionFailed(inspected.reject)
            actions.merge(inspected.actions)
        if actions.discard is not None:
            await quiet_abort(txn)
            return
        try:
            targets: Sequence[str] = message.recipients
            if self.rewrite is not None:
                done = await self.rewrite.rewrite(
                    qid, sender, message.recipients, content.header, message.client
                )
                sender, targets = done.sender, done.recipients
                content = content.with_header(done.lines)
            # Postfix adds a BCC recipient as with NOTIFY=NEVER.
            notify = [()] * len(message.recipients) + [("NEVER",)] * len(actions.bcc)
            given = [*message.recipients, *actions.bcc]
            expanded = await expand_unique(
                zip(notify, given, [*targets, *actions.bcc], strict=True),
                self.expansion.expand,
            )
        except ExpansionFailed:
            await txn.abort()
            raise
        submission = apply.route(
            Submission(
                queue_id=qid,
                sender=sender,
                recipients=tuple(
                    FinalRecipient(orig, final, never) for never, orig, final in expanded
                ),
                client=message.client,
                arrival_time=message.arrival_time,
                mail_params=message.mail_params,
            ),
            actions,
            self.content_filter,
        )
        msgid = message_id(message.content.header)
        plan = None
        if self.inline is not None and apply.may_deliver_inline(submission):
            plan = await self.inline.plan(submission, content)
        if plan is not None and not plan.queue_first:
            await self._deliver_inline(txn, submission, content, None if inspected else msgid, plan)
            return
        try:
            size = await txn.commit(submission, content)
        except (OSError, MailhostError) as exc:
            raise await _commit_failed(txn, exc) from None
        if inspected is None:
            cleanup_log.info("%s: message-id=<%s>", qid, msgid)
        if submission.hold:
            return  # the queue manager does not see a held message
        log_active(qid, submission.sender, size, len(submission.recipients))
        if plan is not None:
            plan.queued()  # an idle worker's queue manager delivers it
            return
        self._wake(qid)

    async def _deliver_inline(
        self,
        txn: QueueTransaction,
        submission: Submission,
        content: Content,
        msgid: str | None,
        plan: InlinePlan,
    ) -> None:
        """Deliver now; queue only the recipients that were not delivered.
        ``msgid`` None: the message-id line was logged by the inspection."""
        qid = submission.queue_id
        if msgid is not None:
            cleanup_log.info("%s: message-id=<%s>", qid, msgid)
        log_active(qid, submission.sender, plan.size, len(submission.recipients))
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


def log_active(queue_id: str, sender: str, size: int, nrcpt: int) -> None:
    """qmgr's line for a message it takes on.  Postfix writes it from
    qmgr(8) (and ``message-id=`` from cleanup(8)); log analysers (pflogsumm)
    key on those daemon names, so the lines carry them."""
    qmgr_log.info(
        "%s: from=<%s>, size=%d, nrcpt=%d (queue active)",
        queue_id,
        external_form(sender),
        size,
        nrcpt,
    )


def smtp_context(message: Message) -> LogContext:
    """How the inspection's log lines name an SMTP client and its envelope."""
    client = message.client
    return LogContext(
        origin=f"{client.name}[{client.address}]",
        sender=message.sender,
        recipient=message.recipients[-1] if message.recipients else None,
        protocol=client.protocol,
        helo=client.helo,
    )


def log_inspection(queue_id: str, inspected: Inspected, msgid: str | None) -> None:
    """The inspection's action lines, with cleanup's ``message-id=`` line
    between the header's and the body's, where Postfix logs it (``msgid``
    None: logged by the caller later)."""
    for line in inspected.header_log:
        cleanup_log.info("%s", line)
    if inspected.header_end and msgid is not None:
        cleanup_log.info("%s: message-id=<%s>", queue_id, msgid)
    for line in inspected.body_log:
        cleanup_log.info("%s", line)


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
