"""The Maildir++ ``maildirsize`` file, read and written the way Dovecot 2.3's
``quota = maildir`` backend and Courier do (spec 6.1, 6.2).

Format: line 1 holds the limits (``<bytes>S``, ``<count>C``, comma separated;
0 or missing = unlimited), every further line a ``<bytes> <count>`` delta.
Usage is the sum of the deltas.  Deliveries append one line with a single
O_APPEND write; a recalculation sums the files of every folder and replaces
the file atomically through the dotlock name ``maildirsize.lock`` (the name
Dovecot writes and renames too, so the two never rewrite it at once).

The file is recalculated when it is missing, when it is 5120 bytes or larger
(readers read at most that much), when it does not parse (bad line, NUL,
negative totals, unterminated last line), when forced configured limits differ
from its header, or when it shows the mailbox over quota and has more than one
delta line or is older than 15 minutes.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import time
from dataclasses import dataclass

from mailhost.delivery.dirfd import chown_fd, unlink_at
from mailhost.log import logger
from mailhost.quota.scan import (
    Maildir,
    MaildirRef,
    Usage,
    folders,
    open_file,
    opened_maildir,
    scan,
    scan_usage,
    stamps_now,
)

__all__ = ["Maildir", "MaildirRef", "Usage", "folders", "opened_maildir", "scan_usage"]

log = logger("quota")

FILENAME = "maildirsize"
LOCK_NAME = "maildirsize.lock"
#: Courier's and Dovecot's read buffer: a file this large is recalculated.
READ_LIMIT = 5120
#: An over-quota file older than this is not trusted (Courier spec, Dovecot).
TRUST_AGE = 15 * 60
#: A recalculation lock older than this was left by a crashed writer.
STALE_LOCK_AGE = 30.0
_SCAN_ATTEMPTS = 3

_DELTA = re.compile(rb"[ \t]*([+-]?[0-9]+)[ \t]+([+-]?[0-9]+)")
_LIMIT_ITEM = re.compile(r"([0-9]+)([SC])")


@dataclass(frozen=True)
class QuotaLimits:
    """A byte and a message-count limit; 0 means unlimited."""

    bytes: int = 0
    count: int = 0

    @property
    def unlimited(self) -> bool:
        return not self.bytes and not self.count


@dataclass(frozen=True)
class MaildirSize:
    """A parsed file: header limits, summed usage, number of delta lines."""

    limits: QuotaLimits
    usage: Usage
    deltas: int


def parse_limits(line: str) -> QuotaLimits:
    """The header line; malformed and zero items are ignored (Dovecot)."""
    size = count = 0
    for item in line.strip().split(","):
        m = _LIMIT_ITEM.fullmatch(item.strip())
        if not m or int(m.group(1)) == 0:
            continue
        if m.group(2) == "S":
            size = int(m.group(1))
        else:
            count = int(m.group(1))
    return QuotaLimits(size, count)


def format_limits(limits: QuotaLimits) -> str:
    """Dovecot's header: ``<bytes>S`` unless only a count limit exists
    (so no limits at all is ``0S``), then ``,<count>C`` when counted."""
    parts = []
    if limits.bytes or not limits.count:
        parts.append(f"{limits.bytes}S")
    if limits.count:
        parts.append(f"{limits.count}C")
    return ",".join(parts)


def format_file(limits: QuotaLimits, usage: Usage) -> bytes:
    """A freshly recalculated file: header and one summary line."""
    return f"{format_limits(limits)}\n{usage.bytes} {usage.count}\n".encode("ascii")


def format_delta(size: int, count: int) -> bytes:
    return f"{size} {count}\n".encode("ascii")


def parse_maildirsize(data: bytes) -> MaildirSize | None:
    """Parse a file's content; ``None`` when it must be recalculated."""
    if len(data) >= READ_LIMIT or b"\0" in data or not data.endswith(b"\n"):
        return None
    lines = data[:-1].split(b"\n")
    try:
        limits = parse_limits(lines[0].decode("ascii"))
    except UnicodeDecodeError:
        return None
    size = count = 0
    for line in lines[1:]:
        m = _DELTA.match(line)
        if m is None:
            return None
        size += int(m.group(1))
        count += int(m.group(2))
    if size < 0 or count < 0:
        return None
    return MaildirSize(limits, Usage(size, count), len(lines) - 1)


