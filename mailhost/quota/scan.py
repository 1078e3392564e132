"""Summing a Maildir++ mailbox from its files, as Dovecot's ``quota =
maildir`` backend does when ``maildirsize`` cannot be trusted (spec 6.2):
INBOX and every ``.Folder``, ``new/`` and ``cur/``, sizes from ``,S=`` or
stat().  Everything is reached through descriptors below the maildir's
(:mod:`mailhost.delivery.dirfd`); a ``new/`` or ``cur/`` that is a symbolic
link raises :class:`~mailhost.delivery.dirfd.SymlinkRefused`.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from mailhost.delivery.dirfd import BASE_FLAGS, SymlinkRefused, is_symlink_at, open_dir_at
from mailhost.delivery.maildir_names import parse_filename

_SCAN_ATTEMPTS = 3


@dataclass(frozen=True)
class Usage:
    bytes: int = 0
    count: int = 0

    def __add__(self, other: Usage) -> Usage:
        return Usage(self.bytes + other.bytes, self.count + other.count)


# -- the maildir, by descriptor -------------------------------------------------------


@dataclass(frozen=True)
class MaildirRef:
    """A maildir opened by the caller (:func:`mailhost.delivery.maildir.open_maildir`
    or :func:`opened_maildir`): every name below it is used relative to
    ``fd`` and never followed if it is a symbolic link; ``path`` is for
    messages only."""

    fd: int
    path: Path


Maildir = Path | MaildirRef


@contextlib.contextmanager
def opened_maildir(maildir: Maildir) -> Iterator[MaildirRef]:
    """``maildir`` as a :class:`MaildirRef`: a path (from a tool or a test,
    trusted as given) is opened for the block."""
    if isinstance(maildir, MaildirRef):
        yield maildir
        return
    fd = os.open(maildir, BASE_FLAGS)
    try:
        yield MaildirRef(fd, Path(maildir))
    finally:
        os.close(fd)


def open_file(ref: MaildirRef, name: str, flags: int) -> int:
    """Open ``name`` in the maildir without following a link (created 0600)."""
    try:
        return os.open(name, flags | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600, dir_fd=ref.fd)
    except OSError as exc:
        if exc.errno == errno.ELOOP or (exc.errno != errno.ENOENT and is_symlink_at(ref.fd, name)):
            raise SymlinkRefused(f"{ref.path}/{name}") from exc
        raise type(exc)(exc.errno, exc.strerror, f"{ref.path}/{name}") from exc


# -- scanning ----------------------------------------------------------------------


@contextlib.contextmanager
def _folders(ref: MaildirRef) -> Iterator[list[tuple[str, int]]]:
    """INBOX and every Maildir++ ``.Folder`` (name, descriptor): Dovecot
    counts each mailbox of the namespace (Trash included), so we do too
    (spec 6.2, open question 4).  A folder that is a symbolic link is not
    ours to count and is left out."""
    found: list[tuple[str, int]] = [("", ref.fd)]
    try:
        with os.scandir(ref.fd) as entries:
            names = [
                e.name
                for e in entries
                if e.name.startswith(".") and e.name not in (".", "..")
                and e.is_dir(follow_symlinks=False)
            ]  # fmt: skip
        for name in sorted(names):
            with contextlib.suppress(OSError):
                found.append((name, open_dir_at(ref.fd, name, f"{ref.path}/{name}")))
        yield found
    finally:
        for _, fd in found[1:]:
            os.close(fd)


def folders(maildir: Maildir) -> list[Path]:
    """The folders :func:`scan_usage` counts, by name (for tools)."""
    with opened_maildir(maildir) as ref, _folders(ref) as found:
        return [ref.path / name if name else ref.path for name, _ in found]


def _stamp(fd: int, sub: str) -> int | None:
    try:
        st = os.stat(sub, dir_fd=fd, follow_symlinks=False)
    except OSError:
        return None
    return st.st_mtime_ns if stat.S_ISDIR(st.st_mode) else None


def _dir_mtimes(ref: MaildirRef, found: list[tuple[str, int]]) -> dict[str, int]:
    stamps = {}
    for name, fd in found:
        for sub in ("new", "cur"):
            stamp = _stamp(fd, sub)
            if stamp is not None:
                stamps[f"{name}/{sub}"] = stamp
    return stamps


def _scan_once(ref: MaildirRef, found: list[tuple[str, int]]) -> Usage:
    size = count = 0
    for name, folder in found:
        for sub in ("new", "cur"):
            try:
                fd = open_dir_at(folder, sub, f"{ref.path}/{name}/{sub}")
            except (FileNotFoundError, NotADirectoryError):
                continue
            try:
                with os.scandir(fd) as it:
                    entries = list(it)
                for entry in entries:
                    if entry.name.startswith("."):
                        continue
                    known = parse_filename(entry.name).size
                    if known is None:
                        try:  # no usable ,S=: stat() as Dovecot does
                            known = entry.stat(follow_symlinks=False).st_size
                        except FileNotFoundError:
                            continue  # expunged while we looked
                    size += known
                    count += 1
            finally:
                os.close(fd)
    return Usage(size, count)


def scan(ref: MaildirRef) -> tuple[Usage, dict[str, int]]:
    with _folders(ref) as found:
        for _ in range(_SCAN_ATTEMPTS):
            before = _dir_mtimes(ref, found)
            usage = _scan_once(ref, found)
            if _dir_mtimes(ref, found) == before:
                return usage, before
    return usage, {}


def scan_usage(maildir: Maildir) -> tuple[Usage, dict[str, int]]:
    """Sum the mailbox from its files; retried while directories change.
    A ``new/`` or ``cur/`` that is a symbolic link raises
    :class:`~mailhost.delivery.dirfd.SymlinkRefused`."""
    with opened_maildir(maildir) as ref:
        return scan(ref)


def stamps_now(ref: MaildirRef) -> dict[str, int]:
    with _folders(ref) as found:
        return _dir_mtimes(ref, found)
