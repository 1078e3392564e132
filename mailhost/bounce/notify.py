"""bounce(8)'s decisions and the queueing of notifications.

Called by the queue manager after a delivery attempt (see
:mod:`mailhost.qmgr.manager`), with the recipients that bounced (a 5.x.x
result, or expiry) and still owe a report, or — when ``delay_warning_time``
has passed — the recipients still deferred.  What Postfix 3.7 does, observed
(tests/bounce/postfix_bounce.json):

* one notification per message and attempt, listing every recipient it
  covers (a sender notification lists only those whose DSN NOTIFY asks for
  it: default or ``FAILURE`` for a non-delivery report, default or ``DELAY``
  for a delay warning; ``NOTIFY=NEVER`` gets none);
* to the envelope sender from the null sender: ``QID: sender non-delivery
  notification: NEWQID`` / ``QID: sender delay notification: NEWQID``.  A
  non-delivery report returns the whole message (``RET=HDRS``, or a message
  over ``bounce_size_limit``: only its headers); a delay warning its headers;
* the null sender (a bounce that bounced) gets nothing back: with ``2bounce``
  in ``notify_classes`` (``delay`` for warnings) a copy with the whole
  message goes to ``2bounce_notice_recipient`` (``delay_notice_recipient``)
  from the ``double_bounce_sender``, logged ``QID: postmaster non-delivery
  notification: NEWQID``; with the default ``notify_classes`` it is dropped
  without a log line;
* a message from the double-bounce sender (an undeliverable postmaster
  notice) is never reported: ``warning: QID: undeliverable postmaster
  notification discarded``;
* with ``bounce`` (``delay``) in ``notify_classes`` a headers-only copy of a
  sender notification goes to ``bounce_notice_recipient``
  (``delay_notice_recipient``) as well;
* a notice recipient without a domain gets ``@$myorigin``, as cleanup does.

Durability: every notification is committed to the queue (fsynced, like any
message) before the ``notice`` record that says it was sent is appended to
the original, and that record before the original can leave the queue.  A
crash in between sends the notification again at the next attempt (a
duplicate, never a loss).  The new message's lines — cleanup's
``message-id=`` and qmgr's ``from=<>, size=N, nrcpt=1 (queue active)`` —
are logged when it is queued, as smtpd does for mail it receives.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from mailhost.address import external_form
from mailhost.bounce import dsn
from mailhost.bounce.templates import TEMPLATES
from mailhost.config import Config
from mailhost.config.lists import split_list
from mailhost.errors import MailhostError
from mailhost.log import daemon_logger, logger
from mailhost.queue.layout import ACTIVE
from mailhost.queue.qfile import Envelope, QueueFile, Recipient
from mailhost.queue.status import Notice, RecipientStatus
from mailhost.queue.store import QueueStore

log = logger("bounce")
bounce_log = daemon_logger("bounce")
cleanup_log = daemon_logger("cleanup")
qmgr_log = daemon_logger("qmgr")


class BounceFailure(MailhostError):
    """A notification could not be queued; the original stays queued and the
    report is tried again at its next attempt."""


@dataclass(frozen=True)
class BounceSettings:
    """The parameters bounce(8) reads (Postfix 3.7 defaults)."""

    myhostname: str = "localhost"
    myorigin: str = "localhost"
    mail_name: str = "mailhost"
    bounce_size_limit: int = 50000
    delay_warning_time: float = 0.0
    maximal_queue_lifetime: float = 5 * 86400.0
    bounce_queue_lifetime: float = 5 * 86400.0
    bounce_notice_recipient: str = "postmaster"
    double_bounce_notice_recipient: str = "postmaster"
    delay_notice_recipient: str = "postmaster"
    notify_classes: frozenset[str] = frozenset({"resource", "software"})
    double_bounce_sender: str = "double-bounce"

    @classmethod
    def from_config(cls, cfg: Config) -> BounceSettings:
        return cls(
            myhostname=cfg.get("myhostname"),
            myorigin=cfg.get("myorigin"),
            mail_name=cfg.get("mail_name"),
            bounce_size_limit=cfg.get_int("bounce_size_limit"),
            delay_warning_time=cfg.get_time("delay_warning_time"),
            maximal_queue_lifetime=cfg.get_time("maximal_queue_lifetime"),
            bounce_queue_lifetime=cfg.get_time("bounce_queue_lifetime"),
            bounce_notice_recipient=cfg.get("bounce_notice_recipient"),
            double_bounce_notice_recipient=cfg.get("2bounce_notice_recipient"),
            delay_notice_recipient=cfg.get("delay_notice_recipient"),
            notify_classes=frozenset(c.lower() for c in split_list(cfg.get("notify_classes"))),
            double_bounce_sender=cfg.get("double_bounce_sender"),
        )

    @property
    def origin(self) -> dsn.Origin:
        return dsn.Origin(self.myhostname, self.myorigin, self.mail_name)

    def qualify(self, address: str) -> str:
        """``postmaster`` → ``postmaster@$myorigin`` (append_at_myorigin)."""
        return address if "@" in address else f"{address}@{self.myorigin}"

    @property
    def double_bounce_address(self) -> str:
        """Postfix's mail_addr_double_bounce(): ``$double_bounce_sender@$myhostname``."""
        return f"{self.double_bounce_sender}@{self.myhostname}"


