"""Directories reached through descriptors below one opened base.

A mailbox path from ``virtual_mailbox_maps`` is checked and then used; when
it is used *by name*, every component is looked up again by the kernel, and
whoever can write a directory on the way (the mailbox owner, with IMAP or a
shell) can swap it for a symbolic link between the check and the use — and
mailhost, running as root, would create files wherever the link points.
Postfix's virtual(8) avoids that differently: it writes with the
recipient's effective uid (set_eugid), so a link can only lead where the
recipient could write anyway.  One Python process cannot switch uids per
thread, so mailhost never uses a path by name below the base:

* the base (``virtual_mailbox_base``, ``mail_spool_directory``: the
  administrator's) is opened once per delivery, following symlinks;
* every component below it is opened with ``O_DIRECTORY | O_NOFOLLOW``
  relative to its parent's descriptor (openat(2)); a missing directory is
  made with mkdirat(2) and then opened the same way, so a link put in its
  place in between is refused, not followed;
* files are created, linked, renamed and removed only relative to those
  descriptors, with ``O_NOFOLLOW`` / ``AT_SYMLINK_NOFOLLOW``; directories are
  fsynced through them (:class:`OpenDir`).

A symbolic link anywhere below the base raises :class:`SymlinkRefused`
(errno ``ELOOP``, "Too many levels of symbolic links", the error Postfix
reports for a link it cannot follow), naming the link.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import secrets
import stat
from collections.abc import Sequence
from pathlib import Path

from mailhost.fsutil import OpenDir

__all__ = ["OpenDir"]

#: How every directory below a base is opened.
DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
#: How a base (the administrator's own path) is opened.
BASE_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC

#: Our effective uid; mailhost never changes it while running.
_EUID = os.geteuid()


class SymlinkRefused(OSError):
    """A symbolic link where a directory or file below a base was expected."""

    def __init__(self, link: str) -> None:
        super().__init__(errno.ELOOP, os.strerror(errno.ELOOP), link)
        self.link = link


def chown_fd(fd: int, uid: int | None, gid: int | None) -> None:
    """Hand a file or directory we created to its owner (as root only):
    Postfix creates them with the recipient's effective ids."""
    if uid is None or _EUID != 0:
        return
    os.fchown(fd, uid, gid if gid is not None else -1)


def is_symlink_at(dir_fd: int, name: str) -> bool:
    try:
        return stat.S_ISLNK(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode)
    except OSError:
        return False


def open_dir_at(dir_fd: int, name: str, path: str) -> int:
    """Open the directory ``name`` below ``dir_fd`` without following a
    link (``path`` names it in errors)."""
    for attempt in range(3):
        try:
            return os.open(name, DIR_FLAGS, dir_fd=dir_fd)
        except OSError as exc:
            # O_DIRECTORY|O_NOFOLLOW on a link fails ENOTDIR (Linux) or ELOOP.
            if exc.errno not in (errno.ELOOP, errno.ENOTDIR):
                raise type(exc)(exc.errno, exc.strerror, path) from exc
            kind = _kind_at(dir_fd, name)
            if kind == stat.S_IFLNK:
                raise SymlinkRefused(path) from exc
            if kind != stat.S_IFDIR or attempt == 2:
                raise type(exc)(exc.errno, exc.strerror, path) from exc
            # A directory again: the name was swapped meanwhile; look again.
    raise AssertionError("unreachable")


def _kind_at(dir_fd: int, name: str) -> int | None:
    try:
        return stat.S_IFMT(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode)
    except OSError:
        return None


def make_dir_at(
    dir_fd: int, name: str, path: str, uid: int | None, gid: int | None
) -> tuple[int, bool]:
    """Open ``name`` below ``dir_fd``, creating it (0700, handed to
    ``uid``/``gid``) when missing; the descriptor and whether we made it.

    A directory that must change hands is made under a staging name, handed
    over, and only then given its name (renameat2 RENAME_NOREPLACE): a
    concurrent delivery never opens it while it still belongs to root (its
    writability check would fail and defer).  Where the kernel or the file
    system cannot rename without replacing, it is made in place as before."""
    staged = uid is not None and _EUID == 0
    for _ in range(3):
        try:
            return open_dir_at(dir_fd, name, path), False
        except FileNotFoundError:
            pass
        if staged:
            made = _make_handed_over(dir_fd, name, path, uid, gid)
            if made is None:
                continue  # a concurrent delivery named its own first: open theirs
            if made >= 0:
                return made, True
        try:
            os.mkdir(name, 0o700, dir_fd=dir_fd)
        except FileExistsError:
            continue  # a concurrent delivery made it first: open theirs
        fd = open_dir_at(dir_fd, name, path)
        try:
            chown_fd(fd, uid, gid)
        except BaseException:
            os.close(fd)
            raise
        return fd, True
    return open_dir_at(dir_fd, name, path), False


