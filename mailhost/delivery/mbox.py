"""mbox delivery: append one message to a UNIX mailbox file as virtual(8) does.

Locking follows ``virtual_mailbox_lock`` (default ``fcntl, dotlock``): first
the dotlock ``PATH.lock`` (created O_EXCL; retried ``deliver_lock_attempts``
times one second apart; a lock older than ``stale_lock_time`` = 500 s is
removed), then the file is opened O_APPEND and locked with fcntl.  Parent
directories are not created (spec 4.2).

The mailbox's directory is reached through descriptors
(:mod:`mailhost.delivery.dirfd`): below a base (``virtual_mailbox_base``,
``mail_spool_directory``) no component is followed if it is a symbolic
link (``cannot open file: Too many levels of symbolic links``, logged with
the link), and the lock file and the mailbox are created, opened and
removed relative to the directory's descriptor.  The mailbox itself is
opened as Postfix's safe_open(3) opens it: an existing file must not be a
symbolic link (``file is a symbolic link``; local(8) follows one owned by
root in a root-owned directory that others cannot write, as Postfix
does), a directory (``file is a directory``) or have more than one hard
link (``file has N hard links``), and must still be the file that was
looked up (``file status changed unexpectedly``); a new one is
created O_EXCL (``cannot create file exclusively: ...``).  These texts and
their DSN (virtual: 4.2.0, deferred; local: 5.2.0, bounced) are recorded
from Postfix 3.7 in tests/delivery/postfix_symlinks.json.

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
from mailhost.delivery.dirfd import BASE_FLAGS, SymlinkRefused, chown_fd, split_relative, walk
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
    """One recipient's mailbox file.  ``base``: the directory the path is
    relative to (nothing below it is followed if it is a link); without
    one, the file's directory is opened by name (a local(8) file
    destination, written with its owner's privileges)."""

    path: Path
    recipient: str
    original_recipient: str = ""
    uid: int | None = None
    gid: int | None = None
    base: Path | None = None
    #: local(8): an existing mailbox that is a symbolic link owned by root
    #: is followed (safe_open(3)'s exception); virtual(8) below its base: never.
    root_symlinks: bool = False


def open_parent(target: MboxTarget) -> int:
    """The descriptor of the mailbox's directory (see :class:`MboxTarget`)."""
    if target.base is None:
        return os.open(target.path.parent, BASE_FLAGS)
    parts = split_relative(os.fspath(target.path.relative_to(target.base)))
    return walk(os.fspath(target.base), parts[:-1])[0]


@contextlib.contextmanager
def dotlock(
    path: Path,
    attempts: int = LOCK_ATTEMPTS,
    delay: float = LOCK_DELAY,
    *,
    dir_fd: int | None = None,
) -> Iterator[None]:
    """Hold ``PATH.lock`` (Postfix ``dot_lockfile``), relative to ``dir_fd``
    (the directory of ``path``) when given."""
    if dir_fd is None:
        fd = os.open(path.parent, BASE_FLAGS)
        try:
            with dotlock(path, attempts, delay, dir_fd=fd):
                yield
        finally:
            os.close(fd)
        return
    lock = path.name + ".lock"
    for attempt in range(1, attempts + 1):
        try:
            os.close(os.open(lock, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0,
                             dir_fd=dir_fd))  # fmt: skip
            break
        except FileExistsError:
            if attempt == attempts:
                raise
            with contextlib.suppress(FileNotFoundError):
                st = os.stat(lock, dir_fd=dir_fd, follow_symlinks=False)
                if st.st_ctime < time.time() - STALE_LOCK_TIME:
                    log.warning("%s.lock: removing stale lock file", path)
                    os.unlink(lock, dir_fd=dir_fd)
                    continue
            time.sleep(delay)
    try:
        yield
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(lock, dir_fd=dir_fd)


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


class _Refused(Exception):
    """safe_open(3)'s refusal: ``why`` and the errno that picks the DSN."""

    def __init__(self, why: str, err: int = errno.EPERM) -> None:
        super().__init__(why)
        self.why = why
        self.errno = err


_APPEND = os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC


def _trusted_link(target: MboxTarget, dir_fd: int, st: os.stat_result) -> bool:
    """safe_open(3)'s one exception: a link owned by root in a directory
    owned by root that group and others cannot write (local(8) only)."""
    if not target.root_symlinks or st.st_uid != 0:
        return False
    parent = os.fstat(dir_fd)
    return parent.st_uid == 0 and not parent.st_mode & (stat.S_IWGRP | stat.S_IWOTH)


