"""The queue directory's layout and vocabulary: the queue names, the modes a
queue file goes through, where a file is (:class:`QueueEntry`) and what the
store counts (:class:`QueueCounters`).

Postfix's names and modes (spec 7.2, mail_queue.h); everything that reads
or writes queue files (:mod:`mailhost.queue.store`,
:mod:`mailhost.queue.transaction`, the queue tools) uses these.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from mailhost.errors import MailhostError


class QueueName(StrEnum):
    """The queue directories below ``queue_directory`` (Postfix's names)."""

    INCOMING = "incoming"
    ACTIVE = "active"
    DEFERRED = "deferred"
    HOLD = "hold"
    CORRUPT = "corrupt"
    MAILDROP = "maildrop"


INCOMING = QueueName.INCOMING
ACTIVE = QueueName.ACTIVE
DEFERRED = QueueName.DEFERRED
HOLD = QueueName.HOLD
CORRUPT = QueueName.CORRUPT
MAILDROP = QueueName.MAILDROP
QUEUE_NAMES = tuple(QueueName)
#: The order ``mailq``/``postqueue -p`` scans the queues in (spec 7.2).
SCAN_ORDER = (MAILDROP, ACTIVE, INCOMING, DEFERRED, HOLD)
#: Queues a message can be held from / requeued from (postsuper(1)).
HOLDABLE = (INCOMING, ACTIVE, DEFERRED)
REQUEUEABLE = (INCOMING, ACTIVE, DEFERRED, HOLD)

# mail_queue.h: a file being written is 0600, a complete one 0700
# (MAIL_QUEUE_STAT_READY), a corrupt one 0400 (MAIL_QUEUE_STAT_CORRUPT).
WRITING_MODE = 0o600
READY_MODE = 0o700
CORRUPT_MODE = 0o400


class QueueError(MailhostError):
    """A queue operation that cannot be done (unknown queue name, ...)."""


class QueueFileNotFound(QueueError):
    """No queue file with that id in the queues searched."""


@dataclass(frozen=True)
class QueueEntry:
    """A queue file's place: which queue, which id, which path."""

    queue_name: str
    queue_id: str
    path: Path


def check_queue(name: str) -> str:
    if name not in QUEUE_NAMES:
        raise QueueError(f"unknown queue name: {name}")
    return name


@dataclass
class QueueCounters:
    """What the store did since it was created (observability, DESIGN 15)."""

    enqueued: int = 0
    enqueued_bytes: int = 0
    aborted: int = 0
    moved: int = 0
    removed: int = 0
    corrupt: int = 0
    status_appends: int = 0
