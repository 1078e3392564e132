"""Quota at delivery time: check, write and account for a message under a
per-mailbox lock, then deliver the warnings it triggered.

For each target maildir the guard (a :data:`mailhost.delivery.maildir.Guard`)
takes an exclusive ``flock`` on the maildir directory itself — no extra file
for Dovecot to trip over — reads the usage through ``maildirsize`` (the
number Dovecot uses), asks :func:`mailhost.quota.policy.decide`, lets the
message be linked into ``new/``, and appends the ``<size> 1`` delta before the
lock is released.  Check and write are therefore one step: concurrent
deliveries, in this process or another mailhost process, see each other's
usage and never overshoot the limit (at most one message with a grace).  An
asyncio lock per maildir keeps waiting deliveries from occupying threads.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from mailhost.delivery.dirfd import BASE_FLAGS, split_relative, walk
from mailhost.delivery.maildir import (
    HeaderMode,
    MaildirResult,
    MaildirTarget,
    OpenMaildir,
    StagedMessage,
    deliver_maildirs_sync,
)
from mailhost.delivery.pathlock import PathLocks
from mailhost.delivery.status import DeliveryError, create_error_dsn, strerror
from mailhost.log import logger
from mailhost.offload import run_blocking
from mailhost.quota.maildirsize import (
    MaildirRef,
    QuotaLimits,
    QuotaState,
    Usage,
    append_delta,
    read_quota,
    recalculate,
)
from mailhost.quota.policy import QuotaPolicy, decide
from mailhost.quota.warning import warning_message

log = logger("quota")


@dataclass(frozen=True)
class QuotaTarget:
    """A maildir delivery with the limits that apply to it."""

    target: MaildirTarget
    #: None: no configured limit, an existing ``maildirsize`` header applies.
    limits: QuotaLimits | None


@dataclass(frozen=True)
class QuotaWarning:
    target: MaildirTarget
    percent: int
    limits: QuotaLimits
    usage: Usage


@contextlib.contextmanager
def maildir_lock(fd: int) -> Iterator[None]:
    """Exclusive flock on the maildir directory opened as ``fd`` (blocks the
    calling thread).  flock locks belong to the open file: each delivery
    opens the maildir itself (:func:`~mailhost.delivery.maildir.open_maildir`),
    so two of our threads exclude each other too."""
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)


def open_existing_maildir(maildir: Path, base: Path | None) -> int | None:
    """The maildir's descriptor for a look (RCPT, tools): below ``base``
    without following a link (raises
    :class:`~mailhost.delivery.dirfd.SymlinkRefused`), or by its own name
    without a base; None when it does not exist (yet)."""
    try:
        if base is None:
            return os.open(maildir, BASE_FLAGS)
        parts = split_relative(os.fspath(maildir.relative_to(base)))
        return walk(os.fspath(base), parts)[0]
    except (FileNotFoundError, NotADirectoryError):
        return None


@dataclass
class QuotaGuard:
    """Guard for :func:`deliver_maildirs_sync` enforcing per-maildir limits."""

    limits: Mapping[Path, QuotaLimits | None]
    policy: QuotaPolicy
    forced: bool = True
    enforce: bool = True
    warnings: list[QuotaWarning] = field(default_factory=list)

    @contextlib.contextmanager
    def __call__(
        self, target: MaildirTarget, home: OpenMaildir, staged: StagedMessage
    ) -> Iterator[object]:
        limits = self.limits.get(target.maildir)
        ref = MaildirRef(home.fd, home.path)
        with maildir_lock(home.fd):
            try:
                state = read_quota(ref, limits, forced=self.forced, uid=target.uid, gid=target.gid)
            except OSError as exc:
                raise _quota_file_error(target, exc) from exc
            decision = decide(state.limits, state.usage, staged.size, self.policy)
            if self.enforce and decision.status is not None:
                log.info(
                    "%s: over quota: %d + %d bytes, limit %s",
                    target.recipient,
                    state.usage.bytes,
                    staged.size,
                    state.limits,
                )
                raise DeliveryError(decision.status.dsn, decision.status.text)
            yield decision
            try:
                append_delta(ref, staged.size, 1)
            except OSError as exc:
                # The message is in new/ already: delivered.  The next
                # reader finds the file stale or unreadable and sums again.
                _quota_file_error(target, exc)
        after = Usage(state.usage.bytes + staged.size, state.usage.count + 1)
        self.warnings.extend(
            QuotaWarning(target, percent, state.limits, after) for percent in decision.warnings
        )


def _quota_file_error(target: MaildirTarget, exc: OSError) -> DeliveryError:
    """``maildirsize`` (or a folder it sums) cannot be used: logged with the
    file, and the recipient deferred in Postfix's words for a file it
    cannot create (a symbolic link: "Too many levels of symbolic links")."""
    where = exc.filename or target.maildir / "maildirsize"
    log.warning("recipient %s: quota file %s: %s", target.recipient, where, strerror(exc))
    return DeliveryError(
        create_error_dsn(exc),
        f"maildir delivery failed: create maildir file {where}: {strerror(exc)}",
    )


#: The quota code's name for the per-path locks (mailhost.delivery.pathlock).
MailboxLocks = PathLocks


LOCKS = MailboxLocks()


async def deliver_with_quota(
    message: bytes,
    sender: str,
    targets: Sequence[QuotaTarget],
    policy: QuotaPolicy,
    *,
    forced: bool = True,
    header_mode: HeaderMode = "postfix",
    file_size_limit: int = 0,
    hostname: str | None = None,
    locks: MailboxLocks = LOCKS,
) -> list[MaildirResult]:
    """Deliver to maildirs with quota; one result per target, in order.
    Warnings crossed by this delivery are delivered to their mailboxes.
    Takes the mailboxes' turns in ``locks`` for the whole of it; a caller
    that holds them already calls :func:`deliver_with_quota_locked`."""
    async with locks.hold(*(t.target.maildir for t in targets)):
        return await deliver_with_quota_locked(
            message,
            sender,
            targets,
            policy,
            forced=forced,
            header_mode=header_mode,
            file_size_limit=file_size_limit,
            hostname=hostname,
        )


async def deliver_with_quota_locked(
    message: bytes,
    sender: str,
    targets: Sequence[QuotaTarget],
    policy: QuotaPolicy,
    *,
    forced: bool = True,
    header_mode: HeaderMode = "postfix",
    file_size_limit: int = 0,
    hostname: str | None = None,
) -> list[MaildirResult]:
    """:func:`deliver_with_quota` for a caller that holds the mailbox turn
    (a :class:`MailboxLocks` hold) of every target maildir and keeps it
    until this returns — required: the turn is what keeps this process's
    deliveries from occupying pool threads while they wait for one another's
    flock, and the warnings go into the same mailboxes under it.  The flock
    (:func:`maildir_lock`) is still taken around each check and write."""
    guard = QuotaGuard({t.target.maildir: t.limits for t in targets}, policy, forced=forced)
    plain = [t.target for t in targets]
    results = await run_blocking(
        lambda: deliver_maildirs_sync(
            message,
            sender,
            plain,
            header_mode=header_mode,
            file_size_limit=file_size_limit,
            guard=guard,
        )
    )
    for warning in guard.warnings:
        await _deliver_warning_locked(warning, policy, forced=forced, hostname=hostname)
    return results


async def deliver_warning(
    warning: QuotaWarning,
    policy: QuotaPolicy,
    *,
    forced: bool = True,
    hostname: str | None = None,
    locks: MailboxLocks = LOCKS,
) -> MaildirResult:
    """Put one warning into the owner's mailbox.  It is counted in the usage
    (as a dovecot-lda delivery would be) but never refused for quota."""
    async with locks.hold(warning.target.maildir):
        return await _deliver_warning_locked(warning, policy, forced=forced, hostname=hostname)


async def _deliver_warning_locked(
    warning: QuotaWarning,
    policy: QuotaPolicy,
    *,
    forced: bool,
    hostname: str | None,
) -> MaildirResult:
    """:func:`deliver_warning` under the mailbox turn the caller holds."""
    target = warning.target
    text = warning_message(
        target.recipient, warning.percent, warning.limits, warning.usage, hostname=hostname
    )
    guard = QuotaGuard({target.maildir: warning.limits}, policy, forced=forced, enforce=False)
    (result,) = await run_blocking(lambda: deliver_maildirs_sync(text, "", [target], guard=guard))
    if not result.status.delivered:
        log.warning("%s: quota warning not delivered: %s", target.recipient, result.status.text)
    return result


async def current_quota(
    maildir: Path,
    limits: QuotaLimits | None,
    *,
    forced: bool = True,
    uid: int | None = None,
    gid: int | None = None,
    persist: bool = True,
    base: Path | None = None,
) -> QuotaState:
    """Usage and limits of a mailbox now (for RCPT-time checks and tools);
    ``persist=False`` never writes (see :func:`read_quota`).  With ``base``
    (``virtual_mailbox_base``) the maildir is reached below it without
    following a link; a link raises
    :class:`~mailhost.delivery.dirfd.SymlinkRefused`."""

    def read() -> QuotaState:
        fd = open_existing_maildir(maildir, base)
        if fd is None:
            return QuotaState(limits or QuotaLimits(), Usage())
        try:
            with maildir_lock(fd):
                return read_quota(
                    MaildirRef(fd, maildir), limits, forced=forced, uid=uid, gid=gid,
                    persist=persist,
                )  # fmt: skip
        finally:
            os.close(fd)

    return await run_blocking(read)


async def recalc_quota(
    maildir: Path,
    limits: QuotaLimits | None,
    *,
    uid: int | None = None,
    gid: int | None = None,
) -> QuotaState:
    """Rewrite ``maildirsize`` from the files, under the mailbox lock (so no
    delivery of ours is between its check and its delta meanwhile)."""

    def recalc() -> QuotaState:
        fd = open_existing_maildir(maildir, None)
        if fd is None:
            return QuotaState(limits or QuotaLimits(), Usage())
        try:
            with maildir_lock(fd):
                return recalculate(MaildirRef(fd, maildir), limits, uid=uid, gid=gid)
        finally:
            os.close(fd)

    async with LOCKS.hold(maildir):
        return await run_blocking(recalc)
