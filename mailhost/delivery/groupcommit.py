"""Maildir deliveries of concurrent messages, committed together.

Every Maildir copy costs two journal commits when written alone: the fsync
of its file and the fsync of ``new/`` after the link.  Deliveries that are
waiting while a trip to the offload pool runs join the next trip, which runs
:func:`mailhost.delivery.maildir.commit_copies` over all of them: their
files are written, then fsynced, then linked, then each ``new/`` involved is
fsynced once — one group commit for many messages (a popular mailbox's
``new/`` is fsynced once per trip, not once per message) and one pool trip
instead of one per message.  Nothing changes in what a caller is told, or
when: a copy is reported delivered only once its file and its ``new/`` are
durable, and each caller gets exactly its own results.

At most ``LANES`` trips run at a time per event loop; a caller never waits
for more than the trip in progress plus its own.  Deliveries with a quota
guard (:mod:`mailhost.quota.enforce`) keep their own trip: the guard runs
around each link under the mailbox lock the caller holds.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Sequence
from dataclasses import dataclass

from mailhost.delivery.maildir import (
    NAMES,
    CopyGroup,
    Guard,
    HeaderMode,
    MaildirResult,
    MaildirTarget,
    commit_copies,
    deliver_maildirs_sync,
    plan_copies,
)
from mailhost.offload import run_blocking

#: Trips to the offload pool in flight at once, per event loop.
LANES = 2


@dataclass
class _Request:
    message: bytes
    sender: str
    targets: Sequence[MaildirTarget]
    header_mode: HeaderMode
    file_size_limit: int
    future: asyncio.Future[list[MaildirResult]]


def _commit_all(requests: Sequence[_Request]) -> list[list[MaildirResult] | BaseException]:
    """One trip: every request's copies in one group commit (blocking)."""
    groups: list[CopyGroup] = []
    targets: list[MaildirTarget] = []
    results: dict[int, MaildirResult] = {}
    spans: list[tuple[int, int]] = []
    planned: list[list[MaildirResult] | BaseException | None] = []
    for request in requests:
        try:
            more, done = plan_copies(
                request.message, request.sender, request.targets,
                header_mode=request.header_mode, file_size_limit=request.file_size_limit,
                names=NAMES, offset=len(targets),
            )  # fmt: skip
        except Exception as exc:  # one bad request must not fail the others
            planned.append(exc)
            continue
        spans.append((len(targets), len(request.targets)))
        targets.extend(request.targets)
        groups.extend(more)
        results.update(done)
        planned.append(None)
    commit_copies(groups, targets, results)
    out: list[list[MaildirResult] | BaseException] = []
    span = iter(spans)
    for outcome in planned:
        if outcome is not None:
            out.append(outcome)
            continue
        start, count = next(span)
        out.append([results[i] for i in range(start, start + count)])
    return out


class CommitQueue:
    """The group commit of one event loop."""

    def __init__(self) -> None:
        self._waiting: list[_Request] = []
        self._trips = 0

    async def deliver(
        self,
        message: bytes,
        sender: str,
        targets: Sequence[MaildirTarget],
        header_mode: HeaderMode,
        file_size_limit: int,
    ) -> list[MaildirResult]:
        future: asyncio.Future[list[MaildirResult]] = asyncio.get_running_loop().create_future()
        self._waiting.append(
            _Request(message, sender, targets, header_mode, file_size_limit, future)
        )
        if self._trips < LANES:
            self._start()
        # shield: a cancelled caller leaves its copies to the trip, which
        # must still finish writing (and cleaning up) what it started.
        return await asyncio.shield(future)

    def _start(self) -> None:
        batch, self._waiting = self._waiting, []
        self._trips += 1
        asyncio.get_running_loop().create_task(self._trip(batch))

    async def _trip(self, batch: list[_Request]) -> None:
        try:
            outcomes: Sequence[list[MaildirResult] | BaseException] = await run_blocking(
                _commit_all, batch
            )
        except BaseException as exc:  # the trip itself failed: every caller hears it
            outcomes = [exc] * len(batch)
        finally:
            self._trips -= 1
            if self._waiting and self._trips < LANES:
                self._start()
        for request, outcome in zip(batch, outcomes, strict=True):
            if request.future.done():
                continue
            if isinstance(outcome, BaseException):
                request.future.set_exception(outcome)
            else:
                request.future.set_result(outcome)


_queues: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, CommitQueue] = (
    weakref.WeakKeyDictionary()
)


def commit_queue() -> CommitQueue:
    """This event loop's group commit."""
    loop = asyncio.get_running_loop()
    queue = _queues.get(loop)
    if queue is None:
        queue = _queues[loop] = CommitQueue()
    return queue


async def deliver_maildirs(
    message: bytes,
    sender: str,
    targets: Sequence[MaildirTarget],
    *,
    header_mode: HeaderMode = "postfix",
    file_size_limit: int = 0,
    guard: Guard | None = None,
) -> list[MaildirResult]:
    """:func:`~mailhost.delivery.maildir.deliver_maildirs_sync` off the event
    loop, in the group commit unless a ``guard`` is given."""
    if guard is None:
        return await commit_queue().deliver(message, sender, targets, header_mode, file_size_limit)
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


async def deliver_maildir(
    message: bytes,
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
