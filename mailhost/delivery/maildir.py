"""Maildir delivery: unique names, tmp → fsync → link into new/ → fsync new/.

The recipe is D. J. Bernstein's (cr.yp.to/proto/maildir.html, spec 5.1) with
the naming Dovecot uses so Dovecot never needs to stat() our files (spec 5.3):

    new/<sec>.M<usec>P<pid>Q<n>R<random>.<host>,S=<size>,W=<vsize>

``<host>`` is gethostname() with ``/`` and ``:`` written ``\\057``/``\\072``;
``S=`` is the exact byte size of the file (LF line endings, prepended headers
included) and ``W=`` its RFC822.SIZE (every bare LF counted as CRLF).

Unlike virtual(8), which only fsyncs the file, we also fsync ``new/`` before
reporting success: a 250 (and a ``status=sent``) means on disk (DESIGN rule 6).
Missing maildirs are created with mode 0700 like Postfix does, owned by the
recipient's uid/gid when we run as root.

One message for several maildirs is written once: the staged tmp file is
hard-linked into every ``new/`` on the same filesystem that belongs to the same
owner (a file has one owner, and mode 0600 keeps other users out) and copied
elsewhere.  Copies can only share a file when their prepended headers are
identical; ``header_mode="shared"`` makes that so for a multi-recipient batch
by leaving out the per-recipient X-Original-To/Delivered-To, the choice Dovecot
LMTP makes (``lmtp_hdr_delivery_address`` is "none" for several recipients).
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import os
import random
import re
import socket
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from mailhost.delivery.headers import (
    delivered_to_addresses,
    delivery_headers,
    is_delivery_loop,
    loop_text,
)
from mailhost.delivery.status import (
    DeliveryError,
    DeliveryStatus,
    create_error_dsn,
    strerror,
    write_error_dsn,
)
from mailhost.fsutil import DurableFile, StrPath, commit_durably, raise_first, write_all
from mailhost.log import current_pid, logger

log = logger("delivery.maildir")

_SUBDIRS = ("tmp", "new", "cur")
_FLAG_LETTERS = frozenset("DFPRST")
_NAME_RETRIES = 10


# -- names -------------------------------------------------------------------


def escape_hostname(host: str) -> str:
    """The host part of a unique name: ``/`` and ``:`` may not appear (5.1)."""
    return host.replace("/", "\\057").replace(":", "\\072")


class UniqueNames:
    """Maildir unique names for this process: ``M`` and the seconds come from
    one clock reading, ``P`` is the pid, ``Q`` counts names made by this
    process and ``R`` adds 64 random bits, so names never repeat even within
    one microsecond or across a fork."""

    def __init__(self, hostname: str | None = None) -> None:
        self.host = escape_hostname(hostname or socket.gethostname())
        self._count = itertools.count(1)
        self._lock = threading.Lock()

    def next(self) -> str:
        ns = time.time_ns()
        with self._lock:
            n = next(self._count)
        sec, usec = divmod(ns // 1000, 1_000_000)
        # random's generator is reseeded in a forked child; no system call
        # per name as os.urandom would make.
        rand = random.getrandbits(64)
        return f"{sec}.M{usec}P{current_pid()}Q{n}R{rand:016x}.{self.host}"


#: The process-wide name source.
NAMES = UniqueNames()


def vsize(content: bytes) -> int:
    """RFC822.SIZE of LF-terminated content: each bare LF counts as CRLF."""
    return len(content) + content.count(b"\n") - content.count(b"\r\n")


def sized_name(unique: str, size: int, virtual_size: int) -> str:
    return f"{unique},S={size},W={virtual_size}"


@dataclass(frozen=True)
class MaildirFileInfo:
    """What a maildir file name says: base name, ``S=``/``W=`` and flags."""

    base: str
    size: int | None
    vsize: int | None
    flags: str


def _field(base: str, key: str) -> int | None:
    # Dovecot accepts ,S=/,W= only when the digits run to ',' or the end of
    # the base name (the ':' info was split off already).
    m = re.search(rf",{key}=([0-9]+)(?=,|$)", base)
    return int(m.group(1)) if m else None


def parse_filename(name: str) -> MaildirFileInfo:
    """Split ``1.M1P1.h,S=36,W=41:2,S`` into its parts (spec 5.1, 5.2)."""
    base, sep, info = name.partition(":")
    flags = ""
    if sep and info.startswith("2,"):
        flags = info[2:].split(",", 1)[0]
    return MaildirFileInfo(base, _field(base, "S"), _field(base, "W"), flags)


def info_suffix(flags: str) -> str:
    """``:2,`` plus the standard flags in ASCII order (``SRF`` → ``:2,FRS``);
    Dovecot's keyword letters a–z follow them."""
    std = sorted(set(flags) & _FLAG_LETTERS)
    keywords = sorted({f for f in flags if "a" <= f <= "z"})
    return ":2," + "".join(std + keywords)


