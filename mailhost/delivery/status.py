"""Delivery outcomes and the errno → DSN mapping of virtual(8).

A delivery attempt ends delivered (2.0.0), deferred (4.x.x, the queue retries)
or bounced (5.x.x).  The mapping of write/create errors follows spec 4.3
(Postfix ``mbox_open``/``maildir`` error handling): EAGAIN/ESTALE 4.2.0,
ENOSPC 4.3.0, EDQUOT/EFBIG 5.2.2 ("mailbox full"), other write errors 5.3.0,
other create errors 4.2.0.
"""

from __future__ import annotations

import errno
import os
from dataclasses import dataclass, field

from mailhost.errors import MailhostError


@dataclass(frozen=True)
class DeliveryStatus:
    """One recipient's outcome: enhanced status and the ``status=`` reason."""

    dsn: str
    text: str
    #: RFC 3464 ``Remote-MTA`` and ``Diagnostic-Code`` of a reply from an
    #: SMTP/LMTP peer (``dns; mx.example.net``, ``smtp; 550 5.1.1 ...``);
    #: empty when mailhost itself decided.  Not part of equality.
    remote_mta: str = field(default="", compare=False)
    diagnostic: str = field(default="", compare=False)

    @property
    def delivered(self) -> bool:
        return self.dsn.startswith("2.")

    @property
    def deferred(self) -> bool:
        return self.dsn.startswith("4.")

    @property
    def bounced(self) -> bool:
        return self.dsn.startswith("5.")


class DeliveryError(MailhostError):
    """A delivery that did not happen; carries the DSN the queue manager logs
    and acts on (defer for 4.x.x, bounce for 5.x.x)."""

    def __init__(self, dsn: str, text: str) -> None:
        super().__init__(text)
        self.status = DeliveryStatus(dsn, text)

    @property
    def dsn(self) -> str:
        return self.status.dsn

    @property
    def text(self) -> str:
        return self.status.text


#: virtual(8)'s answer to any table or configuration problem (spec 4.1).
CONFIG_ERROR = DeliveryStatus("4.3.5", "mail system configuration error")

_FULL = frozenset({errno.EDQUOT, errno.EFBIG})
_RETRY = frozenset({errno.EAGAIN, errno.ESTALE})


def write_error_dsn(err: OSError) -> str:
    """DSN for a failure while writing or committing a message."""
    if err.errno in _RETRY:
        return "4.2.0"
    if err.errno == errno.ENOSPC:
        return "4.3.0"
    if err.errno in _FULL:
        return "5.2.2"
    return "5.3.0"


def create_error_dsn(err: OSError, default: str = "4.2.0") -> str:
    """DSN for a failure to create or open the destination file (Postfix
    mbox_dsn(): ``default`` is virtual(8)'s 4.2.0, local(8)'s 5.2.0)."""
    if err.errno in _RETRY:
        return "4.2.0"
    if err.errno == errno.ENOSPC:
        return "4.3.0"
    if err.errno in _FULL:
        return "5.2.2"
    return default


def strerror(err: OSError) -> str:
    """The ``%m`` text Postfix prints for an errno."""
    return os.strerror(err.errno) if err.errno else str(err)
