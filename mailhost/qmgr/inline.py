"""Inline delivery: a message whose recipients all go to the ``virtual``
transport is written into its mailboxes during DATA, and ``250`` follows
once every copy is durable — no queue file, no queue manager round trip.

This is mailhost's short path (``mailhost_inline_delivery = yes``, the
default); Postfix always writes a queue file first and delivers it later.
What stays the same:

* the answer: ``250 2.0.0 Ok: queued as QID`` is sent only after each
  Maildir file is fsynced and linked into ``new/`` and ``new/`` is fsynced
  (:mod:`mailhost.delivery.maildir`), the same durability a queue file has;
* the maillog: ``cleanup``'s ``message-id=``, ``qmgr``'s ``from=... (queue
  active)``, one ``virtual`` ``to=<...>, relay=virtual, ... status=sent``
  line per recipient and ``qmgr``'s ``removed``, as Postfix logs them;
* everything that is not a plain success goes through the queue: a message
  with any recipient routed elsewhere (``transport_maps``, a non-virtual
  address class, a routing table outage) is queued whole; a recipient whose
  inline delivery bounces or defers is queued (with the others already
  delivered left out), and the queue manager tries it again, logs the
  result and sends the bounce, exactly as for mail that never took this
  path.  The failed inline attempt itself is neither logged nor recorded.

Crash safety: before the ``250`` nothing was acknowledged, so a crash at
any point loses nothing; copies already in a mailbox when the server died
are delivered again when the client retries (at-least-once, as in Postfix
when it dies between delivery and recording the result).

With several workers, a lone client's message for many mailboxes is
queued instead and handed to an idle worker (:mod:`mailhost.qmgr.handoff`):
the plan carries the hand-off (``queue_first``), and cleanup commits the
queue file and calls :meth:`InlineJob.queued` instead of delivering.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from mailhost.delivery.text import SpooledText
from mailhost.errors import TableTempFail
from mailhost.log import daemon_logger
from mailhost.qmgr.delays import Delays
from mailhost.qmgr.manager import QueueManager
from mailhost.qmgr.transport import Delivery, Job
from mailhost.queue.qfile import Envelope
from mailhost.queue.spool import Content

log = daemon_logger("qmgr")

#: Transports whose deliveries may run inline: the final delivery into a
#: mailbox on this host, with no further hop.
INLINE_TRANSPORTS = frozenset({"virtual"})


@dataclass
class InlineJob:
    """One message cleared for inline delivery: every recipient routed to
    an inline transport."""

    manager: QueueManager
    queue_id: str
    envelope: Envelope
    text: SpooledText
    #: the size Postfix logs (``size=``), as the queue file would record it.
    size: int
    deliveries: tuple[Delivery, ...]
    transport: str
    #: Set when the message goes to an idle worker instead
    #: (:mod:`mailhost.qmgr.handoff`): called with the queue id once the
    #: file is committed to ``incoming``.
    hand_off: Callable[[str], None] | None = None

    @property
    def queue_first(self) -> bool:
        """Queued and handed off rather than delivered before the 250."""
        return self.hand_off is not None

    def queued(self) -> None:
        """The queue file is committed: hand it to its queue manager."""
        assert self.hand_off is not None
        self.hand_off(self.queue_id)

    async def deliver(self) -> tuple[int, ...]:
        """Deliver every recipient; the envelope indexes of those that were
        not delivered (empty: all done), for the queue."""
        manager = self.manager
        job = Job(self.queue_id, self.envelope, b"", self.deliveries, text=self.text)
        started = manager.clock()
        outcomes, daemon = await manager.run_transport(self.transport, job)
        finished = manager.clock()
        delays = Delays(started - self.envelope.arrival_time, 0.0, 0.0, finished - started)
        left: list[int] = []
        timing = manager.timing(delays)
        for delivery, outcome in zip(self.deliveries, outcomes, strict=True):
            if outcome.status.delivered:
                manager.log_outcome(self.queue_id, delivery, outcome, delays, daemon, timing)
            else:
                left.append(delivery.index)
        if not left:
            manager.counters.removed += 1
            log.info("%s: removed", self.queue_id)
        return tuple(left)


async def plan_inline(
    manager: QueueManager, queue_id: str, envelope: Envelope, content: Sequence[bytes] | Content
) -> InlineJob | None:
    """An :class:`InlineJob` when every recipient of ``envelope`` routes to
    one inline transport that this queue manager runs; None otherwise (the
    message goes through the queue as usual)."""
    if manager.stopping or envelope.content_filter or envelope.redirect:
        # A filtered or redirected message goes through the queue (held and
        # discarded ones never get here: cleanup does not offer them).
        return None
    transport: str | None = None
    deliveries: list[Delivery] = []
    for index, rcpt in enumerate(envelope.recipients):
        try:
            route = await manager.router.route(rcpt.address)
        except TableTempFail:
            return None  # the queue manager will log and defer it
        if route.transport not in INLINE_TRANSPORTS or route.transport != (
            transport or route.transport
        ):
            return None
        transport = route.transport
        deliveries.append(Delivery(index, rcpt, route.nexthop))
    if transport is None or manager.transports.get(transport) is None:
        return None
    if not isinstance(content, Content):
        content = Content(list(content))
    # The header section in memory, the body copied from its spool file.
    header = content.header
    text = SpooledText(b"\n".join(header) + b"\n" if header else b"", content.body)
    size = content.size(manager.store.line_length_limit)
    return InlineJob(manager, queue_id, envelope, text, size, tuple(deliveries), transport)
