"""smtpd_milters in one SMTP session: the macro values smtpd knows, the
events at each command, and what smtpd does with each answer (Postfix's
smtpd_milter.c and check_milter_reply).

A reply (``4xx``/``5xx``) is logged as ``milter-reject`` and sent to the
client; a quarantine marks the message for the hold queue
(``milter-hold``), a discard accepts and drops it (``milter-discard``; later
events of the transaction are not sent); a shutdown answers ``421 4.7.0
Server closing connection`` and ends the session.  A reject at connect is
answered with ``554 HOST ESMTP not accepting connections`` instead of the
greeting and stays the answer to MAIL.  At end of message the log line is
cleanup's (``QID: milter-reject: END-OF-MESSAGE from ...: 5.7.1 text;
...``), the reply goes to the client, and the modifications are applied to
the message handed to cleanup.
"""

from __future__ import annotations

from dataclasses import dataclass

from mailhost.address import external_form
from mailhost.cleanup.inspect import LogContext
from mailhost.cleanup.milter_header_checks import HeaderCheckRun
from mailhost.cleanup.seams import MessageActions
from mailhost.log import daemon_logger, logger
from mailhost.milter.chain import MilterChain
from mailhost.milter.edits import Content
from mailhost.milter.settings import MilterSettings
from mailhost.milter.verdict import DISCARD_TEXT, HOLD_TEXT, Kind, Verdict, printable
from mailhost.observe import metrics
from mailhost.reply import Reply
from mailhost.smtpd.maillog import reject_line
from mailhost.smtpd.session import MailTransaction, Session

log = logger("smtpd")
cleanup_log = daemon_logger("cleanup")

SHUTDOWN_REPLY = "421 4.7.0 Server closing connection"


@dataclass
class Finished:
    """The end-of-message outcome: a reply refusing the message, or the
    edited message and its actions."""

    reply: str | None
    content: Content


