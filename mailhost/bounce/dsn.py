"""The notification message: an RFC 3464 ``multipart/report`` built with the
standard :mod:`email` package, in the shape Postfix 3.7's bounce(8) writes
(recorded in tests/bounce/postfix_bounce.json):

* top-level headers in Postfix's order: ``Received: by HOST (MAIL_NAME) id
  NEWQID; DATE`` (cleanup's trace header for a local submission), ``Date``,
  ``From: Mail Delivery System <MAILER-DAEMON@$myorigin>``, ``Subject``,
  ``To``, ``Auto-Submitted`` (``auto-replied`` to the sender,
  ``auto-generated`` for a postmaster copy), ``MIME-Version``,
  ``Content-Type: multipart/report; report-type=delivery-status;
  boundary="QID.TIME/HOST"``, ``Content-Transfer-Encoding: 8bit``,
  ``Message-Id: <YYYYMMDDHHMMSS.NEWQID@HOST>``; the preamble
  ``This is a MIME-encapsulated message.``;
* part 1, ``Notification`` (text/plain): the template text (none in a
  postmaster copy), then per recipient a blank line and
  ``<ADDR>: REASON`` (``<ADDR> (expanded from <ORIG>): REASON`` when the
  original recipient differs), wrapped at 79 columns with a 4-space indent;
* part 2, ``Delivery report`` (message/delivery-status): ``Reporting-MTA``,
  ``Original-Envelope-Id`` (with ENVID), ``X-Postfix-Queue-ID``,
  ``X-Postfix-Sender``, ``Arrival-Date``; per recipient ``Final-Recipient``,
  ``Original-Recipient``, ``Action``, ``Status``, for a reply from an SMTP
  or LMTP peer ``Remote-MTA: dns; HOST`` and ``Diagnostic-Code: smtp; REPLY``
  (otherwise ``Diagnostic-Code: X-Postfix; REASON``) and, in a delay
  warning, ``Will-Retry-Until``;
* part 3, the original with a ``Return-Path:`` line in front: whole as
  ``Undelivered Message`` (message/rfc822) or its header section as
  ``Undelivered Message Headers`` (text/rfc822-headers).

Long fields are folded by the email package (78 columns, one space) where
Postfix folds at 79 with four spaces; unfolded they are the same.
Pure: no I/O; the caller supplies the time and the new queue id.
"""

from __future__ import annotations

import email.policy
import email.utils
import io
import textwrap
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from email.generator import BytesGenerator
from email.message import EmailMessage, Message

from mailhost.address import external_form
from mailhost.bounce.templates import Template
from mailhost.rfc822 import mail_date

#: Headers keep their UTF-8 (no encoded words: the report is 8bit, like
#: Postfix's); LF line ends, as in the queue.
POLICY = email.policy.SMTPUTF8.clone(linesep="\n")
PREAMBLE = "This is a MIME-encapsulated message.\n"


@dataclass(frozen=True)
class RecipientReport:
    """One recipient of the report: final and original address, the RFC
    3461 ORCPT (``type;address``, "" when not given), DSN status and reason."""

    address: str
    original: str
    orcpt: str
    status: str
    reason: str
    #: an SMTP/LMTP peer's reply (``dns; host``, ``smtp; 550 ...``), if any.
    remote_mta: str = ""
    diagnostic: str = ""


@dataclass(frozen=True)
class Report:
    """What one notification says about one queued message."""

    #: ``failure`` (Action: failed) or ``delay`` (Action: delayed).
    kind: str
    template: Template
    #: The template text with its ``$name`` references expanded ("" for a
    #: postmaster copy, which has none).
    boilerplate: str
    postmaster_copy: bool
    queue_id: str
    #: the original envelope sender ("" for the null sender).
    sender: str
    arrival_time: float
    envid: str
    recipients: tuple[RecipientReport, ...]
    headers_only: bool
    #: delay warnings: when the queue gives up (arrival + queue lifetime).
    retry_until: float | None = None


@dataclass(frozen=True)
class Origin:
    """Who writes the report: ``myhostname``, ``myorigin``, ``mail_name``."""

    myhostname: str
    myorigin: str
    mail_name: str

    @property
    def mailer_daemon(self) -> str:
        """Postfix's mail_addr_mail_daemon(): the null sender shown in
        X-Postfix-Sender and Return-Path."""
        return f"MAILER-DAEMON@{self.myhostname}"


#: The text part's lines: at most 79 characters, continued with 4 spaces
#: (observed from Postfix 3.7.11's bounce(8)).
WRAP_WIDTH = 79
WRAP_INDENT = "    "


def diagnostic_line(rcpt: RecipientReport) -> str:
    """``<addr>: reason`` as in the text part, wrapped at word boundaries."""
    line = f"<{external_form(rcpt.address)}>"
    if rcpt.original and rcpt.original.lower() != rcpt.address.lower():
        line += f" (expanded from <{external_form(rcpt.original)}>)"
    return textwrap.fill(
        f"{line}: {rcpt.reason}",
        width=WRAP_WIDTH,
        subsequent_indent=WRAP_INDENT,
        break_long_words=False,
        break_on_hyphens=False,
    )


def original_recipient(rcpt: RecipientReport) -> str | None:
    """The Original-Recipient value: the ORCPT as given, else the address
    the client sent at RCPT TO (enable_original_recipient)."""
    if rcpt.orcpt:
        return rcpt.orcpt if ";" in rcpt.orcpt else f"rfc822;{rcpt.orcpt}"
    if rcpt.original:
        return f"rfc822;{external_form(rcpt.original)}"
    return None


