"""Maildir delivery: unique names, tmp → fsync → link into new/ → fsync new/.

The recipe is D. J. Bernstein's (cr.yp.to/proto/maildir.html, spec 5.1) with
the naming Dovecot uses so Dovecot never needs to stat() our files (spec 5.3,
:mod:`mailhost.delivery.maildir_names`).

Unlike virtual(8), which only fsyncs the file, we also fsync ``new/`` before
reporting success: a 250 (and a ``status=sent``) means on disk (DESIGN rule 6).
Missing maildirs are created with mode 0700 like Postfix does, owned by the
recipient's uid/gid when we run as root.

Every directory is reached through a descriptor (:mod:`mailhost.delivery.dirfd`):
a maildir is opened once per delivery (:func:`open_maildir`: the base, then
each component below it, then ``tmp/`` and ``new/``, never following a
symbolic link), and the file is created in ``tmp/``, linked into ``new/``,
removed and ``new/`` fsynced only through those descriptors.  A symbolic link
anywhere below the base defers the recipient (4.2.0, ``maildir delivery
failed: create maildir file PATH: Too many levels of symbolic links``, the
text Postfix 3.7 logs for a link it cannot follow) with a warning naming the
link; nothing is created where it points.  Postfix itself follows such a
link (it writes as the recipient); docs/storage.md records both.

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
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from mailhost.delivery.dirfd import SymlinkRefused, chown_fd, unlink_at
from mailhost.delivery.headers import (
    delivered_to_addresses,
    delivery_headers,
    is_delivery_loop,
    loop_text,
)
from mailhost.delivery.maildir_dirs import (
    MaildirTarget,
    OpenMaildir,
    ensure_maildir,
    open_maildir,
    writable_by,
)
from mailhost.delivery.maildir_names import (
    NAMES,
    MaildirFileInfo,
    UniqueNames,
    escape_hostname,
    info_suffix,
    parse_filename,
    sized_name,
    vsize,
)
from mailhost.delivery.status import (
    DeliveryError,
    DeliveryStatus,
    create_error_dsn,
    strerror,
    write_error_dsn,
)
from mailhost.delivery.text import (
    Text,
    header_part,
    lf_only,
    prepend,
    text_vsize,
    write_text,
)
from mailhost.fsutil import DurableFile, OpenDir, StrPath, commit_durably, raise_first
from mailhost.log import logger

__all__ = [
    "NAMES",
    "MaildirFileInfo",
    "MaildirTarget",
    "OpenMaildir",
    "UniqueNames",
    "ensure_maildir",
    "escape_hostname",
    "info_suffix",
    "open_maildir",
    "parse_filename",
    "sized_name",
    "vsize",
    "writable_by",
]

log = logger("delivery.maildir")

_NAME_RETRIES = 10
_FILE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


# -- directories ---------------------------------------------------------------


def _open_error(target: MaildirTarget, exc: OSError, unique: str) -> DeliveryError:
    """What a failure to open ``target``'s directories tells the recipient:
    the file that could not be created, as Postfix names it."""
    where = "new" if os.fspath(exc.filename or "").endswith("/new") else "tmp"
    if isinstance(exc, SymlinkRefused):
        log.warning(
            "maildir %s: refusing to follow symbolic link %s%s",
            target.maildir,
            exc.link,
            f" below {target.base}" if target.base is not None else "",
        )
    return _create_error(target.maildir / where / unique, exc, target.uid, target.gid)


# -- staging and publishing ------------------------------------------------------


@dataclass
class StagedMessage:
    """A message written once in some maildir's ``tmp/`` (and fsynced, or
    still open for the commit to fsync)."""

    home: OpenMaildir
    name: str
    size: int
    vsize: int
    dev: int
    uid: int | None
    gid: int | None
    content: Text = field(repr=False)
    #: still open and not yet fsynced (``stage(sync=False)``; the group
    #: commit fsyncs it, :func:`commit_copies`).
    fd: int | None = field(default=None, repr=False)

    @property
    def path(self) -> Path:
        return self.home.path / "tmp" / self.name


def stage(
    home: OpenMaildir,
    content: Text,
    *,
    uid: int | None = None,
    gid: int | None = None,
    file_size_limit: int = 0,
    names: UniqueNames = NAMES,
    sync: bool = True,
) -> StagedMessage:
    """Write ``content`` to ``tmp/<unique>`` of ``home`` (O_EXCL, 0600) and
    fsync it (with ``sync=False`` the file stays open for the commit to fsync).

    ``file_size_limit`` is virtual_mailbox_limit, which virtual(8) applies as a
    per-file size limit (RLIMIT_FSIZE, spec 4.3): exceeding it is EFBIG, 5.2.2.
    """
    size, vsz = len(content), text_vsize(content)
    for _ in range(_NAME_RETRIES):
        name = sized_name(names.next(), size, vsz)
        try:
            fd = os.open(name, _FILE_FLAGS, 0o600, dir_fd=home.tmp.fd)
        except FileExistsError:
            continue  # never overwrite: pick another name (spec 5.4)
        except OSError as exc:
            raise _create_error(home.path / "tmp" / name, exc, uid, gid) from exc
        break
    else:
        raise DeliveryError(
            "4.2.0", f"create maildir file {home.path / 'tmp' / name}: {os.strerror(errno.EEXIST)}"
        )
    keep = False
    try:
        try:
            chown_fd(fd, uid, gid)
            if file_size_limit and size > file_size_limit:
                raise OSError(errno.EFBIG, os.strerror(errno.EFBIG))
            write_text(fd, content)
            if sync:
                os.fsync(fd)
            keep = not sync
        finally:
            if not keep:
                os.close(fd)
    except OSError as exc:
        unlink_at(home.tmp.fd, name)
        raise _write_error(exc) from exc
    return StagedMessage(home, name, size, vsz, home.dev, uid, gid, content, fd if keep else None)


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
    home: OpenMaildir,
    *,
    uid: int | None = None,
    gid: int | None = None,
    names: UniqueNames = NAMES,
    dir_syncs: set[OpenDir],
) -> str:
    """Make ``staged`` appear in ``new/`` of ``home``; that ``new/`` is added
    to ``dir_syncs``, the directories the caller fsyncs before reporting.
    Returns the new name's path.

    Same filesystem and owner → hard link (linkat(2) between the two
    descriptors); otherwise a fresh copy is staged in ``home`` and linked.
    The staged file itself stays.
    """
    source = staged
    own_copy = False
    if (uid, gid) != (staged.uid, staged.gid) or home.dev != staged.dev:
        source = stage(home, staged.content, uid=uid, gid=gid, names=names)
        own_copy = True
    try:
        # The name it has in tmp/ first (the usual Maildir rename), then
        # fresh ones should that be taken.
        candidates = itertools.chain(
            [source.name],
            (sized_name(names.next(), source.size, source.vsize) for _ in range(_NAME_RETRIES)),
        )
        for name in candidates:
            try:
                os.link(
                    source.name, name, src_dir_fd=source.home.tmp.fd, dst_dir_fd=home.new.fd,
                    follow_symlinks=False,
                )  # fmt: skip
            except FileExistsError:
                continue
            break
        else:
            raise OSError(errno.EEXIST, os.strerror(errno.EEXIST), home.new.path)
        dir_syncs.add(home.new)
    except OSError as exc:
        raise _write_error(exc) from exc
    finally:
        if own_copy:
            unlink_at(source.home.tmp.fd, source.name)
    return f"{home.new.path}/{name}"


def discard(staged: StagedMessage) -> None:
    """Remove the tmp name once every copy is linked (or on failure)."""
    if staged.fd is not None:
        os.close(staged.fd)
        staged.fd = None
    unlink_at(staged.home.tmp.fd, staged.name)


# -- delivering to recipients -------------------------------------------------------


@dataclass(frozen=True)
class MaildirResult:
    target: MaildirTarget
    status: DeliveryStatus
    #: the delivered copy's path in ``new/`` (None: not delivered); a str,
    #: made a Path only when asked (no caller on the delivery path asks).
    location: str | None = None

    @property
    def path(self) -> Path | None:
        return None if self.location is None else Path(self.location)


#: Hook run around publishing one copy (the quota guard), given the target,
#: its opened maildir and the staged file: entered before the link (may
#: raise DeliveryError to refuse), exited after it succeeded.
Guard = Callable[[MaildirTarget, OpenMaildir, StagedMessage], AbstractContextManager[object]]

HeaderMode = Literal["postfix", "shared"]

DELIVERED = DeliveryStatus("2.0.0", "delivered to maildir")


def prepared_content(
    message: Text, sender: str, target: MaildirTarget, *, mode: HeaderMode, batch: int
) -> Text:
    """Prepended headers + message, normalised to LF line endings."""
    per_rcpt = mode == "postfix" or batch == 1
    head = delivery_headers(
        sender,
        target.recipient,
        target.original_recipient,
        original_to=per_rcpt,
        delivered_to=per_rcpt,
    )
    return prepend(head, lf_only(message))


@dataclass
class CopyGroup:
    """Targets that share one staged file: same content and owner."""

    content: Text
    uid: int | None
    gid: int | None
    file_size_limit: int
    names: UniqueNames
    #: indexes into the targets being delivered.
    members: list[int]


def plan_copies(
    message: Text,
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
    groups: dict[tuple[Text, int | None, int | None], CopyGroup] = {}
    message = lf_only(message)  # once, not per copy
    delivered = delivered_to_addresses(header_part(message))  # once for every target
    for i, target in enumerate(targets, offset):
        if is_delivery_loop(b"", target.recipient, delivered):
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
    message: Text,
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
    too.  Each maildir is opened once (:func:`open_maildir`) and its
    descriptors kept until the end.  Problems become the members' results,
    never exceptions."""

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
        self.linked: dict[int, tuple[str, OpenDir]] = {}
        self.homes: dict[Path, OpenMaildir] = {}

    def _home(self, target: MaildirTarget) -> OpenMaildir:
        home = self.homes.get(target.maildir)
        if home is None:
            try:
                home = open_maildir(target)
            except OSError as exc:
                unique = sized_name(self.group.names.next(), len(self.group.content),
                                    text_vsize(self.group.content))  # fmt: skip
                raise _open_error(target, exc, unique) from exc
            self.homes[target.maildir] = home
        return home

    def _close(self) -> None:
        if self.staged is not None:
            discard(self.staged)
            self.staged = None
        for home in self.homes.values():
            home.close()
        self.homes.clear()

    def write(self) -> Sequence[int]:
        group = self.group
        left = list(group.members)
        try:
            while left:
                target = self.targets[left[0]]
                try:
                    staged = stage(
                        self._home(target), group.content, uid=group.uid, gid=group.gid,
                        file_size_limit=group.file_size_limit, names=group.names, sync=False,
                    )  # fmt: skip
                except (DeliveryError, OSError) as exc:
                    # That maildir cannot take it: the next member's may.
                    self.results[left.pop(0)] = _failed(target, exc)
                    continue
                self.staged, self.members = staged, left
                return () if staged.fd is None else (staged.fd,)
        except BaseException:
            self._close()
            raise
        return ()

    def place(self, sync_errors: Sequence[OSError | None]) -> Iterable[StrPath]:
        staged = self.staged
        if staged is None:
            return ()
        dirs: set[OpenDir] = set()
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
                return ()
            for i in self.members:
                target = self.targets[i]
                try:
                    home = self._home(target)
                    with (
                        self.guard(target, home, staged) if self.guard else contextlib.nullcontext()
                    ):
                        path = publish(
                            staged, home, uid=staged.uid, gid=staged.gid,
                            names=self.group.names, dir_syncs=dirs,
                        )  # fmt: skip
                    self.linked[i] = (path, home.new)
                except (DeliveryError, OSError) as exc:
                    self.results[i] = _failed(target, exc)
        except BaseException:
            self._close()
            raise
        return dirs

    def finish(self, dir_errors: Mapping[str, OSError]) -> None:
        try:
            for i, (path, new) in self.linked.items():
                problem = dir_errors.get(new)
                self.results[i] = (
                    MaildirResult(self.targets[i], DELIVERED, path)
                    if problem is None
                    else MaildirResult(self.targets[i], _write_error(problem).status)
                )
        finally:
            self._close()


def _failed(target: MaildirTarget, exc: DeliveryError | OSError) -> MaildirResult:
    if isinstance(exc, DeliveryError):
        return MaildirResult(target, exc.status)
    status = DeliveryStatus(
        create_error_dsn(exc),
        f"maildir delivery failed: create maildir file {target.maildir}: {strerror(exc)}",
    )
    return MaildirResult(target, status)
