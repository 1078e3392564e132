"""Maildir deliveries of concurrent messages, committed together.

Every Maildir copy costs two journal commits when written alone: the fsync
of its file and the fsync of ``new/`` after the link.  Deliveries go through
the group commit of :mod:`mailhost.groupsync` (:class:`~mailhost.groupsync.GroupSync`,
one per event loop): deliveries that are waiting while a trip to the offload
pool runs join the next trip, which plans their copies
(:func:`~mailhost.delivery.maildir.plan_copies`) and commits all of them —
their files are written, then fsynced, then linked, then each ``new/``
involved is fsynced once: one group commit for many messages (a popular
mailbox's ``new/`` is fsynced once per trip, not once per message) and one
pool trip instead of one per message.  Nothing changes in what a caller is
told, or when: a copy is reported delivered only once its file and its
``new/`` are durable, and each caller gets exactly its own results.

At most :data:`~mailhost.groupsync.LANES` trips run at a time per event loop; a
caller never waits for more than the trip in progress plus its own.
Deliveries with a quota guard (:mod:`mailhost.quota.enforce`) keep their own
trip through the same idiom: the guard runs around each link under the
mailbox lock the caller holds.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Sequence

from mailhost.delivery.maildir import (
    NAMES,
    Guard,
    HeaderMode,
    MaildirResult,
    MaildirTarget,
    copy_files,
    deliver_maildirs_sync,
    plan_copies,
)
from mailhost.delivery.text import Text
from mailhost.fsutil import DurableFile
from mailhost.groupsync import GroupSync
from mailhost.offload import run_blocking

_queues: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, GroupSync] = (
    weakref.WeakKeyDictionary()
)


#: The last loop asked about (weakly) and its group commit: a process runs
#: one loop, so this spares the weak dictionary's lookup on every delivery.
_last: list[tuple[weakref.ref[asyncio.AbstractEventLoop], GroupSync] | None] = [None]


def commit_queue() -> GroupSync:
    """This event loop's group commit for Maildir deliveries."""
    loop = asyncio.get_running_loop()
    last = _last[0]
    if last is not None and last[0]() is loop:
        return last[1]
    queue = _queues.get(loop)
    if queue is None:
        queue = _queues[loop] = GroupSync()
    _last[0] = (weakref.ref(loop), queue)
    return queue


async def deliver_maildirs(
    message: Text,
    sender: str,
    targets: Sequence[MaildirTarget],
    *,
    header_mode: HeaderMode = "postfix",
    file_size_limit: int = 0,
    guard: Guard | None = None,
) -> list[MaildirResult]:
    """:func:`~mailhost.delivery.maildir.deliver_maildirs_sync` off the event
    loop, in the group commit unless a ``guard`` is given."""
    if guard is not None:
        return await run_blocking(
            lambda: deliver_maildirs_sync(
                message,
                sender,
                targets,
                header_mode=header_mode,
                file_size_limit=file_size_limit,
                guard=guard,
            )
        )
    # Filled on the pool during the trip, read here once it is over.
    results: dict[int, MaildirResult] = {}

    def prepare() -> Sequence[DurableFile]:
        groups, done = plan_copies(
            message, sender, targets,
            header_mode=header_mode, file_size_limit=file_size_limit, names=NAMES,
        )  # fmt: skip
        results.update(done)
        return copy_files(groups, targets, results)

    # A cancelled caller leaves its copies to the trip, which still finishes
    # writing (and cleaning up) what it started.
    await commit_queue().commit(prepare)
    return [results[i] for i in range(len(targets))]


async def deliver_maildir(
    message: Text,
    sender: str,
    target: MaildirTarget,
    *,
    file_size_limit: int = 0,
    guard: Guard | None = None,
) -> MaildirResult:
    """One recipient, headers exactly as virtual(8) writes them."""
    (result,) = await deliver_maildirs(
        message, sender, [target], file_size_limit=file_size_limit, guard=guard
    )
    return result