def _fields(pairs: Sequence[tuple[str, str | None]]) -> Message:
    block = Message(policy=POLICY)
    for name, value in pairs:
        if value is not None:
            block[name] = value
    return block


def _status_part(report: Report, origin: Origin) -> EmailMessage:
    per_message = _fields(
        [
            ("Reporting-MTA", f"dns; {origin.myhostname}"),
            ("Original-Envelope-Id", report.envid or None),
            ("X-Postfix-Queue-ID", report.queue_id),
            ("X-Postfix-Sender", f"rfc822; {external_form(report.sender) or origin.mailer_daemon}"),
            ("Arrival-Date", mail_date(report.arrival_time)),
        ]
    )
    action = "delayed" if report.kind == "delay" else "failed"
    until = mail_date(report.retry_until) if report.retry_until is not None else None
    blocks: list[Message | str] = [per_message]
    blocks += [
        _fields(
            [
                ("Final-Recipient", f"rfc822; {external_form(r.address)}"),
                ("Original-Recipient", original_recipient(r)),
                ("Action", action),
                ("Status", r.status),
                ("Remote-MTA", r.remote_mta or None),
                ("Diagnostic-Code", r.diagnostic or f"X-Postfix; {r.reason}"),
                ("Will-Retry-Until", until if report.kind == "delay" else None),
            ]
        )
        for r in report.recipients
    ]
    part = EmailMessage(policy=POLICY)
    part["Content-Description"] = "Delivery report"
    part["Content-Type"] = "message/delivery-status"
    part.set_payload(blocks)
    return part


def _returned(report: Report, origin: Origin, content: bytes) -> EmailMessage:
    return_path = external_form(report.sender) if report.sender else origin.mailer_daemon
    original = b"Return-Path: <%s>\n" % return_path.encode("utf-8", "surrogateescape") + content
    # The original goes out as it was queued, byte for byte: given as text
    # (each byte above 0x7f as a surrogate escape), the generator writes a
    # payload unchanged instead of re-serialising a parsed copy, whose
    # headers it would refold and whose odd control characters it would
    # take for line ends.
    part = EmailMessage(policy=POLICY)
    if report.headers_only:
        end = original.find(b"\n\n")
        original = original if end < 0 else original[: end + 1]
        part["Content-Description"] = "Undelivered Message Headers"
        part["Content-Type"] = "text/rfc822-headers"
    else:
        part["Content-Description"] = "Undelivered Message"
        part["Content-Type"] = "message/rfc822"
    part["Content-Transfer-Encoding"] = "8bit"
    part.set_payload(original.decode("ascii", "surrogateescape"))
    return part


def _boundary(report: Report, origin: Origin, now: float, content: bytes) -> str:
    boundary = f"{report.queue_id}.{int(now)}/{origin.myhostname}"
    n = 0
    candidate = boundary
    while candidate.encode() in content:
        n += 1
        candidate = f"{boundary}/{n}"
    return candidate


def build(
    report: Report,
    origin: Origin,
    *,
    recipient: str,
    notice_id: str,
    now: float,
    content: bytes,
) -> EmailMessage:
    """The notification to ``recipient`` about ``report``; ``content`` is the
    original's queued content (LF line ends, Received: header included)."""
    msg = EmailMessage(policy=POLICY)
    msg["Received"] = (
        f"by {origin.myhostname} ({origin.mail_name}) id {notice_id}; {mail_date(now)}"
    )
    msg["Date"] = email.utils.format_datetime(datetime.fromtimestamp(now).astimezone())
    # The template's unqualified MAILER-DAEMON, qualified as cleanup does.
    msg["From"] = f"{report.template.sender_name} <MAILER-DAEMON@{origin.myorigin}>"
    template = report.template
    msg["Subject"] = template.postmaster_subject if report.postmaster_copy else template.subject
    msg["To"] = external_form(recipient)
    msg["Auto-Submitted"] = "auto-generated" if report.postmaster_copy else "auto-replied"
    msg["MIME-Version"] = "1.0"
    boundary = _boundary(report, origin, now, content)
    msg["Content-Type"] = f'multipart/report; report-type=delivery-status; boundary="{boundary}"'
    msg["Content-Transfer-Encoding"] = "8bit"
    stamp = time.strftime("%Y%m%d%H%M%S", time.localtime(now))
    msg["Message-Id"] = f"<{stamp}.{notice_id}@{origin.myhostname}>"
    msg.preamble = PREAMBLE

    text = report.boilerplate + "".join(f"\n{diagnostic_line(r)}\n" for r in report.recipients)
    notification = EmailMessage(policy=POLICY)
    notification.set_content(text, charset="utf-8", cte="8bit")
    del notification["MIME-Version"]
    notification["Content-Description"] = "Notification"
    msg.attach(notification)
    msg.attach(_status_part(report, origin))
    msg.attach(_returned(report, origin, content))
    return msg


class _Generator(BytesGenerator):
    """BytesGenerator writing a message/rfc822 payload given as text with its
    surrogate escapes turned back into the original bytes, as it already
    does for text parts (its own ``_encode`` is strict ASCII)."""

    def _encode(self, s: str) -> bytes:
        return s.encode("ascii", "surrogateescape")


def to_lines(msg: EmailMessage) -> list[bytes]:
    """The message as queue content lines (no line ends)."""
    out = io.BytesIO()
    _Generator(out, policy=POLICY, mangle_from_=False).flatten(msg)
    data = out.getvalue()
    if not data.endswith(b"\n"):
        data += b"\n"
    return data.split(b"\n")[:-1]
