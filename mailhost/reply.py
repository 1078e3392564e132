"""One SMTP reply — code, enhanced status, text — and the few replies that
more than one stage of the pipeline gives.

Ground floor: smtpd sends replies, but the resolver (unknown user, relay
denied), the quota check (mailbox full), cleanup (alias expansion error, queue
write error) and the restriction evaluator decide many of them, so the value
type lives here, below all of them.  smtpd's own protocol replies are in
:mod:`mailhost.smtpd.replies`.  Texts as Postfix 3.7 words them; enhanced
status codes follow RFC 3463.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Reply:
    """One SMTP reply: code, enhanced status (may be empty) and text."""

    code: int
    status: str
    text: str

    def __str__(self) -> str:
        return (
            f"{self.code} {self.status} {self.text}" if self.status else f"{self.code} {self.text}"
        )

    @property
    def wire(self) -> bytes:
        """The reply as it is sent, CRLF included; made once per reply (kept
        in the instance's dict: the fields stay frozen)."""
        wire: bytes | None = self.__dict__.get("_wire")
        if wire is None:
            wire = self.__dict__["_wire"] = str(self).encode("utf-8", "surrogateescape") + b"\r\n"
        return wire

    @property
    def is_error(self) -> bool:
        return self.code >= 400

    @property
    def is_permanent(self) -> bool:
        return self.code >= 500


#: a recipient accepted at RCPT TO (smtpd, the resolver's verdict).
RCPT_OK = Reply(250, "2.1.5", "Ok")
#: cleanup could not write the queue file, or a table failed at end of DATA.
QUEUE_WRITE_ERROR = Reply(451, "4.3.0", "Error: queue file write error")
#: virtual alias expansion failed (a loop, a table outage, too many results).
ALIAS_EXPANSION_ERROR = Reply(451, "4.6.0", "Alias expansion error")
#: a restriction or parameter that cannot be evaluated.
CONFIG_ERROR = Reply(451, "4.3.5", "Server configuration error")
#: the queue file system is (nearly) full (Postfix smtpd_check_queue, cleanup).
NO_DISK_SPACE = Reply(452, "4.3.1", "Insufficient system storage")