def _open_existing(target: MboxTarget, dir_fd: int, name: str, st: os.stat_result) -> int:
    """safe_open_exist(): the file looked up as ``st`` (lstat), opened."""
    follow = stat.S_ISLNK(st.st_mode) and _trusted_link(target, dir_fd, st)
    if stat.S_ISLNK(st.st_mode) and not follow:
        # Postfix opens (following) before it looks: a link it cannot
        # follow fails the open; a stat() tells the same without opening.
        try:
            os.stat(name, dir_fd=dir_fd)
        except OSError as exc:
            raise _Refused(f"cannot open file: {strerror(exc)}", exc.errno or errno.EPERM) from exc
        raise _Refused("file is a symbolic link")
    try:
        fd = os.open(name, _APPEND | (0 if follow else os.O_NOFOLLOW), dir_fd=dir_fd)
    except OSError as exc:
        raise _Refused(f"cannot open file: {strerror(exc)}", exc.errno or errno.EPERM) from exc
    try:
        now = os.fstat(fd)
        if now.st_nlink != 1:
            raise _Refused(f"file has {now.st_nlink} hard links")
        if stat.S_ISDIR(now.st_mode):
            raise _Refused("file is a directory", errno.EISDIR)
        same = (now.st_dev, now.st_ino, now.st_mode) == (st.st_dev, st.st_ino, st.st_mode)
        if not follow and not same:
            raise _Refused("file status changed unexpectedly")
        if not stat.S_ISREG(now.st_mode):
            raise _not_regular(target)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _open_or_create(target: MboxTarget, dir_fd: int) -> tuple[int, bool]:
    """safe_open(O_CREAT): the existing mailbox, else a new one made O_EXCL
    (0600, handed to its owner); the descriptor and whether it is new."""
    name = target.path.name
    for _ in range(2):
        try:
            st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise _Refused(f"cannot open file: {strerror(exc)}", exc.errno or errno.EPERM) from exc
        else:
            return _open_existing(target, dir_fd, name, st), False
        try:
            flags = _APPEND | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
            fd = os.open(name, flags, 0o600, dir_fd=dir_fd)
        except FileExistsError:
            continue  # made meanwhile: open it as an existing file
        except OSError as exc:
            raise _Refused(
                f"cannot create file exclusively: {strerror(exc)}", exc.errno or errno.EPERM
            ) from exc
        try:
            chown_fd(fd, target.uid, target.gid)
        except BaseException:
            os.close(fd)
            raise
        return fd, True
    raise _Refused("file status changed unexpectedly")


def _open_mailbox(
    target: MboxTarget, dir_fd: int, strict_ownership: bool, failed: str, dsn: str
) -> int:
    """Open (creating, mode 0600) the mailbox for appending, as safe_open(3)
    does; with strict_mailbox_ownership, refuse a file the recipient does
    not own."""
    try:
        fd, created = _open_or_create(target, dir_fd)
    except _Refused as exc:
        err = OSError(exc.errno, exc.why)
        raise DeliveryError(create_error_dsn(err, dsn), f"{failed}{exc.why}") from exc
    if created or not strict_ownership or target.uid is None:
        return fd
    try:
        if os.fstat(fd).st_uid != target.uid:
            log.warning(
                'specify "strict_mailbox_ownership = no" to ignore mailbox ownership mismatch'
            )
            raise DeliveryError("4.2.0", f"destination {target.path} is not owned by recipient")
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
    failed: str | None = None,
    dsn: str = "4.2.0",
) -> DeliveryStatus:
    """Append ``message`` for one recipient; returns the outcome (never raises
    for a delivery problem).  ``failed`` starts every failure's text
    (virtual(8)'s ``delivery failed to mailbox PATH: `` by default; local(8)
    says ``cannot update mailbox PATH for user USER. ``); ``dsn`` is the
    status of a mailbox that cannot be opened (virtual 4.2.0, local 5.2.0)."""
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
    failed = f"delivery failed to mailbox {path}: " if failed is None else failed
    with contextlib.ExitStack() as stack:
        try:
            dir_fd = open_parent(target)
        except OSError as exc:
            if isinstance(exc, SymlinkRefused):
                log.warning(
                    "recipient %s: mailbox %s: refusing to follow symbolic link %s",
                    target.recipient, path, exc.link,
                )  # fmt: skip
            why = (
                f"unable to create lock file {path}.lock: {strerror(exc)}"
                if "dotlock" in locks and not isinstance(exc, SymlinkRefused)
                else f"cannot open file: {strerror(exc)}"
            )
            return DeliveryStatus(create_error_dsn(exc, dsn), f"{failed}{why}")
        stack.callback(os.close, dir_fd)
        if "dotlock" in locks:
            try:
                stack.enter_context(dotlock(path, lock_attempts, lock_delay, dir_fd=dir_fd))
            except FileExistsError:
                return DeliveryStatus("4.2.0", f"{failed}unable to lock for exclusive access")
            except OSError as exc:
                return DeliveryStatus(
                    create_error_dsn(exc),
                    f"{failed}unable to create lock file {path}.lock: {strerror(exc)}",
                )
        try:
            fd = _open_mailbox(target, dir_fd, strict_ownership, failed, dsn)
        except DeliveryError as exc:
            if "symbolic link" in exc.text:
                log.warning("recipient %s: mailbox %s is a symbolic link", target.recipient, path)
            return exc.status
        stack.callback(os.close, fd)
        for style in locks:
            if style == "dotlock":
                continue
            try:
                _kernel_lock(fd, style, lock_attempts, lock_delay)
            except OSError as exc:
                return DeliveryStatus(
                    "4.2.0", f"{failed}unable to lock for exclusive access: {strerror(exc)}"
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
                write_error_dsn(exc), f"{failed}error writing message: {strerror(exc)}"
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
    failed: str | None = None,
    dsn: str = "4.2.0",
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
            failed=failed,
            dsn=dsn,
        )
    )
