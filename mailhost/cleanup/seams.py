"""What cleanup hands on and what it needs: the values a submission carries
and the Protocols of the queue, alias expansion, address rewriting and inline
delivery.

The production implementations are assembled by :mod:`mailhost.master`
(the queue store, the resolver, the queue manager's inline delivery); tests
plug in small ones of their own.  Nothing here does I/O.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from mailhost.queue.spool import Content
from mailhost.reply import Reply


@dataclass(frozen=True)
class ClientInfo:
    """Who is talking to us, as the restrictions and the queue file see it."""

    name: str
    address: str
    port: int
    helo: str | None
    protocol: str
    sasl_method: str | None = None
    sasl_username: str | None = None
    tls: bool = False


def protocol_name(*, esmtp: bool, tls: bool, authenticated: bool) -> str:
    """``SMTP``, ``ESMTP``, ``ESMTPS``, ``ESMTPA`` or ``ESMTPSA`` (RFC 3848)."""
    if not esmtp:
        return "SMTP"
    return "ESMTP" + ("S" if tls else "") + ("A" if authenticated else "")


@dataclass(frozen=True)
class FinalRecipient:
    """One recipient after alias expansion: the address given at RCPT (``original``)
    and where it goes (``final``)."""

    original: str
    final: str
    #: RFC 3461 NOTIFY of this recipient (``("NEVER",)`` for a BCC action's).
    notify: tuple[str, ...] = ()


@dataclass(frozen=True)
class Submission:
    """Everything the queue file records besides the content."""

    queue_id: str
    sender: str
    recipients: tuple[FinalRecipient, ...]
    client: ClientInfo
    arrival_time: float
    #: MAIL FROM parameters kept for delivery (``BODY``, ``SMTPUTF8``).
    mail_params: tuple[tuple[str, str], ...] = field(default_factory=tuple)
    #: HOLD: the queue file goes to the hold queue.
    hold: bool = False
    #: ``transport:nexthop`` of the content filter ("" none).
    content_filter: str = ""
    #: REDIRECT: every recipient goes to this address ("" none).
    redirect: str = ""


@dataclass
class MessageActions:
    """What access(5) actions at SMTP time and header/body checks in cleanup
    ask of one message, gathered as the message goes through smtpd and
    cleanup and applied once, at the queue write (Postfix's cleanup flags and
    extra envelope records).

    The last ``redirect`` and the last ``filter`` win (as in Postfix); ``hold``
    beats delivery; ``discard`` beats everything (the client still gets 250).
    Each field keeps the log text of the action that set it.
    """

    #: ``HOLD``: the reason (for the ``hold:`` log line); the queue file goes
    #: to the hold queue.
    hold: str | None = None
    #: ``DISCARD``: the reason (for the ``discard:`` log line); nothing is queued.
    discard: str | None = None
    #: ``REDIRECT addr``: every recipient replaced by this one.
    redirect: str | None = None
    #: ``BCC addr``: extra recipients, in order, without duplicates.
    bcc: list[str] = field(default_factory=list)
    #: ``FILTER transport:destination``: the content filter for this message.
    filter: str | None = None
    #: ``PREPEND header``: header lines put above the message's own headers,
    #: in the order they were asked for — above smtpd's ``Received:`` too,
    #: where Postfix's smtpd writes them, so header_checks inspects them.
    prepend: list[str] = field(default_factory=list)

    def merge(self, other: MessageActions) -> None:
        """Add the actions of a later stage (``other`` wins where one value fits)."""
        self.hold = other.hold or self.hold
        self.discard = other.discard or self.discard
        self.redirect = other.redirect or self.redirect
        self.filter = other.filter or self.filter
        for address in other.bcc:
            if address not in self.bcc:
                self.bcc.append(address)
        self.prepend.extend(other.prepend)


class ExpansionFailed(Exception):
    """Cleanup could not finish; ``reply`` is the end-of-DATA answer
    (``451 4.6.0 Alias expansion error`` or ``451 4.3.0 Error: queue file write error``)."""

    def __init__(self, reply: Reply, detail: str = "") -> None:
        super().__init__(detail or str(reply))
        self.reply = reply
        self.detail = detail


@dataclass(frozen=True)
class Rewritten:
    """A message after cleanup's address rewriting (canonical maps, masquerading)."""

    sender: str
    #: One address per accepted recipient, in order (alias expansion starts here).
    recipients: tuple[str, ...]
    lines: list[bytes]


class CleanupRewrite(Protocol):
    async def rewrite(
        self,
        queue_id: str,
        sender: str,
        recipients: Sequence[str],
        lines: list[bytes],
        client: ClientInfo,
    ) -> Rewritten:
        """Rewrite envelope and headers once (spec 3.1 step 2); raises
        :class:`ExpansionFailed` when a table fails."""
        ...


class RecipientExpansion(Protocol):
    async def expand(self, recipient: str) -> Sequence[str]:
        """Final recipients of one accepted recipient (spec 3.4); raises
        :class:`ExpansionFailed`."""
        ...


class QueueTransaction(Protocol):
    """A queue file being written; its id is known before the content is."""

    @property
    def queue_id(self) -> str: ...

    async def commit(self, submission: Submission, content: Content) -> int:
        """Write envelope and content durably (file and directory fsynced) and
        return the queued size; only then may smtpd answer 250."""
        ...

    async def abort(self) -> None:
        """Forget the transaction (nothing was acknowledged)."""
        ...


class QueueSink(Protocol):
    async def open(self) -> QueueTransaction: ...


class InlinePlan(Protocol):
    """A message cleared for delivery during DATA (mailhost.qmgr.inline)."""

    @property
    def size(self) -> int:
        """The size the queue manager logs (``size=``)."""
        ...

    @property
    def queue_first(self) -> bool:
        """Queue the message as usual and then call :meth:`queued`, instead
        of :meth:`deliver` before the 250 (an idle worker delivers it)."""
        ...

    async def deliver(self) -> tuple[int, ...]:
        """Deliver every recipient durably and log the results; the indexes
        (into the submission's recipients) of those left for the queue."""
        ...

    def queued(self) -> None:
        """The queue file is committed (``queue_first``): hand it on to
        the queue manager that will deliver it."""
        ...


class InlineDelivery(Protocol):
    async def plan(self, submission: Submission, content: Content) -> InlinePlan | None:
        """A plan when every recipient can be delivered now, else None (the
        message is queued as usual)."""
        ...
