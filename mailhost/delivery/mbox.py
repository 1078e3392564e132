"""mbox delivery: append one message to a UNIX mailbox file as virtual(8) does.

Locking follows ``virtual_mailbox_lock`` (default ``fcntl, dotlock``): first
the dotlock ``PATH.lock`` (created O_EXCL; retried ``deliver_lock_attempts``
times one second apart; a lock older than ``stale_lock_time`` = 500 s is
removed), then the file is opened O_APPEND and locked with fcntl.  Parent
directories are not created (spec 4.2).

The copy is ``From SENDER  asctime`` (``MAILER-DAEMON`` for the null sender),
Return-Path/X-Original-To/Delivered-To, the message with ``>`` before every
line that starts with ``From ``, and one empty line.  The file is fsynced;
on any error it is truncated back to its previous size, so a failed delivery
never leaves half a message behind.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import stat
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from mailhost.config.lists import split_list
from mailhost.delivery.headers import (
    delivery_headers,
    is_delivery_loop,
    loop_text,
    quote_822_local,
)
from mailhost.delivery.status import (
    DeliveryError,
    DeliveryStatus,
    create_error_dsn,
    strerror,
    write_error_dsn,
)
from mailhost.log import logger
from mailhost.offload import run_blocking

log = logger("delivery.mbox")

#: Postfix defaults: deliver_lock_attempts, deliver_lock_delay, stale_lock_time.
LOCK_ATTEMPTS = 20
LOCK_DELAY = 1.0
STALE_LOCK_TIME = 500.0

KNOWN_LOCKS = frozenset({"fcntl", "flock", "dotlock"})

DELIVERED = DeliveryStatus("2.0.0", "delivered to mailbox")


def lock_styles(value: str) -> tuple[str, ...]:
    """Parse ``virtual_mailbox_lock``; an unknown style is a configuration error."""
    styles = tuple(split_list(value))
    for style in styles:
        if style not in KNOWN_LOCKS:
            raise ValueError(f"invalid virtual_mailbox_lock value: {style}")
    return styles


def from_line(sender: str, when: float) -> bytes:
    """The mbox separator: two spaces, then asctime() of the local time."""
    who = quote_822_local(sender) if sender else "MAILER-DAEMON"
    return f"From {who}  {time.asctime(time.localtime(when))}\n".encode("utf-8", "surrogateescape")


def quote_from(message: bytes) -> bytes:
    """``>From `` for lines starting ``From ``; LF endings; final newline."""
    body = message.replace(b"\r\n", b"\n")
    if body.startswith(b"From "):
        body = b">" + body
    body = body.replace(b"\nFrom ", b"\n>From ")
    if body and not body.endswith(b"\n"):
        body += b"\n"
    return body


def mbox_copy(
    message: bytes, sender: str, recipient: str, original_recipient: str, when: float
) -> bytes:
    """Everything appended to the mailbox for one delivery."""
    head = delivery_headers(sender, recipient, original_recipient)
    return from_line(sender, when) + head + quote_from(message) + b"\n"


@dataclass(frozen=True)
class MboxTarget:
    path: Path
    recipient: str
    original_recipient: str = ""
    uid: int | None = None
    gid: int | None = None


@contextlib.contextmanager
def dotlock(path: Path, attempts: int = LOCK_ATTEMPTS, delay: float = LOCK_DELAY) -> Iterator[None]:
    """Hold ``PATH.lock`` (Postfix ``dot_lockfile``)."""
    lock = path.with_name(path.name + ".lock")
    for attempt in range(1, attempts + 1):
        try:
            os.close(os.open(lock, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0))
            break
        except FileExistsError:
            if attempt == attempts:
                raise
            with contextlib.suppress(FileNotFoundError):
                if os.stat(lock).st_ctime < time.time() - STALE_LOCK_TIME:
                    log.warning("%s: removing stale lock file", lock)
                    lock.unlink()
                    continue
            time.sleep(delay)
    try:
        yield
    finally:
        lock.unlink(missing_ok=True)


def _kernel_lock(fd: int, style: str, attempts: int, delay: float) -> None:
    for attempt in range(1, attempts + 1):
        try:
            if style == "fcntl":
                fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            else:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.EACCES) or attempt == attempts:
                raise
            time.sleep(delay)
        else:
            return


def _not_regular(target: MboxTarget) -> DeliveryError:
    log.warning("recipient %s: destination %s is not a regular file", target.recipient, target.path)
    return DeliveryError("5.3.5", "mail system configuration error")


def _open_mailbox(target: MboxTarget, strict_ownership: bool, failed: str) -> int:
    """Open (creating, mode 0600) the mailbox for appending; refuse anything
    that is not a regular file and, with strict_mailbox_ownership, a file the
    recipient does not own."""
    path = target.path
    try:
        existing: os.stat_result | None = os.lstat(path)
    except FileNotFoundError:
        existing = None
    except OSError as exc:
        raise DeliveryError(create_error_dsn(exc), f"{failed}: {strerror(exc)}") from exc
    if existing is not None and not stat.S_ISREG(existing.st_mode):
        raise _not_regular(target)  # a directory, device or symlink
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    except OSError as exc:
        if exc.errno == errno.ELOOP:  # a symlink appeared since the lstat()
            raise _not_regular(target) from exc
        raise DeliveryError(create_error_dsn(exc), f"{failed}: {strerror(exc)}") from exc
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise _not_regular(target)
        if existing is None and os.geteuid() == 0 and target.uid is not None:
            os.fchown(fd, target.uid, target.gid if target.gid is not None else -1)
            st = os.fstat(fd)
        if strict_ownership and target.uid is not None and st.st_uid != target.uid:
            log.warning(
                'specify "strict_mailbox_ownership = no" to ignore mailbox ownership mismatch'
            )
            raise DeliveryError("4.2.0", f"destination {path} is not owned by recipient")
    except BaseException:
        os.close(fd)
        raise
    return fd


def deliver_mbox_sync(
    message: bytes,
    sender: str,
    target: MboxTarget,
    *,
    locks: Sequence[str] = ("fcntl", "dotlock"),
    file_size_limit: int = 0,
    strict_ownership: bool = True,
    lock_attempts: int = LOCK_ATTEMPTS,
    lock_delay: float = LOCK_DELAY,
    now: float | None = None,
) -> DeliveryStatus:
    """Append ``message`` for one recipient; returns the outcome (never raises
    for a delivery problem)."""
    path = target.path
    if is_delivery_loop(message, target.recipient):
        return DeliveryStatus("5.4.6", loop_text(target.recipient))
    copy = mbox_copy(
        message,
        sender,
        target.recipient,
        target.original_recipient,
        time.time() if now is None else now,
    )
    failed = f"delivery failed to mailbox {path}"
    with contextlib.ExitStack() as stack:
        if "dotlock" in locks:
            try:
                stack.enter_context(dotlock(path, lock_attempts, lock_delay))
            except FileExistsError:
                return DeliveryStatus("4.2.0", f"{failed}: unable to lock for exclusive access")
            except OSError as exc:
                return DeliveryStatus(
                    create_error_dsn(exc),
                    f"{failed}: unable to create lock file {path}.lock: {strerror(exc)}",
                )
        try:
            fd = _open_mailbox(target, strict_ownership, failed)
        except DeliveryError as exc:
            return exc.status
        stack.callback(os.close, fd)
        for style in locks:
            if style == "dotlock":
                continue
            try:
                _kernel_lock(fd, style, lock_attempts, lock_delay)
            except OSError as exc:
                return DeliveryStatus(
                    "4.2.0", f"{failed}: unable to lock for exclusive access: {strerror(exc)}"
                )
        end = os.fstat(fd).st_size
        try:
            if file_size_limit and end + len(copy) > file_size_limit:
                raise OSError(errno.EFBIG, os.strerror(errno.EFBIG))
            view = memoryview(copy)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, end)
            return DeliveryStatus(
                write_error_dsn(exc), f"{failed}: error writing message: {strerror(exc)}"
            )
    return DELIVERED


async def deliver_mbox(
    message: bytes,
    sender: str,
    target: MboxTarget,
    *,
    locks: Sequence[str] = ("fcntl", "dotlock"),
    file_size_limit: int = 0,
    strict_ownership: bool = True,
) -> DeliveryStatus:
    """:func:`deliver_mbox_sync` off the event loop."""
    return await run_blocking(
        lambda: deliver_mbox_sync(
            message,
            sender,
            target,
            locks=locks,
            file_size_limit=file_size_limit,
            strict_ownership=strict_ownership,
        )
    )
