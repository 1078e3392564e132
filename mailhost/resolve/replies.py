"""Every reply the recipient resolver can give, worded as Postfix 3.7 words it.

smtpd sends these at RCPT TO (spec 3.5, 9) and cleanup's alias expansion ends
DATA with the last two (spec 3.4).  Texts and codes were recorded from a real
Postfix 3.7.11 smtpd (tests/resolve/postfix_rcpt.json).  The enhanced status
follows the class of the configured code: ``*_reject_code = 450`` gives
``4.1.1``, the default 550 gives ``5.1.1``.  The reply type is
:class:`mailhost.reply.Reply`, shared so that smtpd sends what the resolver
returns without conversion.
"""

from __future__ import annotations

from mailhost.reply import ALIAS_EXPANSION_ERROR, CONFIG_ERROR, QUEUE_WRITE_ERROR, RCPT_OK, Reply

__all__ = [
    "ALIAS_EXPANSION_ERROR",
    "CONFIG_ERROR",
    "QUEUE_WRITE_ERROR",
    "RCPT_OK",
    "Reply",
    "access_denied",
    "non_fqdn_recipient",
    "relay_denied",
    "temporary_lookup_failure",
    "try_again_later",
    "user_unknown",
]


def _status(code: int, detail: str) -> str:
    return f"{code // 100}.{detail}"


def relay_denied(address: str, code: int) -> Reply:
    """reject_unauth_destination (code = relay_domains_reject_code, 554) or
    defer_unauth_destination (the same code with a leading 4: 454)."""
    return Reply(code, _status(code, "7.1"), f"<{address}>: Relay access denied")


def user_unknown(
    address: str,
    table: str,
    code: int,
    *,
    show_table: bool = True,
    reply_class: str = "Recipient address",
) -> Reply:
    """``550 5.1.1 <ADDR>: Recipient address rejected: User unknown in TABLE``;
    ``show_user_unknown_table_name = no`` drops `` in TABLE``; for a sender
    (reject_unlisted_sender) ``Sender address`` and ``5.1.0``."""
    text = f"<{address}>: {reply_class} rejected: User unknown"
    if show_table:
        text += f" in {table}"
    detail = "1.0" if reply_class == "Sender address" else "1.1"
    return Reply(code, _status(code, detail), text)


def temporary_lookup_failure(address: str) -> Reply:
    """Any table error while deciding about a recipient: never a 5xx."""
    return Reply(451, "4.3.0", f"<{address}>: Temporary lookup failure")


def non_fqdn_recipient(address: str, code: int) -> Reply:
    """reject_non_fqdn_recipient (code = non_fqdn_reject_code, 504)."""
    return Reply(
        code,
        _status(code, "5.2"),
        f"<{address}>: Recipient address rejected: need fully-qualified address",
    )


def access_denied(address: str, code: int) -> Reply:
    """The ``reject`` restriction at RCPT (code = reject_code, 554)."""
    return Reply(
        code, _status(code, "7.1"), f"<{address}>: Recipient address rejected: Access denied"
    )


def try_again_later(address: str, code: int) -> Reply:
    """The ``defer`` restriction at RCPT (code = defer_code, 450)."""
    return Reply(
        code, _status(code, "3.2"), f"<{address}>: Recipient address rejected: Try again later"
    )
