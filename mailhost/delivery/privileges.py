"""Whose privileges local(8) uses for a file, command or ``:include:``
delivery (local(8) DELIVERY RIGHTS; alias.c, include.c, command.c, file.c).

* aliases: the owner of the alias database file — ``default_privs`` (its
  ids only: no HOME or SHELL to export) when root owns it or the table is
  not a file;
* ``:include:`` files: the owner of the include file, read with the
  privileges in effect (a user's ``.forward`` cannot include a file only
  root may read);
* ``.forward`` and ``mailbox_command``: the recipient;
* never root: uid 0 is replaced by ``default_privs`` (keeping the user's
  HOME and SHELL, as Postfix keeps its user attributes).
"""

from __future__ import annotations

import dataclasses
import os
import pwd
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass

from mailhost.delivery.filewriter import filesystem_ids
from mailhost.log import logger

log = logger("local")


@dataclass(frozen=True)
class Privileges:
    """Who a file or command delivery runs as, and the user attributes its
    environment gets ("" = not exported)."""

    uid: int
    gid: int
    user: str
    home: str
    shell: str

    @classmethod
    def of(cls, pw: pwd.struct_passwd) -> Privileges:
        return cls(pw.pw_uid, pw.pw_gid, pw.pw_name, pw.pw_dir, pw.pw_shell)


class PrivilegePolicy:
    def __init__(self, default_privs: str) -> None:
        self.default_privs = default_privs

    def default(self) -> Privileges | None:
        """default_privs' ids, without a home directory or shell to export."""
        try:
            pw = pwd.getpwnam(self.default_privs)
        except KeyError:
            log.warning("unknown default_privs user: %s", self.default_privs)
            return None
        return Privileges(pw.pw_uid, pw.pw_gid, pw.pw_name, "", "")

    def never_root(self, priv: Privileges | None) -> Privileges | None:
        """uid 0 becomes default_privs (root's .forward, root-owned include
        files, mailbox_command for root)."""
        if priv is None or priv.uid != 0:
            return priv
        default = self.default()
        if default is None:
            return None
        return dataclasses.replace(priv, uid=default.uid, gid=default.gid)

    def of_owner(self, uid: int) -> Privileges | None:
        """The owner of a file (default_privs for root)."""
        if uid == 0:
            return self.default()
        try:
            return Privileges.of(pwd.getpwuid(uid))
        except KeyError:
            return Privileges(uid, uid, str(uid), "", "")

    def table_owner(self, spec: str) -> Privileges | None:
        """The alias database's owner (its index file first), default_privs
        for root or for tables that are not files."""
        kind, _, name = spec.partition(":")
        candidates = [name + ".mhdb", name] if kind == "hash" else [name]
        for path in candidates:
            try:
                return self.of_owner(os.stat(path).st_uid)
            except (OSError, ValueError):
                continue
        return self.default()


def myself() -> Privileges:
    """This process's own user (deliveries run as ourselves when not root)."""
    try:
        return Privileges.of(pwd.getpwuid(os.geteuid()))
    except KeyError:  # an id without a passwd entry (containers)
        return Privileges(os.geteuid(), os.getegid(), str(os.geteuid()), "", "")


def read_include(path: str, reader: Privileges | None) -> tuple[int, str]:
    """The owner and text of an ``:include:`` file, opened with ``reader``'s
    filesystem ids when running as root (blocking: offload it)."""
    switch = reader is not None and os.geteuid() == 0 and reader.uid != 0
    ids: AbstractContextManager[None] = (
        filesystem_ids(reader.uid, reader.gid) if reader is not None and switch else nullcontext()
    )
    with ids, open(path, encoding="utf-8", errors="surrogateescape") as f:
        return os.fstat(f.fileno()).st_uid, f.read()
