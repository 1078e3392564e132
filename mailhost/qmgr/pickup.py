"""pickup(8) inside ``mailhost serve``: from ``maildrop`` into ``incoming``.

Where this sits in the pipeline: ``mailhost sendmail`` (and ``postsuper -r``)
leave complete queue files in ``maildrop``; when master.cf declares a
``pickup`` service (``pickup unix n - n 60 1 pickup``) ``mailhost serve``
runs :class:`Pickup`, which watches the directory (a scan every
``poll_interval`` seconds, and at once when woken) and turns each file into a
normal queue file in ``incoming``:

1. the file is read and verified; one that does not verify is moved to
   ``corrupt`` with Postfix's warning and never delivered;
2. the sender and the recipients are qualified (``user`` →
   ``user@$myorigin``) and the recipients expanded through virtual_alias_maps
   as cleanup does for SMTP mail (the original recipient is kept as given, as
   Postfix's ``original_recipient`` record);
3. a local submission gets cleanup's header treatment
   (:func:`mailhost.queue.cleanup.clean_local`: Received: header with the
   submitting uid — the maildrop file's owner —, Bcc: removed, missing
   Message-Id:/Date:/From: added); a file requeued by ``postsuper -r``
   already had it and keeps its content;
4. the new file is committed in ``incoming`` under a new queue id (file and
   directory fsynced), and only then is the maildrop file removed.

Crash safety: before step 4's commit the maildrop file is the only copy;
after it the incoming file is complete and the maildrop name is removed next.
A crash between the two leaves both (the message would be delivered twice,
never lost) — the same window Postfix's pickup has.  A temporary failure
(a table outage during alias expansion, a full disk) leaves the maildrop file
in place for the next scan.

Logged as Postfix does (spec 8)::

    mailhost/pickup[PID]: QID: uid=1000 from=<user1>
    mailhost/cleanup[PID]: QID: message-id=<20261201191151.QID@host>
    mailhost/qmgr[PID]: QID: from=<user1@example.com>, size=N, nrcpt=N (queue active)
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from mailhost.address import external_form
from mailhost.config import Config
from mailhost.config.mastercf import read_master_cf
from mailhost.errors import MailhostError
from mailhost.log import logger
from mailhost.offload import run_blocking
from mailhost.queue.cleanup import Cleaned, CleanupSettings, clean_local
from mailhost.queue.ids import is_queue_id
from mailhost.queue.qfile import CorruptQueueFile, QueueFile, Recipient
from mailhost.queue.store import MAILDROP, QueueEntry, QueueStore
from mailhost.resolve.aliases import AliasExpansionError
from mailhost.resolve.resolver import Resolver, ResolverSettings
from mailhost.resolve.rewrite import RewriteError, RewriteSettings, cleanup_rewrite
from mailhost.smtpd.handler import message_id
from mailhost.smtpd.wiring import queue_store
from mailhost.tables.registry import TableRegistry

log = logger("pickup")
PICKUP = {"daemon": "pickup"}
CLEANUP = {"daemon": "cleanup"}
QMGR = {"daemon": "qmgr"}

#: A temporary maildrop name older than this belongs to a sendmail that died
#: while writing (never acknowledged): removed, as ``postsuper -p`` would.
STALE_TEMP_AGE = 3600.0


@dataclass
class PickupCounters:
    picked_up: int = 0
    corrupt: int = 0
    deferred: int = 0


class Pickup:
    """Moves maildrop files into incoming (see the module docstring)."""

    def __init__(
        self,
        store: QueueStore,
        resolver: Resolver,
        settings: CleanupSettings,
        *,
        rewrite: RewriteSettings | None = None,
        poll_interval: float = 1.0,
        on_queued: Callable[[str], None] | None = None,
    ) -> None:
        self.store = store
        self.resolver = resolver
        self.settings = settings
        #: cleanup's canonical mapping and masquerading, as at end of DATA.
        self.rewrite = rewrite
        self.poll_interval = poll_interval
        self.on_queued = on_queued
        self.counters = PickupCounters()
        self._wakeup = asyncio.Event()
        self._stopping = False
        self._task: asyncio.Task[None] | None = None

    # -- running --------------------------------------------------------------------

    async def start(self) -> None:
        await self.store.setup()
        self._task = asyncio.create_task(self.run(), name="pickup")

    def wake(self) -> None:
        self._wakeup.set()

    async def stop(self) -> None:
        """Finish the file in hand, then stop."""
        self._stopping = True
        self._wakeup.set()
        if self._task is not None:
            await self._task
            self._task = None

    async def run(self) -> None:
        while not self._stopping:
            try:
                await self.scan()
            except Exception as exc:
                log.warning("scanning %s: %s", self.store.root / MAILDROP, exc, extra=PICKUP)
            self._wakeup.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.poll_interval):
                    await self._wakeup.wait()

    async def scan(self) -> list[str]:
        """Pick up every complete maildrop file; the new queue ids."""
        await run_blocking(self._remove_stale)
        queued: list[str] = []
        for entry in await self.store.list((MAILDROP,)):
            if self._stopping:
                break
            qid = await self.pick(entry)
            if qid is not None:
                queued.append(qid)
        return queued

    def _remove_stale(self) -> None:
        now = time.time()
        with contextlib.suppress(FileNotFoundError):
            for dirent in os.scandir(self.store.root / MAILDROP):
                if is_queue_id(dirent.name) or not dirent.is_file(follow_symlinks=False):
                    continue
                with contextlib.suppress(FileNotFoundError):
                    if now - dirent.stat(follow_symlinks=False).st_mtime > STALE_TEMP_AGE:
                        log.warning(
                            'removing incomplete maildrop file "%s/%s"',
                            MAILDROP, dirent.name, extra=PICKUP,
                        )  # fmt: skip
                        os.unlink(dirent.path)

    # -- one file -------------------------------------------------------------------

    async def pick(self, entry: QueueEntry) -> str | None:
        """One maildrop file → incoming; the new queue id, or None when the
        file was corrupt, vanished, or must wait (temporary failure)."""
        try:
            owner = (await run_blocking(entry.path.stat)).st_uid
            qf = await self.store.read_entry(entry)
        except FileNotFoundError:
            return None
        except CorruptQueueFile as exc:
            await self._save_corrupt(entry, str(exc))
            return None
        try:
            sender, targets = await self._rewrite_envelope(qf)
            recipients = await self._recipients(qf, targets)
        except RewriteError as exc:
            log.warning("%s: %s", entry.queue_id, exc.log_text, extra=CLEANUP)
            self.counters.deferred += 1
            return None
        except AliasExpansionError as exc:
            log.warning("%s: %s", entry.queue_id, exc.log_text, extra=CLEANUP)
            self.counters.deferred += 1
            return None
        except MailhostError as exc:
            log.warning("%s: %s; will retry", entry.queue_id, exc, extra=CLEANUP)
            self.counters.deferred += 1
            return None
        try:
            qid = await self._requeue(entry, qf, owner, sender, recipients)
        except RewriteError as exc:
            log.warning("%s: %s", entry.queue_id, exc.log_text, extra=CLEANUP)
            self.counters.deferred += 1
            return None
        except OSError as exc:
            log.warning("%s: queue file write error: %s", entry.queue_id, exc, extra=CLEANUP)
            self.counters.deferred += 1
            return None
        self.counters.picked_up += 1
        if self.on_queued is not None:
            self.on_queued(qid)
        return qid

    async def _rewrite_envelope(self, qf: QueueFile) -> tuple[str, list[str]]:
        """The sender and one target per envelope recipient: qualified with
        myorigin, then canonical-mapped and masqueraded (cleanup's order,
        before virtual alias expansion); raises RewriteError."""
        qualifier = self.settings.qualifier
        sender = qualifier.address(qf.envelope.sender)
        targets = [qualifier.address(r.address) for r in qf.envelope.recipients]
        if self.rewrite is None:
            return sender, targets
        done = await cleanup_rewrite(self.rewrite, sender, targets, [])
        return done.sender, list(done.recipients)

    async def _recipients(self, qf: QueueFile, targets: list[str]) -> tuple[Recipient, ...]:
        """Alias-expanded, one per distinct (original, final)."""
        seen: set[tuple[str, str]] = set()
        out: list[Recipient] = []
        for rcpt, target in zip(qf.envelope.recipients, targets, strict=True):
            original = rcpt.original or rcpt.address
            for record in await self.resolver.expand(target):
                key = (original.lower(), record.final.lower())
                if key not in seen:
                    seen.add(key)
                    out.append(replace(rcpt, address=record.final, original=original))
        return tuple(out)

    async def _requeue(
        self,
        entry: QueueEntry,
        qf: QueueFile,
        owner: int,
        sender: str,
        recipients: tuple[Recipient, ...],
    ) -> str:
        envelope = qf.envelope
        raw_sender = envelope.sender
        txn = await self.store.begin()
        qid = txn.queue_id
        orig = "" if envelope.submission else f" orig_id={entry.queue_id}"
        log.info(
            "%s: uid=%d from=<%s>%s", qid, owner, external_form(raw_sender), orig, extra=PICKUP
        )
        try:
            lines = qf.lines()
            if self.rewrite is not None:
                # Header addresses as read (local submissions are always
                # rewritten); the headers cleanup adds below are not.
                done = await cleanup_rewrite(self.rewrite, sender, [], lines, queue_id=qid)
                lines = done.lines
            if envelope.submission:
                cleaned = clean_local(
                    lines,
                    queue_id=qid,
                    sender=sender,
                    full_name=envelope.full_name,
                    uid=owner,
                    arrival=envelope.arrival_time,
                    settings=self.settings,
                    local=envelope.submission == "local",
                )
            else:
                cleaned = Cleaned(lines, message_id(lines), None)
            new = replace(envelope, sender=sender, recipients=recipients, submission="")
        except BaseException:
            await txn.abort()
            raise
        size = await txn.commit(new, cleaned.lines)
        # Committed: the maildrop copy has done its job.
        await run_blocking(entry.path.unlink, missing_ok=True)
        await self.store.syncer.sync_dir(entry.path.parent)
        if cleaned.resent_message_id is not None:
            log.info("%s: resent-message-id=<%s>", qid, cleaned.resent_message_id, extra=CLEANUP)
        log.info("%s: message-id=<%s>", qid, cleaned.message_id, extra=CLEANUP)
        log.info(
            "%s: from=<%s>, size=%d, nrcpt=%d (queue active)",
            qid, external_form(sender), size, len(recipients), extra=QMGR,
        )  # fmt: skip
        return qid

    async def _save_corrupt(self, entry: QueueEntry, reason: str) -> None:
        if await self.store.save_corrupt(entry, reason, log=log, extra=PICKUP):
            self.counters.corrupt += 1


def pickup_declared(master_cf: Path) -> bool:
    """True when master.cf has a service run by the ``pickup`` command."""
    return any(entry.program == "pickup" for entry in read_master_cf(master_cf))


def build_pickup(
    cfg: Config, registry: TableRegistry, on_queued: Callable[[str], None] | None = None
) -> Pickup:
    """A pickup for ``cfg``: the production queue, the resolver's alias
    expansion, cleanup's settings from main.cf."""
    return Pickup(
        queue_store(cfg),
        Resolver(ResolverSettings.from_config(cfg, registry)),
        CleanupSettings.from_config(cfg),
        rewrite=RewriteSettings.from_config(cfg, registry),
        on_queued=on_queued,
    )
