"""The narrow interfaces smtpd needs from the rest of the pipeline.

smtpd decides nothing about recipients and writes no files itself: at RCPT it
asks the resolver (spec 3.5), and from the first accepted recipient on the
message belongs to cleanup (:mod:`mailhost.cleanup`, whose own seams are in
:mod:`mailhost.cleanup.seams`).  These Protocols are smtpd's seams;
:mod:`mailhost.master` connects them to :mod:`mailhost.resolve` and
:mod:`mailhost.quota`, and tests plug in small implementations of their own.
"""

from __future__ import annotations

from typing import Protocol

from mailhost.cleanup.seams import ClientInfo
from mailhost.reply import Reply


class RecipientPolicy(Protocol):
    async def check_recipient(
        self, recipient: str, sender: str, client: ClientInfo, size: int = 0
    ) -> Reply | None:
        """None to accept ``recipient``, else the reject/defer reply (spec 3.5);
        ``size`` is the client's MAIL FROM ``SIZE=`` (0: none), for the quota."""
        ...