class SmtpdMilters:
    """See the module docstring; one per SMTP session."""

    def __init__(self, settings: MilterSettings) -> None:
        self.settings = settings
        self.chain = MilterChain(settings)
        self.hold: str | None = None
        self.discard = False
        #: A filter's standing reject of the connection: the greeting changed.
        self.rejected_text: str | None = None
        #: A filter answered the last EHLO with a 5xx: only
        #: ENHANCEDSTATUSCODES is announced (Postfix ehlo_cmd).
        self.ehlo_refused = False

    # -- macro values -----------------------------------------------------------------

    def values(
        self,
        s: Session,
        txn: MailTransaction | None = None,
        recipient: str | None = None,
        rejected: str | None = None,
    ) -> dict[str, str | None]:
        st = self.settings
        out: dict[str, str | None] = {
            "j": st.myhostname,
            "_": f"{s.client_name} [{s.client_address}]",
            "daemon_name": st.daemon_name,
            "daemon_addr": s.server_address or None,
            "daemon_port": str(s.server_port) if s.server_port else None,
            "v": st.macro_v,
            "client_addr": s.client_address,
            "client_port": str(s.client_port),
            "client_name": s.client_name,
            "client_ptr": s.client_name,
            "client_res": "OK" if s.client_name != "unknown" else "FAIL",
            "auth_type": s.sasl_method,
            "auth_authen": s.sasl_username,
        }
        if txn is not None:
            out["i"] = txn.queue_id
            out["mail_addr"] = external_form(txn.sender) if txn.sender else ""
        if recipient is not None:
            if rejected is not None:
                words = rejected[4:].split(" ")
                out["rcpt_host"] = words[0]
                out["rcpt_addr"] = words[1] if len(words) > 1 else ""
                out["rcpt_mailer"] = "error"
            else:
                out["rcpt_addr"] = external_form(recipient) if recipient else ""
        return out

    # -- what smtpd does with an answer ------------------------------------------------

    def outcome(
        self,
        s: Session,
        stage: str,
        verdict: Verdict | None,
        *,
        sender: str | None = None,
        recipient: str | None = None,
        helo: str | None = None,
    ) -> str | None:
        """The reply for the client (None: go on); logs as Postfix's smtpd does."""
        if verdict is None:
            return None
        txn = s.transaction
        if verdict.kind == Kind.HOLD:
            # Logged at every command (recorded from Postfix 3.7.11).
            self.hold = HOLD_TEXT
            action, text, reply = "milter-hold", HOLD_TEXT, None
        elif verdict.kind == Kind.DISCARD:
            if self.discard:
                return None
            self.discard = True
            action, text, reply = "milter-discard", DISCARD_TEXT, None
        elif verdict.kind == Kind.SHUTDOWN:
            action, text, reply = "milter-reject", SHUTDOWN_REPLY, SHUTDOWN_REPLY
        else:
            action, text, reply = "milter-reject", verdict.text, verdict.text
        if reply is not None:
            metrics.smtpd_reject(stage, reply)
        log.info(
            "%s",
            reject_line(
                txn.queue_id if txn else None, stage, s.client, printable(text),
                sender=sender if sender is not None else (txn.sender if txn else None),
                recipient=recipient, protocol=s.protocol,
                helo=helo if helo is not None else s.helo, action=action,
            ),
        )  # fmt: skip
        return reply

    # -- the events --------------------------------------------------------------------

    async def connect(self, s: Session) -> str | None:
        """The greeting's replacement, if a filter refused the connection."""
        verdict = await self.chain.connect(
            s.client_name, s.client_address, s.client_port, self.values(s)
        )
        reply = self.outcome(s, "CONNECT", verdict)
        if reply is None:
            return None
        self.rejected_text = reply
        if reply.startswith("5"):
            return f"554 {self.settings.myhostname} ESMTP not accepting connections"
        if reply.startswith("421"):
            return f"421 {self.settings.myhostname} Service unavailable - try again later"
        return None

    async def helo(self, s: Session, name: str, stage: str) -> str | None:
        """Only a 421 is sent (and ends the session); other answers are logged."""
        verdict = await self.chain.helo(name, self.values(s))
        reply = self.outcome(s, stage, verdict, helo=name)
        self.ehlo_refused = reply is not None and reply.startswith("5")
        return reply if reply is not None and reply.startswith("421") else None

    async def mail(self, s: Session, args: list[str], sender: str) -> str | None:
        self.hold, self.discard = None, False
        txn = s.transaction
        verdict = await self.chain.mail(args, self.values(s, txn))
        return self.outcome(s, "MAIL", verdict, sender=sender)

    async def rcpt(
        self, s: Session, args: list[str], recipient: str, rejected: str | None = None
    ) -> str | None:
        if self.discard:
            return None
        values = self.values(s, s.transaction, recipient, rejected)
        verdict = await self.chain.rcpt(args, values, rejected=rejected is not None)
        if rejected is not None:
            return None
        return self.outcome(s, "RCPT", verdict, recipient=recipient)

    async def data(self, s: Session) -> str | None:
        if self.discard:
            return None
        txn = s.transaction
        verdict = await self.chain.data(self.values(s, txn))
        last = txn.recipients[-1] if txn is not None and txn.recipients else None
        return self.outcome(s, "DATA", verdict, recipient=last)

    async def message(
        self, s: Session, txn: MailTransaction, content: Content, actions: MessageActions
    ) -> str | None:
        """End of message: the reply refusing it, or None (``content`` edited,
        ``actions`` given the hold/discard)."""
        verdict = None
        checks = self.header_checks(s, txn, content)
        if not self.discard:
            verdict = await self.chain.message(content, self.values(s, txn))
        reply = None
        if checks is not None and checks.result.reject is not None:
            reply = str(checks.result.reject)
        elif verdict is not None:
            reply = self.end_of_message(s, txn, content, verdict)
        if reply is None:
            if checks is not None:
                actions.merge(checks.result.actions)
            if self.discard:
                actions.discard = actions.discard or DISCARD_TEXT
            if self.hold is not None:
                actions.hold = actions.hold or self.hold
        self.hold, self.discard = None, False
        return reply

    def header_checks(
        self, s: Session, txn: MailTransaction, content: Content
    ) -> HeaderCheckRun | None:
        """milter_header_checks for this message's header edits."""
        maps = self.settings.header_checks
        if maps is None:
            return None
        context = LogContext(
            origin=f"{s.client_name}[{s.client_address}]",
            sender=external_form(txn.sender) if txn.sender else "",
            recipient=txn.recipients[-1] if txn.recipients else None,
            protocol=s.protocol,
            helo=s.helo,
        )
        content.header_checks = HeaderCheckRun(maps, txn.queue_id or "", context)
        return content.header_checks

    def end_of_message(
        self, s: Session, txn: MailTransaction, content: Content, verdict: Verdict
    ) -> str | None:
        """cleanup's log line for the end-of-message answer (cleanup_milter_apply)."""
        reply = None
        if verdict.kind == Kind.HOLD:
            if self.hold is not None:
                return None
            self.hold = HOLD_TEXT
            action, text = "milter-hold", HOLD_TEXT
        elif verdict.kind == Kind.DISCARD:
            if self.discard:
                return None
            self.discard = True
            action, text = "milter-discard", DISCARD_TEXT
        elif verdict.kind == Kind.SHUTDOWN:
            # Postfix 3.7.11 logs "message content rejected", answers 250 and
            # queues nothing (recorded): a 250 for mail that is not stored.
            # mailhost never does that: 421 and disconnect, the client retries.
            reply = SHUTDOWN_REPLY
            action, text = "milter-reject", reply[4:]
        else:
            reply = verdict.text
            action, text = "milter-reject", reply[4:]
        cleanup_log.info(
            "%s",
            reject_line(
                txn.queue_id, "END-OF-MESSAGE", f"{s.client_name}[{s.client_address}]",
                printable(text), sender=content.sender,
                recipient=txn.recipients[-1] if txn.recipients else None,
                protocol=s.protocol, helo=s.helo, action=action,
            ),
        )  # fmt: skip
        return reply

    def other(self, command: str) -> str | None:
        """A standing refusal for VRFY or STARTTLS (not logged, as in
        Postfix); STARTTLS gets ``454 4.3.0 Try again later`` for a 4xx."""
        verdict = self.chain.other()
        if verdict is None or verdict.kind != Kind.REPLY or verdict.text[:1] not in ("4", "5"):
            return None
        if command == "STARTTLS" and verdict.text.startswith("4"):
            return "454 4.3.0 Try again later"
        return verdict.text

    async def abort(self) -> None:
        self.hold, self.discard = None, False
        await self.chain.abort()

    async def quit(self) -> None:
        await self.chain.quit()


@dataclass(frozen=True)
class MilterReply(Reply):
    """A filter's reply as it sent it (it may span several lines)."""

    raw: str = ""

    def __str__(self) -> str:
        return self.raw


def as_reply(text: str) -> Reply:
    """The client's reply for a filter's answer text."""
    return MilterReply(int(text[:3]), "", text[4:], raw=text)