# -- directories ---------------------------------------------------------------


#: Our effective uid; mailhost never changes it while running.
_EUID = os.geteuid()


def _chown(path: Path | int, uid: int | None, gid: int | None) -> None:
    # Postfix writes with the recipient's effective ids; one Python process
    # cannot switch ids per thread, so as root we hand created files over.
    if uid is None or _EUID != 0:
        return
    if isinstance(path, int):
        os.fchown(path, uid, gid if gid is not None else -1)
    else:
        os.chown(path, uid, gid if gid is not None else -1, follow_symlinks=False)


def make_dirs(path: Path, uid: int | None, gid: int | None) -> None:
    """Create ``path`` and its missing parents, mode 0700, owned by uid/gid."""
    missing: list[Path] = []
    probe = path
    while not probe.is_dir():
        # Re-check is_dir(): a concurrent delivery may have created it meanwhile.
        if (probe.exists() or probe.is_symlink()) and not probe.is_dir():
            raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), str(probe))
        missing.append(probe)
        if probe.parent == probe:
            break
        probe = probe.parent
    for directory in reversed(missing):
        try:
            os.mkdir(directory, 0o700)
        except FileExistsError:
            continue  # a concurrent delivery made it first
        _chown(directory, uid, gid)


def ensure_maildir(maildir: Path, uid: int | None = None, gid: int | None = None) -> None:
    """Make ``maildir/{tmp,new,cur}`` exist (virtual(8) creates them on demand)."""
    for sub in _SUBDIRS:
        if not (maildir / sub).is_dir():
            make_dirs(maildir / sub, uid, gid)


# -- staging and publishing ------------------------------------------------------


@dataclass
class StagedMessage:
    """A message written and fsynced once in some maildir's ``tmp/``."""

    path: Path
    size: int
    vsize: int
    dev: int
    uid: int | None
    gid: int | None
    content: bytes = field(repr=False)
    #: still open and not yet fsynced (``stage(sync=False)``; the group
    #: commit fsyncs it, :func:`commit_copies`).
    fd: int | None = field(default=None, repr=False)