@dataclass(frozen=True)
class _Policy:
    """What differs between a non-delivery report and a delay warning."""

    kind: str
    words: str  # the log line's "non-delivery" / "delay"
    notify_word: str  # DSN NOTIFY keyword that asks for this report
    postmaster_class: str  # notify_classes member for the postmaster copy
    double_class: str  # ... and for the report about a null-sender message
    failed_copy: str  # the warning when the postmaster copy fails


_FAILURE = _Policy("failure", "non-delivery", "FAILURE", "bounce", "2bounce", "bouncing to")
_DELAY = _Policy("delay", "delay", "DELAY", "delay", "delay", "warning")


def wants(recipient: Recipient, keyword: str) -> bool:
    """RFC 3461 NOTIFY: the default (none given) asks for failure and delay
    reports; NEVER for none."""
    return not recipient.notify or keyword in recipient.notify


def delay_warning_due(settings: BounceSettings, arrival_time: float, now: float) -> bool:
    """qmgr(8) warns once the message is ``delay_warning_time`` old, with a
    second of slack as it counts whole seconds (``now >= warn_time - 1``)."""
    if settings.delay_warning_time <= 0:
        return False
    warn_time = int(arrival_time) + int(settings.delay_warning_time)
    return int(now) >= warn_time - 1


