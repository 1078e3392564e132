"""The durable mail queue: between smtpd/pickup, which put messages in, and
the queue manager, which hands them to the delivery agents.

* :mod:`mailhost.queue.ids` — Postfix-style queue ids (short and long form);
* :mod:`mailhost.queue.qfile` — the versioned queue file format;
* :mod:`mailhost.queue.store` — the queue directories and every change of a
  file's state (enqueue, move, hold, release, requeue, remove, recovery).
"""

from mailhost.queue.layout import QueueEntry, QueueError, QueueFileNotFound
from mailhost.queue.qfile import Client, CorruptQueueFile, Envelope, QueueFile, Recipient
from mailhost.queue.status import Expire, RecipientStatus, Schedule
from mailhost.queue.store import QueueStore
from mailhost.queue.transaction import Transaction

__all__ = [
    "Client",
    "CorruptQueueFile",
    "Envelope",
    "Expire",
    "QueueEntry",
    "QueueError",
    "QueueFile",
    "QueueFileNotFound",
    "QueueStore",
    "Recipient",
    "RecipientStatus",
    "Schedule",
    "Transaction",
]