def stage(
    maildir: Path,
    content: bytes,
    *,
    uid: int | None = None,
    gid: int | None = None,
    file_size_limit: int = 0,
    names: UniqueNames = NAMES,
    sync: bool = True,
) -> StagedMessage:
    """Write ``content`` to ``maildir/tmp/<unique>`` (O_EXCL, 0600) and fsync it
    (with ``sync=False`` the file stays open for the commit to fsync).

    ``file_size_limit`` is virtual_mailbox_limit, which virtual(8) applies as a
    per-file size limit (RLIMIT_FSIZE, spec 4.3): exceeding it is EFBIG, 5.2.2.
    """
    size, vsz = len(content), vsize(content)
    created = False
    for _ in range(_NAME_RETRIES):
        tmp = maildir / "tmp" / sized_name(names.next(), size, vsz)
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        except FileExistsError:
            continue  # never overwrite: pick another name (spec 5.4)
        except FileNotFoundError as exc:
            # A missing maildir is made on the first delivery (virtual(8)
            # does the same); existing ones cost no stat() per delivery.
            if created:
                raise _create_error(tmp, exc, uid, gid) from exc
            try:
                ensure_maildir(maildir, uid, gid)
            except OSError as exc2:
                raise _create_error(maildir, exc2, uid, gid) from exc2
            created = True
            continue
        except OSError as exc:
            raise _create_error(tmp, exc, uid, gid) from exc
        break
    else:
        raise DeliveryError("4.2.0", f"create maildir file {tmp}: {os.strerror(errno.EEXIST)}")
    keep = False
    try:
        try:
            _chown(fd, uid, gid)
            if file_size_limit and size > file_size_limit:
                raise OSError(errno.EFBIG, os.strerror(errno.EFBIG))
            write_all(fd, content)
            if sync:
                os.fsync(fd)
            dev = os.fstat(fd).st_dev
            keep = not sync
        finally:
            if not keep:
                os.close(fd)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise _write_error(exc) from exc
    return StagedMessage(tmp, size, vsz, dev, uid, gid, content, fd if keep else None)


def _write_error(exc: OSError) -> DeliveryError:
    return DeliveryError(
        write_error_dsn(exc), f"maildir delivery failed: error writing message: {strerror(exc)}"
    )


def _create_error(path: Path, exc: OSError, uid: int | None, gid: int | None) -> DeliveryError:
    if exc.errno == errno.EACCES:
        # virtual(8)'s hints for the most common set-up mistake.
        log.warning("maildir access problem for UID/GID=%s/%s: %s", uid, gid, strerror(exc))
        log.warning("perhaps you need to create the maildirs in advance")
    return DeliveryError(
        create_error_dsn(exc),
        f"maildir delivery failed: create maildir file {path}: {strerror(exc)}",
    )


def publish(
    staged: StagedMessage,
    maildir: Path,
    *,
    uid: int | None = None,
    gid: int | None = None,
    names: UniqueNames = NAMES,
    dir_syncs: set[Path],
) -> Path:
    """Make ``staged`` appear in ``maildir/new``; ``new/`` is added to
    ``dir_syncs``, the directories the caller fsyncs before reporting.

    Same filesystem and owner → hard link; otherwise a fresh copy is staged in
    that maildir and renamed into place.  The staged file itself stays.
    """
    new = maildir / "new"
    # Staged in this maildir's own tmp/ (the usual case): same filesystem,
    # and only new/ needs to exist.
    here = staged.path.parent.parent == maildir
    if not here or not new.is_dir():
        ensure_maildir(maildir, uid, gid)
    source = staged
    own_copy = False
    if (uid, gid) != (staged.uid, staged.gid) or (not here and os.stat(new).st_dev != staged.dev):
        source = stage(maildir, staged.content, uid=uid, gid=gid, names=names)
        own_copy = True
    try:
        # The name it has in tmp/ first (the usual Maildir rename), then
        # fresh ones should that be taken.
        candidates = itertools.chain(
            [source.path.name],
            (sized_name(names.next(), source.size, source.vsize) for _ in range(_NAME_RETRIES)),
        )
        for name in candidates:
            target = new / name
            try:
                os.link(source.path, target)
            except FileExistsError:
                continue
            break
        else:
            raise OSError(errno.EEXIST, os.strerror(errno.EEXIST), str(new))
        dir_syncs.add(new)
    except OSError as exc:
        raise _write_error(exc) from exc
    finally:
        if own_copy:
            source.path.unlink(missing_ok=True)
    return target


def discard(staged: StagedMessage) -> None:
    """Remove the tmp name once every copy is linked (or on failure)."""
    if staged.fd is not None:
        os.close(staged.fd)
        staged.fd = None
    with contextlib.suppress(FileNotFoundError):
        staged.path.unlink()


