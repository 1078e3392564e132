"""lmtpd's end of DATA: the message delivered to every accepted
recipient's mailboxes with mailhost's own delivery agents — virtual(8)
(:mod:`mailhost.qmgr.virtual`: Maildir or mbox, Maildir++ quota,
directories reached through descriptors) and local(8)
(:mod:`mailhost.qmgr.local`) — and one reply per accepted recipient
(RFC 2033 §4.2), in RCPT order.

A ``250`` means what it means for smtpd: the copy is on disk — the Maildir
file fsynced, linked into ``new/`` and ``new/`` fsynced — before the reply
is sent (the agents' durability, :mod:`mailhost.delivery.maildir`).

The same (original, final) pair is delivered once per message, as cleanup
does for queued mail: a recipient given twice gets one copy and two
``250`` replies (what Dovecot's LMTP does, recorded).  A recipient whose
alias reaches several mailboxes is answered by the worst of their results:
a deferral (the edge retries) before a bounce before success, as local(8)
records an alias's result.

Each final delivery is logged as Postfix's delivery agents log it, under
``mailhost/lmtpd``: ``QID: to=<...>, [orig_to=<...>,] relay=virtual,
delay=..., delays=..., dsn=2.0.0, status=sent (delivered to maildir)``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from mailhost.delivery.status import DeliveryStatus
from mailhost.delivery.text import SpooledText
from mailhost.lmtpd import replies
from mailhost.lmtpd.recipients import Accepted
from mailhost.log import daemon_logger
from mailhost.observe import metrics
from mailhost.qmgr.delays import RESOLUTION_LIMIT, Delays, delivery_line
from mailhost.qmgr.manager import status_word
from mailhost.qmgr.transport import CRASHED, Delivery, FinalDelivery, Job, Outcome, Transport
from mailhost.queue.qfile import Envelope, Recipient
from mailhost.reply import Reply

log = daemon_logger("lmtpd")


@dataclass(frozen=True)
class Message:
    """One message at end of DATA, with what the maillog needs."""

    queue_id: str
    sender: str
    text: SpooledText
    #: seconds since the epoch when MAIL FROM was accepted (``delays=``'s first part).
    arrival_time: float
    mail_params: tuple[tuple[str, str], ...] = ()


class Store:
    """The delivery agents of one lmtpd service, by transport name."""

    def __init__(
        self, transports: Mapping[str, Transport], resolution_limit: int = RESOLUTION_LIMIT
    ) -> None:
        self.transports = transports
        self.resolution_limit = resolution_limit

    async def deliver(self, message: Message, accepted: Sequence[Accepted]) -> list[Reply]:
        """Deliver to every final mailbox of ``accepted``; one reply per
        element of ``accepted``, in order."""
        recipients: list[Recipient] = []
        placed: dict[tuple[str, str], int] = {}
        by_transport: dict[str, list[Delivery]] = {}
        wanted: list[list[int]] = []
        for rcpt in accepted:
            indexes: list[int] = []
            for final in rcpt.finals:
                key = (rcpt.original.lower(), final.address.lower())
                index = placed.get(key)
                if index is None:
                    index = placed[key] = len(recipients)
                    recipient = Recipient(final.address, rcpt.original)
                    recipients.append(recipient)
                    delivery = Delivery(index, recipient, final.nexthop)
                    by_transport.setdefault(final.transport, []).append(delivery)
                indexes.append(index)
            wanted.append(indexes)
        envelope = Envelope(
            message.sender,
            tuple(recipients),
            arrival_time=message.arrival_time,
            mail_params=message.mail_params,
        )
        statuses: dict[int, DeliveryStatus] = {}
        for name, deliveries in by_transport.items():
            started = time.time()
            job = Job(message.queue_id, envelope, b"", tuple(deliveries), text=message.text)
            outcomes = await self._run(name, job)
            finished = time.time()
            delays = Delays(started - message.arrival_time, 0.0, 0.0, finished - started)
            for delivery, outcome in zip(deliveries, outcomes, strict=True):
                statuses[delivery.index] = outcome.status
                self._log(message.queue_id, delivery, outcome, delays)
        return [
            _reply(rcpt.recipient, message.queue_id, [statuses[i] for i in indexes])
            for rcpt, indexes in zip(accepted, wanted, strict=True)
        ]

    async def _run(self, name: str, job: Job) -> list[Outcome]:
        """The transport's outcomes; a crash defers every recipient (as the
        queue manager treats a crashing agent)."""
        count = len(job.deliveries)
        transport = self.transports.get(name)
        try:
            if transport is None:
                raise LookupError(f"no transport {name}")
            outcomes = list(await transport.deliver(job))
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning(
                "%s: transport %s failed: %s: %s", job.queue_id, name, type(exc).__name__, exc
            )
            return [Outcome(CRASHED, "none")] * count
        if len(outcomes) != count:
            log.warning(
                "%s: transport %s answered %d results for %d recipients",
                job.queue_id, name, len(outcomes), count,
            )  # fmt: skip
            return [Outcome(CRASHED, "none")] * count
        return outcomes

    def _log(self, queue_id: str, delivery: Delivery, outcome: Outcome, delays: Delays) -> None:
        finals = outcome.finals or (FinalDelivery(delivery.recipient.address, outcome.status),)
        for final in finals:
            metrics.delivery(status_word(final.status))  # /metrics, as qmgr's deliveries
            log.info(
                "%s",
                delivery_line(
                    queue_id, final.address, delivery.recipient.original, relay=outcome.relay,
                    delays=delays, dsn=final.status.dsn, status=status_word(final.status),
                    reason=final.status.text, resolution_limit=self.resolution_limit,
                ),
            )  # fmt: skip


def _reply(recipient: str, queue_id: str, statuses: Sequence[DeliveryStatus]) -> Reply:
    """One recipient's answer from its mailboxes' results (worst first)."""
    deferred = [s for s in statuses if s.deferred]
    if deferred:
        if deferred[0].dsn == "4.2.2":
            return replies.over_quota(recipient, bounce=False)
        return replies.temporary_failure(recipient)
    bounced = [s for s in statuses if s.bounced]
    if bounced:
        first = bounced[0]
        if first.dsn == "5.2.2":
            return replies.over_quota(recipient)
        if first.dsn == "5.1.1":
            return replies.user_unknown(recipient)
        return replies.permanent_failure(recipient, first.dsn)
    return replies.saved(recipient, queue_id)
