"""One restriction being evaluated: its name, the arguments that follow it
in the list, and what the reject texts name (Postfix's generic_checks()
locals, handed to each restriction function)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from mailhost.log import logger
from mailhost.smtpd_check.actions import server_error
from mailhost.smtpd_check.context import Context
from mailhost.smtpd_check.state import Status

log = logger("smtpd")


@dataclass(slots=True)
class Call:
    ctx: Context
    #: the restriction's name as written in the list.
    name: str
    #: what reject texts show in ``<…>`` (client, HELO name, address…).
    reply_name: str
    #: what reject texts call it (``Client host``, ``Sender address``…).
    reply_class: str
    #: the check_*_access restriction a bare ``type:table`` stands for.
    def_acl: str | None
    names: Sequence[str]
    #: index of this restriction in ``names``; arguments follow it.
    position: int

    @property
    def next_name(self) -> str | None:
        i = self.position + 1
        return self.names[i] if i < len(self.names) else None

    def argument(self) -> str | None:
        """The next word of the list, consumed (None at the end)."""
        i = self.position + 1  # next_name, inline (every table and DNS list restriction)
        if i < len(self.names):
            self.position = i
            return self.names[i]
        return None

    def domain_argument(self) -> str | None:
        """An RBL domain argument; a missing one is logged and skipped."""
        word = self.argument()
        if word is None:
            log.warning("restriction %s requires domain name argument", self.name)
        return word

    def table_argument(self) -> str:
        """check_*_access's ``type:name``; anything else is a configuration error."""
        word = self.argument()
        if word is None or ":" not in word:
            log.warning(
                'restriction %s: bad argument "%s": need maptype:mapname',
                self.name.lower(),
                word or "",
            )
            raise server_error(self.ctx)
        return word


Restriction = Callable[[Call], Awaitable[Status]]