# -- delivering to recipients -------------------------------------------------------


@dataclass(frozen=True)
class MaildirTarget:
    """One recipient's maildir and ownership."""

    maildir: Path
    recipient: str
    original_recipient: str = ""
    uid: int | None = None
    gid: int | None = None


@dataclass(frozen=True)
class MaildirResult:
    target: MaildirTarget
    status: DeliveryStatus
    path: Path | None = None


#: Hook run around publishing one copy (the quota guard): entered before the
#: link (may raise DeliveryError to refuse), exited after it succeeded.
Guard = Callable[[MaildirTarget, StagedMessage], AbstractContextManager[object]]

HeaderMode = Literal["postfix", "shared"]

DELIVERED = DeliveryStatus("2.0.0", "delivered to maildir")


def prepared_content(
    message: bytes, sender: str, target: MaildirTarget, *, mode: HeaderMode, batch: int
) -> bytes:
    """Prepended headers + message, normalised to LF line endings."""
    per_rcpt = mode == "postfix" or batch == 1
    head = delivery_headers(
        sender,
        target.recipient,
        target.original_recipient,
        original_to=per_rcpt,
        delivered_to=per_rcpt,
    )
    return head + message.replace(b"\r\n", b"\n")


@dataclass
class CopyGroup:
    """Targets that share one staged file: same content and owner."""

    content: bytes
    uid: int | None
    gid: int | None
    file_size_limit: int
    names: UniqueNames
    #: indexes into the targets being delivered.
    members: list[int]


def plan_copies(
    message: bytes,
    sender: str,
    targets: Sequence[MaildirTarget],
    *,
    header_mode: HeaderMode = "postfix",
    file_size_limit: int = 0,
    names: UniqueNames = NAMES,
    offset: int = 0,
) -> tuple[list[CopyGroup], dict[int, MaildirResult]]:
    """The files to write for ``targets`` (indexes from ``offset``), and the
    results already known (Delivered-To loops)."""
    done: dict[int, MaildirResult] = {}
    groups: dict[tuple[bytes, int | None, int | None], CopyGroup] = {}
    message = message.replace(b"\r\n", b"\n")  # once, not per copy
    delivered = delivered_to_addresses(message)  # once for every target
    for i, target in enumerate(targets, offset):
        if is_delivery_loop(message, target.recipient, delivered):
            done[i] = MaildirResult(target, DeliveryStatus("5.4.6", loop_text(target.recipient)))
            continue
        content = prepared_content(message, sender, target, mode=header_mode, batch=len(targets))
        key = (content, target.uid, target.gid)
        group = groups.get(key)
        if group is None:
            group = groups[key] = CopyGroup(
                content, target.uid, target.gid, file_size_limit, names, []
            )
        group.members.append(i)
    return list(groups.values()), done


def deliver_maildirs_sync(
    message: bytes,
    sender: str,
    targets: Sequence[MaildirTarget],
    *,
    header_mode: HeaderMode = "postfix",
    file_size_limit: int = 0,
    guard: Guard | None = None,
    names: UniqueNames = NAMES,
) -> list[MaildirResult]:
    """Deliver ``message`` to every target; one result per target, in order."""
    groups, results = plan_copies(
        message, sender, targets,
        header_mode=header_mode, file_size_limit=file_size_limit, names=names,
    )  # fmt: skip
    commit_copies(groups, targets, results, guard=guard)
    return [results[i] for i in range(len(targets))]


def commit_copies(
    groups: Sequence[CopyGroup],
    targets: Sequence[MaildirTarget],
    results: dict[int, MaildirResult],
    *,
    guard: Guard | None = None,
) -> None:
    """Write every group's file into its targets' maildirs, filling
    ``results`` (keyed by index into ``targets``): the durability idiom of
    :func:`mailhost.fsutil.commit_durably` for all of them at once — every
    file written, then every file fsynced, then linked into its new/, then
    each new/ fsynced once, so the file system's journal commits many copies
    together instead of two commits per copy.  No copy is reported delivered
    before its file and its new/ are both durable, and no name appears in
    new/ before its file is durable."""
    raise_first(commit_durably(copy_files(groups, targets, results, guard=guard)))


