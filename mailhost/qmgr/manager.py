"""qmgr(8): the scheduler between the durable queue and the transports.

The loop (all file work on the offload pool, never on the event loop):

1. every ``poll_interval`` (and whenever :meth:`QueueManager.wake` is called)
   the files in ``incoming`` are taken — also ones written while the server
   was down; every ``queue_run_delay`` the ``deferred`` queue is scanned for
   files whose next attempt time has come;
2. a file is moved to ``active`` (qmgr owns it from now on), read and
   verified; recipients already sent or bounced (status records from an
   earlier attempt, before a crash or restart) are skipped, so nothing is
   delivered twice in the normal case;
3. each remaining recipient is routed (address class, ``transport_maps``:
   :mod:`mailhost.qmgr.transport`) and handed, grouped by transport, to its
   transport; each group's results are appended to the queue file (one
   append + fsync) before they are logged;
4. when every recipient is done the file is removed (``QID: removed``);
   otherwise it goes to ``deferred`` with a ``Schedule`` record: the backoff
   doubles with each attempt from ``minimal_backoff_time`` up to
   ``maximal_backoff_time`` (spec 4.3).  A message older than
   ``maximal_queue_lifetime`` (``bounce_queue_lifetime`` for the null sender),
   or marked by ``postsuper -e``, is expired: its remaining recipients are
   recorded as bounced and it is logged ``status=expired, returned to
   sender``;
5. before the file is removed or deferred, bounce(8)
   (:mod:`mailhost.bounce.notify`) queues one non-delivery notification for
   the recipients that bounced and were not reported yet (also ones bounced
   before a crash), and — once ``delay_warning_time`` has passed — one delay
   warning; each is durably queued and recorded in the original (a
   ``notice`` record) before the original can go.  When the notification
   cannot be queued the original stays deferred and it is tried again.

A transport that raises defers its recipients (``4.3.0 unknown mail transport
error``), never bounces them.  :meth:`QueueManager.stop` lets deliveries in
flight finish and record their results; a file left in ``active`` is moved
back to ``incoming`` by the start-up recovery (:meth:`QueueStore.recover`).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass

from mailhost.address import external_form
from mailhost.bounce.notify import BounceFailure, Bouncer, BounceSettings
from mailhost.config import Config
from mailhost.delivery.status import DeliveryStatus
from mailhost.errors import TableTempFail
from mailhost.log import daemon_logger, logger
from mailhost.observe import metrics
from mailhost.qmgr.delays import RESOLUTION_LIMIT, Delays, delivery_line, timing_text
from mailhost.qmgr.routing import filtered, routed_recipients
from mailhost.qmgr.transport import (
    ADDRESS_RESOLVER_FAILURE,
    CRASHED,
    UNAVAILABLE,
    Delivery,
    Job,
    Outcome,
    Transports,
)
from mailhost.queue.layout import ACTIVE, DEFERRED, INCOMING, QueueEntry, QueueFileNotFound
from mailhost.queue.qfile import CorruptQueueFile, QueueFile
from mailhost.queue.status import Expire, RecipientStatus, Schedule, Status, StatusRecord
from mailhost.queue.store import QueueStore
from mailhost.resolve.transport_maps import Route, Router

log = logger("qmgr")
qmgr_log = daemon_logger("qmgr")

#: The reason for recipients of a force-expired message (in Postfix's qmgr).
ADMIN_EXPIRED = DeliveryStatus("4.7.0", "message is administratively expired")

#: How often ``incoming`` is looked at.  Postfix's cleanup wakes qmgr through
#: a FIFO; mailhost's smtpd shares no channel with it, so the queue manager
#: polls (a directory scan is cheap) and :meth:`QueueManager.wake` shortcuts it.
POLL_INTERVAL = 1.0
#: Messages delivered at the same time (qmgr_message_active_limit is far
#: larger; this bounds threads and open files of one process).
CONCURRENCY = 10


@dataclass(frozen=True)
class QmgrSettings:
    minimal_backoff_time: float = 300.0
    maximal_backoff_time: float = 4000.0
    queue_run_delay: float = 300.0
    maximal_queue_lifetime: float = 5 * 86400.0
    bounce_queue_lifetime: float = 5 * 86400.0
    delay_logging_resolution_limit: int = RESOLUTION_LIMIT
    poll_interval: float = POLL_INTERVAL
    concurrency: int = CONCURRENCY

    @classmethod
    def from_config(cls, cfg: Config) -> QmgrSettings:
        return cls(
            minimal_backoff_time=cfg.get_time("minimal_backoff_time"),
            maximal_backoff_time=cfg.get_time("maximal_backoff_time"),
            queue_run_delay=cfg.get_time("queue_run_delay"),
            maximal_queue_lifetime=cfg.get_time("maximal_queue_lifetime"),
            bounce_queue_lifetime=cfg.get_time("bounce_queue_lifetime"),
            delay_logging_resolution_limit=cfg.get_int("delay_logging_resolution_limit"),
        )

    def backoff(self, attempts: int) -> float:
        """The wait after the ``attempts``-th failed attempt: doubling from
        minimal_backoff_time, capped by maximal_backoff_time."""
        low = max(0.0, self.minimal_backoff_time)
        high = max(low, self.maximal_backoff_time)
        exponent = min(max(0, attempts - 1), 64)
        return min(high, math.ldexp(low, exponent))


def status_word(status: DeliveryStatus) -> Status:
    """Postfix's ``status=`` for a DSN: 2.x.x sent, 4.x.x deferred, else bounced."""
    if status.delivered:
        return Status.SENT
    if status.deferred:
        return Status.DEFERRED
    return Status.BOUNCED


