"""cleanup(8) for mail from maildrop (``sendmail``, ``postsuper -r``), called
by pickup (:mod:`mailhost.pickup`) for each file.

In Postfix's order: content inspection on the message as submitted
(header_checks, body_checks, ...: :mod:`mailhost.cleanup.inspect`; the log
lines say ``from local``), qualification with ``myorigin``, canonical
rewriting and masquerading, virtual alias expansion, the headers cleanup
adds to a local submission (:func:`mailhost.cleanup.headers.clean_local`),
and the durable write into ``incoming`` under a new queue id.

The checks' actions, as Postfix applies them to local mail:

* ``REJECT`` with a 5.x.x code: the message is not refused (nobody is
  waiting for an answer) but bounced — queued with every recipient
  recorded as bounced (logged ``to=<...>, relay=none, ..., status=bounced
  (TEXT)``), so the queue manager returns it to the sender; with a 4.x.x
  code, or when a table fails, the maildrop file waits for the next scan;
* ``DISCARD``: nothing is queued and the maildrop file is removed;
* ``HOLD``: the file goes into ``hold``; REDIRECT, FILTER (or main.cf
  ``content_filter``) travel in the queue file; BCC adds a recipient.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, replace
from typing import Protocol

from mailhost.bounce.notify import BounceFailure, Bouncer
from mailhost.cleanup.expand import expand_unique
from mailhost.cleanup.headers import Cleaned, CleanupSettings, clean_local
from mailhost.cleanup.inspect import ContentChecks, Inspected, LogContext
from mailhost.cleanup.milters import LocalMilters, LocalOutcome
from mailhost.cleanup.seams import ExpansionFailed, RecipientExpansion
from mailhost.cleanup.service import log_active
from mailhost.log import daemon_logger
from mailhost.milter.edits import Content
from mailhost.milter.settings import MilterSettings
from mailhost.offload import run_blocking
from mailhost.queue.layout import ACTIVE, HOLD, INCOMING
from mailhost.queue.qfile import Envelope, QueueFile, Recipient, SubmissionKind
from mailhost.queue.status import Notice, RecipientStatus, Status
from mailhost.queue.store import QueueStore
from mailhost.queue.transaction import Transaction
from mailhost.resolve.rewrite import RewriteSettings, cleanup_rewrite
from mailhost.rfc822 import message_id

cleanup_log = daemon_logger("cleanup")


class BouncedLine(Protocol):
    """The queue manager's ``to=<...>, relay=none, ..., status=bounced (TEXT)``
    line for a recipient cleanup bounces itself (a REJECT of local mail);
    supplied by the composition root, which knows the queue manager's
    formatting (mailhost.qmgr.delays)."""

    def __call__(
        self, queue_id: str, recipient: Recipient, dsn: str, reason: str, arrival: float
    ) -> str: ...


class LocalCleanup:
    """See the module docstring."""

    def __init__(
        self,
        store: QueueStore,
        expansion: RecipientExpansion,
        settings: CleanupSettings,
        *,
        bounced_line: BouncedLine,
        bouncer: Bouncer,
        rewrite: RewriteSettings | None = None,
        trigger: Callable[[str], None] | None = None,
        checks: ContentChecks | None = None,
        content_filter: str = "",
        milters: MilterSettings | None = None,
    ) -> None:
        self.store = store
        self.expansion = expansion
        self.settings = settings
        self.bounced_line = bounced_line
        #: bounce(8) for a REJECT of local mail.
        self.bouncer = bouncer
        #: cleanup's canonical mapping and masquerading, as at end of DATA.
        self.rewrite = rewrite
        self.trigger = trigger
        self.checks = checks if checks is not None and checks.active else None
        self.content_filter = content_filter
        #: non_smtpd_milters (mailhost.cleanup.milters).
        self.milters = milters if milters is not None and milters.milters else None

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
        return sender, await self._expand(
            (rcpt, rcpt.original or rcpt.address, target)
            for rcpt, target in zip(qf.envelope.recipients, targets, strict=True)
        )

    async def _expand(self, given: Iterable[tuple[Recipient, str, str]]) -> tuple[Recipient, ...]:
        expanded = await expand_unique(given, self.expansion.expand)
        return tuple(
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
        is durable or the message discarded (pickup removes the maildrop
        file).  Raises RewriteError, ExpansionFailed (a temporary REJECT or
        a check table failure) or OSError, with nothing left in
        ``incoming``."""
        envelope = qf.envelope
        txn = await self.store.begin()
        qid = txn.queue_id
        opened(qid)
        try:
            lines = qf.lines()
            inspected = await self._inspect(qid, lines, sender, recipients)
            if inspected is not None:
                lines = inspected.lines
                # Postfix adds a BCC recipient as with NOTIFY=NEVER.
                bcc = [
                    Recipient(address, original=address, notify=("NEVER",))
                    for address in inspected.actions.bcc
                ]
                recipients += await self._expand((r, r.address, r.address) for r in bcc)
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
            milters = await self._milters(qid, sender, recipients, cleaned, envelope)
            if milters is not None:
                sender, recipients, cleaned = milters.sender, milters.recipients, milters.cleaned
            actions = inspected.actions if inspected is not None else None
            new = replace(
                envelope,
                sender=sender,
                recipients=recipients,
                submission=SubmissionKind.NONE,
                content_filter=(actions.filter if actions else None) or self.content_filter,
                redirect=(actions.redirect if actions else None) or "",
            )
        except BaseException:
            await txn.abort()
            raise
        rejected = inspected is not None and inspected.reject is not None
        if milters is not None and await milters.dispose(txn, committed):
            return qid  # discarded
        if inspected is not None:
            _log(inspected, qid, cleaned.message_id)
            if inspected.actions.discard is not None:
                await txn.abort()
                await committed()
                return qid
            if inspected.actions.hold is not None or rejected:
                # Out of the queue manager's sight until it is complete.
                txn.queue_name = HOLD
        size = await txn.commit(new, cleaned.lines)
        if inspected is not None and inspected.reject is not None:
            reject = inspected.reject
            await self._bounce(qid, new, reject.status, reject.text)
        elif milters is not None and milters.outcome.bounce is not None:
            await self._bounce(qid, new, *milters.outcome.bounce)
        await committed()
        if cleaned.resent_message_id is not None:
            cleanup_log.info("%s: resent-message-id=<%s>", qid, cleaned.resent_message_id)
        if inspected is None:
            cleanup_log.info("%s: message-id=<%s>", qid, cleaned.message_id)
        if txn.queue_name == HOLD:
            return qid  # held, or bounced: not for the queue manager
        log_active(qid, sender, size, len(recipients))
        self._wake(qid)
        return qid

    async def _milters(
        self,
        qid: str,
        sender: str,
        recipients: tuple[Recipient, ...],
        cleaned: Cleaned,
        envelope: Envelope,
    ) -> _Miltered | None:
        """non_smtpd_milters on the cleaned message (cleanup's own
        Received: header, on a submission, is not shown); raises
        MilterDeferred."""
        if self.milters is None:
            return None
        own = 2 if envelope.submission else 0
        given = list(dict.fromkeys(r.original or r.address for r in recipients))
        lines = cleaned.lines
        content = Content.parse(sender, list(given), lines[:own], lines[own:])
        outcome = await LocalMilters(self.milters, qid).run(content)
        kept = {a.lower() for a in outcome.content.recipients}
        result = tuple(r for r in recipients if (r.original or r.address).lower() in kept)
        added = [a for a in outcome.content.recipients if a not in given]
        if added:
            result += await self._expand((Recipient(a, original=a), a, a) for a in added)
        top, rest = outcome.content.received_and_lines()
        return _Miltered(outcome, result, replace(cleaned, lines=top + rest))

    async def _inspect(
        self, qid: str, lines: list[bytes], sender: str, recipients: tuple[Recipient, ...]
    ) -> Inspected | None:
        """The checks' verdict; raises ExpansionFailed for a temporary one."""
        if self.checks is None:
            return None
        last = recipients[-1].original or recipients[-1].address if recipients else None
        context = LogContext("local", sender, last)
        inspected = await self.checks.inspect(qid, lines, context, keep_all=True)
        reject = inspected.reject
        if reject is not None and reject.code < 500:
            _log(inspected, qid, None)
            raise ExpansionFailed(reject, f"{reject}; will retry")
        return inspected

    async def _bounce(self, qid: str, envelope: Envelope, dsn: str, reason: str) -> None:
        """A REJECT of local mail, as Postfix's cleanup bounces it: every
        recipient recorded as bounced (while the file is still in hold), the
        non-delivery notification queued, and the file removed silently.
        Should the notification fail, the file goes to the queue manager,
        which owes the report and sends it."""
        now = time.time()
        records = [
            RecipientStatus(index, Status.BOUNCED, dsn, reason, now, "none")
            for index in range(len(envelope.recipients))
        ]
        await self.store.append_status(qid, records, queues=(HOLD,))
        for rcpt in envelope.recipients:
            line = self.bounced_line(qid, rcpt, dsn, reason, envelope.arrival_time)
            cleanup_log.info("%s", line)
        # The bouncer records its notice in a file of ``active``: out of the
        # queue manager's sight (it only takes files from incoming and
        # deferred); a crash here leaves it for the start-up recovery.
        entry = await self.store.move(qid, ACTIVE, from_queues=(HOLD,), durable=False)
        try:
            qf = await self.store.read_entry(entry)
            await self.bouncer.bounce(qf, qf.unnotified_bounces(), now)
        except BounceFailure as exc:
            cleanup_log.warning("%s: %s", qid, exc)
            await self.store.move(qid, INCOMING, from_queues=(ACTIVE,))
            self._wake(qid)
            return
        done = await self.store.read_entry(entry)
        await run_blocking(entry.path.unlink)
        for record in done.records:
            if isinstance(record, Notice) and record.notice_id:
                self._wake(record.notice_id)

    def _wake(self, queue_id: str) -> None:
        if self.trigger is not None:
            self.trigger(queue_id)


@dataclass
class _Miltered:
    """A local submission after non_smtpd_milters."""

    outcome: LocalOutcome
    recipients: tuple[Recipient, ...]
    cleaned: Cleaned

    @property
    def sender(self) -> str:
        return self.outcome.content.sender

    async def dispose(self, txn: Transaction, committed: Callable[[], Awaitable[None]]) -> bool:
        """Discard (True: nothing is queued) or hold (also a message to be
        bounced, until its recipients are marked)."""
        if self.outcome.discard:
            await txn.abort()
            await committed()
            return True
        if self.outcome.hold or self.outcome.bounce is not None:
            txn.queue_name = HOLD
        return False


def _log(inspected: Inspected, queue_id: str, msgid: str | None) -> None:
    for line in inspected.header_log:
        cleanup_log.info("%s", line)
    if inspected.header_end and msgid is not None:
        cleanup_log.info("%s: message-id=<%s>", queue_id, msgid)
    for line in inspected.body_log:
        cleanup_log.info("%s", line)
