"""A lone client's fan-out, delivered by an idle worker.

Inline delivery (:mod:`mailhost.qmgr.inline`) writes a message into its
mailboxes before the ``250``.  For a client that sends one message at a
time to many mailboxes that is the whole wait: ten mailboxes are ten files
created, written and fsynced and ten ``new/`` directories fsynced, all in
the worker that holds the session, while the other workers have nothing
to do.  Postfix answers after one queue file and lets other processes
(qmgr, virtual) deliver while smtpd already talks to the client again.

So when several workers run (``mailhost_worker_processes``, one per CPU by
default) and another worker has no session open, a message for
:data:`HANDOFF_COPIES` or more mailboxes is queued as Postfix queues it —
its file committed to ``incoming``, ``250`` after that — and its queue id
is handed to that idle worker (:class:`QueueHandoff`, over the workers'
channels, :class:`mailhost.prefork.WorkerChannels`), whose queue manager
takes it on at once: moves it to ``active``, delivers, records, removes,
as for any queued mail, and logs as Postfix's qmgr and virtual do.  The
note is only a hint: should it not arrive (the peer's channel full, the
peer gone), this worker's own queue manager takes the file, and a file
nobody was told about is found by the next scan of ``incoming``.

Under load no worker is idle and every message goes the inline way, where
the group commit shares fsyncs between sessions.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from mailhost.log import logger
from mailhost.prefork import Role

log = logger("qmgr")

#: A message for this many mailboxes or more may be handed to an idle
#: worker.  The queue round trip costs the two workers together about half
#: as much CPU again as inline delivery; it pays where the copies' fsyncs
#: are the client's wait (docs/benchmarks.md, "Fifth round": one client,
#: delivered msg/s against inline delivery, 0.8× with two recipients, even
#: with five, 1.1× with ten).
HANDOFF_COPIES = 8
#: The longest note: a queue id (long ones are 17 characters).
NOTE_SIZE = 64


class QueueHandoff:
    """This worker's side of the hand-off: it sends queue ids to an idle
    worker, and takes those sent to it to its own queue manager
    (``take``, :meth:`mailhost.qmgr.manager.QueueManager.committed`)."""

    def __init__(self, role: Role, take: Callable[[str], None]) -> None:
        assert role.loads is not None
        assert role.channels is not None
        self.index = role.index
        self.loads = role.loads
        self.channels = role.channels
        self.take = take
        self._receiver = role.channels.receiver(role.index)
        self._loop: asyncio.AbstractEventLoop | None = None

    @classmethod
    def for_role(cls, role: Role, take: Callable[[str], None]) -> QueueHandoff | None:
        """The hand-off of a worker among several; None for a lone process."""
        if role.loads is None or role.channels is None or role.count < 2:
            return None
        return cls(role, take)

    def listen(self) -> None:
        """Take the queue ids other workers send (on the running loop)."""
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(self._receiver.fileno(), self._receive)

    def close(self) -> None:
        if self._loop is not None:
            self._loop.remove_reader(self._receiver.fileno())
            self._loop = None

    def _receive(self) -> None:
        while True:
            try:
                note = self._receiver.recv(NOTE_SIZE)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                log.warning("worker channel: %s", exc)
                return
            queue_id = note.decode("ascii", "replace")
            if queue_id.isalnum():
                self.take(queue_id)

    def idle_peer(self) -> int | None:
        """Another worker with no session open (the lowest such index), or None."""
        for index, sessions in enumerate(self.loads.snapshot()):
            if index != self.index and sessions == 0:
                return index
        return None

    def send(self, peer: int, queue_id: str) -> None:
        """Hand ``queue_id`` (committed to ``incoming``) to worker ``peer``;
        this worker's queue manager takes it when the note cannot go."""
        if not self.channels.send(peer, queue_id.encode("ascii")):
            self.take(queue_id)
