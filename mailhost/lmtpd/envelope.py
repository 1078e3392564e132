"""The ESMTP parameters lmtpd takes on MAIL FROM (pure).

lmtpd offers SIZE (RFC 1870) and 8BITMIME (RFC 6152), so MAIL FROM may
carry ``SIZE=n`` and ``BODY=7BIT|8BITMIME``; any other parameter, and any
parameter on RCPT TO, is refused as Dovecot's LMTP refuses one it does not
offer (``555 5.5.4 Unsupported parameters``, recorded).  A ``SIZE=`` that
is not a number is smtpd's ``501 5.5.4 Bad message size syntax``; one past
``message_size_limit`` is smtpd's ``552 5.3.4 Message size exceeds fixed
limit`` (Postfix's words, as for the path syntax).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from mailhost.lmtpd import replies
from mailhost.reply import Reply
from mailhost.smtpd import replies as smtpd_replies

BODY_TYPES = frozenset({"7BIT", "8BITMIME"})


@dataclass(frozen=True)
class MailParameters:
    """What MAIL FROM declared: its SIZE (0: none) and the parameters
    delivery keeps (``BODY``)."""

    size: int = 0
    kept: tuple[tuple[str, str], ...] = ()


def mail_parameters(params: Sequence[tuple[str, str | None]], limit: int) -> MailParameters | Reply:
    """The parameters of one MAIL FROM, or the reply refusing them;
    ``limit`` is message_size_limit (0: none)."""
    size = 0
    kept: list[tuple[str, str]] = []
    for name, value in params:
        keyword = name.upper()
        if keyword == "SIZE" and value is not None:
            if not value.isascii() or not value.isdigit():
                return smtpd_replies.SIZE_SYNTAX
            size = int(value)
            if limit and size > limit:
                return smtpd_replies.SIZE_EXCEEDED
        elif keyword == "BODY" and value is not None and value.upper() in BODY_TYPES:
            kept.append(("BODY", value.upper()))
        else:
            return replies.UNSUPPORTED_PARAMETERS
    return MailParameters(size, tuple(kept))