def copy_files(
    groups: Sequence[CopyGroup],
    targets: Sequence[MaildirTarget],
    results: dict[int, MaildirResult],
    *,
    guard: Guard | None = None,
) -> list[DurableFile]:
    """The :class:`~mailhost.fsutil.DurableFile` of each group, to commit
    (:func:`commit_copies`, or the group commit with other deliveries')."""
    return [_CopyFile(group, targets, results, guard) for group in groups]


class _CopyFile:
    """One :class:`CopyGroup` through the idiom: staged once in a member's
    ``tmp/``, linked into every member's ``new/`` once durable (the guard
    around each link), each result recorded once that ``new/`` is durable
    too.  Problems become the members' results, never exceptions."""

    def __init__(
        self,
        group: CopyGroup,
        targets: Sequence[MaildirTarget],
        results: dict[int, MaildirResult],
        guard: Guard | None,
    ) -> None:
        self.group = group
        self.targets = targets
        self.results = results
        self.guard = guard
        self.staged: StagedMessage | None = None
        self.members: list[int] = []
        self.linked: dict[int, Path] = {}

    def write(self) -> Sequence[int]:
        group = self.group
        left = list(group.members)
        while left:
            target = self.targets[left[0]]
            try:
                staged = stage(
                    target.maildir, group.content, uid=group.uid, gid=group.gid,
                    file_size_limit=group.file_size_limit, names=group.names, sync=False,
                )  # fmt: skip
            except (DeliveryError, OSError) as exc:
                # That maildir cannot take it: the next member's may.
                self.results[left.pop(0)] = _failed(target, exc)
                continue
            self.staged, self.members = staged, left
            return () if staged.fd is None else (staged.fd,)
        return ()

    def place(self, sync_errors: Sequence[OSError | None]) -> Iterable[StrPath]:
        staged = self.staged
        if staged is None:
            return ()
        dirs: set[Path] = set()
        try:
            fd, staged.fd = staged.fd, None
            error = sync_errors[0] if sync_errors else None
            if fd is not None:
                try:
                    os.close(fd)
                except OSError as exc:
                    error = error or exc
            if error is not None:
                status = _write_error(error).status
                self.results.update(
                    (i, MaildirResult(self.targets[i], status)) for i in self.members
                )
                discard(staged)
                return ()
            for i in self.members:
                target = self.targets[i]
                try:
                    with self.guard(target, staged) if self.guard else contextlib.nullcontext():
                        self.linked[i] = publish(
                            staged, target.maildir, uid=staged.uid, gid=staged.gid,
                            names=self.group.names, dir_syncs=dirs,
                        )  # fmt: skip
                except (DeliveryError, OSError) as exc:
                    self.results[i] = _failed(target, exc)
        except BaseException:
            discard(staged)
            raise
        return dirs

    def finish(self, dir_errors: Mapping[str, OSError]) -> None:
        try:
            for i, path in self.linked.items():
                problem = dir_errors.get(os.fspath(path.parent))
                self.results[i] = (
                    MaildirResult(self.targets[i], DELIVERED, path)
                    if problem is None
                    else MaildirResult(self.targets[i], _write_error(problem).status)
                )
        finally:
            if self.staged is not None:
                discard(self.staged)


def _failed(target: MaildirTarget, exc: DeliveryError | OSError) -> MaildirResult:
    if isinstance(exc, DeliveryError):
        return MaildirResult(target, exc.status)
    status = DeliveryStatus(
        create_error_dsn(exc),
        f"maildir delivery failed: create maildir file {target.maildir}: {strerror(exc)}",
    )
    return MaildirResult(target, status)
