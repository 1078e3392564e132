"""A maildir opened for one delivery: the base, each component below it,
``tmp/`` and ``new/``, reached through descriptors without following a
symbolic link (:mod:`mailhost.delivery.dirfd`), made on demand as virtual(8)
makes them, and checked writable by the recipient as the kernel would check
virtual(8) writing with the recipient's ids (docs/storage.md).
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from mailhost.delivery.dirfd import make_dir_at, split_relative, walk
from mailhost.fsutil import OpenDir


@dataclass(frozen=True)
class MaildirTarget:
    """One recipient's maildir and ownership.  ``base`` is the directory the
    maildir path was given relative to (``virtual_mailbox_base``): it is
    trusted, and nothing below it is followed if it is a symbolic link.
    Without one, the maildir's parent directory is the trusted base."""

    maildir: Path
    recipient: str
    original_recipient: str = ""
    uid: int | None = None
    gid: int | None = None
    base: Path | None = None


@dataclass(eq=False)
class OpenMaildir:
    """One maildir's directories, opened for one delivery."""

    path: Path
    fd: int
    tmp: OpenDir
    new: OpenDir
    #: the file system of ``tmp/`` (a hard link cannot cross it)
    dev: int

    def close(self) -> None:
        for fd in (self.tmp.fd, self.new.fd, self.fd):
            with contextlib.suppress(OSError):
                os.close(fd)


def _walk_maildir(target: MaildirTarget) -> int:
    """The maildir's descriptor: the base opened, each component below it
    opened (made when missing) without following a link.  Without a base,
    the maildir's parent is the trusted start."""
    maildir = target.maildir
    if target.base is not None:
        top, below = os.fspath(target.base).rstrip("/"), os.fspath(maildir)
        if below.startswith(top + "/"):
            # Strings, not Paths: this runs for every delivery.
            return walk(top or "/", split_relative(below[len(top) + 1 :]),
                        create=True, uid=target.uid, gid=target.gid)[0]  # fmt: skip
        base, parts = target.base, split_relative(os.fspath(maildir.relative_to(target.base)))
    else:
        base, parts = maildir.parent, [maildir.name]
    return walk(os.fspath(base), parts, create=True, uid=target.uid, gid=target.gid)[0]


def open_maildir(target: MaildirTarget) -> OpenMaildir:
    """Open (making what is missing, as virtual(8) does on demand) the
    maildir of ``target`` and its ``tmp/`` and ``new/``; ``cur/`` is made
    along with a maildir that was missing.  Raises OSError
    (:class:`~mailhost.delivery.dirfd.SymlinkRefused` for a link)."""
    path = target.maildir
    uid, gid = target.uid, target.gid
    fd = _walk_maildir(target)
    opened = [fd]
    where = os.fspath(path)
    tmp_path, new_path = os.path.join(where, "tmp"), os.path.join(where, "new")
    try:
        tmp_fd, made_tmp = make_dir_at(fd, "tmp", tmp_path, uid, gid)
        opened.append(tmp_fd)
        new_fd, made_new = make_dir_at(fd, "new", new_path, uid, gid)
        opened.append(new_fd)
        if made_tmp or made_new:
            cur_fd, _ = make_dir_at(fd, "cur", os.path.join(where, "cur"), uid, gid)
            os.close(cur_fd)
        tmp_st = os.fstat(tmp_fd)
        new_st = os.fstat(new_fd)
        for sub, st in (("tmp", tmp_st), ("new", new_st)):
            if not writable_by(st, uid, gid):
                raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), f"{path}/{sub}")
    except BaseException:
        for one in opened:
            os.close(one)
        raise
    return OpenMaildir(
        path, fd, OpenDir(tmp_path, tmp_fd, tmp_st), OpenDir(new_path, new_fd, new_st),
        tmp_st.st_dev,
    )  # fmt: skip


def writable_by(st: os.stat_result, uid: int | None, gid: int | None) -> bool:
    """Whether the recipient could add names to the directory ``st``: the
    check the kernel makes when virtual(8) writes as the recipient
    (set_eugid: the uid and only the primary gid).  We write as root, so we
    make it ourselves; None (not root, or our own ids): the kernel's."""
    if uid is None:
        return True
    if st.st_uid == uid:
        need = stat.S_IWUSR | stat.S_IXUSR
    elif gid is not None and st.st_gid == gid:
        need = stat.S_IWGRP | stat.S_IXGRP
    else:
        need = stat.S_IWOTH | stat.S_IXOTH
    return st.st_mode & need == need


def ensure_maildir(maildir: Path, uid: int | None = None, gid: int | None = None) -> None:
    """Make ``maildir/{tmp,new,cur}`` exist (virtual(8) creates them on demand)."""
    open_maildir(MaildirTarget(maildir, "", uid=uid, gid=gid)).close()
