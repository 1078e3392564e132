"""Every SMTP protocol reply smtpd sends, in one place, worded as Postfix 3.7 words it.

These are the protocol-level replies (syntax, sequencing, size, TLS, AUTH,
queueing) of spec section 9; the recipient-resolution replies (unknown user,
relay denied, temporary lookup failure) belong to the resolver and arrive here
as :class:`Reply` objects.  Texts were recorded from a real Postfix 3.7.11
smtpd (see tests/smtpd/test_replies_match_postfix.py).  Enhanced status codes
follow RFC 3463; a few replies have none, exactly as in Postfix (HELO/EHLO
syntax, the greeting, 354).
"""

from __future__ import annotations

import functools

from mailhost.reply import Reply


def reply(code: int, status: str, text: str) -> Reply:
    return Reply(code, status, text)


# Commands and sequencing (smtpd.c: helo_cmd, ehlo_cmd, mail_cmd, rcpt_cmd, data_cmd).
HELO_SYNTAX = Reply(501, "", "Syntax: HELO hostname")
EHLO_SYNTAX = Reply(501, "", "Syntax: EHLO hostname")
MAIL_OK = Reply(250, "2.1.0", "Ok")
MAIL_SYNTAX = Reply(501, "5.5.4", "Syntax: MAIL FROM:<address>")
BAD_SENDER = Reply(501, "5.1.7", "Bad sender address syntax")
NESTED_MAIL = Reply(503, "5.5.1", "Error: nested MAIL command")
SEND_HELO_FIRST = Reply(503, "5.5.1", "Error: send HELO/EHLO first")
SIZE_EXCEEDED = Reply(552, "5.3.4", "Message size exceeds fixed limit")
SIZE_SYNTAX = Reply(501, "5.5.4", "Bad message size syntax")
NEED_MAIL = Reply(503, "5.5.1", "Error: need MAIL command")
RCPT_SYNTAX = Reply(501, "5.5.4", "Syntax: RCPT TO:<address>")
BAD_RECIPIENT = Reply(501, "5.1.3", "Bad recipient address syntax")
TOO_MANY_RECIPIENTS = Reply(452, "4.5.3", "Error: too many recipients")
NEED_RCPT = Reply(503, "5.5.1", "Error: need RCPT command")
NO_VALID_RECIPIENTS = Reply(554, "5.5.1", "Error: no valid recipients")
DATA_GO_AHEAD = Reply(354, "", "End data with <CR><LF>.<CR><LF>")
DATA_SYNTAX = Reply(501, "5.5.4", "Syntax: DATA")
MESSAGE_TOO_BIG = Reply(552, "5.3.4", "Error: message file too big")
INTERNAL_ERROR = Reply(451, "4.3.0", "Error: internal error")
VRFY_DISABLED = Reply(502, "5.5.1", "VRFY command is disabled")
VRFY_SYNTAX = Reply(501, "5.5.4", "Syntax: VRFY address [SMTPUTF8]")
OK = Reply(250, "2.0.0", "Ok")
BYE = Reply(221, "2.0.0", "Bye")
UNKNOWN_COMMAND = Reply(500, "5.5.2", "Error: command not recognized")
BAD_SYNTAX = Reply(500, "5.5.2", "Error: bad syntax")
BAD_UTF8 = Reply(500, "5.5.2", "Error: bad UTF-8 syntax")
NOT_IMPLEMENTED = Reply(502, "5.5.1", "Error: command not implemented")
#: RET/ENVID/NOTIFY/ORCPT while DSN is not offered (Postfix with DSN discarded).
DSN_DISABLED = Reply(501, "5.7.1", "DSN support is disabled")

# TLS (smtpd.c: starttls_cmd, and the "encrypt" level gate before other commands).
MUST_STARTTLS = Reply(530, "5.7.0", "Must issue a STARTTLS command first")
STARTTLS_READY = Reply(220, "2.0.0", "Ready to start TLS")
TLS_ALREADY_ACTIVE = Reply(554, "5.5.1", "Error: TLS already active")
TLS_NOT_AVAILABLE = Reply(454, "4.7.0", "TLS not available due to local problem")
STARTTLS_SYNTAX = Reply(501, "5.5.4", "Syntax: STARTTLS")

