"""The quota warning message delivered to a mailbox owner when usage crosses
a configured threshold (``80%``, ``95%`` ...).

It is an ordinary RFC 5322 message from the null sender, marked
``Auto-Submitted: auto-generated`` (RFC 3834) so no vacation responder
answers it, dropped straight into the mailbox like Dovecot's quota-warning
scripts do through dovecot-lda.
"""

from __future__ import annotations

import email.utils
import secrets
import socket
import time

from mailhost.quota.maildirsize import QuotaLimits, Usage


def warning_message(
    recipient: str,
    percent: int,
    limits: QuotaLimits,
    usage: Usage,
    *,
    hostname: str | None = None,
    now: float | None = None,
) -> bytes:
    """The warning for ``recipient`` whose mailbox passed ``percent`` %."""
    host = hostname or socket.getfqdn()
    when = time.time() if now is None else now
    used_mb = usage.bytes / (1 << 20)
    limit_mb = limits.bytes / (1 << 20)
    lines = [
        f"From: Mail Delivery System <MAILER-DAEMON@{host}>",
        f"To: <{recipient}>",
        f"Subject: Mailbox quota warning: {percent}% used",
        f"Date: {email.utils.formatdate(when, localtime=True)}",
        f"Message-ID: <{int(when)}.{secrets.token_hex(8)}@{host}>",
        "Auto-Submitted: auto-generated",
        "MIME-Version: 1.0",
        "Content-Type: text/plain; charset=us-ascii",
        "Content-Transfer-Encoding: 7bit",
        "",
        f"Your mailbox {recipient} has passed {percent}% of its quota:",
        f"{usage.bytes} of {limits.bytes} bytes used ({used_mb:.1f} MiB of {limit_mb:.1f} MiB),",
        f"{usage.count} messages.",
        "",
        "Please delete messages you no longer need; once the mailbox is full,",
        "new mail to it is returned to its senders.",
    ]
    return "".join(line + "\n" for line in lines).encode("ascii", "backslashreplace")