class Bouncer:
    """Queues notifications for the queue manager's messages."""

    def __init__(
        self,
        store: QueueStore,
        settings: BounceSettings | None = None,
        *,
        wake: Callable[[], None] = lambda: None,
    ) -> None:
        self.store = store
        self.settings = settings if settings is not None else BounceSettings()
        self.wake = wake
        self.sent = 0

    # -- the two services ---------------------------------------------------------------

    async def bounce(
        self, qf: QueueFile, owed: Sequence[tuple[int, RecipientStatus]], now: float
    ) -> None:
        """Report ``owed`` (bounced, not yet reported) recipients; record it."""
        if owed:
            await self._notify(_FAILURE, qf, owed, now)

    async def warn(
        self, qf: QueueFile, deferred: Sequence[tuple[int, RecipientStatus]], now: float
    ) -> None:
        """Send the delay warning if it is due and was not sent yet."""
        if not deferred or qf.notified("delay"):
            return
        if delay_warning_due(self.settings, qf.envelope.arrival_time, now):
            await self._notify(_DELAY, qf, deferred, now)

    # -- deciding -----------------------------------------------------------------------

    async def _notify(
        self,
        policy: _Policy,
        qf: QueueFile,
        entries: Sequence[tuple[int, RecipientStatus]],
        now: float,
    ) -> None:
        s = self.settings
        sender = qf.envelope.sender
        ids: list[str] = []
        if sender and sender.lower() == s.double_bounce_address.lower():
            bounce_log.warning("%s: undeliverable postmaster notification discarded", qf.queue_id)
        elif not sender:
            if policy.double_class in s.notify_classes:
                ids.append(await self._send(policy, qf, entries, now, postmaster=True, full=True))
        else:
            chosen = [
                (i, r) for i, r in entries if wants(qf.envelope.recipients[i], policy.notify_word)
            ]
            if chosen:
                full = policy.kind == "failure" and qf.envelope.dsn_ret != "HDRS"
                ids.append(await self._send(policy, qf, chosen, now, postmaster=False, full=full))
            if policy.postmaster_class in s.notify_classes:
                # Not critical (bounce(8)): a failed copy does not resend the
                # sender's report.
                try:
                    ids.append(
                        await self._send(policy, qf, entries, now, postmaster=True, full=False)
                    )
                except BounceFailure as exc:
                    bounce_log.warning(
                        "%s: postmaster notice failed while %s %s: %s",
                        qf.queue_id,
                        policy.failed_copy,
                        external_form(sender),
                        exc,
                    )
        record = Notice(policy.kind, tuple(i for i, _ in entries), ids[0] if ids else "", now)
        await self.store.append_status(qf.queue_id, [record], queues=(ACTIVE,))

    def _report(
        self,
        policy: _Policy,
        qf: QueueFile,
        entries: Sequence[tuple[int, RecipientStatus]],
        *,
        postmaster: bool,
        full: bool,
    ) -> dsn.Report:
        s = self.settings
        env = qf.envelope
        template = TEMPLATES[policy.kind]
        lifetime = s.bounce_queue_lifetime if not env.sender else s.maximal_queue_lifetime
        values: dict[str, str | float] = {
            "myhostname": s.myhostname,
            "mail_name": s.mail_name,
            "delay_warning_time": s.delay_warning_time,
            "maximal_queue_lifetime": s.maximal_queue_lifetime,
            "bounce_queue_lifetime": s.bounce_queue_lifetime,
        }
        return dsn.Report(
            kind=policy.kind,
            template=template,
            boilerplate="" if postmaster else template.expand(values),
            postmaster_copy=postmaster,
            queue_id=qf.queue_id,
            sender=env.sender,
            arrival_time=env.arrival_time,
            envid=env.dsn_envid,
            recipients=tuple(
                dsn.RecipientReport(
                    address=env.recipients[i].address,
                    original=env.recipients[i].original,
                    orcpt=env.recipients[i].orcpt,
                    status=r.dsn,
                    reason=r.reason,
                    remote_mta=r.remote_mta,
                    diagnostic=r.diagnostic,
                )
                for i, r in entries
            ),
            # bounce_size_limit: a larger original comes back as headers only.
            headers_only=not full or qf.size > s.bounce_size_limit,
            retry_until=env.arrival_time + lifetime if policy.kind == "delay" else None,
        )

    # -- queueing -----------------------------------------------------------------------

    def _postmaster(self, policy: _Policy, qf: QueueFile) -> str:
        s = self.settings
        if policy.kind == "delay":
            return s.delay_notice_recipient
        return s.bounce_notice_recipient if qf.envelope.sender else s.double_bounce_notice_recipient

    async def _send(
        self,
        policy: _Policy,
        qf: QueueFile,
        entries: Sequence[tuple[int, RecipientStatus]],
        now: float,
        *,
        postmaster: bool,
        full: bool,
    ) -> str:
        """Queue one notification durably; return its queue id."""
        s = self.settings
        if postmaster:
            to, sender = s.qualify(self._postmaster(policy, qf)), s.double_bounce_address
        else:
            to, sender = qf.envelope.sender, ""
        report = self._report(policy, qf, entries, postmaster=postmaster, full=full)
        assert qf.content is not None, "the queue manager reads the content"
        try:
            txn = await self.store.begin()
        except OSError as exc:
            raise BounceFailure(f"cannot queue the notification: {exc}") from exc
        try:
            message = dsn.build(
                report, s.origin, recipient=to, notice_id=txn.queue_id, now=now, content=qf.content
            )
            envelope = Envelope(sender, (Recipient(to, to),), arrival_time=now)
            size = await txn.commit(envelope, dsn.to_lines(message))
        except (OSError, MailhostError, ValueError) as exc:
            await txn.abort()
            raise BounceFailure(f"cannot queue the notification: {exc}") from exc
        self.sent += 1
        new_id = txn.queue_id
        cleanup_log.info("%s: message-id=%s", new_id, message["Message-Id"])
        who = "postmaster" if postmaster else "sender"
        bounce_log.info("%s: %s %s notification: %s", qf.queue_id, who, policy.words, new_id)
        qmgr_log.info(
            "%s: from=<%s>, size=%d, nrcpt=1 (queue active)", new_id, external_form(sender), size
        )
        self.wake()
        return new_id
