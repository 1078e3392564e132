"""Delivery to ``/file/name`` destinations with somebody else's privileges.

local(8) appends to a file named in an alias or ``:include:`` file with the
privileges of whoever owns that name (the alias database owner,
``default_privs`` when root owns it): it switches its effective ids before
opening the file, so ``/etc/passwd`` in a root-owned ``/etc/aliases`` is
refused by the kernel, not written by root.

mailhost delivers from a thread of a multi-threaded process, where
setuid(2) would change every thread.  Linux's *filesystem* ids are per
thread: the append runs on an offload thread that sets its fsuid/fsgid
(setfsuid(2), setfsgid(2)) to the owner for the duration of the append and
back to root afterwards; the kernel drops the filesystem capabilities of a
thread whose fsuid is not 0, so permission checks are the owner's.  The
append itself is :func:`mailhost.delivery.mbox.deliver_mbox_sync` (mbox
format, kernel locks; a dotlock would need a writable directory, which
local(8) does not insist on for files either) or, for a name ending in
``/``, a Maildir delivery.  The file is opened by Postfix's safe_open(3)
rules (no symbolic link unless root's in a root-owned directory others
cannot write, one hard link, not a directory; created O_EXCL) and a
failure bounces 5.2.0 as local(8)'s do; the directories above it are
followed as Postfix follows them, with the owner's permission checks
(docs/storage.md).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
from collections.abc import Iterator
from pathlib import Path

from mailhost.delivery.maildir import MaildirTarget, deliver_maildirs_sync
from mailhost.delivery.mbox import MboxTarget, deliver_mbox_sync
from mailhost.delivery.status import DeliveryStatus
from mailhost.offload import run_blocking

_LIBC = ctypes.CDLL(None, use_errno=True)
#: setfsuid(-1) changes nothing and returns the current id.
_QUERY = 0xFFFFFFFF


class PrivilegeError(OSError):
    """The thread could not take on the owner's filesystem ids."""


@contextlib.contextmanager
def filesystem_ids(uid: int, gid: int) -> Iterator[None]:
    """Run the block with this thread's fsuid/fsgid set to ``uid``/``gid``."""
    setfsuid = getattr(_LIBC, "setfsuid", None)
    setfsgid = getattr(_LIBC, "setfsgid", None)
    if setfsuid is None or setfsgid is None:
        raise PrivilegeError("setfsuid(2) is not available on this system")
    old_gid = setfsgid(gid)
    old_uid = setfsuid(uid)
    try:
        if setfsuid(_QUERY) != uid or setfsgid(_QUERY) != gid:
            raise PrivilegeError(f"cannot switch to uid {uid} gid {gid}")
        yield
    finally:
        setfsuid(old_uid)
        setfsgid(old_gid)


def append_sync(
    message: bytes, sender: str, path: str, recipient: str, original: str,
    locks: tuple[str, ...], file_size_limit: int, mailbox: bool = False,
) -> DeliveryStatus:  # fmt: skip
    """Append with this thread's privileges; ``delivered to file: PATH``
    (with ``mailbox``, a home-directory mailbox: its own texts and locks)."""
    if path.endswith("/"):
        (result,) = deliver_maildirs_sync(
            message,
            sender,
            [MaildirTarget(Path(path), recipient, original)],
            file_size_limit=file_size_limit,
        )
        status = result.status
    else:
        kernel_locks = locks if mailbox else tuple(lock for lock in locks if lock != "dotlock")
        status = deliver_mbox_sync(
            message, sender, MboxTarget(Path(path), recipient, original, root_symlinks=True),
            locks=kernel_locks, file_size_limit=file_size_limit, strict_ownership=False,
            dsn="5.2.0",
        )  # fmt: skip
    if mailbox:
        return status
    if status.delivered:
        return DeliveryStatus(status.dsn, f"delivered to file: {path}")
    # local(8) words a failure for a file destination this way (file.c).
    failed = f"delivery failed to mailbox {path}"
    if status.text.startswith(failed):
        text = f"cannot append message to file {path}" + status.text[len(failed) :]
        return DeliveryStatus(status.dsn, text)
    return status


def _append_as(
    uid: int | None, gid: int | None, message: bytes, sender: str, path: str,
    recipient: str, original: str, locks: tuple[str, ...], file_size_limit: int, mailbox: bool,
) -> DeliveryStatus:  # fmt: skip
    me = os.geteuid()
    args = (message, sender, path, recipient, original, locks, file_size_limit, mailbox)
    if uid is None or gid is None or me != 0 or (uid == me and gid == os.getegid()):
        return append_sync(*args)
    try:
        with filesystem_ids(uid, gid):
            return append_sync(*args)
    except PrivilegeError as exc:
        return DeliveryStatus("4.3.0", f"cannot append message to file {path}: {exc}")


async def append_file(
    message: bytes, sender: str, path: str, recipient: str, original: str, *,
    uid: int | None, gid: int | None, locks: tuple[str, ...], file_size_limit: int = 0,
    mailbox: bool = False,
) -> DeliveryStatus:  # fmt: skip
    """Append ``message`` to ``path`` as ``uid``/``gid`` (None: as ourselves).
    ``mailbox``: a mailbox in the user's home directory (home_mailbox), which
    local(8) also writes with the user's privileges."""
    return await run_blocking(
        _append_as, uid, gid, message, sender, path, recipient, original, locks,
        file_size_limit, mailbox,
    )  # fmt: skip
