"""The status records the queue manager appends to a queue file after each
delivery attempt (the ``S`` records of :mod:`mailhost.queue.qfile`): one
recipient's result, the next attempt, an expiry, a queued notification.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class Status(StrEnum):
    """A recipient's delivery result: Postfix's ``status=`` word, as logged,
    listed by mailq and recorded in the queue file."""

    SENT = "sent"
    DEFERRED = "deferred"
    BOUNCED = "bounced"


#: Results after which a recipient needs nothing more (not deferred).
DONE_STATUSES = frozenset({Status.SENT, Status.BOUNCED})
STATUSES = frozenset(Status)


@dataclass(frozen=True)
class RecipientStatus:
    """The result of one delivery attempt for recipient number ``recipient``
    (index into the envelope): Postfix's ``status=`` word, the DSN status,
    the reason text logged in parentheses and ``relay=``."""

    recipient: int
    status: Status
    dsn: str
    reason: str
    time: float
    relay: str = ""
    #: the peer's RFC 3464 Remote-MTA and Diagnostic-Code (written only
    #: when set: older files and local results have neither).
    remote_mta: str = ""
    diagnostic: str = ""
    kind: str = field(default="rcpt", init=False)

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"unknown recipient status {self.status!r}")
        object.__setattr__(self, "status", Status(self.status))


@dataclass(frozen=True)
class Schedule:
    """When the queue manager will try again, and how many attempts were made."""

    next_attempt: float
    attempts: int
    kind: str = field(default="schedule", init=False)


@dataclass(frozen=True)
class Expire:
    """``postsuper -e``/``-f`` (``forced``) or the queue lifetime ran out."""

    time: float
    forced: bool
    kind: str = field(default="expire", init=False)


#: The notification kinds of a :class:`Notice` (bounce(8)'s services).
NOTICE_KINDS = frozenset({"failure", "delay"})
#: The version of the ``notice`` record this code writes and reads.
NOTICE_VERSION = 1


@dataclass(frozen=True)
class Notice:
    """bounce(8) queued notification ``notice_id`` (a failure report or a
    delay warning) about ``recipients`` (indexes into the envelope); "" when
    none was needed (NOTIFY=NEVER, null sender).  Recorded after the
    notification is durably queued and before the message leaves the queue."""

    notice: str
    recipients: tuple[int, ...]
    notice_id: str
    time: float
    version: int = NOTICE_VERSION
    kind: str = field(default="notice", init=False)

    def __post_init__(self) -> None:
        if self.notice not in NOTICE_KINDS:
            raise ValueError(f"unknown notice kind {self.notice!r}")
        if self.version != NOTICE_VERSION:
            raise ValueError(f"unsupported notice record version {self.version}")


StatusRecord = RecipientStatus | Schedule | Expire | Notice