#: renameat2(2)'s flag: fail with EEXIST rather than replace the target.
RENAME_NOREPLACE = 1
_LIBC = ctypes.CDLL(None, use_errno=True)
_RENAMEAT2 = getattr(_LIBC, "renameat2", None)


def rename_noreplace(dir_fd: int, old: str, new: str) -> bool | None:
    """Rename ``old`` to ``new`` below ``dir_fd`` unless ``new`` exists:
    True when renamed, False when ``new`` exists, None when renameat2 or its
    flag is not supported here (glibc, kernel or file system)."""
    if _RENAMEAT2 is None:
        return None
    result = _RENAMEAT2(dir_fd, os.fsencode(old), dir_fd, os.fsencode(new), RENAME_NOREPLACE)
    if result == 0:
        return True
    code = ctypes.get_errno()
    if code == errno.EEXIST:
        return False
    if code in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP):
        return None
    raise OSError(code, os.strerror(code), new)


def _make_handed_over(
    dir_fd: int, name: str, path: str, uid: int | None, gid: int | None
) -> int | None:
    """``name`` made under a staging name, handed to ``uid``/``gid``, then
    renamed into place: its descriptor; None when another delivery's
    directory took the name first; -1 when the rename is not supported
    (the staging directory is gone again).  The staging name does not start
    with a dot, so a Maildir reader never takes it for a folder."""
    stage = f"{name}.mkdir-{os.getpid()}-{secrets.token_hex(4)}"
    os.mkdir(stage, 0o700, dir_fd=dir_fd)
    try:
        fd = open_dir_at(dir_fd, stage, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.rmdir(stage, dir_fd=dir_fd)
        raise
    try:
        chown_fd(fd, uid, gid)
        renamed = rename_noreplace(dir_fd, stage, name)
    except BaseException:
        os.close(fd)
        with contextlib.suppress(OSError):
            os.rmdir(stage, dir_fd=dir_fd)
        raise
    if renamed:
        return fd
    os.close(fd)
    os.rmdir(stage, dir_fd=dir_fd)
    return None if renamed is False else -1


def open_base(base: str) -> int:
    """The administrator's directory, following links (it is trusted)."""
    return os.open(base, BASE_FLAGS)


def split_relative(relative: str) -> list[str]:
    """The components of a relative path (no ``..``: checked before)."""
    return [part for part in relative.split("/") if part not in ("", ".")]


def walk(
    base: str,
    parts: Sequence[str],
    *,
    create: bool = False,
    uid: int | None = None,
    gid: int | None = None,
) -> tuple[int, bool]:
    """Open ``base``, then each of ``parts`` below it without following a
    link (creating missing ones with ``create``); the last directory's
    descriptor and whether any directory was made.  Every descriptor on the
    way is closed."""
    path = base.rstrip("/") or "/"
    try:
        fd = open_base(base)
    except FileNotFoundError:
        if not create:
            raise
        # A base that does not exist yet is made on demand too (virtual(8)
        # makes every missing directory); the nearest existing ancestor is
        # the trusted start, the rest is made and walked below it.
        start, missing = Path(path), list[str]()
        while not start.is_dir() and start.parent != start:
            start, missing = start.parent, [start.name, *missing]
        return walk(os.fspath(start), [*missing, *parts], create=True, uid=uid, gid=gid)
    made = False
    try:
        for part in parts:
            path = os.path.join(path, part)
            if create:
                child, new = make_dir_at(fd, part, path, uid, gid)
                made = made or new
            else:
                child = open_dir_at(fd, part, path)
            os.close(fd)
            fd = child
    except BaseException:
        os.close(fd)
        raise
    return fd, made


def unlink_at(dir_fd: int, name: str) -> None:
    """Remove ``name`` below ``dir_fd`` if it is there."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(name, dir_fd=dir_fd)