def is_over(limits: QuotaLimits, usage: Usage) -> bool:
    return bool(
        (limits.bytes and usage.bytes > limits.bytes)
        or (limits.count and usage.count > limits.count)
    )


def recalc_reason(
    parsed: MaildirSize | None,
    *,
    mtime: float,
    now: float,
    configured: QuotaLimits | None,
    forced: bool,
) -> str | None:
    """Why an existing file must be recalculated, or ``None`` to trust it."""
    if parsed is None:
        return "unparsable or too large"
    if configured is not None and forced and parsed.limits != configured:
        return "limits changed"
    if is_over(parsed.limits, parsed.usage) and (parsed.deltas > 1 or mtime < now - TRUST_AGE):
        return "over quota"
    return None


# -- reading and writing -------------------------------------------------------------


@dataclass(frozen=True)
class QuotaState:
    """What a delivery needs: the limits in force and the current usage."""

    limits: QuotaLimits
    usage: Usage
    recalculated: str | None = None


def write_recalculated(
    maildir: Maildir,
    limits: QuotaLimits,
    usage: Usage,
    stamps: dict[str, int],
    *,
    uid: int | None = None,
    gid: int | None = None,
) -> bool:
    """Replace ``maildirsize`` via ``maildirsize.lock`` (write, fsync, rename,
    fsync dir), all relative to the maildir's descriptor.  Returns False
    when another writer holds the lock; removes the new file again when the
    folders changed meanwhile (spec 6.2)."""
    with opened_maildir(maildir) as ref:
        return _write_recalculated(ref, limits, usage, stamps, uid=uid, gid=gid)


def _write_recalculated(
    ref: MaildirRef,
    limits: QuotaLimits,
    usage: Usage,
    stamps: dict[str, int],
    *,
    uid: int | None,
    gid: int | None,
) -> bool:
    for _ in range(2):
        try:
            fd = open_file(ref, LOCK_NAME, os.O_WRONLY | os.O_CREAT | os.O_EXCL)
            break
        except FileExistsError:
            with contextlib.suppress(FileNotFoundError):
                st = os.stat(LOCK_NAME, dir_fd=ref.fd, follow_symlinks=False)
                if st.st_mtime < time.time() - STALE_LOCK_AGE:
                    unlink_at(ref.fd, LOCK_NAME)
                    continue
            return False
    else:
        return False
    try:
        try:
            chown_fd(fd, uid, gid)
            os.write(fd, format_file(limits, usage))
            os.fsync(fd)
        finally:
            os.close(fd)
        os.rename(LOCK_NAME, FILENAME, src_dir_fd=ref.fd, dst_dir_fd=ref.fd)
    except BaseException:
        unlink_at(ref.fd, LOCK_NAME)
        raise
    os.fsync(ref.fd)
    if not stamps or stamps_now(ref) != stamps:
        # A message arrived or left while we summed: the number may be stale.
        unlink_at(ref.fd, FILENAME)
    return True


