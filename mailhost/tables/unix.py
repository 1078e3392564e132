"""``unix:passwd.byname`` and ``unix:group.byname`` — the system's user and group
databases (Postfix dict_unix(3)), as in Postfix's default
``local_recipient_maps = proxy:unix:passwd.byname $alias_maps``.

Values are formatted as Postfix returns them: ``name:passwd:uid:gid:gecos:dir:shell``
and ``name:passwd:gid:member,member``.
"""

from __future__ import annotations

import grp
import pwd
from typing import ClassVar

from mailhost.errors import TableOpenError
from mailhost.tables.base import Table
from mailhost.tables.registry import OpenContext

MAPS = ("passwd.byname", "group.byname")


class UnixTable(Table):
    type_name: ClassVar[str] = "unix"

    @classmethod
    def open(cls, name: str, ctx: OpenContext) -> Table:
        if name not in MAPS:
            raise TableOpenError(f"unknown table: unix:{name}")
        return cls(name, fold=ctx.fold)

    async def _lookup(self, key: str) -> str | None:
        # getpwnam/getgrnam read local files (or NSS); answers are small and fast.
        try:
            if self.name == "passwd.byname":
                pw = pwd.getpwnam(key)
                return ":".join(
                    [pw.pw_name, pw.pw_passwd, str(pw.pw_uid), str(pw.pw_gid),
                     pw.pw_gecos, pw.pw_dir, pw.pw_shell]
                )  # fmt: skip
            gr = grp.getgrnam(key)
            return f"{gr.gr_name}:{gr.gr_passwd}:{gr.gr_gid}:{','.join(gr.gr_mem)}"
        except KeyError:
            return None


TABLE_TYPE = UnixTable
