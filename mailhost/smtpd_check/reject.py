"""How a restriction's decision becomes a reply and a log line (Postfix's
smtpd_check_reject(), defer_if(), smtpd_acl_permit() and log_whatsup()).

* a reject is formatted ``CODE D.S.N text``; an invalid code or status is
  replaced by ``450 4.7.1 Service unavailable`` with a warning;
* under ``warn_if_reject`` a policy reject is only logged (``reject_warning:``)
  and the list goes on;
* a pending ``defer_if_reject`` turns a 5xx reject into its own 4xx reply;
* ``soft_bounce = yes`` turns 5xx into 4xx;
* the first digit of the status always follows the reply code;
* the log line is ``QID|NOQUEUE: reject: STAGE from CLIENT: REPLY; from=<…>
  to=<…> proto=… helo=<…>``.

Table and configuration errors end the whole check at once, as Postfix's
longjmp does: :class:`CheckAbort` carries the already-logged reply.
"""

from __future__ import annotations

import re

from mailhost.address import external_form
from mailhost.log import logger
from mailhost.reply import Reply
from mailhost.smtpd_check.state import DUNNO, OK, REJECT, CheckState, Status

log = logger("smtpd")

#: error classes (Postfix MAIL_ERROR_*); only policy-type rejects may be
#: turned into warnings by warn_if_reject.
POLICY, PROTOCOL, BOUNCE = "policy", "protocol", "bounce"
SOFTWARE, RESOURCE, DATA = "software", "resource", "data"
_NOT_WARNABLE = frozenset({SOFTWARE, RESOURCE, DATA})

_DSN = re.compile(r"^[245]\.\d{1,3}\.\d{1,3}(?=\s|$)")

#: smtpd_dsn_fix(): an address DSN (X.1.Y) rewritten for what is judged.
_SENDER_DSN = {
    "1": "4.1.7",
    "2": "4.1.8",
    "3": "4.1.7",
    "4": "4.1.7",
    "5": "4.1.0",
    "6": "4.1.7",
    "7": "4.1.7",
    "8": "4.1.8",
}
_RCPT_DSN = {
    "1": "4.1.1",
    "2": "4.1.2",
    "3": "4.1.3",
    "4": "4.1.4",
    "5": "4.1.5",
    "6": "4.1.6",
    "7": "4.1.3",
    "8": "4.1.2",
}


class CheckAbort(Exception):
    """A table or configuration error ends every restriction list at once
    (the reply has been logged)."""

    def __init__(self, status: Status, text: str) -> None:
        super().__init__(text)
        self.status = status
        self.text = text


def dsn_split(default: str, text: str) -> tuple[str, str]:
    """``(status, text)``: an RFC 3463 status at the start of ``text`` wins
    over ``default``; the rest is the text."""
    match = _DSN.match(text)
    if match is None:
        return default, text
    return match.group(0), text[match.end() :].lstrip()


def dsn_fix(status: str, reply_class: str) -> str:
    """Postfix's smtpd_dsn_fix(): an address-specific status (``X.1.Y``) is
    mapped to the sender or recipient variant, or ``4.0.0`` for anything
    else; other statuses are left alone."""
    if not (status[:1].isdigit() and status[1:4] == ".1."):
        return status
    micro = status[4:]
    if reply_class == "Sender address":
        fixed = _SENDER_DSN.get(micro, "4.1.0")
    elif reply_class == "Recipient address":
        fixed = _RCPT_DSN.get(micro, "4.1.0")
    else:
        fixed = "4.0.0"
    if status[2:] != fixed[2:]:
        log.info(
            "mapping DSN status %s into %s status %s%s", status, reply_class, status[0], fixed[1:]
        )
    return fixed


def log_whatsup(state: CheckState, whatsup: str, text: str) -> None:
    """One ``QID: WHATSUP: STAGE from CLIENT: TEXT; from=<…> …`` line
    (Postfix 3.7 logs no SASL fields here)."""
    parts = [
        f"{state.queue_id or 'NOQUEUE'}: {whatsup}: {state.where} from "
        f"{state.client.namaddr}: {text};"
    ]
    if state.sender is not None:
        parts.append(f"from=<{external_form(state.sender)}>")
    if state.recipient is not None:
        parts.append(f"to=<{external_form(state.recipient)}>")
    parts.append(f"proto={state.protocol}")
    if state.helo is not None:
        parts.append(f"helo=<{state.helo}>")
    log.info("%s", " ".join(parts))


def printable(text: str) -> str:
    return "".join(c if c.isprintable() else " " for c in text)


def reject(
    state: CheckState,
    error_class: str,
    code: int,
    status: str,
    text: str,
    *,
    soft_bounce: bool,
) -> Status:
    """smtpd_check_reject(): see the module docstring.  Returns REJECT, or
    DUNNO when warn_if_reject only logs it."""
    warn = bool(state.warn_if_reject) and error_class not in _NOT_WARNABLE
    whatsup = "reject_warning" if warn else "reject"
    reply = f"{code} {status} {text}"
    if not 400 <= code <= 599:
        log.warning("SMTP reply code configuration error: %s", reply)
        reply = "450 4.7.1 Service unavailable"
    elif _DSN.match(status + " ") is None:
        log.warning("DSN detail code configuration error: %s", reply)
        reply = "450 4.7.1 Service unavailable"
    reply = printable(reply[:510])
    pending = state.defer_if_reject
    if not warn and pending.active and reply[0] == "5":
        state.warn_if_reject = 0
        pending.active = False
        return reject(
            state,
            pending.error_class,
            pending.code,
            pending.status,
            pending.text,
            soft_bounce=soft_bounce,
        )
    if soft_bounce and reply[0] == "5":
        reply = "4" + reply[1:]
    reply = reply[:4] + reply[0] + reply[5:]
    state.error_text = reply
    log_whatsup(state, whatsup, reply)
    return DUNNO if warn else REJECT


def as_reply(text: str) -> Reply:
    """A formatted ``CODE D.S.N text`` as a :class:`Reply`."""
    code, _, rest = text.partition(" ")
    status, _, words = rest.partition(" ")
    if _DSN.match(status + " ") is None:
        return Reply(int(code), "", rest)
    return Reply(int(code), status, words)


def defer_if_permit_or_reject(
    state: CheckState,
    tempfail_action: str,
    code: int,
    status: str,
    text: str,
    *,
    soft_bounce: bool,
) -> Status:
    """DEFER_IF_PERMIT2(): a temporary failure waits as defer_if_permit
    (unless warn_if_reject is on or the action is ``defer``), else defers now."""
    if not state.warn_if_reject and tempfail_action == "defer_if_permit":
        state.defer_if_permit.arm(code, status, text)
        return DUNNO
    return reject(state, POLICY, code, status, text, soft_bounce=soft_bounce)


def permit(
    state: CheckState,
    log_actions: frozenset[str],
    action: str,
    reply_class: str,
    reply_name: str,
    detail: str = "",
) -> Status:
    """smtpd_acl_permit(): OK, logged as ``permit:`` when the action is listed
    in smtpd_log_access_permit_actions (and no defer_if_permit overrules it)."""
    if not state.defer_if_permit.active and (
        action.lower() in log_actions or "static:all" in log_actions
    ):
        # Postfix appends " " and the detail even when the detail is empty.
        text = f"action={action} for {reply_class}={reply_name} {detail}"
        log_whatsup(state, "permit", text)
    return OK