# AUTH (smtpd_sasl_proto.c).
AUTH_OK = Reply(235, "2.7.0", "Authentication successful")
AUTH_NOT_ENABLED = Reply(503, "5.5.1", "Error: authentication not enabled")
AUTH_ALREADY = Reply(503, "5.5.1", "Error: already authenticated")
AUTH_IN_TRANSACTION = Reply(503, "5.5.1", "Error: MAIL transaction in progress")
AUTH_SYNTAX = Reply(501, "5.5.4", "Syntax: AUTH mechanism")
AUTH_ABORTED = Reply(501, "5.7.0", "Authentication aborted")
AUTH_BAD_MECHANISM = Reply(
    535, "5.7.8", "Error: authentication failed: Invalid authentication mechanism"
)


def auth_failed(reason: str) -> Reply:
    """``535 5.7.8``; an empty back-end reason reads ``(reason unavailable)``."""
    return Reply(535, "5.7.8", f"Error: authentication failed: {reason or '(reason unavailable)'}")


def auth_tempfail(reason: str) -> Reply:
    return Reply(454, "4.7.0", f"Temporary authentication failure: {reason}")


@functools.lru_cache(maxsize=16)
def greeting(banner: str) -> Reply:
    """``220 BANNER``, one per banner (its wire form made once)."""
    return Reply(220, "", banner)


def queued(queue_id: str) -> Reply:
    return Reply(250, "2.0.0", f"Ok: queued as {queue_id}")


def vrfy_ok(arg: str) -> Reply:
    return Reply(252, "2.0.0", arg)


def unsupported_option(param: str) -> Reply:
    return Reply(555, "5.5.4", f"Unsupported option: {param}")


def bare_newline(hostname: str, code: int = 550) -> Reply:
    """smtpd_forbid_bare_newline = reject (code: smtpd_forbid_bare_newline_reject_code)."""
    return Reply(code, f"{code // 100}.5.2", f"{hostname} Error: bare <LF> received")


def too_many_errors(hostname: str) -> Reply:
    return Reply(421, "4.7.0", f"{hostname} Error: too many errors")


def timeout_exceeded(hostname: str) -> Reply:
    return Reply(421, "4.4.2", f"{hostname} Error: timeout exceeded")


def too_many_connections(hostname: str, address: str) -> Reply:
    return Reply(421, "4.7.0", f"{hostname} Error: too many connections from {address}")


def temporary_lookup_failure(address: str) -> Reply:
    return Reply(451, "4.3.0", f"<{address}>: Temporary lookup failure")


def sender_not_owned(sender: str, user: str) -> Reply:
    return Reply(553, "5.7.1", f"<{sender}>: Sender address rejected: not owned by user {user}")


def sender_not_logged_in(sender: str) -> Reply:
    return Reply(553, "5.7.1", f"<{sender}>: Sender address rejected: not logged in")


# anvil(8) limits (smtpd.c, smtpd_sasl_proto.c; mailhost.smtpd.limits).
def too_much_mail(address: str) -> Reply:
    return Reply(450, "4.7.1", f"Error: too much mail from {address}")


def too_many_recipients_from(address: str) -> Reply:
    return Reply(450, "4.7.1", f"Error: too many recipients from {address}")


def too_many_auth(address: str) -> Reply:
    return Reply(450, "4.7.1", f"Error: too many AUTH commands from {address}")


def too_many_tls_sessions_refused(client: str) -> Reply:
    """Before STARTTLS's handshake (``client`` is ``name[addr]``)."""
    return Reply(454, "4.7.0", f"Error: too many new TLS sessions from {client}")


def too_many_tls_sessions(hostname: str, client: str) -> Reply:
    """After a handshake that made one new session too many."""
    return Reply(421, "4.7.0", f"{hostname} Error: too many new TLS sessions from {client}")