@dataclass
class QmgrCounters:
    """What the queue manager did (observability, DESIGN rule 15)."""

    activated: int = 0
    sent: int = 0
    deferred: int = 0
    bounced: int = 0
    crashed: int = 0
    expired: int = 0
    removed: int = 0


class QueueManager:
    def __init__(
        self,
        store: QueueStore,
        router: Router,
        transports: Transports,
        settings: QmgrSettings | None = None,
        *,
        clock: Callable[[], float] = time.time,
        bounce: BounceSettings | None = None,
    ) -> None:
        self.store = store
        self.router = router
        self.transports = transports
        self.settings = settings if settings is not None else QmgrSettings()
        self.clock = clock
        self.counters = QmgrCounters()
        self._busy: set[str] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._limit = asyncio.Semaphore(max(1, self.settings.concurrency))
        self._wakeup = asyncio.Event()
        self._stopping = False
        self._loop_task: asyncio.Task[None] | None = None
        self._last_deferred_scan = -math.inf
        self.bouncer = Bouncer(store, bounce, wake=self.wake)
        #: per queue id: recipients bounced during the current attempt.
        self._bounced: dict[str, dict[int, RecipientStatus]] = {}

    # -- running ------------------------------------------------------------------------

    async def start(self, *, recover: bool = True) -> None:
        """Recover the queue (``active`` back to ``incoming``) and start the
        loop; ``recover=False`` when another process did the recovery (one of
        several workers, :mod:`mailhost.prefork`)."""
        if recover:
            await self.store.recover(reactivate=True)
        self._loop_task = asyncio.create_task(self.run(), name="qmgr")

    @property
    def stopping(self) -> bool:
        """stop() was called: no new work is taken."""
        return self._stopping

    def wake(self) -> None:
        """Look at the queue now (new mail was committed)."""
        self._wakeup.set()

    async def stop(self) -> None:
        """Stop taking new work; let deliveries in flight finish and record
        their results (a file interrupted between transports stays in
        ``active`` and is recovered at the next start)."""
        self._stopping = True
        self._wakeup.set()
        if self._loop_task is not None:
            await self._loop_task
            self._loop_task = None
        await self.drain()

    async def drain(self) -> None:
        """Wait until no message is being processed."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def run(self) -> None:
        while not self._stopping:
            try:
                await self.scan()
            except Exception as exc:
                # A vanished or unreadable queue directory: say so and retry
                # at the next poll instead of ending the manager.
                qmgr_log.warning("scanning queue %s: %s", self.store.root, exc)
            self._wakeup.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.settings.poll_interval):
                    await self._wakeup.wait()

    async def scan(self, *, deferred: bool | None = None) -> list[QueueEntry]:
        """Start processing what is due: every file in ``incoming`` and, when
        ``queue_run_delay`` has passed (or ``deferred`` is True), deferred
        files whose next attempt time has come.  Returns the entries started."""
        due = [e for e in await self.store.list((INCOMING,)) if e.queue_id not in self._busy]
        now = self.clock()
        if deferred is None:
            deferred = now - self._last_deferred_scan >= self.settings.queue_run_delay
        if deferred:
            self._last_deferred_scan = now
            for entry in await self.store.list((DEFERRED,)):
                if entry.queue_id not in self._busy and await self._is_due(entry, now):
                    due.append(entry)
        self._start(due)
        return due

    def _start(self, entries: Sequence[QueueEntry]) -> None:
        for entry in entries:
            self._busy.add(entry.queue_id)
            task = asyncio.create_task(self._guarded(entry), name=f"qmgr {entry.queue_id}")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def flush(self, queue_ids: Collection[str] | None = None) -> list[QueueEntry]:
        """``postqueue -f``: start every file in ``incoming`` and ``deferred``
        now, whatever its next attempt time; ``postqueue -i QID`` / ``-s
        SITE``: only those deferred files (mailhost.qmgr.trigger).  Returns
        the entries started."""
        if self._stopping:
            return []
        queues = (DEFERRED,) if queue_ids is not None else (INCOMING, DEFERRED)
        due = [
            e
            for e in await self.store.list(queues)
            if e.queue_id not in self._busy and (queue_ids is None or e.queue_id in queue_ids)
        ]
        self._start(due)
        return due

    def committed(self, queue_id: str) -> None:
        """A file was just committed to ``incoming`` in this process: start
        it at once, without rescanning the directory (a scan per commit costs
        O(backlog) each time).  Files from other writers still come with the
        poll."""
        if not self._stopping and queue_id not in self._busy:
            self._start([QueueEntry(INCOMING, queue_id, self.store.root / INCOMING / queue_id)])

    async def run_once(self, *, deferred: bool | None = None) -> list[QueueEntry]:
        """One scan and every delivery it started (tests, ``postqueue -f``)."""
        started = await self.scan(deferred=deferred)
        await self.drain()
        return started

    async def _is_due(self, entry: QueueEntry, now: float) -> bool:
        try:
            parsed = await self.store.read_entry(entry, content=False)
        except (CorruptQueueFile, FileNotFoundError):
            return True  # processing moves it to corrupt (or finds it gone)
        next_attempt = parsed.next_attempt
        return parsed.forced_expire or next_attempt is None or next_attempt <= now

    async def _guarded(self, entry: QueueEntry) -> None:
        try:
            async with self._limit:
                if not self._stopping:
                    await self.process(entry)
        except QueueFileNotFound as exc:
            # postsuper -d/-h/-r took the file away while it was processed.
            qmgr_log.warning("%s", exc)
        except Exception:
            # Our own bug or an I/O error on the queue: the file stays where
            # it is (active is recovered at the next start); never lost.
            qmgr_log.exception("%s: queue manager error", entry.queue_id)
        finally:
            self._busy.discard(entry.queue_id)
            self._bounced.pop(entry.queue_id, None)

    # -- one message --------------------------------------------------------------------

    async def _activate(self, entry: QueueEntry) -> QueueEntry | None:
        if entry.queue_name == ACTIVE:
            return entry
        try:
            # Not fsynced: recovery moves active back to incoming in any case.
            return await self.store.move(
                entry.queue_id, ACTIVE, from_queues=(entry.queue_name,), durable=False
            )
        except (QueueFileNotFound, FileNotFoundError):
            return None  # removed meanwhile (postsuper -d)

    async def process(self, entry: QueueEntry) -> None:
        """Deliver one queue file's pending recipients and file it accordingly."""
        came_from = entry.queue_name
        active = await self._activate(entry)
        if active is None:
            return
        activated = self.clock()
        self.counters.activated += 1
        try:
            qf = await self.store.read_entry(active)
        except FileNotFoundError:
            return
        except CorruptQueueFile as exc:
            # qmgr(8) only renames a corrupt file (no chmod): mode=None.
            await self.store.save_corrupt(active, str(exc), log=qmgr_log, mode=None)
            return
        pending = qf.pending()
        if came_from == DEFERRED and pending:
            qmgr_log.info(
                "%s: from=<%s>, size=%d, nrcpt=%d (queue active)",
                qf.queue_id,
                external_form(qf.envelope.sender),
                qf.size,
                len(pending),
            )
        last: dict[int, RecipientStatus] = {
            i: r for i, _, r in pending if r is not None and r.status is Status.DEFERRED
        }
        if pending and qf.forced_expire:
            # postsuper -e: no delivery; qmgr defers what is left with this
            # reason and then returns the message (Postfix qmgr's own text).
            delays = Delays(activated - qf.envelope.arrival_time, self.clock() - activated, 0, 0)
            expired = [
                (Delivery(i, qf.envelope.recipients[i], ""), Outcome(ADMIN_EXPIRED, "none"))
                for i, _, _ in pending
            ]
            await self._record(qf, expired, delays, "qmgr", last)
        elif pending:
            done = await self._deliver(qf, pending, activated, last)
            if done is None:
                return  # stopping: the file stays in active
        await self._finish(qf, active, last, activated)

    async def _deliver(
        self,
        qf: QueueFile,
        pending: Sequence[tuple[int, object, RecipientStatus | None]],
        activated: float,
        last: dict[int, RecipientStatus],
    ) -> bool | None:
        """Route and deliver; ``last`` gets every new deferral.  None when
        interrupted by stop()."""
        groups: dict[str, list[Delivery]] = {}
        unrouted: list[tuple[Delivery, Outcome]] = []
        indexes = [index for index, _, _ in pending]
        for index, rcpt in routed_recipients(qf.envelope, indexes):
            try:
                route: Route = filtered(qf.envelope, await self.router.route(rcpt.address))
            except TableTempFail as exc:
                qmgr_log.warning("%s: resolving %s: %s", qf.queue_id, rcpt.address, exc)
                unrouted.append(
                    (Delivery(index, rcpt, ""), Outcome(ADDRESS_RESOLVER_FAILURE, "none"))
                )
                continue
            groups.setdefault(route.transport, []).append(Delivery(index, rcpt, route.nexthop))
        if unrouted:
            now = self.clock()
            await self._record(
                qf,
                unrouted,
                Delays(activated - qf.envelope.arrival_time, now - activated, 0, 0),
                "qmgr",
                last,
            )
        assert qf.content is not None
        for name, deliveries in groups.items():
            if self._stopping:
                return None
            job = Job(qf.queue_id, qf.envelope, qf.content, tuple(deliveries))
            started = self.clock()
            outcomes, daemon = await self.run_transport(name, job)
            finished = self.clock()
            delays = Delays(
                activated - qf.envelope.arrival_time, started - activated, 0, finished - started
            )
            await self._record(
                qf, list(zip(deliveries, outcomes, strict=True)), delays, daemon, last
            )
        return True

    async def run_transport(self, name: str, job: Job) -> tuple[list[Outcome], str]:
        transport = self.transports.get(name)
        count = len(job.deliveries)
        if transport is None:
            qmgr_log.warning("connect to transport private/%s: No such file or directory", name)
            return [Outcome(UNAVAILABLE, "none")] * count, "qmgr"
        try:
            outcomes = list(await transport.deliver(job))
        except Exception as exc:
            # A crashing agent: Postfix's qmgr sees the pipe close and defers.
            self.counters.crashed += 1
            qmgr_log.warning(
                "%s: transport %s failed: %s: %s", job.queue_id, name, type(exc).__name__, exc
            )
            return [Outcome(CRASHED, "none")] * count, "qmgr"
        if len(outcomes) != count:
            self.counters.crashed += 1
            qmgr_log.warning(
                "%s: transport %s answered %d results for %d recipients",
                job.queue_id,
                name,
                len(outcomes),
                count,
            )
            return [Outcome(CRASHED, "none")] * count, "qmgr"
        return outcomes, name

    async def _record(
        self,
        qf: QueueFile,
        results: Sequence[tuple[Delivery, Outcome]],
        delays: Delays,
        daemon: str,
        last: dict[int, RecipientStatus],
    ) -> None:
        """Append the results durably, then log them (a logged result is on disk)."""
        now = self.clock()
        records: list[RecipientStatus] = []
        for delivery, outcome in results:
            word = status_word(outcome.status)
            record = RecipientStatus(
                delivery.index,
                word,
                outcome.status.dsn,
                outcome.status.text,
                now,
                outcome.relay,
                remote_mta=outcome.status.remote_mta,
                diagnostic=outcome.status.diagnostic,
            )
            records.append(record)
            if word is Status.DEFERRED:
                last[delivery.index] = record
            else:
                last.pop(delivery.index, None)
        await self.store.append_status(qf.queue_id, records, queues=(ACTIVE,))
        bounced = self._bounced.setdefault(qf.queue_id, {})
        bounced.update((r.recipient, r) for r in records if r.status is Status.BOUNCED)
        timing = self.timing(delays)
        for delivery, outcome in results:
            self.log_outcome(qf.queue_id, delivery, outcome, delays, daemon, timing)

    def timing(self, delays: Delays) -> str:
        """The ``delay=..., delays=...`` of the log lines of one delivery."""
        return timing_text(delays, self.settings.delay_logging_resolution_limit)

    def log_outcome(
        self,
        queue_id: str,
        delivery: Delivery,
        outcome: Outcome,
        delays: Delays,
        daemon: str,
        timing: str | None = None,
    ) -> None:
        """Count one recipient's result and log its ``to=<...>`` line(s)
        (``timing``: :meth:`timing` of ``delays``, made once per delivery)."""
        word = status_word(outcome.status)
        setattr(self.counters, word, getattr(self.counters, word) + 1)
        metrics.delivery(word)
        if timing is None:
            timing = self.timing(delays)
        # (address, status, word) of each line: the recipient's own result
        # unless the transport reported final deliveries in its place.
        lines = (
            [(f.address, f.status, status_word(f.status)) for f in outcome.finals]
            if outcome.finals
            else [(delivery.recipient.address, outcome.status, word)]
        )
        logger = daemon_logger(daemon)
        for address, status, status_text in lines:
            line = delivery_line(
                queue_id,
                address,
                delivery.recipient.original,
                relay=outcome.relay,
                delays=delays,
                dsn=status.dsn,
                status=status_text,
                reason=status.text,
                timing=timing,
            )
            logger.info("%s", line)

    def _lifetime(self, qf: QueueFile) -> float:
        s = self.settings
        return s.bounce_queue_lifetime if qf.envelope.sender == "" else s.maximal_queue_lifetime

    async def _finish(
        self,
        qf: QueueFile,
        active: QueueEntry,
        last: dict[int, RecipientStatus],
        activated: float,
    ) -> None:
        now = self.clock()
        expiring = qf.forced_expire or now - qf.envelope.arrival_time >= self._lifetime(qf)
        if last and expiring:
            await self._expire(qf, last, now)
            last = {}
        # Bounced now or before a crash, and not reported yet.
        owed = dict(qf.unnotified_bounces())
        owed.update(self._bounced.pop(qf.queue_id, {}))
        keep = False
        try:
            await self.bouncer.bounce(qf, sorted(owed.items()), now)
            if last and not expiring:
                await self.bouncer.warn(qf, sorted(last.items()), now)
        except BounceFailure as exc:
            # Postfix's qmgr keeps the message when bounce(8) fails; the
            # report is owed until the next attempt.
            qmgr_log.warning("%s: %s", qf.queue_id, exc)
            keep = True
        if not last and not keep:
            # Every result is already durable in the file: a crash that undoes
            # the unlink leaves nothing to deliver (Postfix does not fsync it
            # either).
            if await self.store.remove(qf.queue_id, queues=(ACTIVE,), durable=False):
                self.counters.removed += 1
            return
        attempts = sum(1 for r in qf.records if isinstance(r, Schedule)) + 1
        next_attempt = now + self.settings.backoff(attempts)
        await self.store.append_status(
            qf.queue_id, [Schedule(next_attempt, attempts)], queues=(ACTIVE,)
        )
        await self.store.move(qf.queue_id, DEFERRED, from_queues=(ACTIVE,))

    async def _expire(self, qf: QueueFile, last: dict[int, RecipientStatus], now: float) -> None:
        """maximal_queue_lifetime / bounce_queue_lifetime ran out, or postsuper -e."""
        records: list[StatusRecord] = [Expire(now, forced=qf.forced_expire)]
        records += [
            RecipientStatus(i, Status.BOUNCED, r.dsn, r.reason, now, r.relay)
            for i, r in sorted(last.items())
        ]
        await self.store.append_status(qf.queue_id, records, queues=(ACTIVE,))
        bounced = self._bounced.setdefault(qf.queue_id, {})
        bounced.update((r.recipient, r) for r in records if isinstance(r, RecipientStatus))
        self.counters.expired += 1
        qmgr_log.info(
            "%s: from=<%s>, status=%s, returned to sender",
            qf.queue_id,
            external_form(qf.envelope.sender),
            "force-expired" if qf.forced_expire else "expired",
        )
