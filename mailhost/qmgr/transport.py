"""The transport interface: what the queue manager hands a delivery agent.

Which transport a recipient goes to is trivial-rewrite's answer
(:mod:`mailhost.resolve.transport_maps`); this module is what happens next.
A transport is anything with a ``name`` and an async :meth:`Transport.deliver`
that returns one :class:`Outcome` per recipient of a :class:`Job`; raising
instead means "crashed" and the queue manager defers every recipient of the
job (DESIGN rule 2: a crash never bounces).  The trivial ``error`` and
``discard`` transports (error(8), discard(8)) live here; a transport name
mailhost does not run defers its recipients with ``4.3.0 mail transport
unavailable``, as qmgr does when a master.cf service is missing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from mailhost.delivery.status import DeliveryStatus
from mailhost.delivery.text import SpooledText, Text, as_bytes
from mailhost.log import logger
from mailhost.queue.qfile import Envelope, Recipient

log = logger("qmgr")

#: qmgr's reasons when no agent could be asked (Postfix qmgr_deliver.c).
UNAVAILABLE = DeliveryStatus("4.3.0", "mail transport unavailable")
CRASHED = DeliveryStatus("4.3.0", "unknown mail transport error")
#: trivial-rewrite could not classify the address (a table outage).
ADDRESS_RESOLVER_FAILURE = DeliveryStatus("4.3.0", "address resolver failure")


@dataclass(frozen=True)
class Delivery:
    """One recipient handed to a transport: its index in the envelope, the
    queue's record of it and the nexthop chosen for it."""

    index: int
    recipient: Recipient
    nexthop: str


@dataclass(frozen=True)
class Job:
    """One delivery request: one message, recipients of one transport."""

    queue_id: str
    envelope: Envelope
    #: the queued content, LF line ends (the Received: header included).
    message: bytes
    deliveries: tuple[Delivery, ...]
    #: inline delivery's content instead of ``message``: its body still in
    #: smtpd's spool file (:mod:`mailhost.delivery.text`).
    text: SpooledText | None = None

    @property
    def content(self) -> Text:
        """The message, spooled or in memory (for Maildir delivery)."""
        return self.text if self.text is not None else self.message

    @property
    def content_bytes(self) -> bytes:
        """The message in memory (for the delivery agents that need it)."""
        return as_bytes(self.content)


@dataclass(frozen=True)
class FinalDelivery:
    """One delivery a transport made on behalf of a queue recipient after
    expanding it itself (local(8) aliases): logged ``to=<address>`` with the
    recipient's ``orig_to=``, in place of the recipient's own line."""

    address: str
    status: DeliveryStatus


@dataclass(frozen=True)
class Outcome:
    """One recipient's result and the ``relay=`` it is logged with;
    ``finals``, when given, are the lines to log instead of one for the
    recipient (the result recorded in the queue file stays ``status``)."""

    status: DeliveryStatus
    relay: str
    finals: tuple[FinalDelivery, ...] = ()


class Transport(Protocol):
    """A delivery agent (a master.cf service in Postfix)."""

    name: str

    async def deliver(self, job: Job) -> Sequence[Outcome]:
        """One outcome per delivery, in order."""
        ...


class ErrorTransport:
    """error(8): bounce with the nexthop as reason, ``5.x.y text`` giving the
    DSN (default 5.0.0); relay=none."""

    name = "error"

    async def deliver(self, job: Job) -> Sequence[Outcome]:
        return [Outcome(error_status(d.nexthop, "5.0.0"), "none") for d in job.deliveries]


class RetryTransport:
    """retry(8): defer with the nexthop as reason (default 4.0.0)."""

    name = "retry"

    async def deliver(self, job: Job) -> Sequence[Outcome]:
        return [Outcome(error_status(d.nexthop, "4.0.0"), "none") for d in job.deliveries]


class DiscardTransport:
    """discard(8): report delivered without delivering; relay=none."""

    name = "discard"

    async def deliver(self, job: Job) -> Sequence[Outcome]:
        return [
            Outcome(DeliveryStatus("2.0.0", d.nexthop or "discarded"), "none")
            for d in job.deliveries
        ]


def error_status(nexthop: str, default_dsn: str) -> DeliveryStatus:
    """``5.1.1 User unknown`` → (5.1.1, User unknown); a reason without a
    leading status keeps ``default_dsn`` (error(8))."""
    head, _, rest = nexthop.partition(" ")
    parts = head.split(".")
    if (
        len(parts) == 3
        and parts[0] in ("2", "4", "5")
        and parts[0] == default_dsn[0]
        and all(p.isdigit() and 0 < len(p) <= 3 for p in parts)
    ):
        return DeliveryStatus(head, rest.strip() or "delivery failed")
    return DeliveryStatus(default_dsn, nexthop or "delivery failed")


class Transports:
    """The transports this queue manager can hand mail to, by name."""

    def __init__(self, transports: Mapping[str, Transport]) -> None:
        self.by_name = dict(transports)

    def get(self, name: str) -> Transport | None:
        return self.by_name.get(name)


def builtin_transports() -> dict[str, Transport]:
    return {t.name: t for t in (ErrorTransport(), RetryTransport(), DiscardTransport())}


__all__ = [
    "ADDRESS_RESOLVER_FAILURE",
    "CRASHED",
    "UNAVAILABLE",
    "Delivery",
    "DiscardTransport",
    "ErrorTransport",
    "FinalDelivery",
    "Job",
    "Outcome",
    "RetryTransport",
    "Transport",
    "Transports",
    "builtin_transports",
]