def read_quota(
    maildir: Maildir,
    configured: QuotaLimits | None,
    *,
    forced: bool = True,
    uid: int | None = None,
    gid: int | None = None,
    now: float | None = None,
    persist: bool = True,
) -> QuotaState:
    """The usage Dovecot would see for ``maildir``, recalculating (and
    rewriting ``maildirsize``) when the rules of spec 6.2 say so.

    ``configured`` are the limits from the quota table; ``forced`` is
    Dovecot's ``*`` rule (configured limits replace the header), otherwise
    (``?`` rule, or ``configured=None``) an existing header wins.
    ``persist=False`` sums the files when needed but writes nothing (a
    look from smtpd or a tool, which must not create files it would own).
    A ``maildirsize`` that is a symbolic link raises
    :class:`~mailhost.delivery.dirfd.SymlinkRefused` (Dovecot fails the
    same file with ELOOP or a permission error: "quota calculation error").
    """
    with opened_maildir(maildir) as ref:
        return _read_quota(ref, configured, forced, uid, gid, now, persist)


def _read_quota(
    ref: MaildirRef,
    configured: QuotaLimits | None,
    forced: bool,
    uid: int | None,
    gid: int | None,
    now: float | None,
    persist: bool,
) -> QuotaState:
    now = time.time() if now is None else now
    reason: str | None
    try:
        fd = open_file(ref, FILENAME, os.O_RDONLY)
    except FileNotFoundError:
        parsed, reason = None, "missing"
    else:
        try:
            data = os.read(fd, READ_LIMIT)
            mtime = os.fstat(fd).st_mtime
        finally:
            os.close(fd)
        parsed = parse_maildirsize(data)
        reason = recalc_reason(parsed, mtime=mtime, now=now, configured=configured, forced=forced)
        if reason is None and parsed is not None:
            return QuotaState(parsed.limits, parsed.usage)
    if configured is not None and (forced or parsed is None):
        limits = configured
    elif parsed is not None:
        limits = parsed.limits
    else:
        limits = configured or QuotaLimits()
    usage, stamps = scan(ref)
    if persist:
        _write_recalculated(ref, limits, usage, stamps, uid=uid, gid=gid)
    log.debug("%s: maildirsize recalculated (%s): %s", ref.path, reason, usage)
    return QuotaState(limits, usage, reason)


def recalculate(
    maildir: Maildir,
    configured: QuotaLimits | None,
    *,
    uid: int | None = None,
    gid: int | None = None,
) -> QuotaState:
    """Sum the mailbox from its files and rewrite ``maildirsize`` whatever its
    state (``doveadm quota recalc``).  Limits as in :func:`read_quota` with
    the forcing rule.  Raises OSError when the file cannot be replaced."""
    with opened_maildir(maildir) as ref:
        limits = configured
        if limits is None:
            try:
                fd = open_file(ref, FILENAME, os.O_RDONLY)
            except FileNotFoundError:
                parsed = None
            else:
                try:
                    parsed = parse_maildirsize(os.read(fd, READ_LIMIT))
                finally:
                    os.close(fd)
            limits = parsed.limits if parsed is not None else QuotaLimits()
        for _ in range(_SCAN_ATTEMPTS):
            usage, stamps = scan(ref)
            if not _write_recalculated(ref, limits, usage, stamps, uid=uid, gid=gid):
                raise OSError(errno.EBUSY, "maildirsize is being recalculated by another process")
            if _exists(ref, FILENAME):
                return QuotaState(limits, usage, "requested")
        return QuotaState(limits, usage, "requested")


def _exists(ref: MaildirRef, name: str) -> bool:
    try:
        os.stat(name, dir_fd=ref.fd, follow_symlinks=False)
    except FileNotFoundError:
        return False
    return True


def append_delta(maildir: Maildir, size: int, count: int) -> bool:
    """Record a change with one O_APPEND write.  A missing file is left
    missing: the next reader recalculates and counts the change anyway."""
    with opened_maildir(maildir) as ref:
        try:
            fd = open_file(ref, FILENAME, os.O_WRONLY | os.O_APPEND)
        except FileNotFoundError:
            return False
        try:
            line = format_delta(size, count)
            if os.write(fd, line) != len(line):
                raise OSError(errno.EIO, "short write to maildirsize")
        finally:
            os.close(fd)
        return True
