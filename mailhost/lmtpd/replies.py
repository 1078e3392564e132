"""Every reply lmtpd sends that smtpd does not: the LMTP-specific ones and
the per-recipient verdicts, worded as Dovecot 2.3's LMTP server words them
(recorded from Dovecot 2.3.19.1's ``lmtp`` on this machine, see
tests/lmtpd/dovecot_lmtp.json), so mailhost's lmtpd and Dovecot's can stand
in for each other behind an edge: the edge's bounces and logs read the same.

The syntax and sequencing replies of MAIL, RCPT and DATA are smtpd's
(:mod:`mailhost.smtpd.replies`, Postfix's words): the two servers share the
path parser that gives them.
"""

from __future__ import annotations

from mailhost.address import external_form
from mailhost.reply import Reply

#: RFC 2033 §4.1: LMTP has LHLO, not HELO/EHLO; Dovecot answers those (and
#: every other command it does not know, an empty line included) with this.
UNKNOWN_COMMAND = Reply(500, "5.5.1", "Unknown command")
#: LHLO without its argument (Dovecot's words, no enhanced status).
LHLO_SYNTAX = Reply(501, "", "Missing hostname")
#: A MAIL FROM or RCPT TO parameter lmtpd does not implement (Dovecot).
UNSUPPORTED_PARAMETERS = Reply(555, "5.5.4", "Unsupported parameters")
#: RCPT TO accepted (Dovecot: ``250 2.1.5 OK``).
RCPT_OK = Reply(250, "2.1.5", "OK")
#: MAIL FROM accepted (Dovecot: ``250 2.1.0 OK``).
MAIL_OK = Reply(250, "2.1.0", "OK")
#: RFC 2033 §4.2: DATA without a successful RCPT MUST fail with 503
#: (smtpd's SMTP answer is 554); Dovecot's words.
NO_VALID_RECIPIENTS = Reply(503, "5.5.0", "No valid recipients")
#: DATA: go ahead (Dovecot: ``354 OK``).
DATA_GO_AHEAD = Reply(354, "", "OK")
#: Quota text of Dovecot's ``quota_exceeded_message`` default.
QUOTA_EXCEEDED = "Quota exceeded (mailbox for user is full)"


def greeting(hostname: str, mail_name: str) -> Reply:
    """The banner, shaped like Dovecot's ``220 HOST Dovecot ready.``"""
    return Reply(220, "", f"{hostname} {mail_name} LMTP ready.")


def user_unknown(recipient: str) -> Reply:
    """Dovecot: ``550 5.1.1 <ADDR> User doesn't exist: ADDR``."""
    shown = external_form(recipient)
    return Reply(550, "5.1.1", f"<{shown}> User doesn't exist: {shown}")


def over_quota(recipient: str, *, bounce: bool = True) -> Reply:
    """Dovecot: ``552 5.2.2 <ADDR> Quota exceeded (mailbox for user is
    full)``; with ``mailhost_quota_overquota_bounce = no`` the temporary
    form (Dovecot's ``quota_full_tempfail = yes``): ``452 4.2.2``."""
    code, status = (552, "5.2.2") if bounce else (452, "4.2.2")
    return Reply(code, status, f"<{external_form(recipient)}> {QUOTA_EXCEEDED}")


def saved(recipient: str, queue_id: str) -> Reply:
    """Dovecot: ``250 2.0.0 <ADDR> SESSION-ID Saved``; here the id is the
    message's queue id, the one every maillog line of it carries."""
    return Reply(250, "2.0.0", f"<{external_form(recipient)}> {queue_id} Saved")


def temporary_failure(recipient: str) -> Reply:
    """A table outage or a delivery deferred for a reason other than quota
    (Dovecot: ``451 4.3.0 <ADDR> Temporary internal error``); the reason is
    logged, never sent."""
    return Reply(451, "4.3.0", f"<{external_form(recipient)}> Temporary internal error")


def permanent_failure(recipient: str, dsn: str) -> Reply:
    """A delivery that bounced for a reason other than quota or an unknown
    user: the delivery agent's enhanced status; its reason (a file name,
    an errno) is logged, never sent — the edge would put it in a bounce
    to the sender."""
    return Reply(554, dsn, f"<{external_form(recipient)}> Delivery failed")
