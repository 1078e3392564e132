"""pickup(8) inside ``mailhost serve``: from ``maildrop`` into ``incoming``.

Where this sits in the pipeline: ``mailhost sendmail`` (and ``postsuper -r``)
leave complete queue files in ``maildrop``; when master.cf declares a
``pickup`` service (``pickup unix n - n 60 1 pickup``) ``mailhost serve``
runs :class:`Pickup`, which watches the directory (a scan every
``poll_interval`` seconds, and at once when woken) and turns each file into a
normal queue file in ``incoming``:

1. the file is read and verified; one that does not verify is moved to
   ``corrupt`` with Postfix's warning and never delivered;
2. cleanup (:class:`mailhost.cleanup.local.LocalCleanup`) qualifies the
   sender and the recipients (``user`` → ``user@$myorigin``), rewrites and
   expands them through virtual_alias_maps as for SMTP mail (the original
   recipient is kept as given, as Postfix's ``original_recipient`` record);
3. cleanup gives a local submission its header treatment
   (:func:`mailhost.cleanup.headers.clean_local`: Received: header with the
   submitting uid — the maildrop file's owner —, Bcc: removed, missing
   Message-Id:/Date:/From: added); a file requeued by ``postsuper -r``
   already had it and keeps its content;
4. cleanup commits the new file in ``incoming`` under a new queue id (file
   and directory fsynced), and only then is the maildrop file removed.

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
from dataclasses import dataclass

from mailhost.address import external_form
from mailhost.cleanup.local import LocalCleanup
from mailhost.cleanup.milters import MilterDeferred
from mailhost.cleanup.seams import ExpansionFailed
from mailhost.errors import MailhostError
from mailhost.log import daemon_logger, logger
from mailhost.offload import run_blocking
from mailhost.queue.ids import is_queue_id
from mailhost.queue.layout import MAILDROP, QueueEntry
from mailhost.queue.qfile import CorruptQueueFile
from mailhost.resolve.rewrite import RewriteError

log = logger("pickup")
cleanup_log = daemon_logger("cleanup")
pickup_log = daemon_logger("pickup")

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

    def __init__(self, cleanup: LocalCleanup, *, poll_interval: float = 1.0) -> None:
        #: cleanup(8) for local submissions; it wakes the queue manager.
        self.cleanup = cleanup
        self.store = cleanup.store
        self.poll_interval = poll_interval
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
                pickup_log.warning("scanning %s: %s", self.store.root / MAILDROP, exc)
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
                        pickup_log.warning(
                            'removing incomplete maildrop file "%s/%s"', MAILDROP, dirent.name
                        )
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
            sender, recipients = await self.cleanup.envelope(qf)
        except RewriteError as exc:
            self._defer(entry, exc.log_text)
            return None
        except ExpansionFailed as exc:
            self._defer(entry, exc.detail)
            return None
        except MailhostError as exc:
            self._defer(entry, f"{exc}; will retry")
            return None
        orig = "" if qf.envelope.submission else f" orig_id={entry.queue_id}"

        def opened(qid: str) -> None:
            pickup_log.info(
                "%s: uid=%d from=<%s>%s", qid, owner, external_form(qf.envelope.sender), orig
            )

        async def committed() -> None:
            # Committed: the maildrop copy has done its job.
            await run_blocking(entry.path.unlink, missing_ok=True)
            await self.store.syncer.sync_dir(entry.path.parent)

        try:
            qid = await self.cleanup.submit(
                qf,
                owner=owner,
                sender=sender,
                recipients=recipients,
                opened=opened,
                committed=committed,
            )
        except RewriteError as exc:
            self._defer(entry, exc.log_text)
            return None
        except MilterDeferred:
            self.counters.deferred += 1  # cleanup logged the milter's answer
            return None
        except ExpansionFailed as exc:
            # A REJECT with a 4.x.x code or a check table failure: the
            # maildrop file waits for the next scan.
            self._defer(entry, exc.detail or str(exc.reply))
            return None
        except OSError as exc:
            self._defer(entry, f"queue file write error: {exc}")
            return None
        self.counters.picked_up += 1
        return qid

    def _defer(self, entry: QueueEntry, reason: str) -> None:
        """A temporary failure: the maildrop file waits for the next scan."""
        cleanup_log.warning("%s: %s", entry.queue_id, reason)
        self.counters.deferred += 1

    async def _save_corrupt(self, entry: QueueEntry, reason: str) -> None:
        if await self.store.save_corrupt(entry, reason, log=pickup_log):
            self.counters.corrupt += 1
